"""The simulated district as it stands at the start of the school year.

:func:`build_districts` turns ``(students, seed, districts)`` into plain mutable objects:
districts, schools by level (elementary K-5, middle 6-8, high 9-12) sized by grade, teachers,
courses and class sections, students with their guardians and special indicators. The
change stream (:mod:`connectors.simulation.changes`) and the OneRoster writer
(:mod:`connectors.oneroster.writer`) both start from it, so a package and a stream built from
the same seed describe the same students.

Everything is drawn from the ``random.Random`` passed in; nothing depends on the clock or on
hash order, so the same seed gives the same district.
"""

from __future__ import annotations

import gc
import math
import random
from bisect import bisect
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from itertools import accumulate
from typing import Any, Final, Literal

from connectors.simulation import rates, reference

Level = Literal["elementary", "middle", "high"]

#: OneRoster grade codes of K-12, index = years after kindergarten.
GRADES: Final[tuple[str, ...]] = (
    "KG",
    "01",
    "02",
    "03",
    "04",
    "05",
    "06",
    "07",
    "08",
    "09",
    "10",
    "11",
    "12",
)
LEVEL_GRADES: Final[dict[Level, tuple[str, ...]]] = {
    "elementary": GRADES[0:6],
    "middle": GRADES[6:9],
    "high": GRADES[9:13],
}
LEVEL_SIZE: Final[dict[Level, int]] = {
    "elementary": rates.ELEMENTARY_SCHOOL_SIZE,
    "middle": rates.MIDDLE_SCHOOL_SIZE,
    "high": rates.HIGH_SCHOOL_SIZE,
}
LEVEL_SUFFIX: Final[dict[Level, str]] = {
    "elementary": "Elementary School",
    "middle": "Middle School",
    "high": "High School",
}
PERIODS_PER_DAY: Final[int] = 7

#: Area codes of upstate and downstate New York, for fictional 555-01xx phone numbers.
_AREA_CODES: Final[tuple[str, ...]] = ("518", "315", "585", "607", "716", "845", "914", "631")


def level_of(grade: str) -> Level:
    index = GRADES.index(grade)
    return "elementary" if index <= 5 else "middle" if index <= 8 else "high"


class Table:
    """A weighted choice table: ``pick(rng)`` draws one value by its weight."""

    __slots__ = ("_cumulative", "_total", "_values")

    def __init__(self, entries: Sequence[tuple[str, float]]) -> None:
        self._values = [value for value, _ in entries]
        self._cumulative = list(accumulate(weight for _, weight in entries))
        self._total = self._cumulative[-1]

    def pick(self, rng: random.Random) -> str:
        return self._values[bisect(self._cumulative, rng.random() * self._total)]


RACE_TABLE: Final[Table] = Table(rates.RACE_ETHNICITY)
IDEA_TABLE: Final[Table] = Table(rates.IDEA_CATEGORIES)
EL_LANGUAGE_TABLE: Final[Table] = Table(reference.EL_HOME_LANGUAGES)
RELATIONSHIP_TABLE: Final[Table] = Table(reference.GUARDIAN_RELATIONSHIPS)


def new_uuid(rng: random.Random) -> str:
    """A version-4 UUID drawn from ``rng`` (deterministic, unlike ``uuid.uuid4``)."""
    bits = rng.getrandbits(128)
    bits = (bits & ~(0xF000 << 64)) | (0x4000 << 64)  # version 4
    bits = (bits & ~(0xC000 << 48)) | (0x8000 << 48)  # RFC 4122 variant
    text = f"{bits:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def bus_stop(address: Address, route: str) -> str:
    """The stop nearest a home: its street at a cross street named after the route number."""
    street = str(address["address_line1"]).split(" ", 1)[1]
    number = int(route.rsplit(" ", 1)[-1]) if route[-1].isdigit() else 0
    return f"{street} at {reference.STREET_NAMES[number % len(reference.STREET_NAMES)]}"


def fake_phone(rng: random.Random) -> str:
    """A fictional number: 555-0100..555-0199 are reserved for fiction in the NANP."""
    return f"{rng.choice(_AREA_CODES)}-555-01{int(rng.random() * 100):02d}"


