"""Write the simulated district as a OneRoster 1.2 CSV package (bulk) or a delta package.

:func:`write_oneroster_package` writes the district of :func:`connectors.simulation.stream.simulate`
for the same ``(students, seed, districts)`` as it stands on the first day: ``manifest.csv``,
``orgs.csv``, ``academicSessions.csv``, ``courses.csv``, ``classes.csv``, ``users.csv``
(students, guardians, teachers and counselors), ``roles.csv``, ``demographics.csv`` and
``enrollments.csv``, with the column names of the OneRoster 1.2 CSV binding. In a bulk file
``status`` and ``dateLastModified`` are left empty, as the binding asks.

:func:`write_oneroster_delta` applies a few changes to that district (name and contact
updates, school moves, a new student, withdrawals) and writes a delta package holding the rows
of the students it touched, each self-contained: the student's user, roles, demographics and
enrollments, plus the guardians, classes, courses, sessions, orgs and teachers they refer to.
A withdrawn student's user, role, demographics and enrollment rows are ``tobedeleted``; the
enrollments a move ended are ``tobedeleted`` too. Every delta row carries ``status`` and
``dateLastModified``.

How the simulator's fields land in OneRoster: the state student id is ``identifier`` and the
``{stateID:...}`` entry of ``userIds`` (the local student number is ``{localID:...}``), the
SIS database id is ``userMasterIdentifier``, schools and districts are orgs whose
``sourcedId`` and ``identifier`` are their NCES-style ids, a class is a section (its
``sourcedId`` is the schedule's ``section_id``), and guardians are users with role ``parent``
(mother, father), ``relative`` (grandparent) or ``guardian``, linked both ways by
``agentSourcedIds``.
"""

from __future__ import annotations

import csv
import hashlib
import random
import uuid
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from operator import itemgetter
from pathlib import Path
from typing import Any, Final

from connectors.oneroster.columns import KNOWN_FILES, READ_ORDER, columns_1_2
from connectors.simulation.calendar import DEFAULT_START, at_ms
from connectors.simulation.changes import Engine
from connectors.simulation.district import (
    District,
    GuardianRecord,
    School,
    Section,
    Student,
    Teacher,
    build_world,
    gc_paused,
)

#: Column names of the OneRoster 1.2 CSV files written here, in the binding's order: the
#: reader's column specification (:mod:`connectors.oneroster.columns`), so the two cannot drift.
COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    KNOWN_FILES[key]: columns_1_2(key) for key in READ_ORDER
}

#: Every ``file.<name>`` of the OneRoster 1.2 manifest, and whether this writer provides it.
_MANIFEST_FILES: Final[tuple[tuple[str, bool], ...]] = (
    ("academicSessions", True),
    ("categories", False),
    ("classes", True),
    ("classResources", False),
    ("courses", True),
    ("courseResources", False),
    ("demographics", True),
    ("enrollments", True),
    ("lineItemLearningObjectiveIds", False),
    ("lineItems", False),
    ("lineItemScoreScales", False),
    ("orgs", True),
    ("resources", False),
    ("resultLearningObjectiveIds", False),
    ("results", False),
    ("resultScoreScales", False),
    ("roles", True),
    ("scoreScales", False),
    ("userProfiles", False),
    ("userResources", False),
    ("users", True),
)

SOURCE_SYSTEM: Final = "sis-simulator"
_IDS: Final[uuid.UUID] = uuid.UUID("0b5f8a64-7c1e-4c55-9a8e-2f6d1d3c7e90")

#: OneRoster role of a guardian, by the relationship the simulator records.
_GUARDIAN_ROLE: Final[dict[str, str]] = {
    "mother": "parent",
    "father": "parent",
    "grandparent": "relative",
    "guardian": "guardian",
    "foster_parent": "guardian",
}
_RACE_COLUMNS: Final[tuple[tuple[str, str], ...]] = (
    ("americanIndianOrAlaskaNative", "american_indian_alaska_native"),
    ("asian", "asian"),
    ("blackOrAfricanAmerican", "black"),
    ("nativeHawaiianOrOtherPacificIslander", "native_hawaiian_pacific_islander"),
    ("white", "white"),
    ("demographicRaceTwoOrMoreRaces", "two_or_more"),
)

Row = dict[str, str]


