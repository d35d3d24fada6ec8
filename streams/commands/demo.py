"""``hallpass demo``: the whole bus on the running local stack, as `make demo` shows it."""

from __future__ import annotations

import json
from pathlib import Path

import click
from prometheus_client import CollectorRegistry

from streams.commands.context import Context, pass_context, progress
from streams.commands.options import ENV_CONTRACTS_DIR, metrics_port_option
from streams.kafka.names import CONSENT
from streams.metrics import serve_metrics

CONTRACTS = Path("deploy/contracts")


@click.command()
@click.option("--students", type=int, default=2000, show_default=True)
@click.option("--days", type=int, default=20, show_default=True)
@click.option("--seed", type=int, default=2014, show_default=True)
@click.option(
    "--contracts",
    "contracts_dir",
    type=click.Path(path_type=Path),
    default=CONTRACTS,
    show_default=True,
    envvar=ENV_CONTRACTS_DIR,
)
@metrics_port_option(default=9464)
@pass_context
def demo(
    ctx: Context, students: int, days: int, seed: int, contracts_dir: Path, metrics_port: int
) -> None:
    """Run the whole bus once on the running stack (start it with `hallpass up`).

    Applies the contracts, simulates two districts, processes until idle, then shows per
    partner what was disclosed, withheld (by reason) and retracted, one record as the
    vendor decodes it, one student's disclosure report, and the consumer lag of every
    group. While it runs, the processor's metrics are served on --metrics-port.
    """
    from connectors.partner.auditor import read_disclosures
    from connectors.partner.vendor import VendorCopy, sync_partner_topic
    from connectors.simulation.stream import simulate
    from connectors.source.publisher import EventPublisher, sis_topics
    from streams.processor.app import apply_contracts, run_processor

    ctx.valid_contracts(contracts_dir)
    conn = ctx.connection()
    topics = ctx.topics()
    secrets_file = ctx.secrets_file()
    click.echo(f"== bus: Kafka {conn.bootstrap_servers}, registry {conn.schema_registry_url}")
    click.echo("== 1. contracts apply")
    for applied in apply_contracts(
        conn,
        contracts_dir,
        topics,
        secrets_file=secrets_file,
        note=progress,
        settings=ctx.topic_settings(),
    ):
        click.echo(
            f"   {applied.partner:<18} -> {applied.topic} (view schema id "
            f"{applied.schema_id}, {applied.fields} fields)"
        )

    click.echo(f"== 2. simulate {students} students, 2 districts, {days} school days")
    publisher = EventPublisher(conn, sis_topics(topics))
    counts: dict[str, int] = {}
    sample_student = None
    for event in simulate(students, seed, days, districts=2):
        topic = topics.name(event.topic)
        publisher.publish(topic, event.key, event.value)
        counts[topic] = counts.get(topic, 0) + 1
        if sample_student is None and event.topic == CONSENT and event.value.get("kind") == "GRANT":
            sample_student = event.key
    report = publisher.close()
    click.echo(
        f"   published {report.acknowledged} events: "
        + ", ".join(f"{t} {n}" for t, n in sorted(counts.items()))
    )

    click.echo("== 3. process until idle (exactly once)")
    registry = CollectorRegistry()
    url = serve_metrics(registry, metrics_port, ctx.settings.metrics_addr)
    if url:
        click.echo(
            f"   processor metrics on {url} while it runs (scrape config: "
            "deploy/prometheus/prometheus.yml; a long-running `hallpass process "
            "--metrics-port 9464` serves them for good)"
        )
    stats, handler = run_processor(
        conn,
        contracts_dir,
        secrets_file,
        until_idle=True,
        worker=0,
        note=progress,
        metrics=registry if url else None,
        topics=topics,
        topic_settings=ctx.topic_settings(),
    )
    if url:
        consumed = registry.get_sample_value(
            "hallpass_processor_events_consumed_total", {"topic": topics.changes}
        )
        p99 = _quantile(registry, "hallpass_processor_latency_seconds", 0.99)
        click.echo(
            f"   metrics: hallpass_processor_events_consumed_total"
            f'{{topic="{topics.changes}"}} {consumed:.0f}; publish-to-commit p99 '
            f"<= {p99} s (the events waited for the processor to start)"
        )
    c = handler.counters
    click.echo(
        f"   {stats.consumed} events in {stats.transactions} transactions: "
        f"{c.changes} changes, {c.consent_events} consent events, "
        f"{c.dead_letters} dead letters"
    )
    click.echo(
        f"   {'partner':<18} {'disclosed':>9} {'unchanged':>9} {'withheld':>9} "
        f"{'retracted':>9} {'partly':>6}  withheld / retracted / partly by reason"
    )
    for route in handler.routes:
        p = route.partner
        withheld = {r: n for (q, r), n in c.withheld.items() if q == p}
        retracted = {r: n for (q, r), n in c.retracted.items() if q == p}
        partly = {r: n for (q, r), n in c.narrowed.items() if q == p}
        click.echo(
            f"   {p:<18} {c.disclosed.get(p, 0):>9} {c.unchanged.get(p, 0):>9} "
            f"{sum(withheld.values()):>9} {sum(retracted.values()):>9} "
            f"{sum(partly.values()):>6}  {withheld} / {retracted} / {partly}"
        )

    click.echo("== 4. what each vendor holds (read_committed, local copy)")
    for route in handler.routes:
        copy = VendorCopy()
        sync = sync_partner_topic(conn, route.contract.topic, copy, f"{route.partner}-demo-vendor")
        click.echo(
            f"   {route.partner}: {sync.upserts} upserts, {sync.deletes} deletions "
            f"-> {len(copy)} students held"
        )
        for key, record in copy.records():
            shown = {k: v for k, v in record.items() if v is not None}
            click.echo("   sample: " + json.dumps({"key": key, **shown}, default=str)[:600])
            break

    click.echo(
        "== 5. consumer lag (`hallpass lag`; `hallpass lag-exporter` serves it on :9465/metrics)"
    )
    from streams.lag.collect import KafkaOffsets
    from streams.lag.model import GroupSelection
    from streams.lag.render import report_table
    from streams.lag.tracker import LagSampler, LagTracker

    source = KafkaOffsets(conn)
    try:
        lag = LagSampler(LagTracker(topics, window=1)).sample(
            source, GroupSelection((topics.processor_group, "*-demo-vendor"))
        )
    finally:
        source.close()
    for line in report_table(lag).splitlines():
        click.echo(f"   {line}")

    if sample_student:
        click.echo(f"== 6. disclosure report of student {sample_student} (FERPA 99.32)")
        for row in read_disclosures(conn, sample_student, topics.audit)[-6:]:
            fields = ", ".join(row["fields"][:6]) + (" ..." if len(row["fields"]) > 6 else "")
            click.echo(
                f"   {row['partner']:<16} {row['decision']:<9} "
                f"v{row['contract_version']} {'/'.join(row['legal_basis']) or '-':<24}"
                f" {fields or row['reason']}"
            )


def _quantile(registry: CollectorRegistry, histogram: str, q: float) -> str:
    """The upper bound of the bucket holding quantile ``q`` of a histogram, as text."""
    buckets = []
    for family in registry.collect():
        for sample in family.samples:
            if sample.name == f"{histogram}_bucket":
                buckets.append((float(sample.labels["le"]), sample.value))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if total and count >= q * total:
            return "+Inf" if bound == float("inf") else f"{bound:g}"
    return "n/a"
