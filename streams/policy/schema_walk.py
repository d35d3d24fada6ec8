"""Walking Avro schemas and the values they describe, in one place.

The field catalog, view derivation and compilation, never-share stripping and the tests all
see a schema the same way:

- **named types** are collected by full name (namespaces inherited as Avro does) and a
  reference is resolved by its full name, or by its short name when only one type has it;
- a field is a **container** when its type, ignoring ``"null"`` in a union, is a record or an
  array of records; every other field is a **leaf**;
- a field's **path** is dotted from the top-level record, and an array of records adds
  ``[]``: ``names.first_name``, ``guardians[].email``, ``schedule.sections[].course_code``.

Pure: no I/O, nothing imported from the rest of hallpass.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

PRIMITIVES: frozenset[str] = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
)
NAMED_KINDS: frozenset[str] = frozenset({"record", "error", "enum", "fixed"})
RECORD_KINDS: frozenset[str] = frozenset({"record", "error"})

Named = Mapping[str, Mapping[str, Any]]
_NONE: Named = {}


class SchemaWalkError(ValueError):
    """A record that cannot be walked (no field list, a field without a name, recursion);
    ``path`` names where."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True, slots=True)
class FieldAt:
    """A field met on a walk: its path, its definition, and for a container the record it
    holds and whether that sits in an array (None for a leaf)."""

    path: str
    field: Mapping[str, Any]
    container: tuple[Mapping[str, Any], bool] | None


def full_name(named_type: Mapping[str, Any], namespace: str | None) -> str:
    """The full name of a named type defined where ``namespace`` is the enclosing one."""
    name = str(named_type.get("name", ""))
    if "." in name:
        return name
    own = named_type.get("namespace", namespace)
    return f"{own}.{name}" if own else name


def named_types(schema: Any) -> dict[str, Mapping[str, Any]]:
    """The named types (records, enums, fixed) defined anywhere in a schema, by full name."""
    named: dict[str, Mapping[str, Any]] = {}

    def visit(avro_type: Any, namespace: str | None) -> None:
        if isinstance(avro_type, list):
            for branch in avro_type:
                visit(branch, namespace)
            return
        if not isinstance(avro_type, Mapping):
            return
        kind = avro_type.get("type")
        if kind in NAMED_KINDS and isinstance(avro_type.get("name"), str):
            full = full_name(avro_type, namespace)
            named[full] = avro_type
            namespace = full.rpartition(".")[0] or None
        if kind in RECORD_KINDS:
            for field in avro_type.get("fields", []):
                if isinstance(field, Mapping):
                    visit(field.get("type"), namespace)
        elif kind == "array":
            visit(avro_type.get("items"), namespace)
        elif kind == "map":
            visit(avro_type.get("values"), namespace)
        elif isinstance(kind, Mapping | list):
            visit(kind, namespace)

    visit(schema, None)
    return named


def lookup(name: str, named: Named) -> Mapping[str, Any] | None:
    """A named type by full name, else by short name if exactly one type has it; else None."""
    if name in named:
        return named[name]
    short = [schema for full, schema in named.items() if full.rsplit(".", 1)[-1] == name]
    return short[0] if len(short) == 1 else None


def resolve(avro_type: Any, named: Named = _NONE) -> Mapping[str, Any]:
    """The type as a mapping: a primitive wrapped (``{"type": "string"}``), a reference looked
    up (an unknown one as ``{"type": name}``), a type nested under ``"type"`` unwrapped, a
    union as ``{"type": "union"}``."""
    if isinstance(avro_type, Mapping):
        nested = avro_type.get("type")
        if isinstance(nested, Mapping):
            return resolve(nested, named)
        return {"type": "union"} if isinstance(nested, list) else avro_type
    if isinstance(avro_type, str):
        if avro_type in PRIMITIVES:
            return {"type": avro_type}
        found = lookup(avro_type, named)
        return found if found is not None else {"type": avro_type}
    return {"type": "union"} if isinstance(avro_type, list) else {}


def non_null(avro_type: Any) -> list[Any]:
    """The branches of a type other than ``"null"`` (a type that is not a union: itself)."""
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    return [branch for branch in branches if branch != "null"]


def container(avro_type: Any, named: Named = _NONE) -> tuple[Mapping[str, Any], bool] | None:
    """The record a field type holds and whether it sits in an array; None for a leaf type.

    The first branch (``"null"`` aside) that is a record or an array of records decides."""
    for branch in non_null(avro_type):
        resolved = resolve(branch, named)
        if resolved.get("type") in RECORD_KINDS:
            return resolved, False
        if resolved.get("type") == "array":
            items = resolve(resolved.get("items"), named)
            if items.get("type") in RECORD_KINDS:
                return items, True
    return None


def child_prefix(path: str, is_array: bool) -> str:
    """The prefix of the fields below the container at ``path``: ``a.`` or ``a[].``."""
    return f"{path}[]." if is_array else f"{path}."


def walk_fields(
    record: Mapping[str, Any], named: Named = _NONE, prefix: str = ""
) -> Iterator[FieldAt]:
    """Every field below a record, each container just before the fields it holds."""
    yield from _walk(record, named, prefix, ())


def _walk(
    record: Mapping[str, Any], named: Named, prefix: str, seen: tuple[int, ...]
) -> Iterator[FieldAt]:
    if id(record) in seen:
        raise SchemaWalkError(prefix or "<root>", "a recursive record has no finite paths")
    fields = record.get("fields")
    if not isinstance(fields, list):
        raise SchemaWalkError(prefix or "<root>", "record has no field list")
    for field in fields:
        if not isinstance(field, Mapping) or not isinstance(field.get("name"), str):
            raise SchemaWalkError(prefix or "<root>", "field without a name")
        path = f"{prefix}{field['name']}"
        held = container(field.get("type"), named)
        yield FieldAt(path, field, held)
        if held is not None:
            inner, is_array = held
            yield from _walk(inner, named, child_prefix(path, is_array), (*seen, id(record)))


def leaves(
    record: Mapping[str, Any], named: Named = _NONE
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every leaf field below a record with its path, in schema order."""
    for at in walk_fields(record, named):
        if at.container is None:
            yield at.path, at.field


def holders(value: Any, path: str) -> Iterator[Mapping[str, Any]]:
    """The records inside a value that hold the last name of ``path`` (one per array item on
    the way; none below a null). ``path``'s last name is :func:`last_name`."""
    yield from holders_of(path)(value)


def holders_of(path: str) -> Callable[[Any], list[Mapping[str, Any]]]:
    """:func:`holders` for one ``path``, compiled once (for a walk repeated per record)."""
    steps = [(part.removesuffix("[]"), part.endswith("[]")) for part in path.split(".")[:-1]]

    def holders_in(value: Any) -> list[Mapping[str, Any]]:
        current: list[Any] = [value]
        for name, is_array in steps:
            below: list[Any] = []
            for item in current:
                child = item.get(name) if isinstance(item, Mapping) else None
                if child is None:
                    continue
                if not is_array:
                    below.append(child)
                elif isinstance(child, list):
                    below.extend(child)
            current = below
        return [item for item in current if isinstance(item, Mapping)]

    return holders_in


def last_name(path: str) -> str:
    """The field name a path ends in: ``email`` of ``guardians[].email``."""
    return path.rpartition(".")[2]


def values_at(value: Any, path: str) -> list[Any]:
    """The non-null values at a leaf path of a value, in order (one per array item)."""
    name = last_name(path)
    return [found for holder in holders(value, path) if (found := holder.get(name)) is not None]
