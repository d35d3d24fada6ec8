"""The ``hallpass`` command: one group, its subcommands (``streams.commands``) added below."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click

from streams.commands import (
    acl,
    consent,
    contracts,
    demo,
    deploy,
    disclosures,
    dlq,
    lag,
    process,
    publish,
    retractions,
    roundtrip,
    runtime,
    topics,
    users,
    vendor,
)
from streams.commands.context import Context
from streams.config import ENV_DATA_DIR
from streams.errors import HallpassError
from streams.kafka.reachability import DEFAULT_TIMEOUT_S as DEFAULT_CONNECT_TIMEOUT_S
from streams.kafka.reachability import ENV_CONNECT_TIMEOUT, transport_problem
from streams.kafka.wire import access_refused
from streams.policy.retention import (
    ENV_MIN_INSYNC_REPLICAS,
    ENV_REPLICATION_FACTOR,
    ENV_TOMBSTONE_RETENTION_DAYS,
)
from streams.security.client_settings import (
    ENV_CLIENT_PROPERTIES,
    ENV_SASL_MECHANISM,
    ENV_SASL_PASSWORD_FILE,
    ENV_SASL_USERNAME,
    ENV_SECURITY_PROTOCOL,
    ENV_SSL_CA_LOCATION,
    SASL_MECHANISMS,
    SECURITY_PROTOCOLS,
    ClientSecurity,
)
from streams.settings import (
    ENV_DEBUG,
    ENV_LOG_FORMAT,
    LOG_FORMATS,
    RunFlags,
    settings_from,
)

_FILE = click.Path(dir_okay=False, path_type=Path)
#: Client security settings of every command. There is no password flag: a password on a
#: command line is visible to every user of the machine (ps); it comes from a file.
_SECURITY_OPTIONS = [
    click.option(
        "--client-properties",
        type=_FILE,
        default=None,
        envvar=ENV_CLIENT_PROPERTIES,
        show_envvar=True,
        help="librdkafka client properties (security.protocol, "
        "sasl.*, ssl.*), e.g. the admin.properties of `hallpass up --secure`; must "
        "be mode 600. The single settings below override it.",
    ),
    click.option(
        "--security-protocol",
        type=click.Choice(SECURITY_PROTOCOLS, case_sensitive=False),
        default=None,
        envvar=ENV_SECURITY_PROTOCOL,
        show_envvar=True,
        help="Kafka security protocol.",
    ),
    click.option(
        "--sasl-mechanism",
        type=click.Choice(SASL_MECHANISMS, case_sensitive=False),
        default=None,
        envvar=ENV_SASL_MECHANISM,
        show_envvar=True,
        help="SASL mechanism (the local secure broker uses SCRAM-SHA-512).",
    ),
    click.option(
        "--sasl-username",
        default=None,
        envvar=ENV_SASL_USERNAME,
        show_envvar=True,
        help="SASL user name.",
    ),
    click.option(
        "--sasl-password-file",
        type=_FILE,
        default=None,
        envvar=ENV_SASL_PASSWORD_FILE,
        show_envvar=True,
        help="File holding the SASL password (first line; must be mode 600).",
    ),
    click.option(
        "--ssl-ca-location",
        type=_FILE,
        default=None,
        envvar=ENV_SSL_CA_LOCATION,
        show_envvar=True,
        help="CA certificate (PEM) that signed the broker's.",
    ),
]


def _security_options(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(_SECURITY_OPTIONS):
        fn = option(fn)
    return fn


class HallpassGroup(click.Group):
    """Renders every failure a user can act on once, here: a :class:`HallpassError` (or a
    registry refusal from any registry client) is one ``Error: ...`` line, exit status 1, no
    traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except HallpassError as exc:
            raise click.ClickException(str(exc)) from exc
        except Exception as exc:
            # a registry refusal from any registry client, or the bus stopped answering
            problem = access_refused(exc) or transport_problem(exc)
            if problem is None:
                raise
            raise click.ClickException(str(problem)) from exc


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
@_security_options
@click.option(
    "--replication-factor",
    type=int,
    default=None,
    help=f"Replicas of every topic the bus creates (env {ENV_REPLICATION_FACTOR}; "
    "default -1: the cluster's default.replication.factor).",
)
@click.option(
    "--min-insync-replicas",
    type=click.IntRange(min=1),
    default=None,
    help=f"min.insync.replicas of every topic the bus creates (env "
    f"{ENV_MIN_INSYNC_REPLICAS}; default: the cluster's).",
)
@click.option(
    "--tombstone-retention-days",
    type=click.IntRange(min=1),
    default=None,
    help="How long deletions stay on partner topics: the longest outage a vendor "
    f"may have and still learn of every deletion (env {ENV_TOMBSTONE_RETENTION_DAYS};"
    " default 30).",
)
@click.option(
    "--connect-timeout",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Seconds a command waits for the broker and the schema registry to answer "
    f"before it stops with what to check (env {ENV_CONNECT_TIMEOUT}; default "
    f"{DEFAULT_CONNECT_TIMEOUT_S:g}).",
)
@click.option(
    "--debug",
    is_flag=True,
    default=None,
    help=f"Show librdkafka's own log lines (connection retries and the like; env {ENV_DEBUG}=1).",
)
@click.option(
    "--log-format",
    type=click.Choice(LOG_FORMATS),
    default=None,
    help=f"Progress and log lines on stderr as text or as JSON lines (time, level, "
    f"command, message) for a log collector (env {ENV_LOG_FORMAT}; default text).",
)
@click.version_option(package_name="hallpass")
@click.pass_context
def main(
    ctx: click.Context,
    data_dir: Path | None,
    client_properties: Path | None,
    security_protocol: str | None,
    sasl_mechanism: str | None,
    sasl_username: str | None,
    sasl_password_file: Path | None,
    ssl_ca_location: Path | None,
    replication_factor: int | None,
    min_insync_replicas: int | None,
    tombstone_retention_days: int | None,
    connect_timeout: float | None,
    debug: bool | None,
    log_format: str | None,
) -> None:
    """hallpass: a consent-aware student-data sharing bus.

    SIS change events go in; each partner receives only the fields its contract allows, only
    for students whose consent permits it; every decision is recorded in an audit ledger.

    \b
    Start here:
      hallpass up        start a local Kafka broker and schema registry
      hallpass status    where they are
      hallpass down      stop them (data survives in the data dir)

    \b
    On a secured cluster, name the principal with --client-properties FILE (or the single
    settings); a local stack started with `hallpass up --secure` is used as its admin.
    """
    security = ClientSecurity(
        properties_file=client_properties,
        security_protocol=security_protocol.upper() if security_protocol else None,
        sasl_mechanism=sasl_mechanism.upper() if sasl_mechanism else None,
        sasl_username=sasl_username or None,
        sasl_password_file=sasl_password_file,
        ssl_ca_location=ssl_ca_location,
    )
    # the one place the environment is read: every command takes its settings from ctx.obj
    ctx.obj = Context(
        settings_from(
            os.environ,
            data_dir=data_dir,
            security=security,
            replication_factor=replication_factor,
            min_insync_replicas=min_insync_replicas,
            tombstone_retention_days=tombstone_retention_days,
            run=RunFlags(
                connect_timeout_s=connect_timeout,
                debug=debug or None,
                log_format=log_format,
                command=ctx.invoked_subcommand,
            ),
        )
    )


for command in (
    # the local runtime
    runtime.up,
    runtime.down,
    runtime.status,
    # contracts, topics, access
    contracts.contracts,
    topics.topics,
    acl.acl,
    users.users,
    deploy.deploy,
    # the SIS side
    publish.publish,
    publish.simulate,
    consent.consent,
    # the processor and what it shares
    process.process,
    disclosures.disclosures,
    disclosures.exposure,
    retractions.retractions,
    vendor.vendor,
    dlq.dlq,
    # operations
    lag.lag,
    lag.lag_exporter,
    roundtrip.roundtrip,
    demo.demo,
):
    main.add_command(command)
