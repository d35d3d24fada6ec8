"""The processor without Kafka: an in-memory broker, workers that own partitions and run the
real handler and tables as ``hallpass process`` does (batches, table changelogs, restore on
assignment, the followed global table, timers), and producers with the partitioners real
clients use. Unit tests and the benchmarks drive it; nothing here decides anything.

Records are JSON instead of Avro (the codec is not what these tests are about), so views,
audit records and notices can be read back directly.
"""

from __future__ import annotations

import functools
import random
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from streams.kafka.names import DEFAULT_TOPICS, Topics
from streams.policy.catalog import field_catalog, load_schema, never_share_paths
from streams.policy.contracts import Contract, load_contracts
from streams.policy.decision import partner_key, partner_reference
from streams.policy.views import derive_view
from streams.processor.clock import ManualClock
from streams.processor.decider import PartnerRoute
from streams.processor.handlers import BusHandler, Codecs, HandlerSettings
from streams.processor.messages import InputHeaders, Output
from streams.processor.routing import partition_for
from streams.processor.state import Tables

REPO = Path(__file__).resolve().parents[1]
SOURCE = load_schema("student_record_changed")
CATALOG = field_catalog(SOURCE)
NEVER_SHARE = sorted(never_share_paths(CATALOG))


def sample_contracts() -> list[Contract]:
    return load_contracts(REPO / "deploy" / "contracts", CATALOG)


def secret_of(partner: str) -> bytes:
    return f"test-secret-of-{partner}-0123456789".encode()


def routes_for(contracts: Iterable[Contract]) -> list[PartnerRoute]:
    return [
        PartnerRoute(
            contract=c,
            view=derive_view(SOURCE, c),
            encode_view=_json,
            pseudonym=functools.partial(_pseudonym, secret_of(c.partner)),
            reference=functools.partial(_reference, secret_of(c.partner)),
        )
        for c in contracts
    ]


def _pseudonym(secret: bytes, student: str) -> str:
    return partner_key(student, secret)


def _reference(secret: bytes, value: str) -> str:
    return partner_reference(value, secret)


def _json(value: Mapping[str, Any]) -> bytes:
    return orjson.dumps(value)


def _decode(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise ValueError("no value")
    try:
        decoded = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise ValueError("not an object")
    return decoded


def _json_again(_raw: bytes | None, record: Mapping[str, Any]) -> bytes:
    return orjson.dumps(record)


JSON_CODECS = Codecs(
    decode_change=_decode,
    decode_consent=_decode,
    encode_audit=_json,
    encode_notice=_json,
    encode_dead_change=_json_again,
)


# --- the broker ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers_: tuple[tuple[str, str | bytes | None], ...] = ()
    #: the timestamp the producer set (None: the broker's clock)
    timestamp: int | None = None


class _Msg:
    """A Record as the handler reads it (methods, like confluent_kafka.Message)."""

    __slots__ = ("_r",)

    def __init__(self, record: Record) -> None:
        self._r = record

    def topic(self) -> str:
        return self._r.topic

    def partition(self) -> int:
        return self._r.partition

    def offset(self) -> int:
        return self._r.offset

    def key(self) -> bytes | None:
        return self._r.key

    def value(self) -> bytes | None:
        return self._r.value

    def headers(self) -> InputHeaders | None:
        return list(self._r.headers_)


Partitioner = Callable[[bytes | None, int], int]


def murmur2_partitioner(key: bytes | None, partitions: int) -> int:
    """Java's default partitioner (and librdkafka's ``murmur2_random``)."""
    assert key is not None
    return partition_for(key, partitions)


def crc32_partitioner(key: bytes | None, partitions: int) -> int:
    """librdkafka's default (``consistent_random``): CRC32 of the key."""
    assert key is not None
    return zlib.crc32(key) % partitions


class Broker:
    """Topics as lists of records per partition; transactions are applied whole."""

    def __init__(self, partitions: int, topics: Topics = DEFAULT_TOPICS) -> None:
        self.partitions = partitions
        self.topics = topics
        self.logs: dict[tuple[str, int], list[Record]] = {}

    def log(self, topic: str, partition: int) -> list[Record]:
        return self.logs.setdefault((topic, partition), [])

    def append(
        self,
        topic: str,
        partition: int,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, str | bytes | None]] | None = None,
        timestamp: int | None = None,
    ) -> Record:
        log = self.log(topic, partition)
        record = Record(topic, partition, len(log), key, value, tuple(headers or ()), timestamp)
        log.append(record)
        return record

    def produce(
        self, topic: str, key: bytes, value: bytes, partitioner: Partitioner = murmur2_partitioner
    ) -> Record:
        return self.append(topic, partitioner(key, self.partitions), key, value)

    def commit(self, outputs: Iterable[Output], partitions_of: Mapping[str, int]) -> None:
        """Append a transaction's outputs (a topic's partition from the output, else the
        key's murmur2 partition)."""
        for out in outputs:
            count = partitions_of.get(out.topic, self.partitions)
            partition = (
                out.partition
                if out.partition is not None
                else (partition_for(out.key, count) if out.key is not None else 0)
            )
            self.append(out.topic, partition, out.key, out.value, out.headers, out.timestamp)

    def records(self, topic: str) -> list[Record]:
        return [r for (t, _p), log in sorted(self.logs.items()) if t == topic for r in log]

    def latest_by_key(self, topic: str) -> dict[bytes, bytes | None]:
        """What a compacted topic holds (per key, the last value; None: a tombstone)."""
        latest: dict[bytes, bytes | None] = {}
        for record in self.records(topic):
            if record.key is not None:
                latest[record.key] = record.value
        return latest


