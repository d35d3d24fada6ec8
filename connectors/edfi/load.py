"""Read an Ed-Fi load (a directory or zip of interchange XML files) into the events to publish.

1. find the XML files and identify each from its root element (:mod:`~connectors.edfi.
   interchange`): a wrong namespace or an unsupported Data Standard rejects the file, an
   Ed-Fi interchange this connector does not map is a warning;
2. stream the files in :data:`~connectors.edfi.interchange.READ_ORDER` (schools and students
   before what refers to them) through the readers (:mod:`~connectors.edfi.readers`) into the
   join state; a record with a bad value or an unknown student is rejected alone, a file that
   is not well-formed XML is rejected whole and the sections it feeds stay null for everyone;
3. build one UPSERT per student (:mod:`~connectors.edfi.events`) with the key rule and
   district of the source configuration, validate it against the schema.

Rejects (``file:line:element: reason``) and warnings go to ``<PATH>.rejects.csv`` and
``<PATH>.warnings.csv``; neither ever holds a value of a record, only where and why.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import fastavro
from fastavro.validation import ValidationError, validate

from connectors.edfi.descriptors import DescriptorMap
from connectors.edfi.events import sections
from connectors.edfi.interchange import (
    LOOKUPS,
    READ_ORDER,
    SECTIONS,
    NotAnInterchange,
    identify,
)
from connectors.edfi.readers import READERS, BadValue, Context
from connectors.edfi.state import Lookups, Student
from connectors.edfi.stream import XmlProblem, read_root, records
from connectors.oneroster.reader import PackageReadResult, StudentEvent
from connectors.source.config import KeyRule, SourceConfig
from connectors.source.rejects import (
    WHOLE_ROW,
    Reject,
    rejects_path_for,
    warnings_path_for,
    write_rejects,
)
from connectors.source.state import SourceStateStore, fingerprint
from streams.errors import HallpassError
from streams.policy.catalog import load_schema
from streams.processor.validate import change_rules

_EVENT_ID_NAMESPACE: Final[uuid.UUID] = uuid.UUID("0b8f3e0c-5d21-4f6a-9a0e-ed0f1ed0f1e5")

#: ``student_key.from`` values of an Ed-Fi source, and which of them need a ``type``.
KEY_FIELDS: Final[tuple[str, ...]] = ("StudentUniqueId", "StudentIdentificationCode")
TYPED_KEY_FIELDS: Final[tuple[str, ...]] = ("StudentIdentificationCode",)
#: The key rule when the source configuration names none: the state's StudentUniqueId.
DEFAULT_KEY_RULE: Final[KeyRule] = KeyRule("StudentUniqueId", "state_id")

ProgressFn = Callable[[str], None]


class EdFiLoadError(HallpassError, ValueError):
    """The load cannot be read at all (no such path, no XML file in it)."""


@dataclass(frozen=True)
class XmlFile:
    """One file of a load: its name (as shown in rejects) and how to open it."""

    name: str
    opener: Callable[[], Any]
    size: int

    def lines(self) -> Iterator[bytes]:
        with self.opener() as raw:
            yield from io.BufferedReader(raw, buffer_size=1 << 16)


@contextmanager
def _load_files(path: Path) -> Iterator[list[XmlFile]]:
    if not path.exists():
        raise EdFiLoadError(f"{path}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() == ".xml")
        yield [
            XmlFile(str(p.relative_to(path)), functools.partial(p.open, "rb"), p.stat().st_size)
            for p in files
        ]
        return
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            members = sorted(
                (
                    i
                    for i in archive.infolist()
                    if not i.is_dir() and i.filename.lower().endswith(".xml")
                ),
                key=lambda i: i.filename,
            )
            yield [
                XmlFile(i.filename, functools.partial(archive.open, i), i.file_size)
                for i in members
            ]
        return
    yield [XmlFile(path.name, functools.partial(path.open, "rb"), path.stat().st_size)]


@dataclass
class LoadSummary:
    """What was read, beside the events: per file its kind and records, and the versions."""

    files: dict[str, str] = field(default_factory=dict)
    versions: set[str] = field(default_factory=set)
    records: int = 0
    failed_kinds: set[str] = field(default_factory=set)
    carried: frozenset[str] = frozenset()


def _key(student: Student, rule: KeyRule) -> tuple[str | None, str]:
    if rule.field == "StudentUniqueId":
        return student.uid, ""
    ids = (student.seoa or {}).get("ids") or {}
    value = ids.get(rule.id_type or "") if isinstance(ids, dict) else None
    if value:
        return str(value), ""
    return None, (
        f"no StudentIdentificationCode of system {rule.id_type!r} (the key rule of "
        "the source) in a StudentEducationOrganizationAssociation of this load"
    )


def read_load(
    path: Path,
    *,
    config: SourceConfig,
    store: SourceStateStore | None = None,
    descriptors: DescriptorMap | None = None,
    as_of: dt.date | None = None,
    now_ms: int | None = None,
    progress: ProgressFn | None = None,
    write_rejects_file: bool = True,
) -> tuple[PackageReadResult, LoadSummary]:
    """Read the load at ``path`` (see the module doc)."""
    path = Path(path)
    descriptors = descriptors or DescriptorMap.default()
    as_of = as_of or dt.datetime.now(config.time_zone).date()
    now_ms = now_ms if now_ms is not None else int(dt.datetime.now(dt.UTC).timestamp() * 1000)
    rule = config.student_key
    system = config.system_name or f"edfi:{config.source_id}"
    delivered = store.delivered() if store is not None else []
    known = frozenset(d.sourced_id for d in delivered if d.live and d.sourced_id)
    rejects: list[Reject] = []
    warnings: list[Reject] = []
    lookups = Lookups()
    students: dict[str, Student] = {}
    summary = LoadSummary()
    present: set[str] = set()

    with _load_files(path) as files:
        if not files:
            raise EdFiLoadError(
                f"{path}: holds no .xml file (expected Ed-Fi interchanges such "
                "as Student.xml, StudentSchoolAttendance.xml)"
            )
        plan: list[tuple[int, XmlFile, str, str]] = []
        for xml in files:
            try:
                root = read_root(xml.lines())
                found = identify(root.name, root.namespace)
            except XmlProblem as exc:
                rejects.append(Reject(xml.name, exc.line, exc.element, exc.reason))
                continue
            except NotAnInterchange as exc:
                rejects.append(Reject(xml.name, 1, "root", f"{exc}; the file was not used"))
                continue
            summary.versions.add(found.version)
            if found.kind is None:
                warnings.append(
                    Reject(
                        xml.name,
                        root.line,
                        root.name,
                        "an Ed-Fi interchange this connector does not map: skipped",
                    )
                )
                continue
            summary.files[xml.name] = found.kind
            plan.append((READ_ORDER.index(found.kind), xml, found.kind, found.namespace))
        plan.sort(key=lambda p: (p[0], p[1].name))
        for _order, xml, kind, namespace in plan:
            ctx = Context(xml.name, descriptors, lookups, students, known)
            readers = READERS[kind]
            count = 0
            if progress is not None:
                progress(f"reading {xml.name} ({kind}, {xml.size / 1e6:.1f} MB)")
            try:
                for line, node in records(xml.lines(), namespace):
                    count += 1
                    reader = readers.get(node.name)
                    if reader is None:
                        continue
                    ctx.line, ctx.element = line, node.name
                    try:
                        reader(node, ctx)
                    except BadValue as exc:
                        ctx.reject(f"{exc}: record not used")
            except XmlProblem as exc:
                summary.failed_kinds.add(kind)
                rejects.append(Reject(xml.name, exc.line, exc.element, exc.reason))
            else:
                present.add(kind)
            summary.records += count
            rejects.extend(ctx.rejects)

    carried: set[str] = set()
    for kind in present:
        carried |= SECTIONS[kind]
    for kind in summary.failed_kinds:
        carried -= SECTIONS[kind] | LOOKUPS.get(kind, frozenset())
    summary.carried = frozenset(carried)

    for (table, value), (count, where) in sorted(descriptors.unknown.items()):
        file, _, rest = where.partition(":")
        line, _, element = rest.partition(":")
        warnings.append(
            Reject(
                file,
                int(line or 0),
                element or WHOLE_ROW,
                f"unknown {table} {value!r} ({count} record(s)): left null; "
                "add it to connectors/edfi/descriptors.yaml or a --descriptors "
                "file",
            )
        )

    parsed = fastavro.parse_schema(dict(load_schema("student_record_changed")))
    refused_by = change_rules(load_schema("student_record_changed"))
    as_of_ms = int(dt.datetime.combine(as_of, dt.time(), dt.UTC).timestamp() * 1000)
    events: list[StudentEvent] = []
    sourced: dict[str, str] = {}
    for uid in sorted(students):
        student = students[uid]
        key, problem = _key(student, rule)
        if key is None:
            rejects.append(Reject("*", 0, "Student", f"student {uid!r}: {problem}"))
            continue
        event = _event(
            student, key, rule.kind, system, lookups, config, summary.carried, as_of, now_ms
        )
        if event["district_id"] is None:
            rejects.append(
                Reject(
                    "*",
                    0,
                    "Student",
                    f"student {uid!r}: no district (no "
                    "school of the student names a LocalEducationAgency, and the "
                    "load has not exactly one): set district_id in the source "
                    "configuration or pass --district",
                )
            )
            continue
        try:
            valid = validate(event, parsed, raise_errors=False)
        except (ValidationError, ValueError, TypeError):
            valid = False
        if not valid:
            rejects.append(
                Reject(
                    "*",
                    0,
                    "Student",
                    f"student {uid!r}: the event schema "
                    "refuses the event (a value out of range or of the wrong "
                    "type)",
                )
            )
            continue
        refused = refused_by({**event, "event_id": "-"}, max(now_ms, as_of_ms))
        if refused is not None:  # the input limits: the field and the rule, never the value
            rejects.append(Reject("*", 0, "Student", f"student {uid!r}: {refused}"))
            continue
        event["event_id"] = str(
            uuid.uuid5(_EVENT_ID_NAMESPACE, f"{system}:{key}:{fingerprint(event)}")
        )
        events.append(StudentEvent(key, event))
        sourced[key] = uid

    rejects_path = warnings_path = None
    if write_rejects_file:
        rejects_path, warnings_path = rejects_path_for(path), warnings_path_for(path)
        write_rejects(rejects_path, rejects)
        write_rejects(warnings_path, warnings)
    version = ", ".join(sorted(summary.versions)) or "?"
    result = PackageReadResult(
        events=events,
        rejects=rejects,
        rows_read=summary.records,
        mode="bulk",
        source_system=system,
        rejects_path=rejects_path,
        warnings=warnings,
        warnings_path=warnings_path,
        version=version,
        live_before=sum(1 for d in delivered if d.live),
        sourced_ids=sourced,
    )
    return result, summary


def _event(
    student: Student,
    key: str,
    kind: str,
    system: str,
    lookups: Lookups,
    config: SourceConfig,
    carried: frozenset[str],
    as_of: dt.date,
    now_ms: int,
) -> dict[str, Any]:
    body = sections(student, lookups, carried, as_of)
    enrollment = body.get("enrollment")
    school = (enrollment or {}).get("school_id") or (
        student.last_school[1] if student.last_school else None
    )
    return {
        "event_id": "",
        "student_id": key,
        "student_id_type": kind,
        "source_system": system,
        "district_id": lookups.district_of(school) or config.district_id or lookups.only_lea(),
        "school_id": school,
        "operation": "UPSERT",
        "occurred_at": now_ms,
        "names": body.get("names"),
        "identity": body.get("identity"),
        "demographics": body.get("demographics"),
        "enrollment": enrollment,
        "contact": body.get("contact"),
        "guardians": body.get("guardians"),
        "schedule": body.get("schedule"),
        "attendance": body.get("attendance"),
        "assessment": body.get("assessment"),
        "transcript": body.get("transcript"),
        "conduct": body.get("conduct"),
        "programs": body.get("programs"),
        "special": body.get("special"),
        "transportation": None,
        "restricted": None,
    }
