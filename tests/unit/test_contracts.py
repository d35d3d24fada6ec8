"""Contract files: loading, and every check a privacy officer relies on."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from streams.policy.catalog import SPECIAL_CATEGORIES, FieldInfo, field_catalog, load_schema
from streams.policy.contracts import (
    Allowance,
    Basis,
    Contract,
    ContractError,
    ContractsInvalidError,
    check_contracts,
    load_contracts,
    lock_contracts,
    parse_contract,
    resolve_allowances,
    review_contracts,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "deploy" / "contracts"
CATALOG = field_catalog(load_schema("student_record_changed"))

VALID = """\
partner: learnwell
display_name: LearnWell Classroom
version: 3
purpose_code: rostering
purpose: Rostering and classroom learning platform
valid_from: 2026-07-01
valid_until: 2027-06-30
laws: [FERPA, NY-Ed-Law-2-d]
principal: User:learnwell
pseudonymous_ids: true
bill_of_rights:
  exclusive_purposes: Rostering and classroom learning, nothing else.
  subcontractors: Bound by written agreements with the same terms.
  duration: The agreement runs until 2027-06-30.
  at_expiry: All student data is deleted within 60 days, with a certificate.
  challenge_accuracy: Ask the school; it corrects the SIS and the bus forwards it.
  storage: United States data centers with access control and audit logs.
  encryption: TLS in motion and AES-256 at rest for data and backups.
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
        purpose_code="rostering",
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
    assert VALID.splitlines()[21] == "  - field: enrollment.grade_level"
    errors = errors_of(VALID.replace("enrollment.grade_level", "enrollment.grade_level: 7"))
    assert len(errors) == 1
    assert errors[0].key == ""
    assert errors[0].reason.startswith("YAML syntax error: line 22, column 34:")


def test_duplicate_yaml_key_is_an_error_not_a_silent_override() -> None:
    errors = errors_of(VALID + "version: 4\n")
    assert len(errors) == 1
    assert "duplicate key 'version'" in errors[0].reason
    assert "line 24" in errors[0].reason


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
    lock_contracts_of(tmp_path)
    errors = check_contracts(tmp_path, CATALOG)
    assert [(Path(e.file).name, e.key) for e in errors] == [
        ("learnwell.yml", "partner"),
        ("learnwell.yml", "topic"),
    ]
    assert "learnwell.yaml" in errors[1].reason


def lock_contracts_of(directory: Path) -> None:
    """Lock the first file of a partner (the duplicate is refused by the cross-file check)."""
    (directory / "learnwell.lock.yaml").write_text(
        "partner: learnwell\nversion: 3\nfields:\n"
        + "".join(
            f"  {p}: directory\n"
            for p, i in CATALOG.items()
            if i.category == "student_name" or p == "enrollment.grade_level"
        )
    )


def test_load_contracts_sorts_by_partner(tmp_path: Path) -> None:
    write(tmp_path, "zeta.yaml", VALID.replace("learnwell", "zeta"))
    write(tmp_path, "alpha.yaml", VALID.replace("learnwell", "alpha"))
    lock_contracts(tmp_path, CATALOG)
    assert [c.partner for c in load_contracts(tmp_path, CATALOG)] == ["alpha", "zeta"]


# --- resolving allowances against a schema ------------------------------------------------------


def small_catalog() -> dict[str, FieldInfo]:
    def info(path: str, category: str, never: bool = False) -> FieldInfo:
        return FieldInfo(
            path=path,
            category=category,
            never_share=never,
            avro_type="string",
            directory_eligible=category == "student_name" and not never,
        )

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