#: A postal address with the field names of the Avro records (``address_line1``, ...).
#: Addresses, guardians, a student's contact details and schedule entries are kept as plain
#: dicts of scalars in their Avro shape and replaced, never mutated, on a change: Python's
#: garbage collector does not track such dicts, which keeps a big district cheap to hold.
Address = dict[str, str | None]
#: A parent or guardian: the ``Guardian`` record of student_record_changed.avsc.
GuardianRecord = dict[str, Any]
#: A schedule entry: the ``ScheduledSection`` record, shared by every student of the class.
SectionRecord = dict[str, Any]


@dataclass(slots=True)
class Org:
    """A OneRoster org: a district or a school. ``sourced_id`` is its NCES-style id."""

    sourced_id: str
    name: str
    kind: Literal["district", "school"]
    parent_id: str | None


@dataclass(slots=True)
class Teacher:
    sourced_id: str
    staff_id: str
    given_name: str
    family_name: str
    email: str
    username: str
    school_id: str
    room: str
    role: Literal["teacher", "counselor"] = "teacher"

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


@dataclass(slots=True)
class Course:
    sourced_id: str
    code: str
    title: str
    subject: str
    grade: str
    school_id: str


@dataclass(slots=True)
class Section:
    """One class section; ``value`` is its schedule entry, shared by every enrolled student."""

    sourced_id: str
    course: Course
    title: str
    class_code: str
    class_type: Literal["homeroom", "scheduled"]
    school_id: str
    teacher: Teacher
    period: str
    room: str
    value: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class School:
    org: Org
    level: Level
    district_id: str
    title_i: bool
    principal: str
    teachers: list[Teacher] = field(default_factory=list)
    counselors: list[Teacher] = field(default_factory=list)
    courses: list[Course] = field(default_factory=list)
    #: sections by grade, then by course slot (period column); elementary: one slot, homerooms.
    sections: dict[str, list[list[Section]]] = field(default_factory=dict)
    bus_routes: int = 12

    @property
    def school_id(self) -> str:
        return self.org.sourced_id

    @property
    def name(self) -> str:
        return self.org.name


@dataclass(slots=True)
class Student:
    """A student as the SIS holds them now. Mutated by the change stream."""

    index: int
    state_id: str
    local_id: str
    sourced_id: str
    username: str
    sis_user_id: str
    given_name: str
    middle_name: str | None
    family_name: str
    suffix: str | None
    preferred_name: str | None
    sex: str
    birth_date: date
    race: str
    hispanic: bool
    country_of_birth: str
    state_of_birth: str | None
    city_of_birth: str | None
    home_language: str
    district: District
    school: School
    grade: str
    entry_date: date
    homeroom: str | None
    counselor: str | None
    #: the ``StudentContact`` record: e-mail, phone and home address.
    contact: dict[str, Any]
    guardians: tuple[GuardianRecord, ...]
    sections: tuple[SectionRecord, ...]
    ability: float
    absence_p: float
    tardy_p: float
    programs: tuple[str, ...]
    ell_status: str
    elp_level: str | None
    free_reduced_lunch: str
    homeless: bool
    foster_care: bool
    medical_alerts: tuple[str, ...]
    disability: str | None
    has_iep: bool
    has_504: bool
    bus_route: str | None
    bus_stop: str | None
    pickup_ms: int | None
    dropoff_ms: int | None
    ssn: str | None
    other_government_id: str | None
    password: str | None
    health_notes: str | None
    counseling_notes: str | None
    exit_date: date | None = None
    #: school-day index (0 = first day of the run) the student entered the district.
    entry_day: int = 0
    status: str = "active"
    days_absent: float = 0.0
    days_tardy: int = 0
    last_absence: date | None = None
    # Histories are tuples (replaced on change): a big district keeps fewer objects that the
    # garbage collector has to scan.
    assessments: tuple[dict[str, Any], ...] = ()
    course_grades: tuple[dict[str, Any], ...] = ()
    gpa: float | None = None
    credits: float | None = None
    incidents: tuple[dict[str, Any], ...] = ()
    #: carewell-health consent state: granted category -> expiry (epoch ms).
    health_grants: dict[str, int] = field(default_factory=dict)
    #: position in the active list of the change stream (-1 once withdrawn).
    slot: int = -1
    #: built record sections, dropped when the data behind them changes.
    cache: dict[str, Any] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return self.status == "active"

    @property
    def grade_index(self) -> int:
        return GRADES.index(self.grade)

    @property
    def has_medical_needs(self) -> bool:
        return bool(self.medical_alerts)


