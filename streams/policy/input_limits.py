"""What a record must satisfy to enter the bus: the one place of the input limits.

The processor (:mod:`streams.processor.validate`) dead-letters a record that breaks one;
the connectors (OneRoster, Ed-Fi, the source publisher) reject the row with file, line,
field and reason. A reason names the field and the rule, never the value (a value may be a
name, or garbage with a never-share value in it).

* **ids** (student, district, school, event, guardian, section...): not empty, at most
  :data:`MAX_ID_CHARS` characters, no control characters (NUL, newline, tab, DEL, C1).
* **names** (any field whose name ends in ``name``): at most :data:`MAX_NAME_CHARS`.
* **other text**: at most :data:`MAX_TEXT_CHARS` characters, no NUL.
* **dates** (Avro ``date``: days since 1970-01-01) and **timestamps** (``timestamp-millis``):
  from :data:`MIN_DATE` to today + :data:`MAX_YEARS_AHEAD` years.
* **a whole record**: at most :data:`MAX_RECORD_BYTES` bytes as written on the topic.
* **districts**: when a list of known districts is configured (``HALLPASS_KNOWN_DISTRICTS``
  for the processor; the org data of a OneRoster package), a record of another district is
  refused; with none configured every district is accepted.
"""

from __future__ import annotations

import datetime as dt
import re

MAX_ID_CHARS = 64
MAX_NAME_CHARS = 256
MAX_TEXT_CHARS = 4096
MAX_RECORD_BYTES = 64 * 1024
MIN_DATE = dt.date(1900, 1, 1)
MAX_YEARS_AHEAD = 2
#: the environment variable of the processor's known districts (comma-separated ids)
ENV_KNOWN_DISTRICTS = "HALLPASS_KNOWN_DISTRICTS"

_EPOCH = dt.date(1970, 1, 1)
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def id_problem(value: object) -> str | None:
    """Why ``value`` is not a usable id, or None."""
    if not isinstance(value, str) or not value.strip():
        return "is empty"
    if _CONTROL.search(value):
        return "contains a control character"
    if len(value) > MAX_ID_CHARS:
        return f"is longer than {MAX_ID_CHARS} characters"
    return None


def is_name_field(name: str) -> bool:
    return name.endswith("name")


def text_problem(value: str, name_field: bool) -> str | None:
    """Why a text value (not an id) is refused, or None."""
    limit = MAX_NAME_CHARS if name_field else MAX_TEXT_CHARS
    if len(value) > limit:
        return f"is longer than {limit} characters"
    if "\x00" in value:
        return "contains a NUL character"
    return None


def latest_date(today: dt.date) -> dt.date:
    try:
        return today.replace(year=today.year + MAX_YEARS_AHEAD)
    except ValueError:  # 29 February
        return today.replace(year=today.year + MAX_YEARS_AHEAD, day=28)


def date_problem(value: dt.date, today: dt.date) -> str | None:
    """Why a date is outside the sane range, or None."""
    if value < MIN_DATE:
        return f"is before {MIN_DATE.isoformat()}"
    if value > latest_date(today):
        return f"is more than {MAX_YEARS_AHEAD} years ahead"
    return None


def days_problem(days: int, today: dt.date) -> str | None:
    """:func:`date_problem` of an Avro ``date`` (days since 1970-01-01)."""
    low = (MIN_DATE - _EPOCH).days
    high = (latest_date(today) - _EPOCH).days
    if days < low:
        return f"is before {MIN_DATE.isoformat()}"
    if days > high:
        return f"is more than {MAX_YEARS_AHEAD} years ahead"
    return None


def millis_problem(millis: int, today: dt.date) -> str | None:
    """:func:`date_problem` of a ``timestamp-millis``."""
    return days_problem(millis // 86_400_000, today)


def district_problem(district: object, known: frozenset[str]) -> str | None:
    """Why a district is refused (unknown), or None; nothing is known: every one is
    accepted."""
    if known and district not in known:
        return "is not a known district"
    return None


def known_districts_from(text: str | None) -> frozenset[str]:
    """``HALLPASS_KNOWN_DISTRICTS``: comma-separated district ids."""
    return frozenset(part.strip() for part in (text or "").split(",") if part.strip())


def today_utc(now_ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(now_ms / 1000, dt.UTC).date()