# --- directory information only (34 CFR 99.3) -------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "named"),
    [
        ("category: transcript", "transcript.gpa"),
        ("category: assessment", "assessment.results[].scale_score"),
        ("category: attendance", "attendance.days_absent"),
        ("category: demographics", "demographics.sex"),
        ("field: demographics.black_or_african_american", "demographics.black_or_african_american"),
        (
            "field: demographics.hispanic_or_latino_ethnicity",
            "demographics.hispanic_or_latino_ethnicity",
        ),
        ("field: transcript.gpa", "transcript.gpa"),
        ("field: enrollment.counselor", "enrollment.counselor"),
        ("category: student_program_membership", "programs"),
    ],
)
def test_directory_basis_only_for_directory_information(entry: str, named: str) -> None:
    errors = errors_of(with_allow(f"{entry}\n    basis: directory"))
    assert [e.key for e in errors] == [f"allow[0].{entry.split(':')[0]}"], errors
    assert named in errors[0].reason
    assert "not directory information (34 CFR 99.3)" in errors[0].reason


def test_directory_category_error_names_the_eligible_fields_to_use_instead() -> None:
    (error,) = errors_of(with_allow("category: enrollment\n    basis: directory"))
    assert "enrollment.grade_level" in error.reason.split("name its eligible fields")[1]
    assert "enrollment.counselor" in error.reason.split("name its eligible fields")[0]


@pytest.mark.parametrize(
    "entry",
    [
        "category: student_name",
        "category: student_contact",
        "field: demographics.birth_date",
        "field: demographics.city_of_birth",
        "field: enrollment.grade_level",
        "field: enrollment.enrollment_status",
        "field: enrollment.entry_date",
        "field: enrollment.school_name",
        "field: identity.username",
    ],
)
def test_directory_information_may_use_the_directory_basis(entry: str) -> None:
    assert errors_of(with_allow(f"{entry}\n    basis: directory")) == []


def test_schema_marks_directory_information_only_where_99_3_allows() -> None:
    eligible = {p for p, i in CATALOG.items() if i.directory_eligible}
    assert {CATALOG[p].category for p in eligible} == {
        "student_name",
        "student_contact",
        "enrollment",
        "demographics",
        "student_identifiers",
    }
    assert {p for p in eligible if CATALOG[p].category == "demographics"} == {
        "demographics.birth_date",
        "demographics.country_of_birth",
        "demographics.state_of_birth",
        "demographics.city_of_birth",
    }
    assert {p for p in eligible if CATALOG[p].category == "student_identifiers"} == {
        "identity.username"
    }
    assert not any(p.startswith("guardians") for p in eligible)


def test_resolve_allowances_drops_directory_basis_on_ineligible_leaves() -> None:
    contract = contract_allowing(Allowance(basis=Basis.DIRECTORY, category="transcript"))
    assert resolve_allowances(contract, CATALOG) == {}


# --- purpose: a controlled list, never marketing, advertising or sale (121.9) ----------------


def test_purpose_code_is_required_and_from_the_list() -> None:
    errors = errors_of(VALID.replace("purpose_code: rostering\n", ""))
    assert ContractError("learnwell.yaml", "purpose_code", "missing required key") in errors
    (error,) = errors_of(VALID.replace("purpose_code: rostering", "purpose_code: rosterin"))
    assert error.key == "purpose_code"
    assert "did you mean 'rostering'" in error.reason and "instruction" in error.reason


@pytest.mark.parametrize(
    "code", ["marketing", "advertising", "sale", "targeted_advertising", "data_sales"]
)
def test_marketing_advertising_or_sale_is_refused(code: str) -> None:
    (error,) = errors_of(VALID.replace("purpose_code: rostering", f"purpose_code: {code}"))
    assert error.key == "purpose_code"
    assert "8 NYCRR 121.9" in error.reason and "marketing or advertising" in error.reason


@pytest.mark.parametrize(
    "text",
    [
        "Rostering, and targeted advertising to families",
        "Classroom platform; aggregate data is sold to publishers",
        "Marketing of summer programs",
    ],
)
def test_a_purpose_text_about_marketing_advertising_or_sale_is_refused(text: str) -> None:
    (error,) = errors_of(
        VALID.replace("purpose: Rostering and classroom learning platform", f"purpose: {text}")
    )
    assert error.key == "purpose"
    assert "121.9" in error.reason


