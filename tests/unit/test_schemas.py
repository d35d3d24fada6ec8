"""The .avsc files, their examples, and the field catalog derived from them."""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate

from streams.policy.catalog import (
    CATEGORIES,
    SPECIAL_CATEGORIES,
    FieldInfo,
    SchemaCategoryError,
    field_catalog,
    load_schema,
    never_share_paths,
    paths_by_category,
    schema_dir,
)
from streams.policy.schema_walk import container, holders, non_null, walk_fields

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EXAMPLES = SCHEMAS / "examples"

EXPECTED_NAMES = {
    "student_record_changed": "org.hallpass.sis.StudentRecordChanged",
    "consent_changed": "org.hallpass.consent.ConsentChanged",
    "disclosure_record": "org.hallpass.audit.DisclosureRecord",
    "deletion_notice": "org.hallpass.partner.DeletionNotice",
    "deletion_ack": "org.hallpass.partner.DeletionAck",
}

# Fields a writer must always set; every other field needs a default (BACKWARD compatibility).
REQUIRED = {
    "student_record_changed": {
        "event_id",
        "student_id",
        "source_system",
        "district_id",
        "operation",
        "occurred_at",
    },
    "consent_changed": {
        "event_id",
        "kind",
        "district_id",
        "effective_at",
        "recorded_by",
        "source_system",
    },
    "disclosure_record": {
        "decision_id",
        "event_id",
        "student_id",
        "partner",
        "decision",
        "contract_version",
        "decided_at",
        "source_topic",
        "source_partition",
        "source_offset",
    },
    "deletion_notice": {
        "event_id",
        "partner",
        "partner_student_key",
        "reason",
        "contract_version",
        "retracted_at",
    },
    "deletion_ack": {"notice_id", "partner", "partner_student_key", "deleted_at"},
}

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.json"))


def _stem_of(example: Path) -> str:
    return example.name.split(".", 1)[0]


def _load_example(example: Path) -> dict[str, Any]:
    loaded = json.loads(example.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def _all_fields(record: Mapping[str, Any]) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every field (containers and leaves) with its path."""
    return ((at.path, at.field) for at in walk_fields(record))


def _leaf_paths_of(datum: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaf paths of a record value, in the catalog's path syntax."""
    for key, value in datum.items():
        path = prefix + key
        if isinstance(value, dict):
            yield from _leaf_paths_of(value, path + ".")
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                yield from _leaf_paths_of(item, path + "[].")
        else:
            yield path, value


def _without(schema: dict[str, Any], datum: dict[str, Any], path: str) -> tuple[Any, Any]:
    """Copies of schema and datum with the field at path removed (from every array item)."""
    schema = copy.deepcopy(schema)
    datum = copy.deepcopy(datum)
    *parents, last = path.split(".")
    record: Any = schema
    for segment in parents:
        name = segment.removesuffix("[]")
        field = next(f for f in record["fields"] if f["name"] == name)
        below = container(field["type"])
        assert below is not None, path
        record = below[0]
    record["fields"] = [f for f in record["fields"] if f["name"] != last]
    for holder in holders(datum, path):
        assert isinstance(holder, dict)
        del holder[last]
    return schema, datum


def _with_default(datum: dict[str, Any], path: str, default: Any) -> dict[str, Any]:
    datum = copy.deepcopy(datum)
    last = path.rpartition(".")[2]
    for holder in holders(datum, path):
        assert isinstance(holder, dict)
        holder[last] = copy.deepcopy(default)
    return datum


def _roundtrip(datum: dict[str, Any], writer: dict[str, Any], reader: dict[str, Any]) -> Any:
    parsed_writer = fastavro.parse_schema(copy.deepcopy(writer))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed_writer, datum)
    buffer.seek(0)
    return fastavro.schemaless_reader(
        buffer, parsed_writer, fastavro.parse_schema(copy.deepcopy(reader))
    )


