"""The SIS simulator and the OneRoster package writer: determinism, realism, schema validity."""

from __future__ import annotations

import csv
import hashlib
import io
from collections import Counter, defaultdict
from collections.abc import Iterable
from datetime import date, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import fastavro
import pytest
from fastavro.validation import validate

from connectors.oneroster.columns import COMMON, KNOWN_FILES, SPECS, canonical_names
from connectors.oneroster.writer import COLUMNS, write_oneroster_delta, write_oneroster_package
from connectors.simulation.stream import (
    CHANGES_TOPIC,
    CONSENT_TOPIC,
    DEFAULT_START,
    PARTNERS,
    SimEvent,
    build_districts,
    simulate,
)
from streams.policy.catalog import load_schema

CONSENT_KINDS = {
    "GRANT",
    "REVOKE",
    "PARTNER_OPT_OUT",
    "ALL_OPT_OUT",
    "DIRECTORY_OPT_OUT",
    "DISTRICT_OPT_OUT",
}
SECTIONS = (
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


@pytest.fixture(scope="module")
def schemas() -> dict[str, Any]:
    return {
        CHANGES_TOPIC: fastavro.parse_schema(load_schema("student_record_changed")),
        CONSENT_TOPIC: fastavro.parse_schema(load_schema("consent_changed")),
    }


@pytest.fixture(scope="module")
def month() -> list[SimEvent]:
    """30 school days of two districts of 2,000 students each."""
    return list(simulate(4000, 11, 30, districts=2))


@pytest.fixture(scope="module")
def large() -> list[SimEvent]:
    """20,000 students through the 15-day window in which parents return the annual notice."""
    return list(simulate(20_000, 3, 15))


def _digest(events: Iterable[SimEvent], schemas: dict[str, Any]) -> str:
    """SHA-256 over the Avro binary encoding of every event (topic, key, value)."""
    digest = hashlib.sha256()
    for event in events:
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, schemas[event.topic], event.value)
        digest.update(f"{event.topic}\0{event.key}\0".encode())
        digest.update(buffer.getvalue())
    return digest.hexdigest()


def _initial_snapshots(events: list[SimEvent]) -> dict[str, dict[str, Any]]:
    """The first snapshot of each student of the start-of-year roster (not those who come
    later: their enrolment begins after the first day)."""
    found: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for event in events:
        if event.topic == CHANGES_TOPIC and event.key not in seen:
            seen.add(event.key)
            if event.value["enrollment"]["entry_date"] == DEFAULT_START:
                found[event.key] = event.value
    return found


def _share(values: Iterable[bool]) -> float:
    items = list(values)
    return sum(items) / len(items)


# --------------------------------------------------------------------------- determinism


def test_same_seed_gives_byte_identical_events(schemas: dict[str, Any]) -> None:
    first = _digest(simulate(600, 42, 12, districts=2), schemas)
    second = _digest(simulate(600, 42, 12, districts=2), schemas)
    assert first == second


def test_different_seed_gives_different_events(schemas: dict[str, Any]) -> None:
    assert _digest(simulate(600, 42, 5), schemas) != _digest(simulate(600, 43, 5), schemas)


def test_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="days"):
        list(simulate(10, 1, -1))
    with pytest.raises(ValueError, match="districts"):
        list(simulate(10, 1, 1, districts=0))


def test_no_students_no_events() -> None:
    assert list(simulate(0, 1, 5)) == []


# --------------------------------------------------------------------------- schema validity


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_event_validates_against_its_schema(seed: int, schemas: dict[str, Any]) -> None:
    events = list(simulate(250, seed, 50, districts=2))
    assert {e.topic for e in events} == {CHANGES_TOPIC, CONSENT_TOPIC}
    for event in events:
        assert validate(event.value, schemas[event.topic], raise_errors=True)


# --------------------------------------------------------------------------- the district