def _stable_id(*parts: str) -> str:
    """A name-based GUID (as ``uuid.uuid5``) for rows that are not objects of the simulation."""
    digest = hashlib.sha1(_IDS.bytes + "|".join(parts).encode(), usedforsecurity=False)
    text = digest.hexdigest()
    variant = "89ab"[int(text[16], 16) & 0x3]
    return f"{text[:8]}-{text[8:12]}-5{text[13:16]}-{variant}{text[17:20]}-{text[20:32]}"


def _flag(value: bool) -> str:
    return "true" if value else "false"


def _text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return _flag(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _iso_ms(epoch_ms: int) -> str:
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{epoch_ms % 1000:03d}Z"


# --------------------------------------------------------------------------- rows


class _Rows:
    """Row builders for the objects of the simulated world."""

    def __init__(self, districts: Sequence[District]) -> None:
        self.sections: dict[str, Section] = {}
        self.school_of_teacher: dict[str, School] = {}
        for district in districts:
            for school in district.schools:
                for slots in school.sections.values():
                    for slot in slots:
                        for section in slot:
                            self.sections[section.sourced_id] = section

    @staticmethod
    def org(district: District, school: School | None = None) -> Row:
        org = school.org if school is not None else district.org
        return {
            "sourcedId": org.sourced_id,
            "name": org.name,
            "type": org.kind,
            "identifier": org.sourced_id,
            "parentSourcedId": org.parent_id or "",
        }

    @staticmethod
    def sessions(district: District) -> list[Row]:
        return [
            {
                "sourcedId": s.sourced_id,
                "title": s.title,
                "type": s.kind,
                "startDate": s.start.isoformat(),
                "endDate": s.end.isoformat(),
                "parentSourcedId": s.parent_id or "",
                "schoolYear": str(s.school_year),
            }
            for s in district.sessions
        ]

    @staticmethod
    def course(district: District, section: Section) -> Row:
        course = section.course
        return {
            "sourcedId": course.sourced_id,
            "schoolYearSourcedId": district.year_session.sourced_id,
            "title": course.title,
            "courseCode": course.code,
            "grades": course.grade,
            "orgSourcedId": course.school_id,
            "subjects": course.subject,
            "subjectCodes": "",
        }

    @staticmethod
    def klass(district: District, section: Section) -> Row:
        return {
            "sourcedId": section.sourced_id,
            "title": section.title,
            "grades": section.course.grade,
            "courseSourcedId": section.course.sourced_id,
            "classCode": section.class_code,
            "classType": section.class_type,
            "location": section.room,
            "schoolSourcedId": section.school_id,
            "termSourcedIds": district.year_session.sourced_id,
            "subjects": section.course.subject,
            "subjectCodes": "",
            "periods": section.period,
        }

    @staticmethod
    def student_user(s: Student) -> Row:
        return {
            "enabledUser": "true",
            "username": s.username,
            "userIds": f"{{stateID:{s.state_id}}},{{localID:{s.local_id}}}",
            "givenName": s.given_name,
            "familyName": s.family_name,
            "middleName": s.middle_name or "",
            "identifier": s.state_id,
            "email": _text(s.contact["email"]),
            "sms": "",
            "phone": _text(s.contact["phone"]),
            "agentSourcedIds": ",".join(g["guardian_id"] for g in s.guardians),
            "grades": s.grade,
            "password": s.password or "",
            "userMasterIdentifier": s.sis_user_id,
            "resourceSourcedIds": "",
            "preferredGivenName": s.preferred_name or "",
            "preferredMiddleName": "",
            "preferredFamilyName": "",
            "primaryOrgSourcedId": s.school.school_id,
            "pronouns": "",
        }

    @staticmethod
    def guardian_user(s: Student, g: GuardianRecord) -> Row:
        first, last = str(g["first_name"]), str(g["last_name"])
        return {
            "enabledUser": "true",
            "username": f"{first}.{last}.{str(g['guardian_id'])[:4]}".lower(),
            "userIds": "",
            "givenName": first,
            "familyName": last,
            "middleName": "",
            "identifier": "",
            "email": _text(g["email"]),
            "sms": "",
            "phone": _text(g["phone"]),
            "agentSourcedIds": s.sourced_id,
            "grades": "",
            "password": "",
            "userMasterIdentifier": "",
            "resourceSourcedIds": "",
            "preferredGivenName": "",
            "preferredMiddleName": "",
            "preferredFamilyName": "",
            "primaryOrgSourcedId": s.district.district_id,
            "pronouns": "",
        }

    @staticmethod
    def staff_user(t: Teacher) -> Row:
        return {
            "enabledUser": "true",
            "username": t.username,
            "userIds": "",
            "givenName": t.given_name,
            "familyName": t.family_name,
            "middleName": "",
            "identifier": t.staff_id,
            "email": t.email,
            "sms": "",
            "phone": "",
            "agentSourcedIds": "",
            "grades": "",
            "password": "",
            "userMasterIdentifier": "",
            "resourceSourcedIds": "",
            "preferredGivenName": "",
            "preferredMiddleName": "",
            "preferredFamilyName": "",
            "primaryOrgSourcedId": t.school_id,
            "pronouns": "",
        }

    @staticmethod
    def role(user_id: str, role: str, org_id: str, begin: date | None = None) -> Row:
        return {
            "sourcedId": _stable_id("role", user_id, org_id, role),
            "userSourcedId": user_id,
            "roleType": "primary",
            "role": role,
            "beginDate": _text(begin),
            "endDate": "",
            "orgSourcedId": org_id,
            "userProfileSourcedId": "",
        }

    @staticmethod
    def demographics(s: Student) -> Row:
        row: Row = {
            "sourcedId": s.sourced_id,
            "birthDate": s.birth_date.isoformat(),
            "sex": s.sex,
        }
        race = "white" if s.race == "hispanic" else s.race
        for column, code in _RACE_COLUMNS:
            row[column] = _flag(race == code)
        row["hispanicOrLatinoEthnicity"] = _flag(s.hispanic)
        row["countryOfBirthCode"] = s.country_of_birth
        row["stateOfBirthAbbreviation"] = s.state_of_birth or ""
        row["cityOfBirth"] = s.city_of_birth or ""
        row["publicSchoolResidenceStatus"] = ""
        return row

    @staticmethod
    def enrollment(
        section_id: str, school_id: str, user_id: str, role: str, begin: date | None
    ) -> Row:
        return {
            "sourcedId": _stable_id("enrollment", section_id, user_id),
            "classSourcedId": section_id,
            "schoolSourcedId": school_id,
            "userSourcedId": user_id,
            "role": role,
            "primary": "true" if role == "teacher" else "false",
            "beginDate": _text(begin),
            "endDate": "",
        }


def _student_rows(rows: _Rows, s: Student) -> dict[str, list[Row]]:
    """The rows of one student: user, role, demographics, enrollments, guardians."""
    out: dict[str, list[Row]] = {name: [] for name in COLUMNS}
    out["users"] = [{"sourcedId": s.sourced_id, **rows.student_user(s)}]
    out["roles"] = [rows.role(s.sourced_id, "student", s.school.school_id, s.entry_date)]
    out["demographics"] = [rows.demographics(s)]
    out["enrollments"] = [
        rows.enrollment(
            str(sec["section_id"]), s.school.school_id, s.sourced_id, "student", s.entry_date
        )
        for sec in s.sections
    ]
    for g in s.guardians:
        gid = str(g["guardian_id"])
        out["users"].append({"sourcedId": gid, **rows.guardian_user(s, g)})
        out["roles"].append(
            rows.role(
                gid, _GUARDIAN_ROLE.get(str(g["relationship"]), "guardian"), s.district.district_id
            )
        )
    return out


# --------------------------------------------------------------------------- files


def _write_manifest(out: Path, mode: str, source_system: str) -> None:
    with (out / "manifest.csv").open("w", encoding="utf-8", newline="") as stream:
        writer = csv.writer(stream, lineterminator="\r\n")
        writer.writerow(["propertyName", "value"])
        writer.writerow(["manifest.version", "1.0"])
        writer.writerow(["oneroster.version", "1.2"])
        for name, provided in _MANIFEST_FILES:
            writer.writerow([f"file.{name}", mode if provided else "absent"])
        writer.writerow(["source.systemName", source_system])
        writer.writerow(["source.systemCode", source_system])


def _bulk_rows(districts: Sequence[District]) -> Iterator[tuple[str, Row]]:
    for name, row in _bulk_content(districts):
        yield name, {"status": "", "dateLastModified": "", **row}


def _bulk_content(districts: Sequence[District]) -> Iterator[tuple[str, Row]]:
    rows = _Rows(districts)
    for district in districts:
        yield "orgs.csv", rows.org(district)
        for school in district.schools:
            yield "orgs.csv", rows.org(district, school)
        for session in rows.sessions(district):
            yield "academicSessions.csv", session
        for school in district.schools:
            for slots in school.sections.values():
                for slot in slots:
                    yield "courses.csv", rows.course(district, slot[0])
                    for section in slot:
                        yield "classes.csv", rows.klass(district, section)
                        yield (
                            "enrollments.csv",
                            rows.enrollment(
                                section.sourced_id,
                                school.school_id,
                                section.teacher.sourced_id,
                                "teacher",
                                district.start,
                            ),
                        )
            for staff in (*school.teachers, *school.counselors):
                yield "users.csv", {"sourcedId": staff.sourced_id, **rows.staff_user(staff)}
                yield (
                    "roles.csv",
                    rows.role(staff.sourced_id, staff.role, school.school_id, district.start),
                )
        for student in district.students:
            for name, found in _student_rows(rows, student).items():
                for row in found:
                    yield f"{name}.csv", row


def _write_package(
    out: Path, rows: Iterable[tuple[str, Row]], mode: str, source_system: str
) -> dict[str, int]:
    """Stream ``(file name, row)`` pairs into the CSV files of ``out``; return row counts.

    Every row must hold every column of its file (bulk rows carry empty status and
    dateLastModified).
    """
    out.mkdir(parents=True, exist_ok=True)
    counts = dict.fromkeys(COLUMNS, 0)
    with ExitStack() as stack:
        writers = {}
        for name, columns in COLUMNS.items():
            stream = stack.enter_context((out / name).open("w", encoding="utf-8", newline=""))
            writer = csv.writer(stream, lineterminator="\r\n")
            writer.writerow(columns)
            writers[name] = (writer.writerow, itemgetter(*columns))
        for name, row in rows:
            write, values = writers[name]
            write(values(row))
            counts[name] += 1
    _write_manifest(out, mode, source_system)
    return counts


@dataclass(frozen=True)
class PackageSummary:
    """What was written: the package directory and the number of data rows per file."""

    path: Path
    rows: dict[str, int]
    student_ids: tuple[str, ...] = ()


def write_oneroster_package(
    students: int,
    out_dir: Path | str,
    *,
    seed: int = 0,
    districts: int = 1,
    start: date = DEFAULT_START,
    source_system: str = SOURCE_SYSTEM,
) -> PackageSummary:
    """Write the initial simulated district(s) as a OneRoster 1.2 bulk CSV package.

    Same ``(students, seed, districts, start)`` as
    :func:`connectors.simulation.stream.simulate`, same students: the package and the
    stream's initial snapshots agree on ids, names and grades.
    ``student_ids`` of the summary lists the state student ids, in package order.
    """
    world = build_world(random.Random(seed), students, districts, start)
    out = Path(out_dir)
    with gc_paused():
        counts = _write_package(out, _bulk_rows(world.districts), "bulk", source_system)
    ids = tuple(s.state_id for d in world.districts for s in d.students)
    return PackageSummary(out, counts, ids)


# --------------------------------------------------------------------------- delta


@dataclass
class DeltaSummary:
    """What a delta package holds, by state student id."""

    path: Path
    rows: dict[str, int] = field(default_factory=dict)
    #: students whose rows changed (names, contact, guardians, school), still enrolled
    updated: list[str] = field(default_factory=list)
    #: students new to the district
    added: list[str] = field(default_factory=list)
    #: students whose user row is ``tobedeleted``
    deleted: list[str] = field(default_factory=list)


def _stamp(row: Row, status: str, modified: str) -> Row:
    return {"status": status, "dateLastModified": modified, **row}


def write_oneroster_delta(
    students: int,
    out_dir: Path | str,
    *,
    seed: int = 0,
    districts: int = 1,
    start: date = DEFAULT_START,
    changes: int = 10,
    source_system: str = SOURCE_SYSTEM,
) -> DeltaSummary:
    """Write a OneRoster 1.2 delta package of ``changes`` changes to the initial district.

    The changes happen on the first school day, after the bulk export of
    :func:`write_oneroster_package` for the same arguments: about a quarter of them are
    withdrawals (at least one, so the delta always has a ``tobedeleted`` student), the rest
    preferred-name changes, guardian contact updates, school moves and new students.
    """
    if changes < 1:
        raise ValueError("changes must be >= 1")
    rng = random.Random(seed)
    world = build_world(rng, students, districts, start)
    if not world.districts or not world.districts[0].students:
        raise ValueError("a delta needs at least one student")
    delta_rng = random.Random(f"delta:{seed}")
    engine = Engine(world, delta_rng, days=1, source_system=source_system)
    day = engine.calendar[0]
    roster = [s for d in world.districts for s in d.students]
    picked = delta_rng.sample(roster, min(changes, len(roster)))
    touched: dict[int, Student] = {}
    withdrawn: dict[int, Student] = {}
    ended: list[tuple[Student, tuple[dict[str, Any], ...], str]] = []
    summary = DeltaSummary(Path(out_dir))
    updates = (engine.update_name, engine.update_contact, engine.transfer)
    for n, student in enumerate(picked):
        at = at_ms(day, 480 + 5 * n)
        r = delta_rng.random()
        kind = "withdraw" if n == 0 or r < 0.25 else "enroll" if r < 0.4 else "update"
        if kind == "withdraw":
            engine.withdraw(0, at, student, None)
            withdrawn[student.index] = student
            touched.pop(student.index, None)
        elif kind == "enroll":
            district = student.district
            engine.enroll(0, at, None, district)
            new = district.students[-1]
            touched[new.index] = new
            summary.added.append(new.state_id)
        else:
            sections, school_id = student.sections, student.school.school_id
            update = updates[int(delta_rng.random() * len(updates))]
            update(0, at, student, None)
            if sections != student.sections:
                ended.append((student, sections, school_id))
            touched.setdefault(student.index, student)
    modified = _iso_ms(at_ms(day, 600))
    rows = _Rows(world.districts)
    out: list[tuple[str, Row]] = []
    seen: set[tuple[str, str]] = set()

    def emit(name: str, row: Row, status: str = "active") -> None:
        key = (name, row["sourcedId"])
        if key not in seen:
            seen.add(key)
            out.append((name, _stamp(row, status, modified)))

    for student in touched.values():
        district = student.district
        emit("orgs.csv", rows.org(district))
        emit("orgs.csv", rows.org(district, student.school))
        for session in rows.sessions(district):
            emit("academicSessions.csv", session)
        for value in student.sections:
            section = rows.sections[str(value["section_id"])]
            teacher = section.teacher
            emit("courses.csv", rows.course(district, section))
            emit("classes.csv", rows.klass(district, section))
            emit("users.csv", {"sourcedId": teacher.sourced_id, **rows.staff_user(teacher)})
            emit(
                "roles.csv",
                rows.role(teacher.sourced_id, teacher.role, teacher.school_id, district.start),
            )
            emit(
                "enrollments.csv",
                rows.enrollment(
                    section.sourced_id,
                    section.school_id,
                    teacher.sourced_id,
                    "teacher",
                    district.start,
                ),
            )
        for name, found in _student_rows(rows, student).items():
            for row in found:
                emit(f"{name}.csv", row)
        if student.state_id not in summary.added:
            summary.updated.append(student.state_id)
    for student, sections, school_id in ended:
        for value in sections:
            emit(
                "enrollments.csv",
                rows.enrollment(
                    str(value["section_id"]),
                    school_id,
                    student.sourced_id,
                    "student",
                    student.district.start,
                ),
                "tobedeleted",
            )
        emit(
            "roles.csv",
            rows.role(student.sourced_id, "student", school_id, student.district.start),
            "tobedeleted",
        )
    for student in withdrawn.values():
        district = student.district
        emit("orgs.csv", rows.org(district))
        emit("orgs.csv", rows.org(district, student.school))
        for name, found in _student_rows(rows, student).items():
            for row in found:
                if (
                    name in ("users", "roles")
                    and row["sourcedId"] != student.sourced_id
                    and row.get("userSourcedId") != student.sourced_id
                ):
                    continue  # the guardians stay (they may have other children)
                emit(f"{name}.csv", row, "tobedeleted")
        summary.deleted.append(student.state_id)
    summary.rows = _write_package(Path(out_dir), out, "delta", source_system)
    return summary
