"""Hypothesis strategies for the privacy policy: schemas, records, contracts, consent events.

Random schemas are StudentRecordChanged-like: the envelope leaves (event_id, student_id,
operation, occurred_at) plus nested records and arrays of records whose leaves carry random
categories, some of them never-share. Time values are small integers so that ties and
overlaps between consent events are common.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from hypothesis import strategies as st

from streams.policy.catalog import CATEGORIES, SPECIAL_CATEGORIES, FieldInfo
from streams.policy.consent import ConsentEvent, ConsentKind, GrantedBy
from streams.policy.contracts import Allowance, Basis, Contract

SORTED_CATEGORIES = sorted(CATEGORIES)
FIELD_NAMES = ("alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta")
PARTNERS = ("p1", "p2")

ENVELOPE: list[dict[str, Any]] = [
    {"name": "event_id", "type": "string", "category": "application_meta"},
    {"name": "student_id", "type": "string", "category": "student_identifiers"},
    {
        "name": "operation",
        "type": {"type": "enum", "name": "Operation", "symbols": ["UPSERT", "DELETE"]},
        "category": "application_meta",
    },
    {
        "name": "occurred_at",
        "type": {"type": "long", "logicalType": "timestamp-millis"},
        "category": "application_meta",
    },
]

_LEAF_TYPES: tuple[Any, ...] = (
    "string",
    "long",
    "boolean",
    "double",
    ["null", "string"],
    ["null", "int"],
    {"type": "array", "items": "string"},
    ["null", {"type": "array", "items": "long"}],
    ["null", {"type": "int", "logicalType": "date"}],
    {"type": "map", "values": "string"},
    "ENUM",
)


@dataclass
class _Names:
    count: int = 0

    def next(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"


@st.composite
def leaf_fields(draw: st.DrawFn, name: str, names: _Names) -> dict[str, Any]:
    avro_type = draw(st.sampled_from(_LEAF_TYPES))
    if avro_type == "ENUM":
        avro_type = {"type": "enum", "name": names.next("Enum"), "symbols": ["X", "Y", "Z"]}
    field: dict[str, Any] = {
        "name": name,
        "type": avro_type,
        "category": draw(st.sampled_from(SORTED_CATEGORIES)),
    }
    if draw(st.integers(0, 9)) == 0:
        field["never_share"] = True
    return field


@st.composite
def record_types(draw: st.DrawFn, names: _Names, depth: int) -> dict[str, Any]:
    field_names = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=5, unique=True))
    fields = [draw(fields_named(name, names, depth)) for name in field_names]
    return {"type": "record", "name": names.next("Rec"), "fields": fields}


@st.composite
def fields_named(draw: st.DrawFn, name: str, names: _Names, depth: int) -> dict[str, Any]:
    shape = draw(st.sampled_from(("leaf", "leaf", "record", "array"))) if depth < 3 else "leaf"
    if shape == "leaf":
        return draw(leaf_fields(name, names))
    inner = draw(record_types(names, depth + 1))
    container: Any = inner if shape == "record" else {"type": "array", "items": inner}
    if draw(st.booleans()):
        return {"name": name, "type": ["null", container], "default": None}
    return {"name": name, "type": container}


@st.composite
def student_schemas(draw: st.DrawFn) -> dict[str, Any]:
    """A StudentRecordChanged-like schema: the envelope plus 1-6 random top-level fields."""
    names = _Names()
    field_names = draw(st.lists(st.sampled_from(FIELD_NAMES), min_size=1, max_size=6, unique=True))
    fields = [draw(fields_named(name, names, 0)) for name in field_names]
    return {
        "type": "record",
        "name": "StudentRecordChanged",
        "namespace": "org.hallpass.sis",
        "fields": [*(dict(f) for f in ENVELOPE), *fields],
    }


def values_of(avro_type: Any) -> st.SearchStrategy[Any]:
    """Values of an Avro type as fastavro decodes them (enums as str, records as dict)."""
    if isinstance(avro_type, list):
        return st.one_of([values_of(branch) for branch in avro_type])
    if isinstance(avro_type, str):
        return {
            "null": st.none(),
            "string": st.text(alphabet="abcxyz", max_size=4),
            "long": st.integers(-(2**40), 2**40),
            "int": st.integers(-(2**20), 2**20),
            "boolean": st.booleans(),
            "double": st.floats(allow_nan=False, allow_infinity=False, width=32),
        }[avro_type]
    kind = avro_type["type"]
    if kind == "record":
        return st.fixed_dictionaries({f["name"]: values_of(f["type"]) for f in avro_type["fields"]})
    if kind == "array":
        return st.lists(values_of(avro_type["items"]), max_size=3)
    if kind == "map":
        return st.dictionaries(
            st.text("kv", max_size=2), values_of(avro_type["values"]), max_size=2
        )
    if kind == "enum":
        return st.sampled_from(avro_type["symbols"])
    if avro_type.get("logicalType") == "date":
        return st.dates(min_value=date(2000, 1, 1), max_value=date(2040, 1, 1))
    return values_of(kind)


def records_of(schema: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Decoded records of a student schema (UPSERT or DELETE, fields filled at random)."""
    return values_of(schema)