def _logical_values(avro_type: Any, datum: Any, path: str) -> Iterator[tuple[str, str, Any]]:
    """(path, logicalType, value) for every logical-typed value in a datum."""
    if datum is None:
        return
    branches = non_null(avro_type)
    inner = branches[0] if len(branches) == 1 else None
    if not isinstance(inner, dict):
        return
    if "logicalType" in inner:
        yield path, inner["logicalType"], datum
    elif inner.get("type") == "record":
        for field in inner["fields"]:
            yield from _logical_values(
                field["type"], datum.get(field["name"]), path + "." + field["name"]
            )
    elif inner.get("type") == "array":
        for item in datum:
            yield from _logical_values(inner["items"], item, path + "[]")


@pytest.fixture(scope="module")
def student_catalog() -> dict[str, FieldInfo]:
    return field_catalog(load_schema("student_record_changed"))


@pytest.fixture(scope="module")
def full_upsert() -> dict[str, Any]:
    return _load_example(EXAMPLES / "student_record_changed.upsert.json")


# --- the schema files -------------------------------------------------------------------


@pytest.mark.parametrize("stem", sorted(EXPECTED_NAMES))
def test_every_schema_parses_with_fastavro_under_its_agreed_name(stem: str) -> None:
    parsed = fastavro.parse_schema(load_schema(stem))
    assert isinstance(parsed, dict)
    assert parsed["name"] == EXPECTED_NAMES[stem]


def test_schemas_dir_holds_exactly_the_agreed_schemas() -> None:
    assert {p.stem for p in SCHEMAS.glob("*.avsc")} == set(EXPECTED_NAMES)


@pytest.mark.parametrize("stem", sorted(EXPECTED_NAMES))
def test_every_field_but_the_required_ones_has_a_default(stem: str) -> None:
    schema = load_schema(stem)
    missing = [
        path
        for path, field in _all_fields(schema)
        if "default" not in field and path not in REQUIRED[stem]
    ]
    assert missing == []
    bad_null_defaults = [
        path
        for path, field in _all_fields(schema)
        if isinstance(field["type"], list)
        and "null" in field["type"]
        and (field["type"][0] != "null" or field.get("default", "absent") is not None)
    ]
    assert bad_null_defaults == []


def _defaulted_cases() -> Iterator[Any]:
    for example in EXAMPLE_FILES:
        schema = json.loads((SCHEMAS / f"{_stem_of(example)}.avsc").read_text(encoding="utf-8"))
        for path, field in _all_fields(schema):
            if "default" in field:
                yield pytest.param(example, path, id=f"{example.stem}:{path}")


@pytest.mark.parametrize(("example", "path"), list(_defaulted_cases()))
def test_reader_fills_the_default_when_the_writer_lacked_the_field(
    example: Path, path: str
) -> None:
    reader = load_schema(_stem_of(example))
    datum = _load_example(example)
    writer, datum_without = _without(reader, datum, path)
    default = dict(_all_fields(reader))[path]["default"]

    got = _roundtrip(datum_without, writer, reader)

    assert got == _roundtrip(_with_default(datum, path, default), reader, reader)


# --- the category rule ------------------------------------------------------------------


def test_every_leaf_of_the_student_schema_has_one_known_category(
    student_catalog: dict[str, FieldInfo], full_upsert: dict[str, Any]
) -> None:
    # field_catalog raises on a leaf without a valid category, so building it is the check;
    # the full example gives an independent list of the leaves it must cover.
    example_paths = {path for path, _ in _leaf_paths_of(full_upsert)}
    assert set(student_catalog) == example_paths
    assert {info.category for info in student_catalog.values()} <= CATEGORIES


def test_full_upsert_example_fills_every_leaf(full_upsert: dict[str, Any]) -> None:
    filled: dict[str, bool] = {}
    for path, value in _leaf_paths_of(full_upsert):
        filled[path] = filled.get(path, False) or value not in (None, [])
    assert [path for path, ok in filled.items() if not ok] == []


def test_containers_carry_no_category(student_catalog: dict[str, FieldInfo]) -> None:
    containers = {"names", "guardians", "schedule", "schedule.sections", "restricted"}
    assert containers.isdisjoint(student_catalog)
    assert "schedule.sections[].course_code" in student_catalog
    assert "guardians[].guardian_id" in student_catalog


