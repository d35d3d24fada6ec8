"""The OneRoster 1.2 CSV reader: joins, bulk and delta, rejects, package errors (no Kafka)."""

from __future__ import annotations

import copy
import csv
import datetime as dt
import io
import shutil
import zipfile
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate

from connectors.oneroster import (
    OneRosterPackageError,
    PackageReadResult,
    read_package,
)
from connectors.source.rejects import Reject, rejects_path_for, write_rejects
from streams.policy.catalog import load_schema

DATA = Path(__file__).resolve().parents[1] / "data" / "oneroster"
FALLBACK_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z, used when no row has a date

AVA, BEN, CHLOE = "1234567890", "2234567890", "3234567890"


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def copy_package(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(DATA / name, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    text = path.read_text(encoding="utf-8")
    assert old in text, f"{old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


def read(path: Path, **kwargs: Any) -> PackageReadResult:
    kwargs.setdefault("fallback_time_ms", FALLBACK_MS)
    return read_package(path, **kwargs)


def by_key(result: PackageReadResult) -> dict[str, dict[str, Any]]:
    return {event.key: event.value for event in result.events}


def messages(result: PackageReadResult) -> list[str]:
    return [reject.message for reject in result.rejects]


# --------------------------------------------------------------------------- bulk


@pytest.fixture
def bulk(tmp_path: Path) -> PackageReadResult:
    return read(copy_package("bulk", tmp_path))


def test_bulk_gives_one_event_per_student_and_none_for_staff_or_parents(
    bulk: PackageReadResult,
) -> None:
    assert [e.key for e in bulk.events] == [AVA, BEN, CHLOE]
    assert bulk.mode == "bulk"
    assert bulk.rows_read == 33
    assert bulk.rejects == []
    assert bulk.source_system == "Maple SIS"
    assert all(e.operation == "UPSERT" for e in bulk.events)


def test_bulk_event_envelope_names_identity_contact(bulk: PackageReadResult) -> None:
    ava = by_key(bulk)[AVA]
    assert ava["student_id"] == AVA  # from userIds {stateID:...}, ahead of identifier
    assert ava["district_id"] == "3600001"  # org identifier of the school's parent district
    assert ava["school_id"] == "360000100001"
    assert ava["source_system"] == "Maple SIS"
    assert ava["operation"] == "UPSERT"
    # the newest dateLastModified across the joined rows: enrollment enr-1
    assert ava["occurred_at"] == ms("2026-01-12T09:30:00+00:00") == 1_768_210_200_000
    assert ava["names"] == {
        "first_name": "Ava",
        "middle_name": "Maria",
        "last_name": "Lopez",
        "generation_suffix": None,
        "preferred_first_name": "Avie",
        "preferred_middle_name": None,
        "preferred_last_name": None,
    }
    assert ava["identity"] == {
        "local_student_id": "S-1001",
        "state_student_id": AVA,
        "sourced_id": "usr-stu-1",
        "username": "ava.lopez",
        "sis_user_id": None,
    }
    assert ava["contact"]["email"] == "ava.lopez@students.maple.example"
    assert ava["contact"]["phone"] == "+15555550101"  # sms when phone is empty


def test_bulk_event_demographics_and_enrollment(bulk: PackageReadResult) -> None:
    ava = by_key(bulk)[AVA]
    assert ava["demographics"] == {
        "birth_date": dt.date(2013, 4, 17),
        "sex": "female",
        "american_indian_or_alaska_native": False,
        "asian": False,
        "black_or_african_american": False,
        "native_hawaiian_or_other_pacific_islander": False,
        "white": True,
        "demographic_race_two_or_more_races": False,
        "hispanic_or_latino_ethnicity": True,
        "country_of_birth": "US",
        "state_of_birth": "NY",
        "city_of_birth": "Albany",
        "home_language": None,
    }
    assert ava["enrollment"] == {
        "school_id": "360000100001",
        "school_name": "Maple Grove Middle School",
        "school_year": 2026,
        "grade_level": "07",
        "entry_date": dt.date(2025, 9, 3),
        "exit_date": None,
        "homeroom": "Homeroom 7A",
        "counselor": None,
        "graduation_year": None,
        "enrollment_status": None,
    }


def test_bulk_event_guardians_and_schedule(bulk: PackageReadResult) -> None:
    events = by_key(bulk)
    ava, ben = events[AVA], events[BEN]
    assert [(g["guardian_id"], g["relationship"], g["first_name"]) for g in ava["guardians"]] == [
        ("P-501", "parent", "Maria")
    ]
    assert ava["guardians"][0]["phone"] == "+15555550123"
    # Ben does not list Grace; Grace lists Ben in agentSourcedIds: the link counts both ways.
    assert [(g["guardian_id"], g["relationship"]) for g in ben["guardians"]] == [
        ("P-502", "guardian")
    ]
    assert ava["schedule"] == {
        "school_year": 2026,
        "sections": [
            {
                "section_id": "cls-ela7-2",
                "course_code": "ELA7",
                "course_title": "English Language Arts 7",
                "teacher_name": "Emma Schultz",
                "period": "2",
                "term": "Fall 2025",
                "room": "Room 204",
            },
            {
                "section_id": "cls-hr7a",
                "course_code": "HR7",
                "course_title": "Homeroom 7",
                "teacher_name": "Emma Schultz",
                "period": "HR",
                "term": "2025-2026",
                "room": "Room 110",
            },
            {
                "section_id": "cls-math7-1",
                "course_code": "MATH7",
                "course_title": "Mathematics 7",
                "teacher_name": "Daniel Reyes",
                "period": "1",
                "term": "Fall 2025",
                "room": "Room 101",
            },
        ],
    }


def test_bulk_student_without_rows_in_a_present_file_gets_empty_sections(
    bulk: PackageReadResult,
) -> None:
    chloe = by_key(bulk)[CHLOE]
    assert chloe["demographics"] is not None
    assert set(chloe["demographics"].values()) == {None}
    assert chloe["schedule"] == {"school_year": None, "sections": []}
    assert chloe["guardians"] == []
    assert chloe["enrollment"]["exit_date"] == dt.date(2026, 6, 26)
    assert chloe["occurred_at"] == FALLBACK_MS  # bulk rows without dateLastModified


def test_sections_oneroster_does_not_carry_stay_null(bulk: PackageReadResult) -> None:
    for event in bulk.events:
        for section in (
            "attendance",
            "assessment",
            "transcript",
            "conduct",
            "special",
            "restricted",
            "programs",
            "transportation",
        ):
            assert event.value[section] is None, section


def test_bulk_events_are_valid_avro_and_round_trip(bulk: PackageReadResult) -> None:
    parsed = fastavro.parse_schema(load_schema("student_record_changed"))
    for event in bulk.events:
        assert validate(event.value, parsed, raise_errors=True)
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, event.value)
        buffer.seek(0)
        decoded = fastavro.schemaless_reader(buffer, parsed, parsed)
        assert isinstance(decoded, dict)
        assert decoded["names"] == event.value["names"]
        assert decoded["schedule"] == event.value["schedule"]


def test_event_ids_are_stable_for_the_same_content_and_change_with_it(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    first = by_key(read(package))
    again = by_key(read(package))
    assert {k: v["event_id"] for k, v in first.items()} == {
        k: v["event_id"] for k, v in again.items()
    }
    assert len({v["event_id"] for v in first.values()}) == 3
    edit(package / "users.csv", "ben.okafor@students", "benjamin.okafor@students")
    changed = by_key(read(package))
    assert changed[BEN]["event_id"] != first[BEN]["event_id"]
    assert changed[AVA]["event_id"] == first[AVA]["event_id"]


def test_source_system_and_fallback_time_can_be_given(tmp_path: Path) -> None:
    result = read(copy_package("bulk", tmp_path), source_system="sis-east", fallback_time_ms=7)
    assert {e.value["source_system"] for e in result.events} == {"sis-east"}
    assert by_key(result)[CHLOE]["occurred_at"] == 7


def test_users_without_roles_file_use_the_role_column(tmp_path: Path) -> None:
    package = copy_package("delta", tmp_path)  # OneRoster 1.1 layout: users.role, no roles.csv
    result = read(package)
    assert sorted(e.key for e in result.events) == [AVA, BEN]


# --------------------------------------------------------------------------- delta


@pytest.fixture
def delta(tmp_path: Path) -> PackageReadResult:
    return read(copy_package("delta", tmp_path))


def test_delta_tobedeleted_student_becomes_delete(delta: PackageReadResult) -> None:
    assert delta.mode == "delta"
    assert delta.rejects == []
    ben = by_key(delta)[BEN]
    assert ben["operation"] == "DELETE"
    assert ben["occurred_at"] == ms("2026-02-01T10:00:00+00:00")
    assert ben["district_id"] == "3600001"
    assert ben["school_id"] == "360000100001"
    for section in ("names", "identity", "demographics", "enrollment", "guardians", "schedule"):
        assert ben[section] is None
    assert [e.operation for e in delta.events if e.key == BEN] == ["DELETE"]


def test_delta_upsert_carries_the_change_and_nulls_what_it_does_not_touch(
    delta: PackageReadResult,
) -> None:
    ava = by_key(delta)[AVA]
    assert ava["operation"] == "UPSERT"
    assert ava["names"]["last_name"] == "Lopez-Hart"
    assert ava["contact"]["email"] == "ava.hart@students.maple.example"
    # demographics row tobedeleted: the section is sent with every value null (removed)
    assert ava["demographics"] is not None
    assert set(ava["demographics"].values()) == {None}
    # enrollments.csv absent from the delta: the schedule is not part of this change
    assert ava["schedule"] is None
    assert [g["guardian_id"] for g in ava["guardians"]] == ["P-501"]
    # the newest row is the demographics deletion at 2026-02-03T09:00Z
    assert ava["occurred_at"] == ms("2026-02-03T09:00:00+00:00")


def test_delta_deleted_teacher_gives_no_event(delta: PackageReadResult) -> None:
    assert sorted(e.key for e in delta.events) == [AVA, BEN]
    assert "T-0043" not in {e.key for e in delta.events}


def write_delta_with_roles(package: Path, users: str, roles: str) -> None:
    """A OneRoster 1.2 layout delta: users.csv without role, roles.csv beside it."""
    package.mkdir()
    (package / "manifest.csv").write_text(
        "propertyName,value\nmanifest.version,1.0\noneroster.version,1.2\n"
        "file.orgs,delta\nfile.users,delta\nfile.roles,delta\n"
    )
    shutil.copy(DATA / "delta" / "orgs.csv", package / "orgs.csv")
    (package / "users.csv").write_text(
        "sourcedId,status,dateLastModified,enabledUser,username,userIds,givenName,familyName,"
        "identifier,agentSourcedIds,primaryOrgSourcedId\n" + users
    )
    (package / "roles.csv").write_text(
        "sourcedId,status,dateLastModified,userSourcedId,roleType,role,orgSourcedId\n" + roles
    )


def test_delta_with_roles_file_deletes_students_not_staff(tmp_path: Path) -> None:
    package = tmp_path / "delta12"
    t = "2026-03-01T00:00:00Z"
    write_delta_with_roles(
        package,
        f"usr-stu-2,tobedeleted,{t},false,ben.okafor,{{stateID:2234567890}},Ben,Okafor,,,org-s1\n"
        f"usr-tch-1,tobedeleted,{t},false,d.reyes,,Daniel,Reyes,T-0042,,org-s1\n",
        f"rol-stu-2,tobedeleted,{t},usr-stu-2,primary,student,org-s1\n"
        f"rol-tch-1,tobedeleted,{t},usr-tch-1,primary,teacher,org-s1\n",
    )
    result = read(package)
    assert result.rejects == []
    assert [(e.key, e.operation) for e in result.events] == [(BEN, "DELETE")]
    assert result.events[0].value["occurred_at"] == ms("2026-03-01T00:00:00+00:00")


def test_delta_without_stored_state_warns_about_optional_references(tmp_path: Path) -> None:
    package = tmp_path / "delta12"
    t = "2026-03-01T00:00:00Z"
    write_delta_with_roles(
        package,
        f"usr-par-1,active,{t},true,maria.lopez,,Maria,Lopez,P-501,usr-stu-1,org-s1\n",
        f"rol-par-1,active,{t},usr-par-1,primary,parent,org-s1\n",
    )
    result = read(package)
    # a guardian link is optional: a dangling one is a warning, not a reject of the parent
    assert messages(result) == []
    assert [w.message for w in result.warnings] == [
        "users.csv:2:agentSourcedIds: unknown user 'usr-stu-1' (not in users.csv nor in the "
        "stored state): reference ignored (optional)",
    ]
    assert result.events == []


def test_delta_rows_need_status_and_date(tmp_path: Path) -> None:
    package = copy_package("delta", tmp_path)
    users = package / "users.csv"
    edit(users, "usr-par-1,active,2026-01-20T07:45:00.000Z", "usr-par-1,,2026-01-20T07:45:00.000Z")
    edit(users, "usr-tch-2,tobedeleted,2026-02-01T10:05:00.000Z", "usr-tch-2,tobedeleted,")
    edit(users, "usr-stu-1,active,", "usr-stu-1,deleted,")
    result = read(package)
    assert messages(result) == [
        "users.csv:2:status: unknown status 'deleted' (expected active or tobedeleted)",
        "users.csv:4:dateLastModified: required value is empty in a delta file",
        "users.csv:5:status: required value is empty (a delta row is active or tobedeleted)",
    ]


def test_tobedeleted_in_a_bulk_file_is_rejected(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "users.csv", "usr-stu-3,,", "usr-stu-3,tobedeleted,")
    result = read(package)
    assert messages(result) == [
        "users.csv:4:status: tobedeleted is only allowed in a delta file (the manifest says bulk)",
        "roles.csv:4:userSourcedId: user 'usr-stu-3' was rejected (users.csv:4)",
    ]
    assert [e.key for e in result.events] == [AVA, BEN]


# --------------------------------------------------------------------------- zip


def zip_dir(source: Path, target: Path, folder: str = "") -> Path:
    with zipfile.ZipFile(target, "w") as archive:
        for file in sorted(source.iterdir()):
            archive.write(file, f"{folder}{file.name}")
    return target


def test_zip_package_reads_like_the_directory(tmp_path: Path, bulk: PackageReadResult) -> None:
    archive = zip_dir(DATA / "bulk", tmp_path / "export.zip")
    result = read(archive)
    assert [(e.key, e.value) for e in result.events] == [(e.key, e.value) for e in bulk.events]
    assert result.rejects_path == tmp_path / "export.zip.rejects.csv"
    assert result.rejects_path.read_text(encoding="utf-8") == "file,line,column,reason\n"


def test_zip_with_one_wrapping_folder_is_read(tmp_path: Path) -> None:
    archive = zip_dir(DATA / "delta", tmp_path / "delta.zip", folder="oneroster/")
    assert sorted(e.key for e in read(archive).events) == [AVA, BEN]


# --------------------------------------------------------------------------- rejects

BAD_ROWS_MESSAGES = [
    "users.csv:4:givenName: required value is empty",
    "users.csv:5:status: unknown status 'inactive' (expected active or empty in a bulk file)",
    "users.csv:7:familyName: value is not valid UTF-8 (bytes shown as \\xNN); "
    "save the export as UTF-8",
    "users.csv:8:userIds: no student key: the key rule is userIds {stateID:...} (state_id) and "
    "userIds has no {stateID:...} entry; fill it, or set student_key in the source "
    "configuration (--source)",
    # a required reference cascades, and the held-back student names the row that held it
    "users.csv:9:*: student not published: a row it joins was rejected (enrollments.csv:10)",
    "roles.csv:4:userSourcedId: user 'usr-stu-3' was rejected (users.csv:4)",
    "roles.csv:5:userSourcedId: user 'usr-stu-4' was rejected (users.csv:5)",
    "roles.csv:7:userSourcedId: user 'usr-stu-6' was rejected (users.csv:7)",
    "enrollments.csv:9:userSourcedId: unknown user 'usr-ghost' (not in users.csv)",
    "enrollments.csv:10:classSourcedId: unknown class 'cls-gone' (not in classes.csv)",
]

BAD_ROWS_WARNINGS = [
    "users.csv:0:pronouns: 1 row(s) have a value, but no event field carries it: not published",
    "users.csv:1:metadata.ssn: extension column not mapped by the source configuration "
    "(extensions): its values are not published",
    # optional values and references: null plus a warning, the row is kept
    "users.csv:6:primaryOrgSourcedId: unknown org 'org-s9' (not in orgs.csv): reference "
    "ignored (optional)",
    "demographics.csv:4:birthDate: '2013-02-30' is not a valid date: read as empty (optional)",
    "enrollments.csv:5:beginDate: '09/03/2025' is not a date (YYYY-MM-DD): read as empty "
    "(optional)",
    "enrollments.csv:6:primary: 'yes' is not true or false: read as empty (optional)",
]


def test_bad_rows_are_rejected_with_file_line_column_reason(tmp_path: Path) -> None:
    result = read(copy_package("bad_rows", tmp_path))
    assert messages(result) == BAD_ROWS_MESSAGES
    assert [w.message for w in result.warnings] == BAD_ROWS_WARNINGS
    assert result.rejected == 10
    assert result.rows_read == 46
    # the rest is published: a bad optional value no longer holds anyone back
    assert [e.key for e in result.events] == [AVA, BEN, "5234567890"]
    assert len(by_key(result)[AVA]["schedule"]["sections"]) == 3
    ben = by_key(result)[BEN]
    assert ben["enrollment"]["entry_date"] == dt.date(2024, 9, 4)  # from roles.csv
    assert ben["schedule"]["sections"][0]["teacher_name"] == "Daniel Reyes"  # primary=yes
    eli = by_key(result)["5234567890"]
    assert eli["school_id"] == "360000100001"  # the dangling primary org was dropped


def test_rejects_file_beside_the_package_holds_rows_and_diagnostics(tmp_path: Path) -> None:
    package = copy_package("bad_rows", tmp_path)
    result = read(package)
    assert result.rejects_path == tmp_path / "bad_rows.rejects.csv"
    with result.rejects_path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        header = list(reader.fieldnames or [])
        rows = list(reader)
    assert header[-4:] == ["file", "line", "column", "reason"]
    assert header[:3] == ["sourcedId", "status", "dateLastModified"]
    assert [f"{r['file']}:{r['line']}:{r['column']}: {r['reason']}" for r in rows] == (
        BAD_ROWS_MESSAGES
    )
    zoe = rows[2]
    assert (zoe["sourcedId"], zoe["givenName"], zoe["familyName"]) == (
        "usr-stu-6",
        "Zoe",
        "M\\xfcller",  # the Latin-1 byte, shown so the admin can find it
    )
    enrollment = rows[9]
    assert (enrollment["sourcedId"], enrollment["userSourcedId"], enrollment["classSourcedId"]) == (
        "enr-9",
        "usr-stu-8",
        "cls-gone",
    )
    assert enrollment["givenName"] == ""  # a column of another file
    assert result.warnings_path == tmp_path / "bad_rows.warnings.csv"
    with result.warnings_path.open(encoding="utf-8", newline="") as handle:
        warned = list(csv.DictReader(handle))
    assert [f"{r['file']}:{r['line']}:{r['column']}: {r['reason']}" for r in warned] == (
        BAD_ROWS_WARNINGS
    )
    assert warned[4]["beginDate"] == "09/03/2025"  # the row is there to fix it


def test_rejects_file_is_rewritten_on_a_clean_rerun(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "users.csv", "Chloe,Nguyen", ",Nguyen")
    assert read(package).rejected == 2
    edit(package / "users.csv", ",Nguyen", "Chloe,Nguyen")
    result = read(package)
    assert result.rejected == 0
    assert rejects_path_for(package).read_text(encoding="utf-8") == "file,line,column,reason\n"


def test_rejects_file_can_be_skipped(tmp_path: Path) -> None:
    package = copy_package("bad_rows", tmp_path)
    result = read(package, write_rejects_file=False)
    assert result.rejects_path is None
    assert result.rejected == 10
    assert not rejects_path_for(package).exists()


def test_secrets_never_reach_the_rejects_file_and_formulas_are_neutralised(
    tmp_path: Path,
) -> None:
    package = copy_package("bad_rows", tmp_path)
    read(package)
    text = rejects_path_for(package).read_text(encoding="utf-8")
    for secret in ("hunter2", "078-05-1120", "219-09-9999"):  # password, metadata.ssn
        assert secret not in text
    with rejects_path_for(package).open(encoding="utf-8", newline="") as handle:
        rows = {r["sourcedId"]: r for r in csv.DictReader(handle)}
    assert rows["usr-stu-3"]["password"] == "[redacted]"
    assert rows["usr-stu-3"]["metadata.ssn"] == "[redacted]"
    # a spreadsheet opening the file shows the formula as text instead of running it
    assert rows["usr-stu-4"]["middleName"] == '\'=HYPERLINK("http://evil.example","x")'
    assert all(not v.startswith(("=", "+", "@")) for r in rows.values() for v in r.values())


def test_references_to_unknown_or_rejected_rows_cascade_to_the_students(
    tmp_path: Path,
) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "enrollments.csv", "enr-4,,,cls-math7-1,", "enr-4,,,cls-gone,")
    edit(package / "classes.csv", "org-s1,as-2026-fall,English", "org-s7,as-2026-fall,English")
    edit(package / "users.csv", "+15555550188,,usr-stu-2", "+15555550188,,usr-stu-9")
    result = read(package)
    assert messages(result) == [
        "classes.csv:3:schoolSourcedId: unknown org 'org-s7' (not in orgs.csv)",
        "users.csv:2:*: student not published: a row it joins was rejected (enrollments.csv:3)",
        "users.csv:3:*: student not published: a row it joins was rejected (enrollments.csv:5)",
        "enrollments.csv:3:classSourcedId: class 'cls-ela7-2' was rejected (classes.csv:3)",
        "enrollments.csv:5:classSourcedId: unknown class 'cls-gone' (not in classes.csv)",
        "enrollments.csv:7:classSourcedId: class 'cls-ela7-2' was rejected (classes.csv:3)",
    ]
    # a guardian link is optional: the dangling one is a warning, Grace stays a guardian
    assert [w.message for w in result.warnings if w.file == "users.csv" and w.line] == [
        "users.csv:8:agentSourcedIds: unknown user 'usr-stu-9' (not in users.csv): reference "
        "ignored (optional)"
    ]
    # Ava and Ben would lose a class (required references): held back, not published
    # incomplete.
    assert [e.key for e in result.events] == [CHLOE]


def test_physical_line_numbers_count_quoted_newlines(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "users.csv", "Daniel,Reyes,,T-0042", 'Daniel,"Reyes\nJr",,T-0042')
    edit(package / "users.csv", "Grace,Okafor,,P-502", "Grace,Okafor,,P-502,extra")
    edit(package / "users.csv", "usr-stu-2,,,,,,,,org-s1,", "usr-stu-2,,,,,,,,org-s1,she/her")
    result = read(package)
    assert messages(result) == [
        # Grace's row starts on physical line 9: Daniel's record spans lines 5 and 6.
        "users.csv:9:*: row has 24 fields but the header has 23",
        "roles.csv:8:userSourcedId: user 'usr-par-2' was rejected (users.csv:9)",
    ]
    # A malformed row is a reject of that row only: its values may sit under other columns,
    # so it holds back no student (Ben is published without the guardian it linked).
    assert [e.key for e in result.events] == [AVA, BEN, CHLOE]
    assert by_key(result)[BEN]["guardians"] == []
    assert by_key(result)[AVA]["schedule"]["sections"][2]["teacher_name"] == "Daniel Reyes\nJr"


def test_duplicate_sourced_ids_reject_every_copy(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "demographics.csv", "usr-stu-2,,,2012-11-02", "usr-stu-1,,,2012-11-02")
    result = read(package)
    assert messages(result) == [
        "users.csv:2:*: student not published: a row it joins was rejected (demographics.csv:2)",
        "demographics.csv:2:sourcedId: duplicate sourcedId 'usr-stu-1' (also on line 3)",
        "demographics.csv:3:sourcedId: duplicate sourcedId 'usr-stu-1' (also on line 2)",
    ]
    assert [e.key for e in result.events] == [BEN, CHLOE]


def test_two_students_with_one_state_id_are_both_rejected(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "users.csv", "{stateID:3234567890}", "{stateID:2234567890}")
    result = read(package)
    assert messages(result) == [
        "users.csv:3:*: the student key is also the key of users.csv line 4",
        "users.csv:4:*: the student key is also the key of users.csv line 3",
    ]
    assert [e.key for e in result.events] == [AVA]


def test_value_the_schema_refuses_is_rejected_on_its_column(tmp_path: Path) -> None:
    schema = copy.deepcopy(load_schema("student_record_changed"))
    demographics = next(f for f in schema["fields"] if f["name"] == "demographics")
    record = next(t for t in demographics["type"] if isinstance(t, dict))
    sex = next(f for f in record["fields"] if f["name"] == "sex")
    sex["type"] = ["null", {"type": "enum", "name": "Sex", "symbols": ["female", "male"]}]
    package = copy_package("bulk", tmp_path)
    edit(package / "demographics.csv", "2012-11-02,male", "2012-11-02,other")
    result = read(package, schema=schema)
    assert messages(result) == [
        "demographics.csv:3:sex: the event schema refuses the value of demographics.sex"
    ]
    assert [e.key for e in result.events] == [AVA, CHLOE]


def test_utf8_byte_order_mark_is_accepted(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    users = package / "users.csv"
    users.write_bytes(b"\xef\xbb\xbf" + users.read_bytes())
    assert read(package).rejects == []


# --------------------------------------------------------------------------- package errors


def assert_package_error(path: Path, *phrases: str) -> None:
    with pytest.raises(OneRosterPackageError) as caught:
        read(path)
    for phrase in phrases:
        assert phrase in str(caught.value)
    assert not rejects_path_for(path).exists()  # nothing written, nothing to publish


def test_missing_package(tmp_path: Path) -> None:
    assert_package_error(tmp_path / "nowhere", "does not exist", "check the path")


def test_file_that_is_not_a_zip(tmp_path: Path) -> None:
    path = tmp_path / "export.zip"
    path.write_text("not a zip")
    assert_package_error(path, "is not a readable zip")


def test_without_a_manifest_the_version_is_detected_with_a_warning(tmp_path: Path) -> None:
    result = read(copy_package("no_manifest", tmp_path))
    assert (result.version, result.mode) == ("1.2", "bulk")
    assert [e.key for e in result.events] == [AVA, BEN, CHLOE]
    assert result.warnings[0].message == (
        "manifest.csv:0:*: no manifest.csv: read as a OneRoster 1.2 bulk package (detected "
        "from roles.csv or 1.2 users columns); every file present is bulk"
    )


def test_manifest_naming_a_missing_file(tmp_path: Path) -> None:
    assert_package_error(
        copy_package("missing_file", tmp_path),
        "file.demographics is bulk",
        "has no demographics.csv",
        "add the file or mark it absent",
    )


def test_manifest_with_an_unknown_oneroster_version(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "manifest.csv", "oneroster.version,1.2", "oneroster.version,2.0")
    assert_package_error(package, "oneroster.version is '2.0'", "1.0, 1.1 and 1.2")


def test_manifest_with_an_unknown_mode(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "manifest.csv", "file.users,bulk", "file.users,full")
    assert_package_error(package, "file.users is 'full'", "bulk, delta or absent")


def test_manifest_without_users(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "manifest.csv", "file.users,bulk", "file.users,absent")
    assert_package_error(package, "file.users is absent", "users.csv")


def test_header_without_a_required_column(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "enrollments.csv", "userSourcedId,role", "personSourcedId,role")
    assert_package_error(package, "enrollments.csv:1:", "userSourcedId")


def test_zip_without_manifest_or_users(tmp_path: Path) -> None:
    archive = zip_dir(DATA / "no_manifest", tmp_path / "export.zip")
    assert [e.key for e in read(archive).events] == [AVA, BEN, CHLOE]
    source = tmp_path / "no_users"
    shutil.copytree(DATA / "no_manifest", source)
    (source / "users.csv").unlink()
    assert_package_error(zip_dir(source, tmp_path / "no_users.zip"), "has no users.csv")


# --------------------------------------------------------------------------- small parts


def test_state_id_from_user_ids_wins_over_identifier(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    # Ava: userIds {stateID:1234567890} and identifier S-1001 -> the typed userIds entry.
    edit(package / "users.csv", "{stateID:1234567890}", "{StateID: 999}")
    events = by_key(read(package))
    assert events["999"]["identity"]["local_student_id"] == "S-1001"
    assert events[BEN]["identity"]["local_student_id"] is None  # identifier is the state id


def test_user_ids_must_be_type_id_pairs(tmp_path: Path) -> None:
    package = copy_package("bulk", tmp_path)
    edit(package / "users.csv", "{stateID:1234567890},{LDAP:alopez}", "stateID=1234567890")
    result = read(package)
    # userIds is optional: the bad value is a warning; without it Ava has no key
    assert [w.message for w in result.warnings] == [
        "users.csv:0:pronouns: 1 row(s) have a value, but no event field carries it: not published",
        "users.csv:2:userIds: 'stateID=1234567890' is not a list of {type:id} entries: read "
        "as empty (optional)",
    ]
    assert messages(result)[0].startswith("users.csv:2:userIds: no student key")


def test_write_rejects_with_no_rows_writes_the_header(tmp_path: Path) -> None:
    target = tmp_path / "x.rejects.csv"
    assert write_rejects(target, []) == 0
    assert target.read_text(encoding="utf-8") == "file,line,column,reason\n"
    reject = Reject("users.csv", 4, "givenName", "required value is empty", {"sourcedId": "u"})
    assert str(reject) == "users.csv:4:givenName: required value is empty"
