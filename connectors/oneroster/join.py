"""Joining the entity view into one ``StudentRecordChanged`` value per student.

The student key follows the source's explicit key rule (:class:`~connectors.source.config.
KeyRule`) and the event says which identifier it is (``student_id_type``). A login (the
user's ``username`` or ``email``) is never published as an id: a rule that yields one rejects
the row. ``identity.state_student_id`` is filled only from a state id (the key when the rule
says it is one, else a ``{stateID:...}`` entry of ``userIds``).

The district comes from the org tree (the school's parent of type district, or the one district
org of the view), else from the source configuration.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from connectors.oneroster.columns import (
    RACE_FLAGS,
    ParseOptions,
    Value,
    parse_bool,
    parse_date,
)
from connectors.oneroster.rows import Record
from connectors.oneroster.tables import KEY_OF_FILE, Tables
from connectors.source.config import KeyRule, SourceConfig, extension_type
from connectors.source.rejects import Reject
from streams.policy.catalog import field_catalog, load_schema

Operation = Literal["UPSERT", "DELETE"]

GUARDIAN_ROLES: Final[frozenset[str]] = frozenset({"parent", "guardian", "relative"})
_STATE_ID_TYPES: Final[frozenset[str]] = frozenset({"stateid", "statestudentid", "state"})
_LOCAL_ID_TYPES: Final[frozenset[str]] = frozenset({"localid", "localstudentid", "studentnumber"})
#: 1.0's single ``userId`` and the SIS's own ids
_SIS_ID_TYPES: Final[frozenset[str]] = frozenset({"sis", "sisid", "userid"})
HELD_BACK = "student not published: a row it joins was rejected"

#: ``student_key.from`` values OneRoster understands; those needing ``type``.
KEY_FIELDS: Final[tuple[str, ...]] = ("userIds", "userMasterIdentifier", "identifier", "sourcedId")
TYPED_KEY_FIELDS: Final[tuple[str, ...]] = ("userIds",)
EXTENSION_ENTITIES: Final[tuple[str, ...]] = ("users", "demographics")


def _id_type(kind: str) -> str:
    return re.sub(r"[^a-z]", "", kind.lower())


def typed_user_id(record: Record, types: frozenset[str]) -> str | None:
    for entry in record.ids("userIds"):
        kind, _, ident = entry.partition(":")
        if _id_type(kind) in types and ident:
            return ident
    return None


def _logins(user: Record) -> set[str]:
    found = {user.text("username") or "", user.text("email") or ""}
    email = user.text("email") or ""
    if "@" in email:
        found.add(email.split("@", 1)[0])
    return {f.lower() for f in found if f}


@dataclass(frozen=True)
class KeyProblem:
    column: str
    reason: str


def student_key(user: Record, rule: KeyRule, source_id: str) -> str | KeyProblem:
    """The student key of a users row by ``rule``, or why there is none."""
    if rule.field == "sourcedId":
        return f"{source_id}:{user.sourced_id}"
    if rule.field == "userIds":
        value = typed_user_id(user, frozenset({_id_type(rule.id_type or "")}))
        column = "userIds"
        missing = (
            f"no student key: the key rule is {rule.describe()} and userIds has no "
            f"{{{rule.id_type}:...}} entry; fill it, or set student_key in the source "
            "configuration (--source)"
        )
    else:
        value = user.text(rule.field)
        column = rule.field
        missing = (
            f"no student key: the key rule is {rule.describe()} and {rule.field} is "
            "empty; fill it, or set student_key in the source configuration (--source)"
        )
    if not value:
        return KeyProblem(column, missing)
    if value.lower() in _logins(user):
        return KeyProblem(
            column,
            f"the key rule {rule.describe()} gives the student's login "
            "(username or email); a login is never published as an id: choose "
            "another student_key in the source configuration",
        )
    return value


@dataclass
class Index:
    """Lookups over the entity view."""

    tables: Tables
    roles_of: dict[str, list[Record]] = field(default_factory=dict)
    enrollments_of_user: dict[str, list[Record]] = field(default_factory=dict)
    teachers_of_class: dict[str, list[Record]] = field(default_factory=dict)
    only_district: Record | None = None
    agents_of: dict[str, list[str]] = field(default_factory=dict)
    #: rejected package rows by what they concern, e.g. ("enrollments-of", user id)
    rejected: dict[tuple[str, str], Reject] = field(default_factory=dict)
    #: sections by class sourcedId, built once
    sections: dict[str, Any] = field(default_factory=dict)
    #: tobedeleted rows of this package by the user they concern (their time counts)
    deleted_rows_of: dict[str, list[Record]] = field(default_factory=dict)
    #: file -> users with a row in this package (for files only partly known)
    in_package: dict[str, set[str]] = field(default_factory=dict)

    @classmethod
    def build(cls, tables: Tables) -> Index:
        index = cls(tables)
        for role in tables.view["roles"].values():
            index.roles_of.setdefault(role.text("userSourcedId") or "", []).append(role)
        for enrollment in tables.view["enrollments"].values():
            user_id = enrollment.text("userSourcedId") or ""
            index.enrollments_of_user.setdefault(user_id, []).append(enrollment)
            if enrollment.text("role") == "teacher":
                class_id = enrollment.text("classSourcedId") or ""
                index.teachers_of_class.setdefault(class_id, []).append(enrollment)
        districts = [o for o in tables.view["orgs"].values() if o.text("type") == "district"]
        if len(districts) == 1:
            index.only_district = districts[0]
        for user in tables.view["users"].values():
            for agent in user.ids("agentSourcedIds"):  # links are read in both directions
                index.agents_of.setdefault(agent, []).append(user.sourced_id)
                index.agents_of.setdefault(user.sourced_id, []).append(agent)
        index.in_package["demographics"] = {
            r.sourced_id for r in tables.package.get("demographics", [])
        }
        index.in_package["enrollments"] = {
            r.text("userSourcedId") or "" for r in tables.package.get("enrollments", [])
        }
        for key in ("roles", "demographics", "enrollments"):
            for row in tables.package.get(key, []):
                if row.deleted:
                    owner = (
                        row.sourced_id if key == "demographics" else row.text("userSourcedId") or ""
                    )
                    index.deleted_rows_of.setdefault(owner, []).append(row)
        for reject in tables.rejects:
            place = (reject.file, reject.line)
            if place in tables.superseded or place in tables.misaligned:
                continue
            for concern in _concerns(reject):
                index.rejected.setdefault(concern, reject)
        return index

    def get(self, key: str, sourced_id: str | None) -> Record | None:
        return self.tables.get(key, sourced_id)

    def covers(self, key: str, student: Record) -> bool:
        """Whether the view says all of ``student``'s rows of file ``key`` (else its section
        is null: not part of this change)."""
        return key in self.tables.complete or student.sourced_id in self.in_package.get(key, ())

    def roles(self, user: Record, rows: list[Record] | None = None) -> set[str]:
        """Role values of a user: roles.csv rows and the 1.0/1.1 users.csv ``role`` column."""
        found = {
            r.text("role") or ""
            for r in (rows if rows is not None else self.roles_of.get(user.sourced_id, []))
        }
        found.add(user.text("role") or "")
        found.discard("")
        return found

    def guardians(self, student: Record) -> list[Record]:
        linked = sorted(set(self.agents_of.get(student.sourced_id, [])))
        found = [self.get("users", uid) for uid in linked]
        return [g for g in found if g is not None and self.roles(g) & GUARDIAN_ROLES]


_CONCERN_KINDS: Final[Mapping[str, tuple[str, ...]]] = {
    "roles.csv": ("roles-of",),
    "demographics.csv": ("demographics-of",),
    "enrollments.csv": ("enrollments-of", "teachers-of"),
    "users.csv": ("agent-of",),
}


def _concerns(reject: Reject) -> list[tuple[str, str]]:
    """What a rejected row would have added to some student's event."""
    row = reject.row
    match reject.file:
        case "roles.csv":
            return [("roles-of", row.get("userSourcedId", "").strip())]
        case "demographics.csv":
            return [("demographics-of", row.get("sourcedId", "").strip())]
        case "enrollments.csv":
            found = [("enrollments-of", row.get("userSourcedId", "").strip())]
            if row.get("role", "").strip().lower() != "student":  # a teacher row names a class
                found.append(("teachers-of", row.get("classSourcedId", "").strip()))
            return found
        case "users.csv":
            agents = row.get("agentSourcedIds", "") or row.get("agents", "")
            return [("agent-of", a.strip()) for a in agents.split(",") if a.strip()]
        case _:
            return []