@pytest.mark.parametrize(
    ("path", "category"),
    [
        ("student_id", "student_identifiers"),
        ("names.first_name", "student_name"),
        ("identity.local_student_id", "student_identifiers"),
        ("demographics.birth_date", "demographics"),
        ("enrollment.grade_level", "enrollment"),
        ("contact.email", "student_contact"),
        ("guardians[].guardian_id", "parent_id"),
        ("guardians[].last_name", "parent_name"),
        ("guardians[].phone", "parent_contact"),
        ("schedule.sections[].teacher_name", "schedule"),
        ("attendance.days_absent", "attendance"),
        ("assessment.results[].scale_score", "assessment"),
        ("transcript.course_grades[].grade", "transcript"),
        ("conduct.incidents[].action", "conduct"),
        ("programs", "student_program_membership"),
        ("special.ell_status", "special_ell"),
        ("special.free_reduced_lunch", "special_low_income"),
        ("special.homeless", "special_living_situation"),
        ("special.medical_alerts", "special_medical"),
        ("special.disability_category", "special_disability"),
        ("special.has_504_plan", "special_iep_504"),
        ("transportation.bus_route", "transportation"),
    ],
)
def test_fields_carry_the_category_a_privacy_officer_expects(
    student_catalog: dict[str, FieldInfo], path: str, category: str
) -> None:
    assert student_catalog[path].category == category


def test_special_section_holds_only_consent_categories(
    student_catalog: dict[str, FieldInfo],
) -> None:
    special = {p: i.category for p, i in student_catalog.items() if p.startswith("special.")}
    assert special
    assert set(special.values()) <= SPECIAL_CATEGORIES


def test_special_categories_are_the_special_ones_plus_conduct_and_surveys() -> None:
    special = SPECIAL_CATEGORIES
    assert special == {
        "special_ell",
        "special_low_income",
        "special_medical",
        "special_disability",
        "special_iep_504",
        "special_living_situation",
        "conduct",
        "student_survey_responses",
    }
    assert len(CATEGORIES) == 27
    assert SPECIAL_CATEGORIES <= CATEGORIES


def test_never_share_fields_cover_government_ids_and_free_text_notes(
    student_catalog: dict[str, FieldInfo],
) -> None:
    never = never_share_paths(student_catalog)
    expected = {
        "restricted.ssn": "student_identifiers",
        "restricted.other_government_id": "student_identifiers",
        "restricted.password": "student_identifiers",
        "restricted.health_notes": "special_medical",
        "restricted.counseling_notes": "special_medical",
    }
    assert set(expected) <= never
    assert {p: student_catalog[p].category for p in expected} == expected
    restricted = {p for p in student_catalog if p.startswith("restricted.")}
    assert never == restricted  # the restricted section is exactly the never-share data


def test_paths_by_category_groups_every_leaf_once(student_catalog: dict[str, FieldInfo]) -> None:
    grouped = paths_by_category(student_catalog)
    assert sum(len(paths) for paths in grouped.values()) == len(student_catalog)
    assert "names.preferred_first_name" in grouped["student_name"]


# --- field_catalog on small schemas -----------------------------------------------------


def _small(guardian_email: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "record",
        "name": "Small",
        "namespace": "test",
        "fields": [
            {"name": "student_id", "type": "string", "category": "student_identifiers"},
            {
                "name": "guardians",
                "type": [
                    "null",
                    {
                        "type": "array",
                        "items": {
                            "type": "record",
                            "name": "Guardian",
                            "fields": [
                                {"name": "guardian_id", "type": "string", "category": "parent_id"},
                                {"name": "email", "type": ["null", "string"], **guardian_email},
                            ],
                        },
                    },
                ],
                "default": None,
            },
        ],
    }


def test_field_catalog_lists_leaves_with_paths_and_types() -> None:
    catalog = field_catalog(_small({"category": "parent_contact", "never_share": False}))
    assert catalog == {
        "student_id": FieldInfo("student_id", "student_identifiers", False, "string"),
        "guardians[].guardian_id": FieldInfo(
            "guardians[].guardian_id", "parent_id", False, "string"
        ),
        "guardians[].email": FieldInfo(
            "guardians[].email", "parent_contact", False, ["null", "string"]
        ),
    }


