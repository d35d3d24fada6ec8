"""Topic settings in one place: retention and cleanup per role with a reason, replication and
min.insync.replicas from configuration (never a hard-coded 1), drift of existing topics."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.kafka.names import DEFAULT_TOPICS, Topics
from streams.policy.retention import (
    DAY_MS,
    DEFAULT_TOPIC_SETTINGS,
    POLICIES,
    TopicDrift,
    TopicSettings,
    TopicSettingsError,
    drift,
    topic_settings_from,
)
from streams.processor.app import bus_topics, contract_topics
from tests.unit.test_strimzi import sample_contracts


def by_name(settings: TopicSettings = DEFAULT_TOPIC_SETTINGS) -> dict[str, dict[str, str]]:
    specs = bus_topics(3, DEFAULT_TOPICS, settings) + contract_topics(
        sample_contracts(), 3, DEFAULT_TOPICS, settings
    )
    return {s.name: dict(s.config) for s in specs}


def test_consents_ledger_notices_and_acks_are_kept_forever_and_never_compacted() -> None:
    config = by_name()
    forever = {"cleanup.policy": "delete", "retention.ms": "-1", "retention.bytes": "-1"}
    for name in ("consent.events", "audit.disclosures"):
        assert config[name] == forever, name
    for name in (
        "partner.learnwell.notices",
        "partner.measurely.notices",
        "partner.carewell-health.notices",
        "partner.learnwell.acks",
        "partner.measurely.acks",
        "partner.carewell-health.acks",
    ):
        assert config[name] == forever | {"compression.type": "gzip"}, name


def test_partner_topics_keep_tombstones_for_the_longest_vendor_outage() -> None:
    assert by_name()["partner.learnwell.students"] == {
        "cleanup.policy": "compact",
        "delete.retention.ms": str(30 * DAY_MS),
        "compression.type": "gzip",
    }
    longer = by_name(TopicSettings(tombstone_retention_days=60))
    assert longer["partner.learnwell.students"]["delete.retention.ms"] == str(60 * DAY_MS)


def test_changelogs_compact_and_raw_topics_have_a_bounded_retention() -> None:
    config = by_name()
    assert config["hallpass.processor.state"] == {"cleanup.policy": "compact"}
    assert config["hallpass.processor.districts"] == {"cleanup.policy": "compact"}
    # the DLQ replay markers (issue 16): one per replayed dead letter, the latest is enough
    assert config["sis.student.changes.dlq.replayed"] == {"cleanup.policy": "compact"}
    for name, days in (
        ("sis.student.changes", 7),
        ("sis.student.changes.dlq", 14),
        ("hallpass.processor.repartition", 3),
    ):
        assert config[name]["cleanup.policy"] == "delete"
        assert config[name]["retention.ms"] == str(days * DAY_MS), name


def test_vendors_read_gzip_and_nothing_else_is_recompressed() -> None:
    """gzip: the one codec every mainstream client (kafkajs too) reads without a plugin."""
    for name, config in by_name().items():
        vendor_reads = name.startswith("partner.")
        assert (config.get("compression.type") == "gzip") == vendor_reads, name


def test_every_topic_says_why_and_every_role_has_a_policy() -> None:
    specs = bus_topics(3, Topics("x.")) + contract_topics(sample_contracts(), 3, Topics("x."))
    assert all(s.why for s in specs)
    assert len({p.role for p in POLICIES}) == len(POLICIES)


def test_replication_comes_from_configuration_default_the_clusters() -> None:
    specs = bus_topics()
    assert {s.replication_factor for s in specs} == {-1}
    assert all("min.insync.replicas" not in s.config for s in specs)
    settings = topic_settings_from(
        {"HALLPASS_REPLICATION_FACTOR": "3", "HALLPASS_MIN_INSYNC_REPLICAS": "2"}
    )
    specs = bus_topics(3, DEFAULT_TOPICS, settings)
    assert {s.replication_factor for s in specs} == {3}
    assert {s.config["min.insync.replicas"] for s in specs} == {"2"}
    # a flag wins over the environment
    assert (
        topic_settings_from(
            {"HALLPASS_REPLICATION_FACTOR": "3"}, {"replication_factor": 5}
        ).replication_factor
        == 5
    )


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"HALLPASS_REPLICATION_FACTOR": "three"}, "HALLPASS_REPLICATION_FACTOR='three'"),
        ({"HALLPASS_REPLICATION_FACTOR": "0"}, "use -1"),
        (
            {"HALLPASS_REPLICATION_FACTOR": "2", "HALLPASS_MIN_INSYNC_REPLICAS": "3"},
            "no write could succeed",
        ),
        ({"HALLPASS_TOMBSTONE_RETENTION_DAYS": "0"}, "tombstone retention days"),
    ],
)
def test_bad_settings_say_what_to_use(env: dict[str, str], message: str) -> None:
    with pytest.raises(TopicSettingsError, match=message):
        topic_settings_from(env)


def test_cli_refuses_bad_settings_without_a_traceback() -> None:
    result = CliRunner().invoke(main, ["topics", "plan"], env={"HALLPASS_MIN_INSYNC_REPLICAS": "x"})
    assert result.exit_code == 1
    assert "HALLPASS_MIN_INSYNC_REPLICAS='x' is not a whole number" in result.stderr


def test_topics_plan_shows_settings_and_reasons() -> None:
    result = CliRunner().invoke(
        main,
        ["--tombstone-retention-days", "45", "topics", "plan"],
        env={"HALLPASS_TOPIC_PREFIX": ""},
    )
    assert result.exit_code == 0, result.output
    assert (
        "consent.events\n  replicas cluster default; cleanup.policy=delete "
        "retention.bytes=-1 retention.ms=-1" in result.stdout
    )
    assert f"delete.retention.ms={45 * DAY_MS}" in result.stdout
    assert "why: the record of disclosures" in result.stdout


def test_drift_names_each_differing_setting_and_its_fix() -> None:
    specs = bus_topics(3, DEFAULT_TOPICS, TopicSettings(replication_factor=3))
    configs = {
        "consent.events": {
            "cleanup.policy": "compact",
            "retention.ms": "604800000",
            "retention.bytes": "-1",
        },
        "audit.disclosures": {
            "cleanup.policy": "delete",
            "retention.ms": "-1",
            "retention.bytes": "-1",
        },
    }
    found = drift(specs, configs, {"consent.events": 3, "audit.disclosures": 1})
    assert found == [
        TopicDrift("consent.events", "cleanup.policy", "delete", "compact"),
        TopicDrift("consent.events", "retention.ms", "-1", "604800000"),
        TopicDrift("audit.disclosures", "replication.factor", "3", "1"),
    ]
    assert str(found[0]) == "consent.events: cleanup.policy is compact, should be delete"
    assert "--entity-name consent.events --add-config cleanup.policy=delete" in found[0].fix(
        "b:9092"
    )
    assert "kafka-reassign-partitions" in found[2].fix("b:9092")
