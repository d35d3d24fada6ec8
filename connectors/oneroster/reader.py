"""Read a OneRoster package into the events to publish: :func:`read_package`.

1. open the package and its manifest (:mod:`~connectors.oneroster.package`): version 1.0,
   1.1 or 1.2, from the manifest or detected from the headers;
2. read every file's rows and merge them with the stored state of the source
   (:mod:`~connectors.oneroster.tables`);
3. join each student of the view into one event (:mod:`~connectors.oneroster.join`): UPSERTs
   for active students, DELETEs for ``tobedeleted`` ones (found through the stored state when
   the row carries only what the spec requires), and, when ``users.csv`` is a bulk, DELETEs
   for students delivered before and missing now (the *withdrawals*, which the publisher
   guards);
4. validate each event against the schema with fastavro.

Rejects and warnings go to ``<package>.rejects.csv`` and ``<package>.warnings.csv``.
"""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final

from fastavro.validation import ValidationError, validate

from connectors.oneroster.columns import KNOWN_FILES, READ_ORDER, ParseOptions
from connectors.oneroster.join import (
    EXTENSION_ENTITIES,
    HELD_BACK,
    Draft,
    Index,
    KeyProblem,
    Operation,
    build_upsert,
    envelope,
    held_back_by,
    is_student,
    org_key,
    place_of,
    student_key,
    students_of,
)
from connectors.oneroster.package import Mode, OneRosterPackageError, Package, read_manifest
from connectors.oneroster.rows import Record
from connectors.oneroster.tables import (
    KEY_OF_FILE,
    StoredState,
    Tables,
    decode_record,
    entity_changes,
    read_tables,
)
from connectors.source.config import SourceConfig
from connectors.source.rejects import (
    WHOLE_ROW,
    Reject,
    rejects_path_for,
    warnings_path_for,
    write_rejects,
)
from connectors.source.state import Delivered, EntityChanges, SourceStateStore, fingerprint
from streams.kafka.avro_writer import SchemaEncoder
from streams.policy.catalog import load_schema

_EVENT_ID_NAMESPACE: Final[uuid.UUID] = uuid.UUID("6f1c2a52-3d0e-4b8e-9a57-0c6e3f1b9d41")

ProgressFn = Callable[[str], None]


@dataclass(frozen=True)
class StudentEvent:
    """One event to publish: ``key`` is the student key, ``value`` the Avro record dict."""

    key: str
    value: dict[str, Any]
    #: :func:`~connectors.source.state.fingerprint` of ``value`` (computed once)
    fingerprint: str = ""

    @property
    def operation(self) -> Operation:
        op: Operation = "DELETE" if self.value.get("operation") == "DELETE" else "UPSERT"
        return op


@dataclass(frozen=True)
class PackageReadResult:
    """What a package yielded: events to publish, rejected rows, warnings, and counts."""

    events: list[StudentEvent]
    rejects: list[Reject]
    rows_read: int
    mode: Mode
    source_system: str
    rejects_path: Path | None = None
    warnings: list[Reject] = field(default_factory=list)
    warnings_path: Path | None = None
    version: str = "1.2"
    #: DELETEs of students delivered before and missing from this bulk (guarded)
    withdrawals: list[StudentEvent] = field(default_factory=list)
    #: students a receiver holds from this source before this package (live deliveries)
    live_before: int = 0
    #: tobedeleted students already withdrawn by an earlier run (nothing to send)
    already_deleted: int = 0
    #: what the stored entities become once the events are published
    changes: EntityChanges = field(default_factory=EntityChanges.empty)
    #: source record id of each event key (for the delivered table)
    sourced_ids: Mapping[str, str] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return len(self.rejects)


# --------------------------------------------------------------------------- state


def load_state(store: SourceStateStore | None) -> StoredState:
    """The stored entities of a source, loaded file by file as the read needs them."""
    if store is None:
        return StoredState.empty()

    def load(key: str, ids: Collection[str] | None) -> dict[str, Record]:
        rows = store.entities(key, ids)
        return {e.sourced_id: decode_record(key, e) for e in rows}

    return StoredState(frozenset(store.known_files()), load)


