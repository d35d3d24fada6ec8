"""The privacy decision per record and partner: reasons, legal bases, keys, speed."""

from __future__ import annotations

import dataclasses
import functools
import io
import json
from collections.abc import Iterable
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import fastavro
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.policy.catalog import field_catalog, load_schema
from streams.policy.consent import ConsentEvent, ConsentStatus, StudentConsentHistory
from streams.policy.contracts import Allowance, Basis, Contract, load_contracts
from streams.policy.decision import (
    Decision,
    Disclosed,
    Withheld,
    WithheldReason,
    decide,
    partner_key,
)
from streams.policy.views import PartnerView, derive_view
from tests.unit.strategies import student_events

REPO = Path(__file__).resolve().parents[2]
SOURCE = load_schema("student_record_changed")
CATALOG = field_catalog(SOURCE)
CONTRACTS = {c.partner: c for c in load_contracts(REPO / "deploy" / "contracts", CATALOG)}
VIEWS = {partner: derive_view(SOURCE, c) for partner, c in CONTRACTS.items()}
SECRET = b"a-32-byte-secret-for-tests-only!"
NOW = int(datetime(2026, 11, 28, 12, tzinfo=UTC).timestamp() * 1000)
R = WithheldReason


def decoded_example(case: str) -> dict[str, Any]:
    path = REPO / "schemas" / "examples" / f"student_record_changed.{case}.json"
    parsed = fastavro.parse_schema(SOURCE)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, json.loads(path.read_text()))
    buffer.seek(0)
    return fastavro.schemaless_reader(buffer, parsed, parsed)  # type: ignore[return-value]


UPSERT = decoded_example("upsert")


def pseudonym(partner: str) -> functools.partial[str]:
    return functools.partial(partner_key, secret=SECRET + partner.encode())


def run(
    partner: str,
    consent: ConsentStatus | None = None,
    *,
    record: dict[str, Any] | None = None,
    district_opt_out: bool = False,
    now: int = NOW,
    contract: Contract | None = None,
    view: PartnerView | None = None,
) -> Decision:
    return decide(
        UPSERT if record is None else record,
        contract or CONTRACTS[partner],
        view or VIEWS[partner],
        consent or ConsentStatus(partner=partner),
        district_opt_out,
        now,
        pseudonym(partner),
    )


def disclosed(decision: Decision) -> Disclosed:
    assert isinstance(decision, Disclosed), decision
    return decision


# --- reasons ------------------------------------------------------------------------------------


def test_learnwell_receives_its_contracted_view_under_a_pseudonymous_key() -> None:
    decision = disclosed(run("learnwell"))
    key = partner_key(UPSERT["student_id"], SECRET + b"learnwell")
    assert decision.partner_student_key == key
    assert decision.value["partner_student_key"] == key
    assert UPSERT["student_id"] not in json.dumps(decision.value, default=str)
    assert decision.value["names"]["first_name"] == UPSERT["names"]["first_name"]
    assert decision.legal_bases == {Basis.DIRECTORY, Basis.SCHOOL_OFFICIAL}
    assert "student_identifiers" not in decision.categories


NOW_ACTIVE_END = int(datetime(2027, 6, 30, tzinfo=UTC).timestamp() * 1000)


@pytest.mark.parametrize(
    ("now", "active"),
    [
        (int(datetime(2026, 6, 30, 23, 59, tzinfo=UTC).timestamp() * 1000), False),
        (int(datetime(2026, 7, 1, tzinfo=UTC).timestamp() * 1000), True),
        (int(datetime(2027, 6, 30, 23, 59, tzinfo=UTC).timestamp() * 1000), True),
        (int(datetime(2027, 7, 1, tzinfo=UTC).timestamp() * 1000), False),
    ],
)
def test_nothing_flows_outside_the_contract_dates(now: int, active: bool) -> None:
    decision = run("learnwell", now=now)
    assert isinstance(decision, Disclosed) == active
    if not active:
        assert decision == Withheld(
            R.CONTRACT_ENDED if now > NOW_ACTIVE_END else R.CONTRACT_NOT_STARTED
        )


def test_a_deleted_student_is_withheld() -> None:
    assert run("learnwell", record=decoded_example("delete")) == Withheld(R.STUDENT_DELETED)


def test_district_opt_out_withholds_everything() -> None:
    assert run("measurely", district_opt_out=True) == Withheld(R.DISTRICT_OPT_OUT)


def test_parent_opt_outs_withhold_everything_even_school_official_fields() -> None:
    all_out = ConsentStatus(partner="measurely", parent_opted_out_all=True)
    assert run("measurely", all_out) == Withheld(R.ALL_OPT_OUT)
    partner_out = ConsentStatus(partner="measurely", parent_opted_out_partner=True)
    assert run("measurely", partner_out) == Withheld(R.PARTNER_OPT_OUT)