def test_initial_roster_has_one_full_snapshot_per_student(month: list[SimEvent]) -> None:
    roster = _initial_snapshots(month)
    districts = build_districts(4000, 11, districts=2)
    assert set(roster) == {s.state_id for d in districts for s in d.students}
    for key, value in roster.items():
        assert value["operation"] == "UPSERT"
        assert value["student_id"] == key == value["identity"]["state_student_id"]
        assert all(value[section] is not None for section in SECTIONS), key
        assert 1 <= len(value["guardians"]) <= 2
        assert value["schedule"]["sections"]


def test_schools_by_level_with_grades_and_schedules(month: list[SimEvent]) -> None:
    roster = _initial_snapshots(month)
    grades_by_school: dict[str, set[str]] = defaultdict(set)
    for value in roster.values():
        enrollment = value["enrollment"]
        grades_by_school[enrollment["school_name"]].add(enrollment["grade_level"])
        sections = value["schedule"]["sections"]
        if enrollment["grade_level"] in ("KG", "01", "02", "03", "04", "05"):
            assert len(sections) == 1  # a homeroom
            assert enrollment["homeroom"]
        else:
            assert len(sections) == 7
            periods = [s["period"] for s in sections]
            assert len(set(periods)) == 7, "two classes in one period"
            assert all(s["teacher_name"] for s in sections)
    for school, grades in grades_by_school.items():
        if school.endswith("Elementary School"):
            assert grades <= {"KG", "01", "02", "03", "04", "05"}
        elif school.endswith("Middle School"):
            assert grades <= {"06", "07", "08"}
        else:
            assert school.endswith("High School")
            assert grades <= {"09", "10", "11", "12"}
    levels = Counter(name.rsplit(" ", 2)[-2] for name in grades_by_school)
    assert levels["Elementary"] >= 2 and levels["Middle"] >= 2 and levels["High"] >= 2


def test_special_indicators_are_close_to_public_figures(large: list[SimEvent]) -> None:
    special = [v["special"] for v in _initial_snapshots(large).values()]
    assert len(special) == 20_000
    expected = {
        "IEP (IDEA)": (_share(s["has_iep"] for s in special), 0.15),
        "504 only": (_share(s["has_504_plan"] for s in special), 0.027),
        "English learner": (_share(s["ell_status"] == "active" for s in special), 0.10),
        "free/reduced lunch": (_share(s["free_reduced_lunch"] != "paid" for s in special), 0.50),
        "homeless": (_share(s["homeless"] for s in special), 0.025),
        "foster care": (_share(s["foster_care"] for s in special), 0.005),
        "food allergy": (
            _share(any(a.startswith("Food allergy") for a in s["medical_alerts"]) for s in special),
            0.08,
        ),
        "asthma": (_share("Asthma" in s["medical_alerts"] for s in special), 0.065),
    }
    for name, (observed, target) in expected.items():
        # Four standard errors of a proportion over 20,000 students, at least 0.3 points.
        tolerance = max(0.003, 4 * (target * (1 - target) / 20_000) ** 0.5)
        assert abs(observed - target) <= tolerance, f"{name}: {observed:.4f} vs {target}"
    assert all(not (s["has_iep"] and s["has_504_plan"]) for s in special)
    assert all(s["free_reduced_lunch"] == "free" for s in special if s["homeless"])


def test_never_share_fields_are_present_for_some_students(large: list[SimEvent]) -> None:
    restricted = [v["restricted"] for v in _initial_snapshots(large).values()]
    assert 0.15 < _share(r["ssn"] is not None for r in restricted) < 0.25
    assert any(r["health_notes"] for r in restricted)
    assert any(r["counseling_notes"] for r in restricted)
    assert any(r["password"] for r in restricted)