@st.composite
def contracts_for(
    draw: st.DrawFn,
    catalog: Mapping[str, FieldInfo],
    partner: str = "p1",
    *,
    checked: bool = True,
    pseudonymous_ids: bool = True,
) -> Contract:
    """A contract over ``catalog``'s leaves.

    ``checked``: one that ``check_contracts`` accepts (special categories only on consent, no
    never-share field, no overlaps). Otherwise anything goes, as if the check were skipped.
    """
    present = sorted({info.category for info in catalog.values()})
    category_pool = sorted(set(present) | set(draw(st.lists(st.sampled_from(SORTED_CATEGORIES)))))
    categories = draw(st.lists(st.sampled_from(category_pool), unique=True, max_size=6))
    allow: list[Allowance] = []
    for category in categories:
        basis = draw(st.sampled_from(list(Basis)))
        if checked and category in SPECIAL_CATEGORIES:
            basis = Basis.CONSENT
        allow.append(Allowance(basis=basis, category=category))
    paths = sorted(catalog)
    if paths:
        for path in draw(st.lists(st.sampled_from(paths), unique=True, max_size=6)):
            info = catalog[path]
            basis = draw(st.sampled_from(list(Basis)))
            if checked:
                if info.never_share or info.category in categories:
                    continue
                if info.category in SPECIAL_CATEGORIES:
                    basis = Basis.CONSENT
            allow.append(Allowance(basis=basis, field=path))
    return Contract(
        partner=partner,
        display_name=f"Partner {partner}",
        version=draw(st.integers(1, 9)),
        purpose="testing",
        valid_from=date(2026, 1, 1),
        valid_until=date(2027, 12, 31),
        laws=("FERPA",),
        principal=f"User:{partner}",
        pseudonymous_ids=pseudonymous_ids,
        allow=tuple(allow),
    )


def consent_categories(catalog: Mapping[str, FieldInfo] | None = None) -> st.SearchStrategy[str]:
    if catalog:
        return st.sampled_from(sorted({info.category for info in catalog.values()}))
    return st.sampled_from(["student_name", "special_medical", "assessment", "conduct"])


@st.composite
def student_events(
    draw: st.DrawFn,
    partners: Sequence[str] = PARTNERS,
    categories: st.SearchStrategy[str] | None = None,
    event_ids: st.SearchStrategy[str] | None = None,
    max_time: int = 20,
) -> ConsentEvent:
    """One student consent event at a small integer time (ties and overlaps are common)."""
    kind = draw(
        st.sampled_from(
            [
                ConsentKind.GRANT,
                ConsentKind.GRANT,
                ConsentKind.REVOKE,
                ConsentKind.PARTNER_OPT_OUT,
                ConsentKind.ALL_OPT_OUT,
                ConsentKind.DIRECTORY_OPT_OUT,
            ]
        )
    )
    cats = categories if categories is not None else consent_categories()
    effective = draw(st.integers(0, max_time))
    expires = draw(st.none() | st.integers(0, max_time + 5))
    chosen: frozenset[str] = frozenset()
    if kind is ConsentKind.GRANT:
        chosen = frozenset(draw(st.lists(cats, min_size=1, max_size=3)))
    elif kind is ConsentKind.REVOKE:
        chosen = frozenset(draw(st.lists(cats, max_size=2)))
    partner = None
    if kind in (ConsentKind.GRANT, ConsentKind.REVOKE, ConsentKind.PARTNER_OPT_OUT):
        partner = draw(st.sampled_from(list(partners)))
    ids = event_ids if event_ids is not None else st.uuids().map(str)
    # who gave a grant (None: an event from before provenance, a guardian's) or a revoke
    # (None: withdraws every grant)
    granted_by = (
        draw(st.sampled_from([None, GrantedBy.GUARDIAN, GrantedBy.ELIGIBLE_STUDENT]))
        if kind in (ConsentKind.GRANT, ConsentKind.REVOKE)
        else None
    )
    return ConsentEvent(
        event_id=draw(ids),
        kind=kind,
        district_id="d1",
        effective_at=effective,
        student_id="s1",
        partner=partner,
        categories=chosen,
        expires_at=expires,
        recorded_by="test",
        source_system="test",
        granted_by=granted_by,
    )


@st.composite
def district_events(
    draw: st.DrawFn,
    partners: Sequence[str] = PARTNERS,
    event_ids: st.SearchStrategy[str] | None = None,
    max_time: int = 20,
) -> ConsentEvent:
    ids = event_ids if event_ids is not None else st.uuids().map(str)
    return ConsentEvent(
        event_id=draw(ids),
        kind=ConsentKind.DISTRICT_OPT_OUT,
        district_id="d1",
        effective_at=draw(st.integers(0, max_time)),
        partner=draw(st.sampled_from(list(partners))),
        expires_at=draw(st.none() | st.integers(0, max_time + 5)),
    )


def unique_ids(events: list[ConsentEvent]) -> bool:
    return len({e.event_id for e in events}) == len(events)
