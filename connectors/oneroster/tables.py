"""The entity view events are built from: this package's rows joined with the stored state.

:func:`read_tables` reads every file the manifest marks bulk or delta, checks each row
(:mod:`connectors.oneroster.rows`), de-duplicates, and merges the rows with the last accepted
state of the source: a bulk file replaces the stored rows of its entity, a delta file adds,
changes and deletes rows, an absent file leaves them as they were. References are then checked
over the merged view: a dangling *required* reference (an enrollment's class, a class's
course) rejects the row and cascades; a dangling *optional* one (an org's parent, a user's
primary org, a guardian link) is dropped with a warning.

A package row that is rejected while the state holds an earlier version of it leaves that
version in place (the last accepted state stands). :func:`entity_changes` gives what to
store once the events are published.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import orjson

from connectors.oneroster.columns import (
    KNOWN_FILES,
    READ_ORDER,
    SPECS,
    UNPUBLISHED,
    ParseOptions,
    Value,
    Version,
    required_columns,
)
from connectors.oneroster.package import Manifest, Package
from connectors.oneroster.rows import ColumnError, RawRow, Record, iter_raw_rows, to_record
from connectors.source.rejects import WHOLE_ROW, Reject
from connectors.source.state import EntityChanges, StoredEntity

NOUNS: dict[str, str] = {
    "orgs": "org",
    "users": "user",
    "classes": "class",
    "courses": "course",
    "academicSessions": "academic session",
}

Progress = Callable[[str, int], None]


@dataclass
class Tables:
    """The package's rows, the merged entity view, and everything rejected or warned so far."""

    manifest: Manifest
    #: rows of this package that passed their column checks (tobedeleted ones included)
    package: dict[str, list[Record]] = field(default_factory=dict)
    #: the active rows events are built from, by file and sourcedId
    view: dict[str, dict[str, Record]] = field(default_factory=dict)
    #: the stored state before this package
    previous: dict[str, dict[str, Record]] = field(default_factory=dict)
    #: files whose content is known (in this package, or stored)
    known: set[str] = field(default_factory=set)
    #: files whose whole content is known (bulk in this package, or stored): a student
    #: without rows in one has none; in a partial (delta-only) file it has none *here*
    complete: set[str] = field(default_factory=set)
    rejects: list[Reject] = field(default_factory=list)
    warnings: list[Reject] = field(default_factory=list)
    rows_read: int = 0
    #: file -> sourcedId -> the reject of a row with that id (to explain references)
    rejected_ids: dict[str, dict[str, Reject]] = field(default_factory=dict)
    #: file -> every sourcedId in the package file, rejected rows included
    seen_ids: dict[str, set[str]] = field(default_factory=dict)
    #: (file, line) of rejects whose entity kept its stored version (they hold nothing back)
    superseded: set[tuple[str, int]] = field(default_factory=set)
    #: file -> sourcedIds tobedeleted by this package
    deleted: dict[str, set[str]] = field(default_factory=dict)
    #: (file, line) of rows with the wrong number of fields: their values may sit under the
    #: wrong columns, so they are a reject of that row only (they hold back no student)
    misaligned: set[tuple[str, int]] = field(default_factory=set)
    #: file -> stored rows dropped because a required reference went away (deleted with it)
    orphans: dict[str, set[str]] = field(default_factory=dict)

    def mode(self, key: str) -> str:
        return self.manifest.mode_of(key)

    def reject(self, reject: Reject, key: str) -> None:
        self.rejects.append(reject)
        sourced_id = reject.row.get("sourcedId", "").strip()
        if sourced_id:
            self.rejected_ids.setdefault(key, {}).setdefault(sourced_id, reject)

    def get(self, key: str, sourced_id: str | None) -> Record | None:
        if not sourced_id:
            return None
        return self.view.get(key, {}).get(sourced_id)


# --------------------------------------------------------------------------- stored rows