def test_reasons_are_checked_in_a_fixed_order() -> None:
    everything = ConsentStatus(
        partner="learnwell", parent_opted_out_all=True, parent_opted_out_partner=True
    )
    delete = decoded_example("delete")
    expired = int(datetime(2028, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert run(
        "learnwell", everything, record=delete, district_opt_out=True, now=expired
    ) == Withheld(R.CONTRACT_ENDED)
    assert run("learnwell", everything, record=delete, district_opt_out=True) == Withheld(
        R.STUDENT_DELETED
    )
    assert run("learnwell", everything, district_opt_out=True) == Withheld(R.DISTRICT_OPT_OUT)
    assert run("learnwell", everything) == Withheld(R.ALL_OPT_OUT)


def test_directory_opt_out_drops_only_directory_fields() -> None:
    status = ConsentStatus(partner="learnwell", directory_opt_out=True)
    decision = disclosed(run("learnwell", status))
    full = disclosed(run("learnwell"))
    assert set(full.fields) - set(decision.fields) == {"enrollment.grade_level"}
    assert decision.value["enrollment"]["grade_level"] is None
    assert decision.legal_bases == {Basis.SCHOOL_OFFICIAL}


def test_consent_fields_need_live_consent_for_their_category() -> None:
    assert run("carewell-health") == Withheld(R.NO_CONSENT)
    status = ConsentStatus(
        partner="carewell-health",
        live_consent_categories=frozenset({"special_medical", "conduct"}),
    )
    decision = disclosed(run("carewell-health", status))
    assert decision.categories == {"special_medical"}
    assert decision.legal_bases == {Basis.CONSENT}
    assert decision.value["special"]["medical_alerts"] == UPSERT["special"]["medical_alerts"]
    assert decision.value["special"]["has_iep"] is None
    assert decision.value["names"] is None


def test_a_contract_without_pseudonyms_keys_by_the_state_student_id() -> None:
    real_ids = Contract(
        partner="sis-mirror",
        display_name="SIS mirror",
        version=1,
        purpose="test",
        valid_from=date(2026, 1, 1),
        valid_until=date(2027, 12, 31),
        laws=("FERPA",),
        principal="User:sis-mirror",
        pseudonymous_ids=False,
        allow=(Allowance(Basis.SCHOOL_OFFICIAL, field="student_id"),),
    )
    view = derive_view(SOURCE, real_ids)
    decision = disclosed(run("sis-mirror", contract=real_ids, view=view))
    assert decision.partner_student_key == UPSERT["student_id"]
    assert decision.value["student_id"] == UPSERT["student_id"]
    assert decision.fields == ("student_id",)


def test_mismatched_inputs_are_programming_errors() -> None:
    with pytest.raises(ValueError, match="must be for the contract's partner"):
        run("learnwell", ConsentStatus(partner="measurely"))
    with pytest.raises(ValueError, match="must be for the contract's partner"):
        run("learnwell", view=VIEWS["measurely"])
    bumped = dataclasses.replace(CONTRACTS["learnwell"], version=4)
    with pytest.raises(ValueError, match="contract version"):
        run("learnwell", contract=bumped)


# --- partner keys ---------------------------------------------------------------------------------


def test_partner_key_is_truncated_hmac_sha256() -> None:
    # RFC 4231 test case 1.
    assert partner_key("Hi There", b"\x0b" * 20) == "b0344c61d8db38535ca8afceaf0bf12b"


def test_partner_keys_differ_across_partners_and_students() -> None:
    a = partner_key("NY-1", b"secret-of-partner-a!")
    assert a == partner_key("NY-1", b"secret-of-partner-a!")
    assert a != partner_key("NY-1", b"secret-of-partner-b!")
    assert a != partner_key("NY-2", b"secret-of-partner-a!")
    assert len(a) == 32 and int(a, 16) >= 0


def test_partner_key_refuses_a_short_secret() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        partner_key("NY-1", b"short")


# --- properties ---------------------------------------------------------------------------

CAREWELL_CATEGORIES = st.sampled_from(
    ["student_name", "special_medical", "special_iep_504", "enrollment", "conduct"]
)


def status_at(events: Iterable[ConsentEvent], now: int, partner: str) -> ConsentStatus:
    return StudentConsentHistory.of(events).status_at(now, partner)


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(
        student_events(partners=("carewell-health", "learnwell"), categories=CAREWELL_CATEGORIES),
        max_size=10,
    ),
    st.integers(-1, 30),
    st.sampled_from(sorted(CONTRACTS)),
    st.booleans(),
)
def test_disclosures_follow_consent_state(
    events: list[ConsentEvent], at: int, partner: str, district_out: bool
) -> None:
    status = status_at(events, at, partner)
    decision = run(partner, status, district_opt_out=district_out)
    opted_out = district_out or status.parent_opted_out_all or status.parent_opted_out_partner
    if opted_out:
        assert isinstance(decision, Withheld)
        return
    view = VIEWS[partner]
    by_path = {leaf.path: leaf for leaf in view.leaves}
    if isinstance(decision, Withheld):
        assert decision.reason is R.NO_CONSENT
        for leaf in view.leaves:
            assert leaf.basis is Basis.CONSENT
            assert leaf.category not in status.live_consent_categories
        return
    for path in decision.fields:
        leaf = by_path[path]
        if leaf.basis is Basis.CONSENT:
            assert leaf.category in status.live_consent_categories
        if leaf.basis is Basis.DIRECTORY:
            assert not status.directory_opt_out
    consent_leaves = {leaf.category for leaf in view.leaves if leaf.basis is Basis.CONSENT}
    present = {by_path[p].category for p in decision.fields}
    assert present & consent_leaves == status.live_consent_categories & consent_leaves


@given(st.text(min_size=1, max_size=20), st.binary(min_size=16, max_size=64))
def test_partner_key_shape(student_id: str, secret: bytes) -> None:
    key = partner_key(student_id, secret)
    assert len(key) == 32 and set(key) <= set("0123456789abcdef")
