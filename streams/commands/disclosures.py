"""``hallpass disclosures``: what was shared about a student (FERPA 34 CFR 99.32); ``hallpass
exposure``: what a partner held at a time (a breach, 8 NYCRR 121.10)."""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import click

from connectors.partner.ledger_index import LedgerIndex, update_index
from streams.commands.context import Context, pass_context
from streams.commands.options import INSTANT, contracts_dir_option


@click.command()
@click.option("--student", required=True, help="State student id.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@contracts_dir_option
@pass_context
def disclosures(ctx: Context, student: str, as_json: bool, contracts_dir: Path) -> None:
    """What was shared about a student (FERPA 34 CFR 99.32): every partner that received
    data, which fields, when, on which basis and contract version, the legitimate interest
    (the contract's purpose, 99.32(a)(3)), and every retraction. The ledger is read into a
    per-student index in the data dir (only what is new since the last report), so a
    report answers in well under a second over years of decisions."""
    purposes = {
        (c.partner, c.version): f"{c.purpose_code}: {c.purpose}"
        for c in ctx.valid_contracts(contracts_dir)
    }
    topic = ctx.topics().audit
    index = LedgerIndex(ctx.data_dir / "ledger-index" / f"{topic}.sqlite")
    try:
        update_index(index, ctx.connection(), topic)
        rows = index.report(student)
    finally:
        index.close()
    for row in rows:
        row["purpose"] = purposes.get(
            (row["partner"], row["contract_version"]),
            f"contract version {row['contract_version']} of {row['partner']} is not in "
            f"{contracts_dir}: see the district's contract archive",
        )
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
        click.echo(
            f"{when}Z  {row['partner']:<16} {row['decision']:<9} "
            f"v{row['contract_version']} {basis:<26} {what}"
        )
        if row["decision"] == "DISCLOSED":
            click.echo(f"{'':<22}purpose: {row['purpose']}")


@click.command()
@click.option("--partner", required=True, help="The partner (its contract's id).")
@click.option(
    "--as-of",
    "as_of",
    type=INSTANT,
    default=None,
    help="The time of the breach: ISO date or date-time, or epoch ms (default: now).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"]),
    default="table",
    show_default=True,
)
@click.option(
    "--letters",
    "letters_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write one notification letter per family (HTML) here.",
)
@click.option(
    "--template",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    default=None,
    help="The letter's template (HTML with $student_id, "
    "$partner_name, $categories, $held_since, $contact, ...; default: the one "
    "shipped with hallpass, which the district may copy and edit).",
)
@click.option(
    "--partner-name", default=None, help="The partner's name in the letters (default: its id)."
)
@click.option("--district-name", default="The district", show_default=True)
@click.option(
    "--contact",
    default="the district's data protection officer",
    show_default=True,
    help="Whom families contact, as the letters say it.",
)
@pass_context
def exposure(
    ctx: Context,
    partner: str,
    as_of: int | None,
    fmt: str,
    letters_dir: Path | None,
    template: Path | None,
    partner_name: str | None,
    district_name: str,
    contact: str,
) -> None:
    """Breach exposure (8 NYCRR 121.10): every student whose data PARTNER held at a time,
    with the categories and fields held, since when, under which basis and contract
    version, from the audit ledger (retractions taken into account); then counts per
    category and per district. With --letters, one notification per family."""
    from connectors.partner.exposure import DEFAULT_LETTER, family_letters, read_exposure

    at = as_of if as_of is not None else int(time.time() * 1000)
    found = read_exposure(ctx.connection(), partner, at, ctx.topics().audit)
    rows = [
        {
            "student_id": h.student_id,
            "district_id": h.district_id,
            "partner_student_key": h.partner_student_key,
            "since": _iso(h.since),
            "last_disclosed": _iso(h.last_disclosed),
            "categories": sorted(h.categories),
            "fields": sorted(h.fields),
            "legal_basis": sorted(h.legal_bases),
            "contract_version": h.contract_version,
        }
        for h in found.held
    ]
    if fmt == "json":
        click.echo(
            json.dumps(
                {
                    "partner": partner,
                    "as_of": _iso(at),
                    "students": rows,
                    "by_category": found.by_category(),
                    "by_district": found.by_district(),
                },
                indent=2,
            )
        )
    elif fmt == "csv":
        out = csv.writer(click.get_text_stream("stdout"))
        out.writerow(list(rows[0]) if rows else ["student_id"])
        for row in rows:
            out.writerow([";".join(v) if isinstance(v, list) else v for v in row.values()])
    else:
        for held in found.held:
            click.echo(
                f"{held.student_id:<16} {held.district_id or '-':<12} since "
                f"{_iso(held.since)[:10]}  {', '.join(sorted(held.categories))}"
            )
        click.echo(f"{len(rows)} students held by {partner} at {_iso(at)}")
        for category, count in found.by_category().items():
            click.echo(f"  {category:<28} {count}")
        for district, count in found.by_district().items():
            click.echo(f"  district {district or '-':<19} {count}")
    if letters_dir is not None:
        text = (template or DEFAULT_LETTER).read_text(encoding="utf-8")
        letters = family_letters(
            found,
            text,
            partner_name or partner,
            district_name,
            contact,
            time.strftime("%B %d, %Y", time.gmtime()),
        )
        letters_dir.mkdir(parents=True, exist_ok=True)
        for name, html in letters.items():
            (letters_dir / name).write_text(html, encoding="utf-8")
        click.echo(f"wrote {len(letters)} letters to {letters_dir}", err=True)


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
