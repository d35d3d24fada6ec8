"""``hallpass consent ...``: parental consent, revocations and opt-outs."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import click

from streams.commands.context import Context, pass_context, progress
from streams.commands.options import INSTANT
from streams.policy.consent import (
    ConsentEvent,
    ConsentKind,
    GrantedBy,
    SigningMethod,
    missing_provenance,
)


@click.group()
def consent() -> None:
    """Publish parental consent, revocations and opt-outs (ConsentChanged events)."""


def _publish_consent(ctx: Context, event: ConsentEvent) -> None:
    from connectors.source.publisher import EventPublisher

    topic = ctx.topics().consent
    publisher = EventPublisher(ctx.connection(), {topic: "consent_changed"})
    key = event.district_id if event.is_district_event else (event.student_id or "")
    publisher.publish(topic, key, event.to_avro())
    publisher.close()
    click.echo(
        f"published {event.kind.value} {event.event_id} (key {key}, effective {event.effective_at})"
    )


common = [
    click.option("--district", required=True, help="District id of the student."),
    click.option(
        "--effective-at",
        type=INSTANT,
        default=None,
        help="Effective time: an ISO date or date-time (UTC unless an offset is "
        "given, e.g. 2026-09-01T08:00:00-04:00) or epoch milliseconds (default: "
        "now).",
    ),
    click.option(
        "--recorded-by",
        default="hallpass-cli",
        show_default=True,
        help="Who recorded the decision.",
    ),
]


def with_common(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(common):
        fn = option(fn)
    return fn


def _event(
    kind: ConsentKind, district: str, effective_at: int | None, recorded_by: str, **fields: object
) -> ConsentEvent:
    return ConsentEvent(
        event_id=str(uuid.uuid4()),
        kind=kind,
        district_id=district,
        effective_at=effective_at or int(time.time() * 1000),
        recorded_by=recorded_by,
        source_system="hallpass-cli",
        **fields,  # type: ignore[arg-type]
    )


GRANTED_BY = {"guardian": GrantedBy.GUARDIAN, "student": GrantedBy.ELIGIBLE_STUDENT}
METHODS = {m.value.lower(): m for m in SigningMethod}
#: the option of each provenance field, to name what a grant lacks
PROVENANCE_OPTIONS = {
    "granted_by": "--granted-by",
    "guardian_id": "--guardian-id",
    "signed_at": "--signed-at",
    "method": "--method",
    "document_ref": "--document-ref",
}

GRANT_HELP = """A written consent to PARTNER for some categories, with its provenance (FERPA
99.30): who gave it (--granted-by guardian with --guardian-id, or --granted-by student once
the student is of age), when it was signed (--signed-at), how (--method) and a reference to
the signed document (--document-ref). A grant without them is refused.

Age of majority (34 CFR 99.5): from the student's 18th birthday (the birth date of the
student's record, midnight UTC; another age per district with HALLPASS_AGE_OF_MAJORITY)
a guardian's grant no longer counts: partners holding what it allowed get a retraction
(reason MAJORITY_REACHED) until the student grants it with --granted-by student. A
student's own grant counts only from that birthday on."""


@consent.command("grant", help=GRANT_HELP)
@click.option("--student", required=True)
@click.option("--partner", required=True)
@click.option(
    "--category",
    "categories",
    multiple=True,
    required=True,
    help="Data category granted (repeat for several).",
)
@click.option("--purpose", default=None)
@click.option(
    "--expires-at",
    type=INSTANT,
    default=None,
    help="When the consent expires (ISO date or date-time, or epoch ms); none = no expiry.",
)
@click.option(
    "--granted-by",
    type=click.Choice(sorted(GRANTED_BY)),
    required=True,
    help="Who gave the consent: a guardian (name them with --guardian-id), or the student "
    "once of age (an eligible student).",
)
@click.option(
    "--guardian-id",
    default=None,
    help="The guardian's id in the SIS (the record's guardians[].guardian_id); required "
    "with --granted-by guardian.",
)
@click.option(
    "--signed-at",
    type=INSTANT,
    required=True,
    help="When the consent form was signed: an ISO date or date-time, or epoch ms.",
)
@click.option(
    "--method",
    type=click.Choice(sorted(METHODS)),
    required=True,
    help="How it was signed: a paper form, the parent portal, email, or another way.",
)
@click.option(
    "--document-ref",
    required=True,
    help="A reference to the signed document (scan or portal submission id), never its contents.",
)
@with_common
@pass_context
def grant(
    ctx: Context,
    student: str,
    partner: str,
    categories: tuple[str, ...],
    purpose: str | None,
    expires_at: int | None,
    granted_by: str,
    guardian_id: str | None,
    signed_at: int,
    method: str,
    document_ref: str,
    district: str,
    effective_at: int | None,
    recorded_by: str,
) -> None:
    event = _event(
        ConsentKind.GRANT,
        district,
        effective_at,
        recorded_by,
        student_id=student,
        partner=partner,
        categories=frozenset(categories),
        purpose=purpose,
        expires_at=expires_at,
        granted_by=GRANTED_BY[granted_by],
        guardian_id=guardian_id or None,
        signed_at=signed_at,
        method=METHODS[method],
        document_ref=document_ref,
    )
    missing = missing_provenance(event)
    if missing:
        raise click.UsageError(
            f"a consent grant needs {', '.join(PROVENANCE_OPTIONS[m] for m in missing)}: "
            + (
                "a guardian's grant names the guardian (their id in the SIS)"
                if missing == ("guardian_id",)
                else "who gave it, when it was signed, how, and the signed document (FERPA 99.30)"
            )
        )
    _publish_consent(ctx, event)


