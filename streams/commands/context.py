"""The object every subcommand receives: the data dir and, on demand, the connection."""

from __future__ import annotations

import os
from pathlib import Path

import click

from streams.config import Connection, resolve_connection
from streams.topics import Topics, topics_from


class Context:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.env = dict(os.environ)

    def connection(self) -> Connection:
        return resolve_connection(self.env, self.data_dir)

    def topics(self) -> Topics:
        """Topic names, under ``HALLPASS_TOPIC_PREFIX`` when set."""
        return topics_from(self.env)


pass_context = click.make_pass_decorator(Context)


def progress(message: str) -> None:
    """Progress lines go to stderr so that stdout stays machine-readable."""
    click.echo(message, err=True)
