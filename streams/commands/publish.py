"""``hallpass publish oneroster PATH`` and ``hallpass simulate``: the SIS side."""

from __future__ import annotations

import functools
import time
from pathlib import Path

import click
from prometheus_client import CollectorRegistry

from streams.commands.context import Context, pass_context, progress
from streams.metrics import ConnectorMetrics, metrics_port_option, serve_metrics
from streams.topics import CHANGES


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
    url = serve_metrics(registry, port, ctx.env)
    if url:
        progress(f"metrics on {url}")
    return ConnectorMetrics(registry, connector)


def register(group: click.Group) -> None:
    register_simulate(group)

    @group.group()
    def publish() -> None:
        """Publish SIS exports as StudentRecordChanged events."""

    @publish.command("oneroster")
    @click.argument("path", type=click.Path(path_type=Path))
    @click.option("--state", "state_path", type=click.Path(dir_okay=False, path_type=Path),
                  default=None, help="Fingerprint store that makes a re-run of an unchanged "
                  "bulk export publish nothing (default: <data dir>/oneroster-fingerprints.db).")
    @click.option("--district", default=None,
                  help="District id for orgs that name none (single-district packages).")
    @metrics_port_option(default=0)
    @pass_context
    def publish_oneroster(ctx: Context, path: Path, state_path: Path | None,
                          district: str | None, metrics_port: int) -> None:
        """Publish a OneRoster 1.2 CSV package (directory or zip with manifest.csv), bulk or
        delta, as one event per student.

        Bad rows are rejected with file:line:column: reason, written to <PATH>.rejects.csv
        and counted; the rest is published. Students whose content did not change since
        the last delivered publish are skipped. Exit status: 0 all published, 2 some rows
        rejected, 1 failure (nothing half-published: re-run to finish).
        """
        from connectors.fingerprints import FingerprintStore, fingerprint
        from connectors.oneroster import OneRosterPackageError, read_package
        from connectors.publisher import EventPublisher, PublishError

        metrics = _connector_metrics(ctx, "oneroster", metrics_port)
        try:
            result = read_package(path, default_district_id=district)
        except OneRosterPackageError as exc:
            raise click.ClickException(str(exc)) from exc
        metrics.read(result.rows_read)
        for reject in result.rejects:
            metrics.rejected(reject.file, reject.column)
        for reject in result.rejects[:20]:
            click.echo(f"rejected {reject.message}", err=True)
        if result.rejected > 20:
            click.echo(f"... and {result.rejected - 20} more in {result.rejects_path}", err=True)
        store = FingerprintStore(state_path or ctx.data_dir / "oneroster-fingerprints.db")
        publisher = EventPublisher(ctx.connection(), metrics=metrics)
        meter = Progress("publishing")
        unchanged = 0
        try:
            for done, event in enumerate(result.events, 1):
                fp = fingerprint(event.value)
                if event.operation == "UPSERT" and not store.changed(event.key, fp):
                    unchanged += 1
                    metrics.unchanged()
                    continue
                on_delivered = (functools.partial(store.forget, event.key)
                                if event.operation == "DELETE"
                                else functools.partial(store.mark_delivered, event.key, fp))
                publisher.publish(CHANGES, event.key, event.value, on_delivered)
                meter.tick(done, len(result.events))
            report = publisher.close()
        except PublishError as exc:
            raise click.ClickException(str(exc)) from exc
        finally:
            store.close()
        click.echo(
            f"{result.mode} package {path}: read {result.rows_read} rows, "
            f"{len(result.events)} students; published {report.acknowledged}, "
            f"unchanged {unchanged}, rejected {result.rejected} rows "
            f"in {meter.elapsed():.1f}s"
            + (f"; rejects in {result.rejects_path}" if result.rejected else "")
        )
        if result.rejected:
            ctx_exit = click.get_current_context()
            ctx_exit.exit(2)


def register_simulate(group: click.Group) -> None:
    @group.command()
    @click.option("--students", type=int, default=2000, show_default=True,
                  help="Students in the simulated district(s).")
    @click.option("--seed", type=int, default=1, show_default=True,
                  help="Same seed, same district and same stream of changes.")
    @click.option("--days", type=int, default=20, show_default=True,
                  help="Simulated school days of changes after the initial load.")
    @click.option("--districts", type=int, default=1, show_default=True,
                  help="Districts (with two or more, one district opts out of a partner).")
    @click.option("--oneroster-out", type=click.Path(file_okay=False, path_type=Path),
                  default=None, help="Also write the initial district as a OneRoster 1.2 bulk "
                  "package to this directory.")
    @click.option("--no-publish", is_flag=True, help="Only write the OneRoster package.")
    @metrics_port_option(default=0)
    @pass_context
    def simulate(ctx: Context, students: int, seed: int, days: int, districts: int,
                 oneroster_out: Path | None, no_publish: bool, metrics_port: int) -> None:
        """Publish a realistic, reproducible district: the initial records of every student,
        then daily changes (attendance, grades, discipline, moves, withdrawals) and consent
        events (grants, revocations, opt-outs, a district opt-out)."""
        from connectors.oneroster_writer import write_oneroster_package
        from connectors.publisher import EventPublisher, PublishError
        from connectors.simulator import simulate as simulated_events

        if oneroster_out is not None:
            summary = write_oneroster_package(students, oneroster_out, seed=seed,
                                              districts=districts)
            click.echo(f"wrote a OneRoster 1.2 bulk package of {len(summary.student_ids)} "
                       f"students to {oneroster_out}")
        if no_publish:
            return
        metrics = _connector_metrics(ctx, "simulator", metrics_port)
        publisher = EventPublisher(ctx.connection(), metrics=metrics)
        meter = Progress("publishing simulated events")
        counts: dict[str, int] = {}
        try:
            for done, event in enumerate(
                simulated_events(students, seed, days, districts=districts), 1
            ):
                metrics.read()
                publisher.publish(event.topic, event.key, event.value)
                counts[event.topic] = counts.get(event.topic, 0) + 1
                meter.tick(done)
            report = publisher.close()
        except PublishError as exc:
            raise click.ClickException(str(exc)) from exc
        elapsed = meter.elapsed()
        click.echo(
            f"simulated {students} students over {days} days (seed {seed}): published "
            f"{report.acknowledged} events in {elapsed:.1f}s "
            f"({report.acknowledged / max(elapsed, 1e-9):.0f}/s): "
            + ", ".join(f"{topic} {n}" for topic, n in sorted(counts.items()))
        )
