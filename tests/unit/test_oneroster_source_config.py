"""The source configuration of a SIS connection: parsed once, checked, errors say where."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from connectors.oneroster import EXTENSION_ENTITIES, KEY_FIELDS, TYPED_KEY_FIELDS
from connectors.source.config import (
    DEFAULT_KEY_RULE,
    KeyRule,
    SourceConfig,
    SourceConfigError,
    load_source_config,
)

SOURCES = Path(__file__).resolve().parents[1] / "data" / "oneroster" / "sources"


def load(path: Path) -> SourceConfig:
    return load_source_config(
        path,
        key_fields=KEY_FIELDS,
        typed_key_fields=TYPED_KEY_FIELDS,
        extension_entities=EXTENSION_ENTITIES,
    )


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "source.yaml"
    path.write_text(text)
    return path


def test_every_fixture_configuration_loads() -> None:
    for path in sorted(SOURCES.glob("*.yaml")):
        assert load(path).source_id


def test_a_full_configuration() -> None:
    cfg = load(SOURCES / "cedar-creek.yaml")
    assert cfg.source_id == "cedar-creek" and cfg.district_id == "4800555"
    assert cfg.student_key == KeyRule("identifier", "state_id")
    assert cfg.date_formats == ("%m/%d/%Y",)
    assert cfg.time_zone.utcoffset(dt.datetime(2026, 1, 1)) == dt.timedelta(hours=-6)
    assert cfg.withdrawal_max_share == 0.10


def test_defaults_without_a_file() -> None:
    cfg = SourceConfig()
    assert cfg.student_key == DEFAULT_KEY_RULE == KeyRule("userIds", "state_id", "stateID")
    assert cfg.district_id is None and cfg.time_zone is dt.UTC


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("district_id: x\n", "source: required"),
        ("source: Maple SIS\n", "is not a source id"),
        (
            "source: m\nstudent_key: {from: username, is: state_id}\n",
            "student_key.from: 'username' is not one of",
        ),
        ("source: m\nstudent_key: {from: userIds, is: state_id}\n", "student_key.type: required"),
        ("source: m\nstudent_key: {from: identifier}\n", "student_key.is: required"),
        ("source: m\nstudent_key: {from: sourcedId, is: state_id}\n", "always sourced_id"),
        ("source: m\ndates: {time_zone: Mars/Olympus}\n", "unknown time zone"),
        ("source: m\ndates: {formats: ['%H:%M']}\n", "is not a date format"),
        ("source: m\nextensions: {users: {metadata.x: names.nope}}\n", "is not a field"),
        ("source: m\nextensions: {users: {metadata.x: student_id}}\n", "set by the connector"),
        (
            "source: m\nextensions: {classes: {metadata.x: names.first_name}}\n",
            "mapped for users, demographics only",
        ),
        ("source: m\nwithdrawals: {max_share: 2}\n", "is not a share between 0 and 1"),
        ("source: m\ndistrict: x\n", "district: unknown setting"),
        ("source: m\ndistrict_id: absent\n", "district_id: must not be empty"),
        ("- a list\n", "expected a mapping"),
        ("source: [\n", "not valid YAML"),
    ],
)
def test_bad_configurations_say_file_key_and_reason(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(SourceConfigError) as caught:
        load(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SourceConfigError, match="cannot read the source configuration"):
        load(tmp_path / "nope.yaml")
