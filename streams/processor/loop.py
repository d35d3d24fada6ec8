"""Kafka I/O of the processor: consume, transform, produce outputs, table changes and input
offsets in one transaction (exactly once); restore tables from their changelogs on assignment.

Why not faust's ``processing_guarantee="exactly_once"``: with faust-streaming 0.15.3 on Kafka
4.1 the app ran, but its output carried no transaction markers (records were not written
transactionally), and faust has open reports of duplicates under exactly-once
(faust-streaming/faust #517, #323, #177). This loop uses librdkafka's transactions with
KIP-447 offset commits (``send_offsets_to_transaction`` with the group metadata), which fence
a zombie worker by its group generation.

Faults: a registry or broker that does not answer is a wait (backoff, a log line every 30 s,
``LoopStats.blocked_s``), never bad input: the batch is rolled back (tables as committed,
inputs sought back to the committed positions) and tried again. A retriable transaction error
aborts and retries the batch; a fenced worker exits with one line; SIGTERM aborts an open
transaction and stops within ``STOP_BOUND_S``. An input partition whose recent records are
mostly invalid is paused, the others go on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from streams.config import Connection
from streams.errors import HallpassError
from streams.kafka.read_to_end import nonempty_from_start, read_to_end
from streams.kafka.wire import RegistryUnavailable
from streams.processor.dlq import TooManyInvalidError
from streams.processor.emitter import DAY_MS, Counters
from streams.processor.messages import Output
from streams.processor.state import DISTRICT_TOPIC, STATE_TOPIC, StateChange, Tables

log = logging.getLogger("hallpass.processor")

#: a stopped worker (SIGTERM) is gone within this many seconds: each blocking Kafka call of a
#: transaction waits at most ``CALL_TIMEOUT_S``, then the stop is seen and the open
#: transaction aborted (for at most ``STOP_ABORT_S``)
STOP_BOUND_S = 10.0
CALL_TIMEOUT_S = 4.0
STOP_ABORT_S = 3.0
#: waits for a service that does not answer: doubling from the first to the last, and a log
#: line at most this often
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
WAIT_LOG_EVERY_S = 30.0
_FENCING = frozenset(
    {
        KafkaError._FENCED,
        KafkaError.PRODUCER_FENCED,
        KafkaError.INVALID_PRODUCER_EPOCH,
        KafkaError.FENCED_INSTANCE_ID,
    }
)


class ProcessorFenced(HallpassError, RuntimeError):
    """Another worker took over this worker's transactional id or group membership."""


class TransactionFailed(HallpassError, RuntimeError):
    """The producer hit a fatal error: restart the worker."""


def kafka_error(exc: KafkaException) -> KafkaError:
    found = exc.args[0] if exc.args else None
    return found if isinstance(found, KafkaError) else KafkaError(KafkaError._FAIL, str(exc))


def fatal(error: KafkaError, transactional_id: str) -> HallpassError | None:
    """The exception to exit with for a fatal producer or consumer error; None otherwise."""
    if error.code() in _FENCING:
        return ProcessorFenced(
            f"this worker ({transactional_id}) was fenced: another worker with the same id or "
            f"group membership took over ({error.name()}); it exits, nothing it had not "
            "committed is kept (start it again if it should run)"
        )
    if error.fatal():
        return TransactionFailed(
            f"the Kafka producer of {transactional_id} failed for good "
            f"({error.name()}: {error.str()}): restart the worker"
        )
    return None


class TransactionalProducer(Protocol):
    """What :class:`Transactions` uses of a ``confluent_kafka.Producer``."""

    def begin_transaction(self) -> None: ...
    def send_offsets_to_transaction(
        self, positions: list[TopicPartition], group_metadata: Any, timeout: float
    ) -> None: ...
    def commit_transaction(self, timeout: float) -> None: ...
    def abort_transaction(self, timeout: float) -> None: ...


