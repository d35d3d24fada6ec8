"""A simulated student as a ``StudentRecordChanged`` value (schemas/student_record_changed.avsc).

A snapshot carries every section as it is now. Contact details, guardians and schedule
entries are held by the student in their Avro shape (replaced on change, never mutated); the
other scalar sections (names, identity, demographics, enrollment, transportation, restricted)
are built once and kept in the student's cache until the data behind them changes (the change
stream drops the cache key). Successive events of a student share those objects, and all
students of a class share its schedule entry. Values are therefore read-only: copy before
mutating. Sections holding arrays are assembled per event from the student's tuples (a
shallow list, no copies of the entries), so the cache only holds objects that Python's garbage
collector never has to scan.

Dates are ``datetime.date`` (Avro ``date``), times of day milliseconds after midnight
(``time-millis``), timestamps epoch milliseconds (``timestamp-millis``).
"""

from __future__ import annotations

from typing import Any, Final

from connectors.simulation.district import Student

#: Cached sections; the change stream drops one of these keys when the data behind it changes.
NAMES: Final = "names"
IDENTITY: Final = "identity"
DEMOGRAPHICS: Final = "demographics"
ENROLLMENT: Final = "enrollment"
TRANSPORTATION: Final = "transportation"
RESTRICTED: Final = "restricted"

_RACE_FLAGS: Final[tuple[tuple[str, str], ...]] = (
    ("american_indian_or_alaska_native", "american_indian_alaska_native"),
    ("asian", "asian"),
    ("black_or_african_american", "black"),
    ("native_hawaiian_or_other_pacific_islander", "native_hawaiian_pacific_islander"),
    ("white", "white"),
    ("demographic_race_two_or_more_races", "two_or_more"),
)


def _names(s: Student) -> dict[str, Any]:
    return {
        "first_name": s.given_name,
        "middle_name": s.middle_name,
        "last_name": s.family_name,
        "generation_suffix": s.suffix,
        "preferred_first_name": s.preferred_name,
        "preferred_middle_name": None,
        "preferred_last_name": None,
    }


def _identity(s: Student) -> dict[str, Any]:
    return {
        "local_student_id": s.local_id,
        "state_student_id": s.state_id,
        "sourced_id": s.sourced_id,
        "username": s.username,
        "sis_user_id": s.sis_user_id,
    }


def _demographics(s: Student) -> dict[str, Any]:
    # Hispanic students are recorded with a race too (OMB two-question format): most
    # identify as white or two or more races in the Census; the SIS here records white.
    race = "white" if s.race == "hispanic" else s.race
    value: dict[str, Any] = {"birth_date": s.birth_date, "sex": s.sex}
    for field_name, race_code in _RACE_FLAGS:
        value[field_name] = race == race_code
    value["hispanic_or_latino_ethnicity"] = s.hispanic
    value["country_of_birth"] = s.country_of_birth
    value["state_of_birth"] = s.state_of_birth
    value["city_of_birth"] = s.city_of_birth
    value["home_language"] = s.home_language
    return value


def _enrollment(s: Student) -> dict[str, Any]:
    return {
        "school_id": s.school.school_id,
        "school_name": s.school.name,
        "school_year": s.district.school_year,
        "grade_level": s.grade,
        "entry_date": s.entry_date,
        "exit_date": s.exit_date,
        "homeroom": s.homeroom,
        "counselor": s.counselor,
        "graduation_year": s.district.school_year + 12 - s.grade_index,
        "enrollment_status": s.status,
    }


def _special(s: Student) -> dict[str, Any]:
    return {
        "ell_status": s.ell_status,
        "english_proficiency_level": s.elp_level,
        "free_reduced_lunch": s.free_reduced_lunch,
        "homeless": s.homeless,
        "foster_care": s.foster_care,
        "medical_alerts": list(s.medical_alerts),
        "disability_category": s.disability,
        "has_iep": s.has_iep,
        "has_504_plan": s.has_504,
    }


def _transportation(s: Student) -> dict[str, Any]:
    return {
        "bus_route": s.bus_route,
        "bus_stop": s.bus_stop,
        "pickup_time": s.pickup_ms,
        "dropoff_time": s.dropoff_ms,
    }


def _restricted(s: Student) -> dict[str, Any]:
    return {
        "ssn": s.ssn,
        "other_government_id": s.other_government_id,
        "password": s.password,
        "health_notes": s.health_notes,
        "counseling_notes": s.counseling_notes,
    }


_CACHED: Final = (
    (NAMES, _names),
    (IDENTITY, _identity),
    (DEMOGRAPHICS, _demographics),
    (ENROLLMENT, _enrollment),
)


def attendance(s: Student, days_enrolled: int) -> dict[str, Any]:
    return {
        "school_year": s.district.school_year,
        "days_enrolled": float(days_enrolled),
        "days_present": float(days_enrolled) - s.days_absent,
        "days_absent": s.days_absent,
        "days_tardy": s.days_tardy,
        "last_absence_date": s.last_absence,
    }


def _cached(s: Student, key: str, build: Any, keep: bool) -> Any:
    section = s.cache.get(key)
    if section is None:
        section = build(s)
        if keep:
            s.cache[key] = section
    return section


def snapshot(
    s: Student,
    event_id: str,
    occurred_at: int,
    source_system: str,
    days_enrolled: int,
    *,
    keep: bool = True,
) -> dict[str, Any]:
    """The whole current record of ``s`` as an UPSERT value.

    ``keep``: cache the scalar sections built for the next snapshot of ``s``.
    """
    value: dict[str, Any] = {
        "event_id": event_id,
        "student_id": s.state_id,
        "source_system": source_system,
        "district_id": s.district.district_id,
        "school_id": s.school.school_id,
        "operation": "UPSERT",
        "occurred_at": occurred_at,
    }
    for key, build in _CACHED:
        value[key] = _cached(s, key, build, keep)
    value["contact"] = s.contact
    value["guardians"] = list(s.guardians)
    value["schedule"] = {"school_year": s.district.school_year, "sections": list(s.sections)}
    value["attendance"] = attendance(s, days_enrolled)
    value["assessment"] = {"results": list(s.assessments)}
    value["transcript"] = {
        "gpa": s.gpa,
        "gpa_scale": 4.0 if s.gpa is not None else None,
        "credits_earned": s.credits,
        "course_grades": list(s.course_grades),
    }
    value["conduct"] = {"incidents": list(s.incidents)}
    value["programs"] = list(s.programs)
    value["special"] = _special(s)
    value["transportation"] = _cached(s, TRANSPORTATION, _transportation, keep)
    value["restricted"] = _cached(s, RESTRICTED, _restricted, keep)
    return value


_SECTIONS: Final[tuple[str, ...]] = (
    "names",
    "identity",
    "demographics",
    "enrollment",
    "contact",
    "guardians",
    "schedule",
    "attendance",
    "assessment",
    "transcript",
    "conduct",
    "programs",
    "special",
    "transportation",
    "restricted",
)


def deletion(s: Student, event_id: str, occurred_at: int, source_system: str) -> dict[str, Any]:
    """A DELETE value: the student left the district; every section is null."""
    value: dict[str, Any] = {
        "event_id": event_id,
        "student_id": s.state_id,
        "source_system": source_system,
        "district_id": s.district.district_id,
        "school_id": s.school.school_id,
        "operation": "DELETE",
        "occurred_at": occurred_at,
    }
    for key in _SECTIONS:
        value[key] = None
    return value
