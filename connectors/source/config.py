"""The configuration of one SIS connection: what a connector needs to know about a source that
the export itself does not say.

One small YAML file per connection (a district's OneRoster export, later an Ed-Fi ODS), so a
nightly job runs without flags::

    source: maple-sis              # id of this connection: names its state store (required)
    system_name: Maple SIS         # source_system of events (default: the export's, else source)
    district_id: "3600001"         # district of students whose orgs name none
    student_key:                   # how the student key (the Kafka key, student_id) is derived
      from: userIds                # OneRoster: userIds | userMasterIdentifier | identifier |
                                   #            sourcedId
      type: stateID                # with a typed id list (userIds): which {type:id} entry
      is: state_id                 # what that id is: state_id | local_id | sis_id
    dates:
      formats: ["%m/%d/%Y"]        # date formats accepted besides ISO 8601 (strptime)
      time_zone: America/New_York  # zone of date-times written without an offset (default UTC)
    extensions:                    # extension columns -> event fields, per source entity
      demographics:
        metadata.homeLanguage: demographics.home_language
    withdrawals:
      max_share: 0.10              # a bulk that would withdraw more than this share withdraws none

The key rule is explicit and recorded in every event (``student_id_type``): ``sourcedId`` keys
are qualified by the source (``maple-sis:usr-1``) and recorded as ``sourced_id``. The file is
resolved once into a frozen :class:`SourceConfig`; which ``from`` values and extension entities
are valid is the connector's business (``key_fields``, ``extension_entities``), so an Ed-Fi
connector can load the same file with its own names.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from streams.errors import HallpassError
from streams.policy.catalog import field_catalog, load_schema

#: What a student key can be; recorded in the event as ``student_id_type``.
KEY_KINDS: Final[tuple[str, ...]] = ("state_id", "local_id", "sis_id", "sourced_id")

#: Event fields an extension column may not set: the envelope the connector owns.
ENVELOPE_FIELDS: Final[frozenset[str]] = frozenset(
    {
        "event_id",
        "student_id",
        "student_id_type",
        "source_system",
        "district_id",
        "operation",
        "occurred_at",
    }
)

_SOURCE_ID = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
_TOP_KEYS: Final[frozenset[str]] = frozenset(
    {"source", "system_name", "district_id", "student_key", "dates", "extensions", "withdrawals"}
)


class SourceConfigError(HallpassError, ValueError):
    """The source configuration is unusable; the message is ``file: key: reason``."""


@dataclass(frozen=True)
class KeyRule:
    """How the student key is derived from a source record.

    ``field`` names the source field (``identifier``, ``userIds``, ``sourcedId``, ...),
    ``id_type`` the entry of a typed id list, ``kind`` what the value is (:data:`KEY_KINDS`).
    """

    field: str
    kind: str
    id_type: str | None = None

    def describe(self) -> str:
        if self.id_type:
            return f"{self.field} {{{self.id_type}:...}} ({self.kind})"
        return f"{self.field} ({self.kind})"


#: The rule when no configuration is given: an explicit state id entry, nothing guessed.
DEFAULT_KEY_RULE: Final[KeyRule] = KeyRule("userIds", "state_id", "stateID")


@dataclass(frozen=True)
class SourceConfig:
    """One SIS connection, resolved and checked."""

    source_id: str = "oneroster"
    system_name: str | None = None
    district_id: str | None = None
    student_key: KeyRule = DEFAULT_KEY_RULE
    date_formats: tuple[str, ...] = ()
    time_zone: dt.tzinfo = dt.UTC
    #: entity (file) -> source column -> event field path
    extensions: Mapping[str, Mapping[str, str]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    withdrawal_max_share: float = 0.10
    path: Path | None = None

    def with_overrides(
        self, *, district_id: str | None = None, source_id: str | None = None
    ) -> SourceConfig:
        """A copy with command-line values taking precedence."""
        return SourceConfig(
            source_id=source_id or self.source_id,
            system_name=self.system_name,
            district_id=district_id or self.district_id,
            student_key=self.student_key,
            date_formats=self.date_formats,
            time_zone=self.time_zone,
            extensions=self.extensions,
            withdrawal_max_share=self.withdrawal_max_share,
            path=self.path,
        )

    def extension_target(self, entity: str, column: str) -> str | None:
        """The event field an extension column maps to (column names match case-insensitively)."""
        columns = self.extensions.get(entity, {})
        low = column.lower()
        return next((target for name, target in columns.items() if name.lower() == low), None)


def check_source_id(value: object, where: str = "source") -> str:
    if not isinstance(value, str) or not _SOURCE_ID.fullmatch(value):
        raise SourceConfigError(
            f"{where}: {value!r} is not a source id (lowercase letters, digits, '.', '_', '-'; "
            "it names the state store of this connection)"
        )
    return value


def load_source_config(
    path: Path,
    *,
    key_fields: Collection[str] | None = None,
    typed_key_fields: Collection[str] = (),
    extension_entities: Collection[str] | None = None,
) -> SourceConfig:
    """Read and check a source configuration file.

    ``key_fields``: the ``student_key.from`` values the connector understands (None: any);
    ``typed_key_fields``: those that need a ``type``; ``extension_entities``: entities whose
    extension columns the connector maps (None: any). Raises :class:`SourceConfigError`.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceConfigError(f"{path}: cannot read the source configuration ({exc})") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SourceConfigError(f"{path}: not valid YAML ({exc})") from exc
    if not isinstance(data, dict):
        raise SourceConfigError(f"{path}: expected a mapping (source: ..., student_key: ...)")
    return parse_source_config(
        data,
        path,
        key_fields=key_fields,
        typed_key_fields=typed_key_fields,
        extension_entities=extension_entities,
    )


