"""The breach-exposure fold over the ledger (issue 19): what a partner held at a time."""

from __future__ import annotations

from typing import Any

from connectors.partner.exposure import DEFAULT_LETTER, exposure_of, family_letters


def record(
    at: int,
    decision: str,
    student: str = "S1",
    fields: tuple[str, ...] = (),
    categories: tuple[str, ...] = (),
    partner: str = "p",
    n: int = 0,
) -> dict[str, Any]:
    return {
        "decision_id": f"d{at}-{n}",
        "student_id": student,
        "district_id": "D1",
        "partner": partner,
        "partner_student_key": f"k-{student}",
        "decision": decision,
        "fields": list(fields),
        "categories": list(categories),
        "legal_basis": ["school_official"] if decision == "DISCLOSED" else [],
        "contract_version": 2,
        "decided_at": at,
    }


LEDGER = [
    record(
        10,
        "DISCLOSED",
        fields=("names.first_name", "special.medical_alerts"),
        categories=("student_name", "special_medical"),
    ),
    record(20, "DISCLOSED", fields=("names.first_name",), categories=("student_name",)),
    record(
        20, "RETRACTED", fields=("special.medical_alerts",), categories=("special_medical",), n=1
    ),
    record(30, "RETRACTED"),
    record(40, "DISCLOSED", fields=("names.first_name",), categories=("student_name",)),
    record(
        15, "DISCLOSED", student="S2", fields=("names.first_name",), categories=("student_name",)
    ),
    record(16, "WITHHELD", student="S3"),
    record(17, "DISCLOSED", student="S4", partner="other", fields=("names.first_name",)),
]


def held(at: int) -> dict[str, tuple[set[str], int]]:
    return {h.student_id: (h.fields, h.since) for h in exposure_of(LEDGER, "p", at).held}


def test_the_fold_follows_disclosures_and_retractions_in_time() -> None:
    assert held(9) == {}
    assert held(10) == {"S1": ({"names.first_name", "special.medical_alerts"}, 10)}
    assert held(20) == {"S1": ({"names.first_name"}, 10), "S2": ({"names.first_name"}, 15)}
    assert held(35) == {"S2": ({"names.first_name"}, 15)}  # retracted whole at 30
    assert held(40)["S1"] == ({"names.first_name"}, 40)  # held again, since 40


def test_counts_per_category_and_district() -> None:
    found = exposure_of(LEDGER, "p", 20)
    assert found.by_category() == {"student_name": 2}
    assert found.by_district() == {"D1": 2}


def test_one_letter_per_family_with_escaped_values() -> None:
    found = exposure_of(
        [record(10, "DISCLOSED", student="<S1>", fields=("a",), categories=("special_medical",))],
        "p",
        10,
    )
    letters = family_letters(
        found,
        DEFAULT_LETTER.read_text(),
        "Acme <Health>",
        "CSD",
        "dpo@example.org",
        "December 1, 2026",
    )
    [(name, text)] = letters.items()
    assert name == "_S1_.html"
    assert "Acme &lt;Health&gt;" in text and "&lt;S1&gt;" in text and "<S1>" not in text
    assert "medical and health information" in text and "January 1, 1970" in text
    assert "$" not in text.replace("$student", "")  # every placeholder filled
