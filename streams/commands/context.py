"""The object every subcommand receives: the run's :class:`~streams.settings.Settings`,
resolved once by the ``hallpass`` group, and on demand the connection they name."""

from __future__ import annotations

from pathlib import Path

import click

from streams.config import Connection
from streams.kafka.names import Topics
from streams.policy.retention import TopicSettings
from streams.settings import Settings


class Context:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @property
    def data_dir(self) -> Path:
        return self.settings.data_dir

    def topic_settings(self) -> TopicSettings:
        """Replication, min.insync.replicas and retentions of the topics the bus creates: the
        global flags, else HALLPASS_REPLICATION_FACTOR and the like, else the defaults (the
        cluster's replication)."""
        return self.settings.topic_settings

    def connection(self) -> Connection:
        """The bus, as the principal of the given client settings (else the local stack's
        admin, for a stack started with ``hallpass up --secure``)."""
        return self.settings.connection()

    def topics(self) -> Topics:
        """Topic names, under ``HALLPASS_TOPIC_PREFIX`` when set."""
        return self.settings.topics

    def secrets_file(self, given: Path | None = None) -> Path:
        """The partners' pseudonym secrets: ``--partner-secrets``, else
        ``HALLPASS_PARTNER_SECRETS_FILE``, else ``<data dir>/partner-secrets.json``."""
        return given or self.settings.secrets_file


pass_context = click.make_pass_decorator(Context)


def progress(message: str) -> None:
    """Progress lines go to stderr so that stdout stays machine-readable."""
    click.echo(message, err=True)
