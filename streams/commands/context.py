"""The object every subcommand receives: the data dir, the client security settings and, on
demand, the connection."""

from __future__ import annotations

import os
from pathlib import Path

import click

from streams.config import Connection, resolve_connection
from streams.kafka.names import Topics, topics_from
from streams.policy.retention import TopicSettings, topic_settings_from
from streams.security.client_settings import ClientSecurity


class Context:
    def __init__(self, data_dir: Path, security: ClientSecurity | None = None,
                 topic_flags: dict[str, int | None] | None = None) -> None:
        self.data_dir = data_dir
        self.env = dict(os.environ)
        self.security = security or ClientSecurity()
        self._topic_flags = dict(topic_flags or {})
        self._topic_settings: TopicSettings | None = None

    def topic_settings(self) -> TopicSettings:
        """Replication, min.insync.replicas and retentions of the topics the bus creates: the
        global flags, else HALLPASS_REPLICATION_FACTOR and the like, else the defaults (the
        cluster's replication); resolved once."""
        if self._topic_settings is None:
            self._topic_settings = topic_settings_from(self.env, self._topic_flags)
        return self._topic_settings

    def connection(self) -> Connection:
        """The bus, as the principal of the given client settings (else the local stack's
        admin, for a stack started with ``hallpass up --secure``)."""
        given = self.security.properties() if self.security.given else None
        return resolve_connection(self.env, self.data_dir, client_properties=given)

    def topics(self) -> Topics:
        """Topic names, under ``HALLPASS_TOPIC_PREFIX`` when set."""
        return topics_from(self.env)


pass_context = click.make_pass_decorator(Context)


def progress(message: str) -> None:
    """Progress lines go to stderr so that stdout stays machine-readable."""
    click.echo(message, err=True)
