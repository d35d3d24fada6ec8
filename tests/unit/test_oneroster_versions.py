"""OneRoster 1.0 and 1.1 packages, key rules and districts (no Kafka).

Fixtures: ``v1_1`` (a 1.1 package: users.role, orgSourcedIds, agentSourcedIds, grades, no
roles.csv; identifier holds the login), ``v1_0`` (no manifest, 1.0 names: agents, userId,
grade, schoolYearId, termSourcedId, birthdate; mixed-case headers; no district org), and the
source configurations in ``sources/``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

from connectors.oneroster import (
    EXTENSION_ENTITIES,
    KEY_FIELDS,
    TYPED_KEY_FIELDS,
    OneRosterPackageError,
    PackageReadResult,
    read_package,
)
from connectors.source.config import SourceConfig, load_source_config

DATA = Path(__file__).resolve().parents[1] / "data" / "oneroster"
SOURCES = DATA / "sources"


def config(name: str) -> SourceConfig:
    return load_source_config(
        SOURCES / f"{name}.yaml",
        key_fields=KEY_FIELDS,
        typed_key_fields=TYPED_KEY_FIELDS,
        extension_entities=EXTENSION_ENTITIES,
    )


def read(name: str, tmp_path: Path, source: str | None = None, **kwargs: Any) -> PackageReadResult:
    package = tmp_path / name
    shutil.copytree(DATA / name, package)
    return read_package(
        package, config=config(source) if source else None, fallback_time_ms=7, **kwargs
    )


def by_key(result: PackageReadResult) -> dict[str, dict[str, Any]]:
    return {e.key: e.value for e in result.events}


def test_v1_1_package_is_read_with_its_layout(tmp_path: Path) -> None:
    result = read("v1_1", tmp_path, "birch-lake")
    assert (result.version, result.mode, result.rejects) == ("1.1", "bulk", [])
    assert sorted(by_key(result)) == ["270000101", "270000102"]  # students, not staff/parents
    mia = by_key(result)["270000101"]
    assert mia["student_id_type"] == "state_id"
    assert mia["district_id"] == "2700123" and mia["school_id"] == "270012300101"
    assert mia["source_system"] == "Birch Lake SIS"
    # identifier is the login in this export: it is neither the state id nor the local id
    assert mia["identity"] == {
        "local_student_id": None,
        "state_student_id": "270000101",
        "sourced_id": "bl-u-101",
        "username": "mia.hansen",
        "sis_user_id": "101",
    }
    assert mia["enrollment"]["grade_level"] == "04"
    assert [w.message for w in result.warnings] == [
        "users.csv:0:grades: 1 user(s) list more than one grade: grade_level carries the first"
    ]
    assert [(s["section_id"], s["teacher_name"]) for s in mia["schedule"]["sections"]] == [
        ("bl-cls-4a", "Karin Lind"),
        ("bl-cls-art", "Ole Dahl"),
    ]
    assert [g["guardian_id"] for g in mia["guardians"]] == ["bl-u-901"]
    assert mia["occurred_at"] == int(dt.datetime(2025, 9, 2, 13, tzinfo=dt.UTC).timestamp() * 1000)


def test_a_key_rule_that_gives_the_login_rejects_instead_of_publishing_it(
    tmp_path: Path,
) -> None:
    result = read("v1_1", tmp_path, "birch-lake-identifier")
    assert result.events == []
    assert [r.message for r in result.rejects] == [
        f"users.csv:{line}:identifier: the key rule identifier (state_id) gives the student's "
        "login (username or email); a login is never published as an id: choose another "
        "student_key in the source configuration"
        for line in (2, 3)
    ]
    # and no message quotes the login
    assert not any("mia.hansen" in r.reason for r in result.rejects)


def test_the_default_key_rule_wants_a_state_id_entry(tmp_path: Path) -> None:
    result = read("v1_1", tmp_path)  # no configuration: userIds {stateID:...}
    assert result.events == []
    assert {r.column for r in result.rejects} == {"userIds"}


def test_sourced_id_key_is_qualified_by_the_source(tmp_path: Path) -> None:
    result = read("v1_1", tmp_path, "birch-lake-sourced")
    assert sorted(by_key(result)) == ["birch-lake:bl-u-101", "birch-lake:bl-u-102"]
    mia = by_key(result)["birch-lake:bl-u-101"]
    assert mia["student_id_type"] == "sourced_id"
    assert mia["identity"]["state_student_id"] is None  # nothing claims to be a state id


def test_v1_0_package_without_manifest(tmp_path: Path) -> None:
    result = read("v1_0", tmp_path, "cedar-creek")
    assert (result.version, result.mode, result.rejects) == ("1.0", "bulk", [])
    assert result.warnings[0].message.startswith(
        "manifest.csv:0:*: no manifest.csv: read as a OneRoster 1.0 bulk package"
    )
    assert {w.column for w in result.warnings[1:]} == {
        "metadata.boarding",
        "metadata.classification",
        "metadata.gender",
    }
    lena = by_key(result)["TX0088001"]
    # no district org: the configured district
    assert (lena["district_id"], lena["school_id"]) == ("4800555", "480055500101")
    assert lena["source_system"] == "Cedar Creek SIS"
    assert lena["identity"]["sis_user_id"] == "S-88001"  # 1.0 userId
    assert lena["demographics"]["birth_date"] == dt.date(2011, 3, 14)  # birthdate, %m/%d/%Y
    assert [g["guardian_id"] for g in lena["guardians"]] == ["cd-g-1"]  # 1.0 agents
    section = lena["schedule"]["sections"][0]
    assert (section["term"], section["teacher_name"]) == ("Fall Semester", "Rita Moore")
    assert lena["enrollment"]["school_year"] == 2025  # 1.0 sessions: the year the term ends
    # dateLastModified without an offset is in the configured zone (America/Chicago, CDT)
    assert lena["occurred_at"] == int(
        dt.datetime(2025, 8, 20, 12, 30, tzinfo=dt.UTC).timestamp() * 1000
    )


def test_no_district_anywhere_is_one_message(tmp_path: Path) -> None:
    package = tmp_path / "v1_0"
    shutil.copytree(DATA / "v1_0", package)
    without = dataclasses.replace(config("cedar-creek"), district_id=None)
    with pytest.raises(OneRosterPackageError) as caught:
        read_package(package, config=without)
    assert str(caught.value) == (
        "2 student(s) have no district: orgs.csv has no org of type district above their "
        "schools and no district_id is configured; set district_id in the source "
        "configuration (--source) or pass --district"
    )


def test_district_given_on_the_command_line(tmp_path: Path) -> None:
    package = tmp_path / "v1_0"
    shutil.copytree(DATA / "v1_0", package)
    cfg = config("cedar-creek")
    result = read_package(package, config=cfg, default_district_id="4899999")
    assert {e.value["district_id"] for e in result.events} == {"4899999"}


def test_manifest_without_version_is_detected(tmp_path: Path) -> None:
    package = tmp_path / "v1_1"
    shutil.copytree(DATA / "v1_1", package)
    manifest = package / "manifest.csv"
    manifest.write_text(manifest.read_text().replace("oneroster.version,1.1\n", ""))
    result = read_package(package, config=config("birch-lake"))
    assert result.version == "1.1"
    assert result.warnings[0].message == (
        "manifest.csv:0:*: manifest.csv has no oneroster.version: read as OneRoster 1.1 "
        "(detected from 1.1 users or academicSessions columns)"
    )
