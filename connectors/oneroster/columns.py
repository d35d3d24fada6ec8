"""The columns of each OneRoster CSV file in 1.0, 1.1 and 1.2, their aliases, and value parsing.

One canonical spelling per column (1.2's): a header is matched case-insensitively against it
and against the names earlier versions (and common exports) use for the same thing
(:data:`ALIASES`), so each version's files map to the same records. Which values are required
depends on the version (:func:`required_columns`).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

Version = Literal["1.0", "1.1", "1.2"]
VERSIONS: Final[tuple[Version, ...]] = ("1.0", "1.1", "1.2")

Kind = Literal["text", "ids", "bool", "date", "enum", "userids", "year"]
Value = str | tuple[str, ...] | bool | dt.date | int | None

#: ``file.<key>`` entries of the manifest that this connector reads, with their CSV name.
KNOWN_FILES: Final[Mapping[str, str]] = {
    "orgs": "orgs.csv",
    "academicSessions": "academicSessions.csv",
    "courses": "courses.csv",
    "classes": "classes.csv",
    "users": "users.csv",
    "roles": "roles.csv",
    "demographics": "demographics.csv",
    "enrollments": "enrollments.csv",
}

#: Order in which files are read (rejects and warnings come out in this order).
READ_ORDER: Final[tuple[str, ...]] = tuple(KNOWN_FILES)

COMMON: Final[tuple[str, ...]] = ("sourcedId", "status", "dateLastModified")


@dataclass(frozen=True)
class Column:
    """One OneRoster column: how to parse it, whether a value is required (from which version)."""

    name: str
    kind: Kind = "text"
    required: bool = False
    choices: tuple[str, ...] = ()
    #: first version that requires the value (earlier ones lack the column)
    required_from: Version = "1.0"
    #: a reference to a row of this file (checked), and whether a dangling one rejects the row
    refers_to: str | None = None
    #: a column of the 1.0/1.1 layout only (read from those, not part of 1.2's binding)
    legacy: bool = False


@dataclass(frozen=True)
class FileSpec:
    """The columns of one OneRoster CSV file (besides sourcedId, status, dateLastModified)."""

    key: str
    columns: tuple[Column, ...]

    @property
    def csv_name(self) -> str:
        return KNOWN_FILES[self.key]

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {c.name: c for c in self.columns})

    def column(self, name: str) -> Column | None:
        by_name: Mapping[str, Column] = self._by_name  # type: ignore[attr-defined]
        return by_name.get(name)


ORG_TYPES: Final = ("department", "school", "district", "local", "state", "national")
# Role values of roles.csv, enrollments.csv and 1.0/1.1 users.role.
ROLES: Final = (
    "administrator",
    "aide",
    "counselor",
    "districtAdministrator",
    "guardian",
    "parent",
    "principal",
    "proctor",
    "relative",
    "siteAdministrator",
    "student",
    "systemAdministrator",
    "teacher",
)
SEXES: Final = ("male", "female", "unspecified", "other")
RACE_FLAGS: Final = (
    "americanIndianOrAlaskaNative",
    "asian",
    "blackOrAfricanAmerican",
    "nativeHawaiianOrOtherPacificIslander",
    "white",
    "demographicRaceTwoOrMoreRaces",
    "hispanicOrLatinoEthnicity",
)


def _req(
    name: str,
    kind: Kind = "text",
    *,
    since: Version = "1.0",
    choices: tuple[str, ...] = (),
    refers_to: str | None = None,
) -> Column:
    return Column(name, kind, True, choices, since, refers_to)


def _opt(
    name: str,
    kind: Kind = "text",
    *,
    choices: tuple[str, ...] = (),
    refers_to: str | None = None,
    legacy: bool = False,
) -> Column:
    return Column(name, kind, False, choices, "1.0", refers_to, legacy)


SPECS: Final[Mapping[str, FileSpec]] = {
    spec.key: spec
    for spec in (
        FileSpec(
            "orgs",
            (
                _req("name"),
                _req("type", "enum", choices=ORG_TYPES),
                _opt("identifier"),
                _opt("parentSourcedId", refers_to="orgs"),
            ),
        ),
        FileSpec(
            "academicSessions",
            (
                _req("title"),
                _req("type", "enum", choices=("gradingPeriod", "semester", "schoolYear", "term")),
                _req("startDate", "date"),
                _req("endDate", "date"),
                _opt("parentSourcedId", refers_to="academicSessions"),
                _req("schoolYear", "year", since="1.1"),
            ),
        ),
        FileSpec(
            "courses",
            (
                _opt("schoolYearSourcedId", refers_to="academicSessions"),
                _req("title"),
                _opt("courseCode"),
                _opt("grades", "ids"),
                _req("orgSourcedId", refers_to="orgs"),
                _opt("subjects", "ids"),
                _opt("subjectCodes", "ids"),
            ),
        ),
        FileSpec(
            "classes",
            (
                _req("title"),
                _opt("grades", "ids"),
                _req("courseSourcedId", refers_to="courses"),
                _opt("classCode"),
                _req("classType", "enum", choices=("homeroom", "scheduled")),
                _opt("location"),
                _req("schoolSourcedId", refers_to="orgs"),
                _req("termSourcedIds", "ids", refers_to="academicSessions"),
                _opt("subjects", "ids"),
                _opt("subjectCodes", "ids"),
                _opt("periods", "ids"),
            ),
        ),
        FileSpec(
            "users",
            (
                _req("enabledUser", "bool", since="1.1"),
                _req("username"),
                _opt("userIds", "userids"),
                _req("givenName"),
                _req("familyName"),
                _opt("middleName"),
                _opt("identifier"),
                _opt("email"),
                _opt("sms"),
                _opt("phone"),
                _opt("agentSourcedIds", "ids", refers_to="users"),
                _opt("grades", "ids"),
                _opt("password"),
                _opt("userMasterIdentifier"),
                _opt("resourceSourcedIds", "ids"),
                _opt("preferredGivenName"),
                _opt("preferredMiddleName"),
                _opt("preferredFamilyName"),
                _opt("primaryOrgSourcedId", refers_to="orgs"),
                _opt("pronouns"),
                # 1.0 and 1.1 layout (1.2 moved them to roles.csv); 1.0's single userId
                _opt("role", "enum", choices=ROLES, legacy=True),
                _opt("orgSourcedIds", "ids", refers_to="orgs", legacy=True),
                _opt("userId", legacy=True),
            ),
        ),
        FileSpec(
            "roles",
            (
                _req("userSourcedId", refers_to="users"),
                _req("roleType", "enum", choices=("primary", "secondary")),
                _req("role", "enum", choices=ROLES),
                _opt("beginDate", "date"),
                _opt("endDate", "date"),
                _req("orgSourcedId", refers_to="orgs"),
                _opt("userProfileSourcedId"),
            ),
        ),
        FileSpec(
            "demographics",
            (
                _opt("birthDate", "date"),
                _opt("sex", "enum", choices=SEXES),
                *(_opt(flag, "bool") for flag in RACE_FLAGS),
                _opt("countryOfBirthCode"),
                _opt("stateOfBirthAbbreviation"),
                _opt("cityOfBirth"),
                _opt("publicSchoolResidenceStatus"),
            ),
        ),
        FileSpec(
            "enrollments",
            (
                _req("classSourcedId", refers_to="classes"),
                _req("schoolSourcedId", refers_to="orgs"),
                _req("userSourcedId", refers_to="users"),
                _req("role", "enum", choices=ROLES),
                _opt("primary", "bool"),
                _opt("beginDate", "date"),
                _opt("endDate", "date"),
            ),
        ),
    )
}

#: Other spellings of a column, by file (lowercase alias -> canonical name): OneRoster 1.0
#: names and what exporters commonly write.
ALIASES: Final[Mapping[str, Mapping[str, str]]] = {
    "users": {
        "agents": "agentSourcedIds",
        "grade": "grades",
        "preferredfirstname": "preferredGivenName",
        "preferredlastname": "preferredFamilyName",
        "firstname": "givenName",
        "lastname": "familyName",
        "orgsourcedid": "orgSourcedIds",
    },
    "classes": {"grade": "grades", "termsourcedid": "termSourcedIds"},
    "courses": {"grade": "grades", "schoolyearid": "schoolYearSourcedId"},
    "demographics": {"birthdate": "birthDate"},
    "academicSessions": {},
    "orgs": {"parentid": "parentSourcedId"},
    "roles": {},
    "enrollments": {},
}

#: Columns read but carried by no event field: a value in one is named once as a warning.
UNPUBLISHED: Final[Mapping[str, frozenset[str]]] = {
    "users": frozenset({"pronouns"}),
}


def canonical_names(key: str) -> dict[str, str]:
    """Lowercase header name -> canonical column name, for the columns of file ``key``."""
    names = {c.lower(): c for c in COMMON}
    names.update({c.name.lower(): c.name for c in SPECS[key].columns})
    names.update(ALIASES.get(key, {}))
    return names


def columns_1_2(key: str) -> tuple[str, ...]:
    """The header of file ``key`` in OneRoster 1.2's CSV binding, in its order (what a 1.2
    package writer writes): the common columns, then the file's own but the legacy ones."""
    return (*COMMON, *(c.name for c in SPECS[key].columns if not c.legacy))


