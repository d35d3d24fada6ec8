"""``hallpass disclosures``: what was shared about a student (FERPA 34 CFR 99.32)."""

from __future__ import annotations

import json
import time

import click

from connectors.partner.auditor import read_disclosures
from streams.commands.context import Context, pass_context


@click.command()
@click.option("--student", required=True, help="State student id.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_context
def disclosures(ctx: Context, student: str, as_json: bool) -> None:
    """What was shared about a student (FERPA 34 CFR 99.32): every partner that received
    data, which fields, when, on which basis and contract version, and every retraction."""
    rows = read_disclosures(ctx.connection(), student, ctx.topics().audit)
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    if not rows:
        click.echo(f"no disclosure of {student} is recorded")
        return
    for row in rows:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(int(row["decided_at"]) / 1000))
        what = ", ".join(row["fields"]) if row["decision"] == "DISCLOSED" else row["reason"]
        basis = "/".join(row["legal_basis"]) or "-"
        click.echo(f"{when}Z  {row['partner']:<16} {row['decision']:<9} "
                   f"v{row['contract_version']} {basis:<26} {what}")
