"""Partner views: derived schemas, compiled plans, and projection (allowlist, never blocklist)."""

from __future__ import annotations

import copy
import dataclasses
import io
import json
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import fastavro
import pytest
from fastavro.validation import validate
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.policy.catalog import SPECIAL_CATEGORIES, field_catalog, load_schema
from streams.policy.contracts import Allowance, Basis, Contract, load_contracts, resolve_allowances
from streams.policy.schema_walk import leaves, values_at
from streams.policy.views import (
    ENVELOPE_FIELDS,
    PartnerView,
    Permits,
    ViewError,
    compile_view,
    derive_view,
    derive_view_schema,
    partner_namespace,
    project,
)
from tests.unit.strategies import (
    SORTED_CATEGORIES,
    contracts_for,
    records_of,
    student_schemas,
    values_of,
)

REPO = Path(__file__).resolve().parents[2]
SOURCE = load_schema("student_record_changed")
CATALOG = field_catalog(SOURCE)
CONTRACTS = {c.partner: c for c in load_contracts(REPO / "deploy" / "contracts", CATALOG)}
ALL = Permits(directory=True, school_official=True, consent_categories=frozenset(SORTED_CATEGORIES))
NONE = Permits(directory=False, school_official=False, consent_categories=frozenset())


def decoded_example(case: str) -> dict[str, Any]:
    """An example record as the Avro deserializer hands it over (dates as date, etc.)."""
    path = REPO / "schemas" / "examples" / f"student_record_changed.{case}.json"
    parsed = fastavro.parse_schema(SOURCE)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, json.loads(path.read_text()))
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, parsed, parsed)  # type: ignore[return-value]


UPSERT = decoded_example("upsert")


def contract(partner: str = "p1", *allow: Allowance, version: int = 1) -> Contract:
    return Contract(
        partner=partner,
        display_name=partner,
        version=version,
        purpose="test",
        valid_from=date(2026, 1, 1),
        valid_until=date(2027, 12, 31),
        laws=("FERPA",),
        principal=f"User:{partner}",
        pseudonymous_ids=True,
        allow=allow,
    )


def leaf_values(value: Mapping[str, Any] | None, record: Mapping[str, Any]) -> dict[str, list[Any]]:
    """Non-null leaf values of a view value, by path, walking the view schema."""
    if value is None:
        return {}
    found = {
        path: values_at(value, path) for path, _ in leaves(record) if path not in ENVELOPE_FIELDS
    }
    return {path: values for path, values in found.items() if values}


def source_values(record: Mapping[str, Any], path: str) -> list[Any]:
    """Non-null values at a leaf path of a source record."""
    return values_at(record, path)


def encodes(value: Mapping[str, Any], schema: Mapping[str, Any]) -> bool:
    return bool(validate(value, fastavro.parse_schema(dict(schema)), raise_errors=True))


# --- derived schemas -----------------------------------------------------------------------


@pytest.mark.parametrize("partner", sorted(CONTRACTS))
def test_sample_views_are_valid_avro_with_exactly_the_allowed_leaves(partner: str) -> None:
    view = derive_view(SOURCE, CONTRACTS[partner])
    fastavro.parse_schema(dict(view.schema))
    assert view.schema["namespace"] == partner_namespace(partner)
    assert [f["name"] for f in view.schema["fields"][:4]] == list(ENVELOPE_FIELDS)
    allowed = resolve_allowances(CONTRACTS[partner], CATALOG)
    assert view.paths == set(allowed) - {"event_id", "occurred_at"}
    assert view.dropped == ()
    assert not any(CATALOG[p].never_share for p in view.paths)


def test_view_keeps_containers_only_where_a_leaf_survives() -> None:
    schema = derive_view_schema(SOURCE, CONTRACTS["learnwell"])
    top = [f["name"] for f in schema["fields"]]
    assert top == [*ENVELOPE_FIELDS, "school_id", "names", "enrollment", "contact", "schedule"]
    contact = next(f for f in schema["fields"] if f["name"] == "contact")
    assert [f["name"] for f in contact["type"][1]["fields"]] == ["email"]


