"""Records keyed by student id land where ``streams.processor.routing.partition_for`` says,
when Java's ``KafkaProducer`` (default partitioner, as SIS integrations and Kafka Connect use)
or librdkafka's ``murmur2_random`` writes them; librdkafka's own default (``consistent_random``,
CRC32) puts most keys elsewhere, which is why the processor repartitions by the key it
computes instead of trusting the partition a record arrived on.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient

from streams.config import Connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import TopicSpec
from streams.processor.routing import partition_for
from tests.java_producer import java_produce

pytestmark = pytest.mark.kafka

PARTITION_COUNTS = (3, 4, 6, 12)
KEYS_PER_TOPIC = 500
#: at least this share of keys must land elsewhere under CRC32 (expected about 1 - 1/n:
#: 67 % on 3 partitions, 92 % on 12; 500 keys put 50 % many standard deviations away)
MIN_CRC32_MISMATCH = 0.5

_NAMES = (
    "Zoë",
    "José",
    "Łukasz",
    "Siobhán",
    "Nguyễn",
    "Ærøskøbing",
    "Дмитрий",
    "学生",
    "たなか",
    "محمد",
    "🎓",
    "Ω",
)


def student_keys(rng: random.Random, count: int) -> list[str]:
    """Distinct student-id-like keys: mostly ``NY-<digits>``, some of other districts, some
    with non-ASCII text (several bytes a character in UTF-8, of every tail length)."""
    keys: set[str] = set()
    while len(keys) < count:
        roll = rng.random()
        digits = "".join(rng.choices("0123456789", k=rng.randint(1, 10)))
        if roll < 0.6:
            keys.add(f"NY-{digits}")
        elif roll < 0.8:
            keys.add(f"{rng.choice(('CA', 'TX', 'NJ', 'IL'))}-{digits}")
        else:
            keys.add(f"{rng.choice(_NAMES)}-{digits}{rng.choice(('', '-é', '-ß', '-🎓'))}")
    return sorted(keys)


@pytest.fixture
def partitioned_topics(
    bus: Connection, unique_name: Callable[[str], str]
) -> Iterator[dict[int, str]]:
    """One new topic per partition count, deleted afterwards."""
    names = {n: unique_name(f"p{n}") for n in PARTITION_COUNTS}
    ensure_topics(bus, [TopicSpec(name, n) for n, name in names.items()])
    yield names
    admin = AdminClient(bus.kafka_config())
    for future in admin.delete_topics(list(names.values()), operation_timeout=30).values():
        try:
            future.result()
        except Exception as exc:  # clean-up must not fail the test
            print(f"could not delete a topic: {exc}")


def librdkafka_partitions(
    bus: Connection, records: Sequence[tuple[str, bytes, bytes]], partitioner: str | None
) -> list[int]:
    """The partition librdkafka chose for each record (``partitioner`` None: its default)."""
    extra: dict[str, str | bool] = {"acks": "all", "enable.idempotence": True}
    if partitioner is not None:
        extra["partitioner"] = partitioner
    producer = Producer(bus.kafka_config(extra))
    placed: dict[int, int] = {}
    errors: list[str] = []

    def delivered_to(index: int) -> Callable[[KafkaError | None, Any], None]:
        def delivered(err: KafkaError | None, msg: Any) -> None:
            if err is not None:
                errors.append(f"record {index}: {err}")
            else:
                placed[index] = msg.partition()

        return delivered

    for index, (topic, key, value) in enumerate(records):
        producer.produce(topic, value=value, key=key, on_delivery=delivered_to(index))
        producer.poll(0)
    assert producer.flush(60) == 0, "librdkafka did not deliver every record in 60 s"
    assert not errors, errors[:5]
    return [placed[i] for i in range(len(records))]


def test_java_and_murmur2_random_place_keys_where_partition_for_says(
    bus: Connection, partitioned_topics: dict[int, str]
) -> None:
    seed = random.SystemRandom().randrange(2**32)
    keys = student_keys(random.Random(seed), KEYS_PER_TOPIC)
    records = [
        (partitioned_topics[n], key.encode("utf-8"), f"event of {key}".encode())
        for n in PARTITION_COUNTS
        for key in keys
    ]
    expected = [
        partition_for(key, n) for n in PARTITION_COUNTS for key in (k.encode("utf-8") for k in keys)
    ]
    counts = [n for n in PARTITION_COUNTS for _ in keys]

    java = java_produce(bus, records)
    assert [topic for topic, _, _ in java] == [topic for topic, _, _ in records]
    java_wrong = [
        (records[i][1], counts[i], java[i][1], expected[i])
        for i in range(len(records))
        if java[i][1] != expected[i]
    ]
    assert not java_wrong, (
        f"seed {seed}: Java's default partitioner disagrees with partition_for for "
        f"{len(java_wrong)} records, e.g. (key, partitions, java, partition_for): {java_wrong[:5]}"
    )
    # every partition got some keys: the check above compared against real spread
    for n in PARTITION_COUNTS:
        used = {p for (topic, p, _) in java if topic == partitioned_topics[n]}
        assert used == set(range(n)), f"seed {seed}: {n} partitions, Java used {sorted(used)}"

    murmur = librdkafka_partitions(bus, records, "murmur2_random")
    murmur_wrong = [
        (records[i][1], counts[i], murmur[i], expected[i])
        for i in range(len(records))
        if murmur[i] != expected[i]
    ]
    assert not murmur_wrong, (
        f"seed {seed}: librdkafka murmur2_random disagrees with partition_for for "
        f"{len(murmur_wrong)} records, e.g. (key, partitions, librdkafka, partition_for): "
        f"{murmur_wrong[:5]}"
    )

    crc = librdkafka_partitions(bus, records, None)  # librdkafka's default: consistent_random
    for n in PARTITION_COUNTS:
        indexes = [i for i in range(len(records)) if counts[i] == n]
        share = sum(crc[i] != expected[i] for i in indexes) / len(indexes)
        print(
            f"{n:>2} partitions: CRC32 puts {share:.1%} of {len(indexes)} keys on another "
            "partition than murmur2"
        )
        assert share >= MIN_CRC32_MISMATCH, (
            f"seed {seed}: on {n} partitions only {share:.1%} of the keys moved under CRC32"
        )
