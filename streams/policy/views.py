"""Partner views: the Avro schema a partner receives, and the projection of a record onto it.

A view is derived once per contract from the student schema (``derive_view_schema``; the
``contracts apply`` command registers it under the partner topic's value subject). It keeps
only the leaves the contract allows, never a never-share leaf, and containers only where some
leaf survives; every kept field is nullable with default null. Leaves carry their ``category``
and ``basis`` as custom attributes. The view adds the envelope every partner needs:
``partner_student_key``, ``event_id``, ``occurred_at`` and ``contract_version``.

Records are projected through a :class:`PartnerView` compiled from a view schema
(``compile_view``), never by walking the source schema, so a field added to the student schema
reaches no partner until its view is derived and registered again. The compiled plan is the
intersection of the view schema, the contract's current allowances and the current student
schema's shareable leaves. Per set of permits (which bases hold for a student) the plan is
pruned once and cached, so projecting a record is a walk over plain tuples.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from streams.errors import HallpassError
from streams.policy.catalog import FieldInfo, field_catalog
from streams.policy.contracts import Basis, Contract, resolve_allowances
from streams.policy.schema_walk import (
    NAMED_KINDS,
    PRIMITIVES,
    RECORD_KINDS,
    child_prefix,
    container,
    lookup,
    named_types,
    non_null,
    resolve,
)

ENVELOPE_FIELDS: tuple[str, ...] = (
    "partner_student_key",
    "event_id",
    "occurred_at",
    "contract_version",
)
VIEW_RECORD_NAME = "StudentView"
_NAMESPACE_PREFIX = "org.hallpass.partner"
_TYPE_KEYS = ("type", "logicalType", "precision", "scale", "size", "symbols", "default")
_MAX_CACHED_PLANS = 1024
_MAX_TYPE_DEPTH = 32
_ENVELOPE_SCHEMA: tuple[dict[str, Any], ...] = (
    {
        "name": "partner_student_key",
        "type": "string",
        "doc": "The student's key for this partner: a partner-scoped pseudonymous id, or the "
        "state student id if the contract grants student identifiers.",
    },
    {
        "name": "event_id",
        "type": "string",
        "doc": "Id of this record (a UUID unique to this partner: no other partner's record "
        "carries it).",
    },
    {
        "name": "occurred_at",
        "type": {"type": "long", "logicalType": "timestamp-millis"},
        "doc": "The day this view changed: midnight UTC of that day (day resolution on "
        "purpose; the topic's offsets give the order).",
    },
    {
        "name": "contract_version",
        "type": "int",
        "doc": "Version of the contract this record was disclosed under.",
    },
)


class ViewError(HallpassError, ValueError):
    """A view schema that cannot be derived or compiled."""


def partner_namespace(partner: str) -> str:
    """``org.hallpass.partner.<partner with underscores>`` (a valid Avro namespace)."""
    component = partner.replace("-", "_")
    if not component or component[0].isdigit():
        component = f"_{component}"
    return f"{_NAMESPACE_PREFIX}.{component}"


@dataclass(frozen=True, slots=True)
class Permits:
    """Which legal bases hold for one student and one partner right now."""

    directory: bool
    school_official: bool
    consent_categories: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ViewLeaf:
    """A leaf of a compiled view: its path (same in source and view), category and basis.

    ``requires`` is what a consent-basis leaf needs live consent for: its own category and
    every special category its values can reveal (``programs`` codes of special education,
    Section 504 or homeless programs); empty for the other bases."""

    path: str
    category: str
    basis: Basis
    requires: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class Projection:
    """A view value and what it discloses: leaves with a non-null value, in view order."""

    value: dict[str, Any]
    fields: tuple[str, ...]
    categories: frozenset[str]
    legal_bases: frozenset[Basis]


# --- deriving a view schema -------------------------------------------------------------------


def derive_view_schema(source_schema: Mapping[str, Any], contract: Contract) -> dict[str, Any]:
    """The Avro schema of ``contract``'s partner view of ``source_schema`` (JSON-ready)."""
    catalog = field_catalog(source_schema)
    allowed = resolve_allowances(contract, catalog)
    builder = _SchemaBuilder(named_types(source_schema), catalog, allowed)
    top = builder.record(source_schema, "")
    fields = [dict(f) for f in _ENVELOPE_SCHEMA]
    if top is not None:
        fields.extend(f for f in top["fields"] if f["name"] not in ENVELOPE_FIELDS)
    return {
        "type": "record",
        "name": VIEW_RECORD_NAME,
        "namespace": partner_namespace(contract.partner),
        "doc": f"What the partner {contract.partner} receives about a student under its "
        "hallpass contract.",
        "fields": fields,
    }


