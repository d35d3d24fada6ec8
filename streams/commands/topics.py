"""``hallpass topics plan|check``: the topics the bus creates, their retention and why; which
settings of existing topics differ, and how to fix them."""

from __future__ import annotations

import json
from pathlib import Path

import click

from streams.commands.acl import load_checked_contracts
from streams.commands.context import Context, pass_context, progress
from streams.commands.options import contracts_dir_option
from streams.kafka.admin import alter_topic_configs, describe_topics
from streams.kafka.names import TopicSpec
from streams.policy.retention import drift
from streams.processor.app import bus_topics, contract_topics, input_partitions, prefixed


def _specs(ctx: Context, contracts_dir: Path, partitions: int) -> list[TopicSpec]:
    topics = ctx.topics()
    settings = ctx.topic_settings()
    contracts = prefixed(load_checked_contracts(contracts_dir), topics)
    return bus_topics(partitions, topics, settings) + contract_topics(
        contracts, partitions, topics, settings
    )


@click.group()
def topics() -> None:
    """The topics the bus creates: their settings, and checks of existing ones."""


@topics.command("plan")
@contracts_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def plan(ctx: Context, contracts_dir: Path, as_json: bool) -> None:
    """Every topic of the bus and of each partner: partitions, replication, the topic-level
    settings it is created with (cleanup, retention) and why. Set on any cluster, whatever
    its broker defaults."""
    specs = _specs(ctx, contracts_dir, 3)
    if as_json:
        click.echo(
            json.dumps(
                [
                    {
                        "topic": s.name,
                        "partitions": s.partitions,
                        "replication_factor": s.replication_factor,
                        "config": dict(s.config),
                        "why": s.why,
                    }
                    for s in specs
                ],
                indent=2,
            )
        )
        return
    for s in specs:
        replicas = "cluster default" if s.replication_factor < 0 else str(s.replication_factor)
        settings = " ".join(f"{k}={v}" for k, v in sorted(s.config.items()))
        click.echo(f"{s.name}\n  replicas {replicas}; {settings}\n  why: {s.why}")


@topics.command("check")
@contracts_dir_option
@click.option(
    "--fix",
    is_flag=True,
    help="Set the differing topic-level settings on the existing topics (a "
    "replication factor is only reported: it needs a partition reassignment).",
)
@pass_context
def check(ctx: Context, contracts_dir: Path, fix: bool) -> None:
    """Compare the existing topics with the settings the bus creates them with; print each
    difference with the command that fixes it. Exit status 1 if any remain."""
    conn = ctx.connection(registry=False)
    specs = _specs(ctx, contracts_dir, input_partitions(conn, ctx.topics()))
    configs, replicas = describe_topics(conn, [s.name for s in specs])

    found = drift(specs, configs, replicas)
    if fix:
        changes: dict[str, dict[str, str]] = {}
        for d in found:
            if d.key != "replication.factor":
                changes.setdefault(d.topic, {})[d.key] = d.want
        alter_topic_configs(conn, changes)
        for topic, settings in sorted(changes.items()):
            progress(f"set {', '.join(f'{k}={v}' for k, v in sorted(settings.items()))} on {topic}")
        configs, replicas = describe_topics(conn, [s.name for s in specs])
        found = drift(specs, configs, replicas)
    for d in found:
        click.echo(f"{d}\n  fix: {d.fix(conn.bootstrap_servers)}")
    missing = [s.name for s in specs if s.name not in configs]
    if missing:
        click.echo(
            f"{len(missing)} topic(s) not created yet (`hallpass contracts apply` creates them)"
        )
    if found:
        raise click.ClickException(f"{len(found)} topic setting(s) differ")
    click.echo(f"{len(configs)} existing topic(s): settings as planned")
