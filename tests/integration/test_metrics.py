"""The processor's and a connector's metrics after a known input on the real broker: every
figure equals what the topics and the audit ledger hold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from connectors.partner.auditor import read_ledger
from connectors.simulation.stream import CHANGES_TOPIC, simulate
from connectors.source.publisher import EventPublisher
from streams.config import Connection
from streams.kafka.names import Topics
from streams.metrics import ConnectorMetrics
from streams.policy.catalog import field_catalog, load_schema
from streams.processor.app import apply_contracts, run_processor
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.kafka

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"
PARTNERS = ("carewell-health", "learnwell", "measurely")


def test_processor_metrics_equal_what_the_topics_and_ledger_hold(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    apply_contracts(bus, CONTRACTS, topics, secrets_file=tmp_path / "secrets.json")
    events = list(simulate(300, 7, 3, districts=2))
    connector = CollectorRegistry()
    publisher = EventPublisher(
        bus,
        {topics.changes: "student_record_changed", topics.consent: "consent_changed"},
        metrics=ConnectorMetrics(connector, "simulator"),
    )
    for event in events:
        publisher.publish(topics.name(event.topic), event.key, event.value)
    publisher.close()
    assert connector.get_sample_value(
        "hallpass_connector_records_published_total", {"connector": "simulator"}
    ) == len(events)

    registry = CollectorRegistry()
    state_sizes: list[float | None] = []  # the gauge after each batch (the state is dropped
    # when the worker leaves the group at the end)
    stats, handler = run_processor(
        bus,
        CONTRACTS,
        tmp_path / "secrets.json",
        until_idle=True,
        worker=0,
        note=lambda _m: None,
        topics=topics,
        metrics=registry,
        on_progress=lambda _s: state_sizes.append(
            registry.get_sample_value("hallpass_consent_state_students")
        ),
    )
    value = registry.get_sample_value
    changes = sum(1 for e in events if e.topic == CHANGES_TOPIC)
    consents = len(events) - changes
    assert value("hallpass_processor_events_consumed_total", {"topic": topics.changes}) == changes
    assert value("hallpass_processor_events_consumed_total", {"topic": topics.consent}) == consents
    assert value("hallpass_processor_transactions_total") == stats.transactions > 0
    assert value("hallpass_processor_latency_seconds_count") == len(events)
    assert (
        value("hallpass_processor_stage_seconds_count", {"stage": "commit"}) == stats.transactions
    )
    assert value("hallpass_dead_letters_total", {"reason": "undecodable"}) == 0

    ledger = [record for _key, record in read_ledger(bus, topics.audit)]
    # a partial retraction (fields withdrawn, the reduced view sent) is RETRACTED with the
    # fields it names; a whole one (a tombstone) names none
    decisions = Counter(
        (r["partner"], r["decision"])
        for r in ledger
        if r["decision"] != "RETRACTED" or not r["fields"]
    )
    withheld = Counter((r["partner"], r["reason"]) for r in ledger if r["decision"] == "WITHHELD")
    catalog = field_catalog(load_schema("student_record_changed"))
    for partner in PARTNERS:
        disclosed = value(
            "hallpass_partner_records_total", {"partner": partner, "action": "disclosed"}
        )
        assert disclosed == decisions[(partner, "DISCLOSED")]
        tombstones = sum(1 for r in read_topic(bus, topics.partner(partner)) if r.value is None)
        assert (
            value("hallpass_partner_records_total", {"partner": partner, "action": "retracted"})
            == tombstones
            == decisions[(partner, "RETRACTED")]
        )
        for (who, reason), n in withheld.items():
            if who == partner:
                assert (
                    value(
                        "hallpass_decisions_withheld_total", {"partner": partner, "reason": reason}
                    )
                    == n
                )
        # whatever the view, every never-share leaf is stripped from every disclosure
        never_share = Counter(i.category for i in catalog.values() if i.never_share)
        for category, leaves in never_share.items():
            stripped = value(
                "hallpass_fields_stripped_total", {"partner": partner, "category": category}
            )
            assert stripped is not None and stripped >= disclosed * leaves
    # measurely is not allowed medical data: every disclosure to it strips every medical leaf
    medical = sum(1 for i in catalog.values() if i.category == "special_medical")
    assert (
        value(
            "hallpass_fields_stripped_total",
            {"partner": "measurely", "category": "special_medical"},
        )
        == decisions[("measurely", "DISCLOSED")] * medical
        > 0
    )
    students_with_consent = {
        e.key for e in events if e.topic != CHANGES_TOPIC and e.value.get("student_id")
    }
    assert state_sizes[-1] == len(students_with_consent)
    assert sum(withheld.values()) > 0 and handler.counters.changes == changes