# --- workers -------------------------------------------------------------------------------


@dataclass
class Worker:
    """One ``hallpass process``: a handler, its tables, the partitions it owns, its read
    positions (committed with each batch, as the loop's transactions do)."""

    name: str
    handler: BusHandler
    tables: Tables
    owned: set[int] = field(default_factory=set)
    global_read: int = 0


class Cluster:
    """Workers in one group over an in-memory broker, with a shared (manual) clock."""

    def __init__(
        self,
        routes: Sequence[PartnerRoute],
        partitions: int,
        clock: ManualClock,
        topics: Topics = DEFAULT_TOPICS,
        rng: random.Random | None = None,
        future_skew_ms: int = 86_400_000,
        known_districts: frozenset[str] = frozenset(),
    ) -> None:
        self.routes = list(routes)
        self.known_districts = known_districts
        self.partitions = partitions
        self.clock = clock
        self.topics = topics
        self.broker = Broker(partitions, topics)
        self.rng = rng or random.Random(0)
        self.future_skew_ms = future_skew_ms
        self.workers: list[Worker] = []
        #: the group's committed input positions
        self.positions: dict[tuple[str, int], int] = {}
        #: outputs in the order they were committed, with the clock at the commit
        self.committed: list[tuple[int, Output]] = []
        self._names = 0

    # -- membership ---------------------------------------------------------------------
    def _new_handler(self) -> BusHandler:
        return BusHandler(
            self.routes,
            JSON_CODECS,
            HandlerSettings(
                partitions=self.partitions,
                never_share=NEVER_SHARE,
                topics=self.topics,
                future_skew_ms=self.future_skew_ms,
                field_categories={p: info.category for p, info in CATALOG.items()},
                change_schema=SOURCE,
                known_districts=self.known_districts,
            ),
            clock=self.clock,
        )

    def start_worker(self) -> Worker:
        self._names += 1
        worker = Worker(
            f"w{self._names}", self._new_handler(), Tables(self.topics.state, self.topics.districts)
        )
        self._restore_global(worker)
        self.workers.append(worker)
        return worker

    def _restore_global(self, worker: Worker) -> None:
        log = self.broker.log(self.topics.districts, 0)
        for record in log[worker.global_read :]:
            worker.tables.load_global(record.key or b"", record.value)
        worker.global_read = len(log)

    def assign(self, assignment: Mapping[str, Iterable[int]]) -> None:
        """Give each named worker exactly these partitions (restore what is new to it)."""
        by_name = {w.name: w for w in self.workers}
        for name, wanted in assignment.items():
            worker = by_name[name]
            wanted_set = set(wanted)
            gone = sorted(worker.owned - wanted_set)
            for number in gone:
                worker.tables.drop_partition(number)
            worker.handler.on_revoked(gone)
            fresh = wanted_set - worker.owned
            for number in sorted(fresh):
                for record in self.broker.log(self.topics.state, number):
                    worker.tables.partition(number).load(record.key or b"", record.value)
            worker.owned = wanted_set
            if fresh:
                worker.handler.on_restored(worker.tables)

    def rebalance(self) -> None:
        """Spread the partitions over the live workers at random."""
        numbers = list(range(self.partitions))
        self.rng.shuffle(numbers)
        shares: dict[str, list[int]] = {w.name: [] for w in self.workers}
        for i, number in enumerate(numbers):
            shares[self.workers[i % len(self.workers)].name].append(number)
        # revoke everything moving first, then assign (as a cooperative rebalance would)
        for worker in self.workers:
            keep = worker.owned & set(shares[worker.name])
            self.assign({worker.name: keep})
        self.assign(shares)

    def kill(self, worker: Worker) -> None:
        """A crash: the worker's memory is gone, nothing uncommitted survives."""
        self.workers.remove(worker)

    # -- processing ---------------------------------------------------------------------
    def input_topics(self) -> list[str]:
        return [self.topics.changes, self.topics.consent, self.topics.repartition]

    def pending(self, worker: Worker) -> list[Record]:
        out = []
        for topic in self.input_topics():
            for number in sorted(worker.owned):
                log = self.broker.log(topic, number)
                out.extend(log[self.positions.get((topic, number), 0) :])
        return out

    def step(self, worker: Worker, max_records: int = 50, crash: bool = False) -> int:
        """One batch of ``worker``: records of its partitions (each partition in order,
        partitions interleaved at random), then the batch end; committed whole unless
        ``crash`` (then the worker dies before the commit). Returns records consumed."""
        queues: dict[tuple[str, int], list[Record]] = {}
        for topic in self.input_topics():
            for number in sorted(worker.owned):
                log = self.broker.log(topic, number)
                start = self.positions.get((topic, number), 0)
                if start < len(log):
                    queues[(topic, number)] = log[start:]
        batch: list[Record] = []
        while queues and len(batch) < max_records:
            tp = self.rng.choice(sorted(queues))
            batch.append(queues[tp].pop(0))
            if not queues[tp]:
                del queues[tp]
        outputs: list[Output] = []
        for record in batch:
            outputs.extend(worker.handler.handle(_Msg(record), worker.tables))
        outputs.extend(worker.handler.on_batch_end(worker.tables))
        changes = worker.tables.take_changes()
        if crash:
            self.kill(worker)
            return 0
        self._commit(outputs, changes)
        worker.tables.forget()
        for record in batch:
            key = (record.topic, record.partition)
            self.positions[key] = max(self.positions.get(key, 0), record.offset + 1)
        return len(batch)

    def follow_and_tick(self, worker: Worker) -> int:
        """What the loop does between batches: follow the global table, fire timers."""
        log = self.broker.log(self.topics.districts, 0)
        for record in log[worker.global_read :]:
            worker.tables.load_global(record.key or b"", record.value)
        worker.global_read = len(log)
        outputs = worker.handler.tick(worker.tables)
        changes = worker.tables.take_changes()
        self._commit(outputs, changes)
        worker.tables.forget()
        return len(outputs)

    def _commit(self, outputs: Sequence[Output], changes: Sequence[Any]) -> None:
        now = self.clock.now_ms()
        self.broker.commit(outputs, {self.topics.districts: 1})
        for change in changes:
            self.broker.append(change.topic, change.partition, change.key, change.value)
        self.committed.extend((now, out) for out in outputs)

    def drain(self, max_rounds: int = 1000) -> None:
        """Run every worker until nothing is pending anywhere and timers are quiet."""
        for _ in range(max_rounds):
            busy = False
            for worker in list(self.workers):
                if self.step(worker, max_records=10_000):
                    busy = True
            for worker in list(self.workers):
                if self.follow_and_tick(worker):
                    busy = True
            if not busy and not any(self.pending(w) for w in self.workers):
                return
        raise AssertionError("the cluster did not settle")

    # -- reading back -------------------------------------------------------------------
    def partner_state(self, route: PartnerRoute) -> dict[str, dict[str, Any]]:
        """What the partner's compacted topic holds: partner key -> view (without the
        per-event envelope fields)."""
        held: dict[str, dict[str, Any]] = {}
        for key, value in self.broker.latest_by_key(route.contract.topic).items():
            if value is not None:
                view = orjson.loads(value)
                view.pop("event_id", None)
                view.pop("occurred_at", None)
                held[key.decode()] = view
        return held

    def ledger(self) -> list[dict[str, Any]]:
        return [
            orjson.loads(r.value)
            for r in self.broker.records(self.topics.audit)
            if r.value is not None
        ]

    def dead_letters(self) -> list[Record]:
        return self.broker.records(self.topics.changes_dlq)
