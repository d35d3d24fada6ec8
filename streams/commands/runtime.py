"""``hallpass up``, ``down`` and ``status``: the local runtime."""

from __future__ import annotations

import json

import click

from streams.commands.context import Context, pass_context, progress
from streams.local.stack import LocalStack, Ports, describe


def _stack(
    ctx: Context,
    kafka_port: int,
    controller_port: int,
    registry_port: int,
    secure: bool = False,
    tls: bool = False,
    brokers: int | None = None,
) -> LocalStack:
    return LocalStack(
        ctx.data_dir,
        env=ctx.settings.local_env,
        progress=progress,
        ports=Ports(kafka=kafka_port, controller=controller_port, registry=registry_port),
        secure=secure,
        tls=tls,
        brokers=brokers,
    )


@click.command()
@click.option(
    "--timeout",
    type=float,
    default=240.0,
    show_default=True,
    help="Seconds to wait for the broker and registry to answer.",
)
@click.option(
    "--secure",
    is_flag=True,
    help="SASL/SCRAM-SHA-512 and ACLs (deny by default) on the client listener; "
    "fixed when the data dir is first formatted.",
)
@click.option(
    "--tls",
    is_flag=True,
    help="With --secure (implied): TLS on the client "
    "listener, with a local CA made for this data dir.",
)
@click.option(
    "--registry-port",
    type=int,
    default=8081,
    show_default=True,
    envvar="HALLPASS_REGISTRY_PORT",
    help="Schema registry HTTP port.",
)
@click.option(
    "--controller-port",
    type=int,
    default=9093,
    show_default=True,
    envvar="HALLPASS_CONTROLLER_PORT",
    help="KRaft controller port.",
)
@click.option(
    "--kafka-port",
    type=int,
    default=9092,
    show_default=True,
    envvar="HALLPASS_KAFKA_PORT",
    help="Client port of the local broker.",
)
@click.option(
    "--brokers",
    type=int,
    default=None,
    envvar="HALLPASS_BROKERS",
    help="Broker nodes: 1, or a cluster of 3 or more (replication factor 3, "
    "min.insync.replicas 2); broker n listens on --kafka-port + 2(n-1), its "
    "controller on --controller-port + 2(n-1). Fixed when the data dir is first "
    "formatted  [default: as formatted, else 1]",
)
@pass_context
def up(
    ctx: Context,
    kafka_port: int,
    controller_port: int,
    registry_port: int,
    timeout: float,
    secure: bool,
    tls: bool,
    brokers: int | None,
) -> None:
    """Start a local Kafka broker (KRaft) and schema registry on 127.0.0.1.

    Fetches Apache Kafka and Apicurio Registry from Maven Central on first use (cached
    outside the repository), formats the data dir once, starts both, waits until they
    answer and prints where they are. Data survives `hallpass down` and the next `up`.

    With --brokers 3, three combined broker+controller nodes (a 3-voter KRaft quorum):
    every topic, the offsets and transaction logs and the registry's storage have 3
    replicas and need 2 in sync, so the bus survives the loss of any one node. Ports:
    the given ones and the next (defaults 9092-9097). --secure runs a single broker.

    When a stack from this data dir partly runs (a broker or the registry crashed), `up`
    starts what is not running, on the ports it was started with, and leaves the rest.

    With --secure every client authenticates (SCRAM-SHA-512) and needs ACLs
    (`hallpass users add`, `hallpass acl apply`). The admin, a super user, gets a random
    password, written only to <data dir>/admin.properties (mode 600); hallpass commands on
    this data dir use it by themselves.

    With HALLPASS_BOOTSTRAP_SERVERS and HALLPASS_SCHEMA_REGISTRY_URL set, hallpass uses
    that cluster and starts nothing.
    """
    external = ctx.settings.external_connection()
    if external is not None:
        click.echo("using the existing cluster named by the environment; starting nothing")
        click.echo(f"Kafka            {external.bootstrap_servers}")
        click.echo(f"schema registry  {external.schema_registry_url}")
        return
    state = _stack(ctx, kafka_port, controller_port, registry_port, secure, tls, brokers).up(
        timeout_s=timeout
    )
    for line in describe(state):
        click.echo(line)
    click.echo(f"data dir         {ctx.data_dir}")


@click.command()
@pass_context
def down(ctx: Context) -> None:
    """Stop the local brokers and registry started by `hallpass up`, whichever still run
    (data is kept)."""
    if not LocalStack(ctx.data_dir, env=ctx.settings.local_env, progress=progress).down():
        raise click.ClickException(
            f"nothing is running from {ctx.data_dir}: there is nothing to stop "
            "(start it with `hallpass up`, or pass the --data-dir it was started with)"
        )
    click.echo("stopped")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_context
def status(ctx: Context, as_json: bool) -> None:
    """Say what runs: the broker and registry, their addresses, pids and memory."""
    external = ctx.settings.external_connection()
    if external is not None:
        info: dict[str, object] = {
            "running": True,
            "external": True,
            "bootstrap_servers": external.bootstrap_servers,
            "schema_registry_url": external.schema_registry_url,
        }
    else:
        info = LocalStack(ctx.data_dir, env=ctx.settings.local_env).status()
    if as_json:
        click.echo(json.dumps(info, indent=2))
        return
    if "bootstrap_servers" not in info:
        click.echo(f"nothing runs from {ctx.data_dir} (start it with `hallpass up`)")
        raise SystemExit(1)
    down = info.get("down")
    if info["running"]:
        click.echo("running")
    elif isinstance(down, list) and len(down) < len(_processes(info)):
        click.echo(
            f"NOT running: {'; '.join(map(str, down))} "
            "(`hallpass up` starts what is down, `hallpass down` stops the rest)"
        )
    else:
        click.echo("NOT running (stale state; `hallpass up`)")
    for line in describe(info):
        click.echo(line)
    for part, proc in _processes(info):
        rss = proc.get("rss_bytes")
        mem = f"{int(rss) / 2**20:.0f} MiB" if isinstance(rss, int) else "-"
        alive = "up" if proc.get("alive") else "down"
        click.echo(f"  {part:<9} pid {proc.get('pid')} {alive}, resident {mem}")


def _processes(info: dict[str, object]) -> list[tuple[str, dict[str, object]]]:
    """Each process of a status: every broker node, then the registry."""
    brokers = info.get("brokers")
    found: list[tuple[str, dict[str, object]]] = []
    if isinstance(brokers, list) and len(brokers) > 1:
        found += [(f"broker {b.get('id')}", b) for b in brokers if isinstance(b, dict)]
    elif isinstance(info.get("kafka"), dict):
        found.append(("kafka", info["kafka"]))  # type: ignore[arg-type]
    if isinstance(info.get("registry"), dict):
        found.append(("registry", info["registry"]))  # type: ignore[arg-type]
    return found
