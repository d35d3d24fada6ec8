"""``hallpass publish oneroster PATH`` and ``hallpass simulate``: the SIS side."""

from __future__ import annotations

import dataclasses
import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click
from prometheus_client import CollectorRegistry

from connectors.source.config import SourceConfig
from connectors.source.rejects import Reject
from streams.commands.context import Context, pass_context, progress
from streams.commands.options import metrics_port_option
from streams.kafka.names import CONSENT
from streams.metrics import ConnectorMetrics, serve_metrics
from streams.security.client_settings import read_properties

if TYPE_CHECKING:
    from connectors.oneroster.reader import PackageReadResult


class Progress:
    """A progress line every ``every_s`` seconds on stderr, and the closing counts."""

    def __init__(self, what: str, every_s: float = 2.0) -> None:
        self.what = what
        self.every_s = every_s
        self.started = time.monotonic()
        self._last = self.started

    def tick(self, done: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            rate = done / max(now - self.started, 1e-9)
            of = f"/{total}" if total else ""
            progress(f"{self.what}: {done}{of} ({rate:.0f}/s)")

    def elapsed(self) -> float:
        return time.monotonic() - self.started


def _connector_metrics(ctx: Context, connector: str, port: int) -> ConnectorMetrics:
    registry = CollectorRegistry()
    url = serve_metrics(registry, port, ctx.settings.metrics_addr)
    if url:
        progress(f"metrics on {url}")
    return ConnectorMetrics(registry, connector)


#: Exit status of `publish oneroster` (click itself exits 2 on a usage error).
EXIT_FAILURE = 1
EXIT_REJECTED_ROWS = 3
EXIT_WITHDRAWALS_HELD = 4
ONEROSTER_EXIT_CODES = (
    "\b\nExit status:\n"
    "  0  everything published (warnings may have been written)\n"
    "  1  failure: the package cannot be read, or the broker did not acknowledge\n"
    "     everything (what was acknowledged is not published twice: run again)\n"
    "  2  usage error (a bad option; an unreadable or invalid --source)\n"
    "  3  published, but some rows were rejected (<PATH>.rejects.csv)\n"
    "  4  published, but the withdrawals were held back by the guard\n"
    "     (run again with --confirm-withdrawals if the export is complete)"
)


EDFI_EXIT_CODES = (
    "\b\nExit status:\n"
    "  0  everything published (warnings may have been written)\n"
    "  1  failure: the load cannot be read, or the broker did not acknowledge\n"
    "     everything (what was acknowledged is not published twice: run again)\n"
    "  2  usage error (a bad option; an unreadable or invalid --source or --descriptors)\n"
    "  3  published, but some records or files were rejected (<PATH>.rejects.csv)"
)


@click.group()
def publish() -> None:
    """Publish SIS exports as StudentRecordChanged events."""


@publish.command("oneroster", epilog=ONEROSTER_EXIT_CODES)
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--source",
    "source_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Source configuration of this SIS connection (YAML: "
    "source id, district_id, student_key, dates, extensions, withdrawals).",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="State store of the source: what was delivered and the "
    "last accepted entities (default: <data dir>/oneroster/<source>.sqlite3).",
)
@click.option(
    "--district",
    default=None,
    help="District id for students whose orgs name none (overrides the source "
    "configuration's district_id).",
)
@click.option(
    "--confirm-withdrawals",
    is_flag=True,
    help="Withdraw the students missing from this bulk even when they are more "
    "than the configured share (default 10%) of those published before.",
)
@metrics_port_option(default=0)
@pass_context
def publish_oneroster(
    ctx: Context,
    path: Path,
    source_file: Path | None,
    state_path: Path | None,
    district: str | None,
    confirm_withdrawals: bool,
    metrics_port: int,
) -> None:
    """Publish a OneRoster 1.0, 1.1 or 1.2 CSV package (directory or zip), bulk or delta,
    as one event per student.

    The package is joined with the stored state of its source, so a delta carrying only
    the files that changed (the others marked absent) rebuilds each student in full. A
    student published before and missing from a bulk export is withdrawn (DELETE).
    Students whose content did not change since the last delivered publish are skipped.

    Bad rows are rejected (file:line:column: reason) into <PATH>.rejects.csv; tolerated
    problems (unknown columns, bad optional values) go to <PATH>.warnings.csv.
    """
    from connectors.oneroster import read_package
    from connectors.oneroster.publish import publish_result
    from connectors.source.publisher import EventPublisher, sis_topics
    from connectors.source.state import SourceStateStore

    config = _source_config(source_file)
    if district:
        config = dataclasses.replace(config, district_id=district)
    metrics = _connector_metrics(ctx, "oneroster", metrics_port)
    store = SourceStateStore(
        state_path or ctx.data_dir / "oneroster" / f"{config.source_id}.sqlite3"
    )
    try:
        result = read_package(path, config=config, store=store, progress=progress)
        _report_read(result, metrics)
        topics = ctx.topics()
        publisher = EventPublisher(ctx.connection(), sis_topics(topics), metrics=metrics)
        meter = Progress("publishing")
        outcome = publish_result(
            result,
            store,
            publisher,
            topics.changes,
            max_share=config.withdrawal_max_share,
            confirm_withdrawals=confirm_withdrawals,
            tick=meter.tick,
            on_unchanged=metrics.unchanged,
        )
    finally:
        store.close()
    click.echo(
        f"{result.mode} package {path} (OneRoster {result.version}): read "
        f"{result.rows_read} rows, {len(result.events)} students; published "
        f"{outcome.acknowledged}, unchanged {outcome.unchanged}, rejected "
        f"{result.rejected} rows, withdrawn {outcome.withdrawn}, warnings "
        f"{len(result.warnings)} in {meter.elapsed():.1f}s"
        + (f"; rejects in {result.rejects_path}" if result.rejected else "")
    )
    if outcome.guard is not None:
        click.echo(f"withdrawals held back: {outcome.guard}", err=True)
        click.get_current_context().exit(EXIT_WITHDRAWALS_HELD)
    if result.rejected:
        click.get_current_context().exit(EXIT_REJECTED_ROWS)


