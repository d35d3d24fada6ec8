"""Points in time as people write them: an ISO 8601 date or date-time, or epoch milliseconds.

A date is its midnight UTC; a date-time without an offset is UTC (say ``Z`` or ``+02:00`` to be
explicit). Pure.
"""

from __future__ import annotations

import datetime as dt

from streams.errors import HallpassError

FORMS = (
    "2026-09-01",
    "2026-09-01T08:30:00Z",
    "2026-09-01T08:30:00-04:00",
    "1788220800000 (epoch ms)",
)


class InstantError(HallpassError, ValueError):
    """A time that cannot be read; the message shows the accepted forms."""


def parse_instant(text: str) -> int:
    """Epoch milliseconds of ``text``."""
    raw = text.strip()
    if raw.lstrip("-").isdigit():
        return int(raw)
    try:
        if len(raw) == 10:
            day = dt.date.fromisoformat(raw)
            return int(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1000)
        moment = dt.datetime.fromisoformat(raw.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError as exc:
        raise InstantError(
            f"{text!r} is not a date or time: write one of {', '.join(FORMS)}"
        ) from exc
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1000)
