"""A realistic SIS: a simulated district and its stream of student record and consent changes.

``simulate(students, seed, days)`` builds one district (or ``districts`` of them) as it stands
on the first day of the 2026-27 school year, yields the consents already on file and one full
``StudentRecordChanged`` snapshot per student, then simulates ``days`` school days: attendance,
benchmark/state tests, report cards, discipline, school moves, withdrawals (DELETE), new
students, contact and status updates, and consent decisions (health consents granted and
revoked, partner, all-sharing and directory opt-outs; with two or more districts the second
opts out of ``measurely`` half-way through). Every UPSERT carries the whole current record.

The output is a pure function of the arguments: same seed, same events, byte for byte. Values
are plain dicts ready for the Avro serializer (``schemas/student_record_changed.avsc`` on
``sis.student.changes``, ``schemas/consent_changed.avsc`` on ``consent.events``). They are
read-only: unchanged sections are shared between successive events of a student.

Proportions, rates and their public sources: :mod:`connectors.simulation.rates`.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import date

from connectors.simulation.calendar import DEFAULT_START
from connectors.simulation.changes import CHANGES_TOPIC, CONSENT_TOPIC, Engine, SimEvent
from connectors.simulation.consent import CAREWELL, LEARNWELL, MEASURELY, PARTNERS
from connectors.simulation.district import District, build_districts, build_world

__all__ = [
    "CAREWELL",
    "CHANGES_TOPIC",
    "CONSENT_TOPIC",
    "DEFAULT_SOURCE_SYSTEM",
    "DEFAULT_START",
    "LEARNWELL",
    "MEASURELY",
    "PARTNERS",
    "District",
    "SimEvent",
    "build_districts",
    "simulate",
]

DEFAULT_SOURCE_SYSTEM = "sis-simulator"


def simulate(
    students: int,
    seed: int,
    days: int,
    *,
    districts: int = 1,
    start: date = DEFAULT_START,
    source_system: str = DEFAULT_SOURCE_SYSTEM,
) -> Iterator[SimEvent]:
    """Yield the events of a simulated school year start, then of ``days`` school days.

    ``students`` are split evenly across ``districts``; ``start`` is the first school day
    (timestamps are epoch milliseconds, US Eastern school hours). Raises ``ValueError`` for a
    negative ``students`` or ``days`` or fewer than one district.
    """
    if days < 0:
        raise ValueError("days must be >= 0")
    rng = random.Random(seed)
    world = build_world(rng, students, districts, start)
    engine = Engine(world, rng, days=days, source_system=source_system)
    yield from engine.initial()
    for index in range(days):
        yield from engine.day(index)
