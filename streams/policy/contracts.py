"""Partner contracts: one reviewable YAML file per partner, loaded into frozen objects.

A contract names what one partner may receive: data categories or single field paths, each
with the legal basis it rests on (``directory``, ``school_official`` or ``consent``). The
checks here need the field catalog of the student schema; every problem found is reported as a
:class:`ContractError` naming the file, the key (``allow[2].field``) and the reason, and all
problems of all files are reported at once.

Contract dates are whole days in UTC: a contract is active from 00:00 UTC on ``valid_from``
through the end of ``valid_until`` (so until 00:00 UTC the next day).

A contract version is a frozen field list. ``hallpass contracts lock`` records the fields a
version resolves to (and the basis of each) in ``<partner>.lock.yaml`` beside the contract;
loading a contract attaches that list as :attr:`Contract.frozen_fields`, and only those fields
ever reach the partner. A leaf the schema gains later in a category the contract allows is
reported for review (:func:`review_contracts`) and flows only once the contract's version is
bumped and locked again; a version whose fields changed without a bump is an error.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from streams.errors import HallpassError
from streams.policy.bill_of_rights import BillOfRights, parse_bill_of_rights
from streams.policy.catalog import CATEGORIES, SPECIAL_CATEGORIES, FieldInfo

PARTNER_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
PRINCIPAL = re.compile(r"^User:[A-Za-z0-9._@=,-]+$")
TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
CONTRACT_SUFFIXES = (".yaml", ".yml")
LOCK_SUFFIX = ".lock.yaml"

#: What a contract may be for (its ``purpose_code``); ``purpose`` says it in the contract's own
#: words. Modelled on the school functions FERPA's school-official exception and the NDPA's
#: Exhibit A describe.
PURPOSES: Mapping[str, str] = {
    "rostering": "student accounts, class and section placement, class lists",
    "instruction": "classroom teaching and learning",
    "assessment": "administering, scoring and reporting assessments",
    "health_services": "school nursing and health services",
    "special_education_services": "services of an IEP or Section 504 plan",
    "student_support": "counselling, attendance and intervention services",
    "transportation": "getting students to and from school",
    "nutrition_services": "school meals",
    "family_communications": "the school's communications with students and families",
    "library_services": "school library and media",
    "school_operations": "administrative functions of the school or district",
    "audit_evaluation": "audit or evaluation of education programs (34 CFR 99.31(a)(3))",
    "research": "studies for the district (34 CFR 99.31(a)(6))",
}
#: Purposes the law forbids, whatever else a contract says: Ed Law 2-d and 8 NYCRR 121.9
#: (no sale, no use or disclosure for marketing or advertising), the NDPA's Article IV.
FORBIDDEN_PURPOSES = re.compile(
    r"\b(marketing|market|advertis\w*|ads?|sale|sales|sell\w*|sold|monetiz\w*)\b", re.IGNORECASE
)
_FORBIDDEN_REASON = (
    "Ed Law 2-d (8 NYCRR 121.9) forbids selling student data or using or "
    "disclosing it for marketing or advertising"
)

_REQUIRED_KEYS = (
    "partner",
    "display_name",
    "version",
    "purpose_code",
    "purpose",
    "valid_from",
    "valid_until",
    "laws",
    "principal",
    "pseudonymous_ids",
    "allow",
)
_KNOWN_KEYS = frozenset({*_REQUIRED_KEYS, "topic", "bill_of_rights"})
_LOCK_KEYS = frozenset({"partner", "version", "fields"})
_ALLOW_KEYS = frozenset({"category", "field", "basis"})
_DAY_MS = 86_400_000
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Basis(StrEnum):
    """Legal basis of a disclosure (FERPA)."""

    DIRECTORY = "directory"
    SCHOOL_OFFICIAL = "school_official"
    CONSENT = "consent"


def default_topic(partner: str) -> str:
    return f"partner.{partner}.students"


@dataclass(frozen=True, slots=True)
class Allowance:
    """One ``allow`` entry: a category or a single leaf field path, and its legal basis."""

    basis: Basis
    category: str | None = None
    field: str | None = None

    def __post_init__(self) -> None:
        if (self.category is None) == (self.field is None):
            raise ValueError("an allowance names exactly one of category or field")


@dataclass(frozen=True, slots=True)
class Contract:
    """A validated partner contract."""

    partner: str
    display_name: str
    version: int
    purpose: str
    valid_from: date
    valid_until: date
    laws: tuple[str, ...]
    principal: str
    pseudonymous_ids: bool
    allow: tuple[Allowance, ...]
    topic: str = ""
    source: str = dataclasses.field(default="", compare=False)
    #: one of :data:`PURPOSES` (empty only for contracts built in code)
    purpose_code: str = ""
    #: the fields this version was locked with (``<partner>.lock.yaml``); None: not frozen
    #: (contracts built in code). Only these fields reach the partner.
    frozen_fields: frozenset[str] | None = None
    #: the Parents' Bill of Rights supplement (required under NY Ed Law 2-d, 121.3)
    bill_of_rights: BillOfRights | None = dataclasses.field(default=None, compare=False)
    active_from_ms: int = dataclasses.field(init=False, repr=False, compare=False)
    active_until_ms: int = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.topic:
            object.__setattr__(self, "topic", default_topic(self.partner))
        object.__setattr__(self, "active_from_ms", _day_start_ms(self.valid_from))
        object.__setattr__(self, "active_until_ms", _day_start_ms(self.valid_until) + _DAY_MS)

    def is_active(self, now_ms: int) -> bool:
        return self.active_from_ms <= now_ms < self.active_until_ms


@dataclass(frozen=True, slots=True)
class ContractError:
    """One problem with one contract file."""

    file: str
    key: str
    reason: str

    def __str__(self) -> str:
        return (
            f"{self.file}: {self.key}: {self.reason}" if self.key else f"{self.file}: {self.reason}"
        )


class ContractsInvalidError(HallpassError, ValueError):
    """Raised by :func:`load_contracts` when any contract has a problem."""

    def __init__(self, errors: list[ContractError]) -> None:
        super().__init__("\n".join(str(e) for e in errors))
        self.errors = errors


def resolve_allowances(contract: Contract, catalog: Mapping[str, FieldInfo]) -> dict[str, Basis]:
    """Leaf path -> legal basis for every leaf the contract allows, in catalog order.

    Never-share leaves are never included, whatever the contract says; neither is a
    special-category leaf (or one that reveals special categories) allowed on any basis but
    ``consent``, nor a leaf on the ``directory`` basis that is not directory information
    (:func:`check_contracts` reports each as an error). A field allowance takes precedence
    over the allowance of its category. A contract with :attr:`Contract.frozen_fields` (a
    locked version) resolves to those fields at most: a leaf the schema gained since is
    left out until the version is bumped and locked again.
    """
    allowed = _resolve_unfrozen(contract, catalog)
    if contract.frozen_fields is not None:
        allowed = {p: b for p, b in allowed.items() if p in contract.frozen_fields}
    return allowed


def _resolve_unfrozen(contract: Contract, catalog: Mapping[str, FieldInfo]) -> dict[str, Basis]:
    by_category = {a.category: a.basis for a in contract.allow if a.category is not None}
    by_field = {a.field: a.basis for a in contract.allow if a.field is not None}
    allowed: dict[str, Basis] = {}
    for path, info in catalog.items():
        if info.never_share:
            continue
        basis = by_field.get(path, by_category.get(info.category))
        if basis is None:
            continue
        if (info.category in SPECIAL_CATEGORIES or info.reveals) and basis is not Basis.CONSENT:
            continue
        if basis is Basis.DIRECTORY and not info.directory_eligible:
            continue
        allowed[path] = basis
    return allowed


class ContractsDirectoryError(HallpassError, ValueError):
    """The contracts directory is missing or is a file; the message says what to give."""


def contract_files(directory: Path) -> list[Path]:
    """The contract files of ``directory`` (not their lock files)."""
    if directory.is_file():
        raise ContractsDirectoryError(
            f"{directory} is a file: contracts are read from a directory, one YAML file per "
            f"partner (with its .lock.yaml); give the directory that holds it "
            f"({directory.parent})"
        )
    if not directory.is_dir():
        raise ContractsDirectoryError(
            f"{directory}: no such directory of contracts (give --contracts DIR or "
            "HALLPASS_CONTRACTS_DIR; the samples are in deploy/contracts)"
        )
    return sorted(
        p
        for p in directory.iterdir()
        if p.suffix in CONTRACT_SUFFIXES and p.is_file() and not p.name.endswith(LOCK_SUFFIX)
    )


def lock_path(contract_file: Path) -> Path:
    """``<partner>.lock.yaml`` beside ``<partner>.yaml``."""
    return contract_file.with_name(contract_file.stem + LOCK_SUFFIX)


def check_contracts(directory: Path, catalog: Mapping[str, FieldInfo]) -> list[ContractError]:
    """Every problem of every contract file in ``directory`` (empty when all are valid),
    including contracts without a lock of their version or whose locked version changed."""
    return _load_dir(directory, catalog)[1]


@dataclass(frozen=True, slots=True)
class ContractReview:
    """A valid, locked contract that a privacy officer should look at again."""

    file: str
    partner: str
    version: int
    unlocked: tuple[str, ...]

    def __str__(self) -> str:
        return (
            f"{self.file}: review: version {self.version} now also resolves to "
            f"{', '.join(self.unlocked)} (added to the schema in a category it allows); "
            "they reach no partner until you review them, bump `version` and run "
            "`hallpass contracts lock`"
        )


def review_contracts(directory: Path, catalog: Mapping[str, FieldInfo]) -> list[ContractReview]:
    """The locked contracts whose allowances now resolve to fields their lock does not hold
    (leaves the schema gained since): these fields are held back until a new version."""
    contracts, _ = _load_dir(directory, catalog)
    reviews = []
    for contract in contracts:
        assert contract.frozen_fields is not None
        unlocked = tuple(
            p for p in _resolve_unfrozen(contract, catalog) if p not in contract.frozen_fields
        )
        if unlocked:
            reviews.append(
                ContractReview(contract.source, contract.partner, contract.version, unlocked)
            )
    return reviews


@dataclass(frozen=True, slots=True)
class LockResult:
    """What ``contracts lock`` did for one contract."""

    partner: str
    version: int
    path: Path
    written: bool
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def lock_contracts(
    directory: Path, catalog: Mapping[str, FieldInfo], partner: str | None = None
) -> list[LockResult]:
    """Record each valid contract's resolved fields in its lock file. A version already
    locked with other fields is refused (bump the version: a version is a frozen field list);
    raises ContractsInvalidError with every problem."""
    contracts, errors = _load_dir(directory, catalog, with_locks=False)
    if errors:
        raise ContractsInvalidError(errors)
    results = []
    refused = []
    for contract in contracts:
        if partner is not None and contract.partner != partner:
            continue
        path = lock_path(Path(contract.source))
        fields = _resolve_unfrozen(contract, catalog)
        old = _read_lock(path, contract.partner)
        old_fields = old[1] if isinstance(old, tuple) else {}
        if isinstance(old, tuple) and old[0] == contract.version:
            if old_fields == fields:
                results.append(LockResult(contract.partner, contract.version, path, False))
                continue
            refused.append(
                ContractError(
                    contract.source,
                    "version",
                    f"version {contract.version} is already locked with other fields: bump "
                    "`version` (a contract version is a frozen field list), then lock again",
                )
            )
            continue
        if isinstance(old, tuple) and old[0] > contract.version:
            refused.append(
                ContractError(
                    contract.source,
                    "version",
                    f"{path.name} is of version {old[0]}, later than {contract.version}",
                )
            )
            continue
        path.write_text(_lock_text(contract, fields), encoding="utf-8")
        results.append(
            LockResult(
                contract.partner,
                contract.version,
                path,
                True,
                added=tuple(p for p in fields if p not in old_fields),
                removed=tuple(p for p in old_fields if p not in fields),
            )
        )
    if refused:
        raise ContractsInvalidError(refused)
    return results


def _lock_text(contract: Contract, fields: Mapping[str, Basis]) -> str:
    header = (
        f"# Generated by `hallpass contracts lock`: the fields {contract.partner} receives under\n"
        f"# version {contract.version} of {Path(contract.source).name}, with the basis of each.\n"
        "# Review it with the contract; change it only by bumping the version and locking again.\n"
    )
    body = {
        "partner": contract.partner,
        "version": contract.version,
        "fields": {path: basis.value for path, basis in fields.items()},
    }
    return header + yaml.safe_dump(body, sort_keys=False, width=100)


def _read_lock(path: Path, partner: str) -> tuple[int, dict[str, Basis]] | str | None:
    """(version, {field: basis}) of a lock file, None if there is none, or why it is
    unusable."""
    if not path.exists():
        return None
    try:
        text = path.read_text(encoding="utf-8")
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        return f"{path.name} is not valid YAML ({exc})"
    if not isinstance(document, dict) or set(document) != _LOCK_KEYS:
        return f"{path.name} must hold exactly partner, version and fields"
    version, fields = document["version"], document["fields"]
    if document["partner"] != partner:
        return f"{path.name} is the lock of {document['partner']!r}, not {partner!r}"
    if isinstance(version, bool) or not isinstance(version, int) or not isinstance(fields, dict):
        return f"{path.name}: version must be a number and fields a mapping"
    try:
        return version, {str(k): Basis(v) for k, v in fields.items()}
    except ValueError as exc:
        return f"{path.name}: {exc}"


def _frozen(
    contract: Contract, catalog: Mapping[str, FieldInfo], errors: list[ContractError]
) -> Contract | None:
    """The contract with the fields of its lock, or None with the problems in ``errors``."""
    path = lock_path(Path(contract.source))
    found = _read_lock(path, contract.partner)
    how = "review the fields it resolves to and run `hallpass contracts lock`"
    if found is None:
        errors.append(
            ContractError(
                contract.source,
                "version",
                f"version {contract.version} is not locked (no {path.name}): {how}",
            )
        )
        return None
    if isinstance(found, str):
        errors.append(ContractError(contract.source, "", f"{found}: {how}"))
        return None
    version, locked = found
    if version != contract.version:
        errors.append(
            ContractError(
                contract.source,
                "version",
                f"version {contract.version} is not locked ({path.name} is of version "
                f"{version}): {how}",
            )
        )
        return None
    resolved = _resolve_unfrozen(contract, catalog)
    gone = [p for p in locked if p not in catalog]
    if gone:
        errors.append(
            ContractError(
                contract.source,
                "version",
                f"the schema no longer has {', '.join(gone)}, locked in version {version}: "
                "bump `version` and lock again",
            )
        )
        return None
    changed = sorted(p for p, basis in locked.items() if resolved.get(p) is not basis)
    if changed:
        errors.append(
            ContractError(
                contract.source,
                "version",
                f"version {version} changed without a version bump: "
                + ", ".join(
                    f"{p} ({locked[p].value} -> "
                    f"{resolved[p].value if p in resolved else 'not allowed'})"
                    for p in changed
                )
                + "; bump `version` and run `hallpass contracts lock`",
            )
        )
        return None
    return dataclasses.replace(contract, frozen_fields=frozenset(locked))


def load_contracts(directory: Path, catalog: Mapping[str, FieldInfo]) -> list[Contract]:
    """The contracts in ``directory``, sorted by partner; raises ContractsInvalidError."""
    contracts, errors = _load_dir(directory, catalog)
    if errors:
        raise ContractsInvalidError(errors)
    return contracts


def parse_contract(
    text: str, file: str, catalog: Mapping[str, FieldInfo]
) -> tuple[Contract | None, list[ContractError]]:
    """One contract from YAML text; ``file`` names it in errors and must be ``<partner>.yaml``."""
    errors = _Errors(file)
    try:
        document = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        errors.add("", f"YAML syntax error: {where}{exc.problem or exc.context}")
        return None, errors.items
    except yaml.YAMLError as exc:
        errors.add("", f"YAML syntax error: {exc}")
        return None, errors.items
    if not isinstance(document, dict):
        errors.add("", "a contract must be a YAML mapping of keys to values")
        return None, errors.items
    return _ContractReader(document, errors, catalog).read(), errors.items


def _load_dir(
    directory: Path, catalog: Mapping[str, FieldInfo], with_locks: bool = True
) -> tuple[list[Contract], list[ContractError]]:
    contracts: list[Contract] = []
    errors: list[ContractError] = []
    for path in contract_files(directory):
        contract, found = parse_contract(path.read_text(encoding="utf-8"), str(path), catalog)
        errors.extend(found)
        if contract is not None and not found:
            if with_locks:
                contract = _frozen(contract, catalog, errors)
            if contract is not None:
                contracts.append(contract)
    errors.extend(_cross_file_errors(contracts))
    if errors:
        return [], errors
    return sorted(contracts, key=lambda c: c.partner), []


def _cross_file_errors(contracts: list[Contract]) -> list[ContractError]:
    errors: list[ContractError] = []
    by_topic: dict[str, Contract] = {}
    by_partner: dict[str, Contract] = {}
    for contract in contracts:
        first = by_partner.setdefault(contract.partner, contract)
        if first is not contract:
            errors.append(
                ContractError(
                    contract.source,
                    "partner",
                    f"partner {contract.partner!r} already has a contract in {first.source}",
                )
            )
        first = by_topic.setdefault(contract.topic, contract)
        if first is not contract:
            errors.append(
                ContractError(
                    contract.source,
                    "topic",
                    f"topic {contract.topic!r} already belongs to the contract in {first.source}",
                )
            )
    return errors


def _day_start_ms(day: date) -> int:
    start = datetime(day.year, day.month, day.day, tzinfo=UTC)
    return (start - _EPOCH) // timedelta(milliseconds=1)


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that rejects duplicate keys instead of keeping the last one."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Hashable, Any]:
    loader.flatten_mapping(node)
    mapping: dict[Hashable, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node)
        if not isinstance(key, Hashable):
            raise yaml.constructor.ConstructorError(
                None, None, "unhashable key", key_node.start_mark
            )
        if key in mapping:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        mapping[key] = loader.construct_object(value_node)
    return mapping


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


class _Errors:
    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[ContractError] = []

    def add(self, key: str, reason: str) -> None:
        self.items.append(ContractError(self.file, key, reason))


class _ContractReader:
    """Reads one parsed YAML document, collecting every error instead of stopping at one."""

    def __init__(
        self, document: dict[Any, Any], errors: _Errors, catalog: Mapping[str, FieldInfo]
    ) -> None:
        self.doc = document
        self.errors = errors
        self.catalog = catalog

    def read(self) -> Contract | None:
        doc, add = self.doc, self.errors.add
        for key in sorted(str(k) for k in doc if k not in _KNOWN_KEYS):
            add(key, f"unknown key (known keys: {', '.join(sorted(_KNOWN_KEYS))})")
        for key in _REQUIRED_KEYS:
            if key not in doc:
                add(key, "missing required key")
        for key in sorted(str(k) for k in doc if k in _KNOWN_KEYS and doc[k] is None):
            add(key, "has no value")

        partner = self._partner()
        display_name = self._text("display_name")
        purpose_code = self._purpose_code()
        purpose = self._purpose()
        version = self._version()
        valid_from = self._date("valid_from")
        valid_until = self._date("valid_until")
        if valid_from is not None and valid_until is not None and valid_until < valid_from:
            add("valid_until", f"{valid_until} is before valid_from {valid_from}")
        laws = self._laws()
        principal = self._principal()
        pseudonymous = self._bool("pseudonymous_ids")
        topic = self._topic(partner)
        allow = self._allow()
        if pseudonymous is False and allow is not None:
            self._check_real_ids(allow)
        if allow is not None:
            self._check_revealing(allow)
        rights = parse_bill_of_rights(self.doc.get("bill_of_rights"), laws, self.errors.add)

        if self.errors.items:
            return None
        assert partner is not None and display_name is not None and purpose is not None
        assert purpose_code is not None
        assert version is not None and valid_from is not None and valid_until is not None
        assert laws is not None and principal is not None and pseudonymous is not None
        assert allow is not None
        return Contract(
            partner=partner,
            display_name=display_name,
            version=version,
            purpose=purpose,
            valid_from=valid_from,
            valid_until=valid_until,
            laws=laws,
            principal=principal,
            pseudonymous_ids=pseudonymous,
            allow=allow,
            topic=topic or default_topic(partner),
            source=self.errors.file,
            purpose_code=purpose_code,
            bill_of_rights=rights,
        )

    def _partner(self) -> str | None:
        value = self.doc.get("partner")
        if value is None:
            return None
        if not isinstance(value, str) or not PARTNER_ID.match(value):
            self.errors.add(
                "partner",
                f"{value!r} is not a partner id: use lowercase letters, digits and dashes "
                "(at most 63, not starting or ending with a dash)",
            )
            return None
        stem = Path(self.errors.file).stem
        if self.errors.file and stem != value:
            self.errors.add("partner", f"{value!r} does not match the file name {stem!r}.yaml")
        return value

    def _text(self, key: str) -> str | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.errors.add(key, "must be non-empty text")
            return None
        return value.strip()

    def _purpose_code(self) -> str | None:
        value = self.doc.get("purpose_code")
        if value is None:
            return None
        if isinstance(value, str) and FORBIDDEN_PURPOSES.search(value.replace("_", " ")):
            self.errors.add(
                "purpose_code", f"{value!r} is not a permitted purpose: {_FORBIDDEN_REASON}"
            )
            return None
        if not isinstance(value, str) or value not in PURPOSES:
            self.errors.add(
                "purpose_code",
                f"unknown purpose {value!r}"
                f"{_did_you_mean(value, PURPOSES)}; one of: "
                f"{', '.join(PURPOSES)}",
            )
            return None
        return value

    def _purpose(self) -> str | None:
        text = self._text("purpose")
        if text is None:
            return None
        found = FORBIDDEN_PURPOSES.search(text)
        if found:
            self.errors.add(
                "purpose",
                f"mentions {found.group(0)!r}: {_FORBIDDEN_REASON}. "
                "Say what the data is for; the law's prohibitions need no "
                "restating here",
            )
            return None
        return text

    def _version(self) -> int | None:
        value = self.doc.get("version")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.errors.add("version", f"must be a positive integer, got {value!r}")
            return None
        return value

    def _date(self, key: str) -> date | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if isinstance(value, datetime):
            self.errors.add(key, "must be a date (YYYY-MM-DD), not a date and time")
            return None
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            try:
                return date.fromisoformat(value)
            except ValueError:
                pass
        self.errors.add(key, f"must be a date (YYYY-MM-DD), got {value!r}")
        return None

    def _laws(self) -> tuple[str, ...] | None:
        value = self.doc.get("laws")
        if value is None:
            return None
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            self.errors.add("laws", "must be a non-empty list of law names, e.g. [FERPA]")
            return None
        return tuple(v.strip() for v in value)

    def _principal(self) -> str | None:
        value = self.doc.get("principal")
        if value is None:
            return None
        if not isinstance(value, str) or not PRINCIPAL.match(value):
            self.errors.add(
                "principal", f"must be a Kafka principal like User:learnwell, got {value!r}"
            )
            return None
        return value

    def _bool(self, key: str) -> bool | None:
        value = self.doc.get(key)
        if value is None:
            return None
        if not isinstance(value, bool):
            self.errors.add(key, f"must be true or false, got {value!r}")
            return None
        return value

    def _topic(self, partner: str | None) -> str | None:
        value = self.doc.get("topic")
        if value is None:
            return None
        if not isinstance(value, str) or not TOPIC_NAME.match(value) or value in (".", ".."):
            self.errors.add("topic", f"{value!r} is not a valid Kafka topic name")
            return None
        if partner is not None and value != default_topic(partner):
            self.errors.add(
                "topic", f"a partner's topic is {default_topic(partner)!r}, got {value!r}"
            )
            return None
        return value

    def _allow(self) -> tuple[Allowance, ...] | None:
        value = self.doc.get("allow")
        if value is None:
            return None
        if not isinstance(value, list) or not value:
            self.errors.add("allow", "must be a non-empty list of category or field entries")
            return None
        allowances: list[Allowance] = []
        ok = True
        for index, item in enumerate(value):
            allowance = self._allowance(f"allow[{index}]", item)
            if allowance is None:
                ok = False
            else:
                allowances.append(allowance)
        if not ok:
            return None
        if not self._no_overlaps(allowances):
            return None
        return tuple(allowances)

    def _allowance(self, key: str, item: Any) -> Allowance | None:
        add = self.errors.add
        if not isinstance(item, dict):
            add(key, "must be a mapping with 'category' or 'field', and 'basis'")
            return None
        ok = True
        for unknown in sorted(str(k) for k in item if k not in _ALLOW_KEYS):
            add(f"{key}.{unknown}", "unknown key (known keys: basis, category, field)")
            ok = False
        basis = self._basis(key, item)
        has_category, has_field = "category" in item, "field" in item
        if has_category == has_field:
            add(key, "name exactly one of 'category' or 'field'")
            return None
        if has_category:
            category = self._category(f"{key}.category", item["category"], basis)
            if category is None or basis is None or not ok:
                return None
            return Allowance(basis=basis, category=category)
        path = self._field(f"{key}.field", item["field"], basis)
        if path is None or basis is None or not ok:
            return None
        return Allowance(basis=basis, field=path)

    def _basis(self, key: str, item: dict[Any, Any]) -> Basis | None:
        if "basis" not in item:
            self.errors.add(f"{key}.basis", "missing required key")
            return None
        value = item["basis"]
        try:
            return Basis(value)
        except ValueError:
            known = ", ".join(b.value for b in Basis)
            self.errors.add(f"{key}.basis", f"unknown basis {value!r} (one of {known})")
            return None

    def _category(self, key: str, value: Any, basis: Basis | None) -> str | None:
        if not isinstance(value, str) or value not in CATEGORIES:
            hint = _did_you_mean(value, CATEGORIES)
            self.errors.add(key, f"unknown category {value!r}{hint}")
            return None
        if value in SPECIAL_CATEGORIES and basis is not None and basis is not Basis.CONSENT:
            self.errors.add(
                key, f"{value} is a special category: it may only be shared on the consent basis"
            )
            return None
        if basis is Basis.DIRECTORY:
            leaves = [i for i in self.catalog.values() if i.category == value and not i.never_share]
            ineligible = [i.path for i in leaves if not i.directory_eligible]
            if ineligible:
                eligible = [i.path for i in leaves if i.directory_eligible]
                hint = (
                    f"name its eligible fields one by one ({', '.join(eligible)}), or "
                    if eligible
                    else ""
                )
                self.errors.add(
                    key,
                    f"{value} may not use the directory basis: "
                    f"{', '.join(ineligible)} {'is' if len(ineligible) == 1 else 'are'} not "
                    f"directory information (34 CFR 99.3); {hint}use school_official or "
                    "consent",
                )
                return None
        return value

    def _field(self, key: str, value: Any, basis: Basis | None) -> str | None:
        info = self.catalog.get(value) if isinstance(value, str) else None
        if info is None:
            prefix = f"{value}." if isinstance(value, str) else None
            if prefix is not None and any(p.startswith(prefix) for p in self.catalog):
                self.errors.add(
                    key, f"{value!r} is a container; name its leaf fields or a category"
                )
            else:
                hint = _did_you_mean(value, self.catalog)
                self.errors.add(key, f"unknown field {value!r}{hint}")
            return None
        if info.never_share:
            self.errors.add(key, f"{value} is never shared with any partner")
            return None
        if info.category in SPECIAL_CATEGORIES and basis is not None and basis is not Basis.CONSENT:
            self.errors.add(
                key,
                f"{value} is in the special category {info.category}: "
                "it may only be shared on the consent basis",
            )
            return None
        if basis is Basis.DIRECTORY and not info.directory_eligible:
            self.errors.add(
                key,
                f"{value} ({info.category}) is not directory information (34 CFR 99.3): "
                "only what a district may designate (name, address, telephone, email, date "
                "and place of birth, grade level, enrollment status, dates of attendance, "
                "school attended, a login id) may use the directory basis; use "
                "school_official or consent",
            )
            return None
        return str(value)

    def _no_overlaps(self, allowances: list[Allowance]) -> bool:
        categories: dict[str, int] = {}
        fields: dict[str, int] = {}
        ok = True
        for index, allowance in enumerate(allowances):
            if allowance.category is not None:
                if allowance.category in categories:
                    self.errors.add(
                        f"allow[{index}].category",
                        f"{allowance.category} is already allowed by "
                        f"allow[{categories[allowance.category]}]",
                    )
                    ok = False
                categories.setdefault(allowance.category, index)
        for index, allowance in enumerate(allowances):
            if allowance.field is None:
                continue
            category = self.catalog[allowance.field].category
            if allowance.field in fields:
                self.errors.add(
                    f"allow[{index}].field",
                    f"{allowance.field} is already allowed by allow[{fields[allowance.field]}]",
                )
                ok = False
            elif category in categories:
                self.errors.add(
                    f"allow[{index}].field",
                    f"{allowance.field} is already allowed through its category {category} "
                    f"by allow[{categories[category]}]",
                )
                ok = False
            fields.setdefault(allowance.field, index)
        return ok

    def _check_revealing(self, allow: tuple[Allowance, ...]) -> None:
        """A leaf whose values can reveal special categories (``programs``: special
        education, Section 504, homeless codes) needs the consent basis, and the contract
        must allow each revealed category on the consent basis too: its values are then
        disclosed only to a partner that parents may consent to for those categories."""
        consented = {
            a.category for a in allow if a.category is not None and a.basis is Basis.CONSENT
        }
        for index, allowance in enumerate(allow):
            covered = [
                i
                for i in self.catalog.values()
                if i.reveals
                and not i.never_share
                and (allowance.field == i.path or allowance.category == i.category)
            ]
            kind = "field" if allowance.field is not None else "category"
            for info in covered:
                if allowance.basis is not Basis.CONSENT:
                    self.errors.add(
                        f"allow[{index}].{kind}",
                        f"{info.path} may carry {', '.join(info.reveals)} program codes "
                        "(special education, Section 504, homeless): it may only be shared "
                        "on the consent basis",
                    )
                    continue
                missing = [c for c in info.reveals if c not in consented]
                if missing:
                    self.errors.add(
                        f"allow[{index}].{kind}",
                        f"{info.path} may carry program codes of {', '.join(missing)}: allow "
                        f"{' and '.join(missing)} on the consent basis as well (the partner "
                        "then holds consented special-category data), or drop it",
                    )

    def _check_real_ids(self, allow: tuple[Allowance, ...]) -> None:
        identifiers = [
            a
            for a in allow
            if a.category == "student_identifiers"
            or (a.field is not None and self.catalog[a.field].category == "student_identifiers")
        ]
        if not identifiers:
            self.errors.add(
                "pseudonymous_ids",
                "false needs student_identifiers allowed (the partner would receive real ids)",
            )
        elif not any(a.basis is Basis.SCHOOL_OFFICIAL for a in identifiers):
            self.errors.add(
                "pseudonymous_ids",
                "false needs student_identifiers allowed on the school_official basis "
                "(the real id is the key of every record the partner receives)",
            )


def _did_you_mean(value: Any, known: Any) -> str:
    if not isinstance(value, str):
        return ""
    close = difflib.get_close_matches(value, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
