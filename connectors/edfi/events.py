"""The join state of one student -> the sections of its ``StudentRecordChanged`` value.

Pure functions of the state, the lookups, the sections this load carries and the date the
load is taken as of (``as_of``: what is "current" for programs, IEPs and enrolments). A
section not carried stays null ("not part of this change"); a carried section with nothing for
the student is empty (no incidents, zero absences), not null.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from connectors.edfi.state import Lookups, Program, Student

RACE_FLAGS = (
    "american_indian_or_alaska_native",
    "asian",
    "black_or_african_american",
    "native_hawaiian_or_other_pacific_islander",
    "white",
)


def _current(begin: dt.date | None, end: dt.date | None, as_of: dt.date) -> bool:
    return (begin is None or begin <= as_of) and (end is None or end >= as_of)


def sections(
    student: Student, lookups: Lookups, carried: frozenset[str], as_of: dt.date
) -> dict[str, Any]:
    """Every carried section of ``student`` (the others left out, i.e. null)."""
    out: dict[str, Any] = {}
    if "names" in carried:
        out["names"] = student.names
    if "identity" in carried:
        out["identity"] = identity(student, "demographics" in carried and student.seoa)
    if "demographics" in carried:
        out["demographics"] = demographics(student)
    if "enrollment" in carried:
        out["enrollment"] = enrollment(student, lookups, as_of)
    if "contact" in carried:
        out["contact"] = contact(student)
    if "guardians" in carried:
        out["guardians"] = guardians(student, lookups)
    if "schedule" in carried:
        out["schedule"] = schedule(student, lookups)
    if "attendance" in carried:
        out["attendance"] = attendance(student)
    if "assessment" in carried:
        out["assessment"] = assessment(student, lookups)
    if "transcript" in carried:
        out["transcript"] = transcript(student, lookups)
    if "conduct" in carried:
        out["conduct"] = conduct(student, lookups)
    if "programs" in carried:
        out["programs"] = sorted(
            {p.code for p in student.programs if p.code and _current(p.begin, p.end, as_of)}
        )
    if "special" in carried:
        out["special"] = special(student, carried, as_of)
    return out


def identity(student: Student, with_local: object) -> dict[str, Any]:
    ids = (student.seoa or {}).get("ids") or {}
    local = None
    if with_local and isinstance(ids, dict):
        local = next((ids[k] for k in ("Local", "District", "School") if ids.get(k)), None)
    return {
        "local_student_id": local,
        "state_student_id": student.uid,
        "sourced_id": None,
        "username": None,
        "sis_user_id": None,
    }


def demographics(student: Student) -> dict[str, Any] | None:
    birth, seoa = student.birth or {}, student.seoa or {}
    if not birth and not seoa:
        return None
    races = seoa.get("races")
    race_set = races if isinstance(races, set) else set()
    flags: dict[str, Any] = {flag: (flag in race_set) if seoa else None for flag in RACE_FLAGS}
    return {
        "birth_date": birth.get("birth_date"),
        "sex": seoa.get("sex") or birth.get("sex"),
        **flags,
        "demographic_race_two_or_more_races": len(race_set) > 1 if seoa else None,
        "hispanic_or_latino_ethnicity": seoa.get("hispanic"),
        "country_of_birth": birth.get("country_of_birth"),
        "state_of_birth": birth.get("state_of_birth"),
        "city_of_birth": birth.get("city_of_birth"),
        "home_language": seoa.get("home_language"),
    }


def enrollment(student: Student, lookups: Lookups, as_of: dt.date) -> dict[str, Any] | None:
    if not student.enrollments:
        return None
    latest = max(
        student.enrollments, key=lambda e: (e.primary, e.entry or dt.date.min, e.school_id)
    )
    withdrawn = latest.exit is not None and latest.exit <= as_of
    return {
        "school_id": latest.school_id,
        "school_name": lookups.schools.get(latest.school_id, (None, None))[0],
        "school_year": latest.school_year,
        "grade_level": latest.grade,
        "entry_date": latest.entry,
        "exit_date": latest.exit,
        "homeroom": None,
        "counselor": None,
        "graduation_year": latest.class_of,
        "enrollment_status": "withdrawn" if withdrawn else "active",
    }


def contact(student: Student) -> dict[str, Any] | None:
    seoa = student.seoa
    if seoa is None:
        return None
    return {
        key: seoa.get(key)
        for key in (
            "email",
            "phone",
            "address_line1",
            "address_line2",
            "city",
            "state",
            "postal_code",
        )
    }


def guardians(student: Student, lookups: Lookups) -> list[dict[str, Any]]:
    ordered = sorted(student.contacts, key=lambda c: (c[4] if c[4] is not None else 99, c[0]))
    out = []
    for reference, relation, primary, emergency, _priority in ordered:
        contact_id = lookups.contact_ids.get(reference, reference)  # an XML ref="..."
        person = lookups.contacts.get(contact_id, {})
        out.append(
            {
                "guardian_id": contact_id,
                "relationship": relation,
                "first_name": person.get("first_name"),
                "last_name": person.get("last_name"),
                "email": person.get("email"),
                "phone": person.get("phone"),
                "address_line1": person.get("address_line1"),
                "address_line2": person.get("address_line2"),
                "city": person.get("city"),
                "state": person.get("state"),
                "postal_code": person.get("postal_code"),
                "primary_contact": primary,
                "emergency_contact": emergency,
            }
        )
    return out


def _course(
    lookups: Lookups, local: str | None, school: str | None, year: int | None, session: str | None
) -> tuple[str | None, str | None]:
    if local is None:
        return None, None
    code = lookups.offerings.get((local, school or "", year, session), local)
    return code, lookups.courses.get(code) or None


def schedule(student: Student, lookups: Lookups) -> dict[str, Any] | None:
    if not student.sections:
        return None
    year = max((s[3] for s in student.sections if s[3] is not None), default=None)
    rows = []
    for section_id, local, school, section_year, session in sorted(
        set(student.sections), key=lambda s: (s[4] or "", s[0])
    ):
        if year is not None and section_year not in (year, None):
            continue
        code, title = _course(lookups, local, school, section_year, session)
        rows.append(
            {
                "section_id": section_id,
                "course_code": code,
                "course_title": title,
                "teacher_name": None,
                "period": None,
                "term": session,
                "room": None,
            }
        )
    return {"school_year": year, "sections": rows}


def attendance(student: Student) -> dict[str, Any]:
    if not student.attendance:
        return {
            "school_year": None,
            "days_enrolled": None,
            "days_present": None,
            "days_absent": 0.0,
            "days_tardy": 0,
            "last_absence_date": None,
            "class_periods_absent": 0,
            "class_periods_tardy": 0,
        }
    year = max(student.attendance)
    totals = student.attendance[year]
    periods = sum(n for day, n in totals.period_absent.items() if day not in totals.absence_dates)
    return {
        "school_year": year,
        "days_enrolled": None,
        "days_present": totals.present or None,
        "days_absent": totals.absent,
        "days_tardy": totals.tardy,
        "last_absence_date": totals.last_absence,
        "class_periods_absent": periods,
        "class_periods_tardy": totals.period_tardy,
    }


def assessment(student: Student, lookups: Lookups) -> dict[str, Any]:
    results = []
    for (identifier, namespace), day, scale, level in student.assessments:
        title, subject = lookups.assessments.get((identifier, namespace), (None, None))
        results.append(
            {
                "assessment_id": identifier,
                "assessment_name": title,
                "subject": subject,
                "administration_date": day,
                "scale_score": scale,
                "performance_level": level,
            }
        )
    results.sort(
        key=lambda r: (r["administration_date"] or dt.date.min, r["assessment_id"]), reverse=True
    )
    return {"results": results}


def transcript(student: Student, lookups: Lookups) -> dict[str, Any]:
    gpa = gpa_max = credits = None
    if student.records:
        latest = max(student.records, key=lambda r: (r[0] or 0, r[1] or ""))
        _year, _term, gpa, gpa_max, credits = latest
    grades: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    for code, title, year, term, grade, earned in student.transcript:
        seen.add((code, year, term))
        grades.append(
            {
                "course_code": code,
                "course_title": title or lookups.courses.get(code or "") or None,
                "school_year": year,
                "term": term,
                "grade": grade,
                "credits": earned,
            }
        )
    for local, school, year, session, grade in student.grades:
        code, title = _course(lookups, local, school, year, session)
        if (code, year, session) in seen:
            continue
        grades.append(
            {
                "course_code": code,
                "course_title": title,
                "school_year": year,
                "term": session,
                "grade": grade,
                "credits": None,
            }
        )
    grades.sort(key=lambda g: (-(g["school_year"] or 0), g["term"] or "", g["course_code"] or ""))
    return {"gpa": gpa, "gpa_scale": gpa_max, "credits_earned": credits, "course_grades": grades}


def conduct(student: Student, lookups: Lookups) -> dict[str, Any]:
    incidents: list[dict[str, Any]] = []
    actions_by_incident: dict[Any, list[tuple[Any, ...]]] = {}
    loose: list[tuple[Any, ...]] = []
    for action in student.actions:
        if action[0] is not None:
            actions_by_incident.setdefault(action[0], []).append(action)
        else:
            loose.append(action)
    for key, behavior, participation in student.behaviors:
        actions = actions_by_incident.pop(key, []) if key is not None else []
        first = actions[0] if actions else None
        incidents.append(
            {
                "incident_id": key[0] if key else None,
                "incident_date": lookups.incidents.get(key) if key else None,
                "behavior_code": behavior,
                "action": first[2] if first else None,
                "days_suspended": first[3] if first else None,
                "participation": participation or "perpetrator",
            }
        )
    for pending in actions_by_incident.values():
        loose.extend(pending)
    for ref, day, action, days in loose:
        incidents.append(
            {
                "incident_id": ref[0] if ref else None,
                "incident_date": (lookups.incidents.get(ref) if ref else None) or day,
                "behavior_code": None,
                "action": action,
                "days_suspended": days,
                "participation": "perpetrator",
            }
        )
    incidents.sort(
        key=lambda i: (i["incident_date"] or dt.date.min, i["incident_id"] or ""), reverse=True
    )
    return {"incidents": incidents}


def _active(programs: list[Program], as_of: dt.date) -> list[Program]:
    return [p for p in programs if _current(p.begin, p.end, as_of)]


def special(student: Student, carried: frozenset[str], as_of: dt.date) -> dict[str, Any]:
    from_programs = "programs" in carried
    seoa = student.seoa
    traits = seoa.get("characteristics") if seoa else None
    trait_set: set[Any] = traits if isinstance(traits, set) else set()
    sped = [s for s in student.special_education if _current(s.begin, s.end, as_of)]
    disabilities: list[tuple[int, str | None, str | None]] = []
    if seoa:
        listed = seoa.get("disabilities")
        disabilities.extend(listed if isinstance(listed, list) else [])
    for association in sped:
        disabilities.extend(association.disabilities)
    disabilities.sort(key=lambda d: d[0])
    idea = [d for d in disabilities if d[1] and d[2] != "section_504"]
    has_504 = (
        any(d[2] == "section_504" for d in disabilities)
        or "section_504" in trait_set
        or any(p.code == "section_504" for p in _active(student.programs, as_of))
    )
    language = _active(student.language, as_of)
    ell = seoa.get("ell") if seoa else None
    if ell is None and from_programs:
        ell = "active" if language else ("exited" if student.language else None)
    food = _active(student.food, as_of)
    homeless = _active([p for p, _ in student.homeless], as_of)
    residence = next((r for p, r in student.homeless if p in homeless and r), None)
    iep = [
        s
        for s in sped
        if s.iep_begin is not None
        and s.iep_begin <= as_of
        and (s.iep_end is None or s.iep_end >= as_of)
        and (s.exit_date is None or s.exit_date > as_of)
    ]
    known = seoa is not None or from_programs
    return {
        "ell_status": ell,
        "english_proficiency_level": None,
        "free_reduced_lunch": next((f.code for f in food if f.code), None),
        "economically_disadvantaged": ("economically_disadvantaged" in trait_set) if seoa else None,
        "homeless": (bool(homeless) or "homeless" in trait_set) if known else None,
        "foster_care": ("foster_care" in trait_set) if seoa else None,
        "homeless_nighttime_residence": residence,
        "medical_alerts": (["medically_fragile"] if any(s.medically_fragile for s in sped) else [])
        if from_programs
        else None,
        "disability_category": idea[0][1] if idea else None,
        "has_iep": bool(iep) if from_programs else None,
        "has_504_plan": has_504 if known else None,
        "iep_review_date": max((s.review for s in sped if s.review), default=None),
        "special_education_setting": next((s.setting for s in sped if s.setting), None),
    }
