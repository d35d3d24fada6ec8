"""Bulk consent intake: a CSV file of parents' and districts' decisions, one event per row.

Columns (header row required, any order; unknown columns are refused):

==============  =========================================================================
kind            grant, revoke, opt-out (one partner, or all sharing without partner),
                directory-opt-out, district-opt-out
student_id      the student (every kind but district-opt-out)
district_id     the district
partner         the partner (grant, revoke, district-opt-out; opt-out of one partner)
categories      data categories, separated by ``;`` (grant; revoke: none = every category)
effective_at    when the decision takes effect: ISO date or date-time (UTC unless an
                offset is given) or epoch ms
expires_at      optional, grants only
purpose         optional, grants only
recorded_by     who recorded it (default ``csv-import``)
granted_by      grants (required): ``guardian`` or ``student`` (the eligible student, of
                age); revokes (optional): who revokes
guardian_id     grants by a guardian (required): the guardian's id in the SIS
signed_at       grants (required): when the form was signed, as effective_at
method          grants (required): ``paper``, ``portal``, ``email`` or ``other``
document_ref    grants (required): a reference to the signed document (scan or portal
                submission id)
==============  =========================================================================

A grant without its provenance (FERPA 99.30: who gave it, when it was signed, how, and the
document) is rejected, the reject naming the first missing column. From the student's
coming of age (``streams.policy.majority``) only a grant with ``granted_by`` ``student``
counts.

Every row becomes a :class:`~streams.policy.consent.ConsentEvent` whose id is derived from
the file's name and the row's content, so importing the same file twice publishes the same
events (the processor keeps the first). A row that cannot become an event is a
:class:`~connectors.source.rejects.Reject` (file, line, column, reason), never a silent skip.
"""

from __future__ import annotations

import csv
import io
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from connectors.source.rejects import WHOLE_ROW, Reject
from streams.errors import HallpassError
from streams.policy.consent import (
    ConsentEvent,
    ConsentKind,
    GrantedBy,
    InvalidConsentEventError,
    SigningMethod,
    missing_provenance,
)
from streams.policy.instants import InstantError, parse_instant

COLUMNS = (
    "kind",
    "student_id",
    "district_id",
    "partner",
    "categories",
    "effective_at",
    "expires_at",
    "purpose",
    "recorded_by",
)
#: the provenance columns (optional in the header: a file of opt-outs needs none of them)
PROVENANCE_COLUMNS = ("granted_by", "guardian_id", "signed_at", "method", "document_ref")
ALL_COLUMNS = COLUMNS + PROVENANCE_COLUMNS
GRANTED_BY = {"guardian": GrantedBy.GUARDIAN, "student": GrantedBy.ELIGIBLE_STUDENT}
METHODS = {m.value.lower(): m for m in SigningMethod}
REQUIRED = ("kind", "district_id", "effective_at")
KINDS: dict[str, ConsentKind] = {
    "grant": ConsentKind.GRANT,
    "revoke": ConsentKind.REVOKE,
    "opt-out": ConsentKind.ALL_OPT_OUT,
    "directory-opt-out": ConsentKind.DIRECTORY_OPT_OUT,
    "district-opt-out": ConsentKind.DISTRICT_OPT_OUT,
}
_T = TypeVar("_T")
#: ids of imported events: uuid5 of this namespace and the file name, line and content
_NAMESPACE = uuid.UUID("6f1d3f2e-8c0b-5b7a-9d51-1c0c1f4a7e21")


class ConsentFileError(HallpassError, ValueError):
    """The file as a whole cannot be read (no header, unknown or missing columns)."""


@dataclass
class ConsentFile:
    """The events and rejects of one consent CSV file."""

    events: list[ConsentEvent] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)