def required_columns(key: str, version: Version) -> tuple[str, ...]:
    """Columns whose value a row of ``key`` must have in ``version``."""
    order = VERSIONS.index(version)
    return tuple(
        c.name
        for c in SPECS[key].columns
        if c.required and VERSIONS.index(c.required_from) <= order
    )


# --------------------------------------------------------------------------- values


class BadValue(ValueError):
    """A value that does not parse; the message is the reason (it may quote the value)."""


@dataclass(frozen=True)
class ParseOptions:
    """How dates are read: extra strptime formats, the zone of date-times without an offset."""

    date_formats: tuple[str, ...] = ()
    time_zone: dt.tzinfo = dt.UTC


DEFAULT_OPTIONS: Final = ParseOptions()

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_USER_ID = re.compile(r"\{\s*([^:{}]+?)\s*:\s*([^{}]*?)\s*\}")


def split_list(raw: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def parse_datetime_ms(raw: str, options: ParseOptions = DEFAULT_OPTIONS) -> int:
    """Epoch milliseconds of an ISO 8601 dateTime (``2026-01-05T12:30:00.000Z``).

    A value without an offset is in the configured time zone (UTC by default, as OneRoster
    prescribes); a bare date is its midnight.
    """
    text = raw.strip()
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadValue(
            f"{raw!r} is not an ISO 8601 dateTime (like 2026-01-05T12:30:00.000Z)"
        ) from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=options.time_zone)
    return int(value.timestamp() * 1000)


