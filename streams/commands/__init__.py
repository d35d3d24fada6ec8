"""Subcommands of ``hallpass``; each module registers its own."""

from __future__ import annotations

import click


def register_all(group: click.Group) -> None:
    from streams.commands import bus, demo, publish, roundtrip, runtime

    for module in (runtime, roundtrip, publish, bus, demo):
        module.register(group)
