"""A 3-broker cluster, proven (issue 16): `hallpass up --brokers 3` in a data dir of its own,
every topic with 3 replicas and 2 in sync; then the fault test. A simulated district
(seed 7) is published and processed by two workers while a broker is SIGKILLed three times
(a different one each time: the leader of an input partition during the publish, the leader
of a partner partition and the last one during processing; each restarted by `hallpass
up`), the registry is SIGKILLed during the publish and during processing (restarted by
`hallpass up`) and the whole stack is stopped and started mid-run (`hallpass down`/`up`).
Afterwards the partner topics (read_committed) must hold what a run of the same seed
without faults (another topic prefix, same cluster, same pseudonym secrets) holds, key for
key; the ledger one decision per decision id (event, partner), one DISCLOSED decision per
record each partner topic got and one RETRACTED decision per tombstone and per deletion
notice (the audit records of every output, none lost, none extra); each student's consent
history as the run without faults holds it (no consent event lost); nothing dead-lettered.

Which event discloses a record depends on how the two input topics interleave (a grant read
before or after the student's first record), so the ledgers of two runs of the same seed may
name different events, even without faults: the ledger is checked against the run's own
partner topics, not the other run's ledger.

Slow (about 15 minutes on 2 cores): `make test-faults`, not `make test`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.partner.auditor import read_ledger
from streams.config import Connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import ENV_TOPIC_PREFIX, Topics, TopicSpec
from streams.kafka.wire import WireDecoder
from streams.processor.state import consent_history
from tests.kafka_helpers import latest_by_key, read_topic
from tests.local_stack_helpers import (
    CONTROLLER_PORT,
    KAFKA_PORT,
    OwnStack,
    clean_env,
    leaders,
    wait_fully_replicated,
)
from tests.processor_helpers import committed_offsets, count_records

pytestmark = [pytest.mark.kafka, pytest.mark.faults]

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
STUDENTS, DAYS, SEED = 1000, 20, 7
#: envelope fields that differ per record (as in test_processor): the partner's record id
#: and the day the view changed
PER_RECORD = ("event_id", "occurred_at")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnStack]:
    own = OwnStack(tmp_path_factory.mktemp("cluster3"))
    own.up("--brokers", "3")
    try:
        yield own
    finally:
        own.down()


def test_status_lists_each_broker(cluster: OwnStack) -> None:
    status = cluster.status()
    assert status["running"] is True
    assert [(b["id"], b["port"], b["controller_port"], b["alive"]) for b in status["brokers"]] == [
        (1, KAFKA_PORT, CONTROLLER_PORT, True),
        (2, KAFKA_PORT + 2, CONTROLLER_PORT + 2, True),
        (3, KAFKA_PORT + 4, CONTROLLER_PORT + 4, True),
    ]
    assert all(isinstance(b["pid"], int) and b["pid"] > 0 for b in status["brokers"])
    assert status["bootstrap_servers"] == ",".join(
        f"127.0.0.1:{KAFKA_PORT + 2 * n}" for n in range(3)
    )
    text = cluster.hallpass("status").stdout
    assert "broker 3" in text and text.startswith("running")


def test_every_topic_has_three_replicas_two_in_sync(cluster: OwnStack) -> None:
    conn = cluster.conn
    topic = "t.cluster.defaults"
    ensure_topics(conn, [TopicSpec(topic)])  # as the bus's topics: the cluster's defaults
    admin = AdminClient(conn.kafka_config())
    # a group's offsets and a transaction bring up the offsets and transaction state logs
    consumer = Consumer(conn.kafka_config({"group.id": "t-cluster", "enable.auto.commit": False}))
    consumer.commit(offsets=[TopicPartition(topic, 0, 0)], asynchronous=False)
    consumer.close()
    from confluent_kafka import Producer

    producer = Producer(conn.kafka_config({"transactional.id": "t-cluster-tx"}))
    producer.init_transactions(60)
    producer.begin_transaction()
    producer.produce(topic, key=b"k", value=b"v")
    producer.commit_transaction(60)

    meta = admin.list_topics(timeout=30).topics
    for name in (topic, "__consumer_offsets", "__transaction_state", "kafkasql-journal"):
        assert name in meta, name
        assert {len(p.replicas) for p in meta[name].partitions.values()} == {3}, name
    resources = [
        ConfigResource(ConfigResource.Type.TOPIC, n)
        for n in (topic, "__transaction_state", "kafkasql-journal")
    ]
    for resource, future in admin.describe_configs(resources).items():
        assert future.result()["min.insync.replicas"].value == "2", resource


# --- the fault test ---------------------------------------------------------------------------


@dataclass
class Faults:
    """What was done to the cluster, for the figures."""

    broker_kills: list[tuple[int, str]] = field(default_factory=list)
    registry_kills: list[str] = field(default_factory=list)
    stack_restarts: int = 0
    worker_restarts: int = 0

    def count(self) -> int:
        return len(self.broker_kills) + len(self.registry_kills) + self.stack_restarts


class Workers:
    """`hallpass process --worker N` subprocesses, restarted when one exits (as a process
    supervisor would)."""

    def __init__(
        self, stack: OwnStack, env: dict[str, str], log_dir: Path, faults: Faults, count: int = 2
    ) -> None:
        self.stack, self.env, self.log_dir, self.faults = stack, env, log_dir, faults
        self.procs = {n: self._start(n) for n in range(count)}

    def _start(self, number: int) -> subprocess.Popen[bytes]:
        with (self.log_dir / f"worker-{number}.log").open("ab") as out:
            return subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "streams",
                    "--data-dir",
                    str(self.stack.data_dir),
                    "process",
                    "--contracts",
                    str(CONTRACTS),
                    "--worker",
                    str(number),
                    "--timer-interval",
                    "1",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
            )

    def tend(self) -> None:
        for number, proc in self.procs.items():
            if proc.poll() is not None:
                self.faults.worker_restarts += 1
                self.procs[number] = self._start(number)

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(30)

    def logs(self) -> str:
        return "\n".join(
            f"--- worker {n}\n"
            + (self.log_dir / f"worker-{n}.log").read_text(errors="replace")[-3000:]
            for n in self.procs
        )


def _run_env(prefix: str) -> dict[str, str]:
    return clean_env({ENV_TOPIC_PREFIX: prefix})


def _cli(stack: OwnStack, prefix: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = stack.hallpass(*args, env={ENV_TOPIC_PREFIX: prefix}, timeout=1200)
    assert result.returncode == 0, f"hallpass {' '.join(args)}:\n{result.stderr[-4000:]}"
    return result


def _simulate_args() -> list[str]:
    return [
        "simulate",
        "--students",
        str(STUDENTS),
        "--days",
        str(DAYS),
        "--seed",
        str(SEED),
        "--districts",
        "2",
    ]


def _ends(conn: Connection, topics: list[str]) -> dict[tuple[str, int], int]:
    consumer = Consumer(conn.kafka_config({"group.id": "t-ends", "enable.auto.commit": False}))
    try:
        return {
            (t, p): consumer.get_watermark_offsets(TopicPartition(t, p), timeout=30)[1]
            for t in topics
            for p in range(3)
        }
    finally:
        consumer.close()


def _restart(stack: OwnStack, faults: Faults, then: Callable[[], None] | None = None) -> None:
    time.sleep(3.0)  # long enough for the clients to notice, the cluster to fail over
    stack.up()
    if then:
        then()


def _partner_state(conn: Connection, topics: Topics) -> dict[str, dict[bytes, Any]]:
    names = [
        t
        for t in AdminClient(conn.kafka_config()).list_topics(timeout=30).topics
        if t.startswith(topics.prefix + "partner.") and t.endswith(".students")
    ]
    decoder = WireDecoder(SchemaRegistryClient(conn.registry_config()))
    state: dict[str, dict[bytes, Any]] = {}
    for name in sorted(names):
        live = {
            k: {f: v for f, v in decoder.decode(v).items() if f not in PER_RECORD}
            for k, v in latest_by_key(read_topic(conn, name)).items()
            if v is not None
        }
        state[name.removeprefix(topics.prefix)] = live
    return state


def _ledger(conn: Connection, topics: Topics) -> list[dict[str, Any]]:
    return [record for _, record in read_ledger(conn, topics.audit)]


def _ledger_disagreements(
    conn: Connection, topics: Topics, ledger: list[dict[str, Any]]
) -> dict[str, tuple[int, int]]:
    """Per partner topic, the (ledger, topic) counts of the (student key, decision) pairs on
    which they disagree: every record a partner topic got must be one DISCLOSED decision, every
    tombstone one RETRACTED decision of the whole record, every deletion notice one RETRACTED
    decision (whole or partial), and nothing else."""
    differ: dict[str, tuple[int, int]] = {}
    for partner in sorted({d["partner"] for d in ledger}):
        mine = [d for d in ledger if d["partner"] == partner]
        recorded = Counter(
            (d["partner_student_key"], d["decision"])
            for d in mine
            if d["decision"] == "DISCLOSED" or (d["decision"] == "RETRACTED" and not d["fields"])
        )
        sent = Counter(
            ((r.key or b"").decode(), "DISCLOSED" if r.value is not None else "RETRACTED")
            for r in read_topic(conn, topics.partner(partner))
        )
        retracted = Counter(d["partner_student_key"] for d in mine if d["decision"] == "RETRACTED")
        noticed = Counter(
            (r.key or b"").decode() for r in read_topic(conn, topics.notices(partner))
        )
        pairs: list[tuple[str, Counter[Any], Counter[Any]]] = [
            (topics.partner(partner), recorded, sent),
            (topics.notices(partner), retracted, noticed),
        ]
        for name, left, right in pairs:
            if left != right:
                differ[name] = (sum((left - right).values()), sum((right - left).values()))
    return differ


def _consent_histories(
    conn: Connection, topics: Topics, horizon_ms: int
) -> dict[str, frozenset[str]]:
    """Each student's consent history in the processor's committed tables, as the ids of the
    consent events it holds once compacted at ``horizon_ms``: a worker compacts a history
    behind its partition's clock, which depends on when it ran, so two runs may keep
    different superseded events; compacted at one later horizon, the same events give the
    same history (no decision from that horizon on can differ)."""
    histories: dict[str, frozenset[str]] = {}
    for key, value in latest_by_key(read_topic(conn, topics.state)).items():
        if key.startswith(b"c|") and value is not None:
            events = consent_history(value).compact(horizon_ms, keep_endings=True).events
            histories[key[2:].decode()] = frozenset(e.event_id for e in events)
    return histories


def _caught_up(conn: Connection, topics: Topics) -> bool:
    inputs = [topics.changes, topics.consent]
    ends = _ends(conn, inputs)
    done = committed_offsets(conn, topics.processor_group, inputs)
    return all(done.get(tp, 0) >= end for tp, end in ends.items())


@pytest.mark.timeout(3000)
def test_faults_lose_and_duplicate_nothing(cluster: OwnStack, tmp_path: Path) -> None:
    started = time.monotonic()
    conn = cluster.conn
    reference, faulty = Topics("t.ref."), Topics("t.flt.")

    # the run without faults
    _cli(cluster, reference.prefix, "contracts", "apply", "--contracts", str(CONTRACTS))
    _cli(cluster, reference.prefix, *_simulate_args())
    _cli(cluster, reference.prefix, "process", "--until-idle", "--contracts", str(CONTRACTS))

    # the run with faults
    faults = Faults()
    _cli(cluster, faulty.prefix, "contracts", "apply", "--contracts", str(CONTRACTS))
    publish_log = tmp_path / "simulate.log"
    with publish_log.open("w") as out:
        publisher = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams",
                "--data-dir",
                str(cluster.data_dir),
                *_simulate_args(),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_run_env(faulty.prefix),
        )
    time.sleep(4.0)
    # 1. the leader of an input partition, during the publish
    first = leaders(conn, faulty.changes)[0]
    cluster.kill_broker(first)
    faults.broker_kills.append((first, f"leader of {faulty.changes}/0, during the publish"))
    _restart(cluster, faults)
    # the registry, during the publish
    cluster.kill_registry()
    faults.registry_kills.append("during the publish")
    _restart(cluster, faults)
    assert publisher.wait(900) == 0, publish_log.read_text()[-4000:]
    wait_fully_replicated(conn)

    workers = Workers(cluster, _run_env(faulty.prefix), tmp_path, faults)
    try:
        time.sleep(15.0)
        # 2. the leader of a partner partition (another broker), during processing
        partner_topic = faulty.partner("learnwell")
        second = next(b for b in leaders(conn, partner_topic).values() if b != first)
        cluster.kill_broker(second)
        faults.broker_kills.append((second, f"leader of a partition of {partner_topic}"))
        _restart(cluster, faults, lambda: wait_fully_replicated(conn))
        workers.tend()
        # the registry, during processing
        cluster.kill_registry()
        faults.registry_kills.append("during processing")
        _restart(cluster, faults)
        workers.tend()
        time.sleep(5.0)
        # 3. the third broker, during processing
        third = ({1, 2, 3} - {first, second}).pop()
        cluster.kill_broker(third)
        faults.broker_kills.append((third, "the last one not yet killed, during processing"))
        _restart(cluster, faults, lambda: wait_fully_replicated(conn))
        workers.tend()
        # the whole stack, mid-run
        stopped = cluster.down()
        assert stopped.returncode == 0, stopped.stderr
        faults.stack_restarts += 1
        _restart(cluster, faults, lambda: wait_fully_replicated(conn))
        deadline = time.monotonic() + 900
        while not _caught_up(conn, faulty) and time.monotonic() < deadline:
            workers.tend()
            time.sleep(2.0)
        assert _caught_up(conn, faulty), workers.logs()
    finally:
        workers.stop()

    # what the partners hold, the ledger, the consent events
    expected, got = _partner_state(conn, reference), _partner_state(conn, faulty)
    assert expected and set(got) == set(expected)
    lost = {t: len(set(expected[t]) - set(got[t])) for t in expected}
    differ = {
        t: sum(1 for k in expected[t] if k in got[t] and got[t][k] != expected[t][k])
        for t in expected
    }
    extra = {t: len(set(got[t]) - set(expected[t])) for t in expected}
    ref_ledger, flt_ledger = _ledger(conn, reference), _ledger(conn, faulty)
    duplicated = sum(n - 1 for n in Counter(r["decision_id"] for r in flt_ledger).values())
    unaccounted = _ledger_disagreements(conn, faulty, flt_ledger)
    horizon = int(time.time() * 1000)
    consent_ref = _consent_histories(conn, reference, horizon)
    consent_flt = _consent_histories(conn, faulty, horizon)
    consent_lost = sum(
        len(events - consent_flt.get(s, frozenset())) for s, events in consent_ref.items()
    )
    dead = count_records(conn, faulty.changes_dlq, "read_committed")
    print(
        f"\nfault test: {faults.count()} faults ({faults.broker_kills}, registry killed "
        f"{faults.registry_kills}, {faults.stack_restarts} whole-stack restart), "
        f"{faults.worker_restarts} worker restarts; partner records expected "
        f"{sum(map(len, expected.values()))}, lost {sum(lost.values())}, differing "
        f"{sum(differ.values())}, extra {sum(extra.values())}; ledger {len(flt_ledger)} "
        f"decisions (reference {len(ref_ledger)}), duplicated {duplicated}, disagreeing with "
        f"the partner topics {unaccounted}; consent histories {len(consent_flt)} students, "
        f"{sum(map(len, consent_flt.values()))} events (reference {len(consent_ref)}, "
        f"{sum(map(len, consent_ref.values()))}), lost {consent_lost}; dead letters {dead}; "
        f"{time.monotonic() - started:.0f}s"
    )
    # the invariants hold without faults too (else the check, not the faults, is wrong)
    assert _ledger_disagreements(conn, reference, ref_ledger) == {}
    assert len(faults.broker_kills) == 3 and len({b for b, _ in faults.broker_kills}) == 3
    assert got == expected, (lost, differ, extra)
    assert duplicated == 0
    assert dead == 0
    assert unaccounted == {}, unaccounted
    assert consent_flt == consent_ref, f"{consent_lost} consent events lost"
