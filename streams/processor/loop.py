"""Kafka I/O of the processor: consume, transform, produce outputs, table changes and input
offsets in one transaction (exactly once); restore tables from their changelogs on assignment.

Why not faust's ``processing_guarantee="exactly_once"``: with faust-streaming 0.15.3 on Kafka
4.1 the app ran, but its output carried no transaction markers (records were not written
transactionally), and faust has open reports of duplicates under exactly-once
(faust-streaming/faust #517, #323, #177). This loop uses librdkafka's transactions with
KIP-447 offset commits (``send_offsets_to_transaction`` with the group metadata), which fence
a zombie worker by its group generation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Message,
    Producer,
    TopicPartition,
)

from streams.config import Connection
from streams.kafka.read_to_end import nonempty_from_start, read_to_end
from streams.processor.emitter import DAY_MS
from streams.processor.messages import Output
from streams.processor.state import DISTRICT_TOPIC, STATE_TOPIC, Tables

log = logging.getLogger("hallpass.processor")


class BatchObserver(Protocol):
    """Told about every committed batch (``streams.metrics.ProcessorTimings``)."""

    def observe_batch(self, timestamps_ms: Iterable[int], handle_s: float, produce_s: float,
                      commit_s: float, committed_unix: float | None = None) -> None: ...


class Handler(Protocol):
    def handle(self, msg: Message, tables: Tables) -> list[Output]: ...

    def on_batch_end(self, tables: Tables) -> list[Output]: ...

    def tick(self, tables: Tables) -> list[Output]: ...

    def on_restored(self, tables: Tables) -> None: ...

    def on_revoked(self, partitions: Sequence[int]) -> None: ...


@dataclass
class LoopStats:
    consumed: int = 0
    produced: int = 0
    transactions: int = 0
    #: transactions of timers and followed district events (no input record)
    ticks: int = 0
    restored: int = 0
    restore_s: float = 0.0
    #: monotonic times of the first batch's start and the last commit (the busy span)
    first_batch_at: float = 0.0
    last_commit_at: float = 0.0
    #: unix time of the last commit (for the metrics)
    last_commit_unix: float = 0.0
    by_topic: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class LoopSettings:
    group_id: str = "hallpass-processor"
    transactional_id: str = "hallpass-processor-0"
    #: static group membership: a worker restarted under the same id takes its partitions
    #: back at once instead of waiting a session timeout for its dead predecessor to expire
    group_instance_id: str | None = None
    state_topic: str = STATE_TOPIC
    district_topic: str = DISTRICT_TOPIC
    batch_size: int = 5000
    poll_timeout_s: float = 0.05
    until_idle: bool = False
    idle_s: float = 2.0
    transaction_timeout_ms: int = 60000
    #: how often timers (expiries, contract and district dates) are checked when no record
    #: arrives: the bound on how late a time-driven retraction is sent
    tick_interval_s: float = 5.0


class ProcessorLoop:
    def __init__(
        self,
        conn: Connection,
        input_topics: Sequence[str],
        handler: Handler,
        settings: LoopSettings = LoopSettings(),
        on_progress: Callable[[LoopStats], None] | None = None,
        observer: BatchObserver | None = None,
        check_global: Callable[[Tables], None] | None = None,
    ) -> None:
        """``check_global`` is called once the global table is restored, before anything is
        consumed (it raises to refuse to start)."""
        self.conn = conn
        self.observer = observer
        self.input_topics = list(input_topics)
        self.handler = handler
        self.settings = settings
        self.tables = Tables(settings.state_topic, settings.district_topic)
        self.stats = LoopStats()
        self._on_progress = on_progress
        self._running = True
        self._assigned: set[int] = set()
        self._check_global = check_global
        self._last_tick = 0.0
        # the global table (district opt-outs, secret fingerprints): read whole at start,
        # then followed, so a district event any worker wrote binds this one too
        self._global = Consumer(conn.kafka_config({
            "group.id": f"{settings.group_id}-global",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "fetch.wait.max.ms": 50,
        }))
        self._producer = Producer(conn.kafka_config({
            "transactional.id": settings.transactional_id,
            "transaction.timeout.ms": settings.transaction_timeout_ms,
            "enable.idempotence": True,
            "linger.ms": 5,
            "compression.type": "lz4",
            "partitioner": "murmur2_random",
            "queue.buffering.max.messages": 500000,
        }))
        static = ({"group.instance.id": settings.group_instance_id}
                  if settings.group_instance_id else {})
        self._consumer = Consumer(conn.kafka_config({
            **static,
            "group.id": settings.group_id,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "partition.assignment.strategy": "range",
            "enable.partition.eof": True,
            # a fetch returns within 50 ms when there is nothing new, so a record arriving on
            # a quiet bus waits at most that long (librdkafka's default is 500 ms)
            "fetch.wait.max.ms": 50,
        }))

    def stop(self) -> None:
        self._running = False

    # -- restore -------------------------------------------------------------------------
    def _read_changelog(self, topic: str, partitions: Sequence[int],
                        apply: Callable[[int, bytes, bytes | None], None]) -> int:
        if not partitions:
            return 0
        reader = Consumer(self.conn.kafka_config({
            "group.id": f"{self.settings.group_id}-restore",
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }))
        count = 0
        try:
            for msg in read_to_end(reader, nonempty_from_start(reader, topic, partitions)):
                apply(msg.partition() or 0, msg.key() or b"", msg.value())
                count += 1
        finally:
            reader.close()
        return count

    def _restore(self, partitions: set[int]) -> None:
        started = time.monotonic()

        def apply_student(partition: int, key: bytes, value: bytes | None) -> None:
            self.tables.partition(partition).load(key, value)

        count = self._read_changelog(self.settings.state_topic, sorted(partitions), apply_student)
        self.stats.restored += count
        self.stats.restore_s += time.monotonic() - started
        log.info("restored %d table records for partitions %s in %.1fs", count,
                 sorted(partitions), time.monotonic() - started)

    def _restore_global(self) -> None:
        """Read the global table to its end (then keep following it, see ``_follow``)."""
        self._global.assign([TopicPartition(self.settings.district_topic, 0, OFFSET_BEGINNING)])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            msgs = self._global.consume(num_messages=10000, timeout=1.0)
            done = False
            for msg in msgs:
                err = msg.error()
                if err is None:
                    self.tables.load_global(msg.key() or b"", msg.value())
                    self.stats.restored += 1
                elif err.code() == KafkaError._PARTITION_EOF:
                    done = True
                else:
                    raise RuntimeError(f"reading {self.settings.district_topic}: {err}")
            if done:
                return
        raise RuntimeError(f"could not read {self.settings.district_topic} to its end in 120 s")

    def _follow(self) -> bool:
        """Apply what other workers wrote to the global table; True if anything changed."""
        changed = False
        for msg in self._global.consume(num_messages=1000, timeout=0):
            err = msg.error()
            if err is None:
                changed = self.tables.load_global(msg.key() or b"", msg.value()) or changed
            elif err.code() != KafkaError._PARTITION_EOF:
                raise RuntimeError(f"following {self.settings.district_topic}: {err}")
        return changed

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        fresh = numbers - self._assigned
        self._assigned |= numbers
        self._restore(fresh)
        self.handler.on_restored(self.tables)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        numbers = {tp.partition for tp in partitions}
        for number in numbers:
            self.tables.drop_partition(number)
        self.handler.on_revoked(sorted(numbers))
        self._assigned -= numbers

    # -- the loop ------------------------------------------------------------------------
    def run(self) -> LoopStats:
        self._producer.init_transactions(30)  # fences a previous instance, aborts its open txn
        self._restore_global()
        if self._check_global is not None:
            self._check_global(self.tables)
        self._consumer.subscribe(self.input_topics, on_assign=self._on_assign,
                                 on_revoke=self._on_revoke)
        idle_since = time.monotonic()
        eof: set[tuple[str, int]] = set()
        try:
            while self._running:
                msgs = self._consumer.consume(num_messages=self.settings.batch_size,
                                              timeout=self.settings.poll_timeout_s)
                batch: list[Message] = []
                for msg in msgs:
                    err = msg.error()
                    if err is None:
                        batch.append(msg)
                        eof.discard((msg.topic() or "", msg.partition() or 0))
                    elif err.code() == KafkaError._PARTITION_EOF:
                        eof.add((msg.topic() or "", msg.partition() or 0))
                    else:
                        raise RuntimeError(f"consuming: {err}")
                if batch:
                    self._process(batch)
                    idle_since = time.monotonic()
                followed = self._follow()
                if followed or time.monotonic() - self._last_tick >= self.settings.tick_interval_s:
                    self._tick()
                elif self.settings.until_idle and self._caught_up(eof) and (
                    time.monotonic() - idle_since >= self.settings.idle_s
                ):
                    break
        finally:
            self._consumer.close()
            self._global.close()
            self._producer.flush(10)
        return self.stats

    def _tick(self) -> None:
        """Timers and followed district events, in a transaction of their own (no input
        offsets: nothing was consumed)."""
        self._last_tick = time.monotonic()
        if not self._assigned:
            return
        outputs = self.handler.tick(self.tables)
        changes = self.tables.take_changes()
        if not outputs and not changes:
            return
        self._producer.begin_transaction()
        for out in outputs:
            self._produce(out.topic, out.key, out.value, out.headers, out.partition,
                          out.timestamp)
        for change in changes:
            self._produce(change.topic, change.key, change.value, None, change.partition)
        self._producer.commit_transaction(60)
        self.stats.ticks += 1
        self.stats.produced += len(outputs)

    def _caught_up(self, eof: set[tuple[str, int]]) -> bool:
        assignment = self._consumer.assignment()
        return bool(assignment) and all((tp.topic, tp.partition) in eof for tp in assignment)

    def _process(self, batch: list[Message]) -> None:
        producer = self._producer
        if not self.stats.first_batch_at:
            self.stats.first_batch_at = time.monotonic()
        started = time.monotonic()
        producer.begin_transaction()
        outputs: list[Output] = []
        for msg in batch:
            outputs.extend(self.handler.handle(msg, self.tables))
        outputs.extend(self.handler.on_batch_end(self.tables))
        handled = time.monotonic()
        for out in outputs:
            self._produce(out.topic, out.key, out.value, out.headers, out.partition,
                          out.timestamp)
        for change in self.tables.take_changes():
            self._produce(change.topic, change.key, change.value, None, change.partition)
        produced = time.monotonic()
        positions = self._consumer.position(self._consumer.assignment())
        producer.send_offsets_to_transaction(
            [tp for tp in positions if tp.offset >= 0],
            self._consumer.consumer_group_metadata(), 30,
        )
        producer.commit_transaction(60)
        committed = time.monotonic()
        self.stats.last_commit_unix = time.time()
        if self.observer is not None:
            self.observer.observe_batch((m.timestamp()[1] for m in batch), handled - started,
                                        produced - handled, committed - produced,
                                        self.stats.last_commit_unix)
        self.stats.consumed += len(batch)
        self.stats.produced += len(outputs)
        self.stats.transactions += 1
        self.stats.last_commit_at = committed
        for msg in batch:
            topic = msg.topic() or ""
            self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + 1
        if self._on_progress is not None:
            self._on_progress(self.stats)

    def _produce(self, topic: str, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, str | bytes | None]] | None,
                 partition: int | None, timestamp: int | None = None) -> None:
        if timestamp is not None:
            # the day by the wall clock (the processing clock's day in production): a test
            # clock months away would roll segments by timestamp and have the broker refuse
            # records more than log.message.timestamp.after.max.ms (1 h) ahead
            today = int(time.time() * 1000)
            timestamp = today - today % DAY_MS
        while True:
            try:
                # -1: the partitioner chooses; 0: the producer's clock (librdkafka's defaults)
                self._producer.produce(topic, key=key, value=value, headers=headers,
                                       partition=-1 if partition is None else partition,
                                       timestamp=timestamp or 0)
                return
            except BufferError:
                self._producer.poll(0.05)
