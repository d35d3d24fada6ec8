"""OneRoster 1.2 CSV packages -> one ``StudentRecordChanged`` event per student.

A package is a directory or a zip holding ``manifest.csv`` and the CSV files it names
(``orgs``, ``users``, ``roles``, ``demographics``, ``enrollments``, ``classes``,
``academicSessions``, ``courses``). :func:`read_package` reads it in four steps:

1. open the package and read the manifest; a missing or unreadable package, a missing
   manifest, or a manifest naming a file the package lacks raise :class:`OneRosterPackageError`
   before anything is returned (so nothing is published);
2. read every CSV row, check it against its columns (required values, dates, enums, status,
   UTF-8), and keep the good rows as :class:`Record`; a bad row becomes a
   :class:`~connectors.rejects.Reject` (``file:line:column: reason``);
3. check references between rows (a reference to an unknown or rejected user, org, class,
   ...) and join the rows of each student (role ``student``) into one event value; a student
   whose joined rows include a rejected one is held back rather than published incomplete;
4. validate each event against ``schemas/student_record_changed.avsc`` with fastavro.

The result lists the events (key = state student id), the rejects and the number of data rows
read; by default the rejects are also written to ``<package>.rejects.csv`` beside the package.

Deltas are read as self-contained: each student the delta touches must come with its
``users.csv`` row and every row its event joins (enrollments, classes, orgs, ...). A delta row
``status=tobedeleted`` on a student user becomes an event with operation ``DELETE``.
"""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import re
import uuid
import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal

import fastavro
from fastavro.validation import ValidationError, validate

from connectors.fingerprints import fingerprint
from connectors.rejects import WHOLE_ROW, Reject, rejects_path_for, write_rejects
from streams.catalog import load_schema

Mode = Literal["bulk", "delta"]
FileMode = Literal["bulk", "delta", "absent"]
Operation = Literal["UPSERT", "DELETE"]
Value = str | tuple[str, ...] | bool | dt.date | int | None


class OneRosterPackageError(Exception):
    """The package cannot be read at all; nothing from it may be published.

    The message says what is wrong and what to do about it.
    """


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class StudentEvent:
    """One event to publish: ``key`` is the state student id, ``value`` the Avro record dict."""

    key: str
    value: dict[str, Any]

    @property
    def operation(self) -> Operation:
        op: Operation = "DELETE" if self.value.get("operation") == "DELETE" else "UPSERT"
        return op


@dataclass(frozen=True)
class PackageReadResult:
    """What a package yielded: events to publish, rejected rows, and counts."""

    events: list[StudentEvent]
    rejects: list[Reject]
    rows_read: int
    mode: Mode
    source_system: str
    rejects_path: Path | None = None

    @property
    def rejected(self) -> int:
        return len(self.rejects)


# --------------------------------------------------------------------------- package access