def read_consent_csv(path: Path) -> ConsentFile:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise ConsentFileError(f"cannot read {path}: {exc.strerror}") from exc
    except UnicodeDecodeError as exc:
        raise ConsentFileError(f"{path} is not UTF-8 text ({exc.reason})") from exc
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = [h.strip() for h in reader.fieldnames or []]
    if not header:
        raise ConsentFileError(f"{path} is empty: a header row ({', '.join(COLUMNS)}) is needed")
    unknown = [h for h in header if h not in ALL_COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        raise ConsentFileError(
            f"{path.name}: "
            + "; ".join(
                ([f"unknown columns {', '.join(unknown)}"] if unknown else [])
                + ([f"missing columns {', '.join(missing)}"] if missing else [])
            )
            + f" (the columns: {', '.join(ALL_COLUMNS)})"
        )
    out = ConsentFile()
    for line, row in _rows(reader):
        values = {(k or "").strip(): (v or "").strip() for k, v in row.items()}
        try:
            out.events.append(_event(path.name, line, values))
        except _RowProblem as problem:
            out.rejects.append(Reject(path.name, line, problem.column, problem.reason, values))
    return out


class _RowProblem(Exception):
    def __init__(self, column: str, reason: str) -> None:
        super().__init__(reason)
        self.column, self.reason = column, reason


def _rows(reader: csv.DictReader[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Each row with the physical line it starts on (a quoted cell may span lines)."""
    last = 1
    for row in reader:
        start, last = last + 1, reader.line_num
        yield start, row


def _time(values: dict[str, str], column: str) -> int | None:
    raw = values.get(column, "")
    if not raw:
        return None
    try:
        return parse_instant(raw)
    except InstantError as exc:
        raise _RowProblem(column, str(exc)) from exc


def _event(file: str, line: int, values: dict[str, str]) -> ConsentEvent:
    kind_text = values.get("kind", "").lower()
    kind = KINDS.get(kind_text)
    if kind is None:
        raise _RowProblem("kind", f"unknown kind {kind_text!r} (one of {', '.join(KINDS)})")
    partner = values.get("partner") or None
    if kind is ConsentKind.ALL_OPT_OUT and partner:
        kind = ConsentKind.PARTNER_OPT_OUT
    effective = _time(values, "effective_at")
    if effective is None:
        raise _RowProblem("effective_at", "missing: when does the decision take effect?")
    categories = frozenset(c.strip() for c in values.get("categories", "").split(";") if c.strip())
    # provenance columns count only when filled: a row of a file written before them keeps
    # its event id
    content = "|".join(f"{c}={values.get(c, '')}" for c in COLUMNS) + "".join(
        f"|{c}={values[c]}" for c in PROVENANCE_COLUMNS if values.get(c)
    )
    try:
        event = ConsentEvent(
            event_id=str(uuid.uuid5(_NAMESPACE, f"{file}|{content}")),
            kind=kind,
            district_id=values.get("district_id", ""),
            effective_at=effective,
            student_id=values.get("student_id") or None,
            partner=partner,
            categories=categories,
            purpose=values.get("purpose") or None,
            expires_at=_time(values, "expires_at"),
            recorded_by=values.get("recorded_by") or "csv-import",
            source_system=f"csv:{file}",
            granted_by=_choice(values, "granted_by", GRANTED_BY),
            guardian_id=values.get("guardian_id") or None,
            signed_at=_time(values, "signed_at"),
            method=_choice(values, "method", METHODS),
            document_ref=values.get("document_ref") or None,
        )
    except InvalidConsentEventError as exc:
        column = (
            "categories"
            if "categor" in str(exc)
            else "partner"
            if "partner" in str(exc)
            else "student_id"
            if "student" in str(exc)
            else "guardian_id"
            if "guardian_id" in str(exc)
            else "granted_by"
            if "granted_by" in str(exc)
            else WHOLE_ROW
        )
        raise _RowProblem(column, str(exc)) from exc
    missing = missing_provenance(event)
    if missing:
        raise _RowProblem(
            missing[0],
            f"a grant needs its provenance: {', '.join(missing)} missing (who gave it, "
            "guardian or student, and the guardian's id; when it was signed; how; and a "
            "reference to the signed document)",
        )
    return event


def _choice(values: dict[str, str], column: str, choices: Mapping[str, _T]) -> _T | None:
    raw = values.get(column, "").strip().lower()
    if not raw:
        return None
    found = choices.get(raw)
    if found is None:
        raise _RowProblem(column, f"not one of {', '.join(choices)}")
    return found
