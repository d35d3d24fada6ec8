"""The processor's state follows the input's partitioning, and a mismatch stops it cleanly."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient

from streams.config import Connection
from streams.kafka.admin import ensure_topics, partition_counts
from streams.kafka.names import Topics, TopicSpec
from streams.processor.app import ProcessorSetupError, apply_contracts, check_copartitioned

pytestmark = pytest.mark.kafka

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"


def test_state_changelog_gets_as_many_partitions_as_the_change_topic(
    bus: Connection, topics: Topics
) -> None:
    ensure_topics(bus, [TopicSpec(topics.changes, 6)])
    check_copartitioned(bus, topics)
    counts = partition_counts(bus, [topics.changes, topics.consent, topics.state, topics.districts])
    assert counts == {topics.changes: 6, topics.consent: 6, topics.state: 6, topics.districts: 1}


def test_inputs_not_copartitioned_is_a_clear_error(bus: Connection, topics: Topics) -> None:
    apply_contracts(bus, CONTRACTS, topics)  # creates the bus topics with 3 partitions
    drop_and_recreate(bus, topics.consent, 4)
    with pytest.raises(ProcessorSetupError, match="as many partitions"):
        check_copartitioned(bus, topics)


def drop_and_recreate(bus: Connection, topic: str, partitions: int) -> None:
    admin = AdminClient(bus.kafka_config())
    for future in admin.delete_topics([topic], operation_timeout=30).values():
        future.result()
    for _ in range(50):
        try:
            if ensure_topics(bus, [TopicSpec(topic, partitions)]):
                return
        except KafkaException:  # the deletion may still be in progress
            pass
        time.sleep(0.2)
    raise AssertionError(f"could not recreate {topic}")


def test_contracts_apply_after_the_inputs_exist_follows_their_partitions(
    bus: Connection, topics: Topics
) -> None:
    ensure_topics(bus, [TopicSpec(topics.changes, 4), TopicSpec(topics.consent, 4)])
    apply_contracts(bus, CONTRACTS, topics)
    check_copartitioned(bus, topics)  # does not raise
    assert partition_counts(bus, [topics.state])[topics.state] == 4
