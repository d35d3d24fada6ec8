"""The per-student join state: what every interchange said about each student, kept small.

Records are folded into this state as they stream by (attendance events into counts per
school year, discipline into small tuples), so the state grows with the number of students
and their facts, never with the size of a file. References between interchanges (a behaviour
to its incident, a school to its district, a student assessment to its assessment) are kept
as keys and resolved when the events are built (:mod:`~connectors.edfi.events`).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

#: (IncidentIdentifier, SchoolId)
IncidentKey = tuple[str, str]


@dataclass(slots=True)
class AttendanceYear:
    present: float = 0.0
    absent: float = 0.0
    tardy: int = 0
    last_absence: dt.date | None = None
    absence_dates: set[dt.date] = field(default_factory=set)
    #: class-period events, kept per date until the daily events are known
    period_absent: dict[dt.date, int] = field(default_factory=dict)
    period_tardy: int = 0


@dataclass(slots=True)
class Program:
    code: str | None
    begin: dt.date | None
    end: dt.date | None


@dataclass(slots=True)
class SpecialEducation:
    begin: dt.date | None
    end: dt.date | None
    iep_begin: dt.date | None
    iep_end: dt.date | None
    exit_date: dt.date | None
    review: dt.date | None
    setting: str | None
    medically_fragile: bool
    disabilities: list[tuple[int, str | None, str | None]]  # (order, category, designation)


@dataclass(slots=True)
class Enrollment:
    school_id: str
    entry: dt.date | None
    exit: dt.date | None
    grade: str | None
    school_year: int | None
    class_of: int | None
    primary: bool


@dataclass(slots=True)
class Student:
    """What a load knows of one student (by StudentUniqueId)."""

    uid: str
    in_student_file: bool = False
    names: dict[str, str | None] | None = None
    birth: dict[str, object] | None = None
    #: StudentEducationOrganizationAssociation facts
    seoa: dict[str, object] | None = None
    enrollments: list[Enrollment] = field(default_factory=list)
    sections: list[tuple[str, str | None, str, int | None, str | None]] = field(
        default_factory=list
    )  # (section id, local course code, school, year, session)
    #: latest (date, school id) a record placed the student at
    last_school: tuple[dt.date, str] | None = None
    attendance: dict[int, AttendanceYear] = field(default_factory=dict)
    #: (incident, behavior code, participation code)
    behaviors: list[tuple[IncidentKey | None, str | None, str | None]] = field(default_factory=list)
    #: (incident, date, action code, days)
    actions: list[tuple[IncidentKey | None, dt.date | None, str | None, float | None]] = field(
        default_factory=list
    )
    programs: list[Program] = field(default_factory=list)
    special_education: list[SpecialEducation] = field(default_factory=list)
    food: list[Program] = field(default_factory=list)
    language: list[Program] = field(default_factory=list)
    homeless: list[tuple[Program, str | None]] = field(default_factory=list)
    #: (contact id, relation, primary, emergency, priority)
    contacts: list[tuple[str, str | None, bool | None, bool | None, int | None]] = field(
        default_factory=list
    )
    #: ((identifier, namespace), date, scale score, performance level)
    assessments: list[tuple[tuple[str, str | None], dt.date | None, float | None, str | None]] = (
        field(default_factory=list)
    )
    #: (local course code, school, year, session, grade)
    grades: list[tuple[str | None, str | None, int | None, str | None, str | None]] = field(
        default_factory=list
    )
    #: (year, term, gpa, gpa max, credits)
    records: list[tuple[int | None, str | None, float | None, float | None, float | None]] = field(
        default_factory=list
    )
    #: (course code, title, year, term, grade, credits)
    transcript: list[
        tuple[str | None, str | None, int | None, str | None, str | None, float | None]
    ] = field(default_factory=list)

    def saw_school(self, day: dt.date | None, school: str | None) -> None:
        if school and day and (self.last_school is None or day >= self.last_school[0]):
            self.last_school = (day, school)


@dataclass
class Lookups:
    """Reference data other records point to."""

    #: SchoolId -> (name, LEA id or the LEA's XML id)
    schools: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    #: XML id of an LEA -> LocalEducationAgencyId
    lea_ids: dict[str, str] = field(default_factory=dict)
    #: ContactUniqueId -> guardian fields; XML id -> ContactUniqueId
    contacts: dict[str, dict[str, str | None]] = field(default_factory=dict)
    contact_ids: dict[str, str] = field(default_factory=dict)
    #: incident -> date; XML id -> incident
    incidents: dict[IncidentKey, dt.date | None] = field(default_factory=dict)
    incident_ids: dict[str, IncidentKey] = field(default_factory=dict)
    #: (AssessmentIdentifier, Namespace) -> (title, subject)
    assessments: dict[tuple[str, str | None], tuple[str | None, str | None]] = field(
        default_factory=dict
    )
    #: (LocalCourseCode, SchoolId, SchoolYear, SessionName) -> CourseCode
    offerings: dict[tuple[str, str, int | None, str | None], str] = field(default_factory=dict)
    #: CourseCode -> CourseTitle
    courses: dict[str, str] = field(default_factory=dict)

    def only_lea(self) -> str | None:
        """The district of a load whose EducationOrganization interchange has one LEA."""
        leas = set(self.lea_ids.values())
        return next(iter(leas)) if len(leas) == 1 else None

    def district_of(self, school: str | None) -> str | None:
        if school is None or school not in self.schools:
            return None
        lea = self.schools[school][1]
        return self.lea_ids.get(lea, lea) if lea else None