def parse_source_config(
    data: Mapping[str, Any],
    path: Path | None = None,
    *,
    key_fields: Collection[str] | None = None,
    typed_key_fields: Collection[str] = (),
    extension_entities: Collection[str] | None = None,
) -> SourceConfig:
    """The checked configuration of an already parsed mapping (see :func:`load_source_config`)."""
    where = str(path) if path else "source configuration"

    def fail(key: str, reason: str) -> SourceConfigError:
        return SourceConfigError(f"{where}: {key}: {reason}")

    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise fail(unknown[0], f"unknown setting (known: {', '.join(sorted(_TOP_KEYS))})")
    if "source" not in data:
        raise fail("source", "required: the id of this connection, e.g. maple-sis")
    try:
        source_id = check_source_id(data["source"], "source")
    except SourceConfigError as exc:
        raise SourceConfigError(f"{where}: {exc}") from None
    system_name = _optional_text(data, "system_name", fail)
    district_id = _optional_text(data, "district_id", fail)
    rule = _key_rule(data.get("student_key"), fail, key_fields, typed_key_fields)
    formats, zone = _dates(data.get("dates"), fail)
    extensions = _extensions(data.get("extensions"), fail, extension_entities)
    share = _max_share(data.get("withdrawals"), fail)
    return SourceConfig(
        source_id=source_id,
        system_name=system_name,
        district_id=district_id,
        student_key=rule,
        date_formats=formats,
        time_zone=zone,
        extensions=extensions,
        withdrawal_max_share=share,
        path=path,
    )


def _optional_text(data: Mapping[str, Any], key: str, fail: Any) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise fail(key, "must be text (quote it)")
    text = str(value).strip()
    if not text or text.lower() == "absent":
        raise fail(key, "must not be empty")
    return text


def _key_rule(
    value: Any, fail: Any, fields: Collection[str] | None, typed: Collection[str]
) -> KeyRule:
    if value is None:
        return DEFAULT_KEY_RULE
    if not isinstance(value, dict):
        raise fail("student_key", "expected a mapping with from (and type, is)")
    unknown = sorted(set(value) - {"from", "type", "is"})
    if unknown:
        raise fail(f"student_key.{unknown[0]}", "unknown setting (known: from, type, is)")
    source = value.get("from")
    if not isinstance(source, str) or not source:
        raise fail("student_key.from", "required: the field the key is taken from")
    if fields is not None and source not in fields:
        raise fail("student_key.from", f"{source!r} is not one of {', '.join(fields)}")
    raw_type = value.get("type")
    id_type: str | None = None
    if source in typed:
        if not isinstance(raw_type, str) or not raw_type.strip():
            raise fail("student_key.type", f"required with from: {source} (e.g. stateID)")
        id_type = raw_type.strip()
    elif raw_type is not None:
        raise fail("student_key.type", f"only for a typed id list ({', '.join(typed) or '-'})")
    kind = value.get("is", "sourced_id" if source == "sourcedId" else None)
    if source == "sourcedId" and kind != "sourced_id":
        raise fail("student_key.is", "a sourcedId key is always sourced_id")
    if source != "sourcedId" and kind not in KEY_KINDS[:3]:
        raise fail("student_key.is", f"required: what the id is ({', '.join(KEY_KINDS[:3])})")
    return KeyRule(source, str(kind), id_type)