def _source_config(source_file: Path | None) -> SourceConfig:
    from connectors.oneroster import EXTENSION_ENTITIES, KEY_FIELDS, TYPED_KEY_FIELDS
    from connectors.source.config import SourceConfigError, load_source_config

    if source_file is None:
        return SourceConfig()
    try:
        return load_source_config(
            source_file,
            key_fields=KEY_FIELDS,
            typed_key_fields=TYPED_KEY_FIELDS,
            extension_entities=EXTENSION_ENTITIES,
        )
    except SourceConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--source") from exc


def _report_read(result: PackageReadResult, metrics: ConnectorMetrics) -> None:
    """Count what a connector read and rejected, and print its rejects and warnings."""
    metrics.read(result.rows_read)
    for reject in result.rejects:
        metrics.rejected(reject.file, reject.column)
    _show("rejected", result.rejects, result.rejects_path)
    _show("warning", result.warnings, result.warnings_path)


def _show(what: str, items: Sequence[Reject], path: Path | None, limit: int = 20) -> None:
    for item in items[:limit]:
        click.echo(f"{what} {item.message}", err=True)
    if len(items) > limit:
        click.echo(f"... and {len(items) - limit} more in {path}", err=True)


@click.command()
@click.option(
    "--students",
    type=int,
    default=2000,
    show_default=True,
    help="Students in the simulated district(s).",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Same seed, same district and same stream of changes.",
)
@click.option(
    "--days",
    type=int,
    default=20,
    show_default=True,
    help="Simulated school days of changes after the initial load.",
)
@click.option(
    "--districts",
    type=int,
    default=1,
    show_default=True,
    help="Districts (with two or more, one district opts out of a partner).",
)
@click.option(
    "--oneroster-out",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Also write the initial district as a OneRoster 1.2 bulk package to this directory.",
)
@click.option("--no-publish", is_flag=True, help="Only write the OneRoster package.")
@click.option(
    "--consent-client-properties",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    envvar="HALLPASS_CONSENT_CLIENT_PROPERTIES",
    show_envvar=True,
    help="Client properties of the consent source's principal (e.g. "
    "User:hallpass-consent), for the consent events: on a secured bus the SIS "
    "connector may write only the change topic. Default: the same client as "
    "the changes.",
)
@metrics_port_option(default=0)
@pass_context
def simulate(
    ctx: Context,
    students: int,
    seed: int,
    days: int,
    districts: int,
    oneroster_out: Path | None,
    no_publish: bool,
    consent_client_properties: Path | None,
    metrics_port: int,
) -> None:
    """Publish a realistic, reproducible district: the initial records of every student,
    then daily changes (attendance, grades, discipline, moves, withdrawals) and consent
    events (grants, revocations, opt-outs, a district opt-out), the latter as the consent
    source when --consent-client-properties names its principal."""
    from connectors.oneroster.writer import write_oneroster_package
    from connectors.simulation.stream import simulate as simulated_events
    from connectors.source.publisher import EventPublisher, sis_topics

    if oneroster_out is not None:
        summary = write_oneroster_package(students, oneroster_out, seed=seed, districts=districts)
        click.echo(
            f"wrote a OneRoster 1.2 bulk package of {len(summary.student_ids)} "
            f"students to {oneroster_out}"
        )
    if no_publish:
        return
    metrics = _connector_metrics(ctx, "simulator", metrics_port)
    conn = ctx.connection()
    topics = ctx.topics()
    publisher = EventPublisher(conn, sis_topics(topics), metrics=metrics)
    consent_publisher = publisher
    if consent_client_properties is not None:
        consent_conn = dataclasses.replace(
            conn,
            client_properties=read_properties(
                consent_client_properties, "consent client properties file"
            ),
        )
        consent_publisher = EventPublisher(consent_conn, sis_topics(topics), metrics=metrics)
    meter = Progress("publishing simulated events")
    counts: dict[str, int] = {}
    for done, event in enumerate(simulated_events(students, seed, days, districts=districts), 1):
        metrics.read()
        target = consent_publisher if event.topic == CONSENT else publisher
        topic = topics.name(event.topic)
        target.publish(topic, event.key, event.value)
        counts[topic] = counts.get(topic, 0) + 1
        meter.tick(done)
    report = publisher.close()
    if consent_publisher is not publisher:
        report.acknowledged += consent_publisher.close().acknowledged
    elapsed = meter.elapsed()
    click.echo(
        f"simulated {students} students over {days} days (seed {seed}): published "
        f"{report.acknowledged} events in {elapsed:.1f}s "
        f"({report.acknowledged / max(elapsed, 1e-9):.0f}/s): "
        + ", ".join(f"{topic} {n}" for topic, n in sorted(counts.items()))
    )


