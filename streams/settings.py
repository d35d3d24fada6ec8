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

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from streams.config import Connection, ConnectionInputs, connect, data_dir_from
from streams.kafka.names import DEFAULT_TOPICS, ENV_TOPIC_PREFIX, Topics
from streams.kafka.reachability import DEFAULT_TIMEOUT_S as DEFAULT_CONNECT_TIMEOUT_S
from streams.kafka.reachability import ENV_CONNECT_TIMEOUT
from streams.local.artifacts import ENV_CACHE_DIR, ENV_JAVA_HOME, ENV_KAFKA_HOME
from streams.metrics import ENV_METRICS_ADDR
from streams.policy.input_limits import ENV_KNOWN_DISTRICTS, known_districts_from
from streams.policy.majority import ENV_AGE_OF_MAJORITY, MajorityAges, majority_ages_from
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
ENV_DEBUG = "HALLPASS_DEBUG"
ENV_LOG_FORMAT = "HALLPASS_LOG_FORMAT"
LOG_FORMATS = ("text", "json")
#: the address metrics are served on (the port is each command's ``--metrics-port``)
DEFAULT_METRICS_ADDR = "127.0.0.1"
#: where the local stack finds Java, Kafka and its download cache
LOCAL_STACK_VARIABLES = (
    ENV_CACHE_DIR,
    "XDG_CACHE_HOME",
    ENV_KAFKA_HOME,
    ENV_JAVA_HOME,
    "JAVA_HOME",
)


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
    #: how long a command waits for the broker or the registry to answer at all
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    #: librdkafka's own log lines on stderr (``--debug``)
    debug: bool = False
    #: progress and log lines as text or as JSON lines (``--log-format``)
    log_format: str = "text"
    #: ``client.id`` of the command's Kafka clients: ``hallpass-<command>``
    client_id: str = "hallpass"
    #: ``HALLPASS_KNOWN_DISTRICTS``: the districts the processor accepts records of (empty:
    #: any; streams.policy.input_limits)
    known_districts: frozenset[str] = frozenset()
    #: ``HALLPASS_AGE_OF_MAJORITY``: the age at which a student's consent rights pass from
    #: the guardians to the student (34 CFR 99.5), per district (default 18;
    #: streams.policy.majority)
    majority_ages: MajorityAges = field(default_factory=MajorityAges)

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
        admin, for a stack started with ``hallpass up --secure``). A Java/Confluent
        ``client.properties`` given as the properties file may also name the cluster and
        the registry (the environment's settings win)."""
        given = self.security.properties() if self.security.given else None
        java = self.security.client_file()
        inputs = self.connection_inputs
        if java is not None and not inputs.bootstrap_servers and not inputs.schema_registry_url:
            inputs = dataclasses.replace(
                inputs,
                bootstrap_servers=java.bootstrap_servers or "",
                schema_registry_url=java.schema_registry_url or "",
            )
        conn = connect(inputs, self.data_dir, client_properties=given)
        registry = {**(java.registry if java is not None else {}), **conn.registry_properties}
        return dataclasses.replace(
            conn,
            registry_properties=registry,
            client_id=self.client_id,
            log_level=6 if self.debug else 0,
        )


@dataclass(frozen=True)
class RunFlags:
    """The global flags about how a run behaves (None: not given, the variable decides)."""

    connect_timeout_s: float | None = None
    debug: bool | None = None
    log_format: str | None = None
    #: the subcommand run (names the clients: ``hallpass-<command>``)
    command: str | None = None


def settings_from(
    env: Mapping[str, str],
    *,
    data_dir: str | Path | None = None,
    security: ClientSecurity | None = None,
    replication_factor: int | None = None,
    min_insync_replicas: int | None = None,
    tombstone_retention_days: int | None = None,
    run: RunFlags | None = None,
) -> Settings:
    """The settings of the flags given (None: not given) and of ``env``; a flag wins over its
    variable. Raises :class:`~streams.policy.retention.TopicSettingsError` (a
    :class:`~streams.errors.HallpassError`) for a setting that cannot be used."""
    try:
        topics = Topics(env.get(ENV_TOPIC_PREFIX, "").strip())
    except ValueError as exc:
        raise TopicSettingsError(f"{ENV_TOPIC_PREFIX}: {exc}") from exc
    secrets = env.get(ENV_SECRETS_FILE, "").strip()
    run = run or RunFlags()
    return Settings(
        data_dir=data_dir_from(data_dir, env),
        security=security or ClientSecurity(),
        connection_inputs=ConnectionInputs.from_env(env),
        topics=topics,
        topic_settings=topic_settings_from(
            env,
            {
                "replication_factor": replication_factor,
                "min_insync_replicas": min_insync_replicas,
                "tombstone_retention_days": tombstone_retention_days,
            },
        ),
        secrets_file_setting=Path(secrets) if secrets else None,
        metrics_addr=env.get(ENV_METRICS_ADDR, "").strip() or DEFAULT_METRICS_ADDR,
        local_env={k: env[k] for k in LOCAL_STACK_VARIABLES if env.get(k)},
        connect_timeout_s=(
            run.connect_timeout_s
            if run.connect_timeout_s is not None
            else _positive_float(env, ENV_CONNECT_TIMEOUT, DEFAULT_CONNECT_TIMEOUT_S)
        ),
        debug=run.debug if run.debug is not None else env.get(ENV_DEBUG, "") not in ("", "0"),
        log_format=_log_format(run.log_format or env.get(ENV_LOG_FORMAT, "") or "text"),
        client_id=f"hallpass-{run.command}" if run.command else "hallpass",
        known_districts=known_districts_from(env.get(ENV_KNOWN_DISTRICTS)),
        majority_ages=majority_ages_from(env.get(ENV_AGE_OF_MAJORITY)),
    )


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise TopicSettingsError(f"{name}={raw!r}: give a number of seconds above 0")
    return value


def _log_format(value: str) -> str:
    if value not in LOG_FORMATS:
        raise TopicSettingsError(f"{ENV_LOG_FORMAT}={value!r}: use one of {', '.join(LOG_FORMATS)}")
    return value
