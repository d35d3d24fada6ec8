"""The CLI as an operator meets it on a real cluster (issue 15): an unreachable broker or
registry is one bounded line, every client names its command, progress can be JSON lines,
and a Java/Confluent client.properties configures cluster and registry in one file."""

from __future__ import annotations

import json
import logging
import socket
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.commands.context import Context, progress
from streams.config import ENV_BOOTSTRAP, ENV_REGISTRY
from streams.security.client_settings import ClientSecurity, write_private
from streams.settings import RunFlags, settings_from

REPO = Path(__file__).resolve().parents[2]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    "args",
    [
        ["roundtrip"],
        ["contracts", "apply", "--contracts", str(REPO / "deploy" / "contracts")],
        ["disclosures", "--student", "NY-1"],
    ],
)
def test_an_unreachable_broker_is_one_line_within_the_connect_timeout(args: list[str]) -> None:
    port = closed_port()
    env = {ENV_BOOTSTRAP: f"127.0.0.1:{port}", ENV_REGISTRY: "http://127.0.0.1:9/x"}
    started = time.monotonic()
    result = CliRunner().invoke(main, ["--connect-timeout", "2", *args], env=env)
    assert time.monotonic() - started < 15
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    [line] = [x for x in result.output.splitlines() if x.strip()]
    assert line.startswith("Error: cannot reach Kafka at 127.0.0.1:") and str(port) in line
    assert "HALLPASS_BOOTSTRAP_SERVERS" in line


def test_clients_name_their_command_and_keep_librdkafka_quiet(tmp_path: Path) -> None:
    (tmp_path / "runtime.json").write_text(
        json.dumps(
            {
                "bootstrap_servers": "127.0.0.1:9092",
                "schema_registry_url": "http://127.0.0.1:8081/apis/ccompat/v7",
            }
        )
    )
    quiet = settings_from({}, data_dir=tmp_path, run=RunFlags(command="vendor")).connection()
    assert quiet.kafka_config()["client.id"] == "hallpass-vendor"
    assert quiet.kafka_config()["log_level"] == 0
    loud = settings_from({"HALLPASS_DEBUG": "1"}, data_dir=tmp_path).connection()
    assert loud.kafka_config()["log_level"] == 6


def test_progress_as_json_lines(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    Context(
        settings_from({}, data_dir=tmp_path, run=RunFlags(log_format="json", command="process"))
    )
    try:
        progress("processed 10 events")
        line = json.loads(capsys.readouterr().err)
        assert line["message"] == "processed 10 events" and line["level"] == "info"
        assert line["command"] == "hallpass-process" and line["ts"].endswith("+00:00")
    finally:
        Context(settings_from({}, data_dir=tmp_path))  # back to text for other tests


def test_a_bad_log_format_or_timeout_is_one_line() -> None:
    result = CliRunner().invoke(main, ["--log-format", "xml", "status"])
    assert result.exit_code == 2 and "xml" in result.output
    result = CliRunner().invoke(main, ["status"], env={"HALLPASS_CONNECT_TIMEOUT_S": "soon"})
    assert result.exit_code == 1 and "HALLPASS_CONNECT_TIMEOUT_S" in result.output


def test_one_java_client_properties_file_configures_cluster_and_registry(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    write_private(
        path,
        "\n".join(
            [
                "bootstrap.servers=kafka-0.example.org:9093",
                "security.protocol=SASL_SSL",
                "sasl.mechanism=SCRAM-SHA-512",
                "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                'username="learnwell" password="pw-of-learnwell";',
                "ssl.ca.location=/etc/hallpass/ca.pem",
                "schema.registry.url=https://registry.example.org/apis/ccompat/v7",
                "basic.auth.credentials.source=USER_INFO",
                "basic.auth.user.info=hallpass-reader:pw-of-reader",
                "schema.registry.ssl.ca.location=/etc/hallpass/registry-ca.pem",
            ]
        )
        + "\n",
    )
    settings = settings_from(
        {}, data_dir=tmp_path / "none", security=ClientSecurity(properties_file=path)
    )
    conn = settings.connection()
    assert conn.bootstrap_servers == "kafka-0.example.org:9093"
    assert conn.schema_registry_url == "https://registry.example.org/apis/ccompat/v7"
    kafka = conn.kafka_config()
    assert (kafka["sasl.username"], kafka["sasl.password"]) == ("learnwell", "pw-of-learnwell")
    assert "sasl.jaas.config" not in kafka and "schema.registry.url" not in kafka
    registry = conn.registry_config()
    assert registry["basic.auth.user.info"] == "hallpass-reader:pw-of-reader"
    assert registry["ssl.ca.location"] == "/etc/hallpass/registry-ca.pem"


def test_a_java_trust_store_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "client.properties"
    write_private(
        path,
        "bootstrap.servers=k:9093\nsecurity.protocol=SSL\n"
        "ssl.truststore.location=/etc/kafka/truststore.jks\n"
        "ssl.truststore.password=changeit\n",
    )
    result = CliRunner().invoke(
        main,
        ["--client-properties", str(path), "roundtrip"],
        env={ENV_REGISTRY: "", ENV_BOOTSTRAP: ""},
    )
    assert result.exit_code == 1
    assert "ssl.ca.location" in result.output and "changeit" not in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["contracts", "check", str(REPO / "deploy" / "contracts" / "learnwell.yaml")],
        ["contracts", "check", "/no/such/contracts"],
        ["contracts", "lock", "/no/such/contracts"],
        [
            "consent",
            "grant",
            "--student",
            "NY-1",
            "--district",
            "NY-280201",
            "--partner",
            "carewell-health",
            "--category",
            "special_medicl",
            "--granted-by",
            "guardian",
            "--guardian-id",
            "G-1",
            "--signed-at",
            "2026-08-28",
            "--method",
            "paper",
            "--document-ref",
            "scan-1",
        ],
        ["--data-dir", "/proc/no-such-dir", "vendor", "pull", "--partner", "learnwell"],
    ],
)
def test_a_users_mistake_is_one_message_not_a_traceback(args: list[str]) -> None:
    env = {ENV_BOOTSTRAP: f"127.0.0.1:{closed_port()}", ENV_REGISTRY: "http://127.0.0.1:9/x"}
    result = CliRunner().invoke(main, ["--connect-timeout", "1", *args], env=env)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Error:" in result.output and "Traceback" not in result.output


def test_library_logs_follow_the_log_format(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    Context(settings_from({}, data_dir=tmp_path, run=RunFlags(log_format="json")))
    try:
        logging.getLogger("hallpass.processor").info("restored %d table records", 12)
        line = json.loads(capsys.readouterr().err)
        assert (line["logger"], line["message"]) == (
            "hallpass.processor",
            "restored 12 table records",
        )
    finally:
        Context(settings_from({}, data_dir=tmp_path))
