"""What the foundation promises, on the real broker and registry."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext

from streams.config import Connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import TopicSpec

pytestmark = pytest.mark.kafka

STUDENT_V1 = {
    "type": "record",
    "name": "Student",
    "namespace": "t.hallpass",
    "fields": [
        {"name": "student_id", "type": "string"},
        {"name": "grade_level", "type": ["null", "string"], "default": None},
    ],
}


def _read_all(
    conn: Connection, topic: str, isolation: str, expect_at_most: int
) -> list[bytes | None]:
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": f"t-{uuid.uuid4()}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "isolation.level": isolation,
            }
        )
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes | None] = []
    try:
        # read until the end of the partition (the broker tells us with a partition EOF)
        while True:
            msg = consumer.poll(5.0)
            if msg is None:
                break
            if msg.error():
                break
            values.append(msg.value())
            if len(values) > expect_at_most:
                break
    finally:
        consumer.close()
    return values


def test_avro_record_round_trips_through_the_registry(
    bus: Connection, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("avro")
    registry = SchemaRegistryClient(bus.registry_config())
    serializer = AvroSerializer(registry, json.dumps(STUDENT_V1))
    deserializer = AvroDeserializer(registry)
    ctx = SerializationContext(topic, MessageField.VALUE)
    record = {"student_id": "NY-000123", "grade_level": "07"}

    producer = Producer(bus.kafka_config({"enable.idempotence": True}))
    producer.produce(topic, key=b"NY-000123", value=serializer(record, ctx))
    assert producer.flush(30) == 0

    consumer = Consumer(
        bus.kafka_config({"group.id": unique_name("g"), "auto.offset.reset": "earliest"})
    )
    consumer.subscribe([topic])
    try:
        msg = None
        for _ in range(60):
            msg = consumer.poll(1.0)
            if msg is not None and not msg.error():
                break
        assert msg is not None and not msg.error()
        value = msg.value()
        # Confluent wire format: magic byte, then the schema id
        assert value is not None and value[0] == 0
        assert deserializer(value, ctx) == record
    finally:
        consumer.close()
    latest = registry.get_latest_version(f"{topic}-value")
    assert latest.schema.schema_str is not None
    assert json.loads(latest.schema.schema_str)["name"] == "Student"


def test_read_committed_sees_committed_transactions_only(
    bus: Connection, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("tx")
    ensure_topics(bus, [TopicSpec(topic, partitions=1)])
    producer = Producer(bus.kafka_config({"transactional.id": unique_name("txid")}))
    producer.init_transactions(30)

    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed-1")
    producer.produce(topic, key=b"k", value=b"committed-2")
    producer.commit_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"aborted")
    producer.flush(30)
    producer.abort_transaction(30)

    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"committed-3")
    producer.commit_transaction(30)

    committed = _read_all(bus, topic, "read_committed", expect_at_most=10)
    assert committed == [b"committed-1", b"committed-2", b"committed-3"]
    uncommitted = _read_all(bus, topic, "read_uncommitted", expect_at_most=10)
    assert b"aborted" in uncommitted


def test_registry_enforces_backward_compatibility(
    bus: Connection, unique_name: Callable[[str], str]
) -> None:
    subject = unique_name("compat") + "-value"
    registry = SchemaRegistryClient(bus.registry_config())
    registry.register_schema(subject, Schema(json.dumps(STUDENT_V1), "AVRO"))

    compatible = dict(
        STUDENT_V1,
        fields=[
            *STUDENT_V1["fields"],
            {"name": "homeroom", "type": ["null", "string"], "default": None},
        ],
    )
    assert registry.test_compatibility(subject, Schema(json.dumps(compatible), "AVRO"))
    registry.register_schema(subject, Schema(json.dumps(compatible), "AVRO"))

    # a new required field without a default cannot read the old data: BACKWARD-incompatible
    incompatible = dict(
        STUDENT_V1, fields=[*STUDENT_V1["fields"], {"name": "gpa", "type": "double"}]
    )
    assert not registry.test_compatibility(subject, Schema(json.dumps(incompatible), "AVRO"))
    with pytest.raises(SchemaRegistryError) as refused:
        registry.register_schema(subject, Schema(json.dumps(incompatible), "AVRO"))
    assert refused.value.http_status_code == 409
    assert registry.get_versions(subject) == [1, 2]
