"""Fuzzing the processor's inputs (issue 16): 10,000 malformed records over both input topics
(random bytes, unknown schema ids, a record of the other input's registered schema, truncated,
oversized, invalid values) interleaved with valid ones, through `hallpass process
--until-idle` on a real broker: it does not crash, every malformed record is in the DLQ with
a reason and its origin, every valid one is decided.

Each malformed record shares its key and topic (hence its partition) with one or two valid
ones written just before it, so no partition's recent records are mostly invalid (that would
pause the partition).
"""

from __future__ import annotations

import copy
import json
import os
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, Message, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import Connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import Topics, TopicSpec
from streams.kafka.wire import WireEncoder
from streams.policy.catalog import load_schema, schema_dir
from streams.policy.consent import ConsentEvent, ConsentKind
from streams.processor.app import apply_contracts
from tests.kafka_helpers import read_topic
from tests.processor_helpers import cli_env

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"
#: malformed records (HALLPASS_FUZZ_RECORDS to run fewer while developing)
MALFORMED = int(os.environ.get("HALLPASS_FUZZ_RECORDS", "10000"))
DAY = 86_400_000

Make = Callable[[random.Random, str], tuple[str, bytes | None, bytes | None]]


class Inputs:
    """Encoders of both inputs and the valid and malformed records built from them."""

    def __init__(self, bus: Connection, topics: Topics) -> None:
        registry = SchemaRegistryClient(bus.registry_config())
        self.topics = topics
        self.change = WireEncoder(
            registry, f"{topics.changes}-value", load_schema("student_record_changed")
        )
        self.consent = WireEncoder(
            registry, f"{topics.consent}-value", load_schema("consent_changed")
        )
        self.base: dict[str, Any] = json.loads(
            (schema_dir() / "examples" / "student_record_changed.upsert.json").read_text()
        )
        self.now = int(time.time() * 1000)
        self.serial = 0

    def valid_change(self, student: str) -> dict[str, Any]:
        self.serial += 1
        record = copy.deepcopy(self.base)
        record.update(
            student_id=student,
            event_id=f"fz-{self.serial}",
            occurred_at=self.now - DAY + self.serial,
        )
        record["names"]["first_name"] = f"N{self.serial}"
        return record

    def valid_consent(self, student: str) -> ConsentEvent:
        self.serial += 1
        return ConsentEvent(
            f"fz-c-{self.serial}",
            ConsentKind.DIRECTORY_OPT_OUT,
            self.base["district_id"],
            self.now - DAY + self.serial,
            student,
        )

    # -- malformed, one maker per kind: (topic, key, value) ---------------------------------
    def random_bytes(self, rng: random.Random, key: str) -> tuple[str, bytes | None, bytes]:
        return self._either(rng), key.encode(), rng.randbytes(rng.randrange(0, 300))

    def unknown_schema_id(self, rng: random.Random, key: str) -> tuple[str, bytes, bytes]:
        framed = b"\x00" + rng.randrange(10_000_000, 2**31).to_bytes(4, "big")
        return self._either(rng), key.encode(), framed + rng.randbytes(40)

    def other_schema(self, rng: random.Random, key: str) -> tuple[str, bytes, bytes]:
        if rng.random() < 0.5:  # a consent event on the change topic
            return (
                self.topics.changes,
                key.encode(),
                self.consent.encode(self.valid_consent(key).to_avro()),
            )
        return self.topics.consent, key.encode(), self.change.encode(self.valid_change(key))

    def truncated(self, rng: random.Random, key: str) -> tuple[str, bytes, bytes]:
        if rng.random() < 0.5:
            whole = self.change.encode(self.valid_change(key))
            return self.topics.changes, key.encode(), whole[: rng.randrange(5, len(whole) - 1)]
        whole = self.consent.encode(self.valid_consent(key).to_avro())
        return self.topics.consent, key.encode(), whole[: rng.randrange(5, len(whole) - 1)]

    def oversized(self, rng: random.Random, key: str) -> tuple[str, bytes, bytes]:
        record = self.valid_change(key)
        record["special"] = {
            **(record.get("special") or {}),
            "medical_alerts": ["x" * 2000] * rng.randrange(40, 60),
        }
        return self.topics.changes, key.encode(), self.change.encode(record)

    def invalid_value(self, rng: random.Random, key: str) -> tuple[str, bytes, bytes]:
        record = self.valid_change(key)
        pick = rng.randrange(6)
        if pick == 0:
            record["district_id"] = ""
        elif pick == 1:
            record["school_id"] = "28\x0001"
        elif pick == 2:
            record["demographics"] = {**record["demographics"], "birth_date": -719_162}
        elif pick == 3:
            record["enrollment"] = {**record["enrollment"], "entry_date": 47_482}  # 2100
        elif pick == 4:
            record["names"] = {**record["names"], "last_name": "L" * 5000}
        else:
            event = self.valid_consent(key)
            value = {**event.to_avro(), "effective_at": -5_364_662_400_000}  # 1800
            return self.topics.consent, key.encode(), self.consent.encode(value)
        return self.topics.changes, key.encode(), self.change.encode(record)

    def wrong_key(self, rng: random.Random, key: str) -> tuple[str, bytes, bytes]:
        if rng.random() < 0.5:
            return (
                self.topics.changes,
                key.encode(),
                self.change.encode(self.valid_change(f"{key}-other")),
            )
        return (
            self.topics.consent,
            key.encode(),
            self.consent.encode(self.valid_consent(f"{key}-other").to_avro()),
        )

    def _either(self, rng: random.Random) -> str:
        return self.topics.changes if rng.random() < 0.5 else self.topics.consent


