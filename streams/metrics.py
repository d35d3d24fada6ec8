"""Prometheus metrics of the processor and the connectors.

Every metric lives in a :class:`~prometheus_client.CollectorRegistry` passed in, never the
global one, so a test reads fresh values after a known input. Labels are few and bounded
(topic, partner, action, reason, category, stage, connector); never a student id.

The processor's decision counts are not incremented in the hot path: a collector reads the
handler's own counters when Prometheus scrapes (``ProcessorCollector``). Latencies are
histograms observed once per message (end to end) and once per batch (stages).
"""

from __future__ import annotations

import importlib.metadata
import logging
import platform
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.errors import HallpassError

log = logging.getLogger("hallpass.metrics")

ENV_METRICS_PORT = "HALLPASS_METRICS_PORT"
ENV_METRICS_ADDR = "HALLPASS_METRICS_ADDR"

#: end-to-end latency buckets (seconds): a transaction commits every batch, so sub-second
#: values are the norm and tens of seconds mean a backlog
LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
STAGE_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class MetricsPortError(HallpassError):
    """Metrics cannot be served on the port asked for."""


def serve_metrics(registry: CollectorRegistry, port: int, addr: str = "127.0.0.1") -> str | None:
    """Serve ``registry`` on ``addr``:``port`` in a daemon thread; returns the URL, None when
    off."""
    if port <= 0:
        return None
    register_build_info(registry)
    try:
        start_http_server(port, addr=addr, registry=registry)
    except OSError as exc:
        raise MetricsPortError(
            f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}. Choose another "
            f"port with --metrics-port (or ${ENV_METRICS_PORT}; 0 turns metrics off)."
        ) from exc
    return f"http://{addr}:{port}/metrics"


def build_info() -> dict[str, str]:
    """What is running: hallpass's version and those of Python and the Kafka client."""
    import confluent_kafka

    try:
        version = importlib.metadata.version("hallpass")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {
        "version": version,
        "python": platform.python_version(),
        "confluent_kafka": confluent_kafka.version()[0],
        "librdkafka": confluent_kafka.libversion()[0],
    }


def register_build_info(registry: CollectorRegistry) -> None:
    """``hallpass_build_info{version,python,confluent_kafka,librdkafka} 1`` on ``registry``
    (once): which release each process runs, for dashboards and rollouts."""
    if registry.get_sample_value("hallpass_build_info", build_info()) is not None:
        return
    Gauge(
        "hallpass_build_info",
        "The hallpass release and client libraries this process runs (value 1).",
        labelnames=sorted(build_info()),
        registry=registry,
    ).labels(**build_info()).set(1)


# -- processor ---------------------------------------------------------------------------
class DecisionCounts(Protocol):
    """What the processor's handler counts (``streams.processor.handlers.Counters``)."""

    disclosed: dict[str, int]
    withheld: dict[tuple[str, str], int]
    retracted: dict[tuple[str, str], int]
    narrowed: dict[tuple[str, str], int]
    unchanged: dict[str, int]
    dead_letters_by_reason: dict[str, int]
    skipped: dict[str, int]
    repartitioned: int


@dataclass(frozen=True)
class ProcessorSources:
    """Where the collector reads at scrape time; each callable is cheap and thread-safe
    enough (copies of plain dicts, ``len`` of dicts)."""

    counts: Callable[[], DecisionCounts]
    consumed_by_topic: Callable[[], Mapping[str, int]]
    transactions: Callable[[], int]
    last_commit_unix: Callable[[], float]
    consent_students: Callable[[], int]
    #: partner -> category -> leaves of the record that partner's view leaves out
    stripped_per_disclosure: Mapping[str, Mapping[str, int]]
    #: what the processor waited for (``schema_registry``, ``kafka``) -> seconds waited
    blocked_seconds: Callable[[], Mapping[str, float]] = dict


def _blocked(src: ProcessorSources) -> Metric:
    blocked = CounterMetricFamily(
        "hallpass_processor_blocked_seconds",
        "Seconds the processor waited for a service that did not answer (the schema "
        "registry, Kafka) instead of processing: nothing is dead-lettered or committed "
        "meanwhile.",
        labels=["service"],
    )
    waited = dict(src.blocked_seconds())
    for service in sorted({"schema_registry", "kafka"} | set(waited)):
        blocked.add_metric([service], waited.get(service, 0.0))
    return blocked


