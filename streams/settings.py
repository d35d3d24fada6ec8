"""The settings of one ``hallpass`` run, resolved once from the flags and the environment.

The CLI group builds a :class:`Settings` with :func:`settings_from` before any subcommand
runs and keeps it on the command context (:mod:`streams.commands.context`); every command
reads it there, and library code receives what it needs as parameters. Nothing here reads
the environment at import time: :func:`settings_from` takes the environment as a mapping.

Options of a single command that have an environment variable (``--contracts`` /
``HALLPASS_CONTRACTS_DIR``, ``--metrics-port`` / ``HALLPASS_METRICS_PORT``, the ports of
``up``, ``--consent-client-properties``) are resolved by click with that command's flags, in
the same order (flag, then environment, then default).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from streams.config import Connection, ConnectionInputs, connect, data_dir_from
from streams.kafka.names import DEFAULT_TOPICS, ENV_TOPIC_PREFIX, Topics
from streams.local.artifacts import ENV_CACHE_DIR, ENV_JAVA_HOME, ENV_KAFKA_HOME
from streams.metrics import ENV_METRICS_ADDR
from streams.policy.retention import (
    DEFAULT_TOPIC_SETTINGS,
    TopicSettings,
    TopicSettingsError,
    topic_settings_from,
)
from streams.security.client_settings import ClientSecurity

#: the pseudonym secrets of the partners (JSON ``{partner: hex}``, mode 600)
ENV_SECRETS_FILE = "HALLPASS_PARTNER_SECRETS_FILE"
SECRETS_FILE_NAME = "partner-secrets.json"
#: the address metrics are served on (the port is each command's ``--metrics-port``)
DEFAULT_METRICS_ADDR = "127.0.0.1"
#: where the local stack finds Java, Kafka and its download cache
LOCAL_STACK_VARIABLES = (ENV_CACHE_DIR, "XDG_CACHE_HOME", ENV_KAFKA_HOME, ENV_JAVA_HOME,
                         "JAVA_HOME")


@dataclass(frozen=True)
class Settings:
    """Everything a command needs to know about where and how it runs."""

    data_dir: Path
    #: how Kafka clients authenticate (the global security flags and their variables)
    security: ClientSecurity = field(default_factory=ClientSecurity)
    #: an existing cluster and the schema registry's credentials and CA
    connection_inputs: ConnectionInputs = field(default_factory=ConnectionInputs)
    #: topic, subject and processor group names, under ``HALLPASS_TOPIC_PREFIX``
    topics: Topics = DEFAULT_TOPICS
    #: replication, min.insync.replicas and retentions of the topics the bus creates
    topic_settings: TopicSettings = DEFAULT_TOPIC_SETTINGS
    #: ``HALLPASS_PARTNER_SECRETS_FILE``; None: ``<data dir>/partner-secrets.json``
    secrets_file_setting: Path | None = None
    metrics_addr: str = DEFAULT_METRICS_ADDR
    #: the variables of :data:`LOCAL_STACK_VARIABLES` that are set (the local stack's tools)
    local_env: Mapping[str, str] = field(default_factory=dict)

    @property
    def secrets_file(self) -> Path:
        """The partners' pseudonym secrets: ``HALLPASS_PARTNER_SECRETS_FILE``, else
        ``<data dir>/partner-secrets.json``."""
        return self.secrets_file_setting or self.data_dir / SECRETS_FILE_NAME

    def external_connection(self) -> Connection | None:
        """The existing cluster the environment names, or None (then: the local runtime)."""
        return self.connection_inputs.external()

    def connection(self) -> Connection:
        """The bus, as the principal of the given client settings (else the local stack's
        admin, for a stack started with ``hallpass up --secure``)."""
        given = self.security.properties() if self.security.given else None
        return connect(self.connection_inputs, self.data_dir, client_properties=given)


def settings_from(
    env: Mapping[str, str],
    *,
    data_dir: str | Path | None = None,
    security: ClientSecurity | None = None,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    tombstone_retention_days: int | None = None,
) -> Settings:
    """The settings of the flags given (None: not given) and of ``env``; a flag wins over its
    variable. Raises :class:`~streams.policy.retention.TopicSettingsError` (a
    :class:`~streams.errors.HallpassError`) for a setting that cannot be used."""
    try:
        topics = Topics(env.get(ENV_TOPIC_PREFIX, "").strip())
    except ValueError as exc:
        raise TopicSettingsError(f"{ENV_TOPIC_PREFIX}: {exc}") from exc
    secrets = env.get(ENV_SECRETS_FILE, "").strip()
    return Settings(
        data_dir=data_dir_from(data_dir, env),
        security=security or ClientSecurity(),
        connection_inputs=ConnectionInputs.from_env(env),
        topics=topics,
        topic_settings=topic_settings_from(env, {
            "replication_factor": replication_factor,
            "min_insync_replicas": min_insync_replicas,
            "tombstone_retention_days": tombstone_retention_days}),
        secrets_file_setting=Path(secrets) if secrets else None,
        metrics_addr=env.get(ENV_METRICS_ADDR, "").strip() or DEFAULT_METRICS_ADDR,
        local_env={k: env[k] for k in LOCAL_STACK_VARIABLES if env.get(k)},
    )
