"""``hallpass lag-exporter``: consumer lag as Prometheus metrics.

A loop samples the cluster every interval (:class:`LagExporter`); a collector serves the
figures of the last round when Prometheus scrapes (:class:`LagCollector`), so a scrape never
waits on Kafka. Names follow kafka_exporter (``kafka_consumergroup_lag``,
``kafka_consumergroup_current_offset``, ``kafka_topic_partition_current_offset``) so
existing dashboards work, plus hallpass's lag in seconds, status and exporter health.

A cluster that cannot be reached is a value, not a crash: ``hallpass_lag_exporter_up 0``,
no group figures (stale ones would mislead), one log line when it goes and one when it comes
back (and a reminder a minute while it stays away). The history survives the outage.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.config import Connection
from streams.lag.collect import BrokerUnavailable
from streams.lag.model import STATUSES, GroupSelection, LagReport, Status
from streams.lag.tracker import LagSampler, OffsetSource

OpenSource = Callable[[Connection], OffsetSource]
Note = Callable[[str], None]

#: while the cluster stays unreachable, repeat the log line at most this often (seconds)
REMIND_EVERY_S = 60.0


@dataclass(frozen=True)
class Scrape:
    """The outcome of one sampling round."""

    up: bool
    duration_s: float
    report: LagReport | None = None


class LagExporter:
    """Sampling rounds against the cluster ``connect()`` names, with reconnects.

    The source is opened again after a failed round and whenever ``connect()`` returns a
    different connection; the sample history lives in ``sampler`` and survives both.
    """

    def __init__(
        self,
        connect: Callable[[], Connection],
        open_source: OpenSource,
        sampler: LagSampler,
        selection: GroupSelection,
        note: Note,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.connect = connect
        self.open_source = open_source
        self.sampler = sampler
        self.selection = selection
        self.note = note
        self.clock = clock
        self.latest: Scrape | None = None
        self.rounds_up = 0
        self._source: OffsetSource | None = None
        self._source_conn: Connection | None = None
        self._down_since: float | None = None
        self._reminded: float = 0.0
        self._statuses: dict[str, Status] = {}

    def sample(self) -> Scrape:
        """One round; never raises."""
        started = self.clock()
        try:
            conn = self.connect()
            if self._source is None or conn != self._source_conn:
                self.close()
                self._source = self.open_source(conn)
                self._source_conn = conn
            report = self.sampler.sample(self._source, self.selection)
        except Exception as exc:  # any failure means "down", never a crash
            self.close()
            scrape = Scrape(up=False, duration_s=self.clock() - started)
            self._went_down(exc, started)
        else:
            scrape = Scrape(up=True, duration_s=self.clock() - started, report=report)
            self._came_up(scrape, report)
        self.latest = scrape
        return scrape

    def _went_down(self, exc: Exception, now: float) -> None:
        if isinstance(exc, BrokerUnavailable):
            message = str(exc)
        else:
            message = f"sampling failed: {type(exc).__name__}: {exc}"
        if self._down_since is None:
            self._down_since = self._reminded = now
            self.note(f"lag exporter: {message}; hallpass_lag_exporter_up 0 until it answers")
        elif now - self._reminded >= REMIND_EVERY_S:
            self._reminded = now
            self.note(f"lag exporter: still down for {now - self._down_since:.0f}s: {message}")

    def _came_up(self, scrape: Scrape, report: LagReport) -> None:
        self.rounds_up += 1
        if self._down_since is not None:
            self.note(
                f"lag exporter: Kafka answers again after {self.clock() - self._down_since:.0f}s"
            )
        if self.rounds_up == 1:
            self.note(
                f"lag exporter: first sample: {len(report.groups)} groups in "
                f"{scrape.duration_s:.2f}s"
            )
        self._down_since = None
        statuses = {g.group: g.status for g in report.groups}
        for group, status in sorted(statuses.items()):
            before = self._statuses.get(group)
            if before is not None and before != status:
                self.note(f"lag exporter: group {group}: {before} -> {status}")
        self._statuses = statuses

    def run(self, interval_s: float, stop: threading.Event) -> None:
        """Sample every ``interval_s`` until ``stop`` is set."""
        while not stop.is_set():
            started = self.clock()
            self.sample()
            stop.wait(max(0.0, interval_s - (self.clock() - started)))

    def close(self) -> None:
        source, self._source, self._source_conn = self._source, None, None
        if source is not None:
            try:
                source.close()
            except Exception as exc:  # a broken client must not crash us
                self.note(f"lag exporter: closing the Kafka clients: {exc}")


class LagCollector(Collector):
    """The metrics of the last round (nothing before the first one)."""

    def __init__(self, latest: Callable[[], Scrape | None]) -> None:
        self.latest = latest

    def collect(self) -> Iterator[Metric]:
        scrape = self.latest()
        if scrape is None:
            return
        yield GaugeMetricFamily(
            "hallpass_lag_exporter_up",
            "1 when the last sampling round reached Kafka, 0 when it could not.",
            value=1 if scrape.up else 0,
        )
        yield GaugeMetricFamily(
            "hallpass_lag_exporter_scrape_duration_seconds",
            "Duration of the last sampling round of the cluster.",
            value=scrape.duration_s,
        )
        if scrape.report is not None:
            yield from report_families(scrape.report)


def report_families(report: LagReport) -> Iterator[Metric]:
    labels = ["consumergroup", "topic", "partition", "partner"]
    lag = GaugeMetricFamily(
        "kafka_consumergroup_lag",
        "Messages the group has not consumed: log end offset minus its committed offset.",
        labels=labels,
    )
    current = GaugeMetricFamily(
        "kafka_consumergroup_current_offset", "The group's committed offset.", labels=labels
    )
    seconds = GaugeMetricFamily(
        "hallpass_consumergroup_lag_seconds",
        "Age of the oldest record the group has not consumed (0: none).",
        labels=labels,
    )
    status = GaugeMetricFamily(
        "hallpass_consumergroup_status",
        "1 for the group's current status (OK, WARN, STALL, STOP, ERR), 0 for the others.",
        labels=["consumergroup", "partner", "status"],
    )
    for group in report.groups:
        for p in group.partitions:
            values = [group.group, p.topic, str(p.partition), p.partner or ""]
            if p.committed is not None:
                current.add_metric(values, p.committed)
            if p.lag is not None:
                lag.add_metric(values, p.lag)
            if p.lag_seconds is not None:
                seconds.add_metric(values, p.lag_seconds)
        for s in STATUSES:
            status.add_metric(
                [group.group, group.partner or "", s.value], 1 if s == group.status else 0
            )
    log_end = GaugeMetricFamily(
        "kafka_topic_partition_current_offset",
        "Log end offset of a partition the reported groups consume.",
        labels=["topic", "partition"],
    )
    for (topic, partition), offset in report.log_end:
        log_end.add_metric([topic, str(partition)], offset)
    yield from (lag, current, seconds, status, log_end)