def test_sample_contracts_state_their_purpose() -> None:
    codes = {c.partner: c.purpose_code for c in load_contracts(SAMPLES, CATALOG)}
    assert codes == {
        "carewell-health": "health_services",
        "learnwell": "rostering",
        "measurely": "assessment",
    }


# --- programs can reveal special categories ----------------------------------------------------


CONSENT_HEADER = VALID.split("allow:")[0]


@pytest.mark.parametrize("entry", ["field: programs", "category: student_program_membership"])
def test_programs_need_the_consent_basis(entry: str) -> None:
    (error,) = errors_of(with_allow(f"{entry}\n    basis: school_official"))
    assert "may only be shared on the consent basis" in error.reason
    assert "special_iep_504" in error.reason


def test_programs_need_consent_for_the_categories_their_codes_reveal() -> None:
    (error,) = errors_of(
        with_allow(
            "field: programs\n    basis: consent", "category: special_iep_504\n    basis: consent"
        )
    )
    assert error.key == "allow[0].field"
    assert "special_living_situation" in error.reason
    assert "special_iep_504" not in error.reason.split("of ")[1].split(":")[0]
    assert (
        errors_of(
            with_allow(
                "field: programs\n    basis: consent",
                "category: special_iep_504\n    basis: consent",
                "category: special_living_situation\n    basis: consent",
            )
        )
        == []
    )


def test_resolve_allowances_never_gives_programs_without_consent() -> None:
    contract = contract_allowing(Allowance(basis=Basis.SCHOOL_OFFICIAL, field="programs"))
    assert resolve_allowances(contract, CATALOG) == {}


# --- a contract version is a frozen field list ---------------------------------------------


def grown_schema() -> dict[str, object]:
    """The student schema with a new leaf in student_name (a category learnwell allows)."""
    schema = load_schema("student_record_changed")
    names = next(f for f in schema["fields"] if f["name"] == "names")
    record = next(t for t in names["type"] if isinstance(t, dict))
    record["fields"].append(
        {
            "name": "nickname",
            "type": ["null", "string"],
            "default": None,
            "category": "student_name",
            "directory_eligible": True,
        }
    )
    return schema


def test_a_contract_without_a_lock_of_its_version_is_refused(tmp_path: Path) -> None:
    write(tmp_path, "learnwell.yaml", VALID)
    (error,) = check_contracts(tmp_path, CATALOG)
    assert error.key == "version"
    assert "version 3 is not locked (no learnwell.lock.yaml)" in error.reason
    assert "hallpass contracts lock" in error.reason


def test_lock_records_the_fields_and_their_basis(tmp_path: Path) -> None:
    write(tmp_path, "learnwell.yaml", VALID)
    (result,) = lock_contracts(tmp_path, CATALOG)
    assert result.written and "names.first_name" in result.added
    text = (tmp_path / "learnwell.lock.yaml").read_text()
    assert "version: 3" in text and "  enrollment.grade_level: directory\n" in text
    (contract,) = load_contracts(tmp_path, CATALOG)
    assert contract.frozen_fields == frozenset(
        resolve_allowances(dataclasses.replace(contract, frozen_fields=None), CATALOG)
    )
    assert lock_contracts(tmp_path, CATALOG)[0].written is False  # idempotent


def test_a_new_schema_leaf_reaches_no_partner_until_the_version_is_bumped(tmp_path: Path) -> None:
    from streams.policy.views import derive_view_schema

    write(tmp_path, "learnwell.yaml", VALID)
    lock_contracts(tmp_path, CATALOG)
    grown = grown_schema()
    catalog = field_catalog(grown)
    (contract,) = load_contracts(tmp_path, catalog)  # still valid: the new leaf is held back
    assert "names.nickname" not in resolve_allowances(contract, catalog)
    view = json_text(derive_view_schema(grown, contract))
    assert "nickname" not in view and "first_name" in view
    (review,) = review_contracts(tmp_path, catalog)
    assert review.unlocked == ("names.nickname",)
    assert str(review).startswith(
        f"{tmp_path / 'learnwell.yaml'}: review: version 3 now also resolves to names.nickname"
    )
    # re-locking the same version is refused: a version is a frozen field list
    with pytest.raises(ContractsInvalidError, match="bump `version`"):
        lock_contracts(tmp_path, catalog)
    write(tmp_path, "learnwell.yaml", VALID.replace("version: 3", "version: 4"))
    (result,) = lock_contracts(tmp_path, catalog)
    assert result.added == ("names.nickname",)
    (contract,) = load_contracts(tmp_path, catalog)
    assert "names.nickname" in resolve_allowances(contract, catalog)
    assert review_contracts(tmp_path, catalog) == []


