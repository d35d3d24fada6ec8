"""``hallpass process``: the consent-aware processor."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import click
from prometheus_client import CollectorRegistry

from streams.commands.context import Context, pass_context, progress
from streams.commands.options import (
    contracts_dir_option,
    metrics_port_option,
    partner_secrets_option,
)
from streams.metrics import serve_metrics
from streams.processor.app import run_processor
from streams.processor.clock import ManualClock
from streams.processor.loop import LoopStats
from streams.settings import ENV_SECRETS_FILE


@click.command()
@contracts_dir_option
@click.option(
    "--until-idle",
    is_flag=True,
    help="Exit once every input partition is caught up (demo, tests, benchmarks).",
)
@click.option(
    "--worker",
    type=int,
    default=0,
    show_default=True,
    help="Worker number; each concurrent worker needs its own.",
)
@partner_secrets_option(
    "JSON file {partner: hex secret} of the bus's pseudonym secrets (default: $"
    + ENV_SECRETS_FILE
    + " or <data dir>/partner-secrets.json). Made by `hallpass "
    "contracts apply`; every worker needs the same file."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=5000,
    show_default=True,
    help="Most input events per transaction.",
)
@click.option(
    "--timer-interval",
    type=click.FloatRange(min=0.1, max=60),
    default=5.0,
    show_default=True,
    help="Seconds between checks of what came due with no "
    "event (consent expiries, contract and district dates): how late at most a "
    "time-driven retraction is sent.",
)
@click.option(
    "--future-skew-hours",
    type=click.FloatRange(min=0),
    default=24.0,
    show_default=True,
    help="A change dated further than this ahead of the "
    "processing time is a dead letter (reason future_dated), never trusted.",
)
@click.option(
    "--frozen-clock",
    type=int,
    default=None,
    hidden=True,
    help="Testing only: decide at this fixed time (epoch ms) instead of the wall clock.",
)
@metrics_port_option(default=0)
@pass_context
def process(
    ctx: Context,
    contracts_dir: Path,
    until_idle: bool,
    worker: int,
    partner_secrets: Path | None,
    batch_size: int,
    timer_interval: float,
    future_skew_hours: float,
    frozen_clock: int | None,
    metrics_port: int,
) -> None:
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
            progress(
                f"processed {stats.consumed} events ({rate:.0f}/s), {stats.produced} records out"
            )

    ctx.valid_contracts(contracts_dir)
    conn = ctx.connection()
    conn = dataclasses.replace(conn, client_id=f"{conn.client_id}-{worker}")
    stats, handler = run_processor(
        conn,
        contracts_dir,
        ctx.secrets_file(partner_secrets),
        until_idle,
        worker,
        progress,
        show,
        batch_size=batch_size,
        topics=ctx.topics(),
        metrics=registry if url else None,
        tick_interval_s=timer_interval,
        clock=clock,
        future_skew_ms=int(future_skew_hours * 3_600_000),
        topic_settings=ctx.topic_settings(),
        known_districts=ctx.settings.known_districts,
        majority_ages=ctx.settings.majority_ages,
    )
    elapsed = time.monotonic() - started
    counters = handler.counters
    busy = max(stats.last_commit_at - stats.first_batch_at, 1e-9)
    click.echo(
        f"restored {stats.restored} table records in {stats.restore_s:.1f}s; "
        f"busy {busy:.1f}s ({stats.consumed / busy:.0f} events/s)"
    )
    click.echo(
        f"processed {stats.consumed} events in {elapsed:.1f}s "
        f"({counters.changes} changes, {counters.consent_events} consent events, "
        f"{counters.dead_letters} dead letters)"
    )
    for partner in sorted({r.partner for r in handler.routes}):
        withheld = {r: n for (p, r), n in counters.withheld.items() if p == partner}
        retracted = {r: n for (p, r), n in counters.retracted.items() if p == partner}
        click.echo(
            f"  {partner:<18} disclosed {counters.disclosed.get(partner, 0):>6}  "
            f"withheld {sum(withheld.values()):>6} {withheld or ''}  "
            f"retracted {sum(retracted.values())} {retracted or ''}"
        )