def test_every_view_field_is_nullable_with_default_null_and_labelled() -> None:
    schema = derive_view_schema(SOURCE, CONTRACTS["learnwell"])

    def check(record: Mapping[str, Any]) -> None:
        for field in record["fields"]:
            assert field["type"][0] == "null" and field["default"] is None, field["name"]
            if "category" in field:
                assert field["basis"] in {b.value for b in Basis}
            else:
                branch = field["type"][1]
                check(branch["items"] if branch["type"] == "array" else branch)

    check({"fields": schema["fields"][4:]})


def test_view_record_names_live_in_the_partner_namespace() -> None:
    schema = derive_view_schema(SOURCE, CONTRACTS["carewell-health"])
    names = json.dumps(schema)
    assert "org.hallpass.sis" not in names
    assert schema["namespace"] == "org.hallpass.partner.carewell_health"


def test_partner_namespace_is_a_valid_avro_namespace() -> None:
    assert partner_namespace("carewell-health") == "org.hallpass.partner.carewell_health"
    assert partner_namespace("3m") == "org.hallpass.partner._3m"


def test_view_schema_does_not_depend_on_the_contract_version() -> None:
    allow = Allowance(basis=Basis.DIRECTORY, category="student_name")
    v1 = derive_view_schema(SOURCE, contract("p1", allow, version=1))
    v2 = derive_view_schema(SOURCE, contract("p1", allow, version=2))
    assert v1 == v2


def test_named_types_used_twice_are_defined_once_each_in_the_view() -> None:
    source = {
        "type": "record",
        "name": "S",
        "namespace": "org.hallpass.sis",
        "fields": [
            {"name": "event_id", "type": "string", "category": "application_meta"},
            {
                "name": "occurred_at",
                "type": {"type": "long", "logicalType": "timestamp-millis"},
                "category": "application_meta",
            },
            {
                "name": "level",
                "type": {"type": "enum", "name": "Level", "symbols": ["LOW", "HIGH"]},
                "category": "assessment",
            },
            {"name": "target", "type": ["null", "Level"], "category": "assessment"},
            {
                "name": "block",
                "type": {
                    "type": "record",
                    "name": "Block",
                    "fields": [{"name": "again", "type": "Level", "category": "assessment"}],
                },
            },
        ],
    }
    view = derive_view(
        source, contract("p1", Allowance(basis=Basis.CONSENT, category="assessment"))
    )
    fastavro.parse_schema(dict(view.schema))
    record = {
        "event_id": "e",
        "occurred_at": 1,
        "level": "LOW",
        "target": "HIGH",
        "block": {"again": "HIGH"},
    }
    projected = project(record, view, ALL, "k")
    assert projected is not None
    assert encodes(projected.value, view.schema)
    assert projected.fields == ("level", "target", "block.again")


# --- projecting a real record ------------------------------------------------------------------


def test_projection_of_the_example_record_for_learnwell() -> None:
    view = derive_view(SOURCE, CONTRACTS["learnwell"])
    projected = project(UPSERT, view, ALL, "key-1")
    assert projected is not None
    value = projected.value
    assert encodes(value, view.schema)
    assert value["partner_student_key"] == "key-1"
    assert value["event_id"] == UPSERT["event_id"]
    assert value["occurred_at"] == UPSERT["occurred_at"]
    assert value["contract_version"] == CONTRACTS["learnwell"].version
    assert value["names"] == UPSERT["names"]
    assert value["contact"] == {"email": UPSERT["contact"]["email"]}
    not_contracted = {"counselor", "graduation_year"}
    assert value["enrollment"] == {
        k: v for k, v in UPSERT["enrollment"].items() if k not in not_contracted
    }
    assert "guardians" not in value and "restricted" not in value and "special" not in value
    sections = UPSERT["schedule"]["sections"]
    assert value["schedule"]["sections"] == sections
    assert "schedule.sections[].course_code" in projected.fields
    assert projected.categories == {"enrollment", "student_name", "schedule", "student_contact"}
    assert projected.legal_bases == {Basis.DIRECTORY, Basis.SCHOOL_OFFICIAL}


def test_projection_of_a_record_without_sections_has_null_containers() -> None:
    view = derive_view(SOURCE, CONTRACTS["learnwell"])
    projected = project(decoded_example("delete"), view, ALL, "key-1")
    assert projected is not None
    assert projected.fields == ("school_id",)
    assert all(projected.value[name] is None for name in ("names", "enrollment", "schedule"))