def json_text(value: object) -> str:
    import json

    return json.dumps(value)


def test_a_locked_version_changed_without_a_bump_is_an_error(tmp_path: Path) -> None:
    write(tmp_path, "learnwell.yaml", VALID)
    lock_contracts(tmp_path, CATALOG)
    write(
        tmp_path,
        "learnwell.yaml",
        VALID.replace("  - field: enrollment.grade_level\n    basis: directory\n", ""),
    )
    (error,) = check_contracts(tmp_path, CATALOG)
    assert (
        "version 3 changed without a version bump: enrollment.grade_level (directory -> "
        "not allowed)" in error.reason
    )
    write(
        tmp_path,
        "learnwell.yaml",
        VALID.replace(
            "enrollment.grade_level\n    basis: directory",
            "enrollment.grade_level\n    basis: school_official",
        ),
    )
    (error,) = check_contracts(tmp_path, CATALOG)
    assert "enrollment.grade_level (directory -> school_official)" in error.reason


def test_the_sample_contracts_are_locked_as_they_resolve_today() -> None:
    assert review_contracts(SAMPLES, CATALOG) == []
    for contract in load_contracts(SAMPLES, CATALOG):
        assert contract.frozen_fields == frozenset(resolve_allowances(contract, CATALOG))


def test_contracts_check_and_lock_commands(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from streams.cli import main

    write(tmp_path, "learnwell.yaml", VALID)
    run = CliRunner()
    result = run.invoke(main, ["contracts", "check", str(tmp_path)])
    assert result.exit_code == 1 and "is not locked" in result.stderr
    result = run.invoke(main, ["contracts", "lock", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("learnwell: locked version 3 in ")
    result = run.invoke(main, ["contracts", "check", str(tmp_path)])
    assert result.exit_code == 0 and "1 contract(s)" in result.stdout


# --- Parents' Bill of Rights supplement (NY Ed Law 2-d, 8 NYCRR 121.3) --------------------------


def test_a_contract_under_ed_law_2d_needs_the_bill_of_rights_supplement() -> None:
    without = VALID[: VALID.index("bill_of_rights:")] + VALID[VALID.index("allow:") :]
    [error] = errors_of(without)
    assert error.key == "bill_of_rights" and "121.3" in error.reason
    assert not errors_of(without.replace("laws: [FERPA, NY-Ed-Law-2-d]", "laws: [FERPA]"))
    contract, found = parse_contract(VALID, "learnwell.yaml", CATALOG)
    assert not found and contract is not None and contract.bill_of_rights is not None
    assert contract.bill_of_rights.answer("encryption").startswith("TLS in motion")


@pytest.mark.parametrize(
    ("old", "new", "key"),
    [
        (
            "  storage: United States data centers with access control and audit logs.\n",
            "",
            "bill_of_rights.storage",
        ),
        (
            "encryption: TLS in motion and AES-256 at rest for data and backups.",
            "encryption: TBD",
            "bill_of_rights.encryption",
        ),
        ("  duration:", "  price: free\n  duration:", "bill_of_rights.price"),
    ],
)
def test_each_supplement_item_is_answered(old: str, new: str, key: str) -> None:
    assert old in VALID
    assert [e.key for e in errors_of(VALID.replace(old, new))] == [key]


def test_the_sample_contracts_carry_the_supplement() -> None:
    for contract in load_contracts(REPO / "deploy" / "contracts", CATALOG):
        if "NY-Ed-Law-2-d" in contract.laws:
            assert contract.bill_of_rights is not None, contract.partner
