"""``hallpass acl``: the Kafka ACLs the contracts and roles imply.

``acl plan`` lives here; ``acl apply`` is attached to the same :data:`acl` group by
streams/commands/security.py.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence
from pathlib import Path

import click

from streams.commands.bus import contracts_dir_option
from streams.commands.context import Context, pass_context, progress
from streams.kafka.names import Topics
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import Contract, load_contracts
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
        + "  " + row[-1]
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


def register(group: click.Group) -> None:
    group.add_command(acl)
