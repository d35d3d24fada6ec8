"""Retention the law needs on any cluster: every setting each topic depends on is a topic-level
override on the real broker, so broker defaults (Kafka's 7-day retention, 24 h tombstones,
compaction choices) change nothing; existing topics with other settings are reported and
can be fixed."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ConfigSource,
    ResourceType,
)

from streams.config import Connection
from streams.kafka.admin import alter_topic_configs, ensure_topics
from streams.kafka.names import Topics, TopicSpec
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import load_contracts
from streams.policy.retention import DAY_MS, TopicSettings
from streams.processor.app import (
    apply_contracts,
    bus_topics,
    contract_topics,
    prefixed,
    topics_drift,
)

pytestmark = pytest.mark.kafka

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"
FOREVER = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}


def described(bus: Connection, names: list[str]) -> dict[str, dict[str, tuple[str, int]]]:
    """topic -> {key: (value, source)} as the broker reports it."""
    admin = AdminClient(bus.kafka_config())
    futures = admin.describe_configs(
        [ConfigResource(ResourceType.TOPIC, n) for n in names], request_timeout=30
    )
    return {
        resource.name: {k: (e.value, e.source) for k, e in future.result().items()}
        for resource, future in futures.items()
    }


def replication(bus: Connection, names: list[str]) -> dict[str, int]:
    found = AdminClient(bus.kafka_config()).list_topics(timeout=30).topics
    return {n: len(found[n].partitions[0].replicas) for n in names}


def test_every_topic_carries_its_retention_as_a_topic_override(
    bus: Connection, topics: Topics
) -> None:
    settings = TopicSettings(min_insync_replicas=1, tombstone_retention_days=45)
    contracts = prefixed(
        load_contracts(CONTRACTS, field_catalog(load_schema("student_record_changed"))), topics
    )
    ensure_topics(
        bus, bus_topics(3, topics, settings) + contract_topics(contracts, 3, topics, settings)
    )
    partners = [c.partner for c in contracts]
    expected: dict[str, dict[str, str]] = {
        topics.consent: FOREVER,
        topics.audit: FOREVER,
        **{topics.notices(p): FOREVER for p in partners},
        **{
            topics.partner(p): {
                "cleanup.policy": "compact",
                "delete.retention.ms": str(45 * DAY_MS),
            }
            for p in partners
        },
        topics.state: {"cleanup.policy": "compact"},
        topics.districts: {"cleanup.policy": "compact"},
        topics.changes: {
            "cleanup.policy": "delete",
            "retention.ms": str(7 * DAY_MS),
            "retention.bytes": "-1",
        },
        topics.changes_dlq: {
            "cleanup.policy": "delete",
            "retention.ms": str(14 * DAY_MS),
            "retention.bytes": "-1",
        },
        topics.repartition: {
            "cleanup.policy": "delete",
            "retention.ms": str(72 * 3_600_000),
            "retention.bytes": "-1",
        },
    }
    for want in expected.values():
        want["min.insync.replicas"] = "1"
    found = described(bus, list(expected))
    wrong = {
        (topic, key): found[topic][key]
        for topic, want in expected.items()
        for key, value in want.items()
        if found[topic][key] != (value, ConfigSource.DYNAMIC_TOPIC_CONFIG.value)
    }
    # each setting is the topic's own (DYNAMIC_TOPIC_CONFIG), not the broker's default
    assert wrong == {}
    # replication factor -1: the cluster's default (1 on the one-node test broker)
    assert set(replication(bus, list(expected)).values()) == {1}


def test_contracts_apply_reports_a_compacted_consent_topic_and_fix_sets_it_right(
    bus: Connection, topics: Topics
) -> None:
    # as `contracts apply` made it before: compacted consents, and a ledger with a 7-day
    # retention (what it had on a cluster with Kafka's default)
    ensure_topics(
        bus,
        [
            TopicSpec(topics.consent, 3, {"cleanup.policy": "compact"}),
            TopicSpec(topics.audit, 3, {"retention.ms": str(7 * DAY_MS)}),
        ],
    )
    notes: list[str] = []
    apply_contracts(bus, CONTRACTS, topics, note=notes.append)
    warned = "\n".join(n for n in notes if n.startswith("warning:"))
    assert f"{topics.consent}: cleanup.policy is compact, should be delete" in warned
    assert f"{topics.audit}: retention.ms" in warned
    assert "--add-config cleanup.policy=delete" in warned
    specs = bus_topics(3, topics)
    drifted = topics_drift(bus, specs)
    assert {d.topic for d in drifted} == {topics.consent, topics.audit}
    changes: dict[str, dict[str, str]] = {}
    for d in drifted:
        changes.setdefault(d.topic, {})[d.key] = d.want
    alter_topic_configs(bus, changes)
    assert topics_drift(bus, specs) == []
