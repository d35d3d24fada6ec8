"""Consent provenance and the age of majority (issue 19; FERPA 34 CFR 99.30, 99.5): a grant
records who gave it, when, how and the document; at 18 (per district) the guardian's grants
stop counting and the student's own count."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest

from streams.policy.consent import (
    ConsentEvent,
    ConsentKind,
    GrantedBy,
    InvalidConsentEventError,
    SigningMethod,
    StudentConsentHistory,
    missing_provenance,
    provenance_problem,
)
from streams.policy.decision import WithheldReason
from streams.policy.majority import (
    MajorityAgeError,
    MajorityAges,
    majority_ages_from,
    majority_at,
    record_majority_at,
)
from streams.processor.decider import consent_endings
from streams.processor.validate import consent_refused
from streams.settings import settings_from
from tests.provenance import GUARDIAN_SIGNED, STUDENT_SIGNED

DAY = 86_400_000
CAREWELL = "carewell-health"


def ms(year: int, month: int, day: int) -> int:
    return int(datetime(year, month, day, tzinfo=UTC).timestamp() * 1000)


BIRTHDAY_18 = ms(2026, 10, 15)  # born 2008-10-15
NOW = ms(2026, 9, 1)


def grant(at: int, by: dict[str, Any], event_id: str = "", **extra: Any) -> ConsentEvent:
    return ConsentEvent(
        event_id or f"g-{at}-{by['granted_by']}",
        ConsentKind.GRANT,
        "NY-1",
        at,
        "NY-100",
        CAREWELL,
        frozenset({"special_medical"}),
        **{**by, **extra},
    )


def revoke(at: int, by: GrantedBy | None) -> ConsentEvent:
    return ConsentEvent(
        f"r-{at}-{by}", ConsentKind.REVOKE, "NY-1", at, "NY-100", CAREWELL, granted_by=by
    )


def live(history: StudentConsentHistory, at: int, majority: int | None) -> frozenset[str]:
    return history.status_at(at, CAREWELL, majority).live_consent_categories


# --- the instant ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("born", "age", "expected"),
    [
        (date(2008, 10, 15), 18, ms(2026, 10, 15)),
        ((date(2008, 10, 15) - date(1970, 1, 1)).days, 18, ms(2026, 10, 15)),  # Avro date
        (date(2008, 10, 15), 19, ms(2027, 10, 15)),
        (date(2008, 2, 29), 18, ms(2026, 3, 1)),  # no 29 February in 2026
        (date(2008, 2, 29), 20, ms(2028, 2, 29)),
        (None, 18, None),
    ],
)
def test_majority_is_midnight_utc_of_the_birthday(
    born: date | int | None, age: int, expected: int | None
) -> None:
    assert majority_at(born, age) == expected


def test_the_age_is_per_district_from_the_environment() -> None:
    ages = settings_from({"HALLPASS_AGE_OF_MAJORITY": "18, NE-7=19 ,MS-2=21"}).majority_ages
    assert (ages.age_for("NY-1"), ages.age_for("NE-7"), ages.age_for("MS-2")) == (18, 19, 21)
    assert settings_from({}).majority_ages == MajorityAges(18)
    assert majority_ages_from("19").age_for("NY-1") == 19
    record = {"district_id": "NE-7", "demographics": {"birth_date": date(2008, 10, 15)}}
    assert record_majority_at(record, ages) == ms(2027, 10, 15)
    assert record_majority_at({"district_id": "NE-7", "demographics": None}, ages) is None


@pytest.mark.parametrize("text", ["eighteen", "12", "18,=19", "NY-1=99"])
def test_an_age_that_cannot_be_used_is_refused_with_the_form(text: str) -> None:
    with pytest.raises(MajorityAgeError, match=r"HALLPASS_AGE_OF_MAJORITY.*e\.g\. 18"):
        majority_ages_from(text)


# --- whose consent counts -----------------------------------------------------------------


def test_a_guardian_grant_counts_until_the_student_comes_of_age() -> None:
    history = StudentConsentHistory.of([grant(NOW, GUARDIAN_SIGNED)])
    assert live(history, BIRTHDAY_18 - 1, BIRTHDAY_18) == {"special_medical"}
    assert live(history, BIRTHDAY_18, BIRTHDAY_18) == frozenset()
    # without a birth date the student is a minor: the guardian's grant counts
    assert live(history, BIRTHDAY_18 + 400 * DAY, None) == {"special_medical"}


def test_the_students_own_grant_counts_from_the_majority_on() -> None:
    history = StudentConsentHistory.of(
        [grant(NOW, GUARDIAN_SIGNED), grant(NOW + DAY, STUDENT_SIGNED)]
    )
    assert live(history, BIRTHDAY_18 - 1, BIRTHDAY_18) == {"special_medical"}  # the guardian's
    assert live(history, BIRTHDAY_18, BIRTHDAY_18) == {"special_medical"}  # the student's
    alone = StudentConsentHistory.of([grant(NOW, STUDENT_SIGNED)])
    assert live(alone, BIRTHDAY_18 - 1, BIRTHDAY_18) == frozenset()  # a minor's own: not yet
    assert live(alone, BIRTHDAY_18 + 1, None) == frozenset()  # age unknown: a minor


def test_a_guardians_revoke_after_the_majority_leaves_the_students_grant() -> None:
    student = grant(BIRTHDAY_18 + DAY, STUDENT_SIGNED)
    after = StudentConsentHistory.of([student, revoke(BIRTHDAY_18 + 2 * DAY, GrantedBy.GUARDIAN)])
    assert live(after, BIRTHDAY_18 + 3 * DAY, BIRTHDAY_18) == {"special_medical"}
    # the student's own revoke, and one that does not say who, withdraw it
    for by in (GrantedBy.ELIGIBLE_STUDENT, None):
        own = StudentConsentHistory.of([student, revoke(BIRTHDAY_18 + 2 * DAY, by)])
        assert live(own, BIRTHDAY_18 + 3 * DAY, BIRTHDAY_18) == frozenset()
    # before the majority a guardian's revoke withdraws the student's early grant too
    early = grant(NOW, STUDENT_SIGNED)
    before = StudentConsentHistory.of([early, revoke(NOW + DAY, GrantedBy.GUARDIAN)])
    assert live(before, BIRTHDAY_18 + DAY, BIRTHDAY_18) == frozenset()


def test_the_ending_of_a_guardian_grant_at_the_majority_is_its_own_reason() -> None:
    history = StudentConsentHistory.of([grant(NOW, GUARDIAN_SIGNED)])
    cats = frozenset({"special_medical"})
    at = BIRTHDAY_18 + DAY
    assert consent_endings(history, CAREWELL, cats, at, BIRTHDAY_18) == (
        ("special_medical", WithheldReason.MAJORITY_REACHED),
    )
    expiring = StudentConsentHistory.of([grant(NOW, GUARDIAN_SIGNED, expires_at=NOW + DAY)])
    assert consent_endings(expiring, CAREWELL, cats, at, BIRTHDAY_18) == (
        ("special_medical", WithheldReason.CONSENT_EXPIRED),
    )


# --- provenance -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "field", ["granted_by", "guardian_id", "signed_at", "method", "document_ref"]
)
def test_a_grant_without_each_part_of_its_provenance_is_refused_naming_it(field: str) -> None:
    event = grant(NOW, {**GUARDIAN_SIGNED, field: None})
    assert missing_provenance(event) == (field,)
    refused = consent_refused(event, NOW)
    assert refused is not None and f"{field} missing" in refused
    assert consent_refused(grant(NOW, GUARDIAN_SIGNED), NOW) is None
    assert consent_refused(grant(NOW, STUDENT_SIGNED), NOW) is None  # no guardian needed


def test_a_refusal_names_the_field_never_a_value() -> None:
    secret_ref = "scan-of-IEP-for-Jane-Doe"
    event = grant(NOW, {**GUARDIAN_SIGNED, "guardian_id": None, "document_ref": secret_ref})
    problem = provenance_problem(event)
    assert problem is not None and "guardian_id" in problem and secret_ref not in problem
    assert provenance_problem(revoke(NOW, None)) is None  # only grants carry provenance


def test_provenance_is_only_for_the_kinds_that_have_it() -> None:
    with pytest.raises(InvalidConsentEventError, match="guardian_id is only for"):
        grant(NOW, {**STUDENT_SIGNED, "guardian_id": "g-1"})
    with pytest.raises(InvalidConsentEventError, match="takes no granted_by"):
        ConsentEvent(
            "o", ConsentKind.ALL_OPT_OUT, "NY-1", NOW, "NY-100", granted_by=GrantedBy.GUARDIAN
        )


def test_provenance_survives_avro_and_the_changelog_and_old_changelogs_still_load() -> None:
    event = grant(NOW, GUARDIAN_SIGNED, signed_at=NOW - DAY, method=SigningMethod.PORTAL)
    value = event.to_avro()
    assert (value["granted_by"], value["method"], value["signed_at"]) == (
        "GUARDIAN",
        "PORTAL",
        NOW - DAY,
    )
    assert ConsentEvent.from_avro(value) == event
    history = StudentConsentHistory.of([event])
    assert StudentConsentHistory.from_bytes(history.to_bytes()) == history
    old = (
        b'{"v":1,"events":[["g","GRANT","NY-1",5,"NY-100","carewell-health",'
        b'["special_medical"],null,null,"x","y"]]}'
    )
    loaded = StudentConsentHistory.from_bytes(old).events[0]
    assert loaded.granted_by is None and loaded.by_guardian
    assert StudentConsentHistory((loaded,)).to_bytes() == old  # written as it was


def test_an_unknown_method_or_giver_is_refused() -> None:
    value = grant(NOW, GUARDIAN_SIGNED).to_avro()
    with pytest.raises(InvalidConsentEventError, match="method is not one of"):
        ConsentEvent.from_avro({**value, "method": "CARRIER_PIGEON"})
    with pytest.raises(InvalidConsentEventError, match="granted_by is not one of"):
        ConsentEvent.from_avro({**value, "granted_by": "NEIGHBOUR"})