def held_back_by(index: Index, student: Record) -> Reject | None:
    sid = student.sourced_id
    deps = [("roles-of", sid), ("demographics-of", sid), ("enrollments-of", sid), ("agent-of", sid)]
    deps += [("roles-of", g) for g in index.agents_of.get(sid, [])]
    for enrollment in index.enrollments_of_user.get(sid, []):
        deps.append(("teachers-of", enrollment.text("classSourcedId") or ""))
    for concern in deps:
        if concern in index.rejected:
            return index.rejected[concern]
    return None


# --------------------------------------------------------------------------- places


def _org_chain(index: Index, org_id: str | None) -> list[Record]:
    chain: list[Record] = []
    org = index.get("orgs", org_id)
    while org is not None and org not in chain:
        chain.append(org)
        org = index.get("orgs", org.text("parentSourcedId"))
    return chain


def org_key(org: Record) -> str:
    """The id an org goes by on the bus: its ``identifier`` (state or NCES code) else sourcedId."""
    return org.text("identifier") or org.sourced_id


def _student_org_ids(index: Index, student: Record) -> list[str]:
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
class Place:
    school: Record | None
    district: Record | None


def place_of(index: Index, student: Record) -> Place:
    school: Record | None = None
    district: Record | None = None
    for org_id in _student_org_ids(index, student):
        chain = _org_chain(index, org_id)
        school = school or next((o for o in chain if o.text("type") == "school"), None)
        district = district or next((o for o in chain if o.text("type") == "district"), None)
        if school is not None and district is not None:
            break
    return Place(school, district or index.only_district)


