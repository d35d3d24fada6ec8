"""One function per interchange element: a streamed record folded into the join state.

Each reader gets the record (:class:`~connectors.edfi.stream.Node`) and a :class:`Context`
that resolves the student it names (an unknown student is a reject, the record is not used),
maps descriptors (an unknown one is noted for a warning) and holds the lookups. Elements of an
interchange this module has no reader for are counted and skipped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from connectors.edfi.descriptors import DescriptorMap
from connectors.edfi.state import (
    AttendanceYear,
    Enrollment,
    IncidentKey,
    Lookups,
    Program,
    SpecialEducation,
    Student,
)
from connectors.edfi.stream import Node
from connectors.source.rejects import Reject

STUDENT_ID = "StudentReference/StudentIdentity/StudentUniqueId"


class BadValue(ValueError):
    """A required value of a record is missing or malformed: the record is rejected."""


def parse_date(value: str | None) -> dt.date | None:
    """An xs:date or the date of an xs:dateTime; raises :class:`BadValue`."""
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value[:10])
    except ValueError:
        raise BadValue("not a date (YYYY-MM-DD)") from None


def school_year(value: str | None) -> int | None:
    """An Ed-Fi SchoolYear (``2022``) or the ``2021-2022`` form, as its ending year."""
    if value is None:
        return None
    text = value.strip()
    try:
        return int(text.rsplit("-", 1)[-1]) if "-" in text else int(text)
    except ValueError:
        raise BadValue("not a school year (2022 or 2021-2022)") from None


def number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        raise BadValue("not a number") from None


def integer(value: str | None) -> int | None:
    result = number(value)
    return None if result is None else int(result)


def boolean(value: str | None) -> bool | None:
    if value is None:
        return None
    low = value.strip().lower()
    if low in ("1", "true"):
        return True
    if low in ("0", "false"):
        return False
    raise BadValue("not a boolean (true, false, 1, 0)")


@dataclass
class Context:
    """What a reader needs besides its record."""

    file: str
    descriptors: DescriptorMap
    lookups: Lookups
    students: dict[str, Student]
    #: students a record may name besides those of the Student interchange (published before)
    known: frozenset[str]
    rejects: list[Reject] = field(default_factory=list)
    line: int = 0
    element: str = ""

    def where(self) -> str:
        return f"{self.file}:{self.line}:{self.element}"

    def code(self, table: str, value: str | None) -> str | None:
        return self.descriptors.code(table, value, self.where())

    def reject(self, reason: str) -> None:
        self.rejects.append(Reject(self.file, self.line, self.element, reason))

    def student(self, node: Node, path: str = STUDENT_ID) -> Student | None:
        """The student a record names; None (and a reject) when it names none we know."""
        uid = node.text(path)
        if uid is None:
            ref = node.find(path.split("/", 1)[0])
            uid = None if ref is None else ref.attr("ref")
        if uid is None:
            self.reject("no StudentUniqueId in the student reference: record not used")
            return None
        found = self.students.get(uid)
        if found is not None:
            return found
        if uid in self.known:
            found = self.students[uid] = Student(uid)
            return found
        self.reject(
            f"student {uid!r} is in no Student interchange of this load and was not "
            "published before from this source: record not used (load the student's "
            "Student record or correct the reference)"
        )
        return None


Reader = Callable[[Node, Context], None]


# ----------------------------------------------------------------------- reference data


def read_school(node: Node, ctx: Context) -> None:
    school = node.text("SchoolId")
    if school is None:
        raise BadValue("no SchoolId")
    lea_ref = node.find("LocalEducationAgencyReference")
    lea = None
    if lea_ref is not None:
        lea = lea_ref.text("LocalEducationAgencyIdentity/LocalEducationAgencyId") or lea_ref.attr(
            "ref"
        )
    ctx.lookups.schools[school] = (node.text("NameOfInstitution"), lea)


def read_lea(node: Node, ctx: Context) -> None:
    lea = node.text("LocalEducationAgencyId")
    if lea is None:
        raise BadValue("no LocalEducationAgencyId")
    ctx.lookups.lea_ids[lea] = lea
    xml_id = node.attr("id")
    if xml_id:
        ctx.lookups.lea_ids[xml_id] = lea


def read_course(node: Node, ctx: Context) -> None:
    code, title = node.text("CourseCode"), node.text("CourseTitle")
    if code and title:
        ctx.lookups.courses[code] = title


def read_course_offering(node: Node, ctx: Context) -> None:
    local = node.text("LocalCourseCode")
    course = node.text("CourseReference/CourseIdentity/CourseCode")
    school = node.text("SchoolReference/SchoolIdentity/SchoolId")
    session = node.find("SessionReference/SessionIdentity")
    if local and course and school:
        year = school_year(session.text("SchoolYear")) if session else None
        name = session.text("SessionName") if session else None
        ctx.lookups.offerings[(local, school, year, name)] = course
        if local != course:
            ctx.lookups.courses.setdefault(local, ctx.lookups.courses.get(course, ""))


def read_assessment(node: Node, ctx: Context) -> None:
    identifier = node.text("AssessmentIdentifier")
    if identifier is None:
        raise BadValue("no AssessmentIdentifier")
    subject = ctx.code("AcademicSubjectDescriptor", node.text("AcademicSubject"))
    ctx.lookups.assessments[(identifier, node.text("Namespace"))] = (
        node.text("AssessmentTitle"),
        subject,
    )


# ----------------------------------------------------------------------- student, contacts


def read_student(node: Node, ctx: Context) -> None:
    uid = node.text("StudentUniqueId")
    if uid is None:
        raise BadValue("no StudentUniqueId")
    student = ctx.students.get(uid) or Student(uid)
    ctx.students[uid] = student
    student.in_student_file = True
    student.names = {
        "first_name": node.text("Name/FirstName"),
        "middle_name": node.text("Name/MiddleName"),
        "last_name": node.text("Name/LastSurname"),
        "generation_suffix": node.text("Name/GenerationCodeSuffix"),
        "preferred_first_name": node.text("Name/PreferredFirstName"),
        "preferred_middle_name": None,
        "preferred_last_name": node.text("Name/PreferredLastSurname"),
    }
    country = node.text("BirthData/BirthCountry")
    student.birth = {
        "birth_date": parse_date(node.text("BirthData/BirthDate")),
        "city_of_birth": node.text("BirthData/BirthCity"),
        "state_of_birth": _code_value(node.text("BirthData/BirthStateAbbreviation")),
        "country_of_birth": _code_value(country),
        "sex": ctx.code("SexDescriptor", node.text("BirthData/BirthSex") or node.text("BirthSex")),
    }


def _code_value(value: str | None) -> str | None:
    return None if value is None else value.rsplit("#", 1)[-1].strip() or None


def read_contact(node: Node, ctx: Context) -> None:
    uid = node.text("ContactUniqueId") or node.text("ParentUniqueId")
    if uid is None:
        raise BadValue("no ContactUniqueId")
    xml_id = node.attr("id")
    if xml_id:
        ctx.lookups.contact_ids[xml_id] = uid
    address = _pick(
        ctx,
        node.all("Address"),
        "AddressTypeDescriptor",
        "AddressType",
        ("home", "mailing", "physical"),
    )
    phone = _pick(
        ctx,
        node.all("Telephone"),
        "TelephoneNumberTypeDescriptor",
        "TelephoneNumberType",
        ("mobile", "home", "emergency", "work"),
    )
    email = _pick(
        ctx,
        node.all("ElectronicMail"),
        "ElectronicMailTypeDescriptor",
        "ElectronicMailType",
        ("personal", "work", "organization"),
    )
    ctx.lookups.contacts[uid] = {
        "first_name": node.text("Name/FirstName") or node.text("FirstName"),
        "last_name": node.text("Name/LastSurname") or node.text("LastSurname"),
        "email": email.text("ElectronicMailAddress") if email else None,
        "phone": phone.text("TelephoneNumber") if phone else None,
        **_address(address),
    }


def _pick(
    ctx: Context, nodes: list[Node], table: str, type_path: str, preference: tuple[str, ...]
) -> Node | None:
    """The node whose type comes first in ``preference``, else the first one."""
    if not nodes:
        return None
    ranked = []
    for position, candidate in enumerate(nodes):
        kind = ctx.code(table, candidate.text(type_path))
        rank = preference.index(kind) if kind in preference else len(preference)
        ranked.append((rank, position, candidate))
    return min(ranked, key=lambda r: (r[0], r[1]))[2]


def _address(node: Node | None) -> dict[str, str | None]:
    if node is None:
        return {
            "address_line1": None,
            "address_line2": None,
            "city": None,
            "state": None,
            "postal_code": None,
        }
    return {
        "address_line1": node.text("StreetNumberName"),
        "address_line2": node.text("ApartmentRoomSuiteNumber"),
        "city": node.text("City"),
        "state": _code_value(node.text("StateAbbreviation")),
        "postal_code": node.text("PostalCode"),
    }


def read_student_contact(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    ref = node.find("ContactReference") or node.find("ParentReference")
    contact = None
    if ref is not None:
        contact = ref.text("ContactIdentity/ContactUniqueId") or ref.text(
            "ParentIdentity/ParentUniqueId"
        )
        if contact is None:
            contact = ref.attr("ref")  # resolved when the events are built
    if contact is None:
        raise BadValue("no ContactUniqueId in the contact reference")
    student.contacts.append(
        (
            contact,
            ctx.code("RelationDescriptor", node.text("Relation")),
            boolean(node.text("PrimaryContactStatus")),
            boolean(node.text("EmergencyContactStatus")),
            integer(node.text("ContactPriority") or node.text("OrderOfPriority")),
        )
    )


# ----------------------------------------------------------------------- enrollment


def read_school_association(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    school = node.text("SchoolReference/SchoolIdentity/SchoolId")
    if school is None:
        raise BadValue("no SchoolId in the school reference")
    entry = parse_date(node.text("EntryDate"))
    student.enrollments.append(
        Enrollment(
            school,
            entry,
            parse_date(node.text("ExitWithdrawDate")),
            ctx.code("GradeLevelDescriptor", node.text("EntryGradeLevel")),
            school_year(node.text("SchoolYear")),
            school_year(node.text("ClassOfSchoolYear")),
            bool(boolean(node.text("PrimarySchool"))),
        )
    )
    student.saw_school(entry, school)


def read_section_association(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    section = node.find("SectionReference/SectionIdentity")
    if section is None or section.text("SectionIdentifier") is None:
        raise BadValue("no SectionIdentifier in the section reference")
    offering = section.find("CourseOfferingReference/CourseOfferingIdentity")
    local = offering.text("LocalCourseCode") if offering else None
    school = (offering.text("SchoolReference/SchoolIdentity/SchoolId") if offering else None) or ""
    session = offering.find("SessionReference/SessionIdentity") if offering else None
    student.sections.append(
        (
            section.text("SectionIdentifier") or "",
            local,
            school,
            school_year(session.text("SchoolYear")) if session else None,
            session.text("SessionName") if session else None,
        )
    )


def read_seoa(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    races = {ctx.code("RaceDescriptor", r) for r in node.texts("Race")}
    characteristics = {
        ctx.code("StudentCharacteristicDescriptor", c.text("StudentCharacteristic"))
        for c in node.all("StudentCharacteristic")
    }
    home_language = None
    for language in node.all("Language"):
        uses = {
            ctx.code("LanguageUseDescriptor", u)
            for u in language.texts("Uses/LanguageUse") + language.texts("LanguageUse")
        }
        if "home" in uses or home_language is None:
            home_language = ctx.code("LanguageDescriptor", language.text("Language"))
    disabilities = [
        (
            integer(d.text("OrderOfDisability")) or 99,
            ctx.code("DisabilityDescriptor", d.text("Disability")),
            _designation(ctx, d),
        )
        for d in node.all("Disability")
    ]
    ids = {
        _code_value(code.text("StudentIdentificationSystem")) or "": code.text("IdentificationCode")
        for code in node.all("StudentIdentificationCode")
    }
    address = _pick(
        ctx,
        node.all("Address"),
        "AddressTypeDescriptor",
        "AddressType",
        ("home", "physical", "mailing"),
    )
    phone = _pick(
        ctx,
        node.all("Telephone"),
        "TelephoneNumberTypeDescriptor",
        "TelephoneNumberType",
        ("mobile", "home"),
    )
    email = _pick(
        ctx,
        node.all("ElectronicMail"),
        "ElectronicMailTypeDescriptor",
        "ElectronicMailType",
        ("organization", "personal"),
    )
    student.seoa = {
        "sex": ctx.code("SexDescriptor", node.text("Sex")),
        "hispanic": boolean(node.text("HispanicLatinoEthnicity")),
        "races": races - {None},
        "home_language": home_language,
        "ell": ctx.code(
            "LimitedEnglishProficiencyDescriptor", node.text("LimitedEnglishProficiency")
        ),
        "characteristics": characteristics - {None},
        "disabilities": disabilities,
        "ids": ids,
        "email": email.text("ElectronicMailAddress") if email else None,
        "phone": phone.text("TelephoneNumber") if phone else None,
        **_address(address),
    }


def _designation(ctx: Context, disability: Node) -> str | None:
    designations = [
        ctx.code("DisabilityDesignationDescriptor", t)
        for t in disability.texts("DisabilityDesignation/DisabilityDesignation")
        + disability.texts("DisabilityDesignation")
    ]
    return (
        "section_504"
        if "section_504" in designations
        else next((d for d in designations if d), None)
    )


# ----------------------------------------------------------------------- attendance


def _attendance_event(node: Node, ctx: Context) -> tuple[Student, dt.date, str | None] | None:
    """The student, day and category of an attendance event (None: a student not loaded)."""
    student = ctx.student(node)
    if student is None:
        return None
    day = parse_date(node.text("AttendanceEvent/EventDate") or node.text("EventDate"))
    if day is None:
        raise BadValue("no EventDate")
    category = ctx.code(
        "AttendanceEventCategoryDescriptor",
        node.text("AttendanceEvent/AttendanceEventCategory")
        or node.text("AttendanceEventCategory"),
    )
    return student, day, category


def _count_absence(totals: AttendanceYear, day: dt.date, share: float) -> None:
    totals.absent += share
    totals.absence_dates.add(day)
    if totals.last_absence is None or day > totals.last_absence:
        totals.last_absence = day


def read_school_attendance(node: Node, ctx: Context) -> None:
    event = _attendance_event(node, ctx)
    if event is None:
        return
    student, day, category = event
    duration = number(node.text("AttendanceEvent/EventDuration") or node.text("EventDuration"))
    year = school_year(node.text("SessionReference/SessionIdentity/SchoolYear")) or _year_of(day)
    totals = student.attendance.setdefault(year, AttendanceYear())
    if category == "absent":
        _count_absence(totals, day, 1.0 if duration is None else duration)
    elif category == "present":
        totals.present += 1.0 if duration is None else duration
    elif category == "tardy":
        totals.tardy += 1
    elif category == "partial":
        _count_absence(totals, day, 0.5 if duration is None else 1.0 - duration)
    student.saw_school(day, node.text("SchoolReference/SchoolIdentity/SchoolId"))


def read_section_attendance(node: Node, ctx: Context) -> None:
    event = _attendance_event(node, ctx)
    if event is None:
        return
    student, day, category = event
    session = (
        "SectionReference/SectionIdentity/CourseOfferingReference/CourseOfferingIdentity/"
        "SessionReference/SessionIdentity/SchoolYear"
    )
    year = school_year(node.text(session)) or _year_of(day)
    totals = student.attendance.setdefault(year, AttendanceYear())
    if category == "absent":
        totals.period_absent[day] = totals.period_absent.get(day, 0) + 1
    elif category == "tardy":
        totals.period_tardy += 1


def _year_of(day: dt.date) -> int:
    """The school year (by its ending calendar year) of a date: July starts the next one."""
    return day.year + 1 if day.month >= 7 else day.year


# ----------------------------------------------------------------------- discipline


def _incident_key(ref: Node | None, ctx: Context) -> IncidentKey | None:
    if ref is None:
        return None
    identity = ref.find("DisciplineIncidentIdentity")
    if identity is not None:
        incident = identity.text("IncidentIdentifier")
        school = identity.text("SchoolReference/SchoolIdentity/SchoolId")
        if incident:
            return (incident, school or "")
    xml_ref = ref.attr("ref")
    if xml_ref:
        return ctx.lookups.incident_ids.get(xml_ref, (xml_ref, "#ref"))
    return None


def read_incident(node: Node, ctx: Context) -> None:
    incident = node.text("IncidentIdentifier")
    if incident is None:
        raise BadValue("no IncidentIdentifier")
    key = (incident, node.text("SchoolReference/SchoolIdentity/SchoolId") or "")
    ctx.lookups.incidents[key] = parse_date(node.text("IncidentDate"))
    if node.attr("id"):
        ctx.lookups.incident_ids[node.attr("id") or ""] = key


def read_behavior(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    student.behaviors.append(
        (
            _incident_key(node.find("DisciplineIncidentReference"), ctx),
            ctx.code("BehaviorDescriptor", node.text("Behavior")),
            ctx.code(
                "DisciplineIncidentParticipationCodeDescriptor",
                node.text("DisciplineIncidentParticipationCode"),
            ),
        )
    )


def read_action(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    ref = node.find(
        "StudentDisciplineIncidentBehaviorAssociationReference/"
        "StudentDisciplineIncidentBehaviorAssociationIdentity/"
        "DisciplineIncidentReference"
    ) or node.find(
        "StudentDisciplineIncidentAssociationReference/"
        "StudentDisciplineIncidentAssociationIdentity/DisciplineIncidentReference"
    )
    length = node.text("ActualDisciplineActionLength") or node.text("DisciplineActionLength")
    student.actions.append(
        (
            _incident_key(ref, ctx),
            parse_date(node.text("DisciplineDate")),
            ctx.code(
                "DisciplineDescriptor",
                node.text("Discipline/Discipline") or node.text("Discipline"),
            ),
            number(length),
        )
    )


# ----------------------------------------------------------------------- programs


def _program(node: Node, ctx: Context) -> Program:
    code = ctx.code(
        "ProgramTypeDescriptor", node.text("ProgramReference/ProgramIdentity/ProgramType")
    )
    return Program(code, parse_date(node.text("BeginDate")), parse_date(node.text("EndDate")))


def read_program(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is not None:
        student.programs.append(_program(node, ctx))


def read_special_education(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    program = _program(node, ctx)
    student.programs.append(program)
    student.special_education.append(
        SpecialEducation(
            program.begin,
            program.end,
            parse_date(node.text("IEPBeginDate")),
            parse_date(node.text("IEPEndDate")),
            parse_date(node.text("SpecialEducationExitDate")),
            parse_date(node.text("IEPReviewDate")),
            ctx.code("SpecialEducationSettingDescriptor", node.text("SpecialEducationSetting")),
            bool(boolean(node.text("MedicallyFragile"))),
            [
                (
                    integer(d.text("OrderOfDisability")) or 99,
                    ctx.code("DisabilityDescriptor", d.text("Disability")),
                    _designation(ctx, d),
                )
                for d in node.all("Disability")
            ],
        )
    )


def read_food_service(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    program = _program(node, ctx)
    student.programs.append(program)
    services = [
        ctx.code("SchoolFoodServiceProgramServiceDescriptor", s)
        for s in node.texts("SchoolFoodServiceProgramService/SchoolFoodServiceProgramService")
    ]
    best = next((level for level in ("free", "reduced", "paid") if level in services), None)
    student.food.append(Program(best, program.begin, program.end))


def read_language_program(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    program = _program(node, ctx)
    student.programs.append(program)
    student.language.append(program)


def read_homeless_program(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    program = _program(node, ctx)
    student.programs.append(program)
    student.homeless.append(
        (
            program,
            ctx.code(
                "HomelessPrimaryNighttimeResidenceDescriptor",
                node.text("HomelessPrimaryNighttimeResidence"),
            ),
        )
    )


# ----------------------------------------------------------------------- assessment, grades


def read_student_assessment(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    identity = node.find("AssessmentReference/AssessmentIdentity")
    identifier = identity.text("AssessmentIdentifier") if identity else None
    if identity is None or identifier is None:
        raise BadValue("no AssessmentIdentifier in the assessment reference")
    scale = None
    for score in node.all("ScoreResult"):
        method = ctx.code(
            "AssessmentReportingMethodDescriptor", score.text("AssessmentReportingMethod")
        )
        if method == "scale_score":
            scale = number(score.text("Result"))
    level = None
    for performance in node.all("PerformanceLevel"):
        level = ctx.code("PerformanceLevelDescriptor", performance.text("PerformanceLevel"))
        if level:
            break
    student.assessments.append(
        (
            (identifier, identity.text("Namespace")),
            parse_date(node.text("AdministrationDate")),
            scale,
            level,
        )
    )


def read_grade(node: Node, ctx: Context) -> None:
    grade_type = ctx.code("GradeTypeDescriptor", node.text("GradeType"))
    if grade_type != "final":
        return
    identity = node.find("StudentSectionAssociationReference/StudentSectionAssociationIdentity")
    if identity is None:
        raise BadValue("no student section association reference")
    student = ctx.student(identity, STUDENT_ID)
    if student is None:
        return
    offering = identity.find(
        "SectionReference/SectionIdentity/CourseOfferingReference/CourseOfferingIdentity"
    )
    session = offering.find("SessionReference/SessionIdentity") if offering else None
    grade = node.text("LetterGradeEarned") or node.text("NumericGradeEarned")
    student.grades.append(
        (
            offering.text("LocalCourseCode") if offering else None,
            offering.text("SchoolReference/SchoolIdentity/SchoolId") if offering else None,
            school_year(session.text("SchoolYear")) if session else None,
            session.text("SessionName") if session else None,
            grade,
        )
    )


def read_academic_record(node: Node, ctx: Context) -> None:
    student = ctx.student(node)
    if student is None:
        return
    gpa = gpa_max = None
    for average in node.all("GradePointAverage"):
        if boolean(average.text("IsCumulative")) is not False:
            gpa = number(average.text("GradePointAverageValue"))
            gpa_max = number(average.text("MaxGradePointAverageValue"))
    student.records.append(
        (
            school_year(node.text("SchoolYear")),
            ctx.code("TermDescriptor", node.text("Term")),
            gpa,
            gpa_max,
            number(node.text("CumulativeEarnedCredits/Credits")),
        )
    )


def read_course_transcript(node: Node, ctx: Context) -> None:
    identity = node.find("StudentAcademicRecordReference/StudentAcademicRecordIdentity")
    if identity is None:
        raise BadValue("no student academic record reference")
    student = ctx.student(identity, STUDENT_ID)
    if student is None:
        return
    student.transcript.append(
        (
            node.text("CourseReference/CourseIdentity/CourseCode"),
            node.text("CourseTitle"),
            school_year(identity.text("SchoolYear")),
            ctx.code("TermDescriptor", identity.text("Term")),
            node.text("FinalLetterGradeEarned") or node.text("FinalNumericGradeEarned"),
            number(node.text("EarnedCredits/Credits")),
        )
    )


#: interchange kind -> element name -> reader (elements not listed are skipped)
READERS: dict[str, dict[str, Reader]] = {
    "EducationOrganization": {
        "School": read_school,
        "LocalEducationAgency": read_lea,
        "Course": read_course,
    },
    "MasterSchedule": {"CourseOffering": read_course_offering},
    "AssessmentMetadata": {"Assessment": read_assessment},
    "Student": {"Student": read_student},
    "Contact": {
        "Contact": read_contact,
        "Parent": read_contact,
        "StudentContactAssociation": read_student_contact,
        "StudentParentAssociation": read_student_contact,
    },
    "StudentEnrollment": {
        "StudentSchoolAssociation": read_school_association,
        "StudentSectionAssociation": read_section_association,
        "StudentEducationOrganizationAssociation": read_seoa,
    },
    "StudentAttendance": {
        "StudentSchoolAttendanceEvent": read_school_attendance,
        "StudentSectionAttendanceEvent": read_section_attendance,
    },
    "StudentDiscipline": {
        "DisciplineIncident": read_incident,
        "StudentDisciplineIncidentBehaviorAssociation": read_behavior,
        "DisciplineAction": read_action,
    },
    "StudentProgram": {
        "StudentProgramAssociation": read_program,
        "StudentSpecialEducationProgramAssociation": read_special_education,
        "StudentCTEProgramAssociation": read_program,
        "StudentTitleIPartAProgramAssociation": read_program,
        "StudentMigrantEducationProgramAssociation": read_program,
        "StudentNeglectedOrDelinquentProgramAssociation": read_program,
        "StudentLanguageInstructionProgramAssociation": read_language_program,
        "StudentHomelessProgramAssociation": read_homeless_program,
        "StudentSchoolFoodServiceProgramAssociation": read_food_service,
    },
    "StudentAssessment": {"StudentAssessment": read_student_assessment},
    "StudentGrade": {"Grade": read_grade},
    "StudentTranscript": {
        "StudentAcademicRecord": read_academic_record,
        "CourseTranscript": read_course_transcript,
    },
}