# --------------------------------------------------------------------------- drafts


@dataclass
class _Drafts:
    drafts: list[Draft] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    #: the district the org tree does not give and nothing configures
    no_district: list[Draft] = field(default_factory=list)
    already_deleted: int = 0


def _reject_at(row: Record, column: str, reason: str) -> Reject:
    if row.stored:
        return Reject(row.file, 0, column, f"stored user {row.sourced_id!r}: {reason}", {})
    return Reject(row.file, row.line, column, reason, row.raw)


def _upserts(
    index: Index,
    config: SourceConfig,
    system: str,
    fallback_ms: int,
    out: _Drafts,
    warnings: list[Reject],
) -> None:
    for student in students_of(index):
        key = student_key(student, config.student_key, config.source_id)
        if isinstance(key, KeyProblem):
            out.rejects.append(_reject_at(student, key.column, key.reason))
            continue
        held = held_back_by(index, student)
        if held is not None:
            reason = f"{HELD_BACK} ({held.file}:{held.line})"
            out.rejects.append(_reject_at(student, WHOLE_ROW, reason))
            continue
        draft = build_upsert(index, student, key, config, system, fallback_ms, warnings)
        if draft.value["district_id"] is None:
            out.no_district.append(draft)
            continue
        out.drafts.append(draft)


def _deletes(
    index: Index,
    config: SourceConfig,
    system: str,
    delivered: Mapping[str, Delivered],
    out: _Drafts,
    warnings: list[Reject],
) -> None:
    """DELETEs for tobedeleted students: the key and place of what was delivered, else of the
    stored row, else of the row itself."""
    tables = index.tables
    for user in tables.package.get("users", []):
        if not user.deleted:
            continue
        known = delivered.get(user.sourced_id)
        if known is not None and not known.live:
            out.already_deleted += 1
            continue
        previous = tables.previous["users"].get(user.sourced_id)
        student = is_student(index, user)
        if known is None and student is False:
            continue  # staff, a guardian
        occurred = user.modified_ms or 0  # a delta row always has dateLastModified
        if known is not None:
            value = envelope(
                known.student_id,
                config.student_key.kind,
                system,
                known.district_id or config.district_id,
                known.school_id,
                "DELETE",
                occurred,
            )
            out.drafts.append(Draft(user, value, {"users": user}))
            continue
        row = previous or user
        key = student_key(row, config.student_key, config.source_id)
        if isinstance(key, KeyProblem):
            if student:
                out.rejects.append(_reject_at(user, key.column, key.reason))
            else:
                warnings.append(
                    Reject(
                        user.file,
                        user.line,
                        WHOLE_ROW,
                        f"tobedeleted user "
                        f"{user.sourced_id!r} is not a known student (not in the "
                        "stored state, never published): nothing to withdraw",
                        user.raw,
                    )
                )
            continue
        place = place_of(index, row)
        district = org_key(place.district) if place.district else config.district_id
        value = envelope(
            key,
            config.student_key.kind,
            system,
            district,
            org_key(place.school) if place.school else None,
            "DELETE",
            occurred,
        )
        draft = Draft(user, value, {"users": user}, place.district is not None)
        if district is None:
            out.no_district.append(draft)
        else:
            out.drafts.append(draft)


def _drop_shared_keys(drafts: list[Draft], rejects: list[Reject]) -> list[Draft]:
    """Reject every student whose key another student row also has: the key is ambiguous."""
    rows: dict[str, list[Record]] = {}
    for draft in drafts:
        rows.setdefault(draft.value["student_id"], []).append(draft.student)
    kept: list[Draft] = []
    for draft in drafts:
        others = [r for r in rows[draft.value["student_id"]] if r is not draft.student]
        if not others:
            kept.append(draft)
            continue
        where = ", ".join(str(r.line) if r.line else f"stored {r.sourced_id}" for r in others)
        reason = f"the student key is also the key of users.csv line {where}"
        rejects.append(_reject_at(draft.student, WHOLE_ROW, reason))
    return kept


