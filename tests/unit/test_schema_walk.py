"""The one Avro schema walker: named types, containers, paths, and values at a path."""

from __future__ import annotations

from typing import Any

import pytest

from streams.policy.schema_walk import (
    SchemaWalkError,
    container,
    holders,
    leaves,
    named_types,
    resolve,
    values_at,
    walk_fields,
)

ADDRESS: dict[str, Any] = {
    "type": "record",
    "name": "Address",
    "fields": [{"name": "city", "type": ["null", "string"]}],
}
SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "Person",
    "namespace": "test",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "home", "type": ADDRESS},
        {"name": "mailing", "type": ["null", "Address"]},
        {"name": "others", "type": {"type": "array", "items": "test.Address"}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "level", "type": {"type": "enum", "name": "x.Level", "symbols": ["A"]}},
    ],
}


def test_named_types_carry_the_enclosing_namespace_unless_they_name_their_own() -> None:
    assert set(named_types(SCHEMA)) == {"test.Person", "test.Address", "x.Level"}


def test_a_reference_resolves_by_full_or_unique_short_name() -> None:
    named = named_types(SCHEMA)
    assert resolve("test.Address", named) is ADDRESS
    assert resolve("Address", named) is ADDRESS
    assert resolve("string", named) == {"type": "string"}
    assert resolve("Nowhere", named) == {"type": "Nowhere"}


def test_containers_are_records_and_arrays_of_records_nulls_aside() -> None:
    named = named_types(SCHEMA)
    assert container(["null", "Address"], named) == (ADDRESS, False)
    assert container({"type": "array", "items": "Address"}, named) == (ADDRESS, True)
    assert container({"type": "array", "items": "string"}, named) is None
    assert container("Address") is None  # without the named types: an unknown leaf type


def test_leaf_paths_are_dotted_and_arrays_of_records_add_brackets() -> None:
    assert [path for path, _ in leaves(SCHEMA, named_types(SCHEMA))] == [
        "id",
        "home.city",
        "mailing.city",
        "others[].city",
        "tags",
        "level",
    ]
    assert [at.path for at in walk_fields(SCHEMA, named_types(SCHEMA)) if at.container] == [
        "home",
        "mailing",
        "others",
    ]


def test_a_recursive_record_is_refused() -> None:
    node: dict[str, Any] = {"type": "record", "name": "Node", "fields": []}
    node["fields"].append({"name": "next", "type": ["null", node]})
    with pytest.raises(SchemaWalkError, match="recursive"):
        list(walk_fields(node))


def test_values_at_a_path_follow_arrays_and_stop_at_nulls() -> None:
    value = {
        "home": {"city": "A"},
        "mailing": None,
        "others": [{"city": "B"}, {"city": None}, {"city": "C"}],
    }
    assert values_at(value, "home.city") == ["A"]
    assert values_at(value, "mailing.city") == []
    assert values_at(value, "others[].city") == ["B", "C"]
    assert len(list(holders(value, "others[].city"))) == 3