def test_directory_opt_out_removes_exactly_the_directory_fields() -> None:
    view = derive_view(SOURCE, CONTRACTS["learnwell"])
    with_directory = project(UPSERT, view, ALL, "k")
    without = project(UPSERT, view, Permits(False, True, frozenset()), "k")
    assert with_directory is not None and without is not None
    assert set(with_directory.fields) - set(without.fields) == {"enrollment.grade_level"}
    assert without.value["enrollment"]["grade_level"] is None
    assert without.value["enrollment"]["school_name"] == UPSERT["enrollment"]["school_name"]
    assert Basis.DIRECTORY not in without.legal_bases


def test_consent_fields_appear_only_for_live_consent_categories() -> None:
    view = derive_view(SOURCE, CONTRACTS["carewell-health"])
    assert project(UPSERT, view, Permits(True, True, frozenset()), "k") is None
    only_medical = project(UPSERT, view, Permits(True, True, frozenset({"special_medical"})), "k")
    assert only_medical is not None
    assert only_medical.categories == {"special_medical"}
    special = only_medical.value["special"]
    assert special["medical_alerts"] == UPSERT["special"]["medical_alerts"]
    assert special["has_iep"] is None
    assert only_medical.value["names"] is None


def test_no_permitted_leaf_gives_no_projection() -> None:
    view = derive_view(SOURCE, CONTRACTS["learnwell"])
    assert project(UPSERT, view, NONE, "k") is None


def test_envelope_leaves_come_from_the_envelope_even_if_allowed() -> None:
    view = derive_view(SOURCE, contract("p1", Allowance(Basis.SCHOOL_OFFICIAL, "application_meta")))
    projected = project(UPSERT, view, ALL, "k")
    assert projected is not None
    assert set(projected.fields) == {"source_system", "operation"}
    assert [f["name"] for f in view.schema["fields"]].count("event_id") == 1


# --- compiling registered views ------------------------------------------------------------------


def test_a_registered_view_compiles_to_the_same_plan() -> None:
    learnwell = CONTRACTS["learnwell"]
    registered = json.loads(json.dumps(derive_view_schema(SOURCE, learnwell)))
    view = compile_view(registered, learnwell, CATALOG)
    direct = derive_view(SOURCE, learnwell)
    assert view.leaves == direct.leaves
    assert project(UPSERT, view, ALL, "k") == project(UPSERT, direct, ALL, "k")


def test_a_narrowed_contract_narrows_an_older_view() -> None:
    wide = contract(
        "p1",
        Allowance(Basis.SCHOOL_OFFICIAL, category="student_name"),
        Allowance(Basis.SCHOOL_OFFICIAL, category="enrollment"),
    )
    narrow = contract("p1", Allowance(Basis.SCHOOL_OFFICIAL, category="enrollment"), version=2)
    view = compile_view(derive_view_schema(SOURCE, wide), narrow, CATALOG)
    assert "names.first_name" in view.dropped
    projected = project(UPSERT, view, ALL, "k")
    assert projected is not None
    assert projected.value["names"] is None
    assert "student_name" not in projected.categories


def test_the_contracts_basis_wins_over_the_views_label() -> None:
    directory = contract("p1", Allowance(Basis.DIRECTORY, category="student_name"))
    consent = contract("p1", Allowance(Basis.CONSENT, category="student_name"), version=2)
    view = compile_view(derive_view_schema(SOURCE, directory), consent, CATALOG)
    assert project(UPSERT, view, Permits(True, True, frozenset()), "k") is None


def test_a_field_turned_never_share_is_dropped_from_an_older_view() -> None:
    allow = Allowance(Basis.SCHOOL_OFFICIAL, category="student_contact")
    schema = derive_view_schema(SOURCE, contract("p1", allow))
    newer = copy.deepcopy(SOURCE)
    contact = next(f for f in newer["fields"] if f["name"] == "contact")
    for field in contact["type"][1]["fields"]:
        if field["name"] == "phone":
            field["never_share"] = True
    view = compile_view(schema, contract("p1", allow), field_catalog(newer))
    assert view.dropped == ("contact.phone",)
    projected = project(UPSERT, view, ALL, "k")
    assert projected is not None
    assert projected.value["contact"]["phone"] is None


