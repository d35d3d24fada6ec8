"""Privacy in production topology, on the real broker: three ``hallpass process`` workers
over six partitions, changes written with librdkafka's default partitioner (CRC32, as a
Python or C SIS client would), consent and district events written with the Java client
(murmur2), the wall clock, a row dated 2099, a consent that expires on a quiet partition, and
a worker SIGKILLed twice. The partner topics (read_committed) and the ledger must end as the
reference model says (every input at once, decided at the end time), and the time-driven
retractions must arrive within the timer's bound."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.partner.auditor import read_ledger
from streams.config import Connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import Topics, TopicSpec
from streams.kafka.wire import WireDecoder, WireEncoder
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.consent import ConsentEvent, ConsentKind
from streams.policy.contracts import load_contracts, resolve_allowances
from streams.policy.decision import partner_key
from streams.processor.app import apply_contracts
from streams.processor.routing import partition_for
from tests.java_producer import java_produce
from tests.kafka_helpers import latest_by_key, read_topic
from tests.processor_helpers import Expected, cli_env, drop_prefix, non_null_leaves
from tests.provenance import GUARDIAN_SIGNED

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
PARTITIONS, WORKERS, STUDENTS = 6, 3, 60
TIMER_S = 1.0
#: how late a time-driven retraction may come: the timer, a batch, a transaction, the
#: global table's follow, on a 2-core machine shared with the broker
BOUND_S = 15.0
CATALOG = field_catalog(load_schema("student_record_changed"))
BASE = json.loads(
    (REPO / "schemas" / "examples" / "student_record_changed.upsert.json").read_text()
)
DISTRICTS = ("NY-T1", "NY-T2")


class Worker:
    def __init__(
        self,
        conn: Connection,
        topics: Topics,
        data_dir: Path,
        number: int,
        secrets: Path,
        log: Path,
    ) -> None:
        self.args = [
            sys.executable,
            "-m",
            "streams",
            "--data-dir",
            str(data_dir),
            "process",
            "--contracts",
            str(CONTRACTS),
            "--partner-secrets",
            str(secrets),
            "--worker",
            str(number),
            "--timer-interval",
            str(TIMER_S),
        ]
        self.env = cli_env(conn, topics)
        self.log = log
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        with self.log.open("ab") as out:
            return subprocess.Popen(self.args, stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def kill_and_restart(self) -> None:
        self.proc.kill()
        self.proc.wait(30)
        self.proc = self._start()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def change(student: str, district: str, at: int, variant: int) -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(BASE)
    record.update(
        event_id=str(uuid.uuid4()),
        student_id=student,
        district_id=district,
        occurred_at=at,
        operation="UPSERT",
    )
    record["names"]["first_name"] = f"Name{variant}"
    for key in ("local_student_id", "state_student_id"):
        if key in (record.get("identity") or {}):
            record["identity"][key] = student
    return record


def consent(
    kind: ConsentKind,
    at: int,
    student: str | None,
    district: str,
    partner: str | None,
    categories: frozenset[str] = frozenset(),
    expires: int | None = None,
) -> dict[str, Any]:
    value: dict[str, Any] = ConsentEvent(
        f"t-{uuid.uuid4()}",
        kind,
        district,
        at,
        student,
        partner,
        categories,
        expires_at=expires,
        recorded_by="t-guardian",
        source_system="t-parent-portal",
        **(GUARDIAN_SIGNED if kind is ConsentKind.GRANT else {}),
    ).to_avro()
    return value


def wait_until(what: str, check: Callable[[], bool], timeout_s: float) -> float:
    """Seconds until ``check`` holds (polled); fails after ``timeout_s``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout_s, f"not within {timeout_s}s: {what}"
        time.sleep(0.25)
    return time.monotonic() - started


@pytest.fixture
def prefix_topics(bus: Connection) -> Iterator[Topics]:
    topics = Topics(f"t.topo.{uuid.uuid4().hex[:10]}.")
    try:
        yield topics
    finally:
        drop_prefix(bus, topics.prefix)


