"""Options shared by several commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from streams.metrics import ENV_METRICS_ADDR, ENV_METRICS_PORT
from streams.policy.instants import InstantError, parse_instant

DEFAULT_CONTRACTS = Path("deploy/contracts")
ENV_CONTRACTS_DIR = "HALLPASS_CONTRACTS_DIR"
F = TypeVar("F", bound=Callable[..., Any])

contracts_dir_option = click.option(
    "--contracts",
    "contracts_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CONTRACTS,
    show_default=True,
    envvar=ENV_CONTRACTS_DIR,
    show_envvar=True,
    help="Directory of partner contracts (one YAML file per partner).",
)


def partner_secrets_option(help_text: str) -> Callable[[F], F]:
    return click.option(
        "--partner-secrets",
        type=click.Path(dir_okay=False, path_type=Path),
        default=None,
        help=help_text,
    )


def metrics_port_option(default: int) -> Callable[[Any], Any]:
    """``--metrics-port`` (env ``HALLPASS_METRICS_PORT``) for a long-running command."""
    return click.option(
        "--metrics-port",
        type=click.IntRange(min=0, max=65535),
        default=default,
        show_default=True,
        envvar=ENV_METRICS_PORT,
        show_envvar=True,
        help="Serve Prometheus metrics on http://<addr>:PORT/metrics (0: off). The address "
        f"is 127.0.0.1 unless ${ENV_METRICS_ADDR} says otherwise.",
    )


class InstantType(click.ParamType):
    """A point in time on the command line: ISO date or date-time, or epoch ms."""

    name = "TIME"

    def convert(
        self, value: object, param: click.Parameter | None, ctx: click.Context | None
    ) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_instant(str(value))
        except InstantError as exc:
            self.fail(str(exc), param, ctx)


INSTANT = InstantType()
