"""Does a decoded change match the student schema? A record decoded with its writer's schema
(any id in the registry) may carry a leaf of another type; such a record is a dead letter
before it reaches a table or a view encoder, and the reason names the field, never its value.

``record_checker`` compiles the schema once into plain closures; a record is checked in one
walk. Fields the schema does not know are ignored (never projected: views are allowlists);
a field the record lacks counts as null.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

from streams.policy.schema_walk import full_name

#: checks a value; returns None if it fits, else the path of the first field that does not
Check = Callable[[Any, str], str | None]

_SCALARS: dict[str, Callable[[Any], bool]] = {
    "null": lambda v: v is None,
    "boolean": lambda v: isinstance(v, bool),
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**31) <= v < 2**31,
    "long": lambda v: isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63,
    "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "double": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "string": lambda v: isinstance(v, str),
    "bytes": lambda v: isinstance(v, bytes),
}


def record_checker(schema: Mapping[str, Any]) -> Callable[[Mapping[str, Any]], str | None]:
    """A function that returns the path (``a.b``, ``a[].b``) of the first field of a record
    whose value does not fit ``schema``, or None when every known field fits."""
    named: dict[str, Check] = {}
    check = _compile(schema, named, None)

    def first_misfit(record: Mapping[str, Any]) -> str | None:
        return check(record, "")

    return first_misfit


def _compile(avro_type: Any, named: dict[str, Check], namespace: str | None) -> Check:
    if isinstance(avro_type, list):
        others = [b for b in avro_type if b != "null"]
        if len(others) == 1 and len(avro_type) == 2:  # the common case: nullable
            inner = _compile(others[0], named, namespace)

            def nullable(value: Any, path: str) -> str | None:
                return None if value is None else inner(value, path)

            return nullable
        branches = [_compile(b, named, namespace) for b in avro_type]

        def union(value: Any, path: str) -> str | None:
            found = None
            for branch in branches:
                found = branch(value, path)
                if found is None:
                    return None
            return found if found != path else path

        return union
    if isinstance(avro_type, str):
        if avro_type in _SCALARS:
            return _scalar(_SCALARS[avro_type])
        full = avro_type if "." in avro_type or not namespace else f"{namespace}.{avro_type}"
        for name in (full, avro_type):
            if name in named:
                return _deferred(named, name)
        raise ValueError(f"unknown named type {avro_type!r}")
    kind = avro_type.get("type")
    if isinstance(kind, list | Mapping):
        return _compile(kind, named, namespace)
    if kind in _SCALARS:
        return _scalar(_SCALARS[kind])
    name = avro_type.get("name")
    if isinstance(name, str):
        full = full_name(avro_type, namespace)
        namespace = full.rpartition(".")[0] or None
    if kind == "enum":
        symbols = frozenset(avro_type.get("symbols") or ())
        check = _scalar(lambda v: isinstance(v, str) and v in symbols)
    elif kind == "fixed":
        check = _scalar(lambda v: isinstance(v, bytes))
    elif kind == "array":
        items = _compile(avro_type["items"], named, namespace)

        def array(value: Any, path: str) -> str | None:
            if not isinstance(value, list):
                return path
            inner = f"{path}[]"
            for item in value:
                found = items(item, inner)
                if found is not None:
                    return found
            return None

        check = array
    elif kind == "map":
        values = _compile(avro_type["values"], named, namespace)

        def mapping(value: Any, path: str) -> str | None:
            if not isinstance(value, dict):
                return path
            for key, item in value.items():
                found = path if not isinstance(key, str) else values(item, f"{path}.*")
                if found is not None:
                    return found
            return None

        check = mapping
    elif kind in ("record", "error"):
        if isinstance(name, str):
            named[full] = named[name] = _pending
        fields: list[tuple[str, Check]] = []
        for f in avro_type["fields"]:
            fields.append((f["name"], _compile(f["type"], named, namespace)))
        prefix_of = {n: n for n, _ in fields}

        def record(value: Any, path: str) -> str | None:
            if not isinstance(value, dict):
                return path
            get = value.get
            base = f"{path}." if path else ""
            for field_name, field_check in fields:
                found = field_check(get(field_name), base + prefix_of[field_name])
                if found is not None:
                    return found
            return None

        check = record
        if isinstance(name, str):
            named[full] = named[name] = check
    else:
        raise ValueError(f"unsupported Avro type {kind!r}")
    return check


def _pending(value: Any, path: str) -> str | None:
    raise ValueError(f"{path}: a recursive type is not supported")


def _scalar(ok: Callable[[Any], bool]) -> Check:
    def scalar(value: Any, path: str) -> str | None:
        return None if ok(value) else path

    return scalar


def _deferred(named: dict[str, Check], name: str) -> Check:
    def deferred(value: Any, path: str) -> str | None:
        return named[name](value, path)

    return deferred


# -- semantic rules: what a record of the right types must also satisfy -------------------------

#: a change's fields that must hold an id (not null, not empty)
REQUIRED_IDS = ("event_id", "student_id", "district_id")


def _leaf_kind(name: str, avro_type: Any) -> str | None:
    """``id``, ``name``, ``text``, ``date`` or ``millis`` for a leaf of these rules."""
    from streams.policy.input_limits import is_name_field
    from streams.policy.schema_walk import non_null

    branches = non_null(avro_type)
    if len(branches) != 1:
        return None
    branch = branches[0]
    logical = branch.get("logicalType") if isinstance(branch, Mapping) else None
    kind = branch.get("type") if isinstance(branch, Mapping) else branch
    if kind == "string" or (
        kind == "array" and isinstance(branch, Mapping) and branch.get("items") == "string"
    ):
        if name.endswith("_id") or name == "event_id":
            return "id"
        return "name" if is_name_field(name) else "text"
    if logical == "date":
        return "date"
    if logical == "timestamp-millis":
        return "millis"
    return None


def change_rules(
    schema: Mapping[str, Any], known_districts: frozenset[str] = frozenset()
) -> Callable[[Mapping[str, Any], int], str | None]:
    """A function of a decoded change (whose types fit ``schema``) and the processing time
    (ms) that returns why it is refused (``<field> <rule>``, never the value), or None.
    The rules and limits are :mod:`streams.policy.input_limits`'s."""
    from streams.policy.input_limits import (
        date_problem,
        days_problem,
        district_problem,
        id_problem,
        millis_problem,
        text_problem,
        today_utc,
    )
    from streams.policy.schema_walk import holders_of, last_name, leaves

    # the rules grouped by the record that holds their leaves (one walk to it per group)
    grouped: dict[str, list[tuple[str, str, str]]] = {}
    for path, f in leaves(schema):
        name = last_name(path)
        kind = _leaf_kind(name, f.get("type"))
        if kind is not None:
            grouped.setdefault(path.rpartition(".")[0], []).append((name, kind, path))
    groups = [(holders_of(rules[0][2]), rules) for rules in grouped.values()]

    def problem_of(kind: str, value: Any, today: Any) -> str | None:
        if isinstance(value, list):
            return next((p for v in value if (p := problem_of(kind, v, today))), None)
        if kind == "id" and isinstance(value, str):
            return id_problem(value)
        if kind in ("name", "text") and isinstance(value, str):
            return text_problem(value, kind == "name")
        if kind == "date" and isinstance(value, int) and not isinstance(value, bool):
            return days_problem(value, today)
        if kind == "date" and isinstance(value, dt.date):  # a connector's record
            return date_problem(value, today)
        if kind == "millis" and isinstance(value, int):
            # an event time's upper bound is the handler's future skew (future_dated)
            found = millis_problem(value, today)
            return found if found is not None and found.startswith("is before") else None
        return None

    def refused(change: Mapping[str, Any], now_ms: int) -> str | None:
        for name in REQUIRED_IDS:
            found = id_problem(change.get(name))
            if found is not None:
                return f"{name} {found}"
        today = today_utc(now_ms)
        for holders_in, rules in groups:
            for holder in holders_in(change):
                get = holder.get
                for name, kind, path in rules:
                    value = get(name)
                    if value is not None:
                        found = problem_of(kind, value, today)
                        if found is not None:
                            return f"{path} {found}"
        found = district_problem(change.get("district_id"), known_districts)
        return f"district_id {found}" if found else None

    return refused


def consent_refused(
    event: Any, now_ms: int, known_districts: frozenset[str] = frozenset()
) -> str | None:
    """Why a decoded consent event (:class:`~streams.policy.consent.ConsentEvent`) is refused
    by the input rules, or None."""
    from streams.policy.input_limits import (
        district_problem,
        id_problem,
        millis_problem,
        today_utc,
    )

    today = today_utc(now_ms)
    ids = [("event_id", event.event_id), ("district_id", event.district_id)]
    if event.student_id is not None:
        ids.append(("student_id", event.student_id))
    if event.partner is not None:
        ids.append(("partner", event.partner))
    for name, value in ids:
        found = id_problem(value)
        if found is not None:
            return f"{name} {found}"
    # effective_at only: an expiry may lie years ahead (at graduation)
    found = (
        millis_problem(event.effective_at, today) if isinstance(event.effective_at, int) else None
    )
    if found is not None:
        return f"effective_at {found}"
    found = district_problem(event.district_id, known_districts)
    if found:
        return f"district_id {found}"
    from streams.policy.consent import provenance_problem

    return provenance_problem(event)
