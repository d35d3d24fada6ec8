"""``hallpass deploy render strimzi``: Kubernetes manifests generated from the contracts."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from streams.commands.acl import load_checked_contracts
from streams.commands.context import Context, pass_context
from streams.commands.options import contracts_dir_option
from streams.security.acl_plan import DEFAULT_ROLES
from streams.security.strimzi import StrimziTarget, render_strimzi

DEFAULT_K8S_DIR = Path("deploy/k8s")


@click.group()
def deploy() -> None:
    """Deployment files generated from the contracts."""


@deploy.group()
def render() -> None:
    """Write manifests for a platform."""


@render.command("strimzi")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_K8S_DIR,
    show_default=True,
    help="Directory for kafka-topics.yaml and kafka-users.yaml (replaced).",
)
@contracts_dir_option
@click.option(
    "--cluster",
    default=StrimziTarget.cluster,
    show_default=True,
    help="Name of the Strimzi Kafka cluster (the strimzi.io/cluster label).",
)
@click.option(
    "--namespace",
    default=None,
    help="Namespace of the resources (default: none; kubectl's current one).",
)
@click.option(
    "--partitions",
    type=click.IntRange(min=1),
    default=StrimziTarget.partitions,
    show_default=True,
    help="Partitions of the multi-partition topics.",
)
@click.option(
    "--replicas",
    type=click.IntRange(1, 32767),
    default=None,
    help="Replicas of every topic (default: --replication-factor / "
    "HALLPASS_REPLICATION_FACTOR; unset: no `replicas`, the cluster's default).",
)
@pass_context
def strimzi(
    ctx: Context,
    out_dir: Path,
    contracts_dir: Path,
    cluster: str,
    namespace: str | None,
    partitions: int,
    replicas: int | None,
) -> None:
    """Write Strimzi KafkaTopic and KafkaUser manifests: a topic for each topic of the bus
    and of each partner, a SCRAM-SHA-512 user for each role and vendor with the ACLs of
    `hallpass acl plan`. Topic names take HALLPASS_TOPIC_PREFIX when set; each topic's
    cleanup and retention are those of `hallpass topics plan`, with the same replication,
    min.insync.replicas and tombstone retention settings."""
    contracts = load_checked_contracts(contracts_dir)
    settings = ctx.topic_settings()
    if replicas is not None:
        settings = dataclasses.replace(settings, replication_factor=replicas)
    target = StrimziTarget(cluster, namespace, partitions, settings)
    files = render_strimzi(
        contracts, ctx.topics(), DEFAULT_ROLES, target, source=contracts_dir.as_posix()
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        path = out_dir / name
        path.write_text(text, encoding="utf-8")
        click.echo(f"wrote {path}")
