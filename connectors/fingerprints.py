"""Local state of what the SIS connector already delivered: one content fingerprint per student.

A bulk export repeats every student every time. The connector publishes a student only when
the fingerprint of its event content differs from the one last *delivered* (acknowledged by
the broker), so a second bulk load publishes only the students whose content changed, and a
re-run after a crash re-publishes only what was not acknowledged.

The fingerprint is the SHA-256 of the canonical JSON of the event value without the envelope
fields that change on every export (:data:`VOLATILE_FIELDS`).

The store is a sqlite3 file (path passed in, under the data dir). Each write is one committed
statement, so the file is consistent after a crash at any point.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, Self

#: Envelope fields left out of the fingerprint: they differ between two exports of the same data.
VOLATILE_FIELDS: frozenset[str] = frozenset({"event_id", "occurred_at"})

_SCHEMA = """
CREATE TABLE IF NOT EXISTS delivered (
    student_id   TEXT PRIMARY KEY,
    fingerprint  TEXT NOT NULL,
    delivered_at TEXT NOT NULL
)
"""


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"cannot fingerprint a value of type {type(value).__name__}")


def canonical_json(value: Mapping[str, Any]) -> str:
    """Canonical JSON of an event value without :data:`VOLATILE_FIELDS` (sorted keys, compact)."""
    content = {k: v for k, v in value.items() if k not in VOLATILE_FIELDS}
    return json.dumps(
        content, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_json_default
    )


def fingerprint(value: Mapping[str, Any]) -> str:
    """Hex SHA-256 of :func:`canonical_json` of an event value."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()


class FingerprintStore:
    """``student_id -> fingerprint`` of the last delivered event content, in a sqlite3 file.

    Usage in a publisher (``functools.partial`` binds the values of this iteration)::

        with FingerprintStore(data_dir / "oneroster-fingerprints.sqlite3") as store:
            for event in result.events:
                fp = fingerprint(event.value)
                if not store.changed(event.key, fp):
                    continue
                done = (
                    partial(store.forget, event.key)
                    if event.operation == "DELETE"
                    else partial(store.mark_delivered, event.key, fp)
                )
                publisher.publish(CHANGES, event.key, event.value, on_delivered=done)

    Safe to use from the thread that polls the producer (delivery callbacks) and the thread
    that produces: calls are serialised by a lock.
    """

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.execute(_SCHEMA)

    @property
    def path(self) -> Path:
        return self._path

    def get(self, student_id: str) -> str | None:
        """The fingerprint last delivered for ``student_id``, or None."""
        with self._lock:
            row = self._conn.execute(
                "SELECT fingerprint FROM delivered WHERE student_id = ?", (student_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def changed(self, student_id: str, fingerprint: str) -> bool:
        """True unless ``fingerprint`` is exactly what was last delivered for ``student_id``."""
        return self.get(student_id) != fingerprint

    def mark_delivered(self, student_id: str, fingerprint: str) -> None:
        """Record that the broker acknowledged an event with this content. Call only then."""
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
        with self._lock:
            self._conn.execute(
                "INSERT INTO delivered (student_id, fingerprint, delivered_at) VALUES (?, ?, ?) "
                "ON CONFLICT(student_id) DO UPDATE SET "
                "fingerprint = excluded.fingerprint, delivered_at = excluded.delivered_at",
                (student_id, fingerprint, now),
            )

    def forget(self, student_id: str) -> None:
        """Drop what is known about ``student_id`` (after its DELETE was delivered).

        Nothing derived from a deleted student's record stays behind; if the student comes
        back, its next event is published because nothing matches it.
        """
        with self._lock:
            self._conn.execute("DELETE FROM delivered WHERE student_id = ?", (student_id,))

    def __len__(self) -> int:
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM delivered").fetchone()
        return int(count)

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
