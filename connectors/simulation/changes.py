"""The day-by-day change stream of the simulated districts.

:class:`Engine` owns the mutable world. :meth:`Engine.initial` yields the start of the year:
the consents and opt-outs already on file, then one full snapshot per student. Each call of
:meth:`Engine.day` simulates one school day: it plans the day's happenings (attendance, tests,
report cards, discipline, moves, withdrawals, new students, contact and status updates,
consent decisions), sorts them by time and applies them one by one, emitting after each the
student's whole current record (or a DELETE, or a consent event).

Rates and their sources are in :mod:`connectors.simulation.rates`. Everything random comes
from the one ``random.Random`` of the engine.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta
from typing import Any, Final, NamedTuple

from connectors.simulation import calendar, rates, record, reference
from connectors.simulation.consent import (
    CAREWELL,
    HEALTH_PURPOSE,
    LEARNWELL,
    MEASURELY,
    PARENT_PORTAL,
    PRIVACY_OFFICE,
    REGISTRAR_SYSTEM,
    Kind,
    Provenance,
    consent_value,
)
from connectors.simulation.district import (
    GRADES,
    IDEA_TABLE,
    District,
    School,
    Student,
    Table,
    World,
    bus_stop,
    fake_phone,
    letter_grade,
    level_of,
    new_uuid,
    person_name,
    random_address,
)
from streams.policy.majority import DEFAULT_MAJORITY_AGE, majority_at

#: Topic of student record changes (same as ``streams.kafka.names.CHANGES``).
CHANGES_TOPIC: Final = "sis.student.changes"
#: Topic of consent decisions (same as ``streams.kafka.names.CONSENT``).
CONSENT_TOPIC: Final = "consent.events"


class SimEvent(NamedTuple):
    """One event to publish: the topic, the message key and the Avro value dict."""

    topic: str
    key: str
    value: dict[str, Any]


#: Grade points of the letter grades :func:`letter_grade` gives.
_POINTS: Final[dict[str, float]] = {
    "A": 4.0,
    "B+": 3.3,
    "B": 3.0,
    "C+": 2.3,
    "C": 2.0,
    "D": 1.0,
    "F": 0.0,
}
_INCIDENTS: Final[Table] = Table([(code, w) for code, _, w in reference.DISCIPLINE_INCIDENTS])
_INCIDENT_ACTION: Final[dict[str, str]] = {
    code: action for code, action, _ in reference.DISCIPLINE_INCIDENTS
}
#: Discipline is rarer in elementary school (CRDC: most suspensions are in grades 6-12).
_DISCIPLINE_WEIGHT: Final[dict[str, float]] = {"elementary": 0.4, "middle": 1.6, "high": 1.3}
_PARTNER_OPT_OUT: Final[Table] = Table([(LEARNWELL, 0.5), (MEASURELY, 0.35), (CAREWELL, 0.15)])

#: Benchmark windows (school-day index of the first day, length) of a fall-winter-spring
#: interim assessment such as NWEA MAP or i-Ready, given to grades K-8.
_BENCHMARK_WINDOWS: Final[tuple[tuple[str, int, int], ...]] = (
    ("Fall", 5, 20),
    ("Winter", 80, 20),
    ("Spring", 150, 20),
)
#: New York State grades 3-8 tests (ELA then Mathematics, in April/May) and Regents exams
#: (June), as school-day indexes of a September start.
_STATE_TEST_DAYS: Final[dict[str, int]] = {"ELA": 140, "Mathematics": 147}
_REGENTS_DAY: Final[int] = 176
_REGENTS: Final[dict[str, tuple[str, str]]] = {
    "09": ("Algebra I", "Mathematics"),
    "10": ("Global History and Geography II", "Social Studies"),
    "11": ("English Language Arts", "English Language Arts"),
    "12": ("Physics", "Science"),
}

#: Field-trip and seasonal medication forms expire after this many days.
_SHORT_CONSENT_DAYS: Final[int] = 14
_DAY_MS: Final[int] = 86_400_000

#: A change: ``handler(day index, time in epoch ms, student or None, payload)`` applies it to
#: the world and returns the event to emit (None: nothing to emit after all).
Handler = Callable[[int, int, Any, Any], "SimEvent | None"]
#: A planned change of a day: (time, sequence number, handler, student or None, payload).
_Action = tuple[int, int, Handler, "Student | None", Any]


def _provenance(
    student: Student, guardian: dict[str, Any] | None, source: str, event_id: str, at: int
) -> Provenance:
    """A grant's provenance (no draw from the engine's random stream): the student signs it
    when of age at ``at`` (18: the simulator assumes the default age of majority), else the
    guardian who recorded it (the first one for the registrar's paper forms)."""
    portal = source == PARENT_PORTAL
    of_age = (majority_at(student.birth_date, DEFAULT_MAJORITY_AGE) or at + 1) <= at
    return Provenance(
        granted_by="ELIGIBLE_STUDENT" if of_age or guardian is None else "GUARDIAN",
        guardian_id=None if of_age or guardian is None else str(guardian["guardian_id"]),
        signed_at=at,
        method="PORTAL" if portal else "PAPER",
        document_ref=f"{'portal-submission' if portal else 'scanned-form'}:{event_id[:13]}",
    )


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw (inversion for small means, normal approximation for large ones)."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit = math.exp(-mean)
    count, product = 0, rng.random()
    while product > limit:
        count += 1
        product *= rng.random()
    return count


def _same_address(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return all(a[k] == b[k] for k in ("address_line1", "address_line2", "postal_code"))


def _unique(students: Iterable[Student]) -> list[Student]:
    seen: set[int] = set()
    found: list[Student] = []
    for student in students:
        if student.index not in seen:
            seen.add(student.index)
            found.append(student)
    return found


def _per_day(per_year: float) -> float:
    return per_year / rates.SCHOOL_DAYS_PER_YEAR


def _minutes(rng: random.Random, first: float, last: float) -> float:
    return first + rng.random() * (last - first)


class Engine:
    """Runs the simulation over a :class:`World`; see the module docstring."""

    def __init__(
        self, world: World, rng: random.Random, *, days: int, source_system: str = "sis-simulator"
    ) -> None:
        self.world = world
        self.rng = rng
        self.days = days
        self.source_system = source_system
        self.start = world.districts[0].start if world.districts else calendar.DEFAULT_START
        # One more day than simulated: it tells whether the last day ends a grading period.
        self.calendar = calendar.school_days(self.start, days + 1)
        self.active: list[Student] = []
        for district in world.districts:
            for student in district.students:
                self._activate(student)
        self.granted: list[Student] = []
        self._seq = 0
        self._incident = 0
        self._plans: dict[int, list[tuple[Student, Kind, Any]]] = {}
        self._initial_consents: list[tuple[int, Student, Kind, Any]] = []
        self._tests: dict[int, list[tuple[School, str, dict[str, Any]]]] = {}
        self._grading_days = self._find_grading_days()
        for student in list(self.active):
            self._plan_consents(student, first_day=None)
        self._plan_tests()

    # -- bookkeeping ---------------------------------------------------------------------

    def _activate(self, student: Student) -> None:
        student.slot = len(self.active)
        self.active.append(student)

    def _deactivate(self, student: Student) -> None:
        last = self.active.pop()
        if last is not student:
            self.active[student.slot] = last
            last.slot = student.slot
        student.slot = -1

    def _event_id(self) -> str:
        return new_uuid(self.rng)

    def _days_enrolled(self, student: Student, day: int) -> int:
        return max(0, day - student.entry_day + 1)

    def _snapshot(self, student: Student, at: int, day: int, *, keep: bool = True) -> SimEvent:
        value = record.snapshot(
            student,
            self._event_id(),
            at,
            self.source_system,
            self._days_enrolled(student, day),
            keep=keep,
        )
        return SimEvent(CHANGES_TOPIC, student.state_id, value)

    # -- consent plans -------------------------------------------------------------------

    def _plan(self, day: int | None, student: Student, kind: Kind, payload: Any) -> None:
        """Schedule a consent decision on school day ``day`` (None: already on file)."""
        if day is None:
            before = int(self.rng.random() * 90) + 1  # signed at registration or last year
            at = calendar.at_ms(self.start - timedelta(days=before), _minutes(self.rng, 420, 1260))
            self._initial_consents.append((at, student, kind, payload))
        elif day < self.days:
            self._plans.setdefault(day, []).append((student, kind, payload))

    def _plan_consents(self, student: Student, first_day: int | None) -> None:
        """Draw the consent decisions this student's family makes this year.

        ``first_day`` None: a student of the initial roster (some decisions are already on file);
        else the day a new student enrolled (decisions come from that day on).
        """
        rng = self.rng

        def when(on_file: float, window: int) -> int | None:
            if first_day is None:
                if rng.random() < on_file:
                    return None
                return int(rng.random() * window)
            return first_day + int(rng.random() * min(window, rates.NOTICE_WINDOW_DAYS))

        if rng.random() < rates.DIRECTORY_OPT_OUT:
            self._plan(when(0.5, rates.NOTICE_WINDOW_DAYS), student, "DIRECTORY_OPT_OUT", None)
        if rng.random() < rates.ALL_OPT_OUT:
            self._plan(when(0.7, rates.SCHOOL_DAYS_PER_YEAR), student, "ALL_OPT_OUT", None)
        if rng.random() < rates.PARTNER_OPT_OUT:
            self._plan(
                when(0.5, rates.SCHOOL_DAYS_PER_YEAR),
                student,
                "PARTNER_OPT_OUT",
                _PARTNER_OPT_OUT.pick(rng),
            )
        categories = []
        if student.has_medical_needs:
            categories.append("special_medical")
        if student.has_iep or student.has_504:
            categories.append("special_iep_504")
        if categories and rng.random() < rates.HEALTH_CONSENT_UPTAKE:
            # Forms come back within the first six weeks of school.
            self._plan(when(rates.CONSENT_AT_START, 30), student, "GRANT", categories)

    def _consent(self, kind: Kind, student: Student, payload: Any, at: int) -> SimEvent:
        rng = self.rng
        district = student.district
        signer = student.guardians[0] if student.guardians else None
        if rng.random() < 0.75 and student.guardians:
            guardian = signer = student.guardians[int(rng.random() * len(student.guardians))]
            recorded_by, source = f"guardian:{guardian['guardian_id']}", PARENT_PORTAL
        else:
            recorded_by, source = f"registrar@{student.school.school_id}", REGISTRAR_SYSTEM
        partner: str | None = None
        categories: list[str] = []
        purpose: str | None = None
        expires: int | None = None
        if kind == "GRANT":
            partner, categories, purpose = CAREWELL, list(payload), HEALTH_PURPOSE
            short = rng.random() < rates.SHORT_CONSENT
            expires = (
                at + _SHORT_CONSENT_DAYS * _DAY_MS
                if short
                else calendar.at_ms(
                    calendar.DEFAULT_YEAR_END.replace(year=district.school_year), 23 * 60 + 59
                )
            )
            for category in categories:
                student.health_grants[category] = expires
            self.granted.append(student)
        elif kind == "REVOKE":
            partner, categories = CAREWELL, list(payload)
            for category in categories or list(student.health_grants):
                student.health_grants.pop(category, None)
        elif kind == "PARTNER_OPT_OUT":
            partner = str(payload)
        event_id = self._event_id()
        provenance = _provenance(student, signer, source, event_id, at) if kind == "GRANT" else None
        value = consent_value(
            event_id=event_id,
            kind=kind,
            student_id=student.state_id,
            district_id=district.district_id,
            effective_at=at,
            recorded_by=recorded_by,
            source_system=source,
            partner=partner,
            categories=categories,
            purpose=purpose,
            expires_at=expires,
            provenance=provenance,
        )
        return SimEvent(CONSENT_TOPIC, student.state_id, value)

    def _district_opt_out(self, district: District, at: int) -> SimEvent:
        value = consent_value(
            event_id=self._event_id(),
            kind="DISTRICT_OPT_OUT",
            student_id=None,
            district_id=district.district_id,
            effective_at=at,
            recorded_by=f"privacy-officer@{district.email_domain}",
            source_system=PRIVACY_OFFICE,
            partner=MEASURELY,
            purpose="Board resolution: the district ends its assessment analytics pilot",
        )
        return SimEvent(CONSENT_TOPIC, district.district_id, value)

    @property
    def district_opt_out_day(self) -> int | None:
        """School day of the district opt-out (the second district leaves ``measurely``)."""
        if len(self.world.districts) < 2:
            return None
        return self.days // 2

    # -- the start of the year -----------------------------------------------------------

    def initial(self) -> Iterator[SimEvent]:
        """Consents already on file, then one UPSERT snapshot per student of the roster."""
        for at, student, kind, payload in sorted(
            self._initial_consents, key=lambda item: (item[0], item[1].index)
        ):
            yield self._consent(kind, student, payload, at)
        if self.days == 0 and self.district_opt_out_day is not None:
            yield self._district_opt_out(self.world.districts[1], calendar.at_ms(self.start, 230))
        base = calendar.at_ms(self.start, 240)  # the initial export starts at 04:00
        for n, student in enumerate(self.active):
            # Sections are cached from a student's first change on, not here: caching a whole
            # roster at once keeps millions of objects alive that most days never reuse.
            yield self._snapshot(student, base + 10 * n, -1, keep=False)

    # -- planning a day ------------------------------------------------------------------

    def _find_grading_days(self) -> dict[int, str]:
        """School-day index -> marking period that ends that day (within the run)."""
        found: dict[int, str] = {}
        if not self.world.districts:
            return found
        quarters = [s for s in self.world.districts[0].sessions if s.kind == "gradingPeriod"]
        for number, quarter in enumerate(quarters, 1):
            for index in range(len(self.calendar) - 1):
                if self.calendar[index] <= quarter.end < self.calendar[index + 1]:
                    found[index] = f"Q{number}"
        return found

    def _plan_tests(self) -> None:
        rng = self.rng
        for district in self.world.districts:
            for school in district.schools:
                for grade in school.sections:
                    g = GRADES.index(grade)
                    if g <= 8:
                        for window, first, length in _BENCHMARK_WINDOWS:
                            day = first + int(rng.random() * (length - 2))
                            for offset, subject in enumerate(reference.BENCHMARK_SUBJECTS):
                                self._add_test(
                                    day + offset,
                                    school,
                                    grade,
                                    {"kind": "benchmark", "window": window, "subject": subject},
                                )
                    if 3 <= g <= 8:
                        for subject, day in _STATE_TEST_DAYS.items():
                            self._add_test(
                                day, school, grade, {"kind": "state", "subject": subject}
                            )
                    if grade in _REGENTS:
                        self._add_test(
                            _REGENTS_DAY + int(rng.random() * 3),
                            school,
                            grade,
                            {
                                "kind": "regents",
                                "subject": _REGENTS[grade][1],
                                "exam": _REGENTS[grade][0],
                            },
                        )

    def _add_test(self, day: int, school: School, grade: str, spec: dict[str, Any]) -> None:
        if day < self.days:
            self._tests.setdefault(day, []).append((school, grade, spec))

    def day(self, index: int) -> Iterator[SimEvent]:
        """Simulate school day ``index`` (0-based): plan it, then yield its events in time order.

        The day is planned when this is called; the changes are applied as the events are
        consumed, so consume them before calling ``day`` again.
        """
        rng = self.rng
        today = self.calendar[index]
        actions: list[_Action] = []

        midnight = calendar.day_start_ms(today)

        def add(
            minute: float, handler: Handler, student: Student | None, payload: Any = None
        ) -> None:
            self._seq += 1
            actions.append((midnight + int(minute * 60_000), self._seq, handler, student, payload))

        # Attendance, taken in first period; absent students are flagged by 08:45.
        absent_today: set[int] = set()
        for student in self.active:
            r = rng.random()
            if r < student.absence_p:
                absent_today.add(student.index)
                add(
                    _minutes(rng, 480, 525),
                    self._absent,
                    student,
                    0.5 if rng.random() < 0.1 else 1.0,
                )
            elif r < student.absence_p + student.tardy_p:
                add(_minutes(rng, 490, 570), self._tardy, student)

        n = len(self.active)
        # Discipline incidents during the school day.
        for student in self._pick(poisson(rng, n * _per_day(rates.DISCIPLINE_PER_YEAR) * 1.1)):
            if (
                rng.random() * 1.6 < _DISCIPLINE_WEIGHT[student.school.level]
                and student.index not in absent_today
            ):
                add(_minutes(rng, 540, 900), self._incident_for, student)
        for student in self._pick(poisson(rng, n * _per_day(rates.WITHDRAWAL_PER_YEAR))):
            add(_minutes(rng, 480, 960), self.withdraw, student)
        for student in self._pick(poisson(rng, n * _per_day(rates.TRANSFER_PER_YEAR))):
            add(_minutes(rng, 480, 960), self.transfer, student)
        for student in self._pick(poisson(rng, n * _per_day(rates.CONTACT_UPDATE_PER_YEAR))):
            add(_minutes(rng, 420, 1260), self.update_contact, student)
        for student in self._pick(poisson(rng, n * _per_day(0.01))):
            add(_minutes(rng, 480, 960), self.update_name, student)
        # Status changes of special indicators: evaluations, plans, diagnoses, housing; and in
        # the first six weeks, school-meal applications processed for students listed as paid.
        for student in self._pick(poisson(rng, n * _per_day(0.03))):
            add(_minutes(rng, 480, 960), self._special_update, student)
        if index < 30:
            for student in self._pick(poisson(rng, n * 0.03 / 30)):
                add(_minutes(rng, 480, 960), self._meal_application, student)
        # New students register with the district office (after the first day: whoever comes
        # on the first day is on the initial roster).
        new_students = poisson(rng, n * _per_day(rates.NEW_ENROLMENT_PER_YEAR)) if index else 0
        for _ in range(new_students):
            if self.world.districts:
                district = self.world.districts[int(rng.random() * len(self.world.districts))]
                if district.schools:
                    add(_minutes(rng, 480, 960), self.enroll, None, district)

        # Tests given today (absent students make them up later; not simulated).
        tests = self._tests.get(index, [])
        if tests:
            by_class: dict[tuple[str, str], list[Student]] = {}
            for student in self.active:
                by_class.setdefault((student.school.school_id, student.grade), []).append(student)
            for school, grade, spec in tests:
                minute = _minutes(rng, 540, 780)
                for student in by_class.get((school.school_id, grade), []):
                    if student.index not in absent_today:
                        add(minute + rng.random() * 60, self._test_result, student, spec)

        # Report cards: grades are posted the evening the marking period ends.
        term = self._grading_days.get(index)
        if term is not None:
            for student in self.active:
                if student.school.level != "elementary":
                    add(_minutes(rng, 960, 1320), self._report_card, student, term)

        # Consent decisions planned for today, revocations, and the district opt-out.
        for student, kind, payload in self._plans.pop(index, []):
            add(_minutes(rng, 360, 1380), self._consent_action, student, (kind, payload))
        self.granted = _unique(s for s in self.granted if s.active and s.health_grants)
        for student in self._pick(
            poisson(rng, len(self.granted) * _per_day(rates.REVOKE_PER_YEAR)), self.granted
        ):
            add(_minutes(rng, 360, 1380), self._revoke, student)
        if index == self.district_opt_out_day:
            add(600, self._opt_out_district, None, self.world.districts[1])

        actions.sort(key=lambda action: (action[0], action[1]))
        return self._apply(index, actions)

    def _apply(self, index: int, actions: list[_Action]) -> Iterator[SimEvent]:
        # A generator, so that a day's events are never all alive at once.
        for at, _, handler, who, payload in actions:
            if who is not None and not who.active:
                continue  # withdrew earlier today
            event = handler(index, at, who, payload)
            if event is not None:
                yield event

    def _pick(self, count: int, population: list[Student] | None = None) -> list[Student]:
        pool = self.active if population is None else population
        if not pool or count <= 0:
            return []
        return [pool[int(self.rng.random() * len(pool))] for _ in range(count)]

    # -- handlers (see Handler); the public ones also serve the OneRoster delta writer ----

    def _absent(self, day: int, at: int, s: Student, amount: float) -> SimEvent:
        s.days_absent += amount
        s.last_absence = self.calendar[day]
        return self._snapshot(s, at, day)

    def _tardy(self, day: int, at: int, s: Student, _: Any) -> SimEvent:
        s.days_tardy += 1
        return self._snapshot(s, at, day)

    def _incident_for(self, day: int, at: int, s: Student, _: Any) -> SimEvent:
        rng = self.rng
        self._incident += 1
        code = _INCIDENTS.pick(rng)
        action = _INCIDENT_ACTION[code]
        suspended = 0.0
        if action == "out_of_school_suspension":
            suspended = float(1 + int(rng.random() * 5))
        elif action == "in_school_suspension":
            suspended = float(1 + int(rng.random() * 2))
        incident = {
            "incident_id": f"INC-{s.district.district_id}-{self._incident:06d}",
            "incident_date": self.calendar[day],
            "behavior_code": code,
            "action": action,
            "days_suspended": suspended,
        }
        s.incidents = (incident, *s.incidents)
        return self._snapshot(s, at, day)

    def withdraw(self, day: int, at: int, s: Student, _: Any) -> SimEvent:
        """The student leaves the district: a DELETE, and no more events for them."""
        s.status = "withdrawn"
        s.exit_date = self.calendar[day]
        self._deactivate(s)
        value = record.deletion(s, self._event_id(), at, self.source_system)
        return SimEvent(CHANGES_TOPIC, s.state_id, value)

    def transfer(self, day: int, at: int, s: Student, _: Any) -> SimEvent:
        """A move to another school of the same level (a schedule change if there is none)."""
        rng = self.rng
        others = [
            x
            for x in s.district.schools_of(s.school.level)
            if x is not s.school and s.grade in x.sections
        ]
        builder = self.world.builder
        if others:
            school = others[int(rng.random() * len(others))]
            s.school = school
            s.entry_date = self.calendar[day]
            s.homeroom = f"HR {s.grade}-{int(rng.random() * 12) + 1:02d}"
            s.counselor = (
                school.counselors[s.index % len(school.counselors)].display_name
                if school.counselors
                else None
            )
            others_programs = tuple(p for p in s.programs if p != "title_i")
            s.programs = ("title_i", *others_programs) if school.title_i else others_programs
            # A family that changes schools has usually moved house.
            self._move_house(s)
            s.cache.pop(record.ENROLLMENT, None)
        sections = builder.schedule(s.school, s.grade)
        s.sections = tuple(section.value for section in sections)
        if s.school.level == "elementary":
            s.homeroom = sections[0].title
            s.cache.pop(record.ENROLLMENT, None)
        return self._snapshot(s, at, day)

    def _move_house(self, s: Student) -> None:
        """The family moves: new home address for the student and the guardians living there."""
        old = s.contact
        new = random_address(self.rng, s.district)
        s.contact = {"email": old["email"], "phone": old["phone"], **new}
        s.guardians = tuple({**g, **new} if _same_address(g, old) else g for g in s.guardians)
        if s.bus_route is not None:
            s.bus_stop = bus_stop(new, s.bus_route)
            s.cache.pop(record.TRANSPORTATION, None)

    def update_contact(self, day: int, at: int, s: Student, _: Any) -> SimEvent:
        """A guardian's new phone or e-mail, or the family moves house."""
        rng = self.rng
        r = rng.random()
        which = int(rng.random() * len(s.guardians))
        guardian = s.guardians[which]
        if r < 0.4:
            guardian = {**guardian, "phone": fake_phone(rng)}
        elif r < 0.7:
            domain = reference.EMAIL_DOMAINS[int(rng.random() * len(reference.EMAIL_DOMAINS))]
            address = (
                f"{guardian['first_name']}.{guardian['last_name']}"
                f"{int(rng.random() * 1000)}@{domain}"
            )
            guardian = {**guardian, "email": address.lower()}
        else:
            self._move_house(s)
            return self._snapshot(s, at, day)
        s.guardians = (*s.guardians[:which], guardian, *s.guardians[which + 1 :])
        return self._snapshot(s, at, day)

    def update_name(self, day: int, at: int, s: Student, _: Any) -> SimEvent:
        """The student starts (or stops) going by a preferred first name."""
        s.preferred_name = None if s.preferred_name else person_name(self.rng, s.sex)
        s.cache.pop(record.NAMES, None)
        return self._snapshot(s, at, day)

    def _special_update(self, day: int, at: int, s: Student, _: Any) -> SimEvent:
        rng = self.rng
        r = rng.random()
        if r < 0.3 and not s.has_iep:
            # Evaluation completed: an IEP (replacing a 504 plan if there was one).
            s.has_iep, s.has_504 = True, False
            s.disability = IDEA_TABLE.pick(rng)
        elif r < 0.45 and not s.has_iep and not s.has_504:
            s.has_504 = True
        elif r < 0.65:
            s.medical_alerts = (
                *s.medical_alerts,
                rng.choice(
                    ("Food allergy: peanuts", "Asthma", "Bee sting allergy", "Concussion protocol")
                ),
            )
        elif r < 0.8 and s.ell_status == "active":
            s.ell_status, s.elp_level = "exited", None
        else:
            s.homeless = not s.homeless
            if s.homeless:
                s.free_reduced_lunch = "free"
        return self._snapshot(s, at, day)

    def _meal_application(self, day: int, at: int, s: Student, _: Any) -> SimEvent | None:
        if s.free_reduced_lunch != "paid":
            return None
        s.free_reduced_lunch = "reduced" if self.rng.random() < 0.3 else "free"
        return self._snapshot(s, at, day)

    def enroll(self, day: int, at: int, _: None, district: District) -> SimEvent:
        """A new student enrolls in ``district`` (any grade, a school of that level)."""
        rng = self.rng
        grade = GRADES[int(rng.random() * len(GRADES))]
        schools = [x for x in district.schools_of(level_of(grade)) if grade in x.sections]
        school = schools[int(rng.random() * len(schools))] if schools else district.schools[0]
        if grade not in school.sections:
            grade = next(iter(school.sections))
        student = self.world.new_student(district, school, grade, self.calendar[day])
        student.entry_day = day
        self._activate(student)
        self._plan_consents(student, first_day=day + 1)
        return self._snapshot(student, at, day)

    def _test_result(self, day: int, at: int, s: Student, spec: dict[str, Any]) -> SimEvent:
        rng = self.rng
        g = s.grade_index
        year = s.district.school_year
        score_z = s.ability + rng.gauss(0.0, 0.35)
        subject = spec["subject"]
        if spec["kind"] == "benchmark":
            window = spec["window"]
            growth = {"Fall": 0.0, "Winter": 5.0, "Spring": 8.0}[window] * (1 - g / 15)
            base = 140.0 + 80.0 * (1 - math.exp(-g / 4.5)) + growth
            scale = round(base + 14.0 * score_z, 0)
            level = (
                "Low"
                if score_z < -0.84
                else "LoAvg"
                if score_z < -0.25
                else "Avg"
                if score_z < 0.25
                else "HiAvg"
                if score_z < 0.84
                else "High"
            )
            name = f"District Benchmark {subject}, {window} {year - 1}-{str(year)[2:]}"
            ident = f"BENCH-{subject[:4].upper()}-{window[:2].upper()}-{year}-{s.grade}"
        elif spec["kind"] == "state":
            scale = round(450.0 + 20.0 * score_z, 0)
            level = (
                "Level 1"
                if score_z < -0.6
                else "Level 2"
                if score_z < 0.1
                else "Level 3"
                if score_z < 1.0
                else "Level 4"
            )
            name = f"NYS Grade {g} {subject}"
            ident = f"NYS-{subject[:4].upper()}-{s.grade}-{year}"
        else:
            scale = float(max(0, min(100, round(76.0 + 12.0 * score_z))))
            level = (
                "Level 1"
                if scale < 55
                else "Level 2"
                if scale < 65
                else "Level 3"
                if scale < 80
                else "Level 4"
                if scale < 85
                else "Level 5"
            )
            name = f"Regents Examination in {spec['exam']}"
            ident = f"REGENTS-{spec['exam'].replace(' ', '').upper()[:12]}-{year}-06"
        s.assessments = (
            {
                "assessment_id": ident,
                "assessment_name": name,
                "subject": subject,
                "administration_date": self.calendar[day],
                "scale_score": float(scale),
                "performance_level": level,
            },
            *s.assessments,
        )
        return self._snapshot(s, at, day)

    def _report_card(self, day: int, at: int, s: Student, term: str) -> SimEvent:
        rng = self.rng
        year = s.district.school_year
        final = term == "Q4"
        posted: list[dict[str, Any]] = []
        for section in s.sections:
            letter, points = letter_grade(s.ability + rng.gauss(0.0, 0.6))
            credit = (
                (0.5 if section["course_code"].startswith("PE") else 1.0)
                if final and s.school.level == "high"
                else None
            )
            posted.append(
                {
                    "course_code": section["course_code"],
                    "course_title": section["course_title"],
                    "school_year": year,
                    "term": term,
                    "grade": letter,
                    "credits": (credit if points > 0 else 0.0) if credit is not None else None,
                }
            )
        s.course_grades = (*s.course_grades, *posted)
        graded = [_POINTS[row["grade"]] for row in s.course_grades if row["grade"] in _POINTS]
        s.gpa = round(sum(graded) / len(graded), 2) if graded else None
        if s.school.level == "high":
            s.credits = sum(row["credits"] or 0.0 for row in s.course_grades)
        return self._snapshot(s, at, day)

    def _consent_action(self, day: int, at: int, s: Student, payload: tuple[Kind, Any]) -> SimEvent:
        kind, detail = payload
        return self._consent(kind, s, detail, at)

    def _revoke(self, day: int, at: int, s: Student, _: Any) -> SimEvent | None:
        s.health_grants = {c: e for c, e in s.health_grants.items() if e > at}
        if not s.health_grants:
            return None
        granted = list(s.health_grants)
        categories = (
            []
            if len(granted) == 1 or self.rng.random() < 0.6
            else [granted[int(self.rng.random() * len(granted))]]
        )
        return self._consent("REVOKE", s, categories, at)

    def _opt_out_district(self, day: int, at: int, _: None, district: District) -> SimEvent:
        return self._district_opt_out(district, at)