def derive_view(source_schema: Mapping[str, Any], contract: Contract) -> PartnerView:
    """Derive the view schema and compile it against the same source schema."""
    return compile_view(
        derive_view_schema(source_schema, contract), contract, field_catalog(source_schema)
    )


class _SchemaBuilder:
    def __init__(
        self,
        named: Mapping[str, Mapping[str, Any]],
        catalog: Mapping[str, FieldInfo],
        allowed: Mapping[str, Basis],
    ) -> None:
        self.named = named
        self.catalog = catalog
        self.allowed = allowed
        self.used_names: set[str] = {VIEW_RECORD_NAME}

    def record(self, record: Mapping[str, Any], prefix: str) -> dict[str, Any] | None:
        fields: list[dict[str, Any]] = []
        for source_field in record["fields"]:
            name = source_field["name"]
            path = f"{prefix}{name}"
            if not prefix and name in ENVELOPE_FIELDS:
                continue
            if path in self.catalog:
                if path in self.allowed:
                    fields.append(self.leaf(source_field, path))
                continue
            held = container(source_field["type"], self.named)
            if held is None:
                raise ViewError(f"{path}: neither a catalogued leaf nor a container")
            inner, is_array = held
            child = self.record(inner, child_prefix(path, is_array))
            if child is None:
                continue
            kept: Any = {"type": "array", "items": child} if is_array else child
            fields.append(
                _with_doc({"name": name, "type": ["null", kept], "default": None}, source_field)
            )
        if not fields:
            return None
        if not prefix:  # the top level: derive_view_schema wraps these fields itself
            return {"type": "record", "name": VIEW_RECORD_NAME, "fields": fields}
        out = {"type": "record", "name": self.unique_name(prefix.rstrip("."))}
        return _with_doc({**out, "fields": fields}, record)

    def leaf(self, source_field: Mapping[str, Any], path: str) -> dict[str, Any]:
        avro_type = _nullable(self.copy_type(source_field["type"], path))
        out = {
            "name": source_field["name"],
            "type": avro_type,
            "default": None,
            "category": self.catalog[path].category,
            "basis": self.allowed[path].value,
        }
        return _with_doc(out, source_field)

    def resolve(self, avro_type: Any) -> Mapping[str, Any]:
        unknown = isinstance(avro_type, str) and avro_type not in PRIMITIVES
        if unknown and lookup(avro_type, self.named) is None:
            raise ViewError(f"unknown named type {avro_type!r}")
        return resolve(avro_type, self.named)

    def copy_type(self, avro_type: Any, path: str, depth: int = 0) -> Any:
        """A copy of a leaf's type: named types renamed into the view, extra attributes dropped."""
        if depth > _MAX_TYPE_DEPTH:
            raise ViewError(f"{path}: type nested too deep (a recursive type?)")
        deeper = depth + 1
        if isinstance(avro_type, list):
            return [self.copy_type(branch, path, deeper) for branch in avro_type]
        if isinstance(avro_type, str):
            if avro_type in PRIMITIVES:
                return avro_type
            return self.copy_type(self.resolve(avro_type), path, deeper)
        kind = avro_type.get("type")
        if isinstance(kind, Mapping | list):
            return self.copy_type(kind, path, deeper)
        if kind == "array":
            return {"type": "array", "items": self.copy_type(avro_type["items"], path, deeper)}
        if kind == "map":
            return {"type": "map", "values": self.copy_type(avro_type["values"], path, deeper)}
        out = {k: avro_type[k] for k in _TYPE_KEYS if k in avro_type}
        if kind in NAMED_KINDS:
            out["name"] = self.unique_name(path)
        if kind in RECORD_KINDS:
            out["type"] = "record"
            out["fields"] = [
                {
                    **{k: f[k] for k in ("name", "default") if k in f},
                    "type": self.copy_type(f["type"], f"{path}.{f['name']}", deeper),
                }
                for f in avro_type["fields"]
            ]
        return out

    def unique_name(self, path: str) -> str:
        base = _pascal(path)
        name, n = base, 1
        while name in self.used_names:
            n += 1
            name = f"{base}{n}"
        self.used_names.add(name)
        return name


