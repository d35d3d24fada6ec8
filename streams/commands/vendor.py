"""``hallpass vendor pull``: the vendor's side, what a partner sees on its topic."""

from __future__ import annotations

import json
from pathlib import Path

import click

from streams.commands.context import Context, pass_context


@click.group()
def vendor() -> None:
    """The vendor's side: what a partner sees on its topic."""


@vendor.command("pull")
@click.option("--partner", required=True)
@click.option(
    "--group", "group_id", default=None, help="Consumer group (default: <partner>-vendor)."
)
@click.option(
    "--copy",
    "copy_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="SQLite file for the local copy (default: <data dir>/vendor-<partner>.sqlite).",
)
@click.option(
    "--show", type=int, default=1, show_default=True, help="Print this many records of the copy."
)
@click.option(
    "--ack/--no-ack",
    default=True,
    show_default=True,
    help="Acknowledge each deletion notice on partner.<PARTNER>.acks once the deletion is "
    "committed in the local copy (the proof of deletion hallpass reports on).",
)
@pass_context
def vendor_pull(
    ctx: Context, partner: str, group_id: str | None, copy_path: Path | None, show: int, ack: bool
) -> None:
    """Read partner.<PARTNER>.students (read_committed) into a local copy; tombstones
    delete. Then acknowledge each deletion notice of partner.<PARTNER>.notices on
    partner.<PARTNER>.acks (notice id and when it was deleted); acknowledging a notice
    twice is harmless."""
    from connectors.partner.vendor import VendorCopy, pull_partner

    copy = VendorCopy(copy_path or ctx.data_dir / f"vendor-{partner}.sqlite")
    report = pull_partner(
        ctx.connection(), ctx.topics(), partner, copy, group_id or f"{partner}-vendor", ack=ack
    )
    acked = f"; acknowledged {report.acknowledged} deletion notices" if ack else ""
    if report.unreadable:
        acked += (
            f"; {report.unreadable} record(s) on the notices topic are not deletion notices "
            "(not Avro of the registry: skipped, not acknowledged; tell the district)"
        )
    click.echo(
        f"{partner}: {report.upserts} upserts, {report.deletes} deletions "
        f"{report.delete_reasons or ''}; local copy holds {len(copy)} students{acked}"
    )
    for _, (key, record) in zip(range(show), copy.records(), strict=False):
        click.echo(json.dumps({"key": key, **record}, indent=2, default=str))