@dataclass(slots=True)
class AcademicSession:
    sourced_id: str
    title: str
    kind: Literal["schoolYear", "semester", "gradingPeriod"]
    start: date
    end: date
    parent_id: str | None
    school_year: int


@dataclass(slots=True)
class District:
    org: Org
    city: str
    state: str
    school_year: int
    start: date
    sessions: list[AcademicSession]
    schools: list[School] = field(default_factory=list)
    students: list[Student] = field(default_factory=list)
    email_domain: str = "example.org"

    @property
    def district_id(self) -> str:
        return self.org.sourced_id

    @property
    def name(self) -> str:
        return self.org.name

    @property
    def year_session(self) -> AcademicSession:
        return self.sessions[0]

    def schools_of(self, level: Level) -> list[School]:
        return [s for s in self.schools if s.level == level]


@dataclass
class _Counters:
    """Id counters shared by all districts of a build, so ids never collide."""

    student: int = 0
    staff: int = 0


def school_year_of(start: date) -> int:
    """Ed-Fi school year (ending calendar year) of a school year starting on ``start``."""
    return start.year + 1 if start.month >= 7 else start.year


def _state_id(index: int) -> str:
    # A 10-digit id that looks random but is unique: multiplication by a number coprime
    # with 9e9 permutes 0..9e9-1.
    return str(1_000_000_000 + (index * 2_654_435_761 + 12_345) % 9_000_000_000)