# --------------------------------------------------------------------------- sections


def _names(user: Record) -> dict[str, Any]:
    return {
        "first_name": user.text("givenName"),
        "middle_name": user.text("middleName"),
        "last_name": user.text("familyName"),
        "generation_suffix": None,
        "preferred_first_name": user.text("preferredGivenName"),
        "preferred_middle_name": user.text("preferredMiddleName"),
        "preferred_last_name": user.text("preferredFamilyName"),
    }


def _identity(user: Record, key: str, rule: KeyRule) -> dict[str, Any]:
    logins = _logins(user)
    state = key if rule.kind == "state_id" else typed_user_id(user, _STATE_ID_TYPES)
    local = key if rule.kind == "local_id" else typed_user_id(user, _LOCAL_ID_TYPES)
    identifier = user.text("identifier")
    if local is None and identifier and identifier.lower() not in logins and identifier != state:
        local = identifier
    sis = (
        key
        if rule.kind == "sis_id"
        else (user.text("userMasterIdentifier") or typed_user_id(user, _SIS_ID_TYPES))
    )
    return {
        "local_student_id": local,
        "state_student_id": state if state and state.lower() not in logins else None,
        "sourced_id": user.sourced_id,
        "username": user.text("username"),
        "sis_user_id": sis,
    }


def _demographics(demo: Record | None) -> dict[str, Any]:
    """The demographics section; all values null when there is no row."""
    value = ({} if demo is None else demo.values).get
    section = {
        "birth_date": value("birthDate"),
        "sex": value("sex"),
        **{name: value(flag) for flag, name in _RACE_FIELDS},
        "country_of_birth": value("countryOfBirthCode"),
        "state_of_birth": value("stateOfBirthAbbreviation"),
        "city_of_birth": value("cityOfBirth"),
        "home_language": None,
    }
    return section


_RACE_FIELDS: Final = tuple(
    (flag, re.sub(r"(?<!^)(?=[A-Z])", "_", flag).lower()) for flag in RACE_FLAGS
)


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


def _guardian(index: Index, guardian: Record) -> dict[str, Any]:
    roles = index.roles(guardian) & GUARDIAN_ROLES
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
class Joined:
    """The rows an event was built from (their newest dateLastModified is occurred_at)."""

    records: list[Record] = field(default_factory=list)
    stamps: list[int] = field(default_factory=list)

    def add(self, *records: Record | None) -> None:
        self.records.extend(r for r in records if r is not None)

    def stamp(self, modified_ms: int | None) -> None:
        if modified_ms is not None:
            self.stamps.append(modified_ms)

    def newest_ms(self) -> int | None:
        stamps = [r.modified_ms for r in self.records if r.modified_ms is not None]
        stamps += self.stamps
        return max(stamps) if stamps else None