class Transactions:
    """The decisions around one Kafka transaction: a retriable error from sending the offsets
    or committing is tried again (bounded by ``stopping``), one that needs an abort aborts
    (and the caller retries the batch), a fencing or fatal error raises one line."""

    def __init__(
        self,
        producer: TransactionalProducer,
        transactional_id: str,
        stopping: Callable[[], bool],
        waited: Callable[[float], None] = lambda _s: None,
        call_timeout_s: float = CALL_TIMEOUT_S,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.producer = producer
        self.transactional_id = transactional_id
        self.stopping = stopping
        self.waited = waited
        self.call_timeout_s = call_timeout_s
        self.sleep = sleep

    def run(
        self, produce: Callable[[], None], offsets: list[TopicPartition], group_metadata: Any
    ) -> bool:
        """Begin, ``produce``, send ``offsets`` (none: a transaction without input), commit.
        True: committed; False: aborted (roll back and retry the batch)."""
        producer = self.producer
        try:
            producer.begin_transaction()
            produce()
            if offsets:
                self._retrying(
                    lambda: producer.send_offsets_to_transaction(
                        offsets, group_metadata, self.call_timeout_s
                    ),
                    "sending the offsets",
                )
            self._retrying(lambda: producer.commit_transaction(self.call_timeout_s), "committing")
            return True
        except KafkaException as exc:
            error = kafka_error(exc)
            failed = fatal(error, self.transactional_id)
            if failed is not None:
                raise failed from exc
            log.warning(
                "transaction aborted (%s: %s); the batch is tried again from the "
                "committed positions",
                error.name(),
                error.str(),
            )
            self.abort()
            return False

    def abort(self) -> None:
        """Abort the open transaction; retried while the broker does not answer (for at most
        ``STOP_ABORT_S`` once stopping)."""
        started = time.monotonic()
        delay = FIRST_BACKOFF_S
        while True:
            try:
                self.producer.abort_transaction(self.call_timeout_s)
                return
            except KafkaException as exc:
                error = kafka_error(exc)
                failed = fatal(error, self.transactional_id)
                if failed is not None:
                    raise failed from exc
                if error.code() == KafkaError._STATE:
                    return  # no transaction open (begin failed): nothing to abort
                if self.stopping() and time.monotonic() - started >= STOP_ABORT_S:
                    raise TransactionFailed(
                        f"could not abort the open transaction of {self.transactional_id} "
                        f"while stopping ({error.name()}): the broker aborts it after "
                        "transaction.timeout.ms, or the next start of this worker "
                        "does"
                    ) from exc
                log.warning("aborting the transaction: %s; trying again", error.str())
            self._pause(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    def _retrying(self, call: Callable[[], None], what: str) -> None:
        delay = FIRST_BACKOFF_S
        while True:
            try:
                call()
                return
            except KafkaException as exc:
                error = kafka_error(exc)
                if (
                    not error.retriable()
                    or error.txn_requires_abort()
                    or error.fatal()
                    or self.stopping()
                ):
                    raise
                log.warning("%s: %s; trying again", what, error.str())
            self._pause(delay)
            delay = min(delay * 2, MAX_BACKOFF_S)

    def _pause(self, seconds: float) -> None:
        if self.stopping():
            seconds = min(seconds, 0.2)
        self.sleep(seconds)
        self.waited(seconds)


class BatchObserver(Protocol):
    """Told about every committed batch (``streams.metrics.ProcessorTimings``)."""

    def observe_batch(
        self,
        timestamps_ms: Iterable[int],
        handle_s: float,
        produce_s: float,
        commit_s: float,
        committed_unix: float | None = None,
    ) -> None: ...


class Handler(Protocol):
    #: input partitions to pause, and why (their recent records were mostly invalid)
    halted: dict[tuple[str, int], str]
    #: what was decided, for progress lines and metrics (restored when a batch is undone)
    counters: Counters

    def prepare(self, batch: Sequence[Message]) -> None: ...

    def handle(self, msg: Message, tables: Tables) -> list[Output]: ...

    def resume(self, topic: str, partition: int) -> None: ...

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
    #: what the loop waited for (``schema_registry``, ``kafka``) -> seconds
    blocked_s: dict[str, float] = field(default_factory=dict)
    #: batches rolled back and tried again (an unanswered service, an aborted transaction)
    retried_batches: int = 0


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
        self._global = Consumer(
            conn.kafka_config(
                {
                    "group.id": f"{settings.group_id}-global",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                    "fetch.wait.max.ms": 50,
                }
            )
        )
        self._producer = Producer(
            conn.kafka_config(
                {
                    "transactional.id": settings.transactional_id,
                    "transaction.timeout.ms": settings.transaction_timeout_ms,
                    "enable.idempotence": True,
                    "linger.ms": 5,
                    "compression.type": "lz4",
                    "partitioner": "murmur2_random",
                    "queue.buffering.max.messages": 500000,
                }
            )
        )
        self._txn = Transactions(
            self._producer,
            settings.transactional_id,
            stopping=lambda: not self._running,
            waited=lambda s: self._add_blocked("kafka", s),
        )
        #: input partitions paused because most of their recent records were invalid
        self._paused: set[tuple[str, int]] = set()
        #: service -> (monotonic time it stopped answering, last log line), while waiting
        self._waiting: dict[str, tuple[float, float]] = {}
        self._backoff: dict[str, float] = {}
        static = (
            {"group.instance.id": settings.group_instance_id} if settings.group_instance_id else {}
        )
        self._consumer = Consumer(
            conn.kafka_config(
                {
                    **static,
                    "group.id": settings.group_id,
                    "enable.auto.commit": False,
                    "auto.offset.reset": "earliest",
                    "isolation.level": "read_committed",
                    "partition.assignment.strategy": "range",
                    "enable.partition.eof": True,
                    # a fetch returns within 50 ms when there is nothing new, so a record
                    # arriving on a quiet bus waits at most that long (librdkafka's default
                    # is 500 ms)
                    "fetch.wait.max.ms": 50,
                }
            )
        )

    def stop(self) -> None:
        self._running = False

    # -- restore -------------------------------------------------------------------------
    def _read_changelog(
        self,
        topic: str,
        partitions: Sequence[int],
        apply: Callable[[int, bytes, bytes | None], None],
    ) -> int:
        if not partitions:
            return 0
        reader = Consumer(
            self.conn.kafka_config(
                {
                    "group.id": f"{self.settings.group_id}-restore",
                    "enable.auto.commit": False,
                    "isolation.level": "read_committed",
                    "enable.partition.eof": True,
                }
            )
        )
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
        log.info(
            "restored %d table records for partitions %s in %.1fs",
            count,
            sorted(partitions),
            time.monotonic() - started,
        )

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
        for tp in partitions:
            self.handler.resume(tp.topic, tp.partition)
            self._paused.discard((tp.topic, tp.partition))
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
        self._consumer.subscribe(
            self.input_topics, on_assign=self._on_assign, on_revoke=self._on_revoke
        )
        idle_since = time.monotonic()
        eof: set[tuple[str, int]] = set()
        halts: list[str] = []
        try:
            while self._running:
                msgs = self._consumer.consume(
                    num_messages=self.settings.batch_size, timeout=self.settings.poll_timeout_s
                )
                batch: list[Message] = []
                for msg in msgs:
                    err = msg.error()
                    if err is None:
                        batch.append(msg)
                        eof.discard((msg.topic() or "", msg.partition() or 0))
                    elif err.code() == KafkaError._PARTITION_EOF:
                        eof.add((msg.topic() or "", msg.partition() or 0))
                    else:
                        self._consumer_error(err)
                if batch:
                    self._process(batch)
                    idle_since = time.monotonic()
                followed = self._follow()
                if followed or time.monotonic() - self._last_tick >= self.settings.tick_interval_s:
                    self._tick()
                elif (
                    self.settings.until_idle
                    and self._caught_up(eof)
                    and (time.monotonic() - idle_since >= self.settings.idle_s)
                ):
                    break
            halts = sorted(self.handler.halted.values())  # (closing revokes, and forgets)
        finally:
            self._close()
        if halts and self._running:
            raise TooManyInvalidError(" ".join(halts))
        return self.stats

    def _close(self) -> None:
        """Close the clients, bounded: an aborted or committed transaction leaves nothing
        to flush, and a static member leaves its group by its session timeout."""
        self._consumer.close()
        self._global.close()
        self._producer.flush(1 if not self._running else 10)

    def _consumer_error(self, err: KafkaError) -> None:
        """A consumer error: fatal ones (fencing of this static member) end the worker; the
        others (a broker down, a leader moving) are librdkafka's to retry: logged."""
        failed = fatal(err, self.settings.transactional_id)
        if failed is not None:
            raise failed
        now = time.monotonic()
        since, logged = self._waiting.get("kafka", (now, 0.0))
        if now - logged >= WAIT_LOG_EVERY_S:
            log.warning(
                "Kafka: %s (%s); the client retries, nothing is committed meanwhile",
                err.str(),
                err.name(),
            )
            self._waiting["kafka"] = (since, now)

    # -- waiting for a service -----------------------------------------------------------
    def _add_blocked(self, on: str, seconds: float) -> None:
        self.stats.blocked_s[on] = self.stats.blocked_s.get(on, 0.0) + seconds

    def _wait(self, on: str, why: str) -> None:
        """``on`` did not answer: log (at most every 30 s), wait with backoff, keep the
        group membership alive meanwhile (the assignment is paused)."""
        now = time.monotonic()
        since, logged = self._waiting.get(on, (now, 0.0))
        if not logged:
            log.warning(
                "waiting for the %s: %s. Nothing is decided, dead-lettered or "
                "committed until it answers.",
                on.replace("_", " "),
                why,
            )
            logged = now
        elif now - logged >= WAIT_LOG_EVERY_S:
            log.warning(
                "still waiting for the %s after %.0f s: %s", on.replace("_", " "), now - since, why
            )
            logged = now
        self._waiting[on] = (since, logged)
        delay = self._backoff.get(on, FIRST_BACKOFF_S)
        self._backoff[on] = min(delay * 2, MAX_BACKOFF_S)
        assignment = [
            tp for tp in self._consumer.assignment() if (tp.topic, tp.partition) not in self._paused
        ]
        self._consumer.pause(assignment)
        try:
            deadline = time.monotonic() + delay
            while self._running and time.monotonic() < deadline:
                self._consumer.consume(
                    num_messages=1, timeout=min(0.2, max(0.0, deadline - time.monotonic()))
                )
        finally:
            self._consumer.resume(
                [
                    tp
                    for tp in self._consumer.assignment()
                    if (tp.topic, tp.partition) not in self._paused
                ]
            )
        self._add_blocked(on, time.monotonic() - now)

    def _answered(self, on: str) -> None:
        found = self._waiting.pop(on, None)
        self._backoff.pop(on, None)
        if found is not None and found[1]:
            log.warning(
                "the %s answers again after %.0f s; going on",
                on.replace("_", " "),
                time.monotonic() - found[0],
            )

    def _roll_back(
        self, batch: Sequence[Message], halted_before: set[tuple[str, int]], counted: Counters
    ) -> None:
        """Undo a batch that is not committed: the tables as committed (and what the handler
        derives from them), halts it caused forgotten, its counts taken back, its inputs
        sought back to where it started (the committed positions), so the batch is decided
        (and counted) again, once."""
        self.tables.rollback()
        self.handler.counters.restore(counted)
        self.handler.on_restored(self.tables)
        for where in set(self.handler.halted) - halted_before:
            self.handler.resume(*where)
        starts: dict[tuple[str, int], int] = {}
        for msg in batch:
            where = (msg.topic() or "", msg.partition() or 0)
            starts[where] = min(starts.get(where, msg.offset() or 0), msg.offset() or 0)
        for (topic, partition), offset in sorted(starts.items()):
            try:
                self._consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as exc:  # revoked meanwhile: its new owner starts there
                log.info("not seeking %s[%d] back: %s", topic, partition, exc)
        self.stats.retried_batches += 1

    def _tick(self) -> None:
        """Timers and followed district events, in a transaction of their own (no input
        offsets: nothing was consumed)."""
        self._last_tick = time.monotonic()
        if not self._assigned:
            return
        counted = self.handler.counters.snapshot()
        outputs = self.handler.tick(self.tables)
        changes = self.tables.take_changes()
        if not outputs and not changes:
            self.tables.forget()
            return
        if not self._txn.run(lambda: self._produce_all(outputs, changes), [], None):
            self.tables.rollback()
            self.handler.counters.restore(counted)
            self.handler.on_restored(self.tables)  # the timers it popped come back
            self._last_tick = 0.0
            return
        self.tables.forget()
        self.stats.ticks += 1
        self.stats.produced += len(outputs)

    def _produce_all(self, outputs: Sequence[Output], changes: Sequence[StateChange]) -> None:
        for out in outputs:
            self._produce(out.topic, out.key, out.value, out.headers, out.partition, out.timestamp)
        for change in changes:
            self._produce(change.topic, change.key, change.value, None, change.partition)

    def _caught_up(self, eof: set[tuple[str, int]]) -> bool:
        assignment = self._consumer.assignment()
        return bool(assignment) and all(
            (tp.topic, tp.partition) in eof or (tp.topic, tp.partition) in self._paused
            for tp in assignment
        )

    def _decide(self, batch: list[Message]) -> tuple[list[Output], dict[tuple[str, int], int]]:
        """Hand each record to the handler (records of a halted partition are left for
        later) and return the outputs and, per input partition, the position to commit."""
        outputs: list[Output] = []
        handled_to: dict[tuple[str, int], int] = {}
        for msg in batch:
            if not self._running:
                raise _Stopping
            where = (msg.topic() or "", msg.partition() or 0)
            if where in self.handler.halted:
                continue
            outputs.extend(self.handler.handle(msg, self.tables))
            handled_to[where] = (msg.offset() or 0) + 1
        outputs.extend(self.handler.on_batch_end(self.tables))
        return outputs, handled_to

    def _pause_halted(self, handled_to: dict[tuple[str, int], int]) -> None:
        for where in sorted(set(self.handler.halted) - self._paused):
            topic, partition = where
            if where in handled_to:
                self._consumer.seek(TopicPartition(topic, partition, handled_to[where]))
            self._consumer.pause([TopicPartition(topic, partition)])
            self._paused.add(where)

    def _process(self, batch: list[Message]) -> None:
        if not self.stats.first_batch_at:
            self.stats.first_batch_at = time.monotonic()
        started = time.monotonic()
        halted_before = set(self.handler.halted)
        counted = self.handler.counters.snapshot()
        try:
            self.handler.prepare(batch)
            outputs, handled_to = self._decide(batch)
        except RegistryUnavailable as exc:
            self._roll_back(batch, halted_before, counted)
            self._wait("schema_registry", str(exc))
            return
        except _Stopping:
            self._roll_back(batch, halted_before, counted)
            return
        self._answered("schema_registry")
        handled = time.monotonic()
        changes = self.tables.take_changes()
        offsets = [
            TopicPartition(topic, partition, offset)
            for (topic, partition), offset in sorted(handled_to.items())
        ]
        produced = handled

        def produce() -> None:
            nonlocal produced
            self._produce_all(outputs, changes)
            produced = time.monotonic()

        if not self._txn.run(produce, offsets, self._consumer.consumer_group_metadata()):
            self._roll_back(batch, halted_before, counted)
            if self._running:
                self._wait("kafka", "the transaction was aborted")
            return
        self._answered("kafka")
        self.tables.forget()
        self._pause_halted(handled_to)
        committed = time.monotonic()
        self.stats.last_commit_unix = time.time()
        if self.observer is not None:
            self.observer.observe_batch(
                (m.timestamp()[1] for m in batch),
                handled - started,
                produced - handled,
                committed - produced,
                self.stats.last_commit_unix,
            )
        self.stats.consumed += len(batch)
        self.stats.produced += len(outputs)
        self.stats.transactions += 1
        self.stats.last_commit_at = committed
        for msg in batch:
            topic = msg.topic() or ""
            self.stats.by_topic[topic] = self.stats.by_topic.get(topic, 0) + 1
        if self._on_progress is not None:
            self._on_progress(self.stats)

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: list[tuple[str, str | bytes | None]] | None,
        partition: int | None,
        timestamp: int | None = None,
    ) -> None:
        if timestamp is not None:
            # the day by the wall clock (the processing clock's day in production): a test
            # clock months away would roll segments by timestamp and have the broker refuse
            # records more than log.message.timestamp.after.max.ms (1 h) ahead
            today = int(time.time() * 1000)
            timestamp = today - today % DAY_MS
        while True:
            try:
                # -1: the partitioner chooses; 0: the producer's clock (librdkafka's defaults)
                self._producer.produce(
                    topic,
                    key=key,
                    value=value,
                    headers=headers,
                    partition=-1 if partition is None else partition,
                    timestamp=timestamp or 0,
                )
                return
            except BufferError:
                self._producer.poll(0.05)


class _Stopping(Exception):
    """The worker was told to stop in the middle of a batch: it is rolled back."""
