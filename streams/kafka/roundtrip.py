"""The foundation's main job: one Avro record through the registry and back."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.config import Connection

PROBE_SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Probe",
        "namespace": "org.hallpass.probe",
        "doc": "A record that checks the bus end to end.",
        "fields": [
            {"name": "probe_id", "type": "string"},
            {"name": "message", "type": "string"},
        ],
    }
)


@dataclass(frozen=True)
class RoundtripResult:
    record: dict[str, Any]
    schema_id: int
    offset: int


def avro_roundtrip(
    conn: Connection, topic: str, record: dict[str, Any], timeout_s: float = 30.0
) -> RoundtripResult:
    registry = SchemaRegistryClient(conn.registry_config())
    serializer = AvroSerializer(registry, PROBE_SCHEMA)
    deserializer = AvroDeserializer(registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    payload = serializer(record, ctx)
    assert payload is not None
    schema_id = int.from_bytes(payload[1:5], "big")

    producer = Producer(conn.kafka_config({"enable.idempotence": True}))
    delivered: list[tuple[int, int]] = []

    def on_delivery(err: Any, msg: Any) -> None:
        if err is not None:
            raise RuntimeError(f"delivery failed: {err}")
        delivered.append((msg.partition(), msg.offset()))

    producer.produce(topic, key=record["probe_id"].encode(), value=payload, on_delivery=on_delivery)
    if producer.flush(timeout_s) != 0 or not delivered:
        raise RuntimeError(f"the broker did not acknowledge the probe record within {timeout_s}s")
    partition, offset = delivered[0]

    from confluent_kafka import TopicPartition

    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": f"hallpass-roundtrip-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
            }
        )
    )
    try:
        consumer.assign([TopicPartition(topic, partition, offset)])
        msg = consumer.poll(timeout_s)
        if msg is None or msg.error():
            raise RuntimeError(f"could not read the probe record back from {topic}: {msg}")
        value = deserializer(msg.value(), ctx)
    finally:
        consumer.close()
    return RoundtripResult(record=dict(value), schema_id=schema_id, offset=offset)
