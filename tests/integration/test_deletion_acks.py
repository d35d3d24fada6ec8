"""Proof of deletion on the real broker and a real Prometheus (issue 19).

A simulated district is processed; parents opt out of all sharing, so each partner that held
those students gets deletion notices. learnwell's vendor runs ``hallpass vendor pull`` (it
deletes and acknowledges each notice on partner.learnwell.acks); measurely's pulls with
``--no-ack`` (it deletes, but sends no proof). Then:

- ``hallpass retractions --unacknowledged`` lists exactly the notices of the partners that did
  not acknowledge (measurely's, and carewell-health's, whose vendor never ran), and none of
  learnwell's; a second vendor group re-acknowledging everything changes nothing;
- ``hallpass lag-exporter --deletion-acks`` serves the outstanding count per partner, and
  Prometheus, with deploy/prometheus's rules and a per-partner limit of 1 s (the documented
  override: 30 days would not pass within a test), fires HallpassDeletionUnacknowledged for
  measurely and not for learnwell.
"""

from __future__ import annotations

import json
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.simulation.stream import CHANGES_TOPIC, simulate
from connectors.source.publisher import EventPublisher
from streams.config import Connection
from streams.kafka.names import Topics
from streams.kafka.wire import WireDecoder
from streams.processor.app import apply_contracts
from tests.eventually import eventually
from tests.integration.test_prometheus import PromQL, Service, equals, hallpass_service
from tests.processor_helpers import drop_prefix, hallpass

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
RULES = REPO / "deploy" / "prometheus" / "rules" / "hallpass.rules.yml"
STUDENTS, SEED, DAYS = 60, 19, 1
OPTED_OUT = 4
#: Prometheus and the exporter (the brief of this test keeps 33090+ for it)
PROMETHEUS_PORT, EXPORTER_PORT = 33090, 33094
ACKING, SILENT, NEVER_RAN = "learnwell", "measurely", "carewell-health"


@pytest.fixture
def topics(bus: Connection) -> Iterator[Topics]:
    prefix = Topics(f"t.acks.{uuid.uuid4().hex[:8]}.")
    yield prefix
    drop_prefix(bus, prefix.prefix)


def notice_ids(conn: Connection, topic: str) -> set[str]:
    """The ids of every notice on ``topic`` (read_committed), decoded independently of the
    code under test."""
    decoder = WireDecoder(SchemaRegistryClient(conn.registry_config()))
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": f"t-notices-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )
    found: set[str] = set()
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
        pending = set(partitions)

        def done() -> bool:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is not None:
                    pending.discard(msg.partition())
                elif msg.value() is not None:
                    found.add(str(decoder.decode(msg.value())["event_id"]))
            return not pending

        eventually(done, 60, lambda: f"did not reach the end of {topic}", interval_s=0)
    finally:
        consumer.close()
    return found


def retractions(conn: Connection, topics: Topics, data: Path, *args: str) -> dict[str, Any]:
    out = hallpass(conn, topics, data, "retractions", "--format", "json", *args)
    parsed: dict[str, Any] = json.loads(out.stdout)
    return parsed


def prometheus_config(exporter_port: int, limits: Path) -> dict[str, Any]:
    """The shipped config with only the lag exporter's job (this test runs nothing else), 1 s
    intervals, the shipped rules and a rules file of per-partner limits."""
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(RULES), str(limits)]
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "hallpass-lag-exporter"]
    job["static_configs"] = [{"targets": [f"127.0.0.1:{exporter_port}"]}]
    config["scrape_configs"] = [job]
    return config


def limits_rules(seconds: int, partners: list[str]) -> dict[str, Any]:
    """The override the rules file documents (hallpass-deletion-ack-limits), per partner."""
    return {
        "groups": [
            {
                "name": "test-deletion-ack-limits",
                "rules": [
                    {
                        "record": "hallpass:deletion_ack_max_age_seconds:override",
                        "expr": f"vector({seconds})",
                        "labels": {"partner": p},
                    }
                    for p in partners
                ],
            }
        ]
    }


