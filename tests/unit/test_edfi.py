"""The Ed-Fi connector's reading and mapping, without Kafka: interchange detection, the
streaming reader, the descriptor table, and whole loads of the Grand Bend slice."""

from __future__ import annotations

import datetime as dt
import shutil
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.edfi import DEFAULT_KEY_RULE, read_load
from connectors.edfi.descriptors import DescriptorMap, load_tables
from connectors.edfi.interchange import NotAnInterchange, identify
from connectors.edfi.readers import school_year
from connectors.edfi.stream import XmlProblem, read_root, records
from connectors.source.config import KeyRule, SourceConfig

DATA = Path(__file__).resolve().parents[1] / "data" / "edfi"
SLICE, OWN = DATA / "grand-bend", DATA / "hallpass"
CONFIG = SourceConfig(source_id="edfi-test", student_key=DEFAULT_KEY_RULE)
AS_OF = dt.date(2022, 3, 1)
NS = "http://ed-fi.org/5.0.0"


def load(tmp_path: Path, *, own: bool = False, drop: tuple[str, ...] = ()) -> Path:
    target = tmp_path / "load"
    shutil.copytree(SLICE, target)
    if own:
        for path in OWN.glob("*.xml"):
            shutil.copy(path, target / path.name)
    for name in drop:
        (target / name).unlink()
    return target


def read(path: Path, **kwargs: object):  # type: ignore[no-untyped-def]
    result, summary = read_load(path, config=CONFIG, as_of=AS_OF, now_ms=0, **kwargs)  # type: ignore[arg-type]
    return {e.key: e.value for e in result.events}, result, summary


# ------------------------------------------------------------------ interchange and version


@pytest.mark.parametrize(
    "namespace", ["http://ed-fi.org/5.0.0", "http://ed-fi.org/5.1.0", "http://ed-fi.org/4.0.0"]
)
def test_data_standards_4_and_5_are_read(namespace: str) -> None:
    found = identify("InterchangeStudentAttendance", namespace)
    assert found.kind == "StudentAttendance"
    assert found.version == namespace.rsplit("/", 1)[1]


@pytest.mark.parametrize(
    ("namespace", "says"),
    [
        ("http://ed-fi.org/0220", "not supported"),
        ("http://ed-fi.org/3.2.0", "not supported"),
        ("http://www.sifassociation.org/datamodel/na/3.4", "not an Ed-Fi"),
        ("", "not an Ed-Fi"),
    ],
)
def test_other_namespaces_are_refused_with_the_reason(namespace: str, says: str) -> None:
    with pytest.raises(NotAnInterchange, match=says):
        identify("InterchangeStudent", namespace)


def test_parent_interchange_of_data_standard_4_is_the_contact_one() -> None:
    assert identify("InterchangeParent", "http://ed-fi.org/4.0.0").kind == "Contact"
    assert identify("InterchangeFinance", NS).kind is None  # Ed-Fi, not mapped


# ------------------------------------------------------------------ streaming reader


def lines(text: str) -> list[bytes]:
    return [line.encode() + b"\n" for line in text.splitlines()]


def test_records_come_with_the_line_of_their_start_tag() -> None:
    doc = lines(
        f'<?xml version="1.0"?>\n<InterchangeStudent xmlns="{NS}">\n'
        "  <Student>\n    <StudentUniqueId> 1 </StudentUniqueId>\n  </Student>\n"
        "  <Student><StudentUniqueId>2</StudentUniqueId></Student>\n"
        "</InterchangeStudent>"
    )
    assert read_root(doc).namespace == NS
    got = [(line, node.text("StudentUniqueId")) for line, node in records(doc, NS)]
    assert got == [(3, "1"), (6, "2")]


def test_malformed_xml_names_its_line() -> None:
    doc = lines(
        f'<InterchangeStudent xmlns="{NS}">\n<Student>\n<StudentUniqueId>1'
        "</Student>\n</InterchangeStudent>"
    )
    with pytest.raises(XmlProblem) as problem:
        list(records(doc, NS))
    assert problem.value.line == 3  # <StudentUniqueId>1</Student>: the mismatch
    assert "not well-formed" in problem.value.reason


def test_a_document_type_declaration_is_refused() -> None:
    doc = lines('<!DOCTYPE x [<!ENTITY a "aaaa">]>\n<InterchangeStudent/>')
    with pytest.raises(XmlProblem, match="document type"):
        read_root(doc)