def _pascal(path: str) -> str:
    words = [w for w in re.split(r"[^A-Za-z0-9]+", path) if w]
    name = "".join(w[:1].upper() + w[1:] for w in words) or "Field"
    return f"_{name}" if name[0].isdigit() else name


def _nullable(avro_type: Any) -> list[Any]:
    return ["null", *non_null(avro_type)]


def _with_doc(out: dict[str, Any], source: Mapping[str, Any]) -> dict[str, Any]:
    doc = source.get("doc")
    if isinstance(doc, str):
        out["doc"] = doc
    return out


# --- compiling a view into a projection plan ---------------------------------------------------

_LEAF, _RECORD, _ARRAY = 0, 1, 2


@dataclass(frozen=True, slots=True)
class _Slot:
    name: str
    kind: int
    leaf: int
    child: _Node | None


@dataclass(frozen=True, slots=True)
class _Node:
    names: tuple[str, ...]
    slots: tuple[_Slot, ...]


_Projector = Callable[[Mapping[str, Any], set[int]], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class _Pruned:
    run: _Projector | None


class PartnerView:
    """A view schema compiled for projection. Build with ``compile_view`` or ``derive_view``."""

    __slots__ = (
        "_cache",
        "_categories",
        "_consent_categories",
        "_root",
        "contract_version",
        "dropped",
        "leaves",
        "partner",
        "schema",
    )

    def __init__(
        self,
        partner: str,
        contract_version: int,
        schema: Mapping[str, Any],
        leaves: tuple[ViewLeaf, ...],
        root: _Node,
        dropped: tuple[str, ...],
    ) -> None:
        self.partner = partner
        self.contract_version = contract_version
        self.schema = schema
        self.leaves = leaves
        self.dropped = dropped
        self._root = root
        self._categories = tuple(leaf.category for leaf in leaves)
        self._consent_categories = frozenset(
            category for leaf in leaves for category in leaf.requires
        )
        self._cache: dict[tuple[bool, bool, frozenset[str]], _Pruned] = {}

    @property
    def paths(self) -> frozenset[str]:
        return frozenset(leaf.path for leaf in self.leaves)

    @property
    def consent_categories(self) -> frozenset[str]:
        """The consent categories the view's consent-basis leaves need: their own and those
        their values can reveal."""
        return self._consent_categories

    def permitted_paths(self, permits: Permits) -> frozenset[str]:
        """The leaves these permits allow (whether or not a record has values for them)."""
        return frozenset(leaf.path for leaf in self.leaves if _permitted(leaf, permits))

    def _pruned(self, permits: Permits) -> _Pruned:
        key = (
            permits.directory,
            permits.school_official,
            permits.consent_categories & self._consent_categories,
        )
        pruned = self._cache.get(key)
        if pruned is None:
            allowed = {i for i, leaf in enumerate(self.leaves) if _permitted(leaf, permits)}
            pruned = _Pruned(_build(self._root, allowed))
            if len(self._cache) >= _MAX_CACHED_PLANS:
                self._cache.clear()
            self._cache[key] = pruned
        return pruned


def _permitted(leaf: ViewLeaf, permits: Permits) -> bool:
    if leaf.basis is Basis.DIRECTORY:
        return permits.directory
    if leaf.basis is Basis.SCHOOL_OFFICIAL:
        return permits.school_official
    return leaf.requires <= permits.consent_categories


def compile_view(
    view_schema: Mapping[str, Any], contract: Contract, catalog: Mapping[str, FieldInfo]
) -> PartnerView:
    """Compile a (registered) view schema for projection.

    The plan keeps a view leaf only if the contract still allows it on the current student
    schema (``catalog``) and it is not never-share; its basis and category come from the
    contract and catalog, not from the view's attributes. View leaves left out are listed in
    ``PartnerView.dropped`` (the contract narrowed, or the field left the student schema).
    """
    if view_schema.get("type") != "record" or not isinstance(view_schema.get("fields"), list):
        raise ViewError("a view schema is a record with a field list")
    names = [f.get("name") for f in view_schema["fields"]]
    if tuple(names[: len(ENVELOPE_FIELDS)]) != ENVELOPE_FIELDS:
        raise ViewError(f"a view schema starts with the envelope fields {ENVELOPE_FIELDS}")
    allowed = resolve_allowances(contract, catalog)
    leaves: list[ViewLeaf] = []
    dropped: list[str] = []

    def node(record: Mapping[str, Any], prefix: str, skip: int) -> _Node:
        slots: list[_Slot] = []
        fields = record["fields"]
        for view_field in fields[skip:]:
            name = view_field["name"]
            path = f"{prefix}{name}"
            if "category" in view_field:
                basis = allowed.get(path)
                if basis is None:
                    dropped.append(path)
                    continue
                info = catalog[path]
                requires = (
                    frozenset((info.category, *info.reveals))
                    if basis is Basis.CONSENT
                    else frozenset[str]()
                )
                leaves.append(ViewLeaf(path, info.category, basis, requires))
                slots.append(_Slot(name, _LEAF, len(leaves) - 1, None))
                continue
            held = container(view_field.get("type"))  # inline only: a view names no types
            if held is None:
                raise ViewError(
                    f"{path}: a view field is a leaf with a category or an inline container"
                )
            inner, is_array = held
            child = node(inner, child_prefix(path, is_array), 0)
            slots.append(_Slot(name, _ARRAY if is_array else _RECORD, -1, child))
        return _Node(tuple(f["name"] for f in fields), tuple(slots))

    root = node(view_schema, "", len(ENVELOPE_FIELDS))
    return PartnerView(
        contract.partner, contract.version, view_schema, tuple(leaves), root, tuple(dropped)
    )


def _build(node: _Node, allowed: set[int]) -> _Projector | None:
    """A projector for ``node`` copying only allowed leaves; None if none is below it."""
    leaf_ops: list[tuple[str, int]] = []
    record_ops: list[tuple[str, _Projector]] = []
    array_ops: list[tuple[str, _Projector]] = []
    for slot in node.slots:
        if slot.kind == _LEAF:
            if slot.leaf in allowed:
                leaf_ops.append((slot.name, slot.leaf))
            continue
        assert slot.child is not None
        sub = _build(slot.child, allowed)
        if sub is not None:
            (array_ops if slot.kind == _ARRAY else record_ops).append((slot.name, sub))
    if not (leaf_ops or record_ops or array_ops):
        return None
    template: dict[str, Any] = dict.fromkeys(node.names)
    leaves, records, arrays = tuple(leaf_ops), tuple(record_ops), tuple(array_ops)

    def run(source: Mapping[str, Any], hits: set[int]) -> dict[str, Any]:
        out = template.copy()
        get = source.get
        for name, leaf in leaves:
            value = get(name)
            if value is not None:
                out[name] = value
                hits.add(leaf)
        for name, sub in records:
            value = get(name)
            if value is not None:
                out[name] = sub(value, hits)
        for name, sub in arrays:
            value = get(name)
            if value is not None:
                out[name] = [sub(item, hits) for item in value]
        return out

    return run


# --- projecting ---------------------------------------------------------------------------------


def project(
    record: Mapping[str, Any],
    view: PartnerView,
    permits: Permits,
    partner_student_key: str,
) -> Projection | None:
    """The view value of ``record`` for one student; None if the permits allow no view leaf.

    Leaves not permitted (or not in the view) are None; containers with no permitted leaf are
    None. ``fields`` lists the permitted leaves that carry a value in this record.
    """
    pruned = view._pruned(permits)
    if pruned.run is None:
        return None
    hits: set[int] = set()
    value = pruned.run(record, hits)
    value["partner_student_key"] = partner_student_key
    value["event_id"] = record["event_id"]
    value["occurred_at"] = record["occurred_at"]
    value["contract_version"] = view.contract_version
    order = sorted(hits)
    leaves = view.leaves
    return Projection(
        value=value,
        fields=tuple(leaves[i].path for i in order),
        categories=frozenset(view._categories[i] for i in order),
        legal_bases=frozenset(leaves[i].basis for i in order),
    )