def test_compile_refuses_a_schema_without_the_envelope() -> None:
    schema = derive_view_schema(SOURCE, CONTRACTS["learnwell"])
    broken = {**schema, "fields": schema["fields"][1:]}
    with pytest.raises(ViewError, match="envelope"):
        compile_view(broken, CONTRACTS["learnwell"], CATALOG)


def add_leaf(schema: dict[str, Any], container: str | None, leaf: dict[str, Any]) -> dict[str, Any]:
    newer = copy.deepcopy(schema)
    if container is None:
        newer["fields"].append(leaf)
        return newer
    field = next(f for f in newer["fields"] if f["name"] == container)
    record = next(b for b in field["type"] if b != "null")
    record["fields"].append(leaf)
    return newer


def test_a_new_source_field_reaches_no_partner_until_its_contract_version_is_locked() -> None:
    """The contract allows student_name; a new student_name leaf still does not flow, not
    even in a view derived again: only a new contract version locked with it releases it."""
    learnwell = CONTRACTS["learnwell"]
    view = derive_view(SOURCE, learnwell)
    nickname = {"name": "nickname", "type": ["null", "string"], "default": None}
    newer = add_leaf(SOURCE, "names", {**nickname, "category": "student_name"})
    record = copy.deepcopy(UPSERT)
    record["names"]["nickname"] = "Dee"

    projected = project(record, view, ALL, "k")
    assert projected is not None
    assert "nickname" not in projected.value["names"]
    assert "names.nickname" not in projected.fields

    rederived = derive_view(newer, learnwell)
    again = project(record, rederived, ALL, "k")
    assert again is not None and "names.nickname" not in again.fields

    assert learnwell.frozen_fields is not None
    bumped = dataclasses.replace(
        learnwell,
        version=learnwell.version + 1,
        frozen_fields=learnwell.frozen_fields | {"names.nickname"},
    )
    released = project(record, derive_view(newer, bumped), ALL, "k")
    assert released is not None and released.value["names"]["nickname"] == "Dee"


# --- properties --------------------------------------------------------------------------------

