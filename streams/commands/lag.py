"""``hallpass lag`` and ``hallpass lag-exporter``: how far behind each consumer group is."""

from __future__ import annotations

import json
import signal
import threading
import time

import click
from prometheus_client import CollectorRegistry

from streams.commands.context import Context, pass_context, progress
from streams.commands.options import metrics_port_option
from streams.metrics import serve_metrics

GROUP_HELP = (
    "Only this consumer group (repeat for more; shell wildcards such as "
    "'partner-*' allowed). Default: every group."
)
TIMEOUT_HELP = "Seconds to wait for each answer of the cluster."


@click.command("lag")
@click.option("--group", "groups", multiple=True, metavar="GROUP", help=GROUP_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Sampling rounds; lag in seconds is interpolated between them and the "
    "status judged over all of them.",
)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between sampling rounds.",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0.5), default=10.0, show_default=True, help=TIMEOUT_HELP
)
@pass_context
def lag(
    ctx: Context,
    groups: tuple[str, ...],
    as_json: bool,
    samples: int,
    interval: float,
    timeout: float,
) -> None:
    """Consumer lag per group, topic and partition.

    \b
    CURRENT-OFFSET  the group's committed offset (the next record it will read)
    LOG-END-OFFSET  the offset the next record produced will get
    LAG             messages not consumed yet (their difference)
    LAG-SECONDS     age of the oldest unconsumed record: interpolated between the log
                    end offsets of the sampling rounds when they reach back that far,
                    else the Kafka timestamp of the record at the committed offset
    STATUS          OK; WARN lag grew at every round; STALL offsets did not move while
                    members own the partitions; STOP lag with no active member and no
                    commit since the last round; ERR group cannot be described

    With one sample (the default) the status only tells OK from STOP; use
    --samples 5 --interval 10 (a window longer than the groups' commit interval) to
    see WARN and STALL. PARTNER names the partner whose topic
    (partner.<id>.students) the group consumes.
    """
    from streams.lag.collect import KafkaOffsets
    from streams.lag.model import GroupSelection
    from streams.lag.render import report_json, report_table
    from streams.lag.tracker import LagSampler, LagTracker

    conn = ctx.connection(registry=False)
    sampler = LagSampler(LagTracker(ctx.topics(), window=samples))
    selection = GroupSelection(groups)
    source = KafkaOffsets(conn, timeout_s=timeout)
    try:
        for i in range(samples):
            started = time.monotonic()
            report = sampler.sample(source, selection)
            if i + 1 < samples:
                progress(f"sample {i + 1}/{samples}: {len(report.groups)} groups")
                time.sleep(max(0.0, interval - (time.monotonic() - started)))
    finally:
        source.close()
    if as_json:
        click.echo(json.dumps(report_json(report), indent=2))
    else:
        click.echo(report_table(report))


@click.command("lag-exporter")
@metrics_port_option(default=9465)
@click.option(
    "--interval",
    type=click.FloatRange(min=0.1),
    default=15.0,
    show_default=True,
    help="Seconds between sampling rounds of the cluster.",
)
@click.option("--group", "groups", multiple=True, metavar="GROUP", help=GROUP_HELP)
@click.option(
    "--window",
    type=click.IntRange(min=2),
    default=10,
    show_default=True,
    help="Sampling rounds the status rules look back over (make it span "
    "several commit intervals of the groups).",
)
@click.option(
    "--timeout", type=click.FloatRange(min=0.5), default=10.0, show_default=True, help=TIMEOUT_HELP
)
@click.option(
    "--deletion-acks",
    is_flag=True,
    help="Also serve the deletion notices each partner has not acknowledged "
    "(hallpass_deletion_acks_outstanding, hallpass_deletion_ack_oldest_outstanding_seconds); "
    "needs the registry and READ on partner.<id>.notices and .acks (the auditor's rights).",
)
@pass_context
def lag_exporter(
    ctx: Context,
    metrics_port: int,
    interval: float,
    groups: tuple[str, ...],
    window: int,
    timeout: float,
    deletion_acks: bool,
) -> None:
    """Serve consumer lag as Prometheus metrics until stopped (SIGTERM or Ctrl-C).

    kafka_exporter's kafka_consumergroup_lag, kafka_consumergroup_current_offset and
    kafka_topic_partition_current_offset, plus hallpass_consumergroup_lag_seconds,
    hallpass_consumergroup_status, hallpass_lag_exporter_up (0 while Kafka cannot be
    reached) and hallpass_lag_exporter_scrape_duration_seconds. Partner groups carry a
    partner label. With --deletion-acks, per partner the deletion notices not acknowledged
    yet and the age of the oldest (read incrementally each interval).
    """
    from streams.lag.collect import KafkaOffsets
    from streams.lag.exporter import LagCollector, LagExporter
    from streams.lag.model import GroupSelection
    from streams.lag.tracker import LagSampler, LagTracker

    if metrics_port <= 0:
        raise click.UsageError("the exporter serves metrics: give --metrics-port a port")
    conn = ctx.connection(registry=deletion_acks)
    exporter = LagExporter(
        connect=lambda: conn,
        open_source=lambda c: KafkaOffsets(c, timeout_s=min(timeout, interval)),
        sampler=LagSampler(LagTracker(ctx.topics(), window=window)),
        selection=GroupSelection(groups),
        note=progress,
    )
    registry = CollectorRegistry()
    registry.register(LagCollector(lambda: exporter.latest))
    stop = threading.Event()
    watcher_thread = None
    if deletion_acks:
        from connectors.partner.acks import AckCollector, AckWatcher

        watcher = AckWatcher(lambda: conn, ctx.topics(), progress)
        registry.register(AckCollector(lambda: watcher.latest))
        watcher_thread = threading.Thread(
            target=watcher.run, args=(interval, stop), name="deletion-acks", daemon=True
        )
        watcher_thread.start()
    url = serve_metrics(registry, metrics_port, ctx.settings.metrics_addr)
    which = ", ".join(groups) if groups else "every consumer group"
    progress(
        f"lag exporter: metrics on {url}; sampling {which} on "
        f"{conn.bootstrap_servers} every {interval:g}s"
    )
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        exporter.run(interval, stop)
    finally:
        exporter.close()
        if watcher_thread is not None:
            watcher_thread.join(timeout=30)
    progress("lag exporter: stopped")
