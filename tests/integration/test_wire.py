"""Our fastavro codec speaks the Confluent wire format both ways with confluent-kafka's own."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.config import Connection
from streams.kafka.wire import WireDecoder, WireEncoder, WireFormatError
from streams.policy.catalog import load_schema, schema_dir

pytestmark = pytest.mark.kafka


def _example(name: str) -> dict[str, object]:
    loaded: dict[str, object] = json.loads((schema_dir() / "examples" / name).read_text())
    return loaded


def test_encoder_output_decodes_with_confluent_deserializer(
    bus: Connection, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("wire")
    registry = SchemaRegistryClient(bus.registry_config())
    record = _example("student_record_changed.upsert.json")
    encoded = WireEncoder(registry, f"{topic}-value", load_schema("student_record_changed"))
    payload = encoded.encode(record)
    decoded = AvroDeserializer(registry)(payload, SerializationContext(topic, MessageField.VALUE))
    assert decoded["student_id"] == record["student_id"]
    assert decoded["names"] == record["names"]


def test_decoder_reads_confluent_serializer_output(
    bus: Connection, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("wire")
    registry = SchemaRegistryClient(bus.registry_config())
    schema = load_schema("consent_changed")
    record = _example("consent_changed.grant.json")
    payload = AvroSerializer(registry, json.dumps(schema))(
        record, SerializationContext(topic, MessageField.VALUE)
    )
    assert payload is not None
    assert WireDecoder(registry).decode(payload)["event_id"] == record["event_id"]


def test_garbage_is_a_wire_format_error(bus: Connection) -> None:
    decoder = WireDecoder(SchemaRegistryClient(bus.registry_config()))
    with pytest.raises(WireFormatError, match="magic byte"):
        decoder.decode(b"\x07\x00\x00\x00\x01hello")
    with pytest.raises(WireFormatError, match="fewer than 5 bytes"):
        decoder.decode(b"\x00")
    with pytest.raises(WireFormatError, match="unknown schema id 987654"):
        decoder.decode(b"\x00" + (987654).to_bytes(4, "big") + b"\x02")


def test_schema_dir_is_the_repository_copy(repo_root: Path) -> None:
    assert schema_dir() == repo_root / "schemas"