class _Package:
    """Read access to the files of a package, a directory or a zip, by file name."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._zip: zipfile.ZipFile | None = None
        self._names: dict[str, str] = {}
        if path.is_dir():
            try:
                self._names = {c.name: c.name for c in path.iterdir() if c.is_file()}
            except OSError as exc:
                raise OneRosterPackageError(
                    f"cannot list the package directory {path}: {exc}; check its permissions"
                ) from exc
        elif path.is_file():
            try:
                self._zip = zipfile.ZipFile(path)
            except (zipfile.BadZipFile, OSError) as exc:
                raise OneRosterPackageError(
                    f"{path} is not a readable zip ({exc}); give a OneRoster package: a "
                    "directory or a zip holding manifest.csv and the CSV files it names"
                ) from exc
            for info in self._zip.infolist():
                if info.is_dir():
                    continue
                # The files sit at the root of the zip; tolerate one wrapping folder.
                base = info.filename.rsplit("/", 1)[-1]
                self._names.setdefault(base, info.filename)
        elif path.exists():
            raise OneRosterPackageError(
                f"{path} is neither a directory nor a zip file; give a OneRoster package"
            )
        else:
            raise OneRosterPackageError(
                f"OneRoster package {path} does not exist; check the path (a directory or a "
                "zip holding manifest.csv)"
            )

    def has(self, name: str) -> bool:
        return name in self._names

    @contextmanager
    def open(self, name: str) -> Iterator[IO[bytes]]:
        """A binary stream of one file; I/O and zip errors while reading it stop the load."""
        member = self._names[name]
        try:
            if self._zip is not None:
                with self._zip.open(member) as stream:
                    yield stream
            else:
                with (self.path / member).open("rb") as stream:
                    yield stream
        except (OSError, zipfile.BadZipFile) as exc:
            raise OneRosterPackageError(
                f"cannot read {name} in {self.path}: {exc}; check the file and its permissions"
            ) from exc

    def close(self) -> None:
        if self._zip is not None:
            self._zip.close()


# --------------------------------------------------------------------------- manifest

#: ``file.<name>`` entries of the manifest that this connector reads, with their CSV name.
KNOWN_FILES: Final[Mapping[str, str]] = {
    "orgs": "orgs.csv",
    "users": "users.csv",
    "roles": "roles.csv",
    "demographics": "demographics.csv",
    "enrollments": "enrollments.csv",
    "classes": "classes.csv",
    "academicSessions": "academicSessions.csv",
    "courses": "courses.csv",
}

#: Files without which no student event can be built.
REQUIRED_FILES: Final[tuple[str, ...]] = ("users", "orgs")


_FILE_MODES: Final[Mapping[str, FileMode]] = {"bulk": "bulk", "delta": "delta", "absent": "absent"}


@dataclass(frozen=True)
class Manifest:
    """The parsed ``manifest.csv``: properties and the mode of each file."""

    properties: Mapping[str, str]
    files: Mapping[str, FileMode]

    def mode_of(self, name: str) -> FileMode:
        return self.files.get(name, "absent")

    @property
    def mode(self) -> Mode:
        """``delta`` when any file present is a delta, else ``bulk``."""
        return "delta" if "delta" in self.files.values() else "bulk"

    @property
    def source_system(self) -> str | None:
        return self.properties.get("source.systemName") or None


def _read_manifest(package: _Package) -> Manifest:
    where = f"{package.path}/manifest.csv"
    if not package.has("manifest.csv"):
        raise OneRosterPackageError(
            f"{package.path} has no manifest.csv; a OneRoster 1.2 package needs one with "
            "rows propertyName,value (manifest.version, oneroster.version, file.<name>)"
        )
    with package.open("manifest.csv") as stream:
        data = stream.read()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise OneRosterPackageError(f"{where} is not UTF-8 ({exc}); save it as UTF-8") from exc
    rows = [row for row in csv.reader(io.StringIO(text)) if row]
    if not rows or [c.strip() for c in rows[0][:2]] != ["propertyName", "value"]:
        raise OneRosterPackageError(f"{where} must start with the header propertyName,value")
    properties: dict[str, str] = {}
    for number, row in enumerate(rows[1:], start=2):
        if len(row) != 2:
            raise OneRosterPackageError(
                f"{where}:{number}: expected 2 fields (propertyName,value), got {len(row)}"
            )
        properties[row[0].strip()] = row[1].strip()
    version = properties.get("oneroster.version", "")
    if version != "1.2" and not version.startswith("1.2."):
        raise OneRosterPackageError(
            f"{where}: oneroster.version is {version or 'missing'!r}; this connector reads "
            "OneRoster 1.2 CSV packages: export with OneRoster 1.2"
        )
    files: dict[str, FileMode] = {}
    for prop, raw in properties.items():
        if not prop.startswith("file."):
            continue
        mode = _FILE_MODES.get(raw.lower())
        if mode is None:
            raise OneRosterPackageError(
                f"{where}: {prop} is {raw!r}; it must be bulk, delta or absent"
            )
        files[prop.removeprefix("file.")] = mode
    manifest = Manifest(properties=properties, files=files)
    for name in REQUIRED_FILES:
        if manifest.mode_of(name) == "absent":
            raise OneRosterPackageError(
                f"{where}: file.{name} is absent, but every student event needs "
                f"{KNOWN_FILES[name]}; export it with the package (bulk or delta)"
            )
    for name, mode in files.items():  # every file the manifest names, read here or not
        csv_name = KNOWN_FILES.get(name, f"{name}.csv")
        if mode != "absent" and not package.has(csv_name):
            raise OneRosterPackageError(
                f"{where} says file.{name} is {mode}, but {package.path} has no {csv_name}; "
                "add the file or mark it absent in the manifest"
            )
    if manifest.mode_of("enrollments") != "absent" and manifest.mode_of("classes") == "absent":
        raise OneRosterPackageError(
            f"{where}: enrollments.csv is present but classes.csv is absent; enrollments "
            "refer to classes, so export classes.csv too"
        )
    return manifest


# --------------------------------------------------------------------------- raw CSV rows


@dataclass(frozen=True)
class RawRow:
    """One CSV record as text: ``fields`` maps header names to the raw values."""

    file: str
    line: int
    fields: dict[str, str]


_SURROGATE = re.compile("[\udc80-\udcff]")


def _decoded_lines(stream: IO[bytes], bad_lines: set[int]) -> Iterator[str]:
    """Yield the physical lines of ``stream`` as text, recording the numbers of non-UTF-8 ones.

    Undecodable bytes are kept as surrogate escapes so the rejects file can show them.
    """
    for number, raw in enumerate(stream, start=1):
        chunk = raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
        try:
            yield chunk.decode("utf-8")
        except UnicodeDecodeError:
            bad_lines.add(number)
            yield chunk.decode("utf-8", "surrogateescape")


def _iter_raw_rows(
    name: str, stream: IO[bytes], required: Sequence[str] = ()
) -> Iterator[RawRow | Reject]:
    """Yield the records of one CSV file: well-formed ones as :class:`RawRow`, others as rejects.

    ``line`` is the physical line where a record starts (records may span lines when a
    quoted value holds a newline). Raises :class:`OneRosterPackageError` for a bad header,
    including one that lacks a column named in ``required``.
    """
    bad_lines: set[int] = set()
    reader = csv.reader(_decoded_lines(stream, bad_lines), strict=False)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise OneRosterPackageError(
            f"{name} is empty; it needs at least its header line (or mark it absent in "
            "manifest.csv)"
        ) from None
    except csv.Error as exc:
        raise OneRosterPackageError(f"{name}:1: cannot read the header ({exc})") from exc
    if bad_lines:
        raise OneRosterPackageError(f"{name}:1: the header is not UTF-8; save the file as UTF-8")
    duplicates = sorted({h for h in header if header.count(h) > 1})
    if duplicates:
        raise OneRosterPackageError(f"{name}:1: duplicate columns {', '.join(duplicates)}")
    missing = [column for column in required if column not in header]
    if missing:
        raise OneRosterPackageError(
            f"{name}:1: the header lacks the required column(s) {', '.join(missing)}; "
            "export the file with the OneRoster 1.2 columns"
        )
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield Reject(name, start, WHOLE_ROW, f"malformed CSV: {exc}", {})
            continue
        if not values or (values == [""] and len(header) > 1):
            continue  # blank line
        fields = dict(zip(header, values, strict=False))
        if len(values) != len(header):
            reason = f"row has {len(values)} fields but the header has {len(header)}"
            yield Reject(name, start, WHOLE_ROW, reason, fields)
            continue
        if any(n in bad_lines for n in range(start, reader.line_num + 1)):
            column = next((h for h, v in fields.items() if _SURROGATE.search(v)), WHOLE_ROW)
            reason = "value is not valid UTF-8 (bytes shown as \\xNN); save the export as UTF-8"
            yield Reject(name, start, column, reason, fields)
            continue
        yield RawRow(name, start, fields)


# --------------------------------------------------------------------------- columns

Kind = Literal["text", "ids", "bool", "date", "datetime", "enum", "userids", "year"]


@dataclass(frozen=True)
class Column:
    """One OneRoster column: how to parse it and whether a value is required."""

    name: str
    kind: Kind = "text"
    required: bool = False
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class FileSpec:
    """The columns of one OneRoster CSV file (besides sourcedId, status, dateLastModified)."""

    key: str
    columns: tuple[Column, ...]

    @property
    def csv_name(self) -> str:
        return KNOWN_FILES[self.key]

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


_ORG_TYPES = ("department", "school", "district", "local", "state", "national")
# OneRoster 1.2 role values (roles.csv and enrollments.csv), plus 1.1's users.role values.
_ROLES = (
    "administrator",
    "aide",
    "counselor",
    "districtAdministrator",
    "guardian",
    "parent",
    "principal",
    "proctor",
    "relative",
    "siteAdministrator",
    "student",
    "systemAdministrator",
    "teacher",
)
_SEXES = ("male", "female", "unspecified", "other")
_RACE_FLAGS = (
    "americanIndianOrAlaskaNative",
    "asian",
    "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander",
    "white",
    "demographicRaceTwoOrMoreRaces",
    "hispanicOrLatinoEthnicity",
)

SPECS: Final[Mapping[str, FileSpec]] = {
    spec.key: spec
    for spec in (
        FileSpec(
            "orgs",
            (
                Column("name", required=True),
                Column("type", "enum", required=True, choices=_ORG_TYPES),
                Column("identifier"),
                Column("parentSourcedId"),
            ),
        ),
        FileSpec(
            "users",
            (
                Column("enabledUser", "bool", required=True),
                Column("username", required=True),
                Column("userIds", "userids"),
                Column("givenName", required=True),
                Column("familyName", required=True),
                Column("middleName"),
                Column("identifier"),
                Column("email"),
                Column("sms"),
                Column("phone"),
                Column("agentSourcedIds", "ids"),
                Column("grades", "ids"),
                Column("userMasterIdentifier"),
                Column("preferredGivenName"),
                Column("preferredFirstName"),  # older name of preferredGivenName
                Column("preferredMiddleName"),
                Column("preferredFamilyName"),
                Column("primaryOrgSourcedId"),
                Column("pronouns"),
                # OneRoster 1.1 layout, still common in 1.2 exports that skip roles.csv:
                Column("role", "enum", choices=_ROLES),
                Column("orgSourcedIds", "ids"),
            ),
        ),
        FileSpec(
            "roles",
            (
                Column("userSourcedId", required=True),
                Column("roleType", "enum", required=True, choices=("primary", "secondary")),
                Column("role", "enum", required=True, choices=_ROLES),
                Column("beginDate", "date"),
                Column("endDate", "date"),
                Column("orgSourcedId", required=True),
            ),
        ),
        FileSpec(
            "demographics",
            (
                Column("birthDate", "date"),
                Column("sex", "enum", choices=_SEXES),
                *(Column(flag, "bool") for flag in _RACE_FLAGS),
                Column("countryOfBirthCode"),
                Column("stateOfBirthAbbreviation"),
                Column("cityOfBirth"),
                Column("publicSchoolResidenceStatus"),
            ),
        ),
        FileSpec(
            "enrollments",
            (
                Column("classSourcedId", required=True),
                Column("schoolSourcedId", required=True),
                Column("userSourcedId", required=True),
                Column("role", "enum", required=True, choices=_ROLES),
                Column("primary", "bool"),
                Column("beginDate", "date"),
                Column("endDate", "date"),
            ),
        ),
        FileSpec(
            "classes",
            (
                Column("title", required=True),
                Column("grades", "ids"),
                Column("courseSourcedId", required=True),
                Column("classCode"),
                Column("classType", "enum", required=True, choices=("homeroom", "scheduled")),
                Column("location"),
                Column("schoolSourcedId", required=True),
                Column("termSourcedIds", "ids", required=True),
                Column("subjects", "ids"),
                Column("subjectCodes", "ids"),
                Column("periods", "ids"),
            ),
        ),
        FileSpec(
            "academicSessions",
            (
                Column("title", required=True),
                Column(
                    "type",
                    "enum",
                    required=True,
                    choices=("gradingPeriod", "semester", "schoolYear", "term"),
                ),
                Column("startDate", "date", required=True),
                Column("endDate", "date", required=True),
                Column("parentSourcedId"),
                Column("schoolYear", "year", required=True),
            ),
        ),
        FileSpec(
            "courses",
            (
                Column("schoolYearSourcedId"),
                Column("title", required=True),
                Column("courseCode"),
                Column("grades", "ids"),
                Column("orgSourcedId", required=True),
                Column("subjects", "ids"),
                Column("subjectCodes", "ids"),
            ),
        ),
    )
}

#: Order in which files are read (rejects come out in this order).
READ_ORDER: Final[tuple[str, ...]] = (
    "orgs",
    "academicSessions",
    "courses",
    "classes",
    "users",
    "roles",
    "demographics",
    "enrollments",
)


class _BadValue(ValueError):
    """A value that does not parse; the message is the reject reason."""


_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_USER_ID = re.compile(r"\{\s*([^:{}]+?)\s*:\s*([^{}]*?)\s*\}")


def _split_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_datetime_ms(raw: str) -> int:
    """Epoch milliseconds of an ISO 8601 dateTime (``2026-01-05T12:30:00.000Z``).

    A value without an offset is taken as UTC, the zone OneRoster prescribes.
    """
    text = raw.strip()
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise _BadValue(
            f"{raw!r} is not an ISO 8601 dateTime (like 2026-01-05T12:30:00.000Z)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return int(value.timestamp() * 1000)


def _parse_date(raw: str) -> dt.date:
    if not _DATE.fullmatch(raw):
        raise _BadValue(f"{raw!r} is not a date (YYYY-MM-DD)")
    try:
        return dt.date.fromisoformat(raw)
    except ValueError:
        raise _BadValue(f"{raw!r} is not a valid date") from None


def _parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low not in ("true", "false"):
        raise _BadValue(f"{raw!r} is not true or false")
    return low == "true"


def _parse_enum(raw: str, choices: Sequence[str]) -> str:
    if raw in choices or raw.startswith("ext:"):
        return raw
    for choice in choices:  # tolerate case differences, output the spec's spelling
        if choice.lower() == raw.lower():
            return choice
    raise _BadValue(f"unknown value {raw!r} (expected one of {', '.join(choices)})")


def _parse_user_ids(raw: str) -> tuple[str, ...]:
    """``{type:id},{type:id}`` -> ``("type:id", ...)``, types and ids stripped."""
    found = _USER_ID.findall(raw)
    rest = _USER_ID.sub("", raw).replace(",", "").strip()
    if rest or not found:
        raise _BadValue(f"{raw!r} is not a list of {{type:id}} entries")
    return tuple(f"{kind}:{ident}" for kind, ident in found)


def parse_value(column: Column, raw: str) -> Value:
    """Parse one non-empty raw value of ``column``; raise ``ValueError`` with the reason."""
    match column.kind:
        case "text":
            return raw
        case "ids":
            return _split_list(raw)
        case "bool":
            return _parse_bool(raw)
        case "date":
            return _parse_date(raw)
        case "datetime":
            return parse_datetime_ms(raw)
        case "enum":
            return _parse_enum(raw, column.choices)
        case "userids":
            return _parse_user_ids(raw)
        case "year":
            if not re.fullmatch(r"\d{4}", raw):
                raise _BadValue(f"{raw!r} is not a year (YYYY)")
            return int(raw)


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class Record:
    """A row that passed its column checks: parsed values by column name."""

    file: str
    line: int
    sourced_id: str
    status: Literal["active", "tobedeleted"]
    modified_ms: int | None
    values: Mapping[str, Value]
    raw: Mapping[str, str] = field(repr=False, compare=False)

    @property
    def deleted(self) -> bool:
        return self.status == "tobedeleted"

    def text(self, name: str) -> str | None:
        value = self.values.get(name)
        return value if isinstance(value, str) else None

    def ids(self, name: str) -> tuple[str, ...]:
        value = self.values.get(name)
        return value if isinstance(value, tuple) else ()

    def flag(self, name: str) -> bool | None:
        value = self.values.get(name)
        return value if isinstance(value, bool) else None

    def date(self, name: str) -> dt.date | None:
        value = self.values.get(name)
        return value if isinstance(value, dt.date) else None

    def number(self, name: str) -> int | None:
        value = self.values.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


class _ColumnError(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


def _check_common(row: RawRow, mode: FileMode) -> tuple[str, str, int | None]:
    """sourcedId, status and dateLastModified of a row, by the rules of its file's mode.

    Bulk: status empty or ``active``; dateLastModified optional. Delta: status ``active`` or
    ``tobedeleted`` and dateLastModified required. Raises ``_ColumnError``.
    """
    sourced_id = row.fields.get("sourcedId", "").strip()
    if not sourced_id:
        raise _ColumnError("sourcedId", "required value is empty")
    status = row.fields.get("status", "").strip()
    if mode == "delta":
        if not status:
            raise _ColumnError(
                "status", "required value is empty (a delta row is active or tobedeleted)"
            )
        if status not in ("active", "tobedeleted"):
            raise _ColumnError(
                "status", f"unknown status {status!r} (expected active or tobedeleted)"
            )
    elif status not in ("", "active"):
        reason = (
            "tobedeleted is only allowed in a delta file (the manifest says bulk)"
            if status == "tobedeleted"
            else f"unknown status {status!r} (expected active or empty in a bulk file)"
        )
        raise _ColumnError("status", reason)
    modified = row.fields.get("dateLastModified", "").strip()
    if not modified:
        if mode == "delta":
            raise _ColumnError("dateLastModified", "required value is empty in a delta file")
        return sourced_id, status or "active", None
    try:
        return sourced_id, status or "active", parse_datetime_ms(modified)
    except _BadValue as exc:
        raise _ColumnError("dateLastModified", str(exc)) from None


def to_record(spec: FileSpec, row: RawRow, mode: FileMode) -> Record:
    """Check ``row`` against ``spec``; raise ``_ColumnError`` naming the first bad column.

    A ``tobedeleted`` row needs only its sourcedId, status and dateLastModified: the other
    required values are not checked, but what is there must still parse.
    """
    sourced_id, status, modified = _check_common(row, mode)
    values: dict[str, Value] = {}
    for column in spec.columns:
        raw = row.fields.get(column.name)
        if raw is None or not raw.strip():
            if column.required and status != "tobedeleted":
                raise _ColumnError(column.name, "required value is empty")
            values[column.name] = None
            continue
        try:
            values[column.name] = parse_value(column, raw.strip())
        except _BadValue as exc:
            raise _ColumnError(column.name, str(exc)) from None
    for name, raw in row.fields.items():  # extension columns are kept as text
        if name.startswith("metadata.") and raw.strip():
            values[name] = raw.strip()
    return Record(
        file=row.file,
        line=row.line,
        sourced_id=sourced_id,
        status="tobedeleted" if status == "tobedeleted" else "active",
        modified_ms=modified,
        values=values,
        raw=row.fields,
    )


def required_header(spec: FileSpec) -> list[str]:
    """Columns a file's header must have (optional columns may be left out)."""
    return ["sourcedId", "status", "dateLastModified"] + [
        c.name for c in spec.columns if c.required
    ]