def test_ten_thousand_malformed_records_crash_nothing_and_are_all_dead_letters(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    apply_contracts(bus, CONTRACTS, topics, secrets_file=tmp_path / "partner-secrets.json")
    ensure_topics(bus, [TopicSpec(topics.changes, 3), TopicSpec(topics.consent, 3)])
    inputs = Inputs(bus, topics)
    makers: list[Make] = [
        inputs.random_bytes,
        inputs.unknown_schema_id,
        inputs.other_schema,
        inputs.truncated,
        inputs.oversized,
        inputs.invalid_value,
        inputs.wrong_key,
    ]
    rng = random.Random(16)
    producer = Producer(
        bus.kafka_config(
            {"partitioner": "murmur2_random", "linger.ms": 50, "message.max.bytes": 1_000_000}
        )
    )
    malformed: set[tuple[str, int, int]] = set()
    kinds: Counter[str] = Counter()
    failures: list[str] = []
    valid = Counter[str]()

    def delivered_to(into: set[tuple[str, int, int]] | None) -> Callable[..., None]:
        def report(err: KafkaError | None, msg: Message) -> None:
            if err is not None:
                failures.append(str(err))
            elif into is not None:
                into.add((msg.topic() or "", msg.partition() or 0, msg.offset() or 0))

        return report

    def produce_valid(topic: str, student: str) -> None:
        if topic == topics.changes:
            value = inputs.change.encode(inputs.valid_change(student))
            valid["changes"] += 1
        else:
            value = inputs.consent.encode(inputs.valid_consent(student).to_avro())
            valid["consent"] += 1
        producer.produce(topic, key=student.encode(), value=value, on_delivery=delivered_to(None))

    for i in range(MALFORMED):
        student = f"NY-FZ-{i % 500:04d}"
        make = makers[i % len(makers)]
        topic, key, value = make(rng, student)
        kinds[make.__name__] += 1
        # a valid record before it on its partition (and every other time two): no partition
        # is mostly invalid
        for _ in range(1 + i % 2):
            produce_valid(topic, student)
        producer.produce(topic, key=key, value=value, on_delivery=delivered_to(malformed))
        if i % 500 == 0:
            producer.poll(0)
    assert producer.flush(120) == 0 and not failures, failures[:3]
    assert len(malformed) == MALFORMED

    started = time.monotonic()
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "--data-dir",
            str(tmp_path),
            "process",
            "--until-idle",
            "--contracts",
            str(CONTRACTS),
        ],
        capture_output=True,
        text=True,
        timeout=1800,
        env=cli_env(bus, topics),
        check=False,
    )
    assert run.returncode == 0, run.stderr[-3000:]  # no crash, no partition paused
    took = time.monotonic() - started
    summary = re.search(r"\((\d+) changes, (\d+) consent events, (\d+) dead letters\)", run.stdout)
    assert summary, run.stdout
    changes, consent, dead = (int(n) for n in summary.groups())
    print(
        f"fuzz: {MALFORMED} malformed ({dict(kinds)}), {sum(valid.values())} valid, "
        f"processed in {took:.0f}s"
    )

    letters = read_topic(bus, topics.changes_dlq, timeout_s=300)
    origins = {
        (
            r.headers["hallpass.dlq.topic"].decode(),
            int(r.headers["hallpass.dlq.partition"]),
            int(r.headers["hallpass.dlq.offset"]),
        )
        for r in letters
    }
    assert all(r.headers.get("hallpass.dlq.reason") for r in letters)
    assert malformed <= origins, f"{len(malformed - origins)} malformed records not in the DLQ"
    assert len(letters) == MALFORMED == dead
    # every valid record was decided (none dead-lettered, none left)
    assert (changes, consent) == (valid["changes"], valid["consent"])
    reasons = Counter(r.headers["hallpass.dlq.reason"].decode().split(":")[0] for r in letters)
    assert set(reasons) <= {"undecodable", "invalid", "oversized"}, reasons
