"""The lag exporter on an in-memory cluster: metric names, labels and values as documented,
a cluster that goes away and comes back (up 0, one log line, recovery), the run loop."""

from __future__ import annotations

import threading

from prometheus_client import CollectorRegistry, generate_latest

from streams.config import Connection
from streams.kafka.names import Topics
from streams.lag.collect import BrokerUnavailable
from streams.lag.exporter import REMIND_EVERY_S, LagCollector, LagExporter
from streams.lag.model import GroupSelection
from streams.lag.tracker import LagSampler, LagTracker, OffsetSource, Snapshot
from tests.lag_fake import FakeCluster, FakeSource

LIVE = Connection("127.0.0.1:9092", "http://127.0.0.1:8081")
DEAD = Connection("127.0.0.1:1", "http://127.0.0.1:8081")
TOPIC = "partner.learnwell.students"


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Rig:
    """An exporter whose connection a test swaps; a dead connection cannot be opened."""

    def __init__(self) -> None:
        self.cluster = FakeCluster()
        self.cluster.log_end = {(TOPIC, 0): 40, (TOPIC, 1): 50}
        self.cluster.group("learnwell-v", {(TOPIC, 0): 40, (TOPIC, 1): 20})
        self.cluster.record_time = {((TOPIC, 1), 20): 900.0}
        self.conn = LIVE
        self.notes: list[str] = []
        self.sources: list[FakeSource] = []
        self.clock = Clock()
        self.exporter = LagExporter(
            connect=lambda: self.conn,
            open_source=self.open,
            sampler=LagSampler(LagTracker(Topics())),
            selection=GroupSelection(),
            note=self.notes.append,
            clock=self.clock,
        )
        self.registry = CollectorRegistry()
        self.registry.register(LagCollector(lambda: self.exporter.latest))

    def open(self, conn: Connection) -> OffsetSource:
        if conn == DEAD:
            raise BrokerUnavailable("cannot reach Kafka at 127.0.0.1:1: Local: Timed out")
        source = FakeSource(self.cluster)
        self.sources.append(source)
        return source

    def value(self, name: str, **labels: str) -> float | None:
        return self.registry.get_sample_value(name, labels)


def test_metrics_of_a_round() -> None:
    rig = Rig()
    assert generate_latest(rig.registry) == b""  # nothing before the first round
    rig.exporter.sample()
    v = rig.value
    part0 = {
        "consumergroup": "learnwell-v",
        "topic": TOPIC,
        "partition": "0",
        "partner": "learnwell",
    }
    part1 = {**part0, "partition": "1"}
    assert v("hallpass_lag_exporter_up") == 1
    assert v("kafka_consumergroup_lag", **part0) == 0
    assert v("kafka_consumergroup_lag", **part1) == 30
    assert v("kafka_consumergroup_current_offset", **part1) == 20
    assert v("kafka_topic_partition_current_offset", topic=TOPIC, partition="1") == 50
    assert v("hallpass_consumergroup_lag_seconds", **part1) == 100.0  # now 1000, record 900
    assert v("hallpass_consumergroup_lag_seconds", **part0) == 0.0
    statuses = {
        s: v(
            "hallpass_consumergroup_status",
            consumergroup="learnwell-v",
            partner="learnwell",
            status=s,
        )
        for s in ("OK", "WARN", "STALL", "STOP", "ERR")
    }
    assert statuses == {"OK": 0, "WARN": 0, "STALL": 0, "STOP": 1, "ERR": 0}
    assert v("hallpass_lag_exporter_scrape_duration_seconds") == 0.0  # the fake clock
    assert rig.notes == ["lag exporter: first sample: 1 groups in 0.00s"]


def test_groups_without_a_partner_have_an_empty_partner_label() -> None:
    rig = Rig()
    rig.cluster.log_end[("orders", 0)] = 7
    rig.cluster.group("billing", {("orders", 0): 7}, members=1, owners={("orders", 0): "m"})
    rig.exporter.sample()
    labels = {"consumergroup": "billing", "topic": "orders", "partition": "0", "partner": ""}
    assert rig.value("kafka_consumergroup_lag", **labels) == 0
    assert (
        rig.value("hallpass_consumergroup_status", consumergroup="billing", partner="", status="OK")
        == 1
    )


