"""The command line keeps its shape: every command, option, variable and help text as
captured in tests/fixtures/cli_help before the commands became module-level click commands
added explicitly in streams/cli.py (issue 18). Changed on purpose since: the global flags
--connect-timeout, --debug and --log-format (issue 15) and `contracts publish` (issue 19),
recaptured in the fixtures; ISO times on the consent commands, `consent import`, `exposure`
and the disclosure report's --contracts (issue 19); proof of deletion: `retractions`,
`vendor pull --ack/--no-ack` and `lag-exporter --deletion-acks` (issue 19)."""

from __future__ import annotations

import inspect
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from streams.cli import main

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cli_help"
#: the differences made on purpose: `demo` reads HALLPASS_CONTRACTS_DIR like every other
#: command with --contracts (its help text is unchanged)
FIXED = {("hallpass demo", "contracts_dir", "envvar"): (None, "HALLPASS_CONTRACTS_DIR")}


def commands(
    cmd: click.Command = main, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    yield path, cmd
    if isinstance(cmd, click.Group):
        for name in sorted(cmd.commands):
            yield from commands(cmd.commands[name], (*path, name))


def default(param: click.Parameter) -> Any:
    value = param.default
    if callable(value):
        return "<callable>"
    try:
        json.dumps(value)
    except TypeError:
        return str(value)
    return value


def shape(cmd: click.Command) -> dict[str, Any]:
    return {
        "help": inspect.cleandoc(cmd.help or ""),
        "hidden": cmd.hidden,
        "subcommands": sorted(cmd.commands) if isinstance(cmd, click.Group) else None,
        "params": [
            {
                "name": p.name,
                "opts": p.opts,
                "secondary_opts": p.secondary_opts,
                "envvar": getattr(p, "envvar", None),
                "hidden": getattr(p, "hidden", False),
                "required": p.required,
                "default": default(p),
                "multiple": p.multiple,
                "type": type(p.type).__name__,
                "help": getattr(p, "help", None),
            }
            for p in cmd.params
        ],
    }


def test_the_same_commands_exist() -> None:
    before = json.loads((FIXTURES / "params.json").read_text())
    assert sorted(" ".join(("hallpass", *path)) for path, _ in commands()) == sorted(before)
    assert len(list(FIXTURES.glob("hallpass*.txt"))) == len(before)


@pytest.mark.parametrize(
    ("path", "cmd"), list(commands()), ids=lambda v: " ".join(v) if isinstance(v, tuple) else ""
)
def test_options_variables_and_help_are_unchanged(
    path: tuple[str, ...], cmd: click.Command
) -> None:
    name = " ".join(("hallpass", *path))
    before = json.loads((FIXTURES / "params.json").read_text())[name]
    now = shape(cmd)
    for (command, param, key), (was, is_now) in FIXED.items():
        if command == name:
            [entry] = [p for p in before["params"] if p["name"] == param]
            assert entry[key] == was
            entry[key] = is_now
    assert now == before


@pytest.mark.parametrize(
    "path", [path for path, _ in commands()], ids=lambda p: " ".join(p) or "hallpass"
)
def test_help_output_is_unchanged(path: tuple[str, ...]) -> None:
    fixture = FIXTURES / ("_".join(("hallpass", *path)) + ".txt")
    result = CliRunner().invoke(main, [*path, "--help"], terminal_width=100)
    assert result.exit_code == 0, result.output
    assert result.output == fixture.read_text()