def _attendance_file(events: int) -> list[bytes]:
    head = [f'<InterchangeStudentAttendance xmlns="{NS}">\n'.encode()]
    body = [
        (
            f"<StudentSchoolAttendanceEvent><AttendanceEvent><EventDate>2022-01-"
            f"{1 + i % 28:02d}</EventDate><AttendanceEventCategory>uri://ed-fi.org/"
            "AttendanceEventCategoryDescriptor#Tardy</AttendanceEventCategory></AttendanceEvent>"
            f"<StudentReference><StudentIdentity><StudentUniqueId>{i % 50}</StudentUniqueId>"
            "</StudentIdentity></StudentReference></StudentSchoolAttendanceEvent>\n"
        ).encode()
        for i in range(events)
    ]
    return head + body + [b"</InterchangeStudentAttendance>\n"]


def _peak_while_streaming(events: int) -> int:
    doc = _attendance_file(events)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        count = sum(1 for _ in records(iter(doc), NS))
        assert count == events
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_file() -> None:
    small, large = _peak_while_streaming(2_000), _peak_while_streaming(40_000)
    assert large < small * 2 + 200_000, (small, large)


# ------------------------------------------------------------------ descriptors


def test_descriptors_match_the_code_value_whatever_the_namespace_and_case() -> None:
    mapping = DescriptorMap.default()
    assert mapping.code("SexDescriptor", "uri://ed-fi.org/SexDescriptor#Female") == "female"
    assert mapping.code("SexDescriptor", "uri://gbisd.edu/SexDescriptor#FEMALE") == "female"
    assert mapping.code("GradeLevelDescriptor", "uri://ed-fi.org/x#Third grade") == "03"
    assert mapping.unknown == {}


def test_an_unknown_descriptor_is_noted_not_silently_null() -> None:
    mapping = DescriptorMap.default()
    value = "uri://ed-fi.org/DisabilityDescriptor#Something New"
    assert mapping.code("DisabilityDescriptor", value, "a.xml:3:X") is None
    assert mapping.code("DisabilityDescriptor", value, "a.xml:9:X") is None
    assert mapping.unknown == {("DisabilityDescriptor", value): [2, "a.xml:3:X"]}


def test_a_descriptor_mapped_to_null_is_known_and_passthrough_keeps_codes() -> None:
    mapping = DescriptorMap.default()
    assert mapping.code("RaceDescriptor", "uri://ed-fi.org/RaceDescriptor#Other") is None
    assert mapping.code("PerformanceLevelDescriptor", "uri://x/P#Level 4") == "Level 4"
    assert mapping.unknown == {}


def test_an_extra_table_overrides_by_code_or_uri(tmp_path: Path) -> None:
    extra = tmp_path / "mine.yaml"
    extra.write_text("SexDescriptor:\n  Female: f\n  uri://d.org/SexDescriptor#X: other\n")
    mapping = DescriptorMap(load_tables(extra))
    assert mapping.code("SexDescriptor", "uri://ed-fi.org/SexDescriptor#Female") == "f"
    assert mapping.code("SexDescriptor", "uri://d.org/SexDescriptor#X") == "other"
    assert mapping.code("SexDescriptor", "uri://ed-fi.org/SexDescriptor#Male") == "male"


@given(st.integers(min_value=1990, max_value=2100))
def test_school_years_read_both_forms_as_the_ending_year(year: int) -> None:
    assert school_year(str(year)) == year
    assert school_year(f"{year - 1}-{year}") == year


# ------------------------------------------------------------------ whole loads


def test_the_slice_gives_each_named_student_the_values_of_the_xml(tmp_path: Path) -> None:
    events, result, summary = read(load(tmp_path))
    assert len(events) == 10 and result.rejects == []
    walls = events["605231"]
    assert walls["names"]["first_name"] == "Alejandra"
    assert walls["district_id"] == "255901" and walls["school_id"] == "255901107"
    assert walls["attendance"]["days_absent"] == 4.0
    assert walls["attendance"]["last_absence_date"] == dt.date(2021, 11, 2)
    assert walls["special"]["medical_alerts"] == ["medically_fragile"]
    assert walls["special"]["has_iep"] is False  # IEP from 2021-09-01, exited 2021-10-01
    conduct = events["605370"]["conduct"]["incidents"]
    assert conduct == [
        {
            "incident_id": "15",
            "incident_date": dt.date(2022, 2, 2),
            "behavior_code": "school_code_of_conduct",
            "action": "in_school_suspension",
            "days_suspended": 1.0,
            "participation": "perpetrator",
        }
    ]
    assert events["605551"]["special"]["homeless"] is True
    assert events["605551"]["special"]["free_reduced_lunch"] == "free"
    results = events["604837"]["assessment"]["results"]
    assert {r["subject"]: r["performance_level"] for r in results} == {
        "Reading": "Met Standard",
        "Mathematics": "Did Not Meet Standard",
    }
    guardians = walls["guardians"]
    assert [(g["guardian_id"], g["relationship"], g["first_name"]) for g in guardians] == [
        ("778096", "mother", "Juliette"),
        ("778720", "father", "Lee"),
    ]
    # not in the slice: StudentEnrollment, StudentGrade, StudentTranscript -> null sections
    assert {"enrollment", "schedule", "transcript", "contact"}.isdisjoint(summary.carried)
    assert walls["enrollment"] is None and walls["transcript"] is None