# --------------------------------------------------------------------------- reading tables


@dataclass
class _Tables:
    """The rows of a package after column checks, and everything rejected so far."""

    manifest: Manifest
    records: dict[str, list[Record]] = field(default_factory=dict)
    rejects: list[Reject] = field(default_factory=list)
    rows_read: int = 0
    #: file key -> sourcedId -> the reject of a row with that id (to explain references).
    rejected_ids: dict[str, dict[str, Reject]] = field(default_factory=dict)
    #: (file, line) of rejected rows whose values may not sit under their columns.
    misaligned: set[tuple[str, int]] = field(default_factory=set)

    def present(self, key: str) -> bool:
        return self.manifest.mode_of(key) != "absent"

    def reject(self, reject: Reject, key: str) -> None:
        self.rejects.append(reject)
        sourced_id = reject.row.get("sourcedId", "").strip()
        if sourced_id:
            self.rejected_ids.setdefault(key, {}).setdefault(sourced_id, reject)


def _read_tables(package: _Package, manifest: Manifest) -> _Tables:
    tables = _Tables(manifest)
    for key in READ_ORDER:
        mode = manifest.mode_of(key)
        if mode == "absent":
            continue
        spec = SPECS[key]
        good: list[Record] = []
        with package.open(spec.csv_name) as stream:
            for item in _iter_raw_rows(spec.csv_name, stream, required_header(spec)):
                tables.rows_read += 1
                if isinstance(item, Reject):
                    if item.column == WHOLE_ROW:  # wrong field count or malformed CSV
                        tables.misaligned.add((item.file, item.line))
                    tables.reject(item, key)
                    continue
                try:
                    good.append(to_record(spec, item, mode))
                except _ColumnError as exc:
                    tables.reject(
                        Reject(item.file, item.line, exc.column, exc.reason, item.fields), key
                    )
        tables.records[key] = _drop_duplicates(tables, key, good)
    return tables


