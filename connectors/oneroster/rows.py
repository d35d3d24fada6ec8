"""CSV rows of one file -> checked :class:`Record` values, rejects and warnings.

Tolerance without silence:

- headers match case-insensitively, with each version's aliases; blank trailing header
  columns are dropped; a column the connector does not know is named once as a warning
  (``metadata.*`` extension columns too, unless the source configuration maps them);
- a row with the wrong number of fields is a reject of that row only; empty fields after the
  last column (a trailing comma) are dropped with one warning per file;
- a required value that is empty or bad rejects the row; a bad optional value becomes null
  with a warning naming the row and column.

Values of columns whose name suggests a secret are never quoted in a reason.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import IO, Final, Literal

from connectors.oneroster.columns import (
    COMMON,
    BadValue,
    FileSpec,
    ParseOptions,
    Value,
    canonical_names,
    parse_datetime_ms,
    parse_value,
)
from connectors.oneroster.package import FileMode, OneRosterPackageError
from connectors.source.rejects import WHOLE_ROW, Reject, is_secret_column
from streams.policy.input_limits import date_problem, id_problem, is_name_field, text_problem

Status = Literal["active", "tobedeleted"]
_SURROGATE = re.compile("[\udc80-\udcff]")


@dataclass(frozen=True)
class RawRow:
    """One CSV record as text: ``fields`` maps canonical column names to the raw values."""

    file: str
    line: int
    fields: dict[str, str]
    #: the mapped extension columns among ``fields``
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Record:
    """A row that passed its column checks: parsed values by canonical column name.

    ``line`` 0 marks a row taken from the stored state of the source, not from this package.
    """

    file: str
    line: int
    sourced_id: str
    status: Status
    modified_ms: int | None
    values: Mapping[str, Value]
    raw: Mapping[str, str] = field(repr=False, compare=False)

    @property
    def deleted(self) -> bool:
        return self.status == "tobedeleted"

    @property
    def stored(self) -> bool:
        return self.line == 0

    @property
    def where(self) -> str:
        if self.line:
            return f"{self.file}:{self.line}"
        return f"{self.file} (stored {self.sourced_id})"

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


def shown(column: str, raw: str) -> str:
    """How a value may appear in a message: quoted, unless its column suggests a secret."""
    return "[redacted]" if is_secret_column(column) else repr(raw)


# --------------------------------------------------------------------------- header


@dataclass(frozen=True)
class Header:
    """A file's header mapped to canonical names; ``names[i]`` is None for an ignored column,
    ``shown[i]`` the name its values go by in the rejects and warnings files."""

    names: tuple[str | None, ...]
    extensions: tuple[str, ...]
    shown: tuple[str, ...] = ()


def map_header(
    spec: FileSpec,
    raw: Sequence[str],
    file: str,
    warnings: list[Reject],
    is_extension: Callable[[str], bool],
) -> Header:
    """Match header names to canonical columns; warn once about each column not read."""
    header = [h.strip() for h in raw]
    while header and not header[-1]:  # blank trailing columns (a trailing comma)
        header.pop()
    if len(header) < len(raw):
        warnings.append(
            Reject(
                file,
                1,
                WHOLE_ROW,
                f"{len(raw) - len(header)} blank column name(s) at the end of the header: ignored",
                {},
            )
        )
    known = canonical_names(spec.key)
    names: list[str | None] = []
    extensions: list[str] = []
    for position, name in enumerate(header, start=1):
        canonical = known.get(name.lower())
        if canonical is not None:
            names.append(canonical)
            continue
        names.append(None)
        if not name:
            warnings.append(
                Reject(
                    file, 1, f"#{position}", "column without a name: its values are not read", {}
                )
            )
        elif name.lower().startswith("metadata.") and is_extension(name):
            names[-1] = name
            extensions.append(name)
        elif name.lower().startswith("metadata."):
            warnings.append(
                Reject(
                    file,
                    1,
                    name,
                    "extension column not mapped by the source "
                    "configuration (extensions): its values are not published",
                    {},
                )
            )
        else:
            warnings.append(Reject(file, 1, name, "unknown column: its values are not read", {}))
    mapped = [n for n in names if n is not None]
    duplicates = sorted({n for n in mapped if mapped.count(n) > 1})
    if duplicates:
        raise OneRosterPackageError(
            f"{file}:1: columns {', '.join(duplicates)} appear more than once (an alias counts "
            "as the same column); keep one"
        )
    shown = tuple(n or h or f"#{i}" for i, (n, h) in enumerate(zip(names, header, strict=True), 1))
    return Header(tuple(names), tuple(extensions), shown)


# --------------------------------------------------------------------------- raw rows


def _decoded_lines(stream: IO[bytes], bad_lines: set[int]) -> Iterator[str]:
    """Physical lines of ``stream`` as text, recording the numbers of non-UTF-8 ones.

    Undecodable bytes are kept as surrogate escapes so the rejects file can show them.
    """
    for number, raw in enumerate(stream, start=1):
        chunk = raw[3:] if number == 1 and raw.startswith(b"\xef\xbb\xbf") else raw
        try:
            yield chunk.decode("utf-8")
        except UnicodeDecodeError:
            bad_lines.add(number)
            yield chunk.decode("utf-8", "surrogateescape")


def iter_raw_rows(
    spec: FileSpec,
    stream: IO[bytes],
    required: Sequence[str],
    warnings: list[Reject],
    is_extension: Callable[[str], bool],
) -> Iterator[RawRow | Reject]:
    """The records of one CSV file: well-formed ones as :class:`RawRow`, others as rejects.

    ``line`` is the physical line where a record starts. Raises
    :class:`OneRosterPackageError` for an unreadable header, or one that lacks a column named
    in ``required`` while the file has rows.
    """
    name = spec.csv_name
    bad_lines: set[int] = set()
    reader = csv.reader(_decoded_lines(stream, bad_lines), strict=False)
    try:
        raw_header = next(reader)
    except StopIteration:
        warnings.append(
            Reject(name, 1, WHOLE_ROW, "empty file (not even a header): read as no rows", {})
        )
        return
    except csv.Error as exc:
        raise OneRosterPackageError(f"{name}:1: cannot read the header ({exc})") from exc
    if bad_lines:
        raise OneRosterPackageError(f"{name}:1: the header is not UTF-8; save the file as UTF-8")
    header = map_header(spec, raw_header, name, warnings, is_extension)
    width = len(header.names)
    missing = [c for c in required if c not in header.names]
    trailing = 0
    checked_header = False
    while True:
        start = reader.line_num + 1
        try:
            values = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            yield Reject(name, start, WHOLE_ROW, f"malformed CSV: {exc}", {})
            continue
        if not "".join(values).strip():
            continue  # a blank line, or one of empty fields (",,,,")
        if not checked_header and missing:
            raise OneRosterPackageError(
                f"{name}:1: the header lacks the column(s) {', '.join(missing)}, whose values "
                "are required; export the file with all its OneRoster columns"
            )
        checked_header = True
        if len(values) > width and not any(v.strip() for v in values[width:]):
            values = values[:width]
            trailing += 1
        fields = dict(zip(header.shown, values, strict=False))
        if len(values) != width:
            reason = f"row has {len(values)} fields but the header has {width}"
            yield Reject(name, start, WHOLE_ROW, reason, fields)
            continue
        if bad_lines and any(n in bad_lines for n in range(start, reader.line_num + 1)):
            column = next((h for h, v in fields.items() if _SURROGATE.search(v)), WHOLE_ROW)
            reason = "value is not valid UTF-8 (bytes shown as \\xNN); save the export as UTF-8"
            yield Reject(name, start, column, reason, fields)
            continue
        yield RawRow(name, start, fields, header.extensions)
    if trailing:
        warnings.append(
            Reject(
                name,
                0,
                WHOLE_ROW,
                f"{trailing} row(s) end with empty fields "
                "beyond the header (a trailing comma): ignored",
                {},
            )
        )


# --------------------------------------------------------------------------- records


class ColumnError(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(f"{column}: {reason}")
        self.column = column
        self.reason = reason


def _check_common(
    row: RawRow, mode: FileMode, options: ParseOptions, warn: Callable[[str, str], None]
) -> tuple[str, Status, int | None]:
    """sourcedId, status and dateLastModified of a row, by the rules of its file's mode.

    Bulk: status empty or ``active``; dateLastModified optional (a bad one is a warning).
    Delta: status ``active`` or ``tobedeleted`` and dateLastModified required.
    """
    sourced_id = row.fields.get("sourcedId", "").strip()
    if not sourced_id:
        raise ColumnError("sourcedId", "required value is empty")
    status = row.fields.get("status", "").strip().lower()
    if mode == "delta":
        if not status:
            raise ColumnError(
                "status", "required value is empty (a delta row is active or tobedeleted)"
            )
        if status not in ("active", "tobedeleted"):
            raise ColumnError(
                "status",
                f"unknown status {row.fields['status'].strip()!r} (expected active or tobedeleted)",
            )
    elif status not in ("", "active"):
        reason = (
            "tobedeleted is only allowed in a delta file (the manifest says bulk)"
            if status == "tobedeleted"
            else f"unknown status {row.fields['status'].strip()!r} (expected active or empty "
            "in a bulk file)"
        )
        raise ColumnError("status", reason)
    final: Status = "tobedeleted" if status == "tobedeleted" else "active"
    modified = row.fields.get("dateLastModified", "").strip()
    if not modified:
        if mode == "delta":
            raise ColumnError("dateLastModified", "required value is empty in a delta file")
        return sourced_id, final, None
    try:
        return sourced_id, final, parse_datetime_ms(modified, options)
    except BadValue as exc:
        if mode == "delta":
            raise ColumnError("dateLastModified", str(exc)) from None
        warn("dateLastModified", f"{exc}: read as empty")
        return sourced_id, final, None


def _door_problem(value: Value) -> str | None:
    """Why a parsed value breaks an input limit (streams.policy.input_limits), or None: a
    date outside the sane range, an id list with an empty or control-character id."""
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return date_problem(value, dt.date.today())
    if isinstance(value, tuple):
        for item in value:
            ident = item.partition(":")[2] if ":" in item else item
            refused = id_problem(ident) if isinstance(item, str) else None
            if refused is not None:
                return f"an id {refused}"
    return None


def to_record(
    spec: FileSpec,
    row: RawRow,
    mode: FileMode,
    required: Sequence[str],
    options: ParseOptions,
    warnings: list[Reject],
) -> Record:
    """Check ``row`` against ``spec``; raise :class:`ColumnError` naming the first bad column.

    A ``tobedeleted`` row needs only sourcedId, status and dateLastModified; its other values
    are read where they parse. A bad optional value is null plus a warning.
    """

    def warn(column: str, reason: str) -> None:
        warnings.append(Reject(row.file, row.line, column, reason, row.fields))

    sourced_id, status, modified = _check_common(row, mode, options, warn)
    refused = id_problem(sourced_id)
    if refused is not None:
        raise ColumnError("sourcedId", refused)
    deleted = status == "tobedeleted"
    values: dict[str, Value] = {}
    fields = row.fields
    for column in spec.columns:
        raw = fields.get(column.name)
        text = raw.strip() if raw else ""
        if not text:
            if not deleted and column.name in required:
                raise ColumnError(column.name, "required value is empty")
            continue
        if column.kind == "text":
            refused = text_problem(text, is_name_field(column.name.lower()))
            if refused is not None:  # the rule, never the value
                raise ColumnError(column.name, refused)
            values[column.name] = text
            continue
        try:
            values[column.name] = parse_value(column, text, options)
            refused = _door_problem(values[column.name])
            if refused is not None:
                raise ColumnError(column.name, refused)
        except BadValue as exc:
            reason = str(exc) if not is_secret_column(column.name) else "value does not parse"
            if column.name in required and not deleted:
                raise ColumnError(column.name, reason) from None
            if not deleted:
                warn(column.name, f"{reason}: read as empty (optional)")
    if spec.key == "users" and values.get("userId"):  # 1.0's single id joins the typed list
        ids = values.get("userIds")
        prior = ids if isinstance(ids, tuple) else ()
        values["userIds"] = (*prior, f"userId:{values['userId']}")
    for name in row.extensions:
        raw = row.fields.get(name, "").strip()
        if raw:
            values[name] = raw
    return Record(
        file=row.file,
        line=row.line,
        sourced_id=sourced_id,
        status=status,
        modified_ms=modified,
        values=values,
        raw=row.fields,
    )


COMMON_COLUMNS: Final = COMMON
