"""``hallpass consent ...``: parental consent, revocations and opt-outs."""

from __future__ import annotations

import time
import uuid

import click

from streams.commands.context import Context, pass_context
from streams.policy.consent import ConsentEvent, ConsentKind


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
    click.echo(f"published {event.kind.value} {event.event_id} "
               f"(key {key}, effective {event.effective_at})")


common = [
    click.option("--district", required=True, help="District id of the student."),
    click.option("--effective-at", type=int, default=None,
                 help="Effective time, epoch milliseconds (default: now)."),
    click.option("--recorded-by", default="hallpass-cli", show_default=True,
                 help="Who recorded the decision."),
]


def with_common(fn: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(common):
        fn = option(fn)
    return fn


def _event(kind: ConsentKind, district: str, effective_at: int | None, recorded_by: str,
           **fields: object) -> ConsentEvent:
    return ConsentEvent(
        event_id=str(uuid.uuid4()), kind=kind, district_id=district,
        effective_at=effective_at or int(time.time() * 1000), recorded_by=recorded_by,
        source_system="hallpass-cli", **fields,  # type: ignore[arg-type]
    )


@consent.command("grant")
@click.option("--student", required=True)
@click.option("--partner", required=True)
@click.option("--category", "categories", multiple=True, required=True,
              help="Data category granted (repeat for several).")
@click.option("--purpose", default=None)
@click.option("--expires-at", type=int, default=None, help="Epoch ms; none = no expiry.")
@with_common
@pass_context
def grant(ctx: Context, student: str, partner: str, categories: tuple[str, ...],
          purpose: str | None, expires_at: int | None, district: str,
          effective_at: int | None, recorded_by: str) -> None:
    """A parent grants written consent to PARTNER for some categories."""
    _publish_consent(ctx, _event(ConsentKind.GRANT, district, effective_at, recorded_by,
                                 student_id=student, partner=partner,
                                 categories=frozenset(categories), purpose=purpose,
                                 expires_at=expires_at))


@consent.command("revoke")
@click.option("--student", required=True)
@click.option("--partner", required=True)
@click.option("--category", "categories", multiple=True,
              help="Category revoked (repeat; none = every category of the partner).")
@with_common
@pass_context
def revoke(ctx: Context, student: str, partner: str, categories: tuple[str, ...],
           district: str, effective_at: int | None, recorded_by: str) -> None:
    """A parent revokes a consent."""
    _publish_consent(ctx, _event(ConsentKind.REVOKE, district, effective_at, recorded_by,
                                 student_id=student, partner=partner,
                                 categories=frozenset(categories)))


@consent.command("opt-out")
@click.option("--student", required=True)
@click.option("--partner", default=None, help="One partner; omit to opt out of all sharing.")
@with_common
@pass_context
def opt_out(ctx: Context, student: str, partner: str | None, district: str,
            effective_at: int | None, recorded_by: str) -> None:
    """A parent opts out of one partner, or of all sharing."""
    kind = ConsentKind.PARTNER_OPT_OUT if partner else ConsentKind.ALL_OPT_OUT
    _publish_consent(ctx, _event(kind, district, effective_at, recorded_by,
                                 student_id=student, partner=partner))


@consent.command("directory-opt-out")
@click.option("--student", required=True)
@with_common
@pass_context
def directory_opt_out(ctx: Context, student: str, district: str,
                      effective_at: int | None, recorded_by: str) -> None:
    """A parent opts out of FERPA directory disclosure (34 CFR 99.37)."""
    _publish_consent(ctx, _event(ConsentKind.DIRECTORY_OPT_OUT, district, effective_at,
                                 recorded_by, student_id=student))


@consent.command("district-opt-out")
@click.option("--partner", required=True)
@with_common
@pass_context
def district_opt_out(ctx: Context, partner: str, district: str, effective_at: int | None,
                     recorded_by: str) -> None:
    """A district opts out of PARTNER: none of its students flows to it."""
    _publish_consent(ctx, _event(ConsentKind.DISTRICT_OPT_OUT, district, effective_at,
                                 recorded_by, partner=partner))
