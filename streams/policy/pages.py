"""One web page per contract for the district's website (``hallpass contracts publish``):
what the contractor receives about students, in plain words, under which basis, and the
Parents' Bill of Rights supplemental information (NY Ed Law 2-d, 8 NYCRR 121.3).

Pure: contracts and the field catalog in, HTML text out (every value escaped).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from html import escape
from typing import Any

from streams.policy.bill_of_rights import ITEMS
from streams.policy.catalog import FieldInfo
from streams.policy.contracts import Basis, Contract, resolve_allowances
from streams.policy.schema_walk import last_name, leaves

#: each data category in the words a parent reads
CATEGORY_WORDS: Mapping[str, str] = {
    "application_meta": "technical information about the use of the application",
    "application_use": "how your child uses the application",
    "assessment": "test and assessment results",
    "attendance": "attendance",
    "communications": "messages and communications",
    "conduct": "discipline and conduct records",
    "demographics": "demographic information (such as date of birth, sex, race, ethnicity)",
    "enrollment": "enrollment (school, grade, homeroom, dates)",
    "parent_contact": "parents' contact information",
    "parent_id": "parents' identifiers",
    "parent_name": "parents' names",
    "schedule": "class schedule and teachers",
    "special_ell": "English language learner status",
    "special_low_income": "free or reduced-price lunch eligibility",
    "special_medical": "medical and health information",
    "special_disability": "disability information",
    "special_iep_504": "special education (IEP) and Section 504 plans",
    "special_living_situation": "living situation (homelessness, foster care)",
    "student_contact": "your child's contact information",
    "student_identifiers": "student identification numbers",
    "student_name": "your child's name",
    "student_in_app_performance": "progress and performance inside the application",
    "student_program_membership": "programs your child takes part in",
    "student_survey_responses": "survey answers",
    "student_work": "your child's work",
    "transcript": "grades and transcript",
    "transportation": "school bus route and stop",
}
BASIS_WORDS: Mapping[Basis, str] = {
    Basis.DIRECTORY: "directory information: shared unless you opted out of directory "
    "disclosure (34 CFR 99.37)",
    Basis.SCHOOL_OFFICIAL: "as a school official under the district's direct control, for "
    "the contracted service only (34 CFR 99.31(a)(1))",
    Basis.CONSENT: "only with your signed, dated written consent, which you may revoke at any "
    "time (34 CFR 99.30)",
}
#: the laws a contract names, as a parent reads them (others are shown as written)
LAW_WORDS: Mapping[str, str] = {
    "FERPA": "the Family Educational Rights and Privacy Act (FERPA, 34 CFR Part 99)",
    "NY-Ed-Law-2-d": "New York Education Law section 2-d",
    "8-NYCRR-Part-121": "the Commissioner's regulations on student data privacy (8 NYCRR Part 121)",
    "COPPA": "the Children's Online Privacy Protection Act (COPPA)",
    "IDEA": "the Individuals with Disabilities Education Act (IDEA)",
    "PPRA": "the Protection of Pupil Rights Amendment (PPRA)",
}
#: a field's documentation names where the value comes from in parentheses, or is only that
_SOURCE_NOTE = re.compile(r"\s*\([^)]*\)")
#: examples and lists of values after the words ("..., e.g. ...", "...: active, exited")
_EXAMPLES = re.compile(r",?\s+(?:e\.g\.|such as)\s|:\s")
_SENTENCE_END = re.compile(r"(?<=[a-z0-9])\.\s")
_NOT_WORDS = ("OneRoster", "Ed-Fi", "ISO", "SIS", "Internal")
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:48rem;margin:2rem auto;"
    "padding:0 1rem;line-height:1.5;color:#1a1a1a}table{border-collapse:collapse;"
    "width:100%}th,td{border:1px solid #ccc;padding:.4rem;text-align:left;"
    "vertical-align:top}th{background:#f3f3f3}footer{margin-top:2rem;color:#555;"
    "font-size:.9rem}"
)


def page_name(contract: Contract) -> str:
    return f"{contract.partner}.html"


def field_words(schema: Mapping[str, Any]) -> dict[str, str]:
    """Each leaf field of ``schema`` in the words a parent reads: the first sentence of its
    documentation without the notes on where the value comes from ("Legal first name",
    "Date of birth"), or its own name in words where the documentation is only such notes."""
    words: dict[str, str] = {}
    for path, definition in leaves(schema):
        doc = _SOURCE_NOTE.sub("", str(definition.get("doc") or ""))
        doc = _EXAMPLES.split(doc)[0]
        first = _SENTENCE_END.split(doc)[0].strip().rstrip(".:;,").strip()
        if (
            not first[:1].isupper()
            or first.startswith(_NOT_WORDS)
            or "_" in first
            or len(first) > 60
        ):
            first = last_name(path).replace("_", " ")
            first = first[:1].upper() + first[1:]
        words[path] = first
    return words


def _day(day: dt.date) -> str:
    """``July 1, 2026``: the day without a leading zero, on any platform."""
    return f"{day:%B} {day.day}, {day:%Y}"


def contract_page(
    contract: Contract,
    catalog: Mapping[str, FieldInfo],
    district: str,
    generated_on: str,
    words: Mapping[str, str] | None = None,
) -> str:
    """The page of one contract (``words``: :func:`field_words` of the record's schema; the
    field names themselves where it has none)."""
    fields = resolve_allowances(contract, catalog)
    by_category: dict[str, list[tuple[str, Basis]]] = {}
    for path, basis in fields.items():
        by_category.setdefault(catalog[path].category, []).append((path, basis))
    rows = "".join(
        _category_row(category, items, words or {})
        for category, items in sorted(by_category.items())
    )
    laws = ", ".join(LAW_WORDS.get(law, law) for law in contract.laws)
    name = escape(contract.display_name)
    identity = (
        "a code made for this contractor instead of your child's student number (it "
        "cannot be matched with what other contractors receive)"
        if contract.pseudonymous_ids
        else "your child's student number"
    )
    rights = ""
    if contract.bill_of_rights is not None:
        rights = "<h2>Parents' Bill of Rights: supplemental information</h2>" + "".join(
            f"<h3>{escape(ITEMS[key])}</h3><p>{escape(text)}</p>"
            for key, text in contract.bill_of_rights.answers
        )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{name}: student data it receives</title><style>{_STYLE}</style></head><body>"
        f"<h1>{name}</h1>"
        f"<p>{escape(district)} shares student data with {name} under a contract (version "
        f"{contract.version}) in force from {_day(contract.valid_from)} to "
        f"{_day(contract.valid_until)}, under {escape(laws)}.</p>"
        f"<h2>Why</h2><p>{escape(contract.purpose)}</p>"
        f"<h2>What it receives</h2><p>Each record names your child by {identity}. It "
        "receives nothing else: not the fields below for a student whose parent opted out "
        "of all sharing or of this contractor, nor anything once the contract ends.</p>"
        f"<table><tr><th>Data</th><th>Fields</th><th>When</th></tr>{rows}</table>"
        f"{rights}<footer>Published by the district from the contract itself "
        f"(hallpass contracts publish, {escape(generated_on)}).</footer></body></html>\n"
    )


def index_page(contracts: Iterable[Contract], district: str, generated_on: str) -> str:
    """The list of every contractor, linking to each page."""
    items = "".join(
        f'<li><a href="{escape(page_name(c))}">{escape(c.display_name)}</a>: '
        f"{escape(c.purpose)}</li>"
        for c in sorted(contracts, key=lambda c: c.display_name)
    )
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>'
        f"{escape(district)}: who receives student data</title><style>{_STYLE}</style>"
        f"</head><body><h1>Who receives student data, and why</h1><ul>{items}</ul>"
        f"<footer>hallpass contracts publish, {escape(generated_on)}</footer>"
        "</body></html>\n"
    )


def _category_row(category: str, items: list[tuple[str, Basis]], words: Mapping[str, str]) -> str:
    """One row: the category, its fields in words (the field's name on hover, for the
    district's staff), the bases."""
    data = escape(CATEGORY_WORDS.get(category, category.replace("_", " ")))
    seen: set[str] = set()
    fields = []
    for path, _ in items:
        said = words.get(path) or path.replace("[]", "").replace("_", " ")
        if said not in seen:
            seen.add(said)
            fields.append(f'<span title="{escape(path)}">{escape(said)}</span>')
    bases = "<br>".join(escape(BASIS_WORDS[b]) for b in sorted({b for _, b in items}))
    return f"<tr><td>{data}</td><td>{'<br>'.join(fields)}</td><td>{bases}</td></tr>"
