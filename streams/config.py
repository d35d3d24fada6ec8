"""Connection settings, resolved once into frozen objects.

Where the bus is comes from, in order: explicit flags, the environment
(``HALLPASS_BOOTSTRAP_SERVERS`` / ``HALLPASS_SCHEMA_REGISTRY_URL``), then the local runtime
started by ``hallpass up`` in the data dir. How a client authenticates comes from the client
security settings the user gave (``streams.security.client_settings``), else, for a local
runtime started with ``--secure``, from the admin's ``admin.properties`` that ``up`` recorded.
Nothing here reads the environment at import time.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from streams.errors import HallpassError
from streams.security.client_settings import (
    ClientSettingsError,
    read_properties,
    read_secret_file,
)

#: librdkafka configuration as confluent-kafka types it
ConfigValue = str | int | float | bool
KafkaConfig = dict[str, ConfigValue]

ENV_BOOTSTRAP = "HALLPASS_BOOTSTRAP_SERVERS"
ENV_REGISTRY = "HALLPASS_SCHEMA_REGISTRY_URL"
ENV_DATA_DIR = "HALLPASS_DATA_DIR"
#: a file holding the schema registry credentials as ``user:password`` (mode 600)
ENV_REGISTRY_USER_INFO_FILE = "HALLPASS_SCHEMA_REGISTRY_USER_INFO_FILE"
#: the CA certificate (PEM) that signed the registry's TLS certificate
ENV_REGISTRY_CA = "HALLPASS_SCHEMA_REGISTRY_CA_LOCATION"
DEFAULT_DATA_DIR = ".hallpass"
RUNTIME_STATE_FILE = "runtime.json"


class NotConfiguredError(HallpassError, RuntimeError):
    """No bus to talk to: neither the environment nor a running local stack names one."""


@dataclass(frozen=True)
class Connection:
    """Where the Kafka cluster and the schema registry are, and how to authenticate.

    ``client_properties`` (librdkafka names: security.protocol, sasl.*, ssl.*) go to every
    confluent-kafka client; they may hold a password, so they are left out of ``repr``.
    """

    bootstrap_servers: str
    schema_registry_url: str
    client_properties: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: schema registry client settings (``basic.auth.user.info``, ``ssl.ca.location``): they
    #: may hold a password, so they are left out of ``repr``
    registry_properties: Mapping[str, str] = field(default_factory=dict, repr=False)
    #: ``client.id`` of every client (``hallpass-<command>[-<worker>]``): the broker's logs,
    #: quotas and request metrics name the command that made a request
    client_id: str = "hallpass"
    #: librdkafka's own log lines (connection retries and the like): 0, none, unless a
    #: command runs with ``--debug`` (6: informational)
    log_level: int = 0

    def kafka_config(self, extra: Mapping[str, ConfigValue] | None = None) -> KafkaConfig:
        """librdkafka configuration for confluent-kafka clients, with ``extra`` on top."""
        config: KafkaConfig = {
            "bootstrap.servers": self.bootstrap_servers,
            "client.id": self.client_id,
            "log_level": self.log_level,
        }
        config.update(self.client_properties)
        config.update(extra or {})
        return config

    def registry_config(self) -> dict[str, str | int]:
        """Settings of every schema registry client: where, how long to wait, and the
        credentials and CA the configuration gave."""
        # a timeout turns a request the registry never answers into a retried error
        # (confluent-kafka retries transport errors), instead of an endless wait
        config: dict[str, str | int] = {"url": self.schema_registry_url, "timeout": 15}
        config.update(self.registry_properties)
        return config


@dataclass(frozen=True)
class ConnectionInputs:
    """What the user said about the bus, before the local runtime is consulted: an existing
    cluster (both addresses, or neither) and the schema registry's credentials file and CA."""

    bootstrap_servers: str = ""
    schema_registry_url: str = ""
    #: a file holding the registry credentials as ``user:password`` (mode 600)
    registry_user_info_file: str = ""
    #: the CA certificate (PEM) that signed the registry's TLS certificate
    registry_ca: str = ""

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ConnectionInputs:
        """``HALLPASS_BOOTSTRAP_SERVERS``, ``HALLPASS_SCHEMA_REGISTRY_URL``,
        ``HALLPASS_SCHEMA_REGISTRY_USER_INFO_FILE`` and ``HALLPASS_SCHEMA_REGISTRY_CA_LOCATION``
        of ``env``."""
        return cls(
            env.get(ENV_BOOTSTRAP, "").strip(),
            env.get(ENV_REGISTRY, "").strip(),
            env.get(ENV_REGISTRY_USER_INFO_FILE, "").strip(),
            env.get(ENV_REGISTRY_CA, "").strip(),
        )

    def registry_properties(self) -> dict[str, str]:
        """Schema registry client settings: credentials from the file
        ``registry_user_info_file`` names (``user:password``, never the value itself), the CA
        from ``registry_ca``."""
        out: dict[str, str] = {}
        path = self.registry_user_info_file
        if path:
            try:
                user_info = read_secret_file(Path(path), "schema registry credentials file")
            except ClientSettingsError as exc:
                raise NotConfiguredError(f"{ENV_REGISTRY_USER_INFO_FILE}: {exc}") from exc
            if ":" not in user_info:
                raise NotConfiguredError(
                    f"{ENV_REGISTRY_USER_INFO_FILE}: {path} must hold user:password on one line"
                )
            out["basic.auth.user.info"] = user_info
        if self.registry_ca:
            out["ssl.ca.location"] = self.registry_ca
        return out

    def external(self) -> Connection | None:
        """An existing cluster named by these inputs, or None."""
        bootstrap, registry = self.bootstrap_servers, self.schema_registry_url
        if not bootstrap and not registry:
            return None
        if not bootstrap or not registry:
            missing = ENV_REGISTRY if bootstrap else ENV_BOOTSTRAP
            raise NotConfiguredError(
                f"{ENV_BOOTSTRAP} and {ENV_REGISTRY} go together: set {missing} as well "
                "(or unset both to use the local runtime of `hallpass up`)"
            )
        return Connection(bootstrap_servers=bootstrap, schema_registry_url=registry.rstrip("/"))


