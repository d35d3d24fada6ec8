"""Client security settings: files, flags and environment become librdkafka properties;
secrets only from private files; the local secure stack's admin is used by itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from streams.cli import main
from streams.config import Connection, local_connection, resolve_connection
from streams.security.client_settings import (
    ClientSecurity,
    ClientSettingsError,
    parse_properties,
    redacted,
    write_private,
)

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"
ADMIN = {
    "security.protocol": "SASL_SSL",
    "sasl.mechanism": "SCRAM-SHA-512",
    "sasl.username": "admin",
    "sasl.password": "s3cret-admin-password",
    "ssl.ca.location": "/data/tls/ca.pem",
}


def private(path: Path, text: str) -> Path:
    write_private(path, text)
    return path


def test_properties_files_parse_like_java_properties() -> None:
    text = (
        "# comment\n! also a comment\n\nsecurity.protocol = SASL_SSL\n"
        "sasl.username: learnwell\nbootstrap.servers=host:9092\nsasl.password=a=b:c\n"
    )
    assert parse_properties(text) == {
        "security.protocol": "SASL_SSL",
        "sasl.username": "learnwell",
        "bootstrap.servers": "host:9092",
        "sasl.password": "a=b:c",
    }
    with pytest.raises(ClientSettingsError, match="f:2: expected key=value"):
        parse_properties("a=b\nnot a property\n", "f")


def test_written_files_are_private_from_the_start(tmp_path: Path) -> None:
    path = private(tmp_path / "admin.properties", "x=1\n")
    assert path.stat().st_mode & 0o777 == 0o600
    private(path, "x=2\n")  # replacing keeps it private
    assert path.stat().st_mode & 0o777 == 0o600 and path.read_text() == "x=2\n"


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o440, 0o640])
def test_a_file_only_its_owner_and_group_read_is_accepted(tmp_path: Path, mode: int) -> None:
    """0440 with fsGroup is how Kubernetes mounts a Secret into a pod."""
    path = private(
        tmp_path / "vendor.properties",
        "security.protocol=SASL_SSL\nsasl.username=v\nsasl.password=x\n",
    )
    path.chmod(mode)
    assert ClientSecurity(properties_file=path).properties()["sasl.password"] == "x"


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o444, 0o620])
def test_a_file_others_can_read_is_refused_with_the_fix(tmp_path: Path, mode: int) -> None:
    path = private(tmp_path / "vendor.properties", "sasl.password=x\n")
    path.chmod(mode)
    with pytest.raises(ClientSettingsError) as refused:
        ClientSecurity(properties_file=path).properties()
    assert f"chmod 600 {path}" in str(refused.value)


def test_a_readable_password_file_is_refused(tmp_path: Path) -> None:
    password = tmp_path / "pw"
    password.write_text("correct horse battery\n")
    password.chmod(0o644)
    settings = ClientSecurity(
        security_protocol="SASL_SSL", sasl_username="learnwell", sasl_password_file=password
    )
    with pytest.raises(ClientSettingsError, match=f"chmod 600 {password}"):
        settings.properties()


def test_single_settings_override_the_file(tmp_path: Path) -> None:
    base = private(tmp_path / "admin.properties", "".join(f"{k}={v}\n" for k, v in ADMIN.items()))
    password = private(tmp_path / "pw", "learnwell-password\n")
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    props = ClientSecurity(
        properties_file=base,
        sasl_username="learnwell",
        sasl_password_file=password,
        ssl_ca_location=ca,
    ).properties()
    assert props == {
        **ADMIN,
        "sasl.username": "learnwell",
        "sasl.password": "learnwell-password",
        "ssl.ca.location": str(ca),
    }


def test_a_sasl_user_without_a_mechanism_uses_scram(tmp_path: Path) -> None:
    password = private(tmp_path / "pw", "learnwell-password\n")
    props = ClientSecurity(
        security_protocol="SASL_PLAINTEXT", sasl_username="learnwell", sasl_password_file=password
    ).properties()
    assert props["sasl.mechanism"] == "SCRAM-SHA-512"


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        ({"security_protocol": "SASL_SSL", "sasl_username": "x"}, "give sasl.password"),
        ({"security_protocol": "PLAINTEXT", "sasl_username": "x", "pw": True}, "SASL_PLAINTEXT"),
        ({"security_protocol": "TLS"}, "use one of"),
    ],
)
def test_settings_that_cannot_work_are_refused(
    tmp_path: Path, settings: dict[str, object], reason: str
) -> None:
    password = private(tmp_path / "pw", "some-password\n") if settings.pop("pw", None) else None
    with pytest.raises(ClientSettingsError, match=reason):
        ClientSecurity(sasl_password_file=password, **settings).properties()  # type: ignore[arg-type]


def test_nothing_given_means_nothing_read() -> None:
    assert not ClientSecurity().given
    assert ClientSecurity().properties() == {}


def _secure_runtime(data_dir: Path, admin_properties: Path) -> None:
    data_dir.mkdir(exist_ok=True)
    (data_dir / "runtime.json").write_text(
        json.dumps(
            {
                "bootstrap_servers": "127.0.0.1:30192",
                "schema_registry_url": "http://127.0.0.1:30181/apis/ccompat/v7",
                "secure": True,
                "tls": True,
                "admin_properties": str(admin_properties),
            }
        )
    )


def test_the_local_secure_stack_is_used_as_its_admin(tmp_path: Path) -> None:
    admin = private(tmp_path / "admin.properties", "".join(f"{k}={v}\n" for k, v in ADMIN.items()))
    _secure_runtime(tmp_path, admin)
    conn = local_connection(tmp_path)
    assert conn is not None and dict(conn.client_properties) == ADMIN
    assert conn.kafka_config()["sasl.username"] == "admin"


def test_given_settings_replace_the_admins_as_a_whole(tmp_path: Path) -> None:
    admin = private(tmp_path / "admin.properties", "".join(f"{k}={v}\n" for k, v in ADMIN.items()))
    _secure_runtime(tmp_path, admin)
    vendor = {
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.username": "learnwell",
        "sasl.password": "vendor-password-1",
    }
    conn = resolve_connection({}, tmp_path, client_properties=vendor)
    assert dict(conn.client_properties) == vendor  # nothing of the admin's mixed in


def test_a_plaintext_stack_has_no_client_properties(tmp_path: Path) -> None:
    (tmp_path / "runtime.json").write_text(
        json.dumps(
            {
                "bootstrap_servers": "127.0.0.1:9092",
                "schema_registry_url": "http://127.0.0.1:8081/apis/ccompat/v7",
            }
        )
    )
    conn = local_connection(tmp_path)
    assert conn is not None and conn.kafka_config() == {
        "bootstrap.servers": "127.0.0.1:9092",
        "client.id": "hallpass",
        "log_level": 0,
    }


def test_a_connection_never_shows_its_password() -> None:
    conn = Connection("b:9092", "http://r", ADMIN)
    assert ADMIN["sasl.password"] not in repr(conn) and ADMIN["sasl.password"] not in str(conn)
    assert redacted(ADMIN)["sasl.password"] == "***"


def test_the_cli_refuses_a_readable_properties_file(tmp_path: Path) -> None:
    props = private(tmp_path / "vendor.properties", "sasl.password=x\n")
    props.chmod(0o644)
    result = CliRunner().invoke(
        main,
        [
            "--data-dir",
            str(tmp_path),
            "--client-properties",
            str(props),
            "acl",
            "apply",
            "--contracts",
            str(CONTRACTS),
        ],
        env={},
    )
    assert result.exit_code == 1
    assert f"chmod 600 {props}" in result.output
    assert "Traceback" not in result.output


def test_help_offers_no_password_flag() -> None:
    result = CliRunner().invoke(main, ["--help"])
    assert "--sasl-password-file" in result.output and "HALLPASS_CLIENT_PROPERTIES" in result.output
    assert "--sasl-password " not in result.output and "--password " not in result.output


def test_a_readable_admin_properties_file_is_refused(tmp_path: Path) -> None:
    admin = private(tmp_path / "admin.properties", "sasl.password=x\n")
    admin.chmod(0o644)
    _secure_runtime(tmp_path, admin)
    with pytest.raises(ClientSettingsError, match="chmod 600"):
        local_connection(tmp_path)
