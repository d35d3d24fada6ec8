"""Contract files: loading, and every check a privacy officer relies on."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from streams.catalog import SPECIAL_CATEGORIES, FieldInfo, field_catalog, load_schema
from streams.contracts import (
    Allowance,
    Basis,
    Contract,
    ContractError,
    ContractsInvalidError,
    check_contracts,
    load_contracts,
    parse_contract,
    resolve_allowances,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "deploy" / "contracts"
CATALOG = field_catalog(load_schema("student_record_changed"))

VALID = """\
partner: learnwell
display_name: LearnWell Classroom
version: 3
purpose: Rostering and classroom learning platform
valid_from: 2026-07-01
valid_until: 2027-06-30
laws: [FERPA, NY-Ed-Law-2-d]
principal: User:learnwell
pseudonymous_ids: true
allow:
  - category: student_name
    basis: directory
  - field: enrollment.grade_level
    basis: directory
"""


def ms(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> int:
    return int(datetime(year, month, day, hour, minute, second, tzinfo=UTC).timestamp() * 1000)


def errors_of(text: str, file: str = "learnwell.yaml") -> list[ContractError]:
    return parse_contract(text, file, CATALOG)[1]


def with_allow(*entries: str, header: str = VALID.split("allow:")[0]) -> str:
    return header + "allow:\n" + "".join(f"  - {entry}\n" for entry in entries)


def keys_and_reasons(errors: list[ContractError]) -> list[tuple[str, str]]:
    return [(e.key, e.reason) for e in errors]


# --- the sample contracts --------------------------------------------------------------------


def test_sample_contracts_are_valid() -> None:
    assert check_contracts(SAMPLES, CATALOG) == []
    contracts = load_contracts(SAMPLES, CATALOG)
    assert [c.partner for c in contracts] == ["carewell-health", "learnwell", "measurely"]


def test_sample_contracts_are_active_today_and_through_mid_2027() -> None:
    for contract in load_contracts(SAMPLES, CATALOG):
        assert contract.is_active(ms(2026, 11, 28)), contract.partner
        assert contract.is_active(ms(2027, 6, 30, 23, 59)), contract.partner
        assert contract.topic == f"partner.{contract.partner}.students"


def test_sample_health_contract_shares_everything_on_consent_only() -> None:
    carewell = {c.partner: c for c in load_contracts(SAMPLES, CATALOG)}["carewell-health"]
    assert {a.basis for a in carewell.allow} == {Basis.CONSENT}
    allowed = resolve_allowances(carewell, CATALOG)
    assert {CATALOG[p].category for p in allowed} >= {"special_medical", "special_iep_504"}
    assert "restricted.health_notes" not in allowed


# --- a valid contract -----------------------------------------------------------------------------


def test_a_valid_contract_loads_into_frozen_data() -> None:
    contract, errors = parse_contract(VALID, "contracts/learnwell.yaml", CATALOG)
    assert errors == []
    assert contract == Contract(
        partner="learnwell",
        display_name="LearnWell Classroom",
        version=3,
        purpose="Rostering and classroom learning platform",
        valid_from=date(2026, 7, 1),
        valid_until=date(2027, 6, 30),
        laws=("FERPA", "NY-Ed-Law-2-d"),
        principal="User:learnwell",
        pseudonymous_ids=True,
        allow=(
            Allowance(basis=Basis.DIRECTORY, category="student_name"),
            Allowance(basis=Basis.DIRECTORY, field="enrollment.grade_level"),
        ),
    )
    assert contract.topic == "partner.learnwell.students"
    assert contract.source == "contracts/learnwell.yaml"


def test_contract_is_active_for_whole_utc_days() -> None:
    contract, _ = parse_contract(VALID, "learnwell.yaml", CATALOG)
    assert contract is not None
    assert not contract.is_active(ms(2026, 6, 30, 23, 59, 59))
    assert contract.is_active(ms(2026, 7, 1))
    assert contract.is_active(ms(2027, 6, 30, 23, 59, 59))
    assert not contract.is_active(ms(2027, 7, 1))


def test_explicit_default_topic_is_accepted() -> None:
    contract, errors = parse_contract(
        VALID + "topic: partner.learnwell.students\n", "learnwell.yaml", CATALOG
    )
    assert errors == [] and contract is not None


# --- one error per kind of mistake ------------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "key", "reason"),
    [
        ("category: student_names\n    basis: directory", "allow[0].category", "unknown category"),
        ("field: names.nickname\n    basis: directory", "allow[0].field", "unknown field"),
        ("field: names\n    basis: directory", "allow[0].field", "is a container"),
        ("field: restricted.ssn\n    basis: consent", "allow[0].field", "never shared"),
        (
            "category: special_medical\n    basis: school_official",
            "allow[0].category",
            "may only be shared on the consent basis",
        ),
        (
            "field: special.has_iep\n    basis: directory",
            "allow[0].field",
            "may only be shared on the consent basis",
        ),
        ("category: conduct\n    basis: directory", "allow[0].category", "special category"),
        (
            "category: student_name\n    basis: legitimate_interest",
            "allow[0].basis",
            "unknown basis",
        ),
        ("category: student_name", "allow[0].basis", "missing required key"),
        (
            "category: student_name\n    field: names.first_name\n    basis: directory",
            "allow[0]",
            "exactly one of",
        ),
        ("basis: directory", "allow[0]", "exactly one of"),
        (
            "category: student_name\n    basis: directory\n    note: x",
            "allow[0].note",
            "unknown key",
        ),
        ("just-a-string", "allow[0]", "must be a mapping"),
    ],
)
def test_bad_allowance_is_named_by_its_key(entry: str, key: str, reason: str) -> None:
    errors = errors_of(with_allow(entry))
    assert [e.key for e in errors] == [key], errors
    assert reason in errors[0].reason
    assert errors[0].file == "learnwell.yaml"


def test_unknown_field_suggests_the_closest_one() -> None:
    errors = errors_of(with_allow("field: names.firstname\n    basis: directory"))
    assert "did you mean 'names.first_name'" in errors[0].reason


def test_every_special_category_needs_consent() -> None:
    for category in sorted(SPECIAL_CATEGORIES):
        for basis in ("directory", "school_official"):
            errors = errors_of(with_allow(f"category: {category}\n    basis: {basis}"))
            assert keys_and_reasons(errors)[0][0] == "allow[0].category", category
        assert errors_of(with_allow(f"category: {category}\n    basis: consent")) == []


def test_overlapping_allowances_are_errors() -> None:
    errors = errors_of(
        with_allow(
            "category: student_name\n    basis: directory",
            "field: names.first_name\n    basis: school_official",
            "category: student_name\n    basis: consent",
            "field: enrollment.grade_level\n    basis: directory",
            "field: enrollment.grade_level\n    basis: directory",
        )
    )
    assert [e.key for e in errors] == [
        "allow[2].category",
        "allow[1].field",
        "allow[4].field",
    ]
    assert "already allowed through its category student_name" in errors[1].reason


@pytest.mark.parametrize(
    ("old", "new", "key", "reason"),
    [
        ("partner: learnwell", "partner: LearnWell", "partner", "not a partner id"),
        ("partner: learnwell", "partner: learn_well", "partner", "not a partner id"),
        ("partner: learnwell", "partner: learnwell-", "partner", "not a partner id"),
        ("partner: learnwell", "partner: measurely", "partner", "does not match the file name"),
        ("version: 3", "version: 0", "version", "positive integer"),
        ("version: 3", "version: three", "version", "positive integer"),
        ("version: 3", "version: true", "version", "positive integer"),
        ("valid_until: 2027-06-30", "valid_until: 2026-06-30", "valid_until", "before valid_from"),
        ("valid_from: 2026-07-01", "valid_from: July 1st", "valid_from", "must be a date"),
        (
            "valid_from: 2026-07-01",
            "valid_from: 2026-07-01T00:00:00Z",
            "valid_from",
            "not a date and time",
        ),
        ("laws: [FERPA, NY-Ed-Law-2-d]", "laws: []", "laws", "non-empty list"),
        ("laws: [FERPA, NY-Ed-Law-2-d]", "laws: FERPA", "laws", "non-empty list"),
        ("principal: User:learnwell", "principal: learnwell", "principal", "Kafka principal"),
        ("pseudonymous_ids: true", "pseudonymous_ids: maybe", "pseudonymous_ids", "true or false"),
        (
            "purpose: Rostering and classroom learning platform",
            "purpose: ''",
            "purpose",
            "non-empty",
        ),
        ("display_name: LearnWell Classroom", "display_name:", "display_name", "has no value"),
    ],
)
def test_bad_top_level_value_is_named_by_its_key(old: str, new: str, key: str, reason: str) -> None:
    assert old in VALID
    errors = errors_of(VALID.replace(old, new))
    assert [e.key for e in errors] == [key], errors
    assert reason in errors[0].reason


@pytest.mark.parametrize("key", ["partner", "version", "valid_until", "principal", "allow"])
def test_missing_required_key(key: str) -> None:
    lines = VALID.split("\n")
    text = "\n".join(line for line in lines if not line.startswith(f"{key}:"))
    if key == "allow":
        text = text.split("  - category")[0]
    errors = errors_of(text)
    assert ContractError("learnwell.yaml", key, "missing required key") in errors


def test_unknown_top_level_key() -> None:
    errors = errors_of(VALID + "retention_days: 30\n")
    assert [e.key for e in errors] == ["retention_days"]
    assert "unknown key" in errors[0].reason


def test_topic_must_be_the_partners_own() -> None:
    errors = errors_of(VALID + "topic: sis.student.changes\n")
    assert [e.key for e in errors] == ["topic"]
    assert "partner.learnwell.students" in errors[0].reason


def test_empty_allow_list_is_an_error() -> None:
    errors = errors_of(VALID.split("allow:")[0] + "allow: []\n")
    assert [e.key for e in errors] == ["allow"]


def test_real_ids_need_student_identifiers_on_the_school_official_basis() -> None:
    real_ids = VALID.replace("pseudonymous_ids: true", "pseudonymous_ids: false")
    header = real_ids.split("allow:")[0]
    errors = errors_of(real_ids)
    assert [e.key for e in errors] == ["pseudonymous_ids"]
    assert "student_identifiers" in errors[0].reason

    by_consent = with_allow("category: student_identifiers\n    basis: consent", header=header)
    assert "school_official" in errors_of(by_consent)[0].reason

    granted = with_allow("field: student_id\n    basis: school_official", header=header)
    assert errors_of(granted) == []
    granted = with_allow("category: student_identifiers\n    basis: school_official", header=header)
    assert errors_of(granted) == []


def test_yaml_syntax_error_names_the_line() -> None:
    assert VALID.splitlines()[12] == "  - field: enrollment.grade_level"
    errors = errors_of(VALID.replace("enrollment.grade_level", "enrollment.grade_level: 7"))
    assert len(errors) == 1
    assert errors[0].key == ""
    assert errors[0].reason.startswith("YAML syntax error: line 13, column 34:")


def test_duplicate_yaml_key_is_an_error_not_a_silent_override() -> None:
    errors = errors_of(VALID + "version: 4\n")
    assert len(errors) == 1
    assert "duplicate key 'version'" in errors[0].reason
    assert "line 15" in errors[0].reason


def test_a_document_that_is_not_a_mapping() -> None:
    errors = errors_of("- partner: learnwell\n")
    assert [e.reason for e in errors] == ["a contract must be a YAML mapping of keys to values"]


def test_all_problems_are_reported_at_once() -> None:
    text = (
        VALID.replace("version: 3", "version: -1")
        .replace("principal: User:learnwell", "principal: nobody")
        .replace("category: student_name", "category: student_nam")
    )
    assert {e.key for e in errors_of(text)} == {"version", "principal", "allow[0].category"}


def test_error_reads_file_key_reason() -> None:
    error = ContractError("deploy/contracts/x.yaml", "allow[2].field", "unknown field 'a'")
    assert str(error) == "deploy/contracts/x.yaml: allow[2].field: unknown field 'a'"


# --- directories ---------------------------------------------------------------------------


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def test_load_contracts_raises_with_every_error_of_every_file(tmp_path: Path) -> None:
    write(tmp_path, "learnwell.yaml", VALID.replace("version: 3", "version: 0"))
    write(tmp_path, "measurely.yaml", "partner: measurely\nallow: [\n")
    write(tmp_path, "notes.txt", "not a contract")
    with pytest.raises(ContractsInvalidError) as raised:
        load_contracts(tmp_path, CATALOG)
    files = {Path(e.file).name for e in raised.value.errors}
    assert files == {"learnwell.yaml", "measurely.yaml"}
    assert "learnwell.yaml: version:" in str(raised.value)


def test_two_contracts_for_one_partner_and_topic(tmp_path: Path) -> None:
    write(tmp_path, "learnwell.yaml", VALID)
    write(tmp_path, "learnwell.yml", VALID)
    errors = check_contracts(tmp_path, CATALOG)
    assert [(Path(e.file).name, e.key) for e in errors] == [
        ("learnwell.yml", "partner"),
        ("learnwell.yml", "topic"),
    ]
    assert "learnwell.yaml" in errors[1].reason


def test_load_contracts_sorts_by_partner(tmp_path: Path) -> None:
    write(tmp_path, "zeta.yaml", VALID.replace("learnwell", "zeta"))
    write(tmp_path, "alpha.yaml", VALID.replace("learnwell", "alpha"))
    assert [c.partner for c in load_contracts(tmp_path, CATALOG)] == ["alpha", "zeta"]


# --- resolving allowances against a schema ------------------------------------------------------


def small_catalog() -> dict[str, FieldInfo]:
    def info(path: str, category: str, never: bool = False) -> FieldInfo:
        return FieldInfo(path=path, category=category, never_share=never, avro_type="string")

    return {
        "a.first": info("a.first", "student_name"),
        "a.last": info("a.last", "student_name"),
        "a.secret": info("a.secret", "student_name", never=True),
        "b[].grade": info("b[].grade", "enrollment"),
        "b[].med": info("b[].med", "special_medical"),
    }


def contract_allowing(*allow: Allowance) -> Contract:
    contract, _ = parse_contract(VALID, "", CATALOG)
    assert contract is not None
    return dataclasses.replace(contract, allow=allow)


def test_resolve_allowances_never_includes_never_share_or_unconsented_special_fields() -> None:
    contract = contract_allowing(
        Allowance(basis=Basis.DIRECTORY, category="student_name"),
        Allowance(basis=Basis.SCHOOL_OFFICIAL, field="a.secret"),
        Allowance(basis=Basis.SCHOOL_OFFICIAL, category="special_medical"),
        Allowance(basis=Basis.SCHOOL_OFFICIAL, field="b[].grade"),
    )
    assert resolve_allowances(contract, small_catalog()) == {
        "a.first": Basis.DIRECTORY,
        "a.last": Basis.DIRECTORY,
        "b[].grade": Basis.SCHOOL_OFFICIAL,
    }


def test_resolve_allowances_field_basis_wins_over_category_basis() -> None:
    contract = contract_allowing(
        Allowance(basis=Basis.DIRECTORY, category="student_name"),
        Allowance(basis=Basis.CONSENT, field="a.last"),
    )
    assert resolve_allowances(contract, small_catalog()) == {
        "a.first": Basis.DIRECTORY,
        "a.last": Basis.CONSENT,
    }


def test_allowance_names_exactly_one_thing() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Allowance(basis=Basis.CONSENT)
    with pytest.raises(ValueError, match="exactly one"):
        Allowance(basis=Basis.CONSENT, category="student_name", field="names.first_name")