def registry_settings(env: Mapping[str, str]) -> dict[str, str]:
    """Schema registry client settings from the environment: credentials from the file
    ``HALLPASS_SCHEMA_REGISTRY_USER_INFO_FILE`` names (``user:password``, never the value in
    the environment itself), the CA from ``HALLPASS_SCHEMA_REGISTRY_CA_LOCATION``."""
    return ConnectionInputs.from_env(env).registry_properties()


def data_dir_from(value: str | os.PathLike[str] | None, env: Mapping[str, str]) -> Path:
    """The data dir: the flag, else ``HALLPASS_DATA_DIR``, else ``.hallpass`` in the cwd."""
    if value is not None:
        return Path(value).resolve()
    return Path(env.get(ENV_DATA_DIR, DEFAULT_DATA_DIR)).resolve()


def external_connection(env: Mapping[str, str]) -> Connection | None:
    """An existing cluster named by the environment, or None."""
    return ConnectionInputs.from_env(env).external()


def local_connection(data_dir: Path) -> Connection | None:
    """The connection recorded by ``hallpass up`` in ``data_dir``, or None; for a stack
    started with ``--secure``, with the admin's client properties and hallpass's registry
    credentials (and the local CA for a registry on HTTPS)."""
    state_file = data_dir / RUNTIME_STATE_FILE
    try:
        state = json.loads(state_file.read_text())
    except (OSError, ValueError):
        return None
    admin_properties = str(state.get("admin_properties") or "")
    registry: dict[str, str] = {}
    user_info_file = str(state.get("registry_user_info") or "")
    if user_info_file:
        registry = ConnectionInputs(
            registry_user_info_file=user_info_file, registry_ca=str(state.get("registry_ca") or "")
        ).registry_properties()
    return Connection(
        bootstrap_servers=str(state["bootstrap_servers"]),
        schema_registry_url=str(state["schema_registry_url"]),
        client_properties=(
            read_properties(Path(admin_properties), "admin properties file")
            if admin_properties
            else {}
        ),
        registry_properties=registry,
    )


def resolve_connection(
    env: Mapping[str, str],
    data_dir: Path,
    bootstrap_servers: str | None = None,
    schema_registry_url: str | None = None,
    client_properties: Mapping[str, str] | None = None,
) -> Connection:
    """:func:`connect` with the inputs of ``env`` (scripts and benchmarks; the CLI resolves
    its :class:`~streams.settings.Settings` once and calls :func:`connect`)."""
    return connect(
        ConnectionInputs.from_env(env),
        data_dir,
        bootstrap_servers,
        schema_registry_url,
        client_properties,
    )


def connect(
    inputs: ConnectionInputs,
    data_dir: Path,
    bootstrap_servers: str | None = None,
    schema_registry_url: str | None = None,
    client_properties: Mapping[str, str] | None = None,
) -> Connection:
    """The one place that decides which cluster a command talks to, and as whom.

    ``client_properties`` are the security settings the user gave; when given they replace
    the local stack's admin properties as a whole (never mixed, so that one principal's name
    never travels with another's password). None: the local stack's, if any.
    """
    registry = inputs.registry_properties()
    if bootstrap_servers and schema_registry_url:
        return Connection(
            bootstrap_servers,
            schema_registry_url.rstrip("/"),
            dict(client_properties or {}),
            registry,
        )
    found = inputs.external() or local_connection(data_dir)
    if found is None:
        raise NotConfiguredError(
            f"no Kafka to talk to: nothing runs under {data_dir} and {ENV_BOOTSTRAP} is not set. "
            "Start the local bus with `hallpass up` (or set "
            f"{ENV_BOOTSTRAP} and {ENV_REGISTRY} for an existing cluster)."
        )
    return Connection(
        bootstrap_servers=bootstrap_servers or found.bootstrap_servers,
        schema_registry_url=(schema_registry_url or found.schema_registry_url).rstrip("/"),
        client_properties=(
            found.client_properties if client_properties is None else dict(client_properties)
        ),
        # the environment's registry settings on top of the local stack's (its CA stays
        # when only the credentials are given)
        registry_properties={**found.registry_properties, **registry},
    )
