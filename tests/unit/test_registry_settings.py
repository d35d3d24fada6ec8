"""Schema registry clients get their credentials and CA from the configuration, never from a
command line, and never show them."""

from __future__ import annotations

from pathlib import Path

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import (
    ENV_BOOTSTRAP,
    ENV_REGISTRY,
    ENV_REGISTRY_CA,
    ENV_REGISTRY_USER_INFO_FILE,
    NotConfiguredError,
    resolve_connection,
)


def test_registry_credentials_and_ca_reach_every_registry_client(tmp_path: Path) -> None:
    user_info = tmp_path / "registry.userinfo"
    user_info.write_text("hallpass-processor:s3cret-registry-password\n")
    user_info.chmod(0o600)
    env = {ENV_BOOTSTRAP: "127.0.0.1:9092", ENV_REGISTRY: "https://127.0.0.1:8081/apis/ccompat/v7",
           ENV_REGISTRY_USER_INFO_FILE: str(user_info), ENV_REGISTRY_CA: "/etc/hallpass/ca.pem"}
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
    with pytest.raises(NotConfiguredError, match="user:password"):
        resolve_connection({ENV_BOOTSTRAP: "b:1", ENV_REGISTRY: "http://r:2",
                            ENV_REGISTRY_USER_INFO_FILE: str(bad)}, tmp_path)