permits_strategy = st.builds(
    Permits,
    st.booleans(),
    st.booleans(),
    st.frozensets(st.sampled_from(SORTED_CATEGORIES), max_size=8),
)
slow = settings(max_examples=150, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def scenarios(draw: st.DrawFn, checked: bool = False) -> tuple[Any, ...]:
    schema = draw(student_schemas())
    catalog = field_catalog(schema)
    the_contract = draw(contracts_for(catalog, checked=checked))
    record = draw(records_of(schema))
    return schema, catalog, the_contract, record


@slow
@given(scenarios(checked=False), permits_strategy)
def test_nothing_outside_the_allowlist_ever_leaves(
    scenario: tuple[Any, ...], permits: Permits
) -> None:
    schema, catalog, the_contract, record = scenario
    view = derive_view(schema, the_contract)
    fastavro.parse_schema(dict(view.schema))
    allowed = resolve_allowances(the_contract, catalog)
    projected = project(record, view, permits, "k")
    if projected is None:
        assert not view.permitted_paths(permits)
        return
    assert encodes(projected.value, view.schema)
    out = leaf_values(projected.value, view.schema)
    assert set(projected.fields) == set(out)
    assert set(out) <= view.permitted_paths(permits) <= set(allowed)
    for path, values in out.items():
        info = catalog[path]
        assert not info.never_share
        basis = allowed[path]
        if info.category in SPECIAL_CATEGORIES:
            assert basis is Basis.CONSENT
        if basis is Basis.CONSENT:
            assert info.category in permits.consent_categories
            assert set(info.reveals) <= permits.consent_categories
        elif basis is Basis.DIRECTORY:
            assert permits.directory
        else:
            assert permits.school_official
        assert values == source_values(record, path)
    assert projected.categories == {catalog[p].category for p in out}
    assert projected.legal_bases == {allowed[p] for p in out}


@slow
@given(scenarios(checked=True))
def test_every_permitted_value_arrives(scenario: tuple[Any, ...]) -> None:
    schema, catalog, the_contract, record = scenario
    view = derive_view(schema, the_contract)
    projected = project(record, view, ALL, "k")
    expected = {
        path: source_values(record, path)
        for path in resolve_allowances(the_contract, catalog)
        if source_values(record, path) and path not in ("event_id", "occurred_at")
    }
    out = leaf_values(projected.value if projected else None, view.schema)
    assert out == expected


@slow
@given(scenarios(checked=True), permits_strategy)
def test_directory_opt_out_removes_exactly_the_directory_basis_fields(
    scenario: tuple[Any, ...], permits: Permits
) -> None:
    schema, _, the_contract, record = scenario
    view = derive_view(schema, the_contract)
    on = project(
        record, view, Permits(True, permits.school_official, permits.consent_categories), "k"
    )
    off = project(
        record, view, Permits(False, permits.school_official, permits.consent_categories), "k"
    )
    on_fields = set(on.fields) if on else set()
    off_fields = set(off.fields) if off else set()
    directory = {leaf.path for leaf in view.leaves if leaf.basis is Basis.DIRECTORY}
    assert off_fields == on_fields - directory
    assert not off_fields & directory


@slow
@given(scenarios(checked=True), st.data())
def test_a_new_leaf_never_reaches_a_partner_through_an_older_view(
    scenario: tuple[Any, ...], data: st.DataObject
) -> None:
    schema, _, the_contract, record = scenario
    view = derive_view(schema, the_contract)
    allowed_categories = [a.category for a in the_contract.allow if a.category]
    category = data.draw(st.sampled_from(allowed_categories or SORTED_CATEGORIES))
    containers = [
        f["name"]
        for f in schema["fields"]
        if isinstance(f["type"], list)
        and isinstance(f["type"][1], dict)
        and f["type"][1]["type"] == "record"
    ]
    where = data.draw(st.sampled_from([None, *containers]))
    leaf = {"name": "brand_new", "type": ["null", "string"], "default": None, "category": category}
    newer = add_leaf(schema, where, leaf)
    newer_record = copy.deepcopy(record)
    target = newer_record if where is None else newer_record[where]
    if target is not None:
        target["brand_new"] = data.draw(values_of("string"))
    path = "brand_new" if where is None else f"{where}.brand_new"
    assert path in field_catalog(newer)

    projected = project(newer_record, view, ALL, "k")
    if projected is None:  # nothing sent, so nothing new sent: only when the view is empty
        assert not view.permitted_paths(ALL)
        return
    assert path not in projected.fields
    assert encodes(projected.value, view.schema)
    container = projected.value if where is None else projected.value.get(where)
    assert container is None or "brand_new" not in container


def test_partner_view_is_compiled_once_per_permit_set() -> None:
    view = derive_view(SOURCE, CONTRACTS["carewell-health"])
    assert isinstance(view, PartnerView)
    for _ in range(3):
        project(UPSERT, view, Permits(True, True, frozenset({"special_medical"})), "k")
        project(
            UPSERT, view, Permits(True, True, frozenset({"special_medical", "attendance"})), "k"
        )
    assert len(view._cache) == 1


# --- values that reveal special categories --------------------------------------------------

REVEALING = contract(
    "p-programs",
    Allowance(Basis.CONSENT, category="student_program_membership"),
    Allowance(Basis.CONSENT, category="special_iep_504"),
    Allowance(Basis.CONSENT, category="special_living_situation"),
)
REVEALED_BY_PROGRAMS = frozenset(CATALOG["programs"].reveals)


@given(
    st.sets(
        st.sampled_from(
            sorted({"student_program_membership", *REVEALED_BY_PROGRAMS, "special_medical"})
        )
    )
)
def test_program_codes_need_consent_for_every_category_they_can_reveal(
    live: set[str],
) -> None:
    """``programs`` can carry special-education, 504 and homeless program codes: a partner
    gets them only while the student's consent covers the field's own category and every
    special category its codes reveal (issue 12)."""
    assert {"special_iep_504", "special_living_situation"} == REVEALED_BY_PROGRAMS
    view = derive_view(SOURCE, REVEALING)
    assert {"student_program_membership", *REVEALED_BY_PROGRAMS} <= view.consent_categories
    permits = Permits(True, True, frozenset(live))
    projected = project(UPSERT, view, permits, "k")
    needed = {"student_program_membership", *REVEALED_BY_PROGRAMS}
    assert ("programs" in view.permitted_paths(permits)) == (needed <= live)
    sent = projected.value["programs"] if projected is not None else None
    if needed <= live:
        assert sent == UPSERT["programs"]
    else:
        assert sent is None
