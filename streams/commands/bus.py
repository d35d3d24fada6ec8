"""``hallpass contracts``, ``process``, ``consent``, ``disclosures``, ``vendor``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from prometheus_client import CollectorRegistry

from connectors.partner.auditor import read_disclosures
from streams.commands.context import Context, pass_context, progress
from streams.metrics import metrics_port_option, serve_metrics
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.consent import ConsentEvent, ConsentKind
from streams.policy.contracts import (
    check_contracts,
    contract_files,
    lock_contracts,
    review_contracts,
)
from streams.processor.app import apply_contracts, run_processor
from streams.processor.clock import ManualClock
from streams.processor.loop import LoopStats
from streams.settings import ENV_SECRETS_FILE

DEFAULT_CONTRACTS = Path("deploy/contracts")
ENV_CONTRACTS_DIR = "HALLPASS_CONTRACTS_DIR"
F = TypeVar("F", bound=Callable[..., Any])

contracts_dir_option = click.option(
    "--contracts", "contracts_dir", type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_CONTRACTS, show_default=True, envvar=ENV_CONTRACTS_DIR,
    show_envvar=True, help="Directory of partner contracts (one YAML file per partner).",
)


def partner_secrets_option(help_text: str) -> Callable[[F], F]:
    return click.option("--partner-secrets", type=click.Path(dir_okay=False, path_type=Path),
                        default=None, help=help_text)


def register(group: click.Group) -> None:
    @group.group()
    def contracts() -> None:
        """Partner contracts: check them, apply them to the bus."""

    @contracts.command("check")
    @click.argument("directory", required=False, type=click.Path(path_type=Path),
                    default=DEFAULT_CONTRACTS)
    @click.pass_context
    def contracts_check(click_ctx: click.Context, directory: Path) -> None:
        """Validate every contract in DIRECTORY against the student schema and its lock.

        Each problem is printed as `file: key: reason`; the exit status is 1 if any. A
        contract whose allowances now cover fields its locked version does not hold (leaves
        the schema gained) is printed as `file: review: ...`, exit status 2: those fields
        reach no partner until the version is bumped and locked again.
        """
        catalog = field_catalog(load_schema("student_record_changed"))
        errors = check_contracts(directory, catalog)
        for error in errors:
            click.echo(str(error), err=True)
        files = contract_files(directory) if directory.is_dir() else []
        if errors:
            raise click.ClickException(f"{len(errors)} problem(s) in {directory}")
        reviews = review_contracts(directory, catalog)
        for review in reviews:
            click.echo(str(review), err=True)
        if reviews:
            click.echo(f"{len(reviews)} contract(s) in {directory} need review", err=True)
            click_ctx.exit(2)
        click.echo(f"{len(files)} contract(s) in {directory}: OK")

    @contracts.command("lock")
    @click.argument("directory", required=False, type=click.Path(path_type=Path),
                    default=DEFAULT_CONTRACTS)
    @click.option("--partner", default=None, help="Lock only this partner's contract.")
    def contracts_lock(directory: Path, partner: str | None) -> None:
        """Record the fields each contract version resolves to, with their basis, in
        `<partner>.lock.yaml` beside it: the frozen field list the processor uses. Review the
        lock with the contract. A version already locked with other fields is refused: bump
        its `version` first."""
        catalog = field_catalog(load_schema("student_record_changed"))
        results = lock_contracts(directory, catalog, partner)
        if partner is not None and not results:
            raise click.ClickException(f"no contract of partner {partner!r} in {directory}")
        for result in results:
            if not result.written:
                click.echo(f"{result.partner}: version {result.version} already locked")
                continue
            changes = "".join([
                f"; added {', '.join(result.added)}" if result.added else "",
                f"; removed {', '.join(result.removed)}" if result.removed else ""])
            click.echo(f"{result.partner}: locked version {result.version} in "
                       f"{result.path}{changes}")

    @contracts.command("apply")
    @contracts_dir_option
    @partner_secrets_option(
        "JSON file {partner: hex secret} of the pseudonym secrets (default: $"
        + ENV_SECRETS_FILE + " or <data dir>/partner-secrets.json). Partners without a secret "
        "get a new one here, and only here; each partner's secret fingerprint is recorded on "
        "the bus so that a worker with other secrets refuses to start.")
    @pass_context
    def contracts_apply(ctx: Context, contracts_dir: Path, partner_secrets: Path | None) -> None:
        """Create the bus's and each partner's topics (retention and cleanup as `hallpass
        topics plan` shows; existing topics whose settings differ are reported, see `hallpass
        topics check`) and register the partner's view schema, derived from its contract,
        under the topic's value subject; make and record the partners' pseudonym secrets."""
        applied_contracts = apply_contracts(
            ctx.connection(), contracts_dir, ctx.topics(),
            secrets_file=ctx.secrets_file(partner_secrets), note=progress,
            settings=ctx.topic_settings())
        for applied in applied_contracts:
            click.echo(f"{applied.partner:<20} {applied.topic:<40} schema id "
                       f"{applied.schema_id:<4} {applied.fields} fields")

    @group.command()
    @contracts_dir_option
    @click.option("--until-idle", is_flag=True,
                  help="Exit once every input partition is caught up (demo, tests, benchmarks).")
    @click.option("--worker", type=int, default=0, show_default=True,
                  help="Worker number; each concurrent worker needs its own.")
    @partner_secrets_option(
        "JSON file {partner: hex secret} of the bus's pseudonym secrets (default: $"
        + ENV_SECRETS_FILE + " or <data dir>/partner-secrets.json). Made by `hallpass "
        "contracts apply`; every worker needs the same file.")
    @click.option("--batch-size", type=click.IntRange(min=1), default=5000, show_default=True,
                  help="Most input events per transaction.")
    @click.option("--timer-interval", type=click.FloatRange(min=0.1, max=60), default=5.0,
                  show_default=True, help="Seconds between checks of what came due with no "
                  "event (consent expiries, contract and district dates): how late at most a "
                  "time-driven retraction is sent.")
    @click.option("--future-skew-hours", type=click.FloatRange(min=0), default=24.0,
                  show_default=True, help="A change dated further than this ahead of the "
                  "processing time is a dead letter (reason future_dated), never trusted.")
    @click.option("--frozen-clock", type=int, default=None, hidden=True,
                  help="Testing only: decide at this fixed time (epoch ms) instead of the "
                  "wall clock.")
    @metrics_port_option(default=0)
    @pass_context
    def process(ctx: Context, contracts_dir: Path, until_idle: bool, worker: int,
                partner_secrets: Path | None, batch_size: int, timer_interval: float,
                future_skew_hours: float, frozen_clock: int | None, metrics_port: int) -> None:
        """Run the consent-aware processor (exactly once, Kafka transactions).

        Reads sis.student.changes and consent.events; writes each partner's contracted view to
        partner.<id>.students, tombstones and deletion notices on retraction, one audit record
        per decision to audit.disclosures, and bad input to sis.student.changes.dlq.

        Run several workers (distinct --worker numbers, same secrets file) for more
        throughput: each student is decided on the partition Kafka's default partitioner
        gives its id, whatever client published it (records elsewhere are forwarded through
        hallpass.processor.repartition), and every worker follows every district opt-out.
        Decisions are taken at the wall-clock time; a change dated more than 24 h ahead is a
        dead letter.

        With HALLPASS_TOPIC_PREFIX set, every topic name, subject and group takes the prefix.
        """
        clock = None
        if frozen_clock is not None:
            progress(f"testing only: the clock is frozen at {frozen_clock} (not the wall clock)")
            clock = ManualClock(frozen_clock)
        registry = CollectorRegistry()
        url = serve_metrics(registry, metrics_port, ctx.settings.metrics_addr)
        if url:
            progress(f"metrics on {url}")
        started = time.monotonic()
        last = [0.0]

        def show(stats: LoopStats) -> None:
            now = time.monotonic()
            if now - last[0] >= 2.0:
                last[0] = now
                rate = stats.consumed / max(now - started, 1e-9)
                progress(f"processed {stats.consumed} events ({rate:.0f}/s), "
                         f"{stats.produced} records out")

        stats, handler = run_processor(
            ctx.connection(), contracts_dir, ctx.secrets_file(partner_secrets),
            until_idle, worker, progress, show, batch_size=batch_size, topics=ctx.topics(),
            metrics=registry if url else None, tick_interval_s=timer_interval, clock=clock,
            future_skew_ms=int(future_skew_hours * 3_600_000),
            topic_settings=ctx.topic_settings())
        elapsed = time.monotonic() - started
        counters = handler.counters
        busy = max(stats.last_commit_at - stats.first_batch_at, 1e-9)
        click.echo(f"restored {stats.restored} table records in {stats.restore_s:.1f}s; "
                   f"busy {busy:.1f}s ({stats.consumed / busy:.0f} events/s)")
        click.echo(f"processed {stats.consumed} events in {elapsed:.1f}s "
                   f"({counters.changes} changes, {counters.consent_events} consent events, "
                   f"{counters.dead_letters} dead letters)")
        for partner in sorted({r.partner for r in handler.routes}):
            withheld = {r: n for (p, r), n in counters.withheld.items() if p == partner}
            retracted = {r: n for (p, r), n in counters.retracted.items() if p == partner}
            click.echo(f"  {partner:<18} disclosed {counters.disclosed.get(partner, 0):>6}  "
                       f"withheld {sum(withheld.values()):>6} {withheld or ''}  "
                       f"retracted {sum(retracted.values())} {retracted or ''}")

    @group.group()
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

    @group.command()
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

    @group.group()
    def vendor() -> None:
        """The vendor's side: what a partner sees on its topic."""

    @vendor.command("pull")
    @click.option("--partner", required=True)
    @click.option("--group", "group_id", default=None,
                  help="Consumer group (default: <partner>-vendor).")
    @click.option("--copy", "copy_path", type=click.Path(dir_okay=False, path_type=Path),
                  default=None, help="SQLite file for the local copy "
                  "(default: <data dir>/vendor-<partner>.sqlite).")
    @click.option("--show", type=int, default=1, show_default=True,
                  help="Print this many records of the copy.")
    @pass_context
    def vendor_pull(ctx: Context, partner: str, group_id: str | None, copy_path: Path | None,
                    show: int) -> None:
        """Read partner.<PARTNER>.students (read_committed) into a local copy; tombstones
        delete."""
        from connectors.partner.vendor import VendorCopy, sync_partner_topic

        copy = VendorCopy(copy_path or ctx.data_dir / f"vendor-{partner}.sqlite")
        report = sync_partner_topic(ctx.connection(), ctx.topics().partner(partner), copy,
                                    group_id or f"{partner}-vendor")
        click.echo(f"{partner}: {report.upserts} upserts, {report.deletes} deletions "
                   f"{report.delete_reasons or ''}; local copy holds {len(copy)} students")
        for _, (key, record) in zip(range(show), copy.records(), strict=False):
            click.echo(json.dumps({"key": key, **record}, indent=2, default=str))

