"""A vendor's side of the bus: read a partner topic with ``read_committed`` through the
registry, keep a local copy keyed by the partner's student key, delete on tombstones, and
acknowledge each deletion notice once the deletion is committed (:func:`pull_partner`).

This is what a vendor runs (and what the tests and the demo use to see what a vendor sees).
Any Confluent-compatible client works the same way; see the README's vendor section.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.partner.acks import AckWriter
from streams.config import Connection
from streams.errors import HallpassError
from streams.kafka.names import Topics
from streams.kafka.read_to_end import TopicUnreadableError, read_to_end, topic_partitions
from streams.kafka.wire import WireDecoder, WireFormatError
from streams.policy.catalog import load_schema


@dataclass
class SyncReport:
    upserts: int = 0
    deletes: int = 0
    delete_reasons: dict[str, int] = field(default_factory=dict)
    #: deletion notices read, and acknowledged on partner.<id>.acks
    notices: int = 0
    acknowledged: int = 0
    #: records on the notices topic that are not deletion notices (not acknowledged)
    unreadable: int = 0


class VendorCopyError(HallpassError, RuntimeError):
    """The vendor's local copy cannot be opened; the message says what to do."""


class VendorCopy:
    """The vendor's local copy: a small SQLite table of partner key -> latest record."""

    def __init__(self, path: Path | str = ":memory:") -> None:
        try:
            if str(path) != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path))
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS students (key TEXT PRIMARY KEY, record TEXT NOT NULL)"
            )
        except (OSError, sqlite3.Error) as exc:
            raise VendorCopyError(
                f"cannot open the local copy {path} ({exc}): give a writable file with "
                "--copy FILE (or --data-dir DIR)"
            ) from exc

    def upsert(self, key: str, record: dict[str, Any]) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO students VALUES (?, ?)",
            (key, json.dumps(record, sort_keys=True, default=str)),
        )

    def delete(self, key: str) -> None:
        self._db.execute("DELETE FROM students WHERE key = ?", (key,))

    def commit(self) -> None:
        self._db.commit()

    def keys(self) -> set[str]:
        return {row[0] for row in self._db.execute("SELECT key FROM students")}

    def get(self, key: str) -> dict[str, Any] | None:
        row = self._db.execute("SELECT record FROM students WHERE key = ?", (key,)).fetchone()
        return None if row is None else dict(json.loads(row[0]))

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        for key, record in self._db.execute("SELECT key, record FROM students ORDER BY key"):
            yield key, json.loads(record)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM students").fetchone()[0])


def sync_partner_topic(
    conn: Connection, topic: str, copy: VendorCopy, group_id: str, timeout_s: float = 60.0
) -> SyncReport:
    """Read ``topic`` from the group's committed position to its end and apply it to ``copy``;
    commit the group's offsets after the copy is saved."""
    decoder = WireDecoder(SchemaRegistryClient(conn.registry_config()))
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )
    report = SyncReport()
    try:
        numbers = topic_partitions(consumer, topic)
        if numbers is None:
            raise TopicUnreadableError(
                f"{topic} does not exist: has `hallpass contracts apply` run for this partner?"
            )
        partitions = [TopicPartition(topic, p) for p in numbers]
        committed = consumer.committed(partitions, timeout=30)
        start = [
            TopicPartition(topic, tp.partition, tp.offset if tp.offset >= 0 else -2)
            for tp in committed
        ]
        for msg in read_to_end(consumer, start, timeout_s):
            key = (msg.key() or b"").decode()
            if msg.value() is None:
                copy.delete(key)
                report.deletes += 1
                reason = dict(msg.headers() or []).get("hallpass.deletion.reason", b"?")
                text = reason.decode() if isinstance(reason, bytes) else str(reason)
                report.delete_reasons[text] = report.delete_reasons.get(text, 0) + 1
            else:
                copy.upsert(key, decoder.decode(msg.value()))
                report.upserts += 1
        copy.commit()
        if report.upserts or report.deletes:
            consumer.commit(asynchronous=False)
    finally:
        consumer.close()
    return report


def pull_partner(
    conn: Connection,
    topics: Topics,
    partner: str,
    copy: VendorCopy,
    group_id: str,
    ack: bool = True,
    timeout_s: float = 60.0,
) -> SyncReport:
    """What a vendor does: sync the partner topic into ``copy`` and acknowledge each deletion
    notice once its deletion is committed.

    The notices are read first (to their end, not yet committed), then the partner topic:
    hallpass writes a notice and its tombstone (or reduced view) in one transaction, so
    every notice read has its deletion in the partner topic read after it. Once the copy is
    committed, each notice is acknowledged on ``partner.<id>.acks`` (the time of that commit
    as ``deleted_at``), and only then is the group's position on the notices committed. A
    crash in between acknowledges again on the next pull, which is harmless."""
    notices_topic = topics.notices(partner)
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )
    try:
        notices: list[dict[str, Any]] = []
        ends: dict[int, int] = {}
        unreadable = 0
        numbers = topic_partitions(consumer, notices_topic) if ack else None
        if numbers:
            decoder = WireDecoder(
                SchemaRegistryClient(conn.registry_config()),
                reader_schema=load_schema("deletion_notice"),
            )
            partitions = [TopicPartition(notices_topic, p) for p in numbers]
            start = [
                TopicPartition(notices_topic, tp.partition, tp.offset if tp.offset >= 0 else -2)
                for tp in consumer.committed(partitions, timeout=30)
            ]
            for msg in read_to_end(consumer, start, timeout_s):
                ends[msg.partition() or 0] = (msg.offset() or 0) + 1
                if msg.value() is None:
                    continue
                try:
                    notices.append(decoder.decode(msg.value()))
                except WireFormatError:
                    unreadable += 1  # not a notice: nothing to delete, nothing to acknowledge
        report = sync_partner_topic(conn, topics.partner(partner), copy, group_id, timeout_s)
        report.notices = len(notices)
        report.unreadable = unreadable
        if notices:
            deleted_at = int(time.time() * 1000)  # the copy holds the deletions from now on
            writer = AckWriter(conn, topics, partner)
            for notice in notices:
                writer.ack(notice, deleted_at, note="hallpass vendor pull")
            writer.flush()
            report.acknowledged = len(notices)
        if ends:
            consumer.commit(
                offsets=[TopicPartition(notices_topic, p, o) for p, o in sorted(ends.items())],
                asynchronous=False,
            )
    finally:
        consumer.close()
    return report
