"""Consumer lag on the real broker, checked against Kafka's own tool.

A fresh 3-partition topic gets records stamped an hour ago, one second apart; a group
consumes it and commits part of it, then stops. ``hallpass lag --json`` and the exporter's
/metrics must show the committed offset, log end offset and lag that
``kafka-consumer-groups --describe`` (ConsumerGroupCommand from the kafka-tools jar) prints
for that group, a status that is not OK, and the exact age of the oldest unconsumed record.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from streams.config import ENV_BOOTSTRAP, ENV_REGISTRY, Connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import Topics, TopicSpec
from streams.lag.collect import KafkaOffsets
from streams.lag.exporter import LagCollector, LagExporter
from streams.lag.model import GroupSelection
from streams.lag.tracker import LagSampler, LagTracker
from streams.local.artifacts import KAFKA_MIN_JAVA, find_java, kafka_classpath
from streams.local.processes import port_free
from tests.eventually import eventually
from tests.kafka_helpers import hallpass_cli

pytestmark = pytest.mark.kafka

PRODUCED = {0: 40, 1: 50, 2: 60}  # records per partition
COMMITTED = {0: 40, 1: 20, 2: 5}  # what the group commits: partition 0 fully consumed
AGE_S = 3600  # the first record of each partition is stamped an hour ago
Figures = dict[tuple[str, int], tuple[int | None, int | None, int | None]]


@dataclass(frozen=True)
class StoppedGroup:
    topic: str
    group: str
    first_ms: int  # timestamp of each partition's record 0; record i is i seconds later

    def record_time(self, partition: int, offset: int) -> float:
        return (self.first_ms + offset * 1000) / 1000

    def expected(self) -> Figures:
        return {
            (self.topic, p): (COMMITTED[p], PRODUCED[p], PRODUCED[p] - COMMITTED[p])
            for p in PRODUCED
        }


@pytest.fixture
def stopped_group(bus: Connection, unique_name: Callable[[str], str]) -> Iterator[StoppedGroup]:
    topic, group = unique_name("lag"), unique_name("group")
    ensure_topics(bus, [TopicSpec(topic, partitions=3)])
    first_ms = int((time.time() - AGE_S) * 1000)
    producer = Producer(bus.kafka_config({"acks": "all"}))
    for partition, count in PRODUCED.items():
        for i in range(count):
            producer.produce(
                topic, value=b"x%d" % i, partition=partition, timestamp=first_ms + i * 1000
            )
    assert producer.flush(30) == 0

    consumer = Consumer(
        bus.kafka_config(
            {"group.id": group, "auto.offset.reset": "earliest", "enable.auto.commit": False}
        )
    )
    consumer.subscribe([topic])
    consumed = 0

    def all_consumed() -> bool:
        nonlocal consumed
        msg = consumer.poll(1.0)
        if msg is not None and msg.error() is None:
            consumed += 1
        return consumed >= sum(PRODUCED.values())

    eventually(
        all_consumed, 60, lambda: f"consumed {consumed} of {sum(PRODUCED.values())}", interval_s=0
    )
    assert consumed == sum(PRODUCED.values())
    consumer.commit(
        offsets=[TopicPartition(topic, p, o) for p, o in COMMITTED.items()], asynchronous=False
    )
    consumer.close()  # the group is left without members: stopped
    yield StoppedGroup(topic, group, first_ms)

    admin = AdminClient(bus.kafka_config())
    for future in (
        *admin.delete_consumer_groups([group]).values(),
        *admin.delete_topics([topic]).values(),
    ):
        future.result()


def kafka_consumer_groups(bus: Connection, group: str) -> Figures:
    """CURRENT-OFFSET, LOG-END-OFFSET and LAG per partition, as Kafka's own tool prints
    them (``kafka-consumer-groups.sh --describe``)."""
    java = find_java(os.environ, KAFKA_MIN_JAVA, "kafka-consumer-groups")
    classpath, _version = kafka_classpath(os.environ, progress=print)
    out = subprocess.run(
        [
            str(java),
            "-cp",
            classpath,
            "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
            "--bootstrap-server",
            bus.bootstrap_servers,
            "--describe",
            "--group",
            group,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("GROUP "))
    columns = lines[header].split()
    figures: Figures = {}
    for line in lines[header + 1 :]:
        if not line.strip():
            continue
        row = dict(zip(columns, line.split(), strict=False))
        assert row["GROUP"] == group

        def number(column: str, row: dict[str, str] = row) -> int | None:
            return None if row[column] == "-" else int(row[column])

        figures[(row["TOPIC"], int(row["PARTITION"]))] = (
            number("CURRENT-OFFSET"),
            number("LOG-END-OFFSET"),
            number("LAG"),
        )
    return figures


def free_port() -> int:
    """A free port below the ephemeral range (32768-60999), picked at random (away from the
    fixed ports of the test stacks: 28081, 29092-3, 30181-30193)."""
    for port in random.sample(range(21000, 28000), 200):
        if port_free(port):
            return port
    raise AssertionError("no free port between 21000 and 28000")


def test_lag_json_equals_kafka_consumer_groups(
    bus: Connection, stopped_group: StoppedGroup, tmp_path: Path
) -> None:
    result = hallpass_cli(bus, tmp_path, "lag", "--json", "--group", stopped_group.group)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    (group,) = report["groups"]
    figures = {
        (p["topic"], p["partition"]): (p["committed_offset"], p["log_end_offset"], p["lag"])
        for p in group["partitions"]
    }
    assert figures == kafka_consumer_groups(bus, stopped_group.group) == stopped_group.expected()

    # nobody consumes, lag remains: stopped, not OK
    assert group["status"] == "STOP" and group["members"] == 0 and group["state"] == "EMPTY"
    assert group["lag"] == sum(PRODUCED[p] - COMMITTED[p] for p in PRODUCED)
    for p in group["partitions"]:
        partition = p["partition"]
        if p["lag"] == 0:
            assert p["lag_seconds"] == 0.0 and p["status"] == "OK"
        else:
            # the age of the record at the committed offset, by its timestamp
            oldest = stopped_group.record_time(partition, COMMITTED[partition])
            assert p["lag_seconds"] == pytest.approx(report["at"] - oldest, abs=0.002)
            assert AGE_S - COMMITTED[partition] < p["lag_seconds"] < AGE_S + 120
            assert p["status"] == "STOP"

    table = hallpass_cli(
        bus, tmp_path, "lag", "--group", stopped_group.group, "--samples", "2", "--interval", "0.5"
    )
    assert table.returncode == 0, table.stderr
    rows = [line.split() for line in table.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[3], int(r[4]), int(r[5]), int(r[6]), int(r[7])) for r in rows] == [
        (
            stopped_group.group,
            "STOP",
            stopped_group.topic,
            p,
            COMMITTED[p],
            PRODUCED[p],
            PRODUCED[p] - COMMITTED[p],
        )
        for p in sorted(PRODUCED)
    ]


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def partition_labels(sg: StoppedGroup, partition: int) -> tuple[tuple[str, str], ...]:
    return tuple(
        sorted(
            {
                "consumergroup": sg.group,
                "topic": sg.topic,
                "partition": str(partition),
                "partner": "",
            }.items()
        )
    )


def test_exporter_metrics_equal_kafka_consumer_groups_and_sigterm_stops_it(
    bus: Connection, stopped_group: StoppedGroup, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        ENV_BOOTSTRAP: bus.bootstrap_servers,
        ENV_REGISTRY: bus.schema_registry_url,
    }
    exporter = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streams",
            "--data-dir",
            str(tmp_path),
            "lag-exporter",
            "--metrics-port",
            str(port),
            "--interval",
            "1",
            "--group",
            stopped_group.group,
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert exporter.stderr is not None
        log: list[str] = []
        for line in exporter.stderr:  # ends if the exporter dies
            log.append(line)
            if "first sample" in line or "cannot reach" in line:
                break
        assert "lag exporter: first sample: 1 groups" in log[-1], log
        metrics = scrape(port)
    finally:
        exporter.send_signal(signal.SIGTERM)
        _out, rest = exporter.communicate(timeout=30)
    assert exporter.returncode == 0
    assert rest.rstrip().endswith("lag exporter: stopped")

    tool = kafka_consumer_groups(bus, stopped_group.group)
    sg = stopped_group
    exported: Figures = {}
    for p in PRODUCED:
        labels = partition_labels(sg, p)
        exported[(sg.topic, p)] = (
            int(metrics[("kafka_consumergroup_current_offset", labels)]),
            int(
                metrics[
                    (
                        "kafka_topic_partition_current_offset",
                        (("partition", str(p)), ("topic", sg.topic)),
                    )
                ]
            ),
            int(metrics[("kafka_consumergroup_lag", labels)]),
        )
        seconds = metrics[("hallpass_consumergroup_lag_seconds", labels)]
        if p == 0:
            assert seconds == 0
        else:
            assert AGE_S - COMMITTED[p] < seconds < AGE_S + 120
    assert exported == tool == sg.expected()
    status = {
        s: metrics[
            (
                "hallpass_consumergroup_status",
                (("consumergroup", sg.group), ("partner", ""), ("status", s)),
            )
        ]
        for s in ("OK", "WARN", "STALL", "STOP", "ERR")
    }
    assert status == {"OK": 0, "WARN": 0, "STALL": 0, "STOP": 1, "ERR": 0}
    assert metrics[("hallpass_lag_exporter_up", ())] == 1
    assert 0 < metrics[("hallpass_lag_exporter_scrape_duration_seconds", ())] < 10


def test_exporter_is_down_on_a_dead_broker_and_recovers_on_a_live_one(
    bus: Connection, stopped_group: StoppedGroup
) -> None:
    dead = Connection(f"127.0.0.1:{free_port()}", bus.schema_registry_url)  # nothing listens
    current = dead
    notes: list[str] = []
    exporter = LagExporter(
        connect=lambda: current,
        open_source=lambda c: KafkaOffsets(c, timeout_s=2.0),
        sampler=LagSampler(LagTracker(Topics())),
        selection=GroupSelection((stopped_group.group,)),
        note=notes.append,
    )
    registry = CollectorRegistry()
    registry.register(LagCollector(lambda: exporter.latest))
    labels = {
        "consumergroup": stopped_group.group,
        "topic": stopped_group.topic,
        "partition": "1",
        "partner": "",
    }
    try:
        assert not exporter.sample().up
        assert registry.get_sample_value("hallpass_lag_exporter_up") == 0
        assert registry.get_sample_value("kafka_consumergroup_lag", labels) is None
        assert len(notes) == 1 and f"cannot reach Kafka at {dead.bootstrap_servers}" in notes[0]

        current = bus  # the broker is back
        assert exporter.sample().up
        assert registry.get_sample_value("hallpass_lag_exporter_up") == 1
        assert (
            registry.get_sample_value("kafka_consumergroup_lag", labels)
            == PRODUCED[1] - COMMITTED[1]
        )
        assert (
            registry.get_sample_value(
                "hallpass_consumergroup_status",
                {"consumergroup": stopped_group.group, "partner": "", "status": "STOP"},
            )
            == 1
        )
        assert "Kafka answers again" in notes[1]
    finally:
        exporter.close()