@dataclass(frozen=True)
class _Section:
    value: dict[str, Any]
    year: int | None
    rows: tuple[Record | None, ...]
    #: newest dateLastModified of its rows
    newest_ms: int | None


def _section(index: Index, klass: Record, joined: Joined) -> tuple[dict[str, Any], int | None]:
    """One scheduled section and the school year of its terms (built once per class)."""
    cached = index.sections.get(klass.sourced_id)
    if cached is None:
        cached = _build_section(index, klass)
        index.sections[klass.sourced_id] = cached
    joined.stamp(cached.newest_ms)
    return dict(cached.value), cached.year


def _build_section(index: Index, klass: Record) -> _Section:
    course = index.get("courses", klass.text("courseSourcedId"))
    terms = [index.get("academicSessions", t) for t in klass.ids("termSourcedIds")]
    known_terms = [t for t in terms if t is not None]
    teachers = index.teachers_of_class.get(klass.sourced_id, [])
    primary = [e for e in teachers if e.flag("primary")] or teachers
    teacher_users = [index.get("users", e.text("userSourcedId")) for e in primary]
    names = sorted({_person_name(t) for t in teacher_users if t is not None})
    rows = (klass, course, *known_terms, *teachers, *teacher_users)
    stamps = [r.modified_ms for r in rows if r is not None and r.modified_ms is not None]
    years = [_school_year(t) for t in known_terms]
    section = {
        "section_id": klass.sourced_id,
        "course_code": course.text("courseCode") if course else None,
        "course_title": (course.text("title") if course else None) or klass.text("title"),
        "teacher_name": "; ".join(names) or None,
        "period": ", ".join(klass.ids("periods")) or None,
        "term": ", ".join(t.text("title") or t.sourced_id for t in known_terms) or None,
        "room": klass.text("location"),
    }
    year = max((y for y in years if y is not None), default=None)
    return _Section(section, year, rows, max(stamps, default=None))


def _school_year(term: Record) -> int | None:
    """The school year of a session: its schoolYear (1.1+), else the year it ends (1.0)."""
    end = term.date("endDate")
    return term.number("schoolYear") or (end.year if end else None)


@dataclass(frozen=True)
class ScheduleInfo:
    schedule: dict[str, Any] | None
    school_year: int | None
    homeroom: str | None


def _schedule(index: Index, student: Record, joined: Joined) -> ScheduleInfo:
    """The schedule section; None when the enrollments are unknown (never seen)."""
    if not index.covers("enrollments", student):
        return ScheduleInfo(None, None, None)
    sections: dict[str, dict[str, Any]] = {}  # duplicate enrollments give one section
    years: list[int] = []
    homeroom: str | None = None
    for enrollment in index.enrollments_of_user.get(student.sourced_id, []):
        if enrollment.text("role") != "student":
            continue
        klass = index.get("classes", enrollment.text("classSourcedId"))
        joined.add(enrollment)
        if klass is None:  # classes unknown to this source
            continue
        section, year = _section(index, klass, joined)
        sections[klass.sourced_id] = section
        if year is not None:
            years.append(year)
        if klass.text("classType") == "homeroom":
            homeroom = homeroom or klass.text("title")
    ordered = [sections[k] for k in sorted(sections)]
    year = max(years, default=None)
    return ScheduleInfo({"school_year": year, "sections": ordered}, year, homeroom)