def _dates(value: Any, fail: Any) -> tuple[tuple[str, ...], dt.tzinfo]:
    if value is None:
        return (), dt.UTC
    if not isinstance(value, dict):
        raise fail("dates", "expected a mapping with formats and time_zone")
    unknown = sorted(set(value) - {"formats", "time_zone"})
    if unknown:
        raise fail(f"dates.{unknown[0]}", "unknown setting (known: formats, time_zone)")
    raw_formats = value.get("formats") or []
    if not isinstance(raw_formats, list) or not all(isinstance(f, str) for f in raw_formats):
        raise fail("dates.formats", "expected a list of strptime formats, e.g. ['%m/%d/%Y']")
    for fmt in raw_formats:
        if "%" not in fmt or any(d in fmt for d in ("%H", "%M", "%S", "%z")):
            raise fail("dates.formats", f"{fmt!r} is not a date format (%Y, %m, %d)")
        sample = dt.date(2026, 1, 31).strftime(fmt)
        try:
            dt.datetime.strptime(sample, fmt)
        except ValueError:
            raise fail("dates.formats", f"{fmt!r} cannot read back its own output") from None
    zone: dt.tzinfo = dt.UTC
    name = value.get("time_zone")
    if name is not None:
        try:
            zone = ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            raise fail(
                "dates.time_zone", f"unknown time zone {name!r} (IANA name, e.g. America/New_York)"
            ) from None
    return tuple(raw_formats), zone


_EXTENSION_TYPES: Final[frozenset[str]] = frozenset(
    {"string", "int", "long", "boolean", "date", "double", "float"}
)


def extension_type(avro_type: Any) -> str | None:
    """The scalar type an extension value is converted to for a schema leaf, or None."""
    branches = avro_type if isinstance(avro_type, list) else [avro_type]
    kinds = [b for b in branches if b != "null"]
    if len(kinds) != 1:
        return None
    kind = kinds[0]
    if isinstance(kind, dict):
        kind = kind.get("logicalType") or kind.get("type")
    return kind if kind in _EXTENSION_TYPES else None


def _extensions(
    value: Any, fail: Any, entities: Collection[str] | None
) -> Mapping[str, Mapping[str, str]]:
    if value is None:
        return MappingProxyType({})
    if not isinstance(value, dict):
        raise fail("extensions", "expected entity: {column: event field}")
    catalog = field_catalog(load_schema("student_record_changed"))
    result: dict[str, Mapping[str, str]] = {}
    for entity, columns in value.items():
        key = f"extensions.{entity}"
        if entities is not None and entity not in entities:
            raise fail(key, f"extension columns are mapped for {', '.join(entities)} only")
        if not isinstance(columns, dict):
            raise fail(key, "expected column: event field")
        mapped: dict[str, str] = {}
        for column, target in columns.items():
            where = f"{key}.{column}"
            if not isinstance(target, str) or target not in catalog or "[]" in target:
                raise fail(
                    where,
                    f"{target!r} is not a field of StudentRecordChanged outside "
                    "a list (e.g. demographics.home_language)",
                )
            if target in ENVELOPE_FIELDS:
                raise fail(where, f"{target} is set by the connector, not by an extension")
            if extension_type(catalog[target].avro_type) is None:
                raise fail(where, f"{target} is not a text, number, boolean or date field")
            mapped[str(column)] = target
        result[str(entity)] = MappingProxyType(mapped)
    return MappingProxyType(result)


def _max_share(value: Any, fail: Any) -> float:
    if value is None:
        return 0.10
    if not isinstance(value, dict) or set(value) - {"max_share"}:
        raise fail("withdrawals", "expected max_share: <share between 0 and 1>")
    share = value.get("max_share", 0.10)
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
        raise fail("withdrawals.max_share", f"{share!r} is not a share between 0 and 1")
    return float(share)