@consent.command("revoke")
@click.option("--student", required=True)
@click.option("--partner", required=True)
@click.option(
    "--category",
    "categories",
    multiple=True,
    help="Category revoked (repeat; none = every category of the partner).",
)
@click.option(
    "--granted-by",
    type=click.Choice(sorted(GRANTED_BY)),
    default=None,
    help="Who revokes: a guardian, or the student once of age. A guardian's revoke dated "
    "after the student's coming of age leaves the student's own grants standing; without "
    "this option the revoke withdraws every grant.",
)
@with_common
@pass_context
def revoke(
    ctx: Context,
    student: str,
    partner: str,
    categories: tuple[str, ...],
    granted_by: str | None,
    district: str,
    effective_at: int | None,
    recorded_by: str,
) -> None:
    """A guardian or the eligible student revokes a consent."""
    _publish_consent(
        ctx,
        _event(
            ConsentKind.REVOKE,
            district,
            effective_at,
            recorded_by,
            student_id=student,
            partner=partner,
            categories=frozenset(categories),
            granted_by=None if granted_by is None else GRANTED_BY[granted_by],
        ),
    )


@consent.command("opt-out")
@click.option("--student", required=True)
@click.option("--partner", default=None, help="One partner; omit to opt out of all sharing.")
@with_common
@pass_context
def opt_out(
    ctx: Context,
    student: str,
    partner: str | None,
    district: str,
    effective_at: int | None,
    recorded_by: str,
) -> None:
    """A parent opts out of one partner, or of all sharing."""
    kind = ConsentKind.PARTNER_OPT_OUT if partner else ConsentKind.ALL_OPT_OUT
    _publish_consent(
        ctx, _event(kind, district, effective_at, recorded_by, student_id=student, partner=partner)
    )


@consent.command("directory-opt-out")
@click.option("--student", required=True)
@with_common
@pass_context
def directory_opt_out(
    ctx: Context, student: str, district: str, effective_at: int | None, recorded_by: str
) -> None:
    """A parent opts out of FERPA directory disclosure (34 CFR 99.37)."""
    _publish_consent(
        ctx,
        _event(
            ConsentKind.DIRECTORY_OPT_OUT, district, effective_at, recorded_by, student_id=student
        ),
    )


@consent.command("district-opt-out")
@click.option("--partner", required=True)
@with_common
@pass_context
def district_opt_out(
    ctx: Context, partner: str, district: str, effective_at: int | None, recorded_by: str
) -> None:
    """A district opts out of PARTNER: none of its students flows to it."""
    _publish_consent(
        ctx,
        _event(ConsentKind.DISTRICT_OPT_OUT, district, effective_at, recorded_by, partner=partner),
    )


CONSENT_IMPORT_EXIT_CODES = (
    "\b\nExit status:\n"
    "  0  every row published\n"
    "  1  failure: the file cannot be read, or the broker did not acknowledge everything\n"
    "     (importing the same file again publishes the same event ids)\n"
    "  3  published, but some rows were rejected (<FILE>.rejects.csv)"
)


@consent.command("import", epilog=CONSENT_IMPORT_EXIT_CODES)
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Read and check the file; publish nothing.")
@pass_context
def import_(ctx: Context, path: Path, dry_run: bool) -> None:
    """Publish a CSV file of consent decisions, one event per row (columns: kind,
    student_id, district_id, partner, categories separated by ';', effective_at, expires_at,
    purpose, recorded_by, and for a grant its provenance: granted_by (guardian or student),
    guardian_id, signed_at, method (paper, portal, email, other), document_ref; times as ISO
    dates or date-times, or epoch ms). Rows that cannot become an event (a grant without
    its provenance among them) go to FILE.rejects.csv with the line, column and reason."""
    from connectors.source.consent_csv import read_consent_csv
    from connectors.source.publisher import EventPublisher
    from connectors.source.rejects import rejects_path_for, write_rejects

    found = read_consent_csv(path)
    progress(
        f"read {len(found.events)} consent events, rejected {len(found.rejects)} rows of {path}"
    )
    if found.rejects:
        target = rejects_path_for(path)
        write_rejects(target, found.rejects)
        for reject in found.rejects[:5]:
            progress(f"  {reject}")
        progress(f"rejected rows: {target}")
    if not dry_run and found.events:
        topic = ctx.topics().consent
        publisher = EventPublisher(ctx.connection(), {topic: "consent_changed"})
        for event in found.events:
            key = event.district_id if event.is_district_event else (event.student_id or "")
            publisher.publish(topic, key, event.to_avro())
        publisher.close()
    verb = "checked" if dry_run else "published"
    click.echo(f"{verb} {len(found.events)} consent events from {path}")
    if found.rejects:
        ctx_exit = click.get_current_context()
        ctx_exit.exit(3)