def _split(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def person_name(rng: random.Random, sex: str) -> str:
    pool = reference.GIVEN_NAMES_FEMALE if sex == "female" else reference.GIVEN_NAMES_MALE
    return pool[int(rng.random() * len(pool))]


def _surname(rng: random.Random) -> str:
    return reference.SURNAMES[int(rng.random() * len(reference.SURNAMES))]


def random_address(rng: random.Random, district: District) -> Address:
    street = reference.STREET_NAMES[int(rng.random() * len(reference.STREET_NAMES))]
    suffix = reference.STREET_SUFFIXES[int(rng.random() * len(reference.STREET_SUFFIXES))]
    line2 = f"Apt {int(rng.random() * 40) + 1}" if rng.random() < 0.25 else None
    zip_base = 12000 + int(district.district_id[-3:]) % 900
    return {
        "address_line1": f"{int(rng.random() * 2400) + 1} {street} {suffix}",
        "address_line2": line2,
        "city": district.city,
        "state": district.state,
        "postal_code": f"{zip_base + int(rng.random() * 12):05d}",
    }


def _sessions(district_id: str, start: date) -> list[AcademicSession]:
    year = school_year_of(start)
    end = date(year, 6, 25)
    mid = date(year, 1, 29)
    prefix = f"{district_id}-{year}"
    sessions = [
        AcademicSession(f"{prefix}-SY", f"{year - 1}-{year}", "schoolYear", start, end, None, year),
        AcademicSession(
            f"{prefix}-S1",
            f"Fall {year - 1}",
            "semester",
            start,
            mid - timedelta(days=1),
            f"{prefix}-SY",
            year,
        ),
        AcademicSession(
            f"{prefix}-S2", f"Spring {year}", "semester", mid, end, f"{prefix}-SY", year
        ),
    ]
    quarter_starts = [start, date(year - 1, 11, 16), mid, date(year, 4, 12)]
    quarter_ends = [*(q - timedelta(days=1) for q in quarter_starts[1:]), end]
    for number, (q_start, q_end) in enumerate(zip(quarter_starts, quarter_ends, strict=True), 1):
        parent = f"{prefix}-S1" if number <= 2 else f"{prefix}-S2"
        sessions.append(
            AcademicSession(
                f"{prefix}-Q{number}",
                f"Q{number} {year - 1}-{year}",
                "gradingPeriod",
                q_start,
                q_end,
                parent,
                year,
            )
        )
    return sessions


class _Builder:
    """Builds one district; holds the rng and id counters while it does."""

    def __init__(self, rng: random.Random, counters: _Counters) -> None:
        self.rng = rng
        self.counters = counters
        self._final_grades: dict[tuple[str, int, int, str], dict[str, Any]] = {}

    # -- staff ---------------------------------------------------------------------------

    def teacher(
        self,
        district: District,
        school: School,
        room: str,
        role: Literal["teacher", "counselor"] = "teacher",
    ) -> Teacher:
        rng = self.rng
        self.counters.staff += 1
        sex = "female" if rng.random() < 0.77 else "male"  # 77% of teachers are women (NCES)
        given, family = person_name(rng, sex), _surname(rng)
        username = f"{given[0]}{family}{self.counters.staff % 1000}".lower()
        teacher = Teacher(
            sourced_id=new_uuid(rng),
            staff_id=f"T{self.counters.staff:06d}",
            given_name=given,
            family_name=family,
            email=f"{username}@{district.email_domain}",
            username=username,
            school_id=school.school_id,
            room=room,
            role=role,
        )
        (school.counselors if role == "counselor" else school.teachers).append(teacher)
        return teacher

    # -- schools -------------------------------------------------------------------------

    def school(self, district: District, level: Level, number: int, stems: list[str]) -> School:
        rng = self.rng
        stem = stems.pop(int(rng.random() * len(stems))) if stems else f"School {number}"
        org = Org(
            sourced_id=f"{district.district_id}{number:05d}",
            name=f"{stem} {LEVEL_SUFFIX[level]}",
            kind="school",
            parent_id=district.district_id,
        )
        principal = (
            f"{person_name(rng, 'female' if rng.random() < 0.55 else 'male')} {_surname(rng)}"
        )
        # About 60% of public schools run a Title I programme (NCES Fast Facts, Title I).
        return School(
            org=org,
            level=level,
            district_id=district.district_id,
            title_i=rng.random() < 0.6,
            principal=principal,
        )

    def sections_for(self, district: District, school: School, grade: str, count: int) -> None:
        """Courses, sections and their teachers for ``count`` students of ``grade``."""
        year = district.school_year
        term = district.year_session.title
        if school.level == "elementary":
            rooms = max(1, math.ceil(count / rates.ELEMENTARY_CLASS_SIZE))
            label = "Kindergarten" if grade == "KG" else f"Grade {int(grade)}"
            course = Course(
                f"{school.school_id}-{year}-HR-{grade}",
                f"HR-{grade}",
                f"{label} Homeroom",
                "Homeroom",
                grade,
                school.school_id,
            )
            school.courses.append(course)
            slot: list[Section] = []
            for n in range(rooms):
                room = f"{100 + 10 * GRADES.index(grade) + n + 1}"
                homeroom_teacher = self.teacher(district, school, room)
                slot.append(
                    self._section(
                        course,
                        f"{label} - {homeroom_teacher.family_name}",
                        f"HR-{grade}-{n + 1:02d}",
                        "homeroom",
                        school,
                        homeroom_teacher,
                        "1",
                        room,
                        term,
                    )
                )
            school.sections[grade] = [slot]
            return
        per_course = max(1, math.ceil(count / rates.SECONDARY_CLASS_SIZE))
        grade_offset = GRADES.index(grade)
        slots: list[list[Section]] = []
        if school.level == "middle":
            catalogue = [
                (code, title, subject) for code, title, subject in reference.MIDDLE_COURSES
            ]
        else:
            position = GRADES.index(grade) - 9
            catalogue = [
                (code, titles[position], subject)
                for code, subject, titles in reference.HIGH_COURSES
            ]
        for k, (stem, title, subject) in enumerate(catalogue):
            code = f"{stem}{int(grade):02d}"
            course = Course(
                f"{school.school_id}-{year}-{code}",
                code,
                title if school.level == "high" else f"{title} {int(grade)}",
                subject,
                grade,
                school.school_id,
            )
            school.courses.append(course)
            sections: list[Section] = []
            teacher: Teacher | None = None
            for s in range(per_course):
                if s % rates.SECTIONS_PER_TEACHER == 0:
                    # Floor by grade (grades of one school never share a floor), wing by
                    # course, then the teacher's number.
                    room = f"{grade_offset % 4 + 1}{k}{s // rates.SECTIONS_PER_TEACHER}"
                    teacher = self.teacher(district, school, room)
                assert teacher is not None
                # Section s of course k meets in period (k + s) mod 7: a student who takes
                # sections congruent modulo 7 never has two classes in one period, and a
                # teacher's consecutive sections never clash.
                period = str((k + s) % PERIODS_PER_DAY + 1)
                sections.append(
                    self._section(
                        course,
                        f"{course.title} ({s + 1})",
                        f"{code}-{s + 1:02d}",
                        "scheduled",
                        school,
                        teacher,
                        period,
                        teacher.room,
                        term,
                    )
                )
            slots.append(sections)
        school.sections[grade] = slots

    def _section(
        self,
        course: Course,
        title: str,
        class_code: str,
        class_type: Literal["homeroom", "scheduled"],
        school: School,
        teacher: Teacher,
        period: str,
        room: str,
        term: str,
    ) -> Section:
        sourced_id = f"{course.sourced_id}-{class_code[-2:]}"
        section = Section(
            sourced_id=sourced_id,
            course=course,
            title=title,
            class_code=class_code,
            class_type=class_type,
            school_id=school.school_id,
            teacher=teacher,
            period=period,
            room=room,
        )
        section.value = {
            "section_id": sourced_id,
            "course_code": course.code,
            "course_title": course.title,
            "teacher_name": teacher.display_name,
            "period": period,
            "term": term,
            "room": room,
        }
        return section

    # -- students ------------------------------------------------------------------------

    def schedule(self, school: School, grade: str) -> tuple[Section, ...]:
        """Pick one section per course slot, never two in the same period."""
        rng = self.rng
        slots = school.sections[grade]
        count = len(slots[0])
        residue = int(rng.random() * min(PERIODS_PER_DAY, count))
        choices = len(range(residue, count, PERIODS_PER_DAY))
        return tuple(
            slot[residue + PERIODS_PER_DAY * int(rng.random() * choices)] for slot in slots
        )

    def guardians(
        self, district: District, family: str, address: Address
    ) -> tuple[GuardianRecord, ...]:
        rng = self.rng
        count = 2 if rng.random() < rates.TWO_GUARDIANS else 1
        found: list[GuardianRecord] = []
        for n in range(count):
            relationship = RELATIONSHIP_TABLE.pick(rng)
            if count == 2 and n == 1:
                relationship = "father" if found[0]["relationship"] == "mother" else "mother"
            sex = (
                "male"
                if relationship == "father"
                else "female"
                if relationship == "mother"
                else ("female" if rng.random() < 0.6 else "male")
            )
            given = person_name(rng, sex)
            last = family if rng.random() < 0.8 else _surname(rng)
            lives_apart = n == 1 and rng.random() < 0.2
            domain = reference.EMAIL_DOMAINS[int(rng.random() * len(reference.EMAIL_DOMAINS))]
            suffix = int(rng.random() * 100)
            found.append(
                {
                    "guardian_id": new_uuid(rng),
                    "relationship": relationship,
                    "first_name": given,
                    "last_name": last,
                    # ~90% of parents give the school an e-mail address, ~98% a phone (invented).
                    "email": f"{given}.{last}{suffix}@{domain}".lower()
                    if rng.random() < 0.9
                    else None,
                    "phone": fake_phone(rng) if rng.random() < 0.98 else None,
                    **(random_address(rng, district) if lives_apart else address),
                }
            )
        return tuple(found)

    def student(self, district: District, school: School, grade: str, entry: date) -> Student:
        rng = self.rng
        self.counters.student += 1
        index = self.counters.student
        sex = "male" if rng.random() < rates.MALE else "female"
        given, family = person_name(rng, sex), _surname(rng)
        middles = reference.MIDDLE_NAMES
        middle = middles[int(rng.random() * len(middles))] if rng.random() < 0.7 else None
        g = GRADES.index(grade)
        # Age 5 on September 1 in kindergarten (New York's cutoff is December 1; close enough).
        born = date(district.start.year - 6 - g, 9, 2) + timedelta(days=int(rng.random() * 365))
        race = RACE_TABLE.pick(rng)
        english_learner = rng.random() < rates.ENGLISH_LEARNER
        home_language = (
            EL_LANGUAGE_TABLE.pick(rng)
            if english_learner
            else ("eng" if rng.random() < 0.9 else EL_LANGUAGE_TABLE.pick(rng))
        )
        foreign_born = english_learner and rng.random() < 0.35
        homeless = rng.random() < rates.HOMELESS
        foster = rng.random() < rates.FOSTER_CARE
        # Homeless and foster children are categorically eligible for free meals (USDA FNS);
        # the others are drawn so the overall share stays near FREE_REDUCED_LUNCH.
        if homeless or foster or rng.random() < rates.FREE_REDUCED_LUNCH - 0.01:
            frl = (
                "reduced"
                if not (homeless or foster) and rng.random() < rates.REDUCED_OF_FRPL
                else "free"
            )
        else:
            frl = "paid"
        r = rng.random()
        has_iep = r < rates.IDEA
        has_504 = not has_iep and r < rates.IDEA + rates.SECTION_504_ONLY
        alerts: list[str] = []
        if rng.random() < rates.FOOD_ALLERGY:
            alerts.append(
                rng.choice(
                    (
                        "Food allergy: peanuts",
                        "Food allergy: tree nuts",
                        "Food allergy: milk",
                        "Food allergy: shellfish",
                        "Food allergy: eggs",
                    )
                )
            )
        if rng.random() < rates.ASTHMA:
            alerts.append("Asthma")
        if rng.random() < rates.DIABETES:
            alerts.append("Type 1 diabetes")
        if rng.random() < rates.EPILEPSY:
            alerts.append("Seizure disorder")
        address = random_address(rng, district)
        guardians = self.guardians(district, family, address)
        username = f"{given}.{family}{index % 10000}".lower()
        level = school.level
        # Absence propensity: exponential with mean MEAN_DAILY_ABSENCE, so a minority (~19%)
        # misses 10% of days or more (chronic absence); tardiness likewise.
        absence_p = min(0.7, rng.expovariate(1 / rates.MEAN_DAILY_ABSENCE))
        tardy_p = min(0.5, rng.expovariate(1 / rates.MEAN_DAILY_TARDY))
        programs: list[str] = []
        if school.title_i:
            programs.append("title_i")
        if g >= 2 and rng.random() < rates.GIFTED:
            programs.append("gifted")
        if level == "elementary" and rng.random() < 0.15:
            programs.append("after_school")
        if level == "high" and rng.random() < 0.35:
            programs.append("athletics")
        # About 55% of public school students ride a school bus (NCES Digest, table 236.90).
        rides_bus = rng.random() < 0.55 and not (level == "high" and rng.random() < 0.2)
        route = int(rng.random() * school.bus_routes) + 1
        pickup = (
            (6 * 60 + 45 + int(rng.random() * 50))
            if level != "elementary"
            else (7 * 60 + 30 + int(rng.random() * 45))
        )
        sections = self.schedule(school, grade)
        homeroom = (
            sections[0].title
            if level == "elementary"
            else f"HR {grade}-{int(rng.random() * 12) + 1:02d}"
        )
        counselors = school.counselors
        return Student(
            index=index,
            state_id=_state_id(index),
            local_id=f"{int(district.district_id[-3:]):03d}{index:07d}",
            sourced_id=new_uuid(rng),
            username=username,
            sis_user_id=f"{index + 500_000}",
            given_name=given,
            middle_name=middle,
            family_name=family,
            suffix="Jr." if sex == "male" and rng.random() < 0.02 else None,
            preferred_name=person_name(rng, sex) if rng.random() < 0.05 else None,
            sex=sex,
            birth_date=born,
            race=race,
            hispanic=race == "hispanic",
            country_of_birth=(
                "MX"
                if rng.random() < 0.5
                else rng.choice(("DO", "GT", "HN", "SV", "CN", "IN", "BD", "HT", "YE", "EC"))
            )
            if foreign_born
            else "US",
            state_of_birth=None
            if foreign_born
            else ("NY" if rng.random() < 0.8 else rng.choice(("NJ", "PA", "CT", "FL", "CA"))),
            city_of_birth=district.city if not foreign_born and rng.random() < 0.5 else None,
            home_language=home_language,
            district=district,
            school=school,
            grade=grade,
            entry_date=entry,
            homeroom=homeroom,
            counselor=counselors[index % len(counselors)].display_name if counselors else None,
            contact={
                "email": f"{username}@students.{district.email_domain}",
                "phone": fake_phone(rng) if level == "high" and rng.random() < 0.6 else None,
                **address,
            },
            guardians=guardians,
            sections=tuple(section.value for section in sections),
            ability=rng.gauss(0.0, 1.0),
            absence_p=absence_p,
            tardy_p=tardy_p,
            programs=tuple(programs),
            ell_status="active"
            if english_learner
            else ("exited" if home_language != "eng" and rng.random() < 0.5 else "never"),
            elp_level=rng.choice(
                ("Entering", "Emerging", "Transitioning", "Expanding", "Commanding")
            )
            if english_learner
            else None,
            free_reduced_lunch=frl,
            homeless=homeless,
            foster_care=foster,
            medical_alerts=tuple(alerts),
            disability=IDEA_TABLE.pick(rng) if has_iep else None,
            has_iep=has_iep,
            has_504=has_504,
            bus_route=f"Route {route}" if rides_bus else None,
            bus_stop=bus_stop(address, f"Route {route}") if rides_bus else None,
            pickup_ms=pickup * 60_000 if rides_bus else None,
            dropoff_ms=(pickup + 8 * 60 + 20) * 60_000 if rides_bus else None,
            ssn=f"9{int(rng.random() * 100):02d}-{int(rng.random() * 100):02d}-"
            f"{int(rng.random() * 10000):04d}"
            if rng.random() < rates.HAS_SSN
            else None,
            other_government_id=f"A{int(rng.random() * 1e9):09d}" if foreign_born else None,
            password=f"{int(rng.random() * 10000):04d}"
            if level == "elementary" and rng.random() < 0.3
            else None,
            health_notes=rng.choice(reference.HEALTH_NOTES)
            if alerts and rng.random() < 0.5
            else None,
            counseling_notes=rng.choice(reference.COUNSELING_NOTES)
            if rng.random() < rates.COUNSELING_NOTE
            else None,
        )

    def prior_transcript(self, student: Student) -> None:
        """Final grades of the earlier high-school years, with GPA and credits.

        The grade rows are shared between students (there are few distinct ones), which keeps
        the district small in memory and quick to build.
        """
        g = student.grade_index
        if g < 10:
            return
        grades: list[dict[str, Any]] = []
        points = 0.0
        credits = 0.0
        earned = 0.0
        rng = self.rng
        shared = self._final_grades
        for earlier in range(9, g):
            year = student.district.school_year - (g - earlier)
            for stem, _subject, titles in reference.HIGH_COURSES:
                credit = 0.5 if stem == "PE" else 1.0
                letter, value = letter_grade(student.ability + 0.7 * (rng.random() * 2 - 1))
                key = (stem, earlier, year, letter)
                row = shared.get(key)
                if row is None:
                    row = shared[key] = {
                        "course_code": f"{stem}{earlier:02d}",
                        "course_title": titles[earlier - 9],
                        "school_year": year,
                        "term": "Full Year",
                        "grade": letter,
                        "credits": credit if value > 0 else 0.0,
                    }
                grades.append(row)
                points += value * credit
                credits += credit
                earned += row["credits"]
        student.course_grades = tuple(grades)
        student.gpa = round(points / credits, 2) if credits else None
        student.credits = earned

    # -- district ------------------------------------------------------------------------

    def district(self, number: int, students: int, start: date) -> District:
        rng = self.rng
        name, city, state = reference.DISTRICT_NAMES[number % len(reference.DISTRICT_NAMES)]
        if number >= len(reference.DISTRICT_NAMES):
            name = f"{name} {number // len(reference.DISTRICT_NAMES) + 1}"
        district_id = f"36{(10_000 + 7_919 * (number + 1) + int(rng.random() * 500)) % 100_000:05d}"
        org = Org(sourced_id=district_id, name=name, kind="district", parent_id=None)
        district = District(
            org=org,
            city=city,
            state=state,
            school_year=school_year_of(start),
            start=start,
            sessions=_sessions(district_id, start),
            email_domain=f"{city.lower().replace(' ', '')}.k12.example.org",
        )
        per_grade = _split(students, len(GRADES))
        stems = list(reference.SCHOOL_NAME_STEMS)
        number_of_school = 0
        for level in ("elementary", "middle", "high"):
            level_total = sum(per_grade[GRADES.index(g)] for g in LEVEL_GRADES[level])
            count = max(1, round(level_total / LEVEL_SIZE[level]))
            schools = []
            for _ in range(count):
                number_of_school += 1
                schools.append(self.school(district, level, number_of_school, stems))
            district.schools.extend(schools)
            for school in schools:
                # One counselor per ~400 students in secondary schools (ASCA, 2022-23: 385).
                if level != "elementary":
                    size = level_total // count
                    for n in range(max(1, round(size / 400))):
                        self.teacher(district, school, f"G{n + 1:02d}", role="counselor")
            for grade in LEVEL_GRADES[level]:
                split = _split(per_grade[GRADES.index(grade)], count)
                for school, grade_count in zip(schools, split, strict=True):
                    if grade_count == 0:
                        continue
                    self.sections_for(district, school, grade, grade_count)
                    for _ in range(grade_count):
                        student = self.student(district, school, grade, start)
                        self.prior_transcript(student)
                        district.students.append(student)
        return district


def letter_grade(score: float) -> tuple[str, float]:
    """Letter grade and grade points for a standardised achievement score."""
    if score > 1.0:
        return "A", 4.0
    if score > 0.3:
        return "B+", 3.3
    if score > -0.3:
        return "B", 3.0
    if score > -0.9:
        return "C+", 2.3
    if score > -1.5:
        return "C", 2.0
    if score > -2.1:
        return "D", 1.0
    return "F", 0.0


@dataclass
class World:
    """Every district of a simulation, and the builder that can add students later."""

    districts: list[District]
    builder: _Builder

    def new_student(self, district: District, school: School, grade: str, entry: date) -> Student:
        student = self.builder.student(district, school, grade, entry)
        self.builder.prior_transcript(student)
        district.students.append(student)
        return student


def build_world(
    rng: random.Random, students: int, districts: int = 1, start: date | None = None
) -> World:
    """The districts at the start of the year; students are split evenly across districts."""
    if students < 0:
        raise ValueError("students must be >= 0")
    if districts < 1:
        raise ValueError("districts must be >= 1")
    from connectors.simulation.calendar import DEFAULT_START

    builder = _Builder(rng, _Counters())
    first_day = start or DEFAULT_START
    with gc_paused():
        built = [
            builder.district(n, count, first_day)
            for n, count in enumerate(_split(students, districts))
        ]
    return World(built, builder)


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building many long-lived objects.

    Building a large district creates millions of objects that all survive; collecting while
    they are made only re-scans them (it doubles the build time). Reference counting still
    frees garbage; the previous collector state is restored on exit.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def build_districts(
    students: int, seed: int, districts: int = 1, start: date | None = None
) -> list[District]:
    """The initial districts of the simulation for ``seed`` (same as :func:`simulate` uses)."""
    return build_world(random.Random(seed), students, districts, start).districts
