"""``hallpass acl plan|apply``: the Kafka ACLs the contracts and roles imply."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import click

from streams.commands.context import Context, pass_context, progress
from streams.commands.options import contracts_dir_option
from streams.kafka.names import Topics
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import Contract, load_contracts
from streams.security.acl_apply import apply_plan, describe_rule
from streams.security.acl_plan import AclRule, plan_acls

COLUMNS = ("PRINCIPAL", "RESOURCE", "PATTERN", "OPERATION")


def load_checked_contracts(directory: Path) -> list[Contract]:
    """The valid contracts of ``directory`` (each problem of an invalid one is reported by
    the CLI group)."""
    if not directory.is_dir():
        raise click.ClickException(f"{directory}: no such directory of contracts")
    return load_contracts(directory, field_catalog(load_schema("student_record_changed")))


def planned_acls(contracts_dir: Path, topics: Topics) -> list[AclRule]:
    """The ACL plan of the contracts in ``contracts_dir``."""
    return plan_acls(load_checked_contracts(contracts_dir), topics)


def format_plan(rules: Sequence[AclRule]) -> str:
    """The plan as an aligned table, one ACL per line."""
    rows = [COLUMNS] + [
        (r.principal, f"{r.resource_type}:{r.resource_name}", r.pattern_type, r.operation)
        for r in rules
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        + "  "
        + row[-1]
        for row in rows
    )


@click.group()
def acl() -> None:
    """Kafka ACLs derived from the contracts: deny by default, each vendor reads only its
    own partner topic, notices topic and consumer groups."""


@acl.command("plan")
@contracts_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the ACLs as a JSON list.")
@pass_context
def plan(ctx: Context, contracts_dir: Path, as_json: bool) -> None:
    """Print the ACLs that the contracts and the roles imply (changes nothing).

    \b
    Roles: SIS connector (writes the change and consent topics), processor, auditor (reads
    the audit ledger), schema registry, and each contract's vendor principal. The admin is a
    super user and needs none. Topic names take HALLPASS_TOPIC_PREFIX when set.
    """
    rules = planned_acls(contracts_dir, ctx.topics())
    if as_json:
        click.echo(json.dumps([dataclasses.asdict(r) for r in rules], indent=2))
        return
    click.echo(format_plan(rules))
    principals = len({r.principal for r in rules})
    progress(f"{len(rules)} ACLs for {principals} principals; everything else is denied")


@acl.command("apply")
@contracts_dir_option
@click.option("--dry-run", is_flag=True, help="Say what would change; change nothing.")
@pass_context
def acl_apply(ctx: Context, contracts_dir: Path, dry_run: bool) -> None:
    """Make the broker's ACLs match the plan of the contracts (run as the admin).

    Adds the ACLs the plan has and the broker lacks; removes the ACLs hallpass manages that
    the plan no longer has, so a retired contract's vendor loses its access. Managed: every
    ALLOW ACL of a principal of the plan or recorded by an earlier apply (in the admin-only
    topic hallpass.acl.principals), and every ALLOW ACL on a topic, group or transactional
    id of the bus. DENY ACLs and ACLs of other principals on other resources are left alone.
    Re-applying an unchanged plan changes nothing.
    """
    topics = ctx.topics()
    plan = planned_acls(contracts_dir, topics)
    contracts = load_checked_contracts(contracts_dir)
    result = apply_plan(ctx.connection(registry=False), plan, contracts, topics, dry_run=dry_run)
    changes = result.changes
    verb = ("would add", "would remove") if dry_run else ("added", "removed")
    for rule in changes.add:
        click.echo(f"{verb[0]:<12} {describe_rule(rule)}")
    for rule in changes.remove:
        click.echo(f"{verb[1]:<12} {describe_rule(rule)}")
    for rule in changes.foreign:
        progress(
            f"warning: an ACL hallpass does not manage also reaches the bus: {describe_rule(rule)}"
        )
    if changes.empty:
        click.echo(f"the broker's ACLs match the plan ({changes.unchanged} ACLs): nothing changed")
    else:
        click.echo(
            f"{len(changes.add)} {verb[0]}, {len(changes.remove)} {verb[1]}, "
            f"{changes.unchanged} unchanged" + ("; dry run, nothing changed" if dry_run else "")
        )