def _no_district(tables: Tables, out: _Drafts) -> None:
    """One message when neither the org tree nor the configuration names any district; a
    reject per student when only some students' orgs lead to none."""
    if not out.no_district:
        return
    districts = [o for o in tables.view["orgs"].values() if o.text("type") == "district"]
    if not districts:
        raise OneRosterPackageError(
            f"{len(out.no_district)} student(s) have no district: orgs.csv has no org of type "
            "district above their schools and no district_id is configured; set district_id "
            "in the source configuration (--source) or pass --district"
        )
    for draft in out.no_district:
        out.rejects.append(
            _reject_at(
                draft.student,
                "primaryOrgSourcedId",
                "cannot tell the student's district: its orgs lead to no org of type district "
                "(parentSourcedId in orgs.csv) and no district_id is configured",
            )
        )


def _key_changes(
    drafts: list[Draft],
    delivered: Iterable[Delivered],
    system: str,
    kind: str,
    fallback_ms: int,
    warnings: list[Reject],
) -> list[Draft]:
    """DELETEs of the old key of students whose key changed since it was delivered."""
    live = {d.sourced_id: d for d in delivered if d.live and d.sourced_id}
    found: list[Draft] = []
    for draft in drafts:
        if draft.value["operation"] != "UPSERT":
            continue
        old = live.get(draft.student.sourced_id)
        if old is None or old.student_id == draft.value["student_id"]:
            continue
        value = envelope(
            old.student_id,
            kind,
            system,
            old.district_id or "",
            old.school_id,
            "DELETE",
            draft.value["occurred_at"] or fallback_ms,
        )
        value["_sourced_id"] = None
        found.append(Draft(draft.student, value, {"users": draft.student}))
        row = draft.student
        warnings.append(
            Reject(
                row.file,
                row.line,
                WHOLE_ROW,
                "the student key changed since it was published: the old key gets a DELETE",
                {},
            )
        )
    return found


def _withdrawals(
    tables: Tables, delivered: Iterable[Delivered], system: str, kind: str, fallback_ms: int
) -> list[Draft]:
    """DELETEs of students delivered before whose users.csv row this bulk lacks."""
    present = tables.seen_ids.get("users", set())
    found: list[Draft] = []
    dummy = Record("users.csv", 0, "", "active", None, {}, {})
    for known in delivered:
        if not known.live or not known.sourced_id or known.sourced_id in present:
            continue
        value = envelope(
            known.student_id,
            kind,
            system,
            known.district_id or "",
            known.school_id,
            "DELETE",
            fallback_ms,
        )
        found.append(Draft(replace(dummy, sourced_id=known.sourced_id), value, {}))
    return found


# --------------------------------------------------------------------------- validation


def _finish(value: dict[str, Any]) -> str:
    """Set a deterministic event_id (the same content at the same time gets the same id);
    return the content fingerprint (event_id and occurred_at are not part of it)."""
    content = fingerprint(value)
    name = f"{value['source_system']}|{value['student_id']}|{value['occurred_at']}|"
    value["event_id"] = str(uuid.uuid5(_EVENT_ID_NAMESPACE, name + content))
    return content


#: Event field -> (file key, column) it comes from, to place schema errors on a CSV column.
FIELD_SOURCES: Final[Mapping[str, tuple[str, str]]] = {
    "student_id": ("users", "identifier"),
    "names.first_name": ("users", "givenName"),
    "names.middle_name": ("users", "middleName"),
    "names.last_name": ("users", "familyName"),
    "names.preferred_first_name": ("users", "preferredGivenName"),
    "names.preferred_middle_name": ("users", "preferredMiddleName"),
    "names.preferred_last_name": ("users", "preferredFamilyName"),
    "identity.username": ("users", "username"),
    "identity.sis_user_id": ("users", "userMasterIdentifier"),
    "enrollment.grade_level": ("users", "grades"),
    "contact.email": ("users", "email"),
    "contact.phone": ("users", "phone"),
    "demographics.birth_date": ("demographics", "birthDate"),
    "demographics.sex": ("demographics", "sex"),
    "demographics.country_of_birth": ("demographics", "countryOfBirthCode"),
    "demographics.state_of_birth": ("demographics", "stateOfBirthAbbreviation"),
    "demographics.city_of_birth": ("demographics", "cityOfBirth"),
}


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, tuple[str | int, ...]]]:
    """Every non-null leaf of an event value: (field path as in the catalog, keys to reach it)."""
    if isinstance(value, dict):
        for name, inner in value.items():
            child = f"{path}.{name}" if path else name
            if isinstance(inner, dict) or (
                isinstance(inner, list) and any(isinstance(i, dict) for i in inner)
            ):
                for leaf_path, keys in _leaves(inner, child):
                    yield leaf_path, (name, *keys)
            elif inner is not None:
                yield child, (name,)
    elif isinstance(value, list):
        for position, item in enumerate(value):
            for leaf_path, keys in _leaves(item, f"{path}[]"):
                yield leaf_path, (position, *keys)


