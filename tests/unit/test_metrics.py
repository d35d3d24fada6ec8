"""The metrics code alone: exact values after known counts, names and labels as documented."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

import pytest
from prometheus_client import CollectorRegistry

from streams.errors import HallpassError
from streams.metrics import (
    ConnectorMetrics,
    ProcessorCollector,
    ProcessorSources,
    ProcessorTimings,
    build_info,
    register_build_info,
    serve_metrics,
)
from streams.policy.catalog import field_catalog, load_schema
from streams.processor.app import stripped_by_category


@dataclass
class FakeCounts:
    disclosed: dict[str, int] = field(default_factory=dict)
    withheld: dict[tuple[str, str], int] = field(default_factory=dict)
    retracted: dict[tuple[str, str], int] = field(default_factory=dict)
    narrowed: dict[tuple[str, str], int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    repartitioned: int = 0


def _collector_registry(counts: FakeCounts) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(
        ProcessorCollector(
            ProcessorSources(
                counts=lambda: counts,
                consumed_by_topic=lambda: {"sis.student.changes": 120, "consent.events": 7},
                transactions=lambda: 3,
                last_commit_unix=lambda: 1_790_000_000.5,
                consent_students=lambda: 5,
                stripped_per_disclosure={
                    "learnwell": {"special_medical": 4, "assessment": 2},
                    "measurely": {"student_name": 3},
                },
            )
        )
    )
    return registry


def test_processor_collector_reports_the_handlers_counts_exactly() -> None:
    counts = FakeCounts(
        disclosed={"learnwell": 10},
        withheld={("measurely", "parent_opt_out_all"): 2, ("learnwell", "district_opt_out"): 1},
        retracted={("learnwell", "parent_opt_out_all"): 1, ("learnwell", "student_deleted"): 2},
        unchanged={"learnwell": 5},
        narrowed={("carewell-health", "CONSENT_REVOKED"): 3},
        dead_letters_by_reason={"undecodable": 4, "future_dated": 1},
        skipped={"stale": 2, "duplicate": 3},
        repartitioned=7,
    )
    reg = _collector_registry(counts)
    value = reg.get_sample_value
    assert value("hallpass_dead_letters_total", {"reason": "future_dated"}) == 1
    assert value("hallpass_decisions_unchanged_total", {"partner": "learnwell"}) == 5
    assert value("hallpass_decisions_unchanged_total", {"partner": "measurely"}) == 0
    assert (
        value(
            "hallpass_partial_retractions_total",
            {"partner": "carewell-health", "reason": "CONSENT_REVOKED"},
        )
        == 3
    )
    assert value("hallpass_changes_skipped_total", {"reason": "stale"}) == 2
    assert value("hallpass_changes_skipped_total", {"reason": "duplicate"}) == 3
    assert value("hallpass_processor_repartitioned_total") == 7
    assert (
        value("hallpass_processor_events_consumed_total", {"topic": "sis.student.changes"}) == 120
    )
    assert (
        value("hallpass_partner_records_total", {"partner": "learnwell", "action": "disclosed"})
        == 10
    )
    assert (
        value("hallpass_partner_records_total", {"partner": "learnwell", "action": "retracted"})
        == 3
    )
    # a partner known from its contract shows zero before its first record
    assert (
        value("hallpass_partner_records_total", {"partner": "measurely", "action": "disclosed"})
        == 0
    )
    assert (
        value(
            "hallpass_decisions_withheld_total",
            {"partner": "measurely", "reason": "parent_opt_out_all"},
        )
        == 2
    )
    assert (
        value(
            "hallpass_partner_retractions_total",
            {"partner": "learnwell", "reason": "student_deleted"},
        )
        == 2
    )
    assert (
        value(
            "hallpass_fields_stripped_total",
            {"partner": "learnwell", "category": "special_medical"},
        )
        == 40
    )
    assert (
        value(
            "hallpass_fields_stripped_total", {"partner": "measurely", "category": "student_name"}
        )
        == 0
    )
    assert value("hallpass_dead_letters_total", {"reason": "undecodable"}) == 4
    assert value("hallpass_dead_letters_total", {"reason": "invalid"}) == 0
    assert value("hallpass_processor_transactions_total") == 3
    assert value("hallpass_processor_last_commit_timestamp_seconds") == 1_790_000_000.5
    assert value("hallpass_consent_state_students") == 5


def test_collector_reads_counts_at_scrape_time() -> None:
    counts = FakeCounts()
    reg = _collector_registry(counts)
    assert (
        reg.get_sample_value(
            "hallpass_partner_records_total", {"partner": "learnwell", "action": "disclosed"}
        )
        == 0
    )
    counts.disclosed["learnwell"] = 7
    assert (
        reg.get_sample_value(
            "hallpass_partner_records_total", {"partner": "learnwell", "action": "disclosed"}
        )
        == 7
    )


def test_no_label_names_a_student() -> None:
    reg = _collector_registry(FakeCounts(disclosed={"learnwell": 1}))
    ProcessorTimings(reg)
    allowed = {"topic", "partner", "action", "reason", "category", "stage", "le", "service"}
    for family in reg.collect():
        for sample in family.samples:
            assert set(sample.labels) <= allowed, (family.name, sample.labels)


def test_timings_observe_end_to_end_latency_per_message_and_stages_per_batch() -> None:
    reg = CollectorRegistry()
    timings = ProcessorTimings(reg)
    committed = 1_000_000.0
    timings.observe_batch(
        [int(committed * 1000) - 200, int(committed * 1000) - 3000, -1],
        handle_s=0.02,
        produce_s=0.01,
        commit_s=0.3,
        committed_unix=committed,
    )
    value = reg.get_sample_value
    # the record without a timestamp (-1) is not observed
    assert value("hallpass_processor_latency_seconds_count") == 2
    assert value("hallpass_processor_latency_seconds_sum") == pytest.approx(3.2)
    assert value("hallpass_processor_latency_seconds_bucket", {"le": "0.25"}) == 1
    assert value("hallpass_processor_latency_seconds_bucket", {"le": "5.0"}) == 2
    assert value("hallpass_processor_stage_seconds_sum", {"stage": "commit"}) == pytest.approx(0.3)


def test_connector_metrics_count_reads_publishes_unchanged_and_rejects_by_reason() -> None:
    reg = CollectorRegistry()
    metrics = ConnectorMetrics(reg, "oneroster")
    metrics.read(10)
    metrics.published(6)
    metrics.unchanged(2)
    metrics.rejected("users.csv", "birthDate")
    metrics.rejected("users.csv", "birthDate")
    metrics.rejected("enrollments.csv", "*")
    value = reg.get_sample_value
    assert value("hallpass_connector_rows_read_total", {"connector": "oneroster"}) == 10
    assert value("hallpass_connector_records_published_total", {"connector": "oneroster"}) == 6
    assert value("hallpass_connector_records_unchanged_total", {"connector": "oneroster"}) == 2
    assert (
        value(
            "hallpass_connector_rows_rejected_total",
            {"connector": "oneroster", "reason": "users.csv:birthDate"},
        )
        == 2
    )
    assert (
        value(
            "hallpass_connector_rows_rejected_total",
            {"connector": "oneroster", "reason": "enrollments.csv:*"},
        )
        == 1
    )


def test_stripped_by_category_counts_every_leaf_a_view_leaves_out() -> None:
    catalog = field_catalog(load_schema("student_record_changed"))
    kept = ["student_id", "names.first_name"]
    counts = stripped_by_category(catalog, kept)
    assert sum(counts.values()) == len(catalog) - 2
    names = sum(1 for info in catalog.values() if info.category == "student_name")
    assert counts["student_name"] == names - 1


def test_a_taken_port_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(HallpassError, match="--metrics-port"):
            serve_metrics(CollectorRegistry(), port)


def test_port_zero_serves_nothing() -> None:
    assert serve_metrics(CollectorRegistry(), 0) is None


def test_every_served_registry_says_which_release_runs() -> None:
    registry = CollectorRegistry()
    register_build_info(registry)
    register_build_info(registry)  # twice: still one series
    info = build_info()
    assert registry.get_sample_value("hallpass_build_info", info) == 1
    assert info["version"] != "" and info["librdkafka"].count(".") >= 2
    assert sum(1 for m in registry.collect() for _ in m.samples) == 1