def test_unreachable_cluster_is_up_0_and_one_log_line_then_recovers() -> None:
    rig = Rig()
    rig.conn = DEAD
    for _ in range(3):
        rig.clock.now += 15
        scrape = rig.exporter.sample()
        assert not scrape.up
    assert rig.value("hallpass_lag_exporter_up") == 0
    assert (
        rig.value(
            "kafka_consumergroup_lag",
            consumergroup="learnwell-v",
            topic=TOPIC,
            partition="1",
            partner="learnwell",
        )
        is None
    )  # no stale figures
    assert rig.notes == [
        "lag exporter: cannot reach Kafka at 127.0.0.1:1: Local: Timed out; "
        "hallpass_lag_exporter_up 0 until it answers"
    ]
    rig.clock.now += REMIND_EVERY_S
    rig.exporter.sample()
    assert len(rig.notes) == 2 and rig.notes[1].startswith("lag exporter: still down for 90s")

    rig.conn = LIVE  # the broker is back
    rig.clock.now += 15
    assert rig.exporter.sample().up
    assert rig.value("hallpass_lag_exporter_up") == 1
    assert (
        rig.value(
            "kafka_consumergroup_lag",
            consumergroup="learnwell-v",
            topic=TOPIC,
            partition="1",
            partner="learnwell",
        )
        == 30
    )
    assert rig.notes[2:] == [
        "lag exporter: Kafka answers again after 105s",
        "lag exporter: first sample: 1 groups in 0.00s",
    ]


def test_a_source_that_fails_mid_run_is_closed_and_opened_again() -> None:
    rig = Rig()
    rig.exporter.sample()
    rig.cluster.down = True
    assert not rig.exporter.sample().up
    assert rig.sources[0].closed
    rig.cluster.down = False
    rig.cluster.log_end[(TOPIC, 1)] = 60
    assert rig.exporter.sample().up
    assert len(rig.sources) == 2 and not rig.sources[1].closed
    assert (
        rig.value(
            "kafka_consumergroup_lag",
            consumergroup="learnwell-v",
            topic=TOPIC,
            partition="1",
            partner="learnwell",
        )
        == 40
    )
    assert "Kafka answers again" in rig.notes[-1]
    # the history survived the outage: two samples of the log end
    assert len(rig.exporter.sampler.tracker.history((TOPIC, 1))) == 2


def test_status_changes_are_logged() -> None:
    rig = Rig()
    rig.exporter.sample()
    rig.cluster.group("learnwell-v", {(TOPIC, 0): 40, (TOPIC, 1): 50})
    rig.exporter.sample()
    assert rig.notes[-1] == "lag exporter: group learnwell-v: STOP -> OK"


def test_run_samples_until_stopped() -> None:
    rig = Rig()
    stop = threading.Event()
    rounds: list[float] = []

    class StopsAfterThree(FakeSource):
        def snapshot(self, selection: GroupSelection) -> Snapshot:
            rounds.append(rig.clock.now)
            if len(rounds) == 3:
                stop.set()
            return super().snapshot(selection)

    opened: list[FakeSource] = []

    def open_source(_conn: Connection) -> OffsetSource:
        opened.append(StopsAfterThree(rig.cluster))
        return opened[-1]

    rig.exporter.open_source = open_source
    rig.exporter.run(0.0, stop)
    assert len(rounds) == 3 and rig.exporter.rounds_up == 3
    assert len(opened) == 1 and not opened[0].closed  # one source for every round
    rig.exporter.close()
    assert opened[0].closed


def test_an_unexpected_failure_is_down_with_its_type_named() -> None:
    rig = Rig()

    def broken(_conn: Connection) -> OffsetSource:
        raise ValueError("bad config")

    rig.exporter.open_source = broken
    assert not rig.exporter.sample().up
    assert rig.notes == [
        "lag exporter: sampling failed: ValueError: bad config; "
        "hallpass_lag_exporter_up 0 until it answers"
    ]
