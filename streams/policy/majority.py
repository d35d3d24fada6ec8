"""The age of majority: when a student's FERPA rights pass from the parents to the student.

34 CFR 99.5(a): once a student reaches 18 (an *eligible student*), the rights of the parents
transfer to the student; a consent then has to come from the student. The age is 18 unless a
district is configured otherwise (``HALLPASS_AGE_OF_MAJORITY``: ``18``, or a default and
per-district ages such as ``18,NE-0101=19,MS-2501=21``).

The instant is midnight UTC at the start of the birthday (DESIGN, Time: decisions are taken
at processing time, a date is its midnight UTC, as ``streams.policy.instants`` reads dates);
a birthday on 29 February is reached on 1 March in a year that has no 29 February. A record
without a birth date has no such instant: the student is treated as a minor. Pure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streams.errors import HallpassError

ENV_AGE_OF_MAJORITY = "HALLPASS_AGE_OF_MAJORITY"
DEFAULT_MAJORITY_AGE = 18
#: the ages a district may set (US states: 18, 19 in Alabama and Nebraska, 21 in Mississippi)
MIN_AGE, MAX_AGE = 16, 21
_EPOCH_DAY = dt.date(1970, 1, 1)


class MajorityAgeError(HallpassError, ValueError):
    """``HALLPASS_AGE_OF_MAJORITY`` cannot be read; the message shows the accepted form."""


@dataclass(frozen=True)
class MajorityAges:
    """The age of majority of each district: ``default`` unless ``by_district`` names it."""

    default: int = DEFAULT_MAJORITY_AGE
    by_district: tuple[tuple[str, int], ...] = ()

    def age_for(self, district: str | None) -> int:
        return dict(self.by_district).get(district or "", self.default)


#: 18 in every district
DEFAULT_MAJORITY_AGES = MajorityAges()


def majority_ages_from(text: str | None) -> MajorityAges:
    """``18`` (every district), ``NY-1=19`` (one district, the others 18) or both, separated
    by commas: ``19,NY-1=18``."""
    raw = (text or "").strip()
    if not raw:
        return MajorityAges()
    default = DEFAULT_MAJORITY_AGE
    by_district: dict[str, int] = {}
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            continue
        district, _, age_text = part.rpartition("=")
        age = _age(age_text.strip(), raw)
        if district.strip():
            by_district[district.strip()] = age
        elif "=" in part:
            raise MajorityAgeError(_form(raw, "a district id before '='"))
        else:
            default = age
    return MajorityAges(default, tuple(sorted(by_district.items())))


def _age(text: str, raw: str) -> int:
    if not text.isdigit() or not MIN_AGE <= int(text) <= MAX_AGE:
        raise MajorityAgeError(_form(raw, f"an age from {MIN_AGE} to {MAX_AGE}"))
    return int(text)


def _form(raw: str, wanted: str) -> str:
    return (
        f"{ENV_AGE_OF_MAJORITY}={raw!r}: expected {wanted}; write a default age and/or "
        "district=age pairs separated by commas, e.g. 18 or 18,NE-0101=19"
    )


def majority_at(birth_date: int | dt.date | None, age: int) -> int | None:
    """Epoch milliseconds of midnight UTC on the ``age``-th birthday; None without a birth
    date. ``birth_date``: an Avro ``date`` (days since 1970-01-01) or a date."""
    if birth_date is None or isinstance(birth_date, bool):
        return None
    born = (
        birth_date
        if isinstance(birth_date, dt.date)
        else _EPOCH_DAY + dt.timedelta(days=int(birth_date))
    )
    year = born.year + age
    try:
        day = born.replace(year=year)
    except ValueError:  # 29 February in a year without one
        day = dt.date(year, 3, 1)
    return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)


def record_majority_at(record: Mapping[str, Any] | None, ages: MajorityAges) -> int | None:
    """When the student of a StudentRecordChanged value comes of age in its district (None:
    no record or no birth date)."""
    if record is None:
        return None
    demographics = record.get("demographics")
    born = demographics.get("birth_date") if isinstance(demographics, Mapping) else None
    if born is not None and not isinstance(born, int | dt.date):
        return None
    district = record.get("district_id")
    return majority_at(born, ages.age_for(district if isinstance(district, str) else None))