class ProcessorCollector(Collector):
    """Turns the processor's own counters into Prometheus families when scraped."""

    def __init__(self, sources: ProcessorSources) -> None:
        self.sources = sources

    def collect(self) -> Iterator[Metric]:
        src = self.sources
        counts = src.counts()
        consumed = CounterMetricFamily(
            "hallpass_processor_events_consumed",
            "Input events consumed, by topic.",
            labels=["topic"],
        )
        for topic, n in sorted(dict(src.consumed_by_topic()).items()):
            consumed.add_metric([topic], n)
        yield consumed

        disclosed = dict(counts.disclosed)
        records = CounterMetricFamily(
            "hallpass_partner_records",
            "Records written to partner topics: disclosed views and retractions (tombstones).",
            labels=["partner", "action"],
        )
        retracted: dict[str, int] = {}
        for (partner, _reason), n in dict(counts.retracted).items():
            retracted[partner] = retracted.get(partner, 0) + n
        partners = sorted(set(src.stripped_per_disclosure) | set(disclosed) | set(retracted))
        for partner in partners:
            records.add_metric([partner, "disclosed"], disclosed.get(partner, 0))
            records.add_metric([partner, "retracted"], retracted.get(partner, 0))
        yield records

        withheld = CounterMetricFamily(
            "hallpass_decisions_withheld",
            "Decisions not to disclose a change to a partner, by reason.",
            labels=["partner", "reason"],
        )
        for (partner, reason), n in sorted(dict(counts.withheld).items()):
            withheld.add_metric([partner, reason], n)
        yield withheld

        unchanged = CounterMetricFamily(
            "hallpass_decisions_unchanged",
            "Decisions on a change event that left the partner's view as it was: nothing sent "
            "and nothing in the audit ledger.",
            labels=["partner"],
        )
        unchanged_counts = dict(counts.unchanged)
        for partner in sorted(set(src.stripped_per_disclosure) | set(unchanged_counts)):
            unchanged.add_metric([partner], unchanged_counts.get(partner, 0))
        yield unchanged

        retractions = CounterMetricFamily(
            "hallpass_partner_retractions",
            "Records withdrawn from a partner (tombstone + deletion notice), by reason.",
            labels=["partner", "reason"],
        )
        for (partner, reason), n in sorted(dict(counts.retracted).items()):
            retractions.add_metric([partner, reason], n)
        yield retractions

        partial = CounterMetricFamily(
            "hallpass_partial_retractions",
            "Fields withdrawn from a partner that keeps a reduced view (deletion notice naming "
            "the categories and fields), by reason.",
            labels=["partner", "reason"],
        )
        for (partner, reason), n in sorted(dict(counts.narrowed).items()):
            partial.add_metric([partner, reason], n)
        yield partial

        stripped = CounterMetricFamily(
            "hallpass_fields_stripped",
            "Fields of the student record left out of a partner's view, by data category "
            "(counted per disclosed record).",
            labels=["partner", "category"],
        )
        for partner, per_category in sorted(src.stripped_per_disclosure.items()):
            n_disclosed = disclosed.get(partner, 0)
            for category, fields in sorted(per_category.items()):
                stripped.add_metric([partner, category], n_disclosed * fields)
        yield stripped

        dead = CounterMetricFamily(
            "hallpass_dead_letters",
            "Input events sent to the dead-letter topic, by reason.",
            labels=["reason"],
        )
        for reason in ("invalid", "undecodable", "future_dated", "too_large"):
            dead.add_metric([reason], dict(counts.dead_letters_by_reason).get(reason, 0))
        yield dead

        yield _blocked(src)

        skipped = CounterMetricFamily(
            "hallpass_changes_skipped",
            "Changes not applied: stale (older than the student's newest) or duplicate (an "
            "event id already applied).",
            labels=["reason"],
        )
        for reason in ("stale", "duplicate"):
            skipped.add_metric([reason], dict(counts.skipped).get(reason, 0))
        yield skipped
        yield CounterMetricFamily(
            "hallpass_processor_repartitioned",
            "Input records forwarded to their student's partition (written with another "
            "partitioner than murmur2).",
            value=counts.repartitioned,
        )

        yield CounterMetricFamily(
            "hallpass_processor_transactions",
            "Kafka transactions committed.",
            value=src.transactions(),
        )
        yield GaugeMetricFamily(
            "hallpass_processor_last_commit_timestamp_seconds",
            "Unix time of the last committed transaction (0: none yet).",
            value=src.last_commit_unix(),
        )
        yield GaugeMetricFamily(
            "hallpass_consent_state_students",
            "Students with a consent history in this worker's state.",
            value=src.consent_students(),
        )


class ProcessorTimings:
    """Histograms the processor loop observes: end to end per message, stages per batch."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "hallpass_processor_latency_seconds",
            "From an input record's Kafka timestamp to the commit of the transaction that "
            "processed it.",
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.stage = Histogram(
            "hallpass_processor_stage_seconds",
            "Time per batch in each stage: handle (decode, decide, encode), produce, commit.",
            labelnames=["stage"],
            buckets=STAGE_BUCKETS,
            registry=registry,
        )
        self._handle = self.stage.labels("handle")
        self._produce = self.stage.labels("produce")
        self._commit = self.stage.labels("commit")

    def observe_batch(
        self,
        timestamps_ms: Iterable[int],
        handle_s: float,
        produce_s: float,
        commit_s: float,
        committed_unix: float | None = None,
    ) -> None:
        self._handle.observe(handle_s)
        self._produce.observe(produce_s)
        self._commit.observe(commit_s)
        now_ms = (committed_unix if committed_unix is not None else time.time()) * 1000
        observe = self.latency.observe
        for ts in timestamps_ms:
            if ts > 0:
                observe(max(0.0, (now_ms - ts) / 1000))


# -- connectors --------------------------------------------------------------------------
class ConnectorMetrics:
    """Counters of a connector run (``connector`` = oneroster | simulator)."""

    def __init__(self, registry: CollectorRegistry, connector: str) -> None:
        self.connector = connector
        labels = ["connector"]
        self._read = Counter(
            "hallpass_connector_rows_read",
            "Source rows (or events) read.",
            labels,
            registry=registry,
        ).labels(connector)
        self._published = Counter(
            "hallpass_connector_records_published",
            "Records acknowledged by the broker.",
            labels,
            registry=registry,
        ).labels(connector)
        self._unchanged = Counter(
            "hallpass_connector_records_unchanged",
            "Records skipped because they did not change since the last delivered publish.",
            labels,
            registry=registry,
        ).labels(connector)
        self._rejected = Counter(
            "hallpass_connector_rows_rejected",
            "Source rows rejected, by reason (<file>:<column>).",
            ["connector", "reason"],
            registry=registry,
        )

    def read(self, n: int = 1) -> None:
        self._read.inc(n)

    def published(self, n: int = 1) -> None:
        self._published.inc(n)

    def unchanged(self, n: int = 1) -> None:
        self._unchanged.inc(n)

    def rejected(self, file: str, column: str, n: int = 1) -> None:
        self._rejected.labels(self.connector, f"{file}:{column}").inc(n)
