"""The secure local runtime's configuration, without starting it: listeners, authorizer,
credentials through an argument file, the registry's client, and the mode a data dir keeps."""

from __future__ import annotations

import json
import shlex
import subprocess
from pathlib import Path

import pytest

from streams.local.broker import SECURE_BROKER_PROPERTIES, SECURE_TLS
from streams.local.errors import RuntimeProblem
from streams.local.security import (
    StackSecrets,
    admin_client_properties,
    java_argfile,
    registry_kafka_config,
    scram_format_args,
)
from streams.local.stack import LocalStack
from streams.security.acl_plan import REGISTRY_GROUP_PREFIX, REGISTRY_JOURNAL_TOPIC
from streams.security.client_settings import parse_properties

SECRETS = StackSecrets("admin-pw-0123456789", "-broker-pw-0123456789", "registry-pw-0123456789")


def broker_config(tls: bool) -> dict[str, str]:
    return parse_properties(
        SECURE_BROKER_PROPERTIES.format(
            kafka=30192,
            controller=30193,
            log_dir="/d/kafka",
            client_protocol="SASL_SSL" if tls else "SASL_PLAINTEXT",
            broker_user="hallpass-broker",
            broker_password=SECRETS.broker_password,
            admin_user="admin",
            tls=SECURE_TLS.format(tls_dir="/d/tls") if tls else "",
        )
    )


def test_the_broker_authenticates_and_denies_by_default() -> None:
    config = broker_config(tls=False)
    assert (
        config["listener.security.protocol.map"]
        == "CLIENT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
    )
    assert config["listener.name.client.sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert (
        config["authorizer.class.name"] == "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
    )
    assert config["allow.everyone.if.no.acl.found"] == "false"
    assert config["super.users"] == "User:admin;User:hallpass-broker"
    assert "ANONYMOUS" not in json.dumps(config)
    assert config["listeners"] == "CLIENT://127.0.0.1:30192,CONTROLLER://127.0.0.1:30193"
    assert "PLAINTEXT://" not in config["listeners"]


def test_the_controller_listener_needs_the_brokers_password() -> None:
    config = broker_config(tls=False)
    jaas = config["listener.name.controller.plain.sasl.jaas.config"]
    assert f'user_hallpass-broker="{SECRETS.broker_password}"' in jaas
    assert config["sasl.mechanism.controller.protocol"] == "PLAIN"


def test_tls_wraps_the_client_listener_with_the_local_ca() -> None:
    config = broker_config(tls=True)
    assert config["listener.security.protocol.map"].startswith("CLIENT:SASL_SSL,")
    assert (config["ssl.keystore.type"], config["ssl.keystore.location"]) == (
        "PEM",
        "/d/tls/broker.pem",
    )
    assert config["ssl.truststore.location"] == "/d/tls/ca.pem"


def test_scram_credentials_travel_in_an_argument_file() -> None:
    args = [
        "kafka.tools.StorageTool",
        "format",
        "-c",
        "/a dir/server.properties",
        *scram_format_args(SECRETS),
    ]
    text = java_argfile(args)
    assert shlex.split(text) == args  # one quoted argument a line, as the JVM reads them
    assert "SCRAM-SHA-512=[name=admin,iterations=8192,password=admin-pw-0123456789]" in args
    assert args.count("--add-scram") == 3


def test_admin_properties_use_librdkafka_names() -> None:
    assert admin_client_properties(SECRETS, None) == {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "admin",
        "sasl.password": SECRETS.admin_password,
    }
    with_tls = admin_client_properties(SECRETS, Path("/d/tls/ca.pem"))
    assert with_tls["security.protocol"] == "SASL_SSL"
    assert with_tls["ssl.ca.location"] == "/d/tls/ca.pem"


def test_the_registry_uses_its_own_principal_on_the_names_of_its_acls() -> None:
    config = registry_kafka_config(SECRETS, Path("/d/tls/ca.pem"))
    assert 'username="hallpass-registry"' in config["apicurio.kafka.common.sasl.jaas.config"]
    assert config["apicurio.kafka.common.security.protocol"] == "SASL_SSL"
    assert config["apicurio.kafka.common.ssl.truststore.location"] == "/d/tls/ca.pem"
    assert config["apicurio.kafkasql.topic"] == REGISTRY_JOURNAL_TOPIC
    assert config["apicurio.kafkasql.consumer.group-prefix"] == REGISTRY_GROUP_PREFIX


def test_secrets_are_redacted_from_messages() -> None:
    said = f"format failed: bad value {SECRETS.admin_password} and {SECRETS.broker_password}"
    assert SECRETS.redact(said) == "format failed: bad value *** and ***"
    fresh = StackSecrets.generate()
    assert len(set(fresh.values())) == 5 and all(len(v) >= 40 for v in fresh.values())


def _formatted(data_dir: Path) -> None:
    (data_dir / "kafka").mkdir(parents=True)
    (data_dir / "kafka" / "meta.properties").write_text("cluster.id=abc\n")


def test_secure_cannot_be_added_to_a_plaintext_data_dir(tmp_path: Path) -> None:
    _formatted(tmp_path)
    with pytest.raises(RuntimeProblem, match="formatted without --secure"):
        LocalStack(tmp_path, env={}, secure=True)._prepare_security()
    assert not (tmp_path / "security.json").exists()


def test_a_secure_data_dir_stays_secure(tmp_path: Path) -> None:
    first = LocalStack(tmp_path, env={}, secure=True)
    assert first._prepare_security() is None  # no TLS: no CA file
    assert (tmp_path / "security.json").stat().st_mode & 0o777 == 0o600
    _formatted(tmp_path)
    notes: list[str] = []
    again = LocalStack(tmp_path, env={}, progress=notes.append)  # no --secure this time
    again._prepare_security()
    assert again.secure and "formatted with --secure" in notes[0]
    assert again._secrets == first._secrets  # the credentials it was formatted with


def test_a_readable_secrets_file_is_refused(tmp_path: Path) -> None:
    LocalStack(tmp_path, env={}, secure=True)._prepare_security()
    (tmp_path / "security.json").chmod(0o644)
    with pytest.raises(RuntimeProblem, match="chmod 600"):
        LocalStack(tmp_path, env={})._prepare_security()


def test_formatting_keeps_the_passwords_off_the_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    stack = LocalStack(tmp_path, env={}, secure=True)
    stack._prepare_security()
    assert stack._secrets is not None
    secrets = stack._secrets
    # the SCRAM users' passwords (the registry's HTTP users are not broker users)
    passwords = (secrets.admin_password, secrets.broker_password, secrets.registry_password)
    seen: dict[str, object] = {}

    def fake_run(argv: list[str], **_kwargs: object) -> subprocess.CompletedProcess[str]:
        argfile = Path(next(a for a in argv if a.startswith("@"))[1:])
        seen.update(argv=argv, mode=argfile.stat().st_mode & 0o777, text=argfile.read_text())
        return subprocess.CompletedProcess(argv, 0, "", "")

    monkeypatch.setattr(subprocess, "run", fake_run)  # the module streams.local.stack runs it from
    stack._format_storage(Path("/usr/bin/java"), "/libs/*")
    command_line = " ".join(seen["argv"])  # type: ignore[arg-type]
    assert not any(p in command_line for p in passwords)
    assert all(p in str(seen["text"]) for p in passwords) and seen["mode"] == 0o600
    assert not list(tmp_path.glob("*.args"))  # the argument file is gone afterwards
    assert (tmp_path / "server.properties").stat().st_mode & 0o777 == 0o600
