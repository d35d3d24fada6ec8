"""The schemas on disk and the field catalog derived from them.

Every leaf field of a student event schema carries one NDPA data category as the custom
Avro attribute ``"category"``; never-share leaves also carry ``"never_share": true``. A leaf a
district may designate as directory information (34 CFR 99.3) carries
``"directory_eligible": true``; a leaf whose values can reveal special categories (program
codes such as special education, Section 504 or homeless) names them in ``"reveals"``.
:func:`field_catalog` turns a schema into ``{field path: FieldInfo}`` and refuses a schema
where any leaf lacks a valid category.

Field paths are dotted from the top-level record; an array of records adds ``[]``:
``names.first_name``, ``guardians[].email``, ``schedule.sections[].course_code``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from streams.policy.schema_walk import SchemaWalkError, named_types, non_null, resolve, walk_fields

SCHEMAS_DIR_ENV = "HALLPASS_SCHEMAS_DIR"

CATEGORIES: frozenset[str] = frozenset(
    {
        "application_meta",
        "application_use",
        "assessment",
        "attendance",
        "communications",
        "conduct",
        "demographics",
        "enrollment",
        "parent_contact",
        "parent_id",
        "parent_name",
        "schedule",
        "special_ell",
        "special_low_income",
        "special_medical",
        "special_disability",
        "special_iep_504",
        "special_living_situation",
        "student_contact",
        "student_identifiers",
        "student_name",
        "student_in_app_performance",
        "student_program_membership",
        "student_survey_responses",
        "student_work",
        "transcript",
        "transportation",
    }
)

SPECIAL_CATEGORIES: frozenset[str] = frozenset(
    {c for c in CATEGORIES if c.startswith("special_")} | {"conduct", "student_survey_responses"}
)
"""Categories that may only be shared on the ``consent`` legal basis."""


class SchemaCategoryError(SchemaWalkError):
    """A schema field breaks the category rule; ``path`` names the field."""


@dataclass(frozen=True)
class FieldInfo:
    """One leaf field of a schema."""

    path: str
    category: str
    never_share: bool
    avro_type: Any
    directory_eligible: bool = False
    #: special categories some values of this leaf can reveal (programs: special_iep_504, ...)
    reveals: tuple[str, ...] = ()


def schema_dir() -> Path:
    """Where the ``.avsc`` files are.

    ``$HALLPASS_SCHEMAS_DIR`` if set, else the repository's ``schemas/`` next to this package,
    else the copy packaged as ``streams/_schemas``.
    """
    configured = os.environ.get(SCHEMAS_DIR_ENV)
    if configured:
        return Path(configured)
    package_dir = Path(__file__).resolve().parents[1]  # streams/
    repo_schemas = package_dir.parent / "schemas"
    if repo_schemas.is_dir():
        return repo_schemas
    return package_dir / "_schemas"


def load_schema(name: str) -> dict[str, Any]:
    """Load ``<schema_dir>/<name>.avsc`` as a dict, e.g. ``load_schema("consent_changed")``."""
    if not name or Path(name).name != name or name.startswith("."):
        raise ValueError(f"schema name must be a file stem, got {name!r}")
    path = schema_dir() / f"{name}.avsc"
    loaded = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: an Avro schema file must hold a JSON object")
    return loaded


def field_catalog(schema: Mapping[str, Any]) -> dict[str, FieldInfo]:
    """Map every leaf path of a record schema to its :class:`FieldInfo`.

    A leaf is a field whose type, ignoring ``"null"`` in a union, is neither a record nor an
    array of records. Raises :class:`SchemaCategoryError` naming the path of the first field
    that lacks a valid category, carries one while being a container, or has a non-boolean
    ``never_share``.
    """
    named = named_types(schema)
    if resolve(schema, named).get("type") != "record":
        raise SchemaCategoryError("<root>", "the top-level schema must be a record")
    try:
        return {info.path: info for info in _leaf_infos(schema, named)}
    except SchemaCategoryError:
        raise
    except SchemaWalkError as error:  # a record that cannot be walked
        raise SchemaCategoryError(error.path, error.reason) from error


def never_share_paths(catalog: Mapping[str, FieldInfo]) -> frozenset[str]:
    """Paths of the fields that no partner may ever receive."""
    return frozenset(path for path, info in catalog.items() if info.never_share)


def paths_by_category(catalog: Mapping[str, FieldInfo]) -> dict[str, frozenset[str]]:
    """Category -> the leaf paths carrying it (only categories present in the catalog)."""
    grouped: dict[str, set[str]] = {}
    for path, info in catalog.items():
        grouped.setdefault(info.category, set()).add(path)
    return {category: frozenset(paths) for category, paths in grouped.items()}


def _leaf_infos(
    schema: Mapping[str, Any], named: Mapping[str, Mapping[str, Any]]
) -> Iterator[FieldInfo]:
    for at in walk_fields(schema, named):
        if at.container is None:
            yield _leaf_info(at.field, at.path)
            continue
        if len(non_null(at.field.get("type"))) > 1:
            raise SchemaCategoryError(
                at.path, "a union may hold a record or array of records only with null"
            )
        for attribute in ("category", "never_share", "directory_eligible", "reveals"):
            if attribute in at.field:
                raise SchemaCategoryError(
                    at.path, f"container field carries {attribute!r}; put it on its leaves"
                )


def _leaf_info(field: Mapping[str, Any], path: str) -> FieldInfo:
    if "category" not in field:
        raise SchemaCategoryError(path, "leaf field has no 'category'")
    category = field["category"]
    if not isinstance(category, str):
        raise SchemaCategoryError(path, f"'category' must be exactly one name, got {category!r}")
    if category not in CATEGORIES:
        raise SchemaCategoryError(path, f"unknown category {category!r}")
    never_share = field.get("never_share", False)
    if not isinstance(never_share, bool):
        raise SchemaCategoryError(path, f"'never_share' must be true or false, got {never_share!r}")
    eligible = field.get("directory_eligible", False)
    if not isinstance(eligible, bool):
        raise SchemaCategoryError(
            path, f"'directory_eligible' must be true or false, got {eligible!r}"
        )
    if eligible and category in SPECIAL_CATEGORIES:
        raise SchemaCategoryError(
            path, "a special-category leaf cannot be directory information (34 CFR 99.3)"
        )
    reveals = field.get("reveals", [])
    if not isinstance(reveals, list) or any(r not in SPECIAL_CATEGORIES for r in reveals):
        raise SchemaCategoryError(path, f"'reveals' must list special categories, got {reveals!r}")
    return FieldInfo(
        path=path,
        category=category,
        never_share=never_share,
        avro_type=field["type"],
        directory_eligible=eligible,
        reveals=tuple(reveals),
    )