def test_enrollment_grades_and_transcript_are_used_when_present(tmp_path: Path) -> None:
    events, result, _ = read(load(tmp_path, own=True))
    assert result.rejects == []
    walls, ruiz = events["605231"], events["605370"]
    assert walls["enrollment"]["grade_level"] == "03"
    assert walls["enrollment"]["school_name"] == "Grand Bend Elementary School"
    assert walls["identity"]["local_student_id"] == "L-5231"
    assert walls["demographics"]["sex"] == "female"
    assert walls["demographics"]["home_language"] == "spa"
    assert walls["special"]["has_504_plan"] is True
    assert walls["special"]["disability_category"] is None  # a 504 disability, not IDEA
    assert walls["special"]["economically_disadvantaged"] is True
    assert walls["special"]["ell_status"] == "active"
    transcript = ruiz["transcript"]
    assert (transcript["gpa"], transcript["gpa_scale"], transcript["credits_earned"]) == (
        3.25,
        4.0,
        12.5,
    )
    assert [(g["course_code"], g["grade"]) for g in transcript["course_grades"]] == [
        ("ALG-1", "B+"),
        ("ENG-9", "A-"),
    ]
    assert ruiz["schedule"]["sections"][0]["section_id"] == "ALG-1-01"


def test_the_key_can_be_a_typed_identification_code(tmp_path: Path) -> None:
    config = SourceConfig(
        source_id="edfi-test", student_key=KeyRule("StudentIdentificationCode", "local_id", "Local")
    )
    result, _ = read_load(load(tmp_path, own=True), config=config, as_of=AS_OF, now_ms=0)
    keys = {e.key for e in result.events}
    assert keys == {"L-5231"}  # the others have no Local code in this load: rejected
    assert len(result.rejects) == 9
    assert all("StudentIdentificationCode" in r.reason for r in result.rejects)


def test_bad_files_and_references_are_rejected_alone_with_where_and_why(tmp_path: Path) -> None:
    path = load(tmp_path)
    discipline = (path / "StudentDiscipline.xml").read_text()
    (path / "StudentDiscipline.xml").write_text(discipline.replace("</DisciplineAction>", "", 1))
    (path / "Sif.xml").write_text(
        '<?xml version="1.0"?>\n<StudentPersonal xmlns='
        '"http://www.sifassociation.org/datamodel/na/3.4"/>\n'
    )
    attendance = (path / "StudentSchoolAttendance.xml").read_text()
    (path / "StudentSchoolAttendance.xml").write_text(
        attendance.replace(
            "<StudentUniqueId>604821</StudentUniqueId>",
            "<StudentUniqueId>999999</StudentUniqueId>",
            1,
        )
    )
    events, result, summary = read(path)
    messages = sorted(r.message for r in result.rejects)
    assert len(messages) == 3, messages
    assert messages[0].startswith("Sif.xml:1:root: namespace")
    assert messages[1].startswith("StudentDiscipline.xml:")
    assert "not well-formed XML" in messages[1]
    assert messages[2].startswith("StudentSchoolAttendance.xml:")
    assert ":StudentSchoolAttendanceEvent: student '999999' is in no Student" in messages[2]
    for message in messages:  # where and why, never a value of a record
        assert "Absence" not in message and "Suspension" not in message
    # the broken discipline file leaves conduct out for everyone; the rest is there
    assert "conduct" not in summary.carried
    assert events["605370"]["conduct"] is None
    assert events["605231"]["special"]["medical_alerts"] == ["medically_fragile"]
    assert len(events) == 10
    written = result.rejects_path.read_text()
    assert "999999" in written and "Excused" not in written


def test_unknown_descriptors_become_warnings(tmp_path: Path) -> None:
    path = load(tmp_path)
    program = (path / "StudentProgram.xml").read_text()
    (path / "StudentProgram.xml").write_text(
        program.replace("ProgramTypeDescriptor#Homeless", "ProgramTypeDescriptor#Brand New")
    )
    _, result, _ = read(path)
    warned = [w.message for w in result.warnings]
    assert any(
        "unknown ProgramTypeDescriptor 'uri://ed-fi.org/ProgramTypeDescriptor#Brand New'" in w
        for w in warned
    ), warned
