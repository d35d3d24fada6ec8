"""A real Prometheus (Debian's package) scrapes the processor and the lag exporter running
on the broker, with deploy/prometheus's scrape jobs and rules, and answers PromQL about them.

The processor (``hallpass process --metrics-port``, running until SIGTERM) processes a
simulated district; a partner's "vendor" group then commits half of the partner topic and
stops, and ``hallpass lag-exporter`` samples it. Through Prometheus's HTTP API the test sees
the processor's counters equal to what it consumed and wrote, the vendor group's lag equal
to the topic's end offsets minus its commits, the lag threshold the recording rule gives the
partner, and the stalled-group alert pending for the stopped group.
"""

from __future__ import annotations

import random
import shutil
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition

from connectors.simulation.stream import CHANGES_TOPIC, simulate
from connectors.source.publisher import EventPublisher
from streams.config import Connection
from streams.kafka.names import Topics
from streams.processor.app import apply_contracts
from tests.eventually import eventually
from tests.processor_helpers import cli_env, count_records, drop_prefix
from tests.unit.test_dashboard import as_prometheus_query, dashboard_exprs

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
RULES = REPO / "deploy" / "prometheus" / "rules" / "hallpass.rules.yml"
PARTNER = "learnwell"
STUDENTS, SEED, DAYS = 200, 11, 2
DASHBOARD_PANELS_WITH_DATA = (
    "Input events per topic",
    "Throughput per partner",
    "Decisions withheld by reason",
    "Fields stripped by category",
    "Partner lag (messages)",
    "Partner lag (seconds)",
    "Partner consumer groups",
    "End-to-end latency p50 / p99",
    "Time per batch by stage (p99)",
    "Dead letters by reason",
)


def free_port(taken: set[int]) -> int:
    """A free TCP port on 127.0.0.1 below the ephemeral range (32768-60999), so that no
    client connection of this machine can take it meanwhile."""
    for _ in range(200):
        port = random.randrange(20000, 28000)
        if port in taken:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        taken.add(port)
        return port
    raise AssertionError("no free port in 20000-28000")


class Service:
    """A long-running command as a subprocess, its output in a file, stopped with SIGTERM."""

    def __init__(
        self, name: str, args: list[str], log: Path, env: dict[str, str] | None = None
    ) -> None:
        self.name = name
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(args, stdout=self._out, stderr=subprocess.STDOUT, env=env)

    def output(self) -> str:
        self._out.flush()
        return f"--- {self.name} (exit {self.proc.poll()}) ---\n{self.log.read_text()[-4000:]}"

    def stop(self) -> int:
        """SIGTERM, then SIGKILL after 30 s; the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(30)
        self._out.close()
        return self.proc.returncode


def hallpass_service(
    name: str, conn: Connection, topics: Topics, data_dir: Path, log: Path, *args: str
) -> Service:
    return Service(
        name,
        [sys.executable, "-m", "streams", "--data-dir", str(data_dir), *args],
        log,
        env=cli_env(conn, topics),
    )


def prometheus_config(processor_port: int, exporter_port: int) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml with this test's targets, 1 s intervals and the rules
    file by absolute path; the connector job (nothing runs it here) left out."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES)]
    targets = {"hallpass-processor": processor_port, "hallpass-lag-exporter": exporter_port}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(targets) <= set(jobs), "the shipped config lost a job"
    for name, port in targets.items():
        jobs[name]["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    config["scrape_configs"] = [jobs[name] for name in targets]
    return config


@dataclass
class PromQL:
    """Prometheus's HTTP query API, and the processes whose output explains a failure."""

    url: str
    services: list[Service]

    def query(self, promql: str) -> list[dict[str, Any]]:
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": promql}, timeout=10)
        assert response.status_code == 200, f"{promql}: {response.text}"
        body = response.json()
        assert body["status"] == "success", body
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def wait_for(
        self, promql: str, accept: Callable[[list[dict[str, Any]]], bool], timeout_s: float = 90.0
    ) -> list[dict[str, Any]]:
        """The query's result once ``accept`` takes it (Prometheus scrapes every second)."""
        result: list[dict[str, Any]] = []

        def accepted() -> list[dict[str, Any]] | None:
            nonlocal result
            result = self.query(promql)
            return result if accept(result) else None

        def failure() -> str:
            logs = "\n".join(s.output() for s in self.services)
            return f"{promql} -> {result}\n{logs}"

        return eventually(accepted, timeout_s, failure, interval_s=0.5)


def value(result: list[dict[str, Any]]) -> float:
    """The single sample of an instant vector."""
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def equals(expected: float) -> Callable[[list[dict[str, Any]]], bool]:
    return lambda result: len(result) == 1 and float(result[0]["value"][1]) == expected