def test_a_partner_that_does_not_acknowledge_is_listed_and_alerted(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    prometheus = shutil.which("prometheus")
    if prometheus is None:
        pytest.fail("prometheus is not installed (Debian's prometheus package; `make test`)")
    data = tmp_path / "data"
    apply_contracts(bus, CONTRACTS, topics, secrets_file=data / "partner-secrets.json")

    # a simulated district, processed
    events = list(simulate(STUDENTS, SEED, DAYS))
    publisher = EventPublisher(
        bus, {topics.changes: "student_record_changed", topics.consent: "consent_changed"}
    )
    for event in events:
        publisher.publish(topics.name(event.topic), event.key, event.value)
    publisher.close()
    hallpass(bus, topics, data, "process", "--until-idle")
    # parents of a few students opt out of all sharing: notices to every partner that held them
    students = {e.key: e.value["district_id"] for e in events if e.topic == CHANGES_TOPIC}
    for student, district in sorted(students.items())[:OPTED_OUT]:
        hallpass(
            bus, topics, data, "consent", "opt-out", "--student", student, "--district", district
        )
    hallpass(bus, topics, data, "process", "--until-idle")
    sent = {p: notice_ids(bus, topics.notices(p)) for p in (ACKING, SILENT, NEVER_RAN)}
    assert sent[ACKING] and sent[SILENT], sent

    # learnwell deletes and acknowledges; measurely deletes without acknowledging
    acked = hallpass(bus, topics, data, "vendor", "pull", "--partner", ACKING, "--show", "0")
    assert f"acknowledged {len(sent[ACKING])} deletion notices" in acked.stdout, acked.stdout
    silent = hallpass(
        bus, topics, data, "vendor", "pull", "--partner", SILENT, "--no-ack", "--show", "0"
    )
    assert "acknowledged" not in silent.stdout
    # its group's position on the notices was committed: a second pull has nothing to ack
    again = hallpass(bus, topics, data, "vendor", "pull", "--partner", ACKING, "--show", "0")
    assert "acknowledged 0 deletion notices" in again.stdout, again.stdout

    report = retractions(bus, topics, data, "--unacknowledged")
    outstanding = {(r["partner"], r["notice_id"]) for r in report["retractions"]}
    assert outstanding == {(p, n) for p in (SILENT, NEVER_RAN) for n in sent[p]}
    assert {r["status"] for r in report["retractions"]} == {"outstanding"}
    assert report["outstanding"][ACKING]["count"] == 0
    assert report["outstanding"][SILENT]["count"] == len(sent[SILENT])

    # acknowledging again (another group of the vendor reads every notice anew) is harmless
    hallpass(
        bus,
        topics,
        data,
        "vendor",
        "pull",
        "--partner",
        ACKING,
        "--group",
        f"{ACKING}-replay",
        "--copy",
        str(tmp_path / "replay.sqlite"),
        "--show",
        "0",
    )
    learnwell = retractions(bus, topics, data, "--partner", ACKING)["retractions"]
    assert sorted(r["notice_id"] for r in learnwell) == sorted(sent[ACKING])  # once each
    assert {r["status"] for r in learnwell} == {"acknowledged"}
    assert all(r["deleted_at"] for r in learnwell)

    # the exporter and a real Prometheus: the alert fires for measurely only
    limits = tmp_path / "limits.rules.yml"
    limits.write_text(yaml.safe_dump(limits_rules(1, [ACKING, SILENT, NEVER_RAN])))
    config = tmp_path / "prometheus.yml"
    config.write_text(yaml.safe_dump(prometheus_config(EXPORTER_PORT, limits)))
    services = [
        hallpass_service(
            "lag-exporter",
            bus,
            topics,
            data,
            tmp_path / "exporter.log",
            "lag-exporter",
            "--metrics-port",
            str(EXPORTER_PORT),
            "--interval",
            "1",
            "--group",
            f"{topics.prefix}*",
            "--deletion-acks",
        ),
        Service(
            "prometheus",
            [
                prometheus,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{PROMETHEUS_PORT}",
            ],
            tmp_path / "prometheus.log",
        ),
    ]
    prom = PromQL(f"http://127.0.0.1:{PROMETHEUS_PORT}", services)
    try:

        def ready() -> bool:
            try:
                return httpx.get(f"{prom.url}/-/ready", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        eventually(ready, 60, services[1].output, interval_s=0.2)
        started = time.monotonic()
        for partner, count in ((ACKING, 0), (SILENT, len(sent[SILENT]))):
            prom.wait_for(
                f'hallpass_deletion_acks_outstanding{{partner="{partner}"}}', equals(count)
            )
        firing = prom.wait_for(
            'ALERTS{alertname="HallpassDeletionUnacknowledged",alertstate="firing"}',
            lambda r: any(a["metric"]["partner"] == SILENT for a in r),
        )
        fired_after = time.monotonic() - started
        assert {a["metric"]["partner"] for a in firing} == {
            p for p in (SILENT, NEVER_RAN) if sent[p]
        }
        oldest = prom.query(
            f'hallpass_deletion_ack_oldest_outstanding_seconds{{partner="{SILENT}"}}'
        )
        assert 1 < float(oldest[0]["value"][1]) <= 86_400 + 60  # sent today (UTC day)
        # learnwell acknowledged all: it never fires, pending or firing
        assert not prom.query(
            f'ALERTS{{alertname="HallpassDeletionUnacknowledged",partner="{ACKING}"}}'
        )
        counts = {p: len(n) for p, n in sent.items()}
        print(f"notices {counts}; the alert fired {fired_after:.1f}s after Prometheus was ready")
    finally:
        codes = {s.name: s.stop() for s in services}
    assert codes["lag-exporter"] == 0, services[0].output()
