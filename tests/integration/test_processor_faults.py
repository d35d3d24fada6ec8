"""Faults the processor survives on the real broker (issue 16): poison pills are dead letters
and the rest goes on; a partition of garbage is paused alone; SIGTERM in the middle of
processing stops the worker within 10 s and exactly once holds. The registry outage (its
JVM killed) is in ``test_registry_outage.py`` (``make test-faults``: it needs a stack of its
own)."""

from __future__ import annotations

import copy
import json
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import Connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import Topics, TopicSpec
from streams.kafka.wire import WireEncoder
from streams.policy.catalog import load_schema, schema_dir
from streams.policy.consent import ConsentEvent, ConsentKind
from streams.processor.app import apply_contracts
from streams.processor.routing import partition_for
from tests.eventually import eventually
from tests.kafka_helpers import decode_all, read_topic
from tests.processor_helpers import cli_env, committed_offsets, drop_prefix

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
PARTITIONS = 3
BASE: dict[str, Any] = json.loads(
    (schema_dir() / "examples" / "student_record_changed.upsert.json").read_text()
)


def change(student: str, event_id: str, first_name: str = "Daniel") -> dict[str, Any]:
    record = copy.deepcopy(BASE)
    record.update(
        event_id=event_id, student_id=student, occurred_at=int(time.time() * 1000) - 60_000
    )
    record["names"]["first_name"] = first_name
    return record


class Setup:
    def __init__(self, bus: Connection, tmp: Path, name: str) -> None:
        self.bus, self.tmp = bus, tmp
        self.topics = Topics(f"t.{name}.{uuid.uuid4().hex[:8]}.")
        apply_contracts(bus, CONTRACTS, self.topics, secrets_file=tmp / "partner-secrets.json")
        ensure_topics(
            bus,
            [
                TopicSpec(self.topics.changes, PARTITIONS),
                TopicSpec(self.topics.consent, PARTITIONS),
            ],
        )
        self.registry = SchemaRegistryClient(bus.registry_config())
        self.changes = WireEncoder(
            self.registry, f"{self.topics.changes}-value", load_schema("student_record_changed")
        )
        self.producer = Producer(
            bus.kafka_config({"partitioner": "murmur2_random", "linger.ms": 20})
        )

    def produce_change(self, record: dict[str, Any]) -> None:
        self.producer.produce(
            self.topics.changes,
            key=record["student_id"].encode(),
            value=self.changes.encode(record),
        )
        self.producer.poll(0)

    def process(self, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "streams",
                "--data-dir",
                str(self.tmp),
                "process",
                "--until-idle",
                "--contracts",
                str(CONTRACTS),
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=timeout_s,
            env=cli_env(self.bus, self.topics),
            check=False,
        )

    def start(self, *args: str) -> subprocess.Popen[str]:
        log = (self.tmp / f"process-{uuid.uuid4().hex[:6]}.log").open("w")
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams",
                "--data-dir",
                str(self.tmp),
                "process",
                "--contracts",
                str(CONTRACTS),
                *args,
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
            env=cli_env(self.bus, self.topics),
        )

    def live_keys(self, partner: str) -> set[bytes]:
        latest: dict[bytes, bytes | None] = {}
        for read in read_topic(self.bus, self.topics.name(f"partner.{partner}.students")):
            latest[read.key or b""] = read.value
        return {k for k, v in latest.items() if v is not None}

    def close(self) -> None:
        drop_prefix(self.bus, self.topics.prefix)


def test_poison_pills_are_dead_letters_with_a_reason_and_processing_goes_on(
    bus: Connection, tmp_path: Path
) -> None:
    """A consent event (another registered schema) on the change topic, and a change with a
    900 KB name (its JSON changelog entry would be over 1 MB: MSG_SIZE_TOO_LARGE crashed the
    processor on every restart): both dead letters with a reason; the valid change after
    them is decided; the processor exits 0."""
    setup = Setup(bus, tmp_path, "pills")
    try:
        consent = WireEncoder(
            setup.registry, f"{setup.topics.consent}-value", load_schema("consent_changed")
        )
        opt_out = ConsentEvent(
            "o-1",
            ConsentKind.ALL_OPT_OUT,
            BASE["district_id"],
            int(time.time() * 1000) - 60_000,
            "NY-PILL-1",
        )
        setup.producer.produce(
            setup.topics.changes, key=b"NY-PILL-1", value=consent.encode(opt_out.to_avro())
        )
        setup.produce_change(change("NY-PILL-2", "c-2", first_name='"' * 900_000))
        setup.produce_change(change("NY-GOOD-1", "c-3"))
        assert setup.producer.flush(30) == 0
        run = setup.process()
        assert run.returncode == 0, run.stderr[-3000:]
        dead = {
            d.key: d.headers["hallpass.dlq.reason"]
            for d in read_topic(bus, setup.topics.changes_dlq)
        }
        assert set(dead) == {b"NY-PILL-1", b"NY-PILL-2"}, dead
        assert dead[b"NY-PILL-1"].startswith((b"undecodable: ", b"invalid: ")), dead
        assert b"ConsentChanged" in dead[b"NY-PILL-1"]
        assert dead[b"NY-PILL-2"].startswith((b"too_large: ", b"oversized: ")), dead
        assert len(setup.live_keys("learnwell")) == 1
    finally:
        setup.close()


