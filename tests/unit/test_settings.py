"""The settings of a run: built once from the flags and the environment (no broker here)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.config import ConnectionInputs, NotConfiguredError
from streams.kafka.names import DEFAULT_TOPICS, Topics
from streams.policy.retention import DEFAULT_TOPIC_SETTINGS, TopicSettingsError
from streams.security.client_settings import ClientSecurity
from streams.settings import Settings, settings_from

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
#: a port nothing listens on: commands that need the bus fail, those that do not, do not
CLOSED = {
    "HALLPASS_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "HALLPASS_SCHEMA_REGISTRY_URL": "http://127.0.0.1:1",
}


def test_defaults_with_an_empty_environment(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    settings = settings_from({})
    assert settings.data_dir == tmp_path / ".hallpass"
    assert settings.topics == DEFAULT_TOPICS
    assert settings.topic_settings == DEFAULT_TOPIC_SETTINGS
    assert settings.secrets_file == tmp_path / ".hallpass" / "partner-secrets.json"
    assert settings.metrics_addr == "127.0.0.1"
    assert settings.connection_inputs == ConnectionInputs()
    assert settings.external_connection() is None
    assert settings.local_env == {}


def test_every_variable_is_read(tmp_path: Path) -> None:
    env = {
        "HALLPASS_DATA_DIR": str(tmp_path / "data"),
        "HALLPASS_TOPIC_PREFIX": " district7. ",
        "HALLPASS_PARTNER_SECRETS_FILE": str(tmp_path / "secrets.json"),
        "HALLPASS_METRICS_ADDR": "0.0.0.0",  # noqa: S104 - a value under test
        "HALLPASS_REPLICATION_FACTOR": "3",
        "HALLPASS_MIN_INSYNC_REPLICAS": "2",
        "HALLPASS_TOMBSTONE_RETENTION_DAYS": "40",
        "HALLPASS_BOOTSTRAP_SERVERS": "kafka:9092",
        "HALLPASS_SCHEMA_REGISTRY_URL": "http://registry:8081/",
        "HALLPASS_SCHEMA_REGISTRY_CA_LOCATION": "/etc/ca.pem",
        "HALLPASS_CACHE_DIR": "/cache",
        "JAVA_HOME": "/jdk",
        "UNRELATED": "x",
    }
    settings = settings_from(env)
    assert settings.data_dir == tmp_path / "data"
    assert settings.topics == Topics("district7.")
    assert settings.secrets_file == tmp_path / "secrets.json"
    assert settings.metrics_addr == "0.0.0.0"  # noqa: S104
    assert (
        settings.topic_settings.replication_factor,
        settings.topic_settings.min_insync_replicas,
        settings.topic_settings.tombstone_retention_days,
    ) == (3, 2, 40)
    external = settings.external_connection()
    assert external is not None
    assert (external.bootstrap_servers, external.schema_registry_url) == (
        "kafka:9092",
        "http://registry:8081",
    )
    assert settings.connection().registry_config()["ssl.ca.location"] == "/etc/ca.pem"
    assert settings.local_env == {"HALLPASS_CACHE_DIR": "/cache", "JAVA_HOME": "/jdk"}


def test_flags_win_over_the_environment(tmp_path: Path) -> None:
    security = ClientSecurity(sasl_username="alice")
    settings = settings_from(
        {"HALLPASS_DATA_DIR": "/elsewhere", "HALLPASS_REPLICATION_FACTOR": "3"},
        data_dir=tmp_path,
        security=security,
        replication_factor=1,
    )
    assert settings.data_dir == tmp_path
    assert settings.security is security
    assert settings.topic_settings.replication_factor == 1


@pytest.mark.parametrize(
    ("env", "says"),
    [
        ({"HALLPASS_TOPIC_PREFIX": "a/b"}, "HALLPASS_TOPIC_PREFIX"),
        ({"HALLPASS_REPLICATION_FACTOR": "three"}, "HALLPASS_REPLICATION_FACTOR='three'"),
    ],
)
def test_a_setting_that_cannot_be_used_is_refused(env: dict[str, str], says: str) -> None:
    with pytest.raises(TopicSettingsError, match=says):
        settings_from(env)


def test_half_an_external_cluster_is_refused_when_connecting(tmp_path: Path) -> None:
    settings = settings_from({"HALLPASS_BOOTSTRAP_SERVERS": "kafka:9092"}, data_dir=tmp_path)
    with pytest.raises(NotConfiguredError, match="HALLPASS_SCHEMA_REGISTRY_URL"):
        settings.connection()


def test_settings_are_frozen(tmp_path: Path) -> None:
    settings = Settings(tmp_path)
    with pytest.raises(AttributeError):
        settings.data_dir = Path("/")  # type: ignore[misc]


# -- the CLI takes its settings from the context --------------------------------------------


def test_the_group_resolves_the_settings_once(tmp_path: Path) -> None:
    seen: list[Settings] = []

    import click

    from streams.commands.context import Context, pass_context

    @click.command("probe")
    @pass_context
    def probe(ctx: Context) -> None:
        seen.append(ctx.settings)

    main.add_command(probe)
    try:
        result = CliRunner().invoke(
            main,
            ["--data-dir", str(tmp_path), "--replication-factor", "2", "probe"],
            env={"HALLPASS_TOPIC_PREFIX": "d9.", "HALLPASS_PARTNER_SECRETS_FILE": "/s.json"},
        )
    finally:
        main.commands.pop("probe")
    assert result.exit_code == 0, result.output
    [settings] = seen
    assert settings.data_dir == tmp_path
    assert settings.topics.prefix == "d9."
    assert settings.topic_settings.replication_factor == 2
    assert settings.secrets_file == Path("/s.json")


def test_topics_plan_names_the_prefixed_topics() -> None:
    result = CliRunner().invoke(
        main,
        ["topics", "plan", "--contracts", str(CONTRACTS)],
        env={"HALLPASS_TOPIC_PREFIX": "d9."},
    )
    assert result.exit_code == 0, result.output
    names = [line for line in result.stdout.splitlines() if not line.startswith(" ")]
    assert names and all(name.startswith("d9.") for name in names)


def test_status_names_the_cluster_of_the_environment(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["--data-dir", str(tmp_path), "status", "--json"], env=CLOSED)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["bootstrap_servers"] == "127.0.0.1:1"
