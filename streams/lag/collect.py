"""Reading consumer-group offsets from the cluster with confluent-kafka's AdminClient.

One round asks for: the group listing (``list_consumer_groups``, which doubles as the probe
that the cluster answers), the members and assignments of the chosen groups
(``describe_consumer_groups``, one request), their committed offsets
(``list_consumer_group_offsets``, one request per group, all in flight at once) and the log
end offsets of every partition they consume (``list_offsets`` with ``OffsetSpec.latest()``,
read_uncommitted like ``kafka-consumer-groups --describe``). Record timestamps, when the
history cannot replace them, are read with a consumer that assigns the partitions at the
committed offsets and takes the first record of each.

librdkafka's own log lines go to a private logger: the last one is quoted in the error that
says the cluster cannot be reached, instead of a line a second on stderr.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import Future
from typing import Any

from confluent_kafka import (
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    TopicPartition,
)
from confluent_kafka import admin as kafka_admin
from confluent_kafka.admin import AdminClient

from streams.config import Connection
from streams.errors import HallpassError
from streams.lag.model import TP, GroupSelection
from streams.lag.tracker import GroupObservation, RecordAt, Snapshot

#: the consumer that reads record timestamps never subscribes or commits, so this group
#: never appears on the broker
READER_GROUP = "hallpass-lag-reader"


class BrokerUnavailable(HallpassError, RuntimeError):
    """The cluster did not answer the group listing."""


class _LastClientLog(logging.Handler):
    """Keeps librdkafka's last warning or error (delivered when a client is polled)."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.last: str | None = None
        # not registered with logging's manager: private to this reader, no propagation
        self.logger = logging.Logger("hallpass.lag.librdkafka", logging.DEBUG)
        self.logger.addHandler(self)

    def emit(self, record: logging.LogRecord) -> None:
        # "FAIL [rdkafka#producer-1] [thrd:...]: 127.0.0.1:1/bootstrap: Connect to ... failed"
        self.last = record.getMessage().rsplit("]: ", 1)[-1]