def _plain(value: object) -> object:
    if isinstance(value, dt.date):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def encode_record(record: Record) -> StoredEntity:
    """A record as stored text: its parsed values as JSON (dates ISO, lists as arrays)."""
    content = orjson.dumps(
        dict(record.values),
        default=_plain,
        option=orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_SORT_KEYS,
    )
    return StoredEntity(record.sourced_id, record.modified_ms, content.decode())


def decode_record(key: str, stored: StoredEntity) -> Record:
    spec = SPECS[key]
    content: dict[str, Any] = orjson.loads(stored.content)
    values: dict[str, Value] = {}
    for name, raw in content.items():
        column = spec.column(name)
        kind = column.kind if column is not None else "text"
        if kind == "date" and isinstance(raw, str):
            values[name] = dt.date.fromisoformat(raw)
        elif isinstance(raw, list):
            values[name] = tuple(str(v) for v in raw)
        else:
            values[name] = raw
    return Record(
        spec.csv_name,
        0,
        stored.sourced_id,
        "active",
        stored.modified_ms,
        values,
        {"sourcedId": stored.sourced_id},
    )


KEY_OF_FILE: dict[str, str] = {name: key for key, name in KNOWN_FILES.items()}


Loader = Callable[[str, Collection[str] | None], dict[str, Record]]


@dataclass(frozen=True)
class StoredState:
    """The last accepted entities of a source: which files are known, and a loader of the
    stored rows of one file (all of them, or those with the given sourcedIds)."""

    known: frozenset[str]
    load: Loader

    @classmethod
    def empty(cls) -> StoredState:
        return cls(frozenset(), lambda key, ids: {})


# --------------------------------------------------------------------------- reading


def read_tables(
    package: Package,
    manifest: Manifest,
    options: ParseOptions,
    stored: StoredState,
    is_extension: Callable[[str, str], bool],
    progress: Progress | None = None,
) -> Tables:
    tables = Tables(manifest)
    tables.warnings = []
    version: Version = manifest.version
    for key in READ_ORDER:
        mode = manifest.mode_of(key)
        # A bulk file replaces its stored rows: only those of rejected rows are needed.
        previous = stored.load(key, None) if mode != "bulk" and key in stored.known else {}
        tables.previous[key] = previous
        if key in stored.known:
            tables.known.add(key)
            tables.complete.add(key)
        if mode == "absent":
            tables.view[key] = dict(previous)
            continue
        tables.known.add(key)
        if mode == "bulk":
            tables.complete.add(key)
        spec = SPECS[key]
        required = list(required_columns(key, version))
        # A bulk file must have the columns of required values; a delta file only the
        # common ones (a tobedeleted row needs no more; an active row without a required
        # value is rejected on its own).
        header_required = (
            ["sourcedId", *required]
            if mode == "bulk"
            else ["sourcedId", "status", "dateLastModified"]
        )
        good: list[Record] = []
        seen = tables.seen_ids.setdefault(key, set())
        with package.open(spec.csv_name) as stream:
            rows = iter_raw_rows(
                spec, stream, header_required, tables.warnings, functools.partial(is_extension, key)
            )
            for item in rows:
                tables.rows_read += 1
                if progress is not None and tables.rows_read % 20000 == 0:
                    progress(spec.csv_name, tables.rows_read)
                sid = (item.row if isinstance(item, Reject) else item.fields).get("sourcedId")
                if sid and sid.strip():
                    seen.add(sid.strip())
                if isinstance(item, Reject):
                    if item.column == WHOLE_ROW:
                        tables.misaligned.add((item.file, item.line))
                    tables.reject(item, key)
                    continue
                try:
                    good.append(to_record(spec, item, mode, required, options, tables.warnings))
                except ColumnError as exc:
                    tables.reject(
                        Reject(item.file, item.line, exc.column, exc.reason, item.fields), key
                    )
        records = _drop_duplicates(tables, key, good)
        _warn_unpublished(tables, key, records)
        tables.package[key] = records
        if mode == "bulk":
            view = {r.sourced_id: r for r in records}
            rejected = tables.rejected_ids.get(key, {})
            if rejected and key in stored.known:
                previous.update(stored.load(key, list(rejected)))
            for sid in rejected:  # a rejected row keeps its stored self
                if sid in previous and sid not in view:
                    view[sid] = previous[sid]
                    reject = tables.rejected_ids[key][sid]
                    tables.superseded.add((reject.file, reject.line))
        else:
            view = dict(previous)
            for record in records:
                if record.deleted:
                    view.pop(record.sourced_id, None)
                    tables.deleted.setdefault(key, set()).add(record.sourced_id)
                else:
                    view[record.sourced_id] = record
            for sid, reject in tables.rejected_ids.get(key, {}).items():
                if sid in previous:
                    tables.superseded.add((reject.file, reject.line))
        tables.view[key] = view
    _check_references(tables)
    return tables