def test_opt_outs_after_the_annual_notice(large: list[SimEvent]) -> None:
    consents = [e.value for e in large if e.topic == CONSENT_TOPIC]
    by_kind: dict[str, set[str]] = defaultdict(set)
    for value in consents:
        by_kind[value["kind"]].add(value["student_id"])
    assert 0.02 <= len(by_kind["DIRECTORY_OPT_OUT"]) / 20_000 <= 0.05
    assert 0.004 <= len(by_kind["ALL_OPT_OUT"]) / 20_000 <= 0.015
    assert by_kind["PARTNER_OPT_OUT"]
    assert "DISTRICT_OPT_OUT" not in by_kind  # one district: nobody to opt out


# --------------------------------------------------------------------------- the stream


def _changes_by_student(events: list[SimEvent]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        if event.topic == CHANGES_TOPIC:
            found[event.key].append(event.value)
    return found


def _kinds_of_change(before: dict[str, Any], after: dict[str, Any]) -> set[str]:
    if after["operation"] == "DELETE":
        return {"withdrawal"}
    kinds = set()
    if after["school_id"] != before["school_id"]:
        kinds.add("school move")
    compared = {
        "attendance": ("days_absent", "days_tardy"),
        "assessment": ("results",),
        "conduct": ("incidents",),
        "transcript": ("course_grades",),
    }
    for section, fields in compared.items():
        if any(after[section][f] != before[section][f] for f in fields):
            kinds.add(section)
    if after["contact"] != before["contact"] or after["guardians"] != before["guardians"]:
        kinds.add("contact")
    if after["special"] != before["special"]:
        kinds.add("special")
    return kinds


def test_stream_holds_each_kind_of_change_over_a_month(month: list[SimEvent]) -> None:
    roster = _initial_snapshots(month)
    kinds: Counter[str] = Counter()
    for key, values in _changes_by_student(month).items():
        if key not in roster:
            kinds["new student"] += 1
            assert values[0]["enrollment"]["entry_date"] > DEFAULT_START
        for before, after in pairwise(values):
            kinds.update(_kinds_of_change(before, after))
    for kind in (
        "attendance",
        "assessment",
        "conduct",
        "school move",
        "withdrawal",
        "new student",
        "contact",
        "special",
    ):
        assert kinds[kind] > 0, f"no {kind} in 30 days: {kinds}"
    # Volume stays reasonable: an attendance event only on an absent or tardy day.
    daily = (sum(1 for e in month if e.topic == CHANGES_TOPIC) - len(roster)) / 30
    assert daily < 0.3 * len(roster)


def test_stream_holds_each_consent_kind_over_a_month(month: list[SimEvent]) -> None:
    consents = [e for e in month if e.topic == CONSENT_TOPIC]
    assert {e.value["kind"] for e in consents} == CONSENT_KINDS
    districts = build_districts(4000, 11, districts=2)
    district_events = [e for e in consents if e.value["kind"] == "DISTRICT_OPT_OUT"]
    assert len(district_events) == 1
    (event,) = district_events
    assert event.key == event.value["district_id"] == districts[1].district_id
    assert event.value["partner"] == "measurely" and event.value["student_id"] is None
    for e in consents:
        if e.value["kind"] != "DISTRICT_OPT_OUT":
            assert e.key == e.value["student_id"]
        if e.value["partner"] is not None:
            assert e.value["partner"] in PARTNERS


def test_health_consents_go_to_students_with_those_needs(month: list[SimEvent]) -> None:
    roster = _initial_snapshots(month)
    grants = [e.value for e in month if e.topic == CONSENT_TOPIC and e.value["kind"] == "GRANT"]
    assert grants
    for grant in grants:
        assert grant["partner"] == "carewell-health"
        assert grant["categories"]
        assert set(grant["categories"]) <= {"special_medical", "special_iep_504"}
        assert grant["expires_at"] > grant["effective_at"]
        special = roster[grant["student_id"]]["special"] if grant["student_id"] in roster else None
        if special is not None and "special_medical" in grant["categories"]:
            assert special["medical_alerts"]
        if special is not None and "special_iep_504" in grant["categories"]:
            assert special["has_iep"] or special["has_504_plan"]
    revokes = [e.value for e in month if e.topic == CONSENT_TOPIC and e.value["kind"] == "REVOKE"]
    granted = {g["student_id"] for g in grants}
    assert revokes and all(r["student_id"] in granted for r in revokes)


def test_withdrawal_is_a_delete_and_the_last_event_of_the_student(month: list[SimEvent]) -> None:
    deleted = 0
    for values in _changes_by_student(month).values():
        operations = [v["operation"] for v in values]
        if "DELETE" in operations:
            deleted += 1
            assert operations.index("DELETE") == len(operations) - 1
            delete = values[-1]
            assert all(delete[section] is None for section in SECTIONS)
    assert deleted > 0


def test_times_move_forward_on_school_days_only(month: list[SimEvent]) -> None:
    eastern = ZoneInfo("America/New_York")
    start_ms = int(datetime(2026, 9, 8, tzinfo=eastern).timestamp() * 1000)
    changes = [e.value["occurred_at"] for e in month if e.topic == CHANGES_TOPIC]
    assert changes == sorted(changes)
    assert changes[0] >= start_ms
    for stamp in changes:
        local = datetime.fromtimestamp(stamp / 1000, tz=eastern)
        assert local.weekday() < 5
        assert local.date() != date(2026, 10, 12)  # Indigenous Peoples' Day
        if local.date() > DEFAULT_START:
            assert 6 <= local.hour <= 23
    assert date(2026, 9, 8) == DEFAULT_START


def test_attendance_counts_only_grow(month: list[SimEvent]) -> None:
    for values in _changes_by_student(month).values():
        live = [v["attendance"] for v in values if v["operation"] == "UPSERT"]
        for before, after in pairwise(live):
            assert after["days_absent"] >= before["days_absent"]
            assert after["days_tardy"] >= before["days_tardy"]
            assert after["days_enrolled"] >= before["days_enrolled"]
            assert after["days_present"] + after["days_absent"] == after["days_enrolled"]


def test_report_cards_at_the_end_of_the_first_marking_period() -> None:
    events = list(simulate(300, 5, 47))
    graded = [
        e.value
        for e in events
        if e.topic == CHANGES_TOPIC
        and e.value["operation"] == "UPSERT"
        and any(g["term"] == "Q1" for g in e.value["transcript"]["course_grades"])
    ]
    assert graded
    first = min(v["occurred_at"] for v in graded)
    eastern = ZoneInfo("America/New_York")
    assert datetime.fromtimestamp(first / 1000, tz=eastern).date() == date(2026, 11, 13)
    for value in graded:
        assert value["enrollment"]["grade_level"] not in ("KG", "01", "02", "03", "04", "05")
        assert value["transcript"]["gpa"] is not None


def test_emitted_values_are_not_changed_by_later_events(schemas: dict[str, Any]) -> None:
    """Values share unchanged sections; a later change must never alter an emitted value."""
    kept: list[SimEvent] = []
    at_emission: list[str] = []
    for event in simulate(300, 9, 48):  # includes tests, moves and the Q1 report cards
        kept.append(event)
        at_emission.append(_digest([event], schemas))
    assert [_digest([event], schemas) for event in kept] == at_emission


def test_topics_match_the_bus() -> None:
    topics = pytest.importorskip("streams.kafka.names")
    assert topics.CHANGES == CHANGES_TOPIC
    assert topics.CONSENT == CONSENT_TOPIC


# --------------------------------------------------------------------------- OneRoster


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with path.open(encoding="utf-8", newline="") as stream:
        reader = csv.DictReader(stream)
        return list(reader.fieldnames or []), list(reader)


def test_package_has_the_oneroster_1_2_files_and_columns(tmp_path: Path) -> None:
    summary = write_oneroster_package(500, tmp_path / "pkg", seed=4)
    _, manifest = _read_csv(tmp_path / "pkg" / "manifest.csv")
    properties = {row["propertyName"]: row["value"] for row in manifest}
    assert properties["oneroster.version"] == "1.2"
    for name, columns in COLUMNS.items():
        header, rows = _read_csv(tmp_path / "pkg" / name)
        assert tuple(header) == columns
        assert properties[f"file.{name.removesuffix('.csv')}"] == "bulk"
        assert len(rows) == summary.rows[name] > 0
        assert all(row["status"] == "" and row["dateLastModified"] == "" for row in rows)
    _, users = _read_csv(tmp_path / "pkg" / "users.csv")
    _, roles = _read_csv(tmp_path / "pkg" / "roles.csv")
    role_of = {r["userSourcedId"]: r["role"] for r in roles}
    counted = Counter(role_of[u["sourcedId"]] for u in users)
    assert counted["student"] == 500
    assert counted["teacher"] > 0 and counted["parent"] > 0


@pytest.mark.parametrize("key", sorted(KNOWN_FILES))
def test_writer_columns_are_the_columns_the_reader_reads_in_1_2(key: str) -> None:
    written = COLUMNS[KNOWN_FILES[key]]
    accepted = canonical_names(key)  # lowercase header -> the reader's column
    spec = SPECS[key]
    assert [c for c in written if accepted.get(c.lower()) != c] == []  # no unknown, no alias
    assert [c for c in written if (column := spec.column(c)) and column.legacy] == []
    assert len(set(written)) == len(written)
    assert set(written) == {*COMMON, *(c.name for c in spec.columns if not c.legacy)}


def test_writer_writes_every_file_the_reader_reads() -> None:
    assert list(COLUMNS) == list(KNOWN_FILES.values())


def test_package_read_back_gives_one_event_per_student(tmp_path: Path) -> None:
    reader = pytest.importorskip("connectors.oneroster")
    write_oneroster_package(1200, tmp_path / "pkg", seed=8, districts=2)
    result = reader.read_package(tmp_path / "pkg", write_rejects_file=False)
    assert result.rejects == []
    roster = _initial_snapshots(list(simulate(1200, 8, 0, districts=2)))
    assert sorted(e.key for e in result.events) == sorted(roster)
    for event in result.events:
        value, expected = event.value, roster[event.key]
        assert value["names"]["first_name"] == expected["names"]["first_name"]
        assert value["names"]["last_name"] == expected["names"]["last_name"]
        assert value["enrollment"]["grade_level"] == expected["enrollment"]["grade_level"]
        assert value["school_id"] == expected["school_id"]
        assert value["district_id"] == expected["district_id"]
        assert sorted(s["section_id"] for s in value["schedule"]["sections"]) == sorted(
            s["section_id"] for s in expected["schedule"]["sections"]
        )


def test_delta_has_changes_and_a_tobedeleted_student(tmp_path: Path) -> None:
    summary = write_oneroster_delta(800, tmp_path / "delta", seed=6, changes=12)
    assert summary.deleted and summary.updated
    _, manifest = _read_csv(tmp_path / "delta" / "manifest.csv")
    assert {r["value"] for r in manifest if r["propertyName"].startswith("file.")} == {
        "delta",
        "absent",
    }
    _, users = _read_csv(tmp_path / "delta" / "users.csv")
    assert all(u["status"] in ("active", "tobedeleted") and u["dateLastModified"] for u in users)
    deleted = {u["identifier"] for u in users if u["status"] == "tobedeleted"}
    assert deleted == set(summary.deleted)
    reader = pytest.importorskip("connectors.oneroster")
    result = reader.read_package(tmp_path / "delta", write_rejects_file=False)
    assert result.rejects == []
    operations = {e.key: e.operation for e in result.events}
    assert {k for k, op in operations.items() if op == "DELETE"} == set(summary.deleted)
    assert {k for k, op in operations.items() if op == "UPSERT"} == set(summary.updated) | set(
        summary.added
    )