def _drop_duplicates(tables: _Tables, key: str, records: list[Record]) -> list[Record]:
    """Reject every row of a sourcedId that occurs more than once: no row can be trusted."""
    lines: dict[str, list[int]] = {}
    for record in records:
        lines.setdefault(record.sourced_id, []).append(record.line)
    kept: list[Record] = []
    for record in records:
        seen = lines[record.sourced_id]
        if len(seen) == 1:
            kept.append(record)
            continue
        others = ", ".join(str(n) for n in seen if n != record.line)
        reason = f"duplicate sourcedId {record.sourced_id!r} (also on line {others})"
        tables.reject(Reject(record.file, record.line, "sourcedId", reason, record.raw), key)
    return kept


# --------------------------------------------------------------------------- references

#: file key -> (column, referenced file key); "sourcedId" of demographics is the user's.
REFERENCES: Final[Mapping[str, tuple[tuple[str, str], ...]]] = {
    "orgs": (("parentSourcedId", "orgs"),),
    "academicSessions": (("parentSourcedId", "academicSessions"),),
    "courses": (("orgSourcedId", "orgs"), ("schoolYearSourcedId", "academicSessions")),
    "classes": (
        ("schoolSourcedId", "orgs"),
        ("courseSourcedId", "courses"),
        ("termSourcedIds", "academicSessions"),
    ),
    "users": (
        ("primaryOrgSourcedId", "orgs"),
        ("orgSourcedIds", "orgs"),
        ("agentSourcedIds", "users"),
    ),
    "roles": (("userSourcedId", "users"), ("orgSourcedId", "orgs")),
    "demographics": (("sourcedId", "users"),),
    "enrollments": (
        ("userSourcedId", "users"),
        ("classSourcedId", "classes"),
        ("schoolSourcedId", "orgs"),
    ),
}

_NOUNS: Final[Mapping[str, str]] = {
    "orgs": "org",
    "users": "user",
    "classes": "class",
    "courses": "course",
    "academicSessions": "academic session",
}


def _referenced_ids(record: Record, column: str) -> tuple[str, ...]:
    if column == "sourcedId":
        return (record.sourced_id,)
    value = record.values.get(column)
    if isinstance(value, str):
        return (value,)
    return value if isinstance(value, tuple) else ()


def _check_references(tables: _Tables) -> None:
    """Reject active rows that refer to an unknown, rejected or tobedeleted row, to a fixpoint.

    References into a file the manifest marks absent are not checked (the package does not
    say); users and orgs are always present.
    """
    active: dict[str, dict[str, Record]] = {
        key: {r.sourced_id: r for r in records if not r.deleted}
        for key, records in tables.records.items()
    }
    deleted: dict[str, set[str]] = {
        key: {r.sourced_id for r in records if r.deleted} for key, records in tables.records.items()
    }
    changed = True
    while changed:
        changed = False
        for key, records in tables.records.items():
            kept: list[Record] = []
            for record in records:
                problem = (
                    None if record.deleted else _bad_reference(record, key, tables, active, deleted)
                )
                if problem is None:
                    kept.append(record)
                    continue
                column, reason = problem
                tables.reject(Reject(record.file, record.line, column, reason, record.raw), key)
                active[key].pop(record.sourced_id, None)
                changed = True
            tables.records[key] = kept


