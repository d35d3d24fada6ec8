"""The state a connector keeps per source: what it delivered, and the last accepted entities.

One sqlite3 file per source (SIS connection), under the data dir, holding:

- ``delivered``: per student key, the content fingerprint of the last event the broker
  acknowledged, its operation, and the student's source record id, district and school. A
  bulk export repeats every student every time; the connector publishes a student only when
  its fingerprint differs, so a re-run publishes nothing and a re-run after a crash publishes
  only what was not acknowledged. A DELETE is fingerprinted too (a re-run of a delta does not
  withdraw the student again); after a DELETE only the key, the fingerprint and the source
  record id stay. The live rows (last operation UPSERT) are the students a receiver holds:
  a bulk that lacks one of them withdraws it.
- ``entities``: the last accepted row of every source entity (OneRoster orgs, users,
  enrollments, ...) as opaque text, with ``known_files``: which entity files have been seen. A
  delta carrying only changed files is joined with them.

The fingerprint is the SHA-256 of the canonical JSON of the event value without the envelope
fields that change on every export (:data:`VOLATILE_FIELDS`).

Deliveries are recorded in batches (every :attr:`SourceStateStore.flush_every` or on
:meth:`~SourceStateStore.flush`, :meth:`~SourceStateStore.close`); entity changes are one
transaction (:meth:`~SourceStateStore.commit_entities`). The file is consistent after a crash at
any point: a delivery acknowledged but not yet recorded is published again on the next run
(same content, so the processor sends partners nothing new).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
import threading
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import orjson

from streams.errors import HallpassError

#: Envelope fields left out of the fingerprint: they differ between two exports of the same data.
VOLATILE_FIELDS: frozenset[str] = frozenset({"event_id", "occurred_at"})

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS delivered (
        student_id   TEXT PRIMARY KEY,
        fingerprint  TEXT NOT NULL,
        delivered_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS entities (
        file        TEXT NOT NULL,
        sourced_id  TEXT NOT NULL,
        modified_ms INTEGER,
        content     TEXT NOT NULL,
        PRIMARY KEY (file, sourced_id)
    )""",
    """CREATE TABLE IF NOT EXISTS known_files (
        file       TEXT PRIMARY KEY,
        mode       TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
)
#: Columns added to ``delivered`` after its first version (older files are migrated).
_DELIVERED_EXTRA = {
    "operation": "TEXT",
    "sourced_id": "TEXT",
    "district_id": "TEXT",
    "school_id": "TEXT",
}


def _json_default(value: object) -> object:
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    raise TypeError(f"cannot fingerprint a value of type {type(value).__name__}")


def _canonical_bytes(value: Mapping[str, Any]) -> bytes:
    content = {k: v for k, v in value.items() if k not in VOLATILE_FIELDS}
    return orjson.dumps(
        content,
        default=_json_default,
        option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME,
    )


def canonical_json(value: Mapping[str, Any]) -> str:
    """Canonical JSON of an event value without :data:`VOLATILE_FIELDS` (sorted keys, compact,
    UTF-8, dates in ISO 8601)."""
    return _canonical_bytes(value).decode("utf-8")


def fingerprint(value: Mapping[str, Any]) -> str:
    """Hex SHA-256 of :func:`canonical_json` of an event value."""
    return hashlib.sha256(_canonical_bytes(value)).hexdigest()


@dataclass(frozen=True)
class Delivered:
    """What the broker last acknowledged for one student key."""

    student_id: str
    fingerprint: str
    operation: str
    sourced_id: str | None
    district_id: str | None
    school_id: str | None

    @property
    def live(self) -> bool:
        return self.operation != "DELETE"


@dataclass(frozen=True)
class StoredEntity:
    sourced_id: str
    modified_ms: int | None
    content: str


@dataclass
class EntityChanges:
    """Changes to the stored entities, committed together after a successful publish.

    ``replace``: file -> its complete new rows (a bulk file); ``upsert`` / ``delete``: rows
    of a delta file; ``seen``: file -> mode, for :meth:`SourceStateStore.known_files`.
    """

    replace: dict[str, list[StoredEntity]]
    upsert: dict[str, list[StoredEntity]]
    delete: dict[str, list[str]]
    seen: dict[str, str]

    @classmethod
    def empty(cls) -> EntityChanges:
        return cls({}, {}, {}, {})


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class SourceStateError(HallpassError):
    """The state store cannot be opened; the message names it."""


class SourceStateStore:
    """The state of one source in a sqlite3 file (see the module doc).

    Usage in a publisher (``functools.partial`` binds the values of this iteration)::

        with SourceStateStore(data_dir / "oneroster" / "maple-sis.sqlite3") as store:
            known = store.fingerprints()
            for event in events:
                fp = fingerprint(event.value)
                if known.get(event.key) == fp:
                    continue
                done = partial(store.mark_delivered, event.key, fp, event.operation, ...)
                publisher.publish(CHANGES, event.key, event.value, on_delivered=done)

    Safe to use from the thread that polls the producer (delivery callbacks) and the thread
    that produces: calls are serialised by a lock.
    """

    flush_every = 2000

    def __init__(self, path: Path) -> None:
        self._path = Path(path)
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, ...]] = []
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
            self._create()
        except (OSError, sqlite3.Error) as exc:
            raise SourceStateError(
                f"cannot open the state store {self._path}: {exc}; check "
                "the path and its permissions"
            ) from exc

    def _create(self) -> None:
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            for statement in _SCHEMA:
                self._conn.execute(statement)
            have = {row[1] for row in self._conn.execute("PRAGMA table_info(delivered)")}
            for column, kind in _DELIVERED_EXTRA.items():
                if column not in have:
                    self._conn.execute(f"ALTER TABLE delivered ADD COLUMN {column} {kind}")
            self._conn.execute(
                "CREATE INDEX IF NOT EXISTS delivered_sourced ON delivered (sourced_id)"
            )

    @property
    def path(self) -> Path:
        return self._path

    # ----------------------------------------------------------------- deliveries

    def get(self, student_id: str) -> str | None:
        """The fingerprint last delivered for ``student_id``, or None."""
        self.flush()
        with self._lock:
            row = self._conn.execute(
                "SELECT fingerprint FROM delivered WHERE student_id = ?", (student_id,)
            ).fetchone()
        return None if row is None else str(row[0])

    def changed(self, student_id: str, fingerprint: str) -> bool:
        """True unless ``fingerprint`` is exactly what was last delivered for ``student_id``."""
        return self.get(student_id) != fingerprint

    def fingerprints(self) -> dict[str, str]:
        """Every delivered fingerprint by student key (one query, for a whole run)."""
        self.flush()
        with self._lock:
            rows = self._conn.execute("SELECT student_id, fingerprint FROM delivered").fetchall()
        return {str(k): str(v) for k, v in rows}

    def delivered(self) -> list[Delivered]:
        """Every delivered student, live or deleted."""
        self.flush()
        with self._lock:
            rows = self._conn.execute(
                "SELECT student_id, fingerprint, operation, sourced_id, district_id, school_id "
                "FROM delivered"
            ).fetchall()
        return [
            Delivered(str(r[0]), str(r[1]), str(r[2] or "UPSERT"), r[3], r[4], r[5]) for r in rows
        ]

    def mark_delivered(
        self,
        student_id: str,
        fingerprint: str,
        operation: str = "UPSERT",
        sourced_id: str | None = None,
        district_id: str | None = None,
        school_id: str | None = None,
    ) -> None:
        """Record that the broker acknowledged an event with this content. Call only then.

        For a DELETE only the key, fingerprint and source record id are kept.
        """
        if operation == "DELETE":
            district_id = school_id = None
        with self._lock:
            self._pending.append(
                (student_id, fingerprint, _now(), operation, sourced_id, district_id, school_id)
            )
            full = len(self._pending) >= self.flush_every
        if full:
            self.flush()

    def flush(self) -> None:
        """Write the deliveries recorded so far (one transaction)."""
        with self._lock:
            if not self._pending:
                return
            batch, self._pending = self._pending, []
            self._conn.execute("BEGIN")
            try:
                self._conn.executemany(
                    "INSERT INTO delivered (student_id, fingerprint, delivered_at, operation, "
                    "sourced_id, district_id, school_id) VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT(student_id) DO UPDATE SET fingerprint = excluded.fingerprint, "
                    "delivered_at = excluded.delivered_at, operation = excluded.operation, "
                    "sourced_id = excluded.sourced_id, district_id = excluded.district_id, "
                    "school_id = excluded.school_id",
                    batch,
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def forget(self, student_id: str) -> None:
        """Drop what is known about ``student_id``: its next event is published whatever it is."""
        self.flush()
        with self._lock:
            self._conn.execute("DELETE FROM delivered WHERE student_id = ?", (student_id,))

    def __len__(self) -> int:
        self.flush()
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM delivered").fetchone()
        return int(count)

    # ----------------------------------------------------------------- entities

    def known_files(self) -> dict[str, str]:
        """Entity files seen so far, with the mode they were last read in."""
        with self._lock:
            rows = self._conn.execute("SELECT file, mode FROM known_files").fetchall()
        return {str(f): str(m) for f, m in rows}

    def entities(self, file: str, ids: Collection[str] | None = None) -> list[StoredEntity]:
        """The stored rows of one entity file (only those with the given sourcedIds)."""
        query = "SELECT sourced_id, modified_ms, content FROM entities WHERE file = ?"
        with self._lock:
            if ids is None:
                rows = self._conn.execute(query, (file,)).fetchall()
            else:
                rows = [
                    row
                    for sid in ids
                    for row in self._conn.execute(
                        query + " AND sourced_id = ?", (file, sid)
                    ).fetchall()
                ]
        return [StoredEntity(str(s), m, str(c)) for s, m, c in rows]

    def commit_entities(self, changes: EntityChanges) -> None:
        """Apply ``changes`` in one transaction."""
        with self._lock:
            self._conn.execute("BEGIN")
            try:
                for file, rows in changes.replace.items():
                    self._conn.execute("DELETE FROM entities WHERE file = ?", (file,))
                    self._insert(file, rows)
                for file, rows in changes.upsert.items():
                    self._insert(file, rows)
                for file, ids in changes.delete.items():
                    self._conn.executemany(
                        "DELETE FROM entities WHERE file = ? AND sourced_id = ?",
                        [(file, sid) for sid in ids],
                    )
                now = _now()
                self._conn.executemany(
                    "INSERT INTO known_files (file, mode, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT(file) DO UPDATE SET mode = excluded.mode, "
                    "updated_at = excluded.updated_at",
                    [(file, mode, now) for file, mode in changes.seen.items()],
                )
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise

    def _insert(self, file: str, rows: Iterable[StoredEntity]) -> None:
        self._conn.executemany(
            "INSERT INTO entities (file, sourced_id, modified_ms, content) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(file, sourced_id) DO UPDATE SET modified_ms = excluded.modified_ms, "
            "content = excluded.content",
            [(file, r.sourced_id, r.modified_ms, r.content) for r in rows],
        )

    # ----------------------------------------------------------------- lifecycle

    def close(self) -> None:
        self.flush()
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


#: The name the store had when it held only fingerprints.
FingerprintStore = SourceStateStore
