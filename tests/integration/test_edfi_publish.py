"""`hallpass publish edfi` on the real broker, with the Grand Bend slice of the Ed-Fi sample.

The command runs as a user would; each test reads back from the change topic only what its
own runs wrote. The last test sends the slice through the processor with the sample
contracts and checks each partner's view, filled from Ed-Fi data, with the health partner's
medical data only for the student whose parent consented.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from connectors.edfi import DEFAULT_KEY_RULE, read_load
from connectors.oneroster.publish import publish_result
from connectors.source.config import SourceConfig
from connectors.source.publisher import EventPublisher
from connectors.source.state import SourceStateStore
from streams.config import Connection
from streams.kafka.names import Topics
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.decision import partner_key
from streams.processor.app import apply_contracts, run_processor
from streams.processor.clock import ManualClock
from tests.integration.test_oneroster_publish import Changes
from tests.integration.test_processor import live_records
from tests.kafka_helpers import hallpass_cli, read_topic
from tests.processor_helpers import drop_prefix, hallpass

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "edfi"
WALLS, RUIZ, ASSESSED, HOMELESS = "605231", "605370", "604837", "605551"
CATALOG = field_catalog(load_schema("student_record_changed"))


@pytest.fixture
def changes(bus: Connection) -> Changes:
    return Changes(bus)


def make_load(tmp_path: Path, own: bool = True) -> Path:
    target = tmp_path / "load"
    shutil.copytree(DATA / "grand-bend", target)
    if own:
        for path in (DATA / "hallpass").glob("*.xml"):
            shutil.copy(path, target / path.name)
    return target


def publish(
    bus: Connection, tmp_path: Path, load: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    return hallpass_cli(
        bus,
        tmp_path / "data",
        "publish",
        "edfi",
        str(load),
        "--state",
        str(tmp_path / "state.sqlite3"),
        "--as-of",
        "2022-03-01",
        *args,
    )


def days(day: dt.date) -> int:
    """An Avro date as the change topic's decoder gives it (days since 1970-01-01)."""
    return (day - dt.date(1970, 1, 1)).days


def category(path: str) -> str:
    return CATALOG[path].category