def _bad_reference(
    record: Record,
    key: str,
    tables: _Tables,
    active: Mapping[str, Mapping[str, Record]],
    deleted: Mapping[str, set[str]],
) -> tuple[str, str] | None:
    for column, target in REFERENCES.get(key, ()):
        if not tables.present(target):
            continue
        for ref in _referenced_ids(record, column):
            if ref in active[target]:
                continue
            noun, csv_name = _NOUNS[target], KNOWN_FILES[target]
            earlier = tables.rejected_ids.get(target, {}).get(ref)
            if earlier is not None:
                reason = f"{noun} {ref!r} was rejected ({earlier.file}:{earlier.line})"
            elif ref in deleted[target]:
                reason = f"{noun} {ref!r} is tobedeleted in {csv_name}"
            elif tables.manifest.mode_of(target) == "delta":
                reason = (
                    f"unknown {noun} {ref!r} (not in {csv_name}: a delta must also carry the "
                    "rows it refers to)"
                )
            else:
                reason = f"unknown {noun} {ref!r} (not in {csv_name})"
            return column, reason
    return None


# --------------------------------------------------------------------------- joining

_GUARDIAN_ROLES: Final[frozenset[str]] = frozenset({"parent", "guardian", "relative"})
_STATE_ID_TYPES: Final[frozenset[str]] = frozenset({"stateid", "statestudentid", "state"})
_LOCAL_ID_TYPES: Final[frozenset[str]] = frozenset({"localid", "localstudentid", "studentnumber"})
_HELD_BACK = "student not published: a row it joins was rejected"


def _id_type(kind: str) -> str:
    return re.sub(r"[^a-z]", "", kind.lower())


def _typed_user_id(record: Record, types: frozenset[str]) -> str | None:
    for entry in record.ids("userIds"):
        kind, _, ident = entry.partition(":")
        if _id_type(kind) in types and ident:
            return ident
    return None


def state_student_id(record: Record) -> str | None:
    """The state student id of a users.csv row: the event key.

    Taken from ``userIds`` when it carries a typed ``{stateID:...}`` entry (explicit), else
    from ``identifier``, the human-readable id that SIS exports fill with the state id.
    """
    return _typed_user_id(record, _STATE_ID_TYPES) or record.text("identifier")


@dataclass
class _Index:
    """Lookups over the checked rows of a package."""

    tables: _Tables
    by_id: dict[str, dict[str, Record]] = field(default_factory=dict)
    roles_of: dict[str, list[Record]] = field(default_factory=dict)
    deleted_roles_of: dict[str, list[Record]] = field(default_factory=dict)
    enrollments_of_user: dict[str, list[Record]] = field(default_factory=dict)
    #: teacher enrollments by class
    teachers_of_class: dict[str, list[Record]] = field(default_factory=dict)
    #: users with any enrollments.csv row, tobedeleted ones included.
    with_enrollment_rows: set[str] = field(default_factory=set)
    #: the one org of type district when the package has exactly one.
    only_district: Record | None = None
    demographics_of: dict[str, Record] = field(default_factory=dict)
    agents_of: dict[str, list[str]] = field(default_factory=dict)
    #: rejected child rows by what they concern, e.g. ("enrollments-of", user id).
    rejected: dict[tuple[str, str], Reject] = field(default_factory=dict)

    @classmethod
    def build(cls, tables: _Tables) -> _Index:
        index = cls(tables)
        for key, records in tables.records.items():
            index.by_id[key] = {r.sourced_id: r for r in records}
        for role in tables.records.get("roles", []):
            owner = role.text("userSourcedId") or ""
            target = index.deleted_roles_of if role.deleted else index.roles_of
            target.setdefault(owner, []).append(role)
        for enrollment in tables.records.get("enrollments", []):
            user_id = enrollment.text("userSourcedId") or ""
            index.with_enrollment_rows.add(user_id)
            if enrollment.deleted:
                continue
            class_id = enrollment.text("classSourcedId") or ""
            index.enrollments_of_user.setdefault(user_id, []).append(enrollment)
            if enrollment.text("role") == "teacher":
                index.teachers_of_class.setdefault(class_id, []).append(enrollment)
        districts = [o for o in tables.records.get("orgs", []) if o.text("type") == "district"]
        if len(districts) == 1 and not districts[0].deleted:
            index.only_district = districts[0]
        for demo in tables.records.get("demographics", []):
            index.demographics_of[demo.sourced_id] = demo
        for user in tables.records.get("users", []):
            if user.deleted:
                continue
            for agent in user.ids("agentSourcedIds"):  # links are read in both directions
                index.agents_of.setdefault(agent, []).append(user.sourced_id)
                index.agents_of.setdefault(user.sourced_id, []).append(agent)
        for reject in tables.rejects:
            misaligned = (reject.file, reject.line) in tables.misaligned
            for concern in _concerns(reject, misaligned):
                index.rejected.setdefault(concern, reject)
        return index

    def get(self, key: str, sourced_id: str | None) -> Record | None:
        if not sourced_id:
            return None
        record = self.by_id.get(key, {}).get(sourced_id)
        return None if record is None or record.deleted else record

    def roles(self, user: Record) -> set[str]:
        """Role values of a user: roles.csv rows and the users.csv ``role`` column.

        For a tobedeleted user the roles deleted with it count too.
        """
        rows = list(self.roles_of.get(user.sourced_id, []))
        if user.deleted:
            rows += self.deleted_roles_of.get(user.sourced_id, [])
        found = {r.text("role") or "" for r in rows}
        if user.text("role"):
            found.add(user.text("role") or "")
        found.discard("")
        return found

    def guardians(self, student: Record) -> list[Record]:
        linked = sorted(set(self.agents_of.get(student.sourced_id, [])))
        found = [self.get("users", uid) for uid in linked]
        return [g for g in found if g is not None and self.roles(g) & _GUARDIAN_ROLES]


_CONCERN_KINDS: Final[Mapping[str, tuple[str, ...]]] = {
    "roles.csv": ("roles-of",),
    "demographics.csv": ("demographics-of",),
    "enrollments.csv": ("enrollments-of", "teachers-of"),
    "users.csv": ("agent-of",),
}


def _concerns(reject: Reject, misaligned: bool) -> list[tuple[str, str]]:
    """What a rejected row would have added to some student's event.

    The values of a row with the wrong number of fields may sit under the wrong columns: then
    every id in any of its values counts (holding back too many beats publishing a student
    without, say, the guardian that only that row linked).
    """
    row = reject.row
    if misaligned:
        tokens = sorted({t for value in row.values() for t in _split_list(value)})
        return [(kind, t) for kind in _CONCERN_KINDS.get(reject.file, ()) for t in tokens]
    match reject.file:
        case "roles.csv":
            return [("roles-of", row.get("userSourcedId", "").strip())]
        case "demographics.csv":
            return [("demographics-of", row.get("sourcedId", "").strip())]
        case "enrollments.csv":
            found = [("enrollments-of", row.get("userSourcedId", "").strip())]
            if row.get("role", "").strip() != "student":  # a teacher row names the teacher
                found.append(("teachers-of", row.get("classSourcedId", "").strip()))
            return found
        case "users.csv":
            return [("agent-of", a) for a in _split_list(row.get("agentSourcedIds", ""))]
        case _:
            return []