def commit_half(conn: Connection, topic: str, group: str) -> int:
    """Commit ``group`` at half of each partition of ``topic`` (a vendor that read half and
    stopped); the group's lag in messages: log end minus committed, summed."""
    consumer = Consumer(conn.kafka_config({"group.id": group, "enable.auto.commit": False}))
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        lag = 0
        commits = []
        for partition in sorted(partitions):
            _low, high = consumer.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=30
            )
            commits.append(TopicPartition(topic, partition, high // 2))
            lag += high - high // 2
        consumer.commit(offsets=commits, asynchronous=False)
        return lag
    finally:
        consumer.close()


@pytest.fixture
def topics(bus: Connection) -> Iterator[Topics]:
    prefix = Topics(f"t.prom.{uuid.uuid4().hex[:8]}.")
    yield prefix
    drop_prefix(bus, prefix.prefix)


@pytest.fixture
def prometheus_binary() -> str:
    found = shutil.which("prometheus") or shutil.which("prometheus", path="/usr/bin")
    if found is None:
        pytest.fail(
            "prometheus is not installed: it comes with Debian's prometheus package "
            "(sudo apt-get install prometheus), which `make test` installs."
        )
    return found


def test_prometheus_sees_the_processor_counters_and_a_partner_lag(
    bus: Connection, topics: Topics, tmp_path: Path, prometheus_binary: str
) -> None:
    apply_contracts(bus, CONTRACTS, topics, secrets_file=tmp_path / "data" / "partner-secrets.json")
    events = list(simulate(STUDENTS, SEED, DAYS))
    publisher = EventPublisher(
        bus, {topics.changes: "student_record_changed", topics.consent: "consent_changed"}
    )
    for event in events:
        publisher.publish(topics.name(event.topic), event.key, event.value)
    publisher.close()
    changes = sum(1 for e in events if e.topic == CHANGES_TOPIC)

    ports: set[int] = set()
    processor_port, exporter_port, prometheus_port = (free_port(ports) for _ in range(3))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(processor_port, exporter_port)))
    vendor_group = f"{topics.prefix}{PARTNER}-vendor"
    data_dir = tmp_path / "data"
    services = [
        hallpass_service(
            "processor",
            bus,
            topics,
            data_dir,
            tmp_path / "processor.log",
            "process",
            "--metrics-port",
            str(processor_port),
        ),
        hallpass_service(
            "lag-exporter",
            bus,
            topics,
            data_dir,
            tmp_path / "exporter.log",
            "lag-exporter",
            "--metrics-port",
            str(exporter_port),
            "--interval",
            "1",
            "--group",
            f"{topics.prefix}*",
        ),
        Service(
            "prometheus",
            [
                prometheus_binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prometheus_port}",
            ],
            tmp_path / "prometheus.log",
        ),
    ]
    prom = PromQL(f"http://127.0.0.1:{prometheus_port}", services)
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{prom.url}/-/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        eventually(ready, 60, services[2].output, interval_s=0.2)

        # the processor's counters: every input event, per topic
        job = 'job="hallpass-processor"'
        for topic, n in ((topics.changes, changes), (topics.consent, len(events) - changes)):
            prom.wait_for(
                f'hallpass_processor_events_consumed_total{{{job},topic="{topic}"}}', equals(n)
            )
        assert value(prom.query(f"up{{{job}}}")) == 1
        # its transactions committed every input offset (the input topics hold no
        # transaction markers: the sum of the end offsets is the number of events), so its
        # group lags by nothing; it reads no partner topic, so it has no partner label
        processor = f'consumergroup="{topics.processor_group}",partner=""'
        prom.wait_for(
            f"sum(kafka_consumergroup_current_offset{{{processor}}})", equals(len(events))
        )
        prom.wait_for(f"sum(kafka_consumergroup_lag{{{processor}}})", equals(0))
        # what it wrote to the partner's topic, as Prometheus saw it: every record a
        # read_committed vendor can read (views and tombstones)
        written = count_records(bus, topics.partner(PARTNER), "read_committed")
        assert written > 0
        prom.wait_for(
            f'sum(hallpass_partner_records_total{{{job},partner="{PARTNER}"}})', equals(written)
        )
        withheld = prom.query(f"sum(hallpass_decisions_withheld_total{{{job}}})")
        assert value(withheld) > 0

        # a vendor that read half of the partner topic and stopped
        expected_lag = commit_half(bus, topics.partner(PARTNER), vendor_group)
        assert expected_lag > 0
        group = f'consumergroup="{vendor_group}",partner="{PARTNER}"'
        prom.wait_for(f"sum(kafka_consumergroup_lag{{{group}}})", equals(expected_lag))
        lag_seconds = prom.wait_for(
            f"max(hallpass_consumergroup_lag_seconds{{{group}}})",
            lambda r: len(r) == 1 and float(r[0]["value"][1]) > 0,
        )
        assert value(lag_seconds) < 3600  # the records were written minutes ago at most
        # the rules run on the exporter's series: the partner's default threshold, and the
        # stopped group's alert pending (it fires after 5 minutes)
        threshold = prom.wait_for(
            f'hallpass:partner_lag_threshold_seconds{{partner="{PARTNER}"}}', equals(900)
        )
        assert value(threshold) == 900
        stalled = prom.wait_for(
            f'ALERTS{{alertname="HallpassPartnerGroupStalled",{group},status="STOP"}}',
            lambda r: len(r) == 1,
        )
        assert stalled[0]["metric"]["alertstate"] == "pending"

        # the dashboard on these series: every query evaluates, and the panels an operator
        # reads first show data
        shown = {
            where
            for where, expr in dashboard_exprs().items()
            if prom.query(as_prometheus_query(expr))
        }
        for panel in DASHBOARD_PANELS_WITH_DATA:
            assert any(where.startswith(f"panel {panel!r}") for where in shown), panel
    finally:
        codes = {s.name: s.stop() for s in services}
    assert codes["processor"] == 0, services[0].output()
    assert codes["lag-exporter"] == 0, services[1].output()
