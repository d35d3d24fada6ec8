"""A per-student index of the audit ledger, kept beside the auditor and brought up to date
incrementally, so that a parent's report answers in well under a second over years of
decisions instead of scanning the whole ledger on each call.

The index is a SQLite file: every DISCLOSED and RETRACTED decision keyed by its decision id
(inserting one twice changes nothing, so at-least-once reading suffices) and indexed by
student, plus the next ledger offset of each partition, written in the same SQLite
transaction as the decisions read up to it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import Connection
from streams.errors import HallpassError
from streams.kafka.read_to_end import read_to_end, topic_partitions
from streams.kafka.wire import WireDecoder
from streams.policy.catalog import load_schema

_SCHEMA = """
CREATE TABLE IF NOT EXISTS positions (partition INTEGER PRIMARY KEY, next INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS decisions (
    decision_id TEXT PRIMARY KEY, student_id TEXT NOT NULL, decided_at INTEGER NOT NULL,
    record TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_by_student ON decisions (student_id, decided_at);
"""
_KEPT = ("DISCLOSED", "RETRACTED")


class LedgerIndexError(HallpassError, RuntimeError):
    """The index file cannot be opened or written; the message says what to do."""


class LedgerIndex:
    def __init__(self, path: Path | str) -> None:
        try:
            if str(path) != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(path))
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerIndexError(
                f"cannot open the ledger index {path} ({exc}): give a writable --data-dir"
            ) from exc

    def positions(self) -> dict[int, int]:
        return dict(self._db.execute("SELECT partition, next FROM positions").fetchall())

    def add(
        self, records: Iterable[Mapping[str, Any]], positions: Mapping[int, int] | None = None
    ) -> int:
        """Insert decisions (the ones a report shows) and move the stored positions, in one
        transaction; returns how many new decisions were stored."""
        before = self._db.total_changes
        with self._db:
            self._db.executemany(
                "INSERT OR IGNORE INTO decisions VALUES (?, ?, ?, ?)",
                (
                    (r["decision_id"], r["student_id"], r["decided_at"], json.dumps(r))
                    for r in records
                    if r["decision"] in _KEPT
                ),
            )
            added = self._db.total_changes - before
            self._db.executemany(
                "INSERT INTO positions VALUES (?, ?) ON CONFLICT(partition) "
                "DO UPDATE SET next = excluded.next",
                (positions or {}).items(),
            )
        return added

    def report(self, student_id: str) -> list[dict[str, Any]]:
        """The student's DISCLOSED and RETRACTED decisions, oldest first."""
        rows = self._db.execute(
            "SELECT record FROM decisions WHERE student_id = ? ORDER BY decided_at, decision_id",
            (student_id,),
        ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def close(self) -> None:
        self._db.close()


def update_index(
    index: LedgerIndex, conn: Connection, topic: str, batch: int = 5000, timeout_s: float = 120.0
) -> int:
    """Read the ledger from the stored positions to its end into ``index``; returns the
    number of decisions added."""
    decoder = WireDecoder(
        SchemaRegistryClient(conn.registry_config()), reader_schema=load_schema("disclosure_record")
    )
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": "hallpass-disclosures-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )
    added = 0
    try:
        partitions = topic_partitions(consumer, topic)
        if partitions is None:
            return 0
        stored = index.positions()
        assignment = []
        for p in partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)
            start = max(stored.get(p, low), low)
            if start < high:
                assignment.append(TopicPartition(topic, p, start))
        pending: list[dict[str, Any]] = []
        moved: dict[int, int] = {}
        for msg in read_to_end(consumer, assignment, timeout_s):
            pending.append(decoder.decode(msg.value()))
            moved[msg.partition() or 0] = (msg.offset() or 0) + 1
            if len(pending) >= batch:
                added += index.add(pending, moved)
                pending, moved = [], {}
        added += index.add(pending, moved)
    finally:
        consumer.close()
    return added