def _dependencies(index: _Index, student: Record) -> list[tuple[str, str]]:
    sid = student.sourced_id
    deps = [("roles-of", sid), ("demographics-of", sid), ("enrollments-of", sid), ("agent-of", sid)]
    deps += [("roles-of", g) for g in index.agents_of.get(sid, [])]
    for enrollment in index.enrollments_of_user.get(sid, []):
        deps.append(("teachers-of", enrollment.text("classSourcedId") or ""))
    return deps


def _held_back_by(index: _Index, student: Record) -> Reject | None:
    for concern in _dependencies(index, student):
        if concern in index.rejected:
            return index.rejected[concern]
    return None


def _org_chain(index: _Index, org_id: str | None) -> list[Record]:
    chain: list[Record] = []
    org = index.get("orgs", org_id)
    while org is not None and org not in chain:
        chain.append(org)
        org = index.get("orgs", org.text("parentSourcedId"))
    return chain


def _org_key(org: Record) -> str:
    """The id an org goes by on the bus: its ``identifier`` (state or NCES code) else sourcedId."""
    return org.text("identifier") or org.sourced_id


def _student_org_ids(index: _Index, student: Record) -> list[str]:
    """Candidate orgs of a student, best first: primaryOrg, roles, orgSourcedIds, enrollments."""
    candidates = [student.text("primaryOrgSourcedId") or ""]
    roles = [r for r in index.roles_of.get(student.sourced_id, []) if r.text("role") == "student"]
    roles.sort(key=lambda r: r.text("roleType") != "primary")
    candidates += [r.text("orgSourcedId") or "" for r in roles]
    candidates += list(student.ids("orgSourcedIds"))
    enrollments = sorted(
        index.enrollments_of_user.get(student.sourced_id, []),
        key=lambda e: e.flag("primary") is not True,
    )
    candidates += [e.text("schoolSourcedId") or "" for e in enrollments]
    return [c for c in candidates if c]


@dataclass(frozen=True)
class _Place:
    school: Record | None
    district: Record | None


def _place_of(index: _Index, student: Record) -> _Place:
    school: Record | None = None
    district: Record | None = None
    for org_id in _student_org_ids(index, student):
        chain = _org_chain(index, org_id)
        school = school or next((o for o in chain if o.text("type") == "school"), None)
        district = district or next((o for o in chain if o.text("type") == "district"), None)
        if school is not None and district is not None:
            break
    return _Place(school, district or index.only_district)  # or: a single-district package


def _names(user: Record) -> dict[str, Any]:
    return {
        "first_name": user.text("givenName"),
        "middle_name": user.text("middleName"),
        "last_name": user.text("familyName"),
        "generation_suffix": None,
        "preferred_first_name": user.text("preferredGivenName") or user.text("preferredFirstName"),
        "preferred_middle_name": user.text("preferredMiddleName"),
        "preferred_last_name": user.text("preferredFamilyName"),
    }


def _identity(user: Record, state_id: str) -> dict[str, Any]:
    identifier = user.text("identifier")
    local = _typed_user_id(user, _LOCAL_ID_TYPES)
    if local is None and identifier != state_id:
        local = identifier
    return {
        "local_student_id": local,
        "state_student_id": state_id,
        "sourced_id": user.sourced_id,
        "username": user.text("username"),
        "sis_user_id": user.text("userMasterIdentifier"),
    }


def _demographics(demo: Record | None) -> dict[str, Any]:
    """The demographics section; all values null when there is no row or it is tobedeleted."""
    values: Mapping[str, Value] = {} if demo is None or demo.deleted else demo.values
    value = values.get
    return {
        "birth_date": value("birthDate"),
        "sex": value("sex"),
        "american_indian_or_alaska_native": value("americanIndianOrAlaskaNative"),
        "asian": value("asian"),
        "black_or_african_american": value("blackOrAfricanAmerican"),
        "native_hawaiian_or_other_pacific_islander": value("nativeHawaiianOrOtherPacificIslander"),
        "white": value("white"),
        "demographic_race_two_or_more_races": value("demographicRaceTwoOrMoreRaces"),
        "hispanic_or_latino_ethnicity": value("hispanicOrLatinoEthnicity"),
        "country_of_birth": value("countryOfBirthCode"),
        "state_of_birth": value("stateOfBirthAbbreviation"),
        "city_of_birth": value("cityOfBirth"),
        "home_language": None,
    }


def _person_name(user: Record) -> str:
    return " ".join(p for p in (user.text("givenName"), user.text("familyName")) if p)


def _contact(user: Record) -> dict[str, Any]:
    return {
        "email": user.text("email"),
        "phone": user.text("phone") or user.text("sms"),
        "address_line1": None,
        "address_line2": None,
        "city": None,
        "state": None,
        "postal_code": None,
    }


def _guardian(index: _Index, guardian: Record) -> dict[str, Any]:
    roles = index.roles(guardian) & _GUARDIAN_ROLES
    return {
        "guardian_id": guardian.text("identifier") or guardian.sourced_id,
        "relationship": min(roles) if roles else None,
        "first_name": guardian.text("givenName"),
        "last_name": guardian.text("familyName"),
        "email": guardian.text("email"),
        "phone": guardian.text("phone") or guardian.text("sms"),
        "address_line1": None,
        "address_line2": None,
        "city": None,
        "state": None,
        "postal_code": None,
    }


@dataclass
class _Joined:
    """The rows an event was built from (their newest dateLastModified is occurred_at)."""

    records: list[Record] = field(default_factory=list)

    def add(self, *records: Record | None) -> None:
        self.records.extend(r for r in records if r is not None)

    def newest_ms(self) -> int | None:
        stamps = [r.modified_ms for r in self.records if r.modified_ms is not None]
        return max(stamps) if stamps else None


def _section(
    index: _Index, enrollment: Record, joined: _Joined
) -> tuple[dict[str, Any], int | None]:
    """One scheduled section and the school year of its terms."""
    klass = index.get("classes", enrollment.text("classSourcedId"))
    if klass is None:  # cannot happen: references were checked
        raise LookupError(f"class of {enrollment.file}:{enrollment.line} is unknown")
    course = index.get("courses", klass.text("courseSourcedId"))
    terms = [index.get("academicSessions", t) for t in klass.ids("termSourcedIds")]
    known_terms = [t for t in terms if t is not None]
    teachers = index.teachers_of_class.get(klass.sourced_id, [])
    primary = [e for e in teachers if e.flag("primary")] or teachers
    teacher_users = [index.get("users", e.text("userSourcedId")) for e in primary]
    names = sorted(_person_name(t) for t in teacher_users if t is not None)
    joined.add(enrollment, klass, course, *known_terms, *teachers, *teacher_users)
    years = [t.number("schoolYear") for t in known_terms]
    section = {
        "section_id": klass.sourced_id,
        "course_code": course.text("courseCode") if course else None,
        "course_title": (course.text("title") if course else None) or klass.text("title"),
        "teacher_name": "; ".join(names) or None,
        "period": ", ".join(klass.ids("periods")) or None,
        "term": ", ".join(t.text("title") or t.sourced_id for t in known_terms) or None,
        "room": klass.text("location"),
    }
    return section, max((y for y in years if y is not None), default=None)


