"""`hallpass up` after a crash of either JVM of the local stack (issue 16, finding 6): it
starts what is not running and leaves the rest; `status` names what is down; `down` stops
whatever is left. On a single-broker stack of its own (ports of tests/local_stack_helpers)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams.local.processes import pid_alive
from tests.local_stack_helpers import KAFKA_PORT, REGISTRY_PORT, OwnStack

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

SCHEMA = '{"type": "record", "name": "T", "fields": [{"name": "a", "type": "string"}]}'


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    own = OwnStack(tmp_path_factory.mktemp("recovery-stack"))
    own.up()
    try:
        yield own
    finally:
        own.down()


def _round_trip(stack: OwnStack, topic: str, value: bytes) -> None:
    conn = stack.conn
    producer = Producer(conn.kafka_config({"enable.idempotence": True}))
    producer.produce(topic, key=b"k", value=value)
    assert producer.flush(60) == 0
    consumer = Consumer(conn.kafka_config({"group.id": f"g-{topic}", "enable.auto.commit": False}))
    try:
        found = []
        for partition in range(3):
            tp = TopicPartition(topic, partition, 0)
            low, high = consumer.get_watermark_offsets(tp, timeout=30)
            if high > low:
                consumer.assign([tp])
                msg = consumer.poll(30)
                assert msg is not None and not msg.error()
                found.append(msg.value())
        assert found == [value]
    finally:
        consumer.close()


def test_up_after_the_broker_alone_crashed(stack: OwnStack) -> None:
    registry = SchemaRegistryClient({"url": stack.conn.schema_registry_url})
    schema_id = registry.register_schema("t.recovery-value", Schema(SCHEMA, "AVRO"))
    broker_pid = stack.kill_broker(1)
    registry_pid = stack.status()["registry"]["pid"]

    status = stack.status()
    assert status["running"] is False
    assert status["kafka"]["alive"] is False and status["registry"]["alive"] is True
    assert status["down"] == [f"Kafka broker 1 (port {KAFKA_PORT}, pid {broker_pid})"]
    text = stack.hallpass("status").stdout
    assert "NOT running: Kafka broker 1" in text and "hallpass up" in text

    restarted = stack.up()
    assert "Starting it again" in restarted.stderr
    status = stack.status()
    assert status["running"] is True and status["down"] == []
    assert status["registry"]["pid"] == registry_pid  # left alone
    assert status["kafka"]["pid"] != broker_pid
    _round_trip(stack, "t.after-broker-crash", b"after the broker crashed")
    again = SchemaRegistryClient({"url": stack.conn.schema_registry_url})
    assert again.get_schema(schema_id).schema_str is not None


def test_up_after_the_registry_alone_crashed(stack: OwnStack) -> None:
    registry = SchemaRegistryClient({"url": stack.conn.schema_registry_url})
    schema_id = registry.register_schema(
        "t.recovery2-value", Schema(SCHEMA.replace('"T"', '"T2"'), "AVRO")
    )
    broker_pid = stack.status()["kafka"]["pid"]
    registry_pid = stack.kill_registry()

    status = stack.status()
    assert status["running"] is False
    assert status["down"] == [f"the schema registry (port {REGISTRY_PORT}, pid {registry_pid})"]

    stack.up()
    status = stack.status()
    assert status["running"] is True
    assert status["kafka"]["pid"] == broker_pid  # left alone
    assert status["registry"]["pid"] != registry_pid
    fresh = SchemaRegistryClient({"url": stack.conn.schema_registry_url})
    assert "T2" in str(fresh.get_schema(schema_id).schema_str)  # kept in the KafkaSQL journal
    _round_trip(stack, "t.after-registry-crash", b"after the registry crashed")


def test_down_stops_what_is_left_and_up_starts_afresh(stack: OwnStack) -> None:
    broker_pid = stack.kill_broker(1)
    registry_pid = stack.status()["registry"]["pid"]
    stopped = stack.down()
    assert stopped.returncode == 0, stopped.stderr
    assert not pid_alive(registry_pid) and not pid_alive(broker_pid)
    assert "bootstrap_servers" not in stack.status()
    stack.up()
    assert stack.status()["running"] is True


def test_a_recorded_pid_of_another_program_is_not_the_stack(
    stack: OwnStack, tmp_path: Path
) -> None:
    """A pid recorded before a reboot may belong to another program since: not ours."""
    other = OwnStack(tmp_path)
    state = stack.data_dir / "runtime.json"
    (tmp_path / "runtime.json").write_text(state.read_text())  # pids of a data dir not ours
    status = other.status()
    assert status["running"] is False
    assert len(status["down"]) == 2