def test_three_workers_any_partitioner_wall_clock_match_the_model(
    bus: Connection, prefix_topics: Topics, tmp_path: Path
) -> None:
    topics = prefix_topics
    secrets_file = tmp_path / "partner-secrets.json"
    ensure_topics(
        bus, [TopicSpec(topics.changes, PARTITIONS), TopicSpec(topics.consent, PARTITIONS)]
    )
    apply_contracts(bus, CONTRACTS, topics, secrets_file=secrets_file)
    registry = SchemaRegistryClient(bus.registry_config())
    change_encoder = WireEncoder(
        registry, f"{topics.changes}-value", load_schema("student_record_changed")
    )
    consent_encoder = WireEncoder(
        registry, f"{topics.consent}-value", load_schema("consent_changed")
    )
    crc32 = Producer(bus.kafka_config({"enable.idempotence": True}))  # librdkafka default

    def publish_changes(records: list[dict[str, Any]]) -> None:
        for record in records:
            crc32.produce(
                topics.changes,
                key=record["student_id"].encode(),
                value=change_encoder.encode(record),
            )
        assert crc32.flush(30) == 0

    def publish_consents(values: list[dict[str, Any]]) -> list[int]:
        placed = java_produce(
            bus,
            [
                (
                    topics.consent,
                    (v["student_id"] or v["district_id"]).encode(),
                    consent_encoder.encode(v),
                )
                for v in values
            ],
        )
        return [partition for _t, partition, _o in placed]

    now = int(time.time() * 1000)
    students = [f"NY-T{i:04d}" for i in range(STUDENTS)]
    district_of = {s: DISTRICTS[i % 2] for i, s in enumerate(students)}
    changes = [change(s, district_of[s], now - 3_600_000 + i, i) for i, s in enumerate(students)]
    # the health partner's consents: most for good, one that expires soon on a quiet student
    granted = students[:20]
    expiring = students[1]
    consents = [
        consent(
            ConsentKind.GRANT,
            now - 60_000,
            s,
            district_of[s],
            "carewell-health",
            frozenset({"special_medical", "special_iep_504"}),
            expires=now + 45_000 if s == expiring else None,
        )
        for s in granted
    ]
    publish_changes(changes)
    placed = publish_consents(consents)
    assert placed == [partition_for(s.encode(), PARTITIONS) for s in granted], (
        "the Java client partitions by murmur2"
    )

    logs = tmp_path / "logs"
    logs.mkdir()
    workers = [
        Worker(bus, topics, tmp_path / f"w{i}", i, secrets_file, logs / f"w{i}.log")
        for i in range(WORKERS)
    ]
    decoder = WireDecoder(registry)
    contracts = {c.partner: c for c in load_contracts(CONTRACTS, CATALOG)}
    secrets = {p: bytes.fromhex(h) for p, h in json.loads(secrets_file.read_text()).items()}

    def held(partner: str) -> dict[str, dict[str, Any]]:
        """student -> decoded record the partner's topic holds (read_committed)."""
        by_key = {partner_key(s, secrets[partner]).encode(): s for s in students}
        latest = latest_by_key(read_topic(bus, topics.partner(partner)))
        return {by_key[k]: decoder.decode(v) for k, v in latest.items() if v is not None}

    try:
        wait_until(
            "every student reaches learnwell", lambda: len(held("learnwell")) == STUDENTS, 180
        )
        wait_until(
            "the consented students reach carewell-health",
            lambda: set(held("carewell-health")) == set(granted),
            60,
        )
        workers[0].kill_and_restart()

        # a district opt-out written by Java lands on one partition; every worker retracts
        opted_district = DISTRICTS[0]
        district_students = {s for s in students if district_of[s] == opted_district}
        owners = {partition_for(s.encode(), PARTITIONS) for s in district_students}
        district_value = consent(
            ConsentKind.DISTRICT_OPT_OUT, int(time.time() * 1000), None, opted_district, "measurely"
        )
        [district_partition] = publish_consents([district_value])
        assert owners - {district_partition}, "the district's students are on other partitions"
        district_delay = wait_until(
            "the district opt-out retracts the district's students from measurely",
            lambda: not set(held("measurely")) & district_students,
            60,
        )
        assert set(held("measurely")) == set(students) - district_students
        workers[1].kill_and_restart()

        # a row dated 2099 is a dead letter and changes nothing
        future = change(students[5], district_of[students[5]], 4_070_908_800_000, 99)
        publish_changes([future])
        wait_until(
            "the 2099 row reaches the DLQ",
            lambda: any(
                b"future_dated" in (r.headers.get("hallpass.dlq.reason") or b"")
                for r in read_topic(bus, topics.changes_dlq)
            ),
            60,
        )
        assert held("learnwell")[students[5]]["names"]["first_name"] == "Name5"

        # the consent of a student with no traffic expires: retracted within the bound
        expires_at = next(c["expires_at"] for c in consents if c["student_id"] == expiring)
        wait_until(
            "the expiring consent is retracted",
            lambda: expiring not in held("carewell-health"),
            120,
        )
        expiry_delay = time.time() - expires_at / 1000
        assert expiry_delay <= BOUND_S, f"the expiry was retracted {expiry_delay:.1f}s late"
        final = int(time.time() * 1000)
        time.sleep(2 * TIMER_S)
    finally:
        for worker in workers:
            worker.stop()
    print(
        f"district opt-out retracted on every worker {district_delay:.2f}s after publishing;"
        f" consent expiry retracted {expiry_delay:.2f}s after it came due"
    )
    assert district_delay <= BOUND_S

    # the reference model: every input at once, decided at the end
    all_consents = [*consents, district_value]
    expected = Expected.of(CATALOG, changes, all_consents)
    expected.end = final
    for partner, contract in contracts.items():
        allowances = resolve_allowances(contract, CATALOG)
        holds = held(partner)
        want = {s: expected.view_fields(s, contract, allowances) for s in students}
        want = {s: f for s, f in want.items() if f}
        assert set(holds) == set(want), f"{partner}: holds other students than the model"
        for student, record in holds.items():
            assert non_null_leaves(record, CATALOG) & set(allowances) == want[student], (
                f"{partner}: {student} holds other fields than the model"
            )

    ledger = [r for _, r in read_ledger(bus, topics.audit)]
    ids = Counter(r["decision_id"] for r in ledger)
    assert not [d for d, n in ids.items() if n > 1], "a decision was recorded twice"
    change_ids = {c["event_id"] for c in changes}
    per_change = Counter(
        (r["event_id"], r["partner"]) for r in ledger if r["event_id"] in change_ids
    )
    assert set(per_change.values()) == {1}
    assert len(per_change) == len(change_ids) * len(contracts)
    assert future["event_id"] not in {r["event_id"] for r in ledger}
    # every worker took part, and the CRC32-partitioned changes were forwarded
    assert read_topic(bus, topics.repartition), "nothing was forwarded to its partition"
