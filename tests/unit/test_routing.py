"""``streams.processor.routing`` against Kafka's own murmur2 and default partitioner.

The first vectors are Kafka's published ones (``UtilsTest.testMurmur2``, all ASCII). The second
set was computed with ``org.apache.kafka.common.utils.Utils.murmur2`` / ``toPositive`` of the
Kafka 4.1.1 client jar: UTF-8 keys and bytes >= 0x80 (Java's signed bytes), every tail length
0-3, and negative hashes (``toPositive`` masks the sign bit; it is not ``abs``).
``tests/integration/test_java_partitioner.py`` checks the same against the live Java client.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.processor.routing import murmur2, partition_for

KAFKA_UTILS_TEST = [
    (b"21", -973932308),
    (b"foobar", -790332482),
    (b"a-little-bit-long-string", -985981536),
    (b"a-little-bit-longer-string", -1486304829),
    (b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971),
    (bytes([ord("a"), ord("b"), ord("c")]), 479470107),
]

# (key, Utils.murmur2, toPositive(h) % 12, toPositive(h) % 7) from the Java client
JAVA_CLIENT = [
    ("", 275646681, 9, 2),
    ("N", 303139020, 0, 2),
    ("NY", -1498344773, 3, 0),
    ("NY-", 1149758276, 8, 2),
    ("NY-0001234", -610427052, 8, 5),
    ("é", 186971271, 3, 4),
    ("Zoë", -1306457314, 10, 1),
    ("学生-42", 521684048, 8, 4),
    ("🎓", -25353134, 6, 0),
    ("NY-Ω-7", -12717196, 4, 0),
]


@pytest.mark.parametrize(("data", "expected"), KAFKA_UTILS_TEST)
def test_murmur2_matches_kafkas_published_vectors(data: bytes, expected: int) -> None:
    assert murmur2(data) == expected


@pytest.mark.parametrize(("key", "expected", "of_12", "of_7"), JAVA_CLIENT)
def test_murmur2_and_partition_match_the_java_client(
    key: str, expected: int, of_12: int, of_7: int
) -> None:
    data = key.encode("utf-8")
    assert murmur2(data) == expected
    assert partition_for(data, 12) == of_12
    assert partition_for(data, 7) == of_7


def test_bytes_with_the_high_bit_set_hash_as_javas_unsigned_bytes() -> None:
    assert murmur2(bytes([0xFF, 0x80, 0x7F, 0x00, 0xFE, 0x81, 0xC3])) == 605892741


def test_a_negative_hash_is_masked_not_negated() -> None:
    # abs(-1498344773) % 12 == 5, Kafka's toPositive gives 3
    assert partition_for(b"NY", 12) == 3


def test_a_topic_has_at_least_one_partition() -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for(b"NY-1", 0)


@given(st.binary(max_size=64))
def test_murmur2_is_a_deterministic_signed_32_bit_int(data: bytes) -> None:
    h = murmur2(data)
    assert -(2**31) <= h < 2**31
    assert murmur2(bytes(data)) == h


@given(st.binary(max_size=64), st.integers(min_value=1, max_value=10_000))
def test_partition_is_in_range_and_deterministic(key: bytes, partitions: int) -> None:
    p = partition_for(key, partitions)
    assert 0 <= p < partitions
    assert partition_for(key, partitions) == p


@given(
    st.text(max_size=32),
    st.integers(min_value=1, max_value=64),
    st.integers(min_value=1, max_value=16),
)
def test_a_key_keeps_its_partition_modulo_a_divisor_of_the_count(
    key: str, partitions: int, factor: int
) -> None:
    # toPositive(h) % (n*f) % n == toPositive(h) % n: on 12 partitions a key lands on a
    # partition congruent to its partition on 3, 4 or 6
    data = key.encode("utf-8")
    assert partition_for(data, partitions * factor) % partitions == partition_for(data, partitions)
    assert partition_for(data, 1) == 0
