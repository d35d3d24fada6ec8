"""Breach exposure: what a partner held about each student at a given time, from the ledger.

When a vendor is breached, New York's Part 121 gives the district 60 days to tell every
affected family (8 NYCRR 121.10). The audit ledger records each disclosure and each
retraction, so folding a partner's decisions up to the breach time gives exactly what it
held then: a DISCLOSED record sets the student's view (its fields, categories and bases), a
RETRACTED record with no fields removes the student, one with fields removes those fields
(the reduced view is disclosed in the same decision). The fold is pure;
:func:`read_exposure` reads the ledger from Kafka and :func:`family_letters` renders one
notification per family from a template the district can edit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html import escape
from pathlib import Path
from string import Template
from typing import Any


@dataclass
class Held:
    """What the partner held about one student at the time asked."""

    student_id: str
    district_id: str | None
    partner_student_key: str | None
    fields: set[str] = field(default_factory=set)
    categories: set[str] = field(default_factory=set)
    legal_bases: set[str] = field(default_factory=set)
    #: when the partner started holding the student (this continuous holding)
    since: int = 0
    #: when the partner last received the student's view
    last_disclosed: int = 0
    contract_version: int = 0


@dataclass(frozen=True)
class Exposure:
    partner: str
    as_of: int
    held: tuple[Held, ...]

    def by_category(self) -> dict[str, int]:
        counts: Counter[str] = Counter(c for h in self.held for c in h.categories)
        return dict(sorted(counts.items()))

    def by_district(self) -> dict[str, int]:
        counts: Counter[str] = Counter(h.district_id or "" for h in self.held)
        return dict(sorted(counts.items()))


def exposure_of(records: Iterable[Mapping[str, Any]], partner: str, as_of: int) -> Exposure:
    """Fold ``partner``'s ledger records decided up to ``as_of`` (any order in, decision
    order applied: time, then decision id)."""
    mine = sorted(
        (
            r
            for r in records
            if r["partner"] == partner
            and r["decided_at"] <= as_of
            and r["decision"] in ("DISCLOSED", "RETRACTED")
        ),
        key=lambda r: (r["decided_at"], r["decision_id"]),
    )
    held: dict[str, Held] = {}
    for record in mine:
        student = record["student_id"]
        if record["decision"] == "DISCLOSED":
            current = held.get(student)
            if current is None:
                current = held[student] = Held(
                    student,
                    record.get("district_id"),
                    record.get("partner_student_key"),
                    since=record["decided_at"],
                )
            current.fields = set(record["fields"])
            current.categories = set(record["categories"])
            current.legal_bases = set(record["legal_basis"])
            current.last_disclosed = record["decided_at"]
            current.contract_version = record["contract_version"]
            current.partner_student_key = record.get("partner_student_key")
        elif not record["fields"]:
            held.pop(student, None)
        elif student in held:
            held[student].fields -= set(record["fields"])
    return Exposure(partner, as_of, tuple(sorted(held.values(), key=lambda h: h.student_id)))


def read_exposure(conn: Any, partner: str, as_of: int, topic: str) -> Exposure:
    """:func:`exposure_of` over the whole committed ledger."""
    from connectors.partner.auditor import read_ledger

    return exposure_of((record for _key, record in read_ledger(conn, topic)), partner, as_of)


DEFAULT_LETTER = Path(__file__).with_name("templates") / "breach_letter.html"


def family_letters(
    exposure: Exposure,
    template: str,
    partner_name: str,
    district_name: str,
    contact: str,
    today: str,
) -> dict[str, str]:
    """One letter per affected student (file name -> HTML), from ``template``
    (``string.Template``: $student_id, $district_name, $partner_name, $incident_date,
    $categories, $held_since, $last_update, $bases, $contact, $today; values are escaped)."""
    from streams.policy.contracts import Basis
    from streams.policy.pages import BASIS_WORDS, CATEGORY_WORDS

    letters: dict[str, str] = {}
    for held in exposure.held:
        values = {
            "student_id": held.student_id,
            "district_name": district_name,
            "partner_name": partner_name,
            "incident_date": _day(exposure.as_of),
            "categories": "; ".join(CATEGORY_WORDS.get(c, c) for c in sorted(held.categories)),
            "held_since": _day(held.since),
            "last_update": _day(held.last_disclosed),
            "bases": "; ".join(BASIS_WORDS[Basis(b)] for b in sorted(held.legal_bases)),
            "contact": contact,
            "today": today,
        }
        text = Template(template).safe_substitute({k: escape(v) for k, v in values.items()})
        letters[f"{_safe_name(held.student_id)}.html"] = text
    return letters


def _day(ms: int) -> str:
    """``November 3, 2026``: the day without a leading zero."""
    day = datetime.fromtimestamp(ms / 1000, UTC)
    return f"{day:%B} {day.day}, {day:%Y}"


def _safe_name(student_id: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in student_id) or "_"
