"""The processor's clock: decisions are taken at processing time, "now" is the wall clock.

An event's own timestamp never moves this clock (a row dated 2099 must not expire every
consent of its partition). Tests pass a :class:`ManualClock` to control time.
"""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Milliseconds since the Unix epoch (UTC)."""
        ...


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class ManualClock:
    """A clock that moves only when told to."""

    def __init__(self, now_ms: int) -> None:
        self._now = now_ms

    def now_ms(self) -> int:
        return self._now

    def set(self, now_ms: int) -> None:
        self._now = now_ms

    def advance(self, ms: int) -> None:
        self._now += ms


class MonotonicNow:
    """``clock`` that never goes back: a wall clock stepped backwards (NTP) must not revive a
    consent that already expired."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._last = 0

    def __call__(self) -> int:
        self._last = max(self._last, self.clock.now_ms())
        return self._last