def _warn_unpublished(tables: Tables, key: str, records: list[Record]) -> None:
    """Name once each column that has values but reaches no event field."""
    name = SPECS[key].csv_name
    for column in sorted(UNPUBLISHED.get(key, ())):
        count = sum(1 for r in records if r.values.get(column))
        if count:
            tables.warnings.append(
                Reject(
                    name,
                    0,
                    column,
                    f"{count} row(s) have a value, but no event field carries it: not published",
                    {},
                )
            )
    if key == "users":
        several = sum(1 for r in records if len(r.ids("grades")) > 1)
        if several:
            tables.warnings.append(
                Reject(
                    name,
                    0,
                    "grades",
                    f"{several} user(s) list more than one grade: grade_level carries the first",
                    {},
                )
            )


def _drop_duplicates(tables: Tables, key: str, records: list[Record]) -> list[Record]:
    """Read a row repeated word for word once (warning); reject every copy of a sourcedId
    whose rows differ: no copy can be trusted."""
    seen: set[str] = set()
    repeated: set[str] = set()
    for record in records:
        (repeated if record.sourced_id in seen else seen).add(record.sourced_id)
    if not repeated:
        return records
    by_id: dict[str, list[Record]] = {}
    for record in records:
        if record.sourced_id in repeated:
            by_id.setdefault(record.sourced_id, []).append(record)
    kept: list[Record] = []
    for record in records:
        copies = by_id.get(record.sourced_id, [record])
        if len(copies) == 1:
            kept.append(record)
            continue
        first = copies[0]
        if all(dict(c.raw) == dict(first.raw) for c in copies):
            if record is first:
                kept.append(record)
            else:
                tables.warnings.append(
                    Reject(
                        record.file,
                        record.line,
                        "sourcedId",
                        f"repeats line {first.line} word for word: read once",
                        {},
                    )
                )
            continue
        others = ", ".join(str(c.line) for c in copies if c is not record)
        reason = f"duplicate sourcedId {record.sourced_id!r} (also on line {others})"
        tables.reject(Reject(record.file, record.line, "sourcedId", reason, record.raw), key)
    return kept


# --------------------------------------------------------------------------- references


def _referenced(record: Record, column: str) -> tuple[str, ...]:
    if column == "sourcedId":
        return (record.sourced_id,)
    value = record.values.get(column)
    if isinstance(value, str):
        return (value,)
    return value if isinstance(value, tuple) else ()


@functools.cache
def _references(key: str) -> list[tuple[str, str, bool]]:
    """(column, target file, required) of each reference a row of ``key`` makes."""
    refs = [(c.name, c.refers_to, c.required) for c in SPECS[key].columns if c.refers_to]
    if key == "demographics":
        refs.append(("sourcedId", "users", True))
    return [(c, t, r) for c, t, r in refs if t is not None]


def _check_references(tables: Tables) -> None:
    """Reject rows with a dangling required reference and drop dangling optional ones, to a
    fixpoint. References into a file whose content is unknown are not checked."""
    changed = True
    warned: set[tuple[str, str, str]] = set()
    while changed:
        changed = False
        for key in READ_ORDER:
            view = tables.view[key]
            for sid, record in list(view.items()):
                fixed = _check_record(tables, key, record, warned)
                if fixed is None:
                    view.pop(sid)
                    changed = True
                elif fixed is not record:
                    view[sid] = fixed