class KafkaOffsets:
    """An :class:`~streams.lag.tracker.OffsetSource` on a real cluster."""

    def __init__(
        self, conn: Connection, timeout_s: float = 10.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.conn = conn
        self.timeout_s = timeout_s
        self.clock = clock
        self._log = _LastClientLog()
        self.admin = AdminClient(self._config({}))
        self._consumer: Consumer | None = None

    def _config(self, extra: dict[str, str | int | float | bool]) -> dict[str, Any]:
        # its own log lines go to the private logger (warnings and errors are quoted)
        return {**self.conn.kafka_config({"log_level": 6, **extra}), "logger": self._log.logger}

    # -- the round ----------------------------------------------------------------------
    def snapshot(self, selection: GroupSelection) -> Snapshot:
        try:
            listing = self.admin.list_consumer_groups(request_timeout=self.timeout_s).result()
        except KafkaException as exc:
            raise BrokerUnavailable(self._unreachable(exc)) from exc
        if listing.errors and not listing.valid:
            raise BrokerUnavailable(self._unreachable(listing.errors[0]))
        groups = selection.select(g.group_id for g in listing.valid)
        if not groups:
            return Snapshot(at=self.clock(), groups=(), log_end={})
        described = self.admin.describe_consumer_groups(groups, request_timeout=self.timeout_s)
        offsets = {
            g: self.admin.list_consumer_group_offsets(
                [ConsumerGroupTopicPartitions(g)], request_timeout=self.timeout_s
            )[g]
            for g in groups
        }
        observed = tuple(observe_group(g, described[g], offsets[g]) for g in groups)
        tps = sorted({tp for o in observed for tp in (*o.committed, *o.owners)})
        log_end = self._log_ends(tps)
        at = self.clock()
        self.admin.poll(0)  # serve librdkafka's log queue, so it does not grow
        return Snapshot(at=at, groups=observed, log_end=log_end)

    def _log_ends(self, tps: Iterable[TP]) -> dict[TP, int]:
        # OffsetSpec is not re-exported in confluent_kafka.admin's types
        latest = kafka_admin.OffsetSpec.latest()  # type: ignore[attr-defined,no-untyped-call]
        request = {TopicPartition(t, p): latest for t, p in tps}
        if not request:
            return {}
        found: dict[TP, int] = {}
        for tp, future in self.admin.list_offsets(request, request_timeout=self.timeout_s).items():
            try:
                found[(tp.topic, tp.partition)] = int(future.result().offset)
            except KafkaException:
                continue  # deleted topic, no leader: the partition shows without a log end
        return found

    def _unreachable(self, error: object) -> str:
        self.admin.poll(0)  # deliver librdkafka's log lines to our handler
        detail = f" (last client error: {self._log.last})" if self._log.last else ""
        return f"cannot reach Kafka at {self.conn.bootstrap_servers}: {_reason(error)}{detail}"

    # -- record timestamps --------------------------------------------------------------
    def record_times(self, wanted: Collection[RecordAt]) -> dict[RecordAt, float]:
        """Kafka timestamps of the records at these offsets (or of the first record after
        each, when compacted or deleted), read in as few passes as there are different
        offsets wanted on one partition."""
        passes: list[dict[TP, int]] = []
        for tp, offset in sorted(wanted):
            for p in passes:
                if tp not in p:
                    p[tp] = offset
                    break
            else:
                passes.append({tp: offset})
        found: dict[RecordAt, float] = {}
        for p in passes:
            found.update(self._first_records(p))
        return found

    def _reader(self) -> Consumer:
        if self._consumer is None:
            self._consumer = Consumer(
                self._config(
                    {
                        "group.id": READER_GROUP,
                        "enable.auto.commit": False,
                        "enable.auto.offset.store": False,
                        "auto.offset.reset": "earliest",
                        "enable.partition.eof": True,
                        "isolation.level": "read_uncommitted",
                        # one record per partition is all we want: do not prefetch the backlog
                        "queued.min.messages": 1,
                        "max.partition.fetch.bytes": 65536,
                        # a pass ends once each partition gave a record: no long-poll fetches, no
                        # 1 s back-off once the (tiny) queue is full
                        "fetch.wait.max.ms": 10,
                        "fetch.queue.backoff.ms": 10,
                    }
                )
            )
        return self._consumer

    def _first_records(self, at: dict[TP, int]) -> dict[RecordAt, float]:
        consumer = self._reader()
        assignment = [TopicPartition(t, p, offset) for (t, p), offset in at.items()]
        consumer.assign(assignment)
        consumer.resume(assignment)  # a partition paused in an earlier pass stays paused
        pending = dict(at)
        found: dict[RecordAt, float] = {}
        deadline = time.monotonic() + self.timeout_s
        try:
            while pending and (left := deadline - time.monotonic()) > 0:
                msg = consumer.poll(min(left, 1.0))
                if msg is None:
                    continue
                tp = (msg.topic() or "", msg.partition() or 0)
                if tp not in pending or (msg.error() is None and (msg.offset() or 0) < pending[tp]):
                    continue  # a partition already done, or a record fetched for an earlier pass
                offset = pending.pop(tp)
                consumer.pause([TopicPartition(*tp)])
                if msg.error() is not None:
                    continue  # end of the partition (no record left) or unreadable
                kind, millis = msg.timestamp()
                if kind != TIMESTAMP_NOT_AVAILABLE and millis >= 0:
                    found[(tp, offset)] = millis / 1000.0
        finally:
            consumer.unassign()
        return found

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def _reason(error: object) -> str:
    if isinstance(error, KafkaException) and error.args:
        error = error.args[0]
    if isinstance(error, KafkaError):
        return str(error.str())
    return str(error)


def observe_group(group: str, described: Future[Any], offsets: Future[Any]) -> GroupObservation:
    """One group's description and committed offsets; what failed becomes its error."""
    errors: list[str] = []
    state, members, owners = "UNKNOWN", 0, {}
    try:
        description = described.result()
        state = description.state.name
        members = len(description.members)
        owners = {
            (tp.topic, tp.partition): m.member_id
            for m in description.members
            for tp in m.assignment.topic_partitions
        }
    except KafkaException as exc:
        errors.append(f"cannot describe the group: {_reason(exc)}")
    committed: dict[TP, int] = {}
    try:
        for tp in offsets.result().topic_partitions:
            if tp.error is None and tp.offset >= 0:
                committed[(tp.topic, tp.partition)] = int(tp.offset)
    except KafkaException as exc:
        errors.append(f"cannot read its committed offsets: {_reason(exc)}")
    if not errors and state == "DEAD" and not committed:
        errors.append("no such consumer group")
    return GroupObservation(
        group=group,
        state=state,
        members=members,
        owners=owners,
        committed=committed,
        error="; ".join(errors) or None,
    )