def _is_valid(value: dict[str, Any], parsed: Any) -> bool:
    try:
        return bool(validate(value, parsed, raise_errors=False))
    except (ValueError, TypeError):
        return False


def _schema_reject(draft: Draft, parsed: Any) -> Reject:
    """Place a schema error on the CSV row and column the refused value came from (the leaf
    that, set to null, makes the value valid). The value itself is not quoted."""
    found: str | None = None
    for path, keys in _leaves(draft.value):
        probe = copy.deepcopy(draft.value)
        holder: Any = probe
        for key in keys[:-1]:
            holder = holder[key]
        holder[keys[-1]] = None
        if _is_valid(probe, parsed):
            found = path
            break
    if found is None:
        try:
            validate(draft.value, parsed, raise_errors=True)
        except (ValidationError, ValueError, TypeError) as exc:
            detail = str(exc).splitlines()[0][:200]
        else:
            detail = "the value"
        reason = f"the event schema refuses the event ({detail})"
        return _reject_at(draft.student, WHOLE_ROW, reason)
    file_key, column = FIELD_SOURCES.get(found, ("users", WHOLE_ROW))
    row = draft.sources.get(file_key) or draft.student
    if row is draft.student and file_key != "users":
        column = WHOLE_ROW
    return _reject_at(row, column, f"the event schema refuses the value of {found}")


def _validated(
    drafts: Iterable[Draft],
    encoder: SchemaEncoder,
    rejects: list[Reject],
    sourced_ids: dict[str, str],
) -> list[StudentEvent]:
    """Valid drafts as events (the rest rejected); records each event's source record id.
    ``encoder.valid`` is fastavro's validation, about ten times faster on a valid event."""
    events: list[StudentEvent] = []
    for draft in drafts:
        sourced = draft.value.pop("_sourced_id", draft.student.sourced_id)
        if not encoder.valid(draft.value):
            rejects.append(_schema_reject(draft, encoder.parsed))
            continue
        value = draft.value
        content = _finish(value)
        if sourced:
            sourced_ids[value["student_id"]] = sourced
        events.append(StudentEvent(key=value["student_id"], value=value, fingerprint=content))
    return events


def _order(item: Reject) -> tuple[int, int, str]:
    """Listed by file (in reading order), line and column; package-wide notes first."""
    files = ["manifest.csv", *(KNOWN_FILES[key] for key in READ_ORDER)]
    position = files.index(item.file) if item.file in files else len(files)
    return position, item.line, item.column


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def _write(path: Path, items: list[Reject], what: str) -> None:
    try:
        write_rejects(path, items)
    except OSError as exc:
        raise OneRosterPackageError(
            f"cannot write the {what} file {path}: {exc}; make its directory writable"
        ) from exc


