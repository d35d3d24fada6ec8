"""Time-driven decisions: when something comes due with no event to carry it.

Consent grants and opt-outs that take effect later, expiries, a student's coming of age
(when guardian grants stop counting: scheduled by the handler from the record's birth date),
contract starts and ends and scheduled district opt-outs (and their lifts) act at their time
on every worker. Each
partition remembers the processing time up to which it acted (its ``clock`` in the tables,
written in the same transaction as what it caused); a timer fires for what came due after it.
Per-student due times live in a heap per partition, rebuilt after a restore from the due
times the consent table keeps beside each history (no history decoded); contract and
district dates are few and read from the contracts and the global district table.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence

from streams.policy.consent import DistrictState, StudentConsentHistory
from streams.processor.decider import PartnerRoute


class StudentTimers:
    """Per partition, a heap of (due time, student)."""

    def __init__(self) -> None:
        self._heaps: dict[int, list[tuple[int, str]]] = {}

    def schedule(self, partition: int, due_ms: int, student: str) -> None:
        heapq.heappush(self._heaps.setdefault(partition, []), (due_ms, student))

    def schedule_history(
        self, partition: int, student: str, history: StudentConsentHistory, after_ms: int
    ) -> None:
        """Every time at which ``history`` changes the student's status after ``after_ms``."""
        for event in history.events:
            for due in (event.effective_at, event.expires_at):
                if due is not None and due > after_ms:
                    self.schedule(partition, due, student)

    def drop(self, partition: int) -> None:
        self._heaps.pop(partition, None)

    def pop_due(self, partition: int, now_ms: int) -> dict[str, int]:
        """Students with something due at or before ``now_ms``: student -> earliest due."""
        heap = self._heaps.get(partition)
        due: dict[str, int] = {}
        while heap and heap[0][0] <= now_ms:
            at, student = heapq.heappop(heap)
            due.setdefault(student, at)
        return due

    def next_due(self) -> int | None:
        firsts = [heap[0][0] for heap in self._heaps.values() if heap]
        return min(firsts) if firsts else None


def contract_dates_due(
    routes: Sequence[PartnerRoute], after_ms: int, until_ms: int
) -> list[tuple[PartnerRoute, int]]:
    """Contract starts and ends in (after_ms, until_ms]."""
    return [
        (route, at)
        for route in routes
        for at in (route.contract.active_from_ms, route.contract.active_until_ms)
        if after_ms < at <= until_ms
    ]


def district_dates_due(
    districts: Mapping[str, DistrictState], after_ms: int, until_ms: int
) -> list[tuple[str, int]]:
    """Districts whose opt-outs start or end in (after_ms, until_ms], with the latest such
    time."""
    due: list[tuple[str, int]] = []
    for district, state in districts.items():
        times: Iterable[int | None] = (
            t for e in state.events for t in (e.effective_at, e.expires_at)
        )
        inside = [t for t in times if t is not None and after_ms < t <= until_ms]
        if inside:
            due.append((district, max(inside)))
    return due