def test_events_carry_the_xml_values_of_named_students_under_their_categories(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    run = publish(bus, tmp_path, make_load(tmp_path))
    assert run.returncode == 0, run.stderr
    assert "published 10, unchanged 0, rejected 0" in run.stdout
    got = dict(changes.since_mark())
    assert sorted(got) == sorted(
        {
            WALLS,
            RUIZ,
            ASSESSED,
            HOMELESS,
            "604821",
            "604872",
            "604908",
            "605262",
            "605387",
            "605417",
        }
    )
    walls, ruiz = got[WALLS], got[RUIZ]
    assert walls["district_id"] == "255901" and walls["student_id_type"] == "state_id"
    # attendance (StudentSchoolAttendance.xml)
    assert walls["attendance"]["days_absent"] == 4.0
    assert walls["attendance"]["last_absence_date"] == days(dt.date(2021, 11, 2))
    assert category("attendance.days_absent") == "attendance"
    # discipline (StudentDiscipline.xml)
    incident = ruiz["conduct"]["incidents"][0]
    assert (incident["incident_id"], incident["action"], incident["days_suspended"]) == (
        "15",
        "in_school_suspension",
        1.0,
    )
    assert category("conduct.incidents[].action") == "conduct"
    # special education, health and programs (StudentProgram.xml + enrollment)
    assert walls["special"]["medical_alerts"] == ["medically_fragile"]
    assert category("special.medical_alerts") == "special_medical"
    assert walls["special"]["has_504_plan"] is True
    assert category("special.has_504_plan") == "special_iep_504"
    assert walls["special"]["special_education_setting"].startswith("Inside reg class")
    assert ruiz["special"]["has_iep"] is True
    assert "special_education" in ruiz["programs"]
    assert category("programs") == "student_program_membership"
    assert got[HOMELESS]["special"]["homeless"] is True
    assert category("special.homeless") == "special_living_situation"
    assert got[HOMELESS]["special"]["free_reduced_lunch"] == "free"
    assert category("special.free_reduced_lunch") == "special_low_income"
    # grades (StudentGrade.xml, StudentTranscript.xml: written in the XSD's shape)
    assert ruiz["transcript"]["gpa"] == 3.25
    assert [g["grade"] for g in ruiz["transcript"]["course_grades"]] == ["B+", "A-"]
    assert category("transcript.gpa") == "transcript"
    # assessments and guardians
    levels = {r["subject"]: r["performance_level"] for r in got[ASSESSED]["assessment"]["results"]}
    assert levels == {"Reading": "Met Standard", "Mathematics": "Did Not Meet Standard"}
    assert [g["first_name"] for g in walls["guardians"]] == ["Juliette", "Lee"]
    assert category("guardians[].first_name") == "parent_name"


def test_a_rerun_publishes_nothing_and_one_changed_record_publishes_one_student(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    load = make_load(tmp_path)
    assert publish(bus, tmp_path, load).returncode == 0
    changes.mark()
    again = publish(bus, tmp_path, load)
    assert again.returncode == 0 and "published 0, unchanged 10" in again.stdout
    assert changes.since_mark() == []
    attendance = load / "StudentSchoolAttendance.xml"
    text = attendance.read_text()
    marker = "<StudentUniqueId>604837</StudentUniqueId>"
    at = text.index(marker)
    start = text.rindex("<StudentSchoolAttendanceEvent>", 0, at)
    record = text[start : text.index("</StudentSchoolAttendanceEvent>", at)]
    changed = record.replace("#Excused Absence", "#Tardy").replace("#Unexcused Absence", "#Tardy")
    assert changed != record
    attendance.write_text(text[:start] + changed + text[start + len(record) :])
    third = publish(bus, tmp_path, load)
    assert third.returncode == 0 and "published 1, unchanged 9" in third.stdout
    got = changes.since_mark()
    assert [key for key, _ in got] == ["604837"]
    assert got[0][1]["attendance"]["days_tardy"] == 1


def test_bad_input_is_named_and_the_rest_is_published(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    load = make_load(tmp_path, own=False)
    discipline = load / "StudentDiscipline.xml"
    discipline.write_text(discipline.read_text().replace("</DisciplineAction>", "", 1))
    (load / "Sif.xml").write_text(
        '<?xml version="1.0"?>\n<StudentPersonal xmlns='
        '"http://www.sifassociation.org/datamodel/na/3.4"/>\n'
    )
    attendance = load / "StudentSchoolAttendance.xml"
    attendance.write_text(
        attendance.read_text().replace(
            "<StudentUniqueId>604821</StudentUniqueId>",
            "<StudentUniqueId>999999</StudentUniqueId>",
            1,
        )
    )
    run = publish(bus, tmp_path, load)
    assert run.returncode == 3, run.stderr
    rejected = [line for line in run.stderr.splitlines() if line.startswith("rejected ")]
    assert len(rejected) == 3, run.stderr
    assert any(r.startswith("rejected Sif.xml:1:root: namespace") for r in rejected)
    assert any(
        r.startswith("rejected StudentDiscipline.xml:") and "not well-formed XML" in r
        for r in rejected
    )
    assert any("StudentSchoolAttendance.xml:" in r and "student '999999'" in r for r in rejected)
    assert "Traceback" not in run.stderr
    for line in rejected:
        assert "Absence" not in line and "Suspension" not in line
    got = dict(changes.since_mark())
    assert len(got) == 10
    assert got[RUIZ]["conduct"] is None  # its file was broken: "not part of this change"
    assert got[WALLS]["special"]["medical_alerts"] == ["medically_fragile"]
    rejects_file = load.parent / "load.rejects.csv"
    assert rejects_file.read_text().count("\n") == 4


def test_the_extended_schema_is_backward_compatible_in_the_registry(bus: Connection) -> None:
    before = subprocess.run(
        ["git", "show", "450022f~1:schemas/student_record_changed.avsc"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    subject = f"t.edfi.compat.{uuid.uuid4().hex[:8]}-value"
    registry = SchemaRegistryClient(bus.registry_config())
    try:
        registry.register_schema(subject, Schema(before, "AVRO"))
        now = json.dumps(load_schema("student_record_changed"))
        assert registry.test_compatibility(subject, Schema(now, "AVRO"))
    finally:
        registry.delete_subject(subject, permanent=False)


def test_each_partner_view_is_filled_from_ed_fi_and_health_data_only_with_consent(
    bus: Connection, tmp_path: Path
) -> None:
    topics = Topics(f"t.edfi.{uuid.uuid4().hex[:8]}.")
    contracts = REPO / "deploy" / "contracts"
    data_dir = tmp_path / "data"
    secrets_file = data_dir / "partner-secrets.json"
    now_ms = int(dt.datetime(2026, 10, 1, tzinfo=dt.UTC).timestamp() * 1000)
    try:
        apply_contracts(bus, contracts, topics, secrets_file=secrets_file)
        config = SourceConfig(source_id="edfi-proc", student_key=DEFAULT_KEY_RULE)
        with SourceStateStore(tmp_path / "state.sqlite3") as store:
            result, _ = read_load(
                make_load(tmp_path),
                config=config,
                store=store,
                as_of=dt.date(2022, 3, 1),
                now_ms=now_ms - 3_600_000,
                write_rejects_file=False,
            )
            publisher = EventPublisher(
                bus, {topics.changes: "student_record_changed", topics.consent: "consent_changed"}
            )
            publish_result(result, store, publisher, topics.changes)
        hallpass(
            bus,
            topics,
            data_dir,
            "consent",
            "grant",
            "--student",
            WALLS,
            "--partner",
            "carewell-health",
            "--district",
            "255901",
            "--category",
            "student_name",
            "--category",
            "special_medical",
            "--category",
            "special_iep_504",
            "--category",
            "enrollment",
            "--effective-at",
            str(now_ms - 1_800_000),
            "--granted-by",
            "guardian",
            "--guardian-id",
            "edfi-parent-1",
            "--signed-at",
            str(now_ms - 1_800_000),
            "--method",
            "paper",
            "--document-ref",
            "scan-1",
        )
        run_processor(
            bus,
            contracts,
            secrets_file,
            until_idle=True,
            worker=0,
            note=lambda _m: None,
            topics=topics,
            clock=ManualClock(now_ms),
        )
        secrets = json.loads(secrets_file.read_text())

        def view(partner: str) -> dict[str, dict[str, Any]]:
            keys = {
                partner_key(s, bytes.fromhex(secrets[partner])).encode(): s
                for s in {e.key for e in result.events}
            }
            live = live_records(bus, read_topic(bus, topics.partner(partner)))
            return {keys[k]: v for k, v in live.items()}

        carewell, measurely, learnwell = (
            view("carewell-health"),
            view("measurely"),
            view("learnwell"),
        )
        assert sorted(carewell) == [WALLS]  # the only student with a consent
        assert carewell[WALLS]["special"]["medical_alerts"] == ["medically_fragile"]
        assert carewell[WALLS]["special"]["has_504_plan"] is True
        assert carewell[WALLS]["names"]["first_name"] == "Alejandra"
        assert "attendance" not in carewell[WALLS]
        assert len(measurely) == 10
        assert measurely[WALLS]["attendance"]["days_absent"] == 4.0
        assert {r["performance_level"] for r in measurely[ASSESSED]["assessment"]["results"]} == {
            "Met Standard",
            "Did Not Meet Standard",
        }
        assert "special" not in measurely[WALLS] and "conduct" not in measurely[RUIZ]
        assert len(learnwell) == 10
        assert learnwell[WALLS]["names"]["last_name"] == "Walls"
        assert learnwell[WALLS]["enrollment"]["school_name"] == "Grand Bend Elementary School"
        assert learnwell[RUIZ]["schedule"]["sections"][0]["section_id"] == "ALG-1-01"
        assert "special" not in learnwell[WALLS]
    finally:
        drop_prefix(bus, topics.prefix)
