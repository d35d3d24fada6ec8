"""Schema registry clients get their credentials and CA from the configuration, never from a
command line, and never show them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.config import (
    ENV_BOOTSTRAP,
    ENV_REGISTRY,
    ENV_REGISTRY_CA,
    ENV_REGISTRY_USER_INFO_FILE,
    NotConfiguredError,
    resolve_connection,
)
from streams.kafka.wire import RegistryAccessError, access_refused


def test_registry_credentials_and_ca_reach_every_registry_client(tmp_path: Path) -> None:
    user_info = tmp_path / "registry.userinfo"
    user_info.write_text("hallpass-processor:s3cret-registry-password\n")
    user_info.chmod(0o600)
    env = {
        ENV_BOOTSTRAP: "127.0.0.1:9092",
        ENV_REGISTRY: "https://127.0.0.1:8081/apis/ccompat/v7",
        ENV_REGISTRY_USER_INFO_FILE: str(user_info),
        ENV_REGISTRY_CA: "/etc/hallpass/ca.pem",
    }
    conn = resolve_connection(env, tmp_path)
    config = conn.registry_config()
    assert config["basic.auth.user.info"] == "hallpass-processor:s3cret-registry-password"
    assert config["ssl.ca.location"] == "/etc/hallpass/ca.pem"
    assert "s3cret" not in repr(conn)
    without_ca = {k: v for k, v in config.items() if k != "ssl.ca.location"}
    assert SchemaRegistryClient(without_ca) is not None  # settings confluent-kafka accepts


def test_no_registry_settings_without_configuration(tmp_path: Path) -> None:
    conn = resolve_connection({ENV_BOOTSTRAP: "b:1", ENV_REGISTRY: "http://r:2"}, tmp_path)
    assert conn.registry_config() == {"url": "http://r:2", "timeout": 15}


def test_a_malformed_credentials_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text("only-a-user\n")
    bad.chmod(0o600)
    with pytest.raises(NotConfiguredError, match="user:password"):
        resolve_connection(
            {
                ENV_BOOTSTRAP: "b:1",
                ENV_REGISTRY: "http://r:2",
                ENV_REGISTRY_USER_INFO_FILE: str(bad),
            },
            tmp_path,
        )


def test_a_readable_credentials_file_is_refused(tmp_path: Path) -> None:
    readable = tmp_path / "readable"
    readable.write_text("hallpass-reader:secret\n")
    readable.chmod(0o644)
    with pytest.raises(NotConfiguredError, match="chmod 600"):
        resolve_connection(
            {
                ENV_BOOTSTRAP: "b:1",
                ENV_REGISTRY: "http://r:2",
                ENV_REGISTRY_USER_INFO_FILE: str(readable),
            },
            tmp_path,
        )


@pytest.mark.parametrize(
    ("status", "said"),
    [(401, "did not accept the credentials"), (403, "does not allow this action")],
)
def test_a_refusing_registry_is_a_setting_to_fix_not_a_bad_record(status: int, said: str) -> None:
    refused = access_refused(SchemaRegistryError(status, 40100, "Unauthorized"))
    assert isinstance(refused, RegistryAccessError)
    assert said in str(refused) and ENV_REGISTRY_USER_INFO_FILE in str(refused)
    assert access_refused(SchemaRegistryError(404, 40403, "Schema not found")) is None
    assert access_refused(ValueError("bad bytes")) is None


def test_an_untrusted_registry_certificate_names_the_ca_setting() -> None:
    try:
        try:
            raise OSError("[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed")
        except OSError as inner:
            raise ConnectionError("connect failed") from inner
    except ConnectionError as outer:
        refused = access_refused(outer)
    assert isinstance(refused, RegistryAccessError) and ENV_REGISTRY_CA in str(refused)


def test_local_stack_ca_stays_when_only_the_credentials_come_from_the_environment(
    tmp_path: Path,
) -> None:
    (tmp_path / "runtime.json").write_text(
        json.dumps(
            {
                "bootstrap_servers": "127.0.0.1:9092",
                "schema_registry_url": "https://127.0.0.1:8081/apis/ccompat/v7",
                "registry_user_info": str(write_user_info(tmp_path / "own", "hallpass:own-secret")),
                "registry_ca": "/data/tls/ca.pem",
            }
        )
    )
    reader = write_user_info(tmp_path / "reader", "hallpass-reader:reader-secret")
    local = resolve_connection({}, tmp_path).registry_config()
    assert local["basic.auth.user.info"] == "hallpass:own-secret"
    assert local["ssl.ca.location"] == "/data/tls/ca.pem"
    vendor = resolve_connection(
        {ENV_REGISTRY_USER_INFO_FILE: str(reader)}, tmp_path
    ).registry_config()
    assert vendor["basic.auth.user.info"] == "hallpass-reader:reader-secret"
    assert vendor["ssl.ca.location"] == "/data/tls/ca.pem"


def write_user_info(path: Path, user_info: str) -> Path:
    path.write_text(user_info + "\n")
    path.chmod(0o600)
    return path
