"""The simulated school calendar: school days and event timestamps (epoch milliseconds, UTC).

Nothing here reads the clock: the simulation is a pure function of its seed and start date.
Times of day are expressed as minutes after local midnight of a district in US Eastern time,
converted with a fixed offset (UTC-4 in the fall, UTC-5 after the first Sunday of November).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Final

#: First day of the simulated school year (the Tuesday after Labor Day 2026).
DEFAULT_START: Final[date] = date(2026, 9, 8)

#: End of the school year; consents granted "for the year" expire then.
DEFAULT_YEAR_END: Final[date] = date(2027, 6, 30)

#: Days without school in 2026-27 (a typical New York calendar: Columbus/Indigenous Peoples'
#: Day, Election Day, Veterans Day, Thanksgiving, winter recess, MLK Day, mid-winter recess,
#: spring recess, Memorial Day).
HOLIDAYS: Final[frozenset[date]] = frozenset(
    [
        date(2026, 10, 12),
        date(2026, 11, 3),
        date(2026, 11, 11),
        date(2026, 11, 26),
        date(2026, 11, 27),
        date(2027, 1, 18),
        date(2027, 5, 31),
    ]
    + [date(2026, 12, 24) + timedelta(days=i) for i in range(10)]
    + [date(2027, 2, 15) + timedelta(days=i) for i in range(5)]
    + [date(2027, 4, 19) + timedelta(days=i) for i in range(5)]
)

_EPOCH: Final[datetime] = datetime(1970, 1, 1, tzinfo=UTC)


def school_days(start: date, count: int) -> list[date]:
    """``count`` school days from ``start`` (included if it is one): weekdays, not holidays."""
    days: list[date] = []
    day = start
    while len(days) < count:
        if day.weekday() < 5 and day not in HOLIDAYS:
            days.append(day)
        day += timedelta(days=1)
    return days


def _utc_offset_hours(day: date) -> int:
    # US Eastern: daylight time until the first Sunday of November, from the second Sunday
    # of March. Good enough for timestamps that only need to look plausible and be stable.
    nov_first_sunday = date(day.year, 11, 1) + timedelta(days=(6 - date(day.year, 11, 1).weekday()))
    march_second_sunday = date(day.year, 3, 1) + timedelta(
        days=(6 - date(day.year, 3, 1).weekday()) + 7
    )
    daylight = march_second_sunday <= day < nov_first_sunday
    return 4 if daylight else 5


def day_start_ms(day: date) -> int:
    """Epoch milliseconds of local midnight of ``day`` (US Eastern)."""
    midnight = datetime(day.year, day.month, day.day, tzinfo=UTC)
    offset = timedelta(hours=_utc_offset_hours(day))
    return (midnight + offset - _EPOCH) // timedelta(milliseconds=1)


def at_ms(day: date, minute_of_day: float) -> int:
    """Epoch milliseconds of ``minute_of_day`` minutes after local midnight of ``day``."""
    return day_start_ms(day) + int(minute_of_day * 60_000)


def date_ms(day: date) -> int:
    """Epoch milliseconds of UTC midnight of ``day`` (Avro ``date`` values are days, not ms)."""
    return (datetime(day.year, day.month, day.day, tzinfo=UTC) - _EPOCH) // timedelta(
        milliseconds=1
    )


def epoch_days(day: date) -> int:
    """Days since 1970-01-01 (the Avro ``date`` logical type)."""
    return (day - date(1970, 1, 1)).days
