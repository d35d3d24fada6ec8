"""Ed-Fi descriptor values -> schema codes, from a table a person can read and extend.

The table is ``descriptors.yaml`` beside this module (see its header), optionally overlaid by
a source's own file. :meth:`DescriptorMap.code` returns the schema code of a descriptor value
or, for a value the table does not know, None and a note in :attr:`DescriptorMap.unknown`
(table, value) -> (count, first place), which the load turns into one warning per value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streams.errors import HallpassError

DEFAULT_TABLE = Path(__file__).with_name("descriptors.yaml")
_PASSTHROUGH = "_passthrough"


class DescriptorTableError(HallpassError, ValueError):
    """The descriptor table is unusable; the message says where and why."""


@dataclass(frozen=True)
class Table:
    by_code: Mapping[str, str | None]
    by_uri: Mapping[str, str | None]
    passthrough: bool


def code_value(value: str) -> str:
    """The code value of a descriptor URI (``uri://ed-fi.org/SexDescriptor#Female`` ->
    ``Female``); a bare code value (Data Standard 4 bulk files may carry one) as is."""
    return value.rsplit("#", 1)[-1].strip()


def _parse(data: Any, where: str) -> dict[str, Table]:
    if not isinstance(data, dict):
        raise DescriptorTableError(f"{where}: expected DescriptorName: {{code value: code}}")
    tables: dict[str, Table] = {}
    for name, entries in data.items():
        if not isinstance(entries, dict):
            raise DescriptorTableError(f"{where}: {name}: expected code value: schema code")
        by_code: dict[str, str | None] = {}
        by_uri: dict[str, str | None] = {}
        passthrough = False
        for key, target in entries.items():
            if key == _PASSTHROUGH:
                passthrough = bool(target)
                continue
            if target is not None and not isinstance(target, str | int):
                raise DescriptorTableError(f"{where}: {name}: {key}: the code must be text or null")
            text = None if target is None else str(target)
            if str(key).startswith("uri://"):
                by_uri[str(key).strip()] = text
            else:
                by_code[str(key).strip().casefold()] = text
        tables[str(name)] = Table(by_code, by_uri, passthrough)
    return tables


def load_tables(*paths: Path) -> dict[str, Table]:
    """The default table overlaid by ``paths`` in order (a later entry wins)."""
    merged: dict[str, Table] = {}
    for path in (DEFAULT_TABLE, *paths):
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as exc:
            raise DescriptorTableError(f"{path}: cannot read the descriptor table ({exc})") from exc
        for name, table in _parse(data, str(path)).items():
            old = merged.get(name)
            if old is None:
                merged[name] = table
            else:
                merged[name] = Table(
                    {**old.by_code, **table.by_code},
                    {**old.by_uri, **table.by_uri},
                    old.passthrough or table.passthrough,
                )
    return merged


@dataclass
class DescriptorMap:
    """Maps descriptor values and remembers the ones it did not know."""

    tables: Mapping[str, Table]
    #: (table, descriptor value) -> [count, "file:line:element" of the first]
    unknown: dict[tuple[str, str], list[Any]] = field(default_factory=dict)

    @classmethod
    def default(cls) -> DescriptorMap:
        return cls(load_tables())

    def code(self, table: str, value: str | None, where: str = "") -> str | None:
        """The schema code of ``value`` in ``table``; None for no value, a value mapped to
        null, or an unknown value (noted)."""
        if value is None:
            return None
        spec = self.tables.get(table)
        if spec is not None:
            if value in spec.by_uri:
                return spec.by_uri[value]
            code = code_value(value)
            folded = code.casefold()
            if folded in spec.by_code:
                return spec.by_code[folded]
            if spec.passthrough:
                return code
        seen = self.unknown.setdefault((table, value), [0, where])
        seen[0] += 1
        return None