@pytest.mark.parametrize(
    ("attributes", "reason_part"),
    [
        ({}, "no 'category'"),
        ({"category": "parent_email"}, "unknown category 'parent_email'"),
        ({"category": ["parent_contact", "parent_id"]}, "exactly one"),
        ({"category": "parent_contact", "never_share": "yes"}, "never_share"),
    ],
)
def test_field_catalog_rejects_a_leaf_without_one_valid_category(
    attributes: dict[str, Any], reason_part: str
) -> None:
    with pytest.raises(SchemaCategoryError) as caught:
        field_catalog(_small(attributes))
    assert caught.value.path == "guardians[].email"
    assert reason_part in caught.value.reason
    assert "guardians[].email" in str(caught.value)


def test_field_catalog_rejects_a_category_on_a_container() -> None:
    schema = _small({"category": "parent_contact"})
    schema["fields"][1]["category"] = "parent_contact"
    with pytest.raises(SchemaCategoryError) as caught:
        field_catalog(schema)
    assert caught.value.path == "guardians"


def test_field_catalog_follows_a_record_reused_by_name() -> None:
    address = {
        "type": "record",
        "name": "Address",
        "fields": [{"name": "city", "type": ["null", "string"], "category": "student_contact"}],
    }
    schema = {
        "type": "record",
        "name": "Person",
        "namespace": "test",
        "fields": [
            {"name": "home", "type": address},
            {"name": "mailing", "type": ["null", "test.Address"], "default": None},
        ],
    }
    assert set(field_catalog(schema)) == {"home.city", "mailing.city"}


def test_field_catalog_rejects_a_schema_that_is_not_a_record() -> None:
    with pytest.raises(SchemaCategoryError):
        field_catalog({"type": "array", "items": "string"})


# --- examples ---------------------------------------------------------------------------


def test_every_schema_has_an_example() -> None:
    assert {_stem_of(e) for e in EXAMPLE_FILES} == set(EXPECTED_NAMES)


@pytest.mark.parametrize("example", EXAMPLE_FILES, ids=lambda p: p.stem)
def test_example_validates_against_its_schema(example: Path) -> None:
    schema = load_schema(_stem_of(example))
    datum = _load_example(example)
    assert validate(datum, fastavro.parse_schema(schema), raise_errors=True)
    # fastavro also accepts ISO strings for dates; the examples must hold what Avro encodes.
    for path, logical, value in _logical_values(schema, datum, ""):
        assert isinstance(value, int) and not isinstance(value, bool), (path, logical, value)


def test_there_is_one_consent_example_per_kind() -> None:
    kinds = {_load_example(e)["kind"] for e in EXAMPLE_FILES if _stem_of(e) == "consent_changed"}
    kind_enum = next(
        f["type"] for f in load_schema("consent_changed")["fields"] if f["name"] == "kind"
    )
    assert kinds == set(kind_enum["symbols"])


def test_delete_example_leaves_every_section_null() -> None:
    datum = _load_example(EXAMPLES / "student_record_changed.delete.json")
    assert datum["operation"] == "DELETE"
    assert {k for k, v in datum.items() if v is not None} == REQUIRED["student_record_changed"] | {
        "school_id"
    }


# --- locating schemas -------------------------------------------------------------------


def test_schema_dir_defaults_to_the_repository_schemas(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HALLPASS_SCHEMAS_DIR", raising=False)
    assert schema_dir() == SCHEMAS


def test_schema_dir_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "tiny.avsc").write_text('{"type": "record", "name": "Tiny", "fields": []}')
    monkeypatch.setenv("HALLPASS_SCHEMAS_DIR", str(tmp_path))
    assert schema_dir() == tmp_path
    assert load_schema("tiny")["name"] == "Tiny"


@pytest.mark.parametrize("name", ["", "../student_record_changed", "a/b", ".hidden"])
def test_load_schema_takes_only_a_file_stem(name: str) -> None:
    with pytest.raises(ValueError, match="file stem"):
        load_schema(name)
