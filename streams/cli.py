"""The ``hallpass`` command: one group, subcommands registered from ``streams.commands``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from streams.commands import register_all
from streams.commands.context import Context
from streams.config import ENV_DATA_DIR, NotConfiguredError, data_dir_from
from streams.local_runtime import RuntimeProblem

#: Failures a user can act on: printed as one clear message, exit status 1, no traceback.
USER_ERRORS: tuple[type[Exception], ...] = (RuntimeProblem, NotConfiguredError)


class HallpassGroup(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(
    cls=HallpassGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar=ENV_DATA_DIR,
    show_envvar=True,
    help="Where the local runtime keeps its state and data (default: .hallpass in the current "
    "directory).",
)
@click.version_option(package_name="hallpass")
@click.pass_context
def main(ctx: click.Context, data_dir: Path | None) -> None:
    """hallpass: a consent-aware student-data sharing bus.

    SIS change events go in; each partner receives only the fields its contract allows, only
    for students whose consent permits it; every decision is recorded in an audit ledger.

    \b
    Start here:
      hallpass up        start a local Kafka broker and schema registry
      hallpass status    where they are
      hallpass down      stop them (data survives in the data dir)
    """
    ctx.obj = Context(data_dir_from(data_dir, os.environ))


register_all(main)
