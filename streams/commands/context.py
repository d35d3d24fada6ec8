"""The object every subcommand receives: the run's :class:`~streams.settings.Settings`,
resolved once by the ``hallpass`` group, and on demand the connection they name."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import click

from streams.config import Connection
from streams.kafka.names import Topics
from streams.kafka.reachability import check_broker, check_registry
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import Contract, load_contracts
from streams.policy.retention import TopicSettings
from streams.settings import Settings


class Context:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._checked: tuple[Connection, bool] | None = None
        global _LOG_FORMAT, _COMMAND
        _LOG_FORMAT, _COMMAND = settings.log_format, settings.client_id
        _route_library_logs(settings.log_format)

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def topic_settings(self) -> TopicSettings:
        """Replication, min.insync.replicas and retentions of the topics the bus creates: the
        global flags, else HALLPASS_REPLICATION_FACTOR and the like, else the defaults (the
        cluster's replication)."""
        return self.settings.topic_settings

    def connection(self, registry: bool = True) -> Connection:
        """The bus, as the principal of the given client settings (else the local stack's
        admin, for a stack started with ``hallpass up --secure``).

        Once per command the broker (and, with ``registry``, the schema registry) must answer
        within ``--connect-timeout``, or the command stops with one line that names the
        address and the setting to check."""
        conn = self.settings.connection()
        if self._checked != (conn, registry) and self._checked != (conn, True):
            timeout = self.settings.connect_timeout_s
            check_broker(conn.kafka_config(), timeout)
            if registry:
                check_registry(conn.registry_config(), timeout)
            self._checked = (conn, registry)
        return conn

    @staticmethod
    def valid_contracts(directory: Path) -> list[Contract]:
        """The contracts of ``directory``, checked before the bus is asked anything: a
        contract that cannot be used is said first (one line), not after a connection."""
        return load_contracts(directory, field_catalog(load_schema("student_record_changed")))

    def topics(self) -> Topics:
        """Topic names, under ``HALLPASS_TOPIC_PREFIX`` when set."""
        return self.settings.topics

    def secrets_file(self, given: Path | None = None) -> Path:
        """The partners' pseudonym secrets: ``--partner-secrets``, else
        ``HALLPASS_PARTNER_SECRETS_FILE``, else ``<data dir>/partner-secrets.json``."""
        return given or self.settings.secrets_file


pass_context = click.make_pass_decorator(Context)


_LOG_FORMAT = "text"
_COMMAND = "hallpass"


class _JsonLines(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return json.dumps(
            {
                "ts": datetime.fromtimestamp(record.created, UTC).isoformat(
                    timespec="milliseconds"
                ),
                "level": record.levelname.lower(),
                "command": _COMMAND,
                "logger": record.name,
                "message": record.getMessage(),
            }
        )


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler this module installs (found again, and replaced, per command run)."""


def _route_library_logs(log_format: str) -> None:
    """The library's own log records (``hallpass.*`` loggers: the processor's restores, the
    metrics server) go to stderr from INFO on, as text or JSON lines like progress."""
    logger = logging.getLogger("hallpass")
    for old in [h for h in logger.handlers if isinstance(h, _StderrHandler)]:
        logger.removeHandler(old)
    handler = _StderrHandler()
    handler.setFormatter(_JsonLines() if log_format == "json" else logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def progress(message: str, level: str = "info") -> None:
    """Progress lines go to stderr so that stdout stays machine-readable; with
    ``--log-format json`` one JSON object a line (time, level, command, message), for a log
    collector."""
    if _LOG_FORMAT == "json":
        click.echo(
            json.dumps(
                {
                    "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
                    "level": level,
                    "command": _COMMAND,
                    "message": message,
                }
            ),
            err=True,
        )
    else:
        click.echo(message, err=True)