def _check_record(
    tables: Tables, key: str, record: Record, warned: set[tuple[str, str, str]]
) -> Record | None:
    """The record with dangling optional references dropped, or None when a required one
    dangles (the row is rejected, or for a stored row dropped with a warning)."""
    updates: dict[str, Value] = {}
    for column, target, required in _references(key):
        if target not in tables.known:
            continue
        refs = _referenced(record, column)
        missing = [r for r in refs if r not in tables.view[target]]
        if not missing:
            continue
        reason = _dangling_reason(tables, target, missing[0])
        if required:
            if record.stored:  # deleted with what it depends on; named unless that was asked
                tables.orphans.setdefault(key, set()).add(record.sourced_id)
                if not all(m in tables.deleted.get(target, set()) for m in missing):
                    tables.warnings.append(
                        Reject(
                            record.file,
                            0,
                            column,
                            f"stored row {record.sourced_id!r}: {reason}: deleted",
                            {},
                        )
                    )
            else:
                tables.reject(Reject(record.file, record.line, column, reason, record.raw), key)
            return None
        if not record.stored and (record.file, record.sourced_id, column) not in warned:
            warned.add((record.file, record.sourced_id, column))
            tables.warnings.append(
                Reject(
                    record.file,
                    record.line,
                    column,
                    f"{reason}: reference ignored (optional)",
                    record.raw,
                )
            )
        kept = tuple(r for r in refs if r not in missing)
        updates[column] = kept if isinstance(record.values.get(column), tuple) else None
    if not updates:
        return record
    return dataclasses.replace(record, values={**record.values, **updates})


def _dangling_reason(tables: Tables, target: str, ref: str) -> str:
    noun, csv_name = NOUNS.get(target, target), KNOWN_FILES[target]
    earlier = tables.rejected_ids.get(target, {}).get(ref)
    if earlier is not None and (earlier.file, earlier.line) not in tables.superseded:
        return f"{noun} {ref!r} was rejected ({earlier.file}:{earlier.line})"
    if ref in tables.deleted.get(target, set()):
        return f"{noun} {ref!r} is tobedeleted in {csv_name}"
    if tables.mode(target) == "delta" or (
        tables.mode(target) == "absent" and target in tables.known
    ):
        return f"unknown {noun} {ref!r} (not in {csv_name} nor in the stored state)"
    return f"unknown {noun} {ref!r} (not in {csv_name})"


# --------------------------------------------------------------------------- state to store


def entity_changes(tables: Tables) -> EntityChanges:
    """What the stored state becomes once this package is published.

    Rows that failed their checks change nothing (their entity keeps its stored version);
    a delta's tobedeleted rows delete theirs.
    """
    changes = EntityChanges.empty()
    for key in READ_ORDER:
        mode = tables.mode(key)
        orphans = sorted(tables.orphans.get(key, set()))
        if mode == "absent":
            if orphans:
                changes.delete[key] = orphans
            continue
        changes.seen[key] = mode
        view = tables.view[key]
        accepted = [
            r
            for r in tables.package.get(key, [])
            if not r.deleted and r.sourced_id in view and view[r.sourced_id].line == r.line
        ]
        if mode == "bulk":
            rows = [encode_record(r) for r in accepted]
            ids = {r.sourced_id for r in accepted}
            rows += [
                encode_record(r)
                for sid, r in tables.previous[key].items()
                if sid not in ids and sid in tables.rejected_ids.get(key, {})
            ]
            changes.replace[key] = rows
        else:
            changes.upsert[key] = [encode_record(r) for r in accepted]
            changes.delete[key] = sorted(tables.deleted.get(key, set()) | set(orphans))
    return changes


__all__ = [
    "WHOLE_ROW",
    "RawRow",
    "StoredState",
    "Tables",
    "decode_record",
    "encode_record",
    "entity_changes",
    "read_tables",
]