def parse_date(raw: str, options: ParseOptions = DEFAULT_OPTIONS) -> dt.date:
    if len(raw) == 10 and raw[4] == "-" and raw[7] == "-" and raw[:4].isdigit():
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            pass
    if _DATE.fullmatch(raw):
        try:
            return dt.date.fromisoformat(raw)
        except ValueError:
            raise BadValue(f"{raw!r} is not a valid date") from None
    for fmt in options.date_formats:
        try:
            return dt.datetime.strptime(raw, fmt).date()
        except ValueError:
            continue
    accepted = ", ".join(("YYYY-MM-DD", *options.date_formats))
    raise BadValue(f"{raw!r} is not a date ({accepted})")


def parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low not in ("true", "false"):
        raise BadValue(f"{raw!r} is not true or false")
    return low == "true"


def parse_enum(raw: str, choices: Sequence[str]) -> str:
    if raw in choices or raw.startswith("ext:"):
        return raw
    for choice in choices:  # tolerate case differences, output the spec's spelling
        if choice.lower() == raw.lower():
            return choice
    raise BadValue(f"unknown value {raw!r} (expected one of {', '.join(choices)})")


def parse_user_ids(raw: str) -> tuple[str, ...]:
    """``{type:id},{type:id}`` -> ``("type:id", ...)``, types and ids stripped."""
    found = _USER_ID.findall(raw)
    rest = _USER_ID.sub("", raw).replace(",", "").strip()
    if rest or not found:
        raise BadValue(f"{raw!r} is not a list of {{type:id}} entries")
    return tuple(f"{kind}:{ident}" for kind, ident in found)


def parse_value(column: Column, raw: str, options: ParseOptions = DEFAULT_OPTIONS) -> Value:
    """Parse one non-empty raw value of ``column``; raise :class:`BadValue` with the reason."""
    match column.kind:
        case "text":
            return raw
        case "ids":
            return split_list(raw)
        case "bool":
            return parse_bool(raw)
        case "date":
            return parse_date(raw, options)
        case "enum":
            return parse_enum(raw, column.choices)
        case "userids":
            return parse_user_ids(raw)
        case "year":
            if not re.fullmatch(r"\d{4}", raw):
                raise BadValue(f"{raw!r} is not a year (YYYY)")
            return int(raw)
