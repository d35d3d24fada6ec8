"""``hallpass retractions``: the deletion notices sent to partners and whether each partner
acknowledged it (proof of deletion, Ed Law 2-d)."""

from __future__ import annotations

import time

import click

from streams.commands.context import Context, pass_context, progress
from streams.policy.retractions import FORMATS, AgeError, parse_age


def _age(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return parse_age(value)
    except AgeError as exc:
        raise click.BadParameter(str(exc)) from exc


@click.command("retractions")
@click.option(
    "--partner",
    "partners",
    multiple=True,
    metavar="PARTNER",
    help="Only this partner (repeat for more). Default: every partner with a notices topic.",
)
@click.option(
    "--unacknowledged", is_flag=True, help="Only the notices the partner has not acknowledged."
)
@click.option(
    "--older-than",
    "older_than",
    metavar="AGE",
    default=None,
    callback=_age,
    help="Only notices sent more than AGE ago: a number and a unit, s, m, h, d or w (30d).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default="table",
    show_default=True,
    help="table for people; csv or json (with a per-partner summary) for a records request.",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    default=120.0,
    show_default=True,
    help="Seconds to read the topics to their end.",
)
@pass_context
def retractions(
    ctx: Context,
    partners: tuple[str, ...],
    unacknowledged: bool,
    older_than: float | None,
    fmt: str,
    timeout: float,
) -> None:
    """Each deletion notice sent to a partner, and whether the partner acknowledged it.

    Joins partner.<id>.notices (what the partner was told to delete) with partner.<id>.acks
    (what the partner's vendor says it deleted, and when), both read with read_committed to
    their current end. One row per notice:

    \b
    RETRACTED-AT  the UTC day the notice was sent (day resolution, as the notice says)
    STATUS        acknowledged, or outstanding
    DELETED-AT    when the partner says it deleted (its first acknowledgement)
    AGE-DAYS      days since the notice was sent

    `hallpass retractions --unacknowledged --older-than 30d` lists what partners leave
    outstanding past 30 days (the HallpassDeletionUnacknowledged alert watches the same).
    Acknowledgements that name no notice of their partner prove nothing: they are counted
    on stderr. Reads as the auditor: it needs READ on both topics of each partner.
    """
    from connectors.partner.acks import read_retractions
    from streams.policy.retractions import outstanding_by_partner, render, select

    joined, read = read_retractions(ctx.connection(), ctx.topics(), partners, timeout)
    now_ms = int(time.time() * 1000)
    rows = select(
        joined.retractions, now_ms, unacknowledged=unacknowledged, older_than_s=older_than
    )
    summary = outstanding_by_partner(joined.retractions, read)
    click.echo(render(rows, now_ms, fmt, summary))
    outstanding = sum(o.count for o in summary.values())
    progress(
        f"{len(joined.retractions)} notices to {len(read)} partners, {outstanding} "
        f"outstanding; {len(rows)} shown"
        + (f"; {len(joined.stray)} acknowledgements of no notice ignored" if joined.stray else "")
    )
