"""Tolerance without silence: what real exports get wrong is read, and named (no Kafka).

Fixture ``tolerant``: mixed-case headers and aliases (birthdate, preferredFirstName), blank
trailing header columns and trailing commas, an unknown column, extension columns (one mapped
by ``sources/oak-hill.yaml``, one not, secret-looking), an empty manifest value for a file not
read, ``source.systemName,absent``, a dangling optional org parent and no district org,
``primary=yes``, a bad optional dateLastModified and birthDate, a row repeated word for word,
two enrollments of one student in one class, several grades.
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from pathlib import Path

import pytest

from connectors.oneroster import (
    EXTENSION_ENTITIES,
    KEY_FIELDS,
    TYPED_KEY_FIELDS,
    PackageReadResult,
    read_package,
)
from connectors.source.config import load_source_config
from connectors.source.rejects import is_secret_column, neutralised

DATA = Path(__file__).resolve().parents[1] / "data" / "oneroster"

TOLERANT_WARNINGS = [
    "manifest.csv:0:*: file.resources has no value; the file is not read here",
    "manifest.csv:14:*: source.systemName is 'absent': read as not given",
    "orgs.csv:2:parentSourcedId: unknown org 'org-gone' (not in orgs.csv): reference ignored "
    "(optional)",
    "users.csv:0:*: 5 row(s) end with empty fields beyond the header (a trailing comma): ignored",
    "users.csv:0:grades: 1 user(s) list more than one grade: grade_level carries the first",
    "users.csv:1:*: 2 blank column name(s) at the end of the header: ignored",
    "users.csv:1:metadata.lunchPin: extension column not mapped by the source configuration "
    "(extensions): its values are not published",
    "users.csv:1:nickname: unknown column: its values are not read",
    "users.csv:2:dateLastModified: 'yesterday' is not an ISO 8601 dateTime (like "
    "2026-01-05T12:30:00.000Z): read as empty",
    "users.csv:4:sourcedId: repeats line 3 word for word: read once",
    "demographics.csv:3:birthDate: '2012-13-01' is not a valid date: read as empty (optional)",
    "enrollments.csv:0:*: 5 row(s) end with empty fields beyond the header (a trailing "
    "comma): ignored",
    "enrollments.csv:5:primary: 'yes' is not true or false: read as empty (optional)",
    "enrollments.csv:6:primary: 'yes' is not true or false: read as empty (optional)",
    "enrollments.csv:6:sourcedId: repeats line 5 word for word: read once",
]


@pytest.fixture
def tolerant(tmp_path: Path) -> PackageReadResult:
    package = tmp_path / "tolerant"
    shutil.copytree(DATA / "tolerant", package)
    cfg = load_source_config(
        DATA / "sources" / "oak-hill.yaml",
        key_fields=KEY_FIELDS,
        typed_key_fields=TYPED_KEY_FIELDS,
        extension_entities=EXTENSION_ENTITIES,
    )
    return read_package(package, config=cfg, fallback_time_ms=7)


def test_everything_tolerated_is_published_and_nothing_rejected(
    tolerant: PackageReadResult,
) -> None:
    assert tolerant.rejects == []
    events = {e.key: e.value for e in tolerant.events}
    assert sorted(events) == ["4400001", "4400002"]
    omar, lily = events["4400001"], events["4400002"]
    assert omar["source_system"] == "oak-hill"  # 'absent' is never a value
    assert omar["district_id"] == "4400007"  # the configured district: the parent dangles
    assert omar["names"]["preferred_first_name"] == "Om"  # preferredFirstName
    assert omar["demographics"]["birth_date"] == dt.date(2012, 5, 1)  # birthdate
    assert omar["demographics"]["home_language"] == "ar"  # metadata.homeLanguage, mapped
    assert omar["occurred_at"] == 7  # 'yesterday' read as empty
    assert omar["enrollment"]["grade_level"] == "08"
    assert [g["relationship"] for g in omar["guardians"]] == ["guardian"]
    # primary=yes on the teacher's (duplicated) enrollment holds nobody back
    assert omar["schedule"]["sections"][0]["teacher_name"] == "Tara Brooks"
    # two enrollments of Lily in one class: one section
    assert [s["section_id"] for s in lily["schedule"]["sections"]] == ["cls-sci8-4"]
    assert lily["demographics"]["birth_date"] is None  # bad optional value: null + warning


def test_every_tolerated_problem_is_named_once(tolerant: PackageReadResult) -> None:
    assert [w.message for w in tolerant.warnings] == TOLERANT_WARNINGS


def test_warnings_file_redacts_secret_columns(tolerant: PackageReadResult) -> None:
    assert tolerant.warnings_path is not None
    text = tolerant.warnings_path.read_text(encoding="utf-8")
    assert "s3cret!" not in text and "4417" not in text  # password, metadata.lunchPin
    with tolerant.warnings_path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    omar = next(r for r in rows if r["sourcedId"] == "u-1")
    assert omar["password"] == "[redacted]" and omar["metadata.lunchPin"] == "[redacted]"
    assert omar["nickname"] == "Ommy"  # the row as exported, unknown columns included


def test_header_only_file_may_lack_optional_columns(tmp_path: Path) -> None:
    package = tmp_path / "bulk"
    shutil.copytree(DATA / "bulk", package)
    (package / "demographics.csv").write_text("sourcedId,status,dateLastModified\n")
    (package / "enrollments.csv").write_text(
        "sourcedId,classSourcedId,schoolSourcedId,userSourcedId,role\n"
    )
    result = read_package(package, fallback_time_ms=7)
    assert result.rejects == []
    assert len(result.events) == 3
    for event in result.events:
        assert set(event.value["demographics"].values()) == {None}
        assert event.value["schedule"] == {"school_year": None, "sections": []}


def test_secret_column_names() -> None:
    for name in (
        "password",
        "Password",
        "metadata.ssn",
        "apiToken",
        "client_secret",
        "metadata.lunchPin",
        "SocialSecurityNumber",
        "user_passwd",
    ):
        assert is_secret_column(name), name
    for name in ("classNumber", "pinnedNote", "username", "identifier", "sessions"):
        assert not is_secret_column(name), name


def test_formula_cells_are_neutralised() -> None:
    assert neutralised('=HYPERLINK("http://x")') == '\'=HYPERLINK("http://x")'
    assert neutralised("+1555") == "'+1555"
    assert neutralised("@SUM(A1)") == "'@SUM(A1)"
    assert neutralised("Ava") == "Ava"
