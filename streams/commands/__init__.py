"""Subcommands of ``hallpass``; each module registers its own."""

from __future__ import annotations

import click


def register_all(group: click.Group) -> None:
    from streams.commands import roundtrip, runtime

    for module in (runtime, roundtrip):
        module.register(group)