def _enrollment(
    index: Index, student: Record, place: Place, info: ScheduleInfo, joined: Joined
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
        "school_id": org_key(school) if school else None,
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


def envelope(
    key: str,
    kind: str,
    source_system: str,
    district_id: str | None,
    school_id: str | None,
    operation: Operation,
    occurred_at: int,
) -> dict[str, Any]:
    return {
        "event_id": "",  # set from the content when the event is finished
        "student_id": key,
        "student_id_type": kind,
        "source_system": source_system,
        "district_id": district_id,
        "school_id": school_id,
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


@dataclass(frozen=True)
class Draft:
    """An event value before validation, and the rows that locate its errors."""

    student: Record
    value: dict[str, Any]
    sources: Mapping[str, Record]
    #: whether the district came from the org tree (False: from the configuration)
    district_from_tree: bool = True


def build_upsert(
    index: Index,
    student: Record,
    key: str,
    config: SourceConfig,
    source_system: str,
    fallback_ms: int,
    warnings: list[Reject],
) -> Draft:
    tables = index.tables
    joined = Joined([student])
    place = place_of(index, student)
    joined.add(place.school, place.district)
    info = _schedule(index, student, joined)
    guardians = index.guardians(student)
    joined.add(*guardians)
    demo = tables.get("demographics", student.sourced_id)
    joined.add(demo, *index.deleted_rows_of.get(student.sourced_id, []))
    district = org_key(place.district) if place.district else config.district_id
    value = envelope(
        key,
        config.student_key.kind,
        source_system,
        district,
        org_key(place.school) if place.school else None,
        "UPSERT",
        fallback_ms,
    )
    value["names"] = _names(student)
    value["identity"] = _identity(student, key, config.student_key)
    if index.covers("demographics", student):
        value["demographics"] = _demographics(demo)
    value["enrollment"] = _enrollment(index, student, place, info, joined)
    value["contact"] = _contact(student)
    value["guardians"] = [_guardian(index, g) for g in guardians]
    value["schedule"] = info.schedule
    for row in (student, demo):
        if row is not None:
            _apply_extensions(value, row, config, warnings)
    value["occurred_at"] = joined.newest_ms() or fallback_ms
    sources = {"users": student} | ({"demographics": demo} if demo is not None else {})
    return Draft(student, value, sources, place.district is not None)


@functools.cache
def _field_types() -> dict[str, str | None]:
    catalog = field_catalog(load_schema("student_record_changed"))
    return {path: extension_type(info.avro_type) for path, info in catalog.items()}


def _apply_extensions(
    value: dict[str, Any], row: Record, config: SourceConfig, warnings: list[Reject]
) -> None:
    entity = KEY_OF_FILE.get(row.file, "")
    if not config.extensions.get(entity):
        return
    for column, raw in row.values.items():
        if not column.lower().startswith("metadata.") or not isinstance(raw, str):
            continue
        target = config.extension_target(entity, column)
        if target is None:
            continue
        kind = _field_types()[target]
        try:
            converted = _convert(raw, kind, config)
        except ValueError:
            if row.line:  # a stored row was warned about when it came in
                warnings.append(
                    Reject(
                        row.file,
                        row.line,
                        column,
                        f"value does not fit {target} ({kind}): left empty",
                        row.raw,
                    )
                )
            continue
        section, _, leaf = target.rpartition(".")
        holder = value
        if section:
            for part in section.split("."):
                holder = holder.setdefault(part, {}) if holder.get(part) is None else holder[part]
                if not isinstance(holder, dict):
                    break
        holder[leaf] = converted


def _convert(raw: str, kind: str | None, config: SourceConfig) -> Value | float:
    match kind:
        case "int" | "long":
            return int(raw)
        case "double" | "float":
            return float(raw)
        case "boolean":
            return parse_bool(raw)
        case "date":
            return parse_date(raw, ParseOptions(config.date_formats, config.time_zone))
        case _:
            return raw


def students_of(index: Index) -> Iterator[Record]:
    """Active users of the view that are students (by roles.csv or users.role)."""
    for user in index.tables.view["users"].values():
        if "student" in index.roles(user):
            yield user


def is_student(index: Index, user: Record) -> bool | None:
    """Whether a (deleted) user was a student: by its own row, its stored roles, or None."""
    tables = index.tables
    rows = [
        r for r in tables.previous["roles"].values() if r.text("userSourcedId") == user.sourced_id
    ]
    rows += [
        r for r in tables.package.get("roles", []) if r.text("userSourcedId") == user.sourced_id
    ]
    previous = tables.previous["users"].get(user.sourced_id)
    roles = index.roles(user, rows) | (index.roles(previous, []) if previous else set())
    if not roles:
        return None
    return "student" in roles
