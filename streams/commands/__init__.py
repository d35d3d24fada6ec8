"""Subcommands of ``hallpass``; each module registers its own."""

from __future__ import annotations

import click


def register_all(group: click.Group) -> None:
    from streams.commands import demo, roundtrip, runtime

    for module in (runtime, roundtrip, demo):
        module.register(group)