@publish.command("edfi", epilog=EDFI_EXIT_CODES)
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--source",
    "source_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Source configuration of this SIS connection (YAML: "
    "source id, district_id, student_key from StudentUniqueId (default) or "
    "StudentIdentificationCode with its system as type).",
)
@click.option(
    "--state",
    "state_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="State store of the source: what was delivered "
    "(default: <data dir>/edfi/<source>.sqlite3).",
)
@click.option(
    "--district",
    default=None,
    help="District id for students whose school names no LocalEducationAgency "
    "(overrides the source configuration's district_id).",
)
@click.option(
    "--descriptors",
    "descriptors_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Extra descriptor mappings (YAML, the shape of "
    "connectors/edfi/descriptors.yaml); its entries win.",
)
@click.option(
    "--as-of",
    "as_of",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="The date programs, IEPs and enrolments are current on (default: "
    "today in the source's time zone).",
)
@metrics_port_option(default=0)
@pass_context
def publish_edfi(
    ctx: Context,
    path: Path,
    source_file: Path | None,
    state_path: Path | None,
    district: str | None,
    descriptors_file: Path | None,
    as_of: dt.datetime | None,
    metrics_port: int,
) -> None:
    """Publish an Ed-Fi load: a directory or zip of interchange XML files (Data Standard
    4.x or 5.x, told by each file's namespace) as one event per student.

    Every interchange is optional: Student, Contact (Parent), StudentEnrollment,
    StudentAttendance, StudentDiscipline, StudentProgram, StudentAssessment, StudentGrade,
    StudentTranscript, with EducationOrganization, MasterSchedule and AssessmentMetadata
    for school, course and assessment names. A section whose interchange is not in the
    load is left null (partners keep what they had). Students whose content did not
    change since the last delivered publish are skipped.

    Descriptors map to schema codes through connectors/edfi/descriptors.yaml; an
    unknown descriptor is a warning. Bad records, unknown student references and files
    that are not Ed-Fi XML are rejected (file:line:element: reason, never a value) into
    <PATH>.rejects.csv; warnings go to <PATH>.warnings.csv.
    """
    from connectors.edfi import read_load
    from connectors.edfi.descriptors import (
        DescriptorMap,
        DescriptorTableError,
        load_tables,
    )
    from connectors.oneroster.publish import publish_result
    from connectors.source.publisher import EventPublisher, sis_topics
    from connectors.source.state import SourceStateStore

    config = _edfi_source_config(source_file)
    if district:
        config = dataclasses.replace(config, district_id=district)
    try:
        tables = load_tables(*([descriptors_file] if descriptors_file else []))
    except DescriptorTableError as exc:
        raise click.BadParameter(str(exc), param_hint="--descriptors") from exc
    metrics = _connector_metrics(ctx, "edfi", metrics_port)
    store = SourceStateStore(state_path or ctx.data_dir / "edfi" / f"{config.source_id}.sqlite3")
    try:
        result, summary = read_load(
            path,
            config=config,
            store=store,
            descriptors=DescriptorMap(tables),
            as_of=as_of.date() if as_of else None,
            progress=progress,
        )
        _report_read(result, metrics)
        topics = ctx.topics()
        publisher = EventPublisher(ctx.connection(), sis_topics(topics), metrics=metrics)
        meter = Progress("publishing")
        outcome = publish_result(
            result,
            store,
            publisher,
            topics.changes,
            tick=meter.tick,
            on_unchanged=metrics.unchanged,
        )
    finally:
        store.close()
    click.echo(
        f"Ed-Fi load {path} (Data Standard {result.version}, {len(summary.files)} "
        f"interchange files): read {result.rows_read} records, {len(result.events)} "
        f"students; published {outcome.acknowledged}, unchanged {outcome.unchanged}, "
        f"rejected {result.rejected}, warnings {len(result.warnings)} in "
        f"{meter.elapsed():.1f}s"
        + (f"; rejects in {result.rejects_path}" if result.rejected else "")
    )
    if result.rejected:
        click.get_current_context().exit(EXIT_REJECTED_ROWS)


def _edfi_source_config(source_file: Path | None) -> SourceConfig:
    from connectors.edfi import DEFAULT_KEY_RULE, KEY_FIELDS, TYPED_KEY_FIELDS
    from connectors.source.config import (
        DEFAULT_KEY_RULE as ONEROSTER_DEFAULT,
    )
    from connectors.source.config import (
        SourceConfigError,
        load_source_config,
    )

    if source_file is None:
        return SourceConfig(source_id="edfi", student_key=DEFAULT_KEY_RULE)
    try:
        config = load_source_config(
            source_file,
            key_fields=KEY_FIELDS,
            typed_key_fields=TYPED_KEY_FIELDS,
            extension_entities=(),
        )
    except SourceConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--source") from exc
    if config.student_key is ONEROSTER_DEFAULT:  # the file names no student_key
        config = dataclasses.replace(config, student_key=DEFAULT_KEY_RULE)
    return config