def test_garbage_on_one_partition_pauses_it_and_the_other_partitions_are_processed(
    bus: Connection, tmp_path: Path
) -> None:
    """200 garbage records under one key and 600 valid changes on the other partitions: the
    600 are decided; the garbage's partition is paused with a message naming the cause and
    the prefixed dead-letter topic, where the records that tripped it are (before: 0 of the
    600 were processed, and the message blamed "upstream" and named an unprefixed topic)."""
    setup = Setup(bus, tmp_path, "halt")
    try:
        bad = partition_for(b"NY-GARBAGE", PARTITIONS)
        students = [
            s
            for s in (f"NY-H{i:04d}" for i in range(3000))
            if partition_for(s.encode(), PARTITIONS) != bad
        ][:600]
        for _ in range(200):
            setup.producer.produce(
                setup.topics.changes, key=b"NY-GARBAGE", value=b"\x07a bad deploy"
            )
        for i, student in enumerate(students):
            setup.produce_change(change(student, f"h-{i}"))
        assert setup.producer.flush(30) == 0
        run = setup.process()
        assert run.returncode == 1, run.stderr[-3000:]
        line = run.stderr.strip().splitlines()[-1]
        assert f"paused {setup.topics.changes}[{bad}]" in line, run.stderr[-3000:]
        assert setup.topics.changes_dlq in line and "undecodable" in line
        assert len(setup.live_keys("learnwell")) == 600
        dead = read_topic(bus, setup.topics.changes_dlq)
        assert 50 <= len(dead) < 200
        assert all(d.key == b"NY-GARBAGE" for d in dead)
        offsets = committed_offsets(bus, setup.topics.processor_group, [setup.topics.changes])
        assert offsets[(setup.topics.changes, bad)] == len(dead)  # resumes after the last
    finally:
        setup.close()


def test_sigterm_while_processing_stops_within_10_s_and_exactly_once_holds(
    bus: Connection, tmp_path: Path
) -> None:
    """``hallpass process`` SIGTERMed in the middle of a large batch (before: SIGTERM acted
    only between batches): it exits 0 within 10 s having aborted its open transaction; a
    second run finishes; every student is disclosed once and the ledger has one decision per
    (event, partner)."""
    setup = Setup(bus, tmp_path, "term")
    students = [f"NY-T{i:05d}" for i in range(6000)]
    try:
        for i, student in enumerate(students):
            setup.produce_change(change(student, f"t-{i}"))
        assert setup.producer.flush(60) == 0
        proc = setup.start("--batch-size", "20000")
        eventually(
            lambda: _consumer_started(bus, setup.topics),
            120,
            lambda: "the processor never started reading",
            interval_s=0.05,
        )
        time.sleep(1.0)  # in the middle of the batch (it takes several seconds)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
        took = time.monotonic() - sent
        assert code == 0 and took <= 10.0, (code, took)
        run = setup.process()
        assert run.returncode == 0, run.stderr[-3000:]
        learnwell = setup.topics.name("partner.learnwell.students")
        records = [r for r in read_topic(bus, learnwell) if r.value is not None]
        assert len(records) == len(students) == len({r.key for r in records})
        ledger = read_topic(bus, setup.topics.audit)
        ids = Counter(d["decision_id"] for d in decode_all(bus, ledger))
        assert ledger and max(ids.values()) == 1
    finally:
        setup.close()


def _consumer_started(bus: Connection, topics: Topics) -> bool:
    """True once the processor's group has members (it is consuming)."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient(bus.kafka_config({}))
    found = admin.describe_consumer_groups([topics.processor_group])[topics.processor_group]
    try:
        return bool(found.result(10).members)
    except Exception:
        return False