@dataclass(frozen=True)
class _ScheduleInfo:
    schedule: dict[str, Any] | None
    school_year: int | None
    homeroom: str | None


def _schedule(index: _Index, student: Record, joined: _Joined, delta: bool) -> _ScheduleInfo:
    """The schedule section; None when enrollments are absent, or a delta has none for them."""
    tables = index.tables
    if not tables.present("enrollments"):
        return _ScheduleInfo(None, None, None)
    mine = [
        e
        for e in index.enrollments_of_user.get(student.sourced_id, [])
        if e.text("role") == "student"
    ]
    if delta and student.sourced_id not in index.with_enrollment_rows:
        return _ScheduleInfo(None, None, None)
    sections: list[dict[str, Any]] = []
    years: list[int] = []
    homeroom: str | None = None
    for enrollment in mine:
        section, year = _section(index, enrollment, joined)
        sections.append(section)
        if year is not None:
            years.append(year)
        klass = index.get("classes", enrollment.text("classSourcedId"))
        if klass is not None and klass.text("classType") == "homeroom":
            homeroom = homeroom or klass.text("title")
    sections.sort(key=lambda s: str(s["section_id"]))
    year = max(years, default=None)
    return _ScheduleInfo({"school_year": year, "sections": sections}, year, homeroom)


def _enrollment(
    index: _Index, student: Record, place: _Place, info: _ScheduleInfo, joined: _Joined
) -> dict[str, Any]:
    school = place.school
    roles = [
        r
        for r in index.roles_of.get(student.sourced_id, [])
        if r.text("role") == "student"
        and (school is None or r.text("orgSourcedId") == school.sourced_id)
    ]
    roles.sort(key=lambda r: r.text("roleType") != "primary")
    role = roles[0] if roles else None
    joined.add(*roles)
    grades = student.ids("grades")
    return {
        "school_id": _org_key(school) if school else None,
        "school_name": school.text("name") if school else None,
        "school_year": info.school_year,
        "grade_level": grades[0] if grades else None,
        "entry_date": role.date("beginDate") if role else None,
        "exit_date": role.date("endDate") if role else None,
        "homeroom": info.homeroom,
        "counselor": None,
        "graduation_year": None,
        "enrollment_status": None,
    }


def _envelope(
    student_id: str, source_system: str, place: _Place, operation: Operation, occurred_at: int
) -> dict[str, Any]:
    district = place.district
    return {
        "event_id": "",  # set from the content by _finish
        "student_id": student_id,
        "source_system": source_system,
        "district_id": _org_key(district) if district else None,
        "school_id": _org_key(place.school) if place.school else None,
        "operation": operation,
        "occurred_at": occurred_at,
        # Sections OneRoster does not carry (or a DELETE) stay null.
        "names": None,
        "identity": None,
        "demographics": None,
        "enrollment": None,
        "contact": None,
        "guardians": None,
        "schedule": None,
        "attendance": None,
        "assessment": None,
        "transcript": None,
        "conduct": None,
        "programs": None,
        "special": None,
        "transportation": None,
        "restricted": None,
    }


# --------------------------------------------------------------------------- events

_EVENT_ID_NAMESPACE: Final[uuid.UUID] = uuid.UUID("6f1c2a52-3d0e-4b8e-9a57-0c6e3f1b9d41")

#: Event field -> (file key, column) it comes from, to place schema errors on a CSV column.
FIELD_SOURCES: Final[Mapping[str, tuple[str, str]]] = {
    "student_id": ("users", "identifier"),
    "district_id": ("users", "primaryOrgSourcedId"),
    "school_id": ("users", "primaryOrgSourcedId"),
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
    **{
        f"demographics.{re.sub(r'(?<!^)(?=[A-Z])', '_', flag).lower()}": ("demographics", flag)
        for flag in _RACE_FLAGS
    },
}


@dataclass(frozen=True)
class _Draft:
    """An event value before validation, and the rows that locate its errors."""

    student: Record
    value: dict[str, Any]
    sources: Mapping[str, Record]


def _build_upsert(
    index: _Index, student: Record, state_id: str, source_system: str, fallback_ms: int
) -> _Draft:
    manifest = index.tables.manifest
    joined = _Joined([student])
    place = _place_of(index, student)
    joined.add(place.school, place.district)
    info = _schedule(index, student, joined, manifest.mode_of("enrollments") == "delta")
    guardians = index.guardians(student)
    joined.add(*guardians)
    demo = index.demographics_of.get(student.sourced_id)
    joined.add(demo)
    value = _envelope(state_id, source_system, place, "UPSERT", fallback_ms)
    value["names"] = _names(student)
    value["identity"] = _identity(student, state_id)
    # In a delta, a section without rows in the package is "not part of this change" (null).
    if manifest.mode_of("demographics") == "bulk" or demo is not None:
        value["demographics"] = _demographics(demo)
    value["enrollment"] = _enrollment(index, student, place, info, joined)
    value["contact"] = _contact(student)
    value["guardians"] = [_guardian(index, g) for g in guardians]
    value["schedule"] = info.schedule
    value["occurred_at"] = joined.newest_ms() or fallback_ms  # every joined row is in by now
    sources = {"users": student} | ({"demographics": demo} if demo is not None else {})
    return _Draft(student, value, sources)


def _build_delete(index: _Index, student: Record, state_id: str, source_system: str) -> _Draft:
    place = _place_of(index, student)
    occurred = student.modified_ms or 0  # a delta row always has dateLastModified
    value = _envelope(state_id, source_system, place, "DELETE", occurred)
    return _Draft(student, value, {"users": student})


def _finish(value: dict[str, Any]) -> dict[str, Any]:
    """Set a deterministic event_id: the same content at the same time gets the same id."""
    name = f"{value['source_system']}|{value['student_id']}|{value['occurred_at']}|"
    value["event_id"] = str(uuid.uuid5(_EVENT_ID_NAMESPACE, name + fingerprint(value)))
    return value


def _leaves(value: Any, path: str = "") -> Iterator[tuple[str, tuple[str | int, ...]]]:
    """Every non-null leaf of an event value: (field path as in the catalog, keys to reach it).

    A list of plain values (``programs``) is one leaf.
    """
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


def _refused_leaf(value: dict[str, Any], parsed: Any) -> tuple[str, Any] | None:
    """The leaf whose value the schema refuses: the one that, set to null, makes it valid."""
    for path, keys in _leaves(value):
        probe = copy.deepcopy(value)
        holder: Any = probe
        for key in keys[:-1]:
            holder = holder[key]
        refused = holder[keys[-1]]
        holder[keys[-1]] = None
        if _is_valid(probe, parsed):
            return path, refused
    return None


def _is_valid(value: dict[str, Any], parsed: Any) -> bool:
    """fastavro validation without building error reports (much faster when valid)."""
    try:
        return bool(validate(value, parsed, raise_errors=False))
    except (ValueError, TypeError):  # a logical type that cannot convert the value
        return False