def read_package(
    path: Path | str,
    *,
    config: SourceConfig | None = None,
    store: SourceStateStore | None = None,
    schema: Mapping[str, Any] | None = None,
    source_system: str | None = None,
    default_district_id: str | None = None,
    fallback_time_ms: int | None = None,
    write_rejects_file: bool = True,
    progress: ProgressFn | None = None,
) -> PackageReadResult:
    """Read a OneRoster 1.0, 1.1 or 1.2 CSV package (directory or zip) into events.

    - ``config``: the source configuration (key rule, district, dates, extensions); default:
      key ``userIds {stateID:...}``, no district, ISO dates in UTC;
    - ``store``: the source's state store: stored entities are joined with the package, and
      what was delivered finds the students of minimal deletes and the withdrawals of a bulk
      (nothing is written to it here: commit ``result.changes`` after publishing);
    - ``source_system``: overrides the configured or manifest ``source.systemName``;
    - ``default_district_id``: overrides the configured district;
    - ``fallback_time_ms``: occurred_at when no joined row has a dateLastModified (default now);
    - ``write_rejects_file``: write ``<package>.rejects.csv`` and ``<package>.warnings.csv``
      beside the package (always, so a clean re-export leaves no stale ones).

    Raises :class:`OneRosterPackageError` when the package cannot be read at all.
    """
    config = config or SourceConfig()
    if default_district_id:
        config = replace(config, district_id=default_district_id)
    options = ParseOptions(config.date_formats, config.time_zone)
    package_path = Path(path)
    warnings: list[Reject] = []
    package = Package(package_path)

    def is_extension(key: str, column: str) -> bool:
        return key in EXTENSION_ENTITIES and config.extension_target(key, column) is not None

    def rows_read(file: str, count: int) -> None:
        if progress is not None:
            progress(f"reading {file}: {count} rows so far")

    stored = load_state(store)
    try:
        manifest = read_manifest(package, warnings)
        tables = read_tables(package, manifest, options, stored, is_extension, rows_read)
    finally:
        package.close()
    warnings += tables.warnings
    if progress is not None:
        progress(f"read {tables.rows_read} rows; joining students")
    index = Index.build(tables)
    system = source_system or config.system_name or manifest.source_system or config.source_id
    fallback = fallback_time_ms if fallback_time_ms is not None else _now_ms()
    delivered_list = store.delivered() if store is not None else []
    delivered = {d.sourced_id: d for d in delivered_list if d.sourced_id and d.live}
    delivered |= {
        d.sourced_id: d
        for d in delivered_list
        if d.sourced_id and not d.live and d.sourced_id not in delivered
    }
    out = _Drafts()
    _upserts(index, config, system, fallback, out, warnings)
    _deletes(index, config, system, delivered, out, warnings)
    _no_district(tables, out)
    drafts = _drop_shared_keys(out.drafts, out.rejects)
    drafts += _key_changes(
        drafts, delivered_list, system, config.student_key.kind, fallback, warnings
    )
    withdrawals: list[Draft] = []
    if manifest.mode_of("users") == "bulk" and store is not None:
        withdrawals = _withdrawals(
            tables, delivered_list, system, config.student_key.kind, fallback
        )
    if schema is None:
        schema = load_schema("student_record_changed")
    rejects = [*tables.rejects, *out.rejects]
    encoder = SchemaEncoder(schema)
    sourced: dict[str, str] = {}
    events = _validated(drafts, encoder, rejects, sourced)
    withdrawn = _validated(withdrawals, encoder, rejects, sourced)
    rejects.sort(key=_order)
    warnings.sort(key=_order)
    rejects_path: Path | None = None
    warnings_path: Path | None = None
    if write_rejects_file:
        rejects_path = rejects_path_for(package_path)
        warnings_path = warnings_path_for(package_path)
        _write(rejects_path, rejects, "rejects")
        _write(warnings_path, warnings, "warnings")
    return PackageReadResult(
        events=events,
        rejects=rejects,
        rows_read=tables.rows_read,
        mode=manifest.mode,
        source_system=system,
        rejects_path=rejects_path,
        warnings=warnings,
        warnings_path=warnings_path,
        version=manifest.version,
        withdrawals=withdrawn,
        live_before=sum(1 for d in delivered_list if d.live),
        already_deleted=out.already_deleted,
        changes=entity_changes(tables) if store is not None else EntityChanges.empty(),
        sourced_ids=sourced,
    )


__all__ = ["KEY_OF_FILE", "PackageReadResult", "StudentEvent", "load_state", "read_package"]
