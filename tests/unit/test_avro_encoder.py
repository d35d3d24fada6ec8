"""The generated Avro writer (issue 17) writes fastavro's bytes, and takes, refuses and
validates exactly what fastavro does: any value it does not take goes to fastavro."""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Mapping
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.simulation.stream import simulate
from streams.kafka.avro_writer import SchemaEncoder, _varint
from streams.policy.catalog import load_schema
from tests.unit.strategies import records_of, student_schemas

PREFIX = b"\x00\x00\x00\x00\x07"
#: values put anywhere in a record: other types, edge numbers, tuple notation, bad UTF-8
ODD: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    2**31,
    2**63,
    2**70,
    1.5,
    float("nan"),
    "x",
    "UPSERT",
    "\udc80",
    b"x",
    [],
    ["x"],
    ("x", "y"),
    {},
    {"-type": "other"},
    dt.date(2024, 2, 29),
    dt.datetime(2024, 2, 29, 12, 30, tzinfo=dt.UTC),
)


def fastavro_bytes(parsed: Any, record: Any) -> bytes:
    out = io.BytesIO()
    out.write(PREFIX)
    fastavro.schemaless_writer(out, parsed, record)
    return out.getvalue()


def fastavro_valid(parsed: Any, record: Any) -> bool:
    try:
        return bool(validate(record, parsed, raise_errors=False))
    except (ValueError, TypeError):
        return False


def outcome(encode: Any, record: Any) -> bytes | type[BaseException]:
    try:
        return bytes(encode(record))
    except Exception as exc:
        return type(exc)


def paths(value: Any, keys: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The key paths of every value inside ``value`` (dict keys, list positions)."""
    found: list[tuple[Any, ...]] = [keys] if keys else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += paths(v, (*keys, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += paths(v, (*keys, i))
    return found


def replaced(value: Any, keys: tuple[Any, ...], new: Any) -> Any:
    if not keys:
        return new
    copy: Any = dict(value) if isinstance(value, dict) else list(value)
    copy[keys[0]] = replaced(value[keys[0]], keys[1:], new)
    return copy


@pytest.mark.parametrize("stem", ["student_record_changed", "consent_changed"])
def test_the_schemas_the_publishers_use_are_specialised(stem: str) -> None:
    assert SchemaEncoder(load_schema(stem)).specialised


def test_simulated_events_are_fastavros_bytes() -> None:
    encoders = {
        topic: SchemaEncoder(load_schema(stem), PREFIX)
        for topic, stem in (
            ("sis.student.changes", "student_record_changed"),
            ("consent.events", "consent_changed"),
        )
    }
    for event in simulate(200, 2014, 2, districts=2):
        encoder = encoders[event.topic]
        assert encoder.fast(event.value) is not None  # the fast path takes them all
        assert encoder.encode(event.value) == fastavro_bytes(encoder.parsed, event.value)


@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_random_records_are_fastavros_bytes(data: st.DataObject) -> None:
    schema = data.draw(student_schemas())
    encoder = SchemaEncoder(schema, PREFIX)
    assert encoder.specialised
    record = data.draw(records_of(schema))
    assert encoder.encode(record) == fastavro_bytes(encoder.parsed, record)
    assert encoder.valid(record)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_odd_value_anywhere_is_taken_or_refused_as_fastavro_does(
    data: st.DataObject,
) -> None:
    schema = data.draw(student_schemas())
    encoder = SchemaEncoder(schema, PREFIX)
    record = data.draw(records_of(schema))
    keys = data.draw(st.sampled_from(paths(record)))
    odd = replaced(record, keys, data.draw(st.sampled_from(ODD)))
    if data.draw(st.booleans()):
        odd = replaced(odd, keys[:1], None) if len(keys) > 1 else odd
    expected = outcome(lambda r: fastavro_bytes(encoder.parsed, r), odd)
    assert outcome(encoder.encode, odd) == expected
    assert encoder.valid(odd) == fastavro_valid(encoder.parsed, odd)
    fast = encoder.fast(odd)
    if fast is not None:  # what the fast path takes, fastavro takes and validates
        assert fast == expected
        assert fastavro_valid(encoder.parsed, odd)


def test_a_missing_field_without_default_is_fastavros_error() -> None:
    schema = load_schema("student_record_changed")
    encoder = SchemaEncoder(schema, PREFIX)
    record: dict[str, Any] = next(
        e.value for e in simulate(5, 1, 0) if e.topic == "sis.student.changes"
    )
    broken = {k: v for k, v in record.items() if k != "student_id"}
    assert encoder.fast(broken) is None
    assert not encoder.valid(broken)
    with pytest.raises((ValueError, TypeError)):
        encoder.encode(broken)


def test_a_schema_it_does_not_cover_is_fastavros_throughout() -> None:
    schema: Mapping[str, Any] = {
        "type": "record",
        "name": "R",
        "fields": [{"name": "f", "type": ["int", "string"]}],
    }
    encoder = SchemaEncoder(schema)
    assert not encoder.specialised
    assert encoder.encode({"f": "a"}) == fastavro_bytes(encoder.parsed, {"f": "a"})[5:]
    assert encoder.valid({"f": 1}) and not encoder.valid({"f": 1.5})


@pytest.mark.parametrize(
    "n", [0, 1, -1, 63, -64, 64, 8191, 8192, 2**20, 2**31 - 1, -(2**31), 2**63 - 1, -(2**63)]
)
def test_varints_are_avros(n: int) -> None:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, {"type": "long"}, n)
    assert _varint(n) == out.getvalue()