def _schema_error(value: dict[str, Any], parsed: Any) -> Exception:
    try:
        validate(value, parsed, raise_errors=True)
    except (ValidationError, ValueError, TypeError) as exc:
        return exc
    return ValueError("invalid")


def _schema_reject(draft: _Draft, schema: Mapping[str, Any], parsed: Any) -> Reject:
    """Place a schema error on the CSV row and column the refused value came from."""
    found = _refused_leaf(draft.value, parsed)
    if found is not None:
        path, refused = found
        detail = f"{path} {refused!r}"
    else:
        error = _schema_error(draft.value, parsed)
        errors = getattr(error, "errors", None)
        first = errors[0] if isinstance(errors, list | tuple) and errors else None
        prefix = f"{schema.get('namespace', '')}.{schema.get('name', '')}."
        path = str(getattr(first, "field", "") or "").removeprefix(prefix)
        detail = f"{path} {getattr(first, 'datum', None)!r}" if path else str(error)
    file_key, column = FIELD_SOURCES.get(path, ("users", WHOLE_ROW))
    row = draft.sources.get(file_key)
    if row is None:
        row, column = draft.student, WHOLE_ROW
    reason = f"the event schema refuses {detail}"
    return Reject(row.file, row.line, column, reason, row.raw)


def _students(index: _Index) -> Iterator[Record]:
    """users.csv rows that become events: active students, and deleted students (or deleted
    users whose roles the package does not say, since missing a delete is the worse error)."""
    for user in index.tables.records.get("users", []):
        roles = index.roles(user)
        if "student" in roles or (user.deleted and not roles):
            yield user


def _draft_events(
    index: _Index, source_system: str, fallback_ms: int, default_district: str | None
) -> tuple[list[_Draft], list[Reject]]:
    drafts: list[_Draft] = []
    rejects: list[Reject] = []
    for student in _students(index):
        state_id = state_student_id(student)
        if not state_id:
            rejects.append(
                Reject(
                    student.file,
                    student.line,
                    "identifier",
                    "no state student id: fill identifier, or userIds with {stateID:...}",
                    student.raw,
                )
            )
            continue
        held = None if student.deleted else _held_back_by(index, student)
        if held is not None:
            reason = f"{_HELD_BACK} ({held.file}:{held.line})"
            rejects.append(Reject(student.file, student.line, WHOLE_ROW, reason, student.raw))
            continue
        if student.deleted:
            draft = _build_delete(index, student, state_id, source_system)
        else:
            draft = _build_upsert(index, student, state_id, source_system, fallback_ms)
        if draft.value["district_id"] is None:
            if default_district is None:
                rejects.append(
                    Reject(
                        student.file,
                        student.line,
                        "primaryOrgSourcedId",
                        "cannot tell the student's district: link its school to an org of "
                        "type district (parentSourcedId in orgs.csv)",
                        student.raw,
                    )
                )
                continue
            draft.value["district_id"] = default_district
        drafts.append(draft)
    return _drop_shared_keys(drafts, rejects)


def _drop_shared_keys(
    drafts: list[_Draft], rejects: list[Reject]
) -> tuple[list[_Draft], list[Reject]]:
    """Reject every student whose state id another student row also has: the key is ambiguous."""
    lines: dict[str, list[int]] = {}
    for draft in drafts:
        lines.setdefault(draft.value["student_id"], []).append(draft.student.line)
    kept: list[_Draft] = []
    for draft in drafts:
        student_id = draft.value["student_id"]
        others = [n for n in lines[student_id] if n != draft.student.line]
        if not others:
            kept.append(draft)
            continue
        reason = (
            f"state student id {student_id!r} is also on users.csv line "
            f"{', '.join(str(n) for n in others)}"
        )
        row = draft.student
        rejects.append(Reject(row.file, row.line, "identifier", reason, row.raw))
    return kept, rejects


def _validated(
    drafts: Iterable[_Draft], schema: Mapping[str, Any]
) -> tuple[list[StudentEvent], list[Reject]]:
    parsed = fastavro.parse_schema(dict(schema))
    events: list[StudentEvent] = []
    rejects: list[Reject] = []
    for draft in drafts:
        if not _is_valid(draft.value, parsed):
            rejects.append(_schema_reject(draft, schema, parsed))
            continue
        value = _finish(draft.value)
        events.append(StudentEvent(key=value["student_id"], value=value))
    return events, rejects


def _reject_order(reject: Reject) -> tuple[int, int]:
    """Rejects are listed by file (in reading order) and line."""
    files = [KNOWN_FILES[key] for key in READ_ORDER]
    position = files.index(reject.file) if reject.file in files else len(files)
    return position, reject.line


def _now_ms() -> int:
    return int(dt.datetime.now(dt.UTC).timestamp() * 1000)


def read_package(
    path: Path | str,
    *,
    schema: Mapping[str, Any] | None = None,
    source_system: str | None = None,
    default_district_id: str | None = None,
    fallback_time_ms: int | None = None,
    write_rejects_file: bool = True,
) -> PackageReadResult:
    """Read a OneRoster 1.2 CSV package (directory or zip) into one event per student.

    - ``schema``: the ``student_record_changed`` schema (default: loaded from the schemas dir);
    - ``source_system``: overrides the manifest's ``source.systemName`` (default ``oneroster``);
    - ``default_district_id``: district for students whose orgs do not lead to a district org
      (otherwise, the one district org of a single-district package is used);
    - ``fallback_time_ms``: occurred_at for students none of whose rows has a
      dateLastModified (a bulk export often leaves it blank); default: now;
    - ``write_rejects_file``: write ``<package>.rejects.csv`` beside the package (always, so a
      clean re-export leaves no stale rejects).

    Raises :class:`OneRosterPackageError` when the package cannot be read at all.
    """
    package_path = Path(path)
    package = _Package(package_path)
    try:
        manifest = _read_manifest(package)
        tables = _read_tables(package, manifest)
    finally:
        package.close()
    _check_references(tables)
    index = _Index.build(tables)
    system = source_system or manifest.source_system or "oneroster"
    fallback = fallback_time_ms if fallback_time_ms is not None else _now_ms()
    drafts, join_rejects = _draft_events(index, system, fallback, default_district_id)
    if schema is None:
        schema = load_schema("student_record_changed")
    events, schema_rejects = _validated(drafts, schema)
    rejects = sorted([*tables.rejects, *join_rejects, *schema_rejects], key=_reject_order)
    rejects_path: Path | None = None
    if write_rejects_file:
        rejects_path = rejects_path_for(package_path)
        try:
            write_rejects(rejects_path, rejects)
        except OSError as exc:
            raise OneRosterPackageError(
                f"cannot write the rejects file {rejects_path}: {exc}; make its directory "
                "writable or pass write_rejects_file=False"
            ) from exc
    return PackageReadResult(
        events=events,
        rejects=rejects,
        rows_read=tables.rows_read,
        mode=manifest.mode,
        source_system=system,
        rejects_path=rejects_path,
    )
