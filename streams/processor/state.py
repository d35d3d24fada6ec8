"""The processor's tables, in memory and in a compacted changelog topic.

Every change to a table is also produced to the changelog in the same Kafka transaction as
the outputs and the input offsets, so after a crash the restored tables match exactly what
was committed. Student tables are partitioned like the input topics (the state of input
partition p lives in changelog partition p); district opt-outs are a global table in a
one-partition topic that every worker reads whole.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from streams.consent import DistrictState, StudentConsentHistory
from streams.topics import PROCESSOR_DISTRICTS, PROCESSOR_STATE

STATE_TOPIC = PROCESSOR_STATE
DISTRICT_TOPIC = PROCESSOR_DISTRICTS

_CONSENT = b"c|"
_RECORD = b"r|"
_HOLDERS = b"p|"
_CLOCK = b"t|"


@dataclass(frozen=True)
class StateChange:
    """One table write, to be produced to the changelog (value None deletes)."""

    topic: str
    partition: int
    key: bytes
    value: bytes | None


@dataclass
class PartitionState:
    """The student tables of one input partition."""

    consent: dict[str, StudentConsentHistory] = field(default_factory=dict)
    #: student -> latest record, kept as its changelog bytes (JSON): a third of the memory
    #: of the decoded dicts, and restore needs no decoding; decoded when a decision needs it
    records: dict[str, bytes] = field(default_factory=dict)
    #: student -> partners that currently hold a record of that student
    holders: dict[str, frozenset[str]] = field(default_factory=dict)
    #: the partition's event-time clock (latest event time seen)
    clock: int = 0

    def record(self, student: str) -> dict[str, Any] | None:
        """The student's latest record, decoded (None if unknown or deleted)."""
        value = self.records.get(student)
        if value is None:
            return None
        record: dict[str, Any] = orjson.loads(value)
        return record

    def load(self, key: bytes, value: bytes | None) -> None:
        """Apply one changelog record during restore."""
        kind, student = key[:2], sys.intern(key[2:].decode())
        if kind == _CONSENT:
            if value is None:
                self.consent.pop(student, None)
            else:
                self.consent[student] = StudentConsentHistory.from_bytes(value)
        elif kind == _RECORD:
            if value is None:
                self.records.pop(student, None)
            else:
                self.records[student] = value
        elif kind == _CLOCK:
            self.clock = int(value or b"0")
        elif kind == _HOLDERS:
            if value is None:
                self.holders.pop(student, None)
            else:
                self.holders[student] = frozenset(orjson.loads(value))


class Tables:
    """All tables this worker owns, and the changelog writes a transaction must carry."""

    def __init__(self, state_topic: str = STATE_TOPIC,
                 district_topic: str = DISTRICT_TOPIC) -> None:
        self.state_topic = state_topic
        self.district_topic = district_topic
        self.partitions: dict[int, PartitionState] = {}
        self.districts: dict[str, DistrictState] = {}
        self._pending: list[StateChange] = []
        self._dirty_clocks: set[int] = set()

    def partition(self, number: int) -> PartitionState:
        state = self.partitions.get(number)
        if state is None:
            state = self.partitions[number] = PartitionState()
        return state

    def drop_partition(self, number: int) -> None:
        self.partitions.pop(number, None)

    def take_changes(self) -> list[StateChange]:
        self._flush_clocks()
        changes, self._pending = self._pending, []
        return changes

    # writes: memory first, then the changelog record for the same transaction
    def set_consent(self, partition: int, student: str, history: StudentConsentHistory) -> None:
        self.partition(partition).consent[student] = history
        self._pending.append(StateChange(self.state_topic, partition,
                                         _CONSENT + student.encode(), history.to_bytes()))

    def set_record(self, partition: int, student: str, record: dict[str, Any] | None) -> None:
        state = self.partition(partition)
        if record is None:
            state.records.pop(student, None)
            value = None
        else:
            value = orjson.dumps(record)
            state.records[student] = value
        self._pending.append(
            StateChange(self.state_topic, partition, _RECORD + student.encode(), value))

    def set_holders(self, partition: int, student: str, partners: frozenset[str]) -> None:
        state = self.partition(partition)
        if state.holders.get(student, frozenset()) == partners:
            return
        if partners:
            state.holders[student] = partners
            value: bytes | None = orjson.dumps(sorted(partners))
        else:
            state.holders.pop(student, None)
            value = None
        self._pending.append(
            StateChange(self.state_topic, partition, _HOLDERS + student.encode(), value)
        )

    def clock(self, partition: int) -> int:
        return self.partition(partition).clock

    def set_clock(self, partition: int, now: int) -> None:
        state = self.partition(partition)
        if now != state.clock:
            state.clock = now
            self._dirty_clocks.add(partition)

    def _flush_clocks(self) -> None:
        for number in sorted(self._dirty_clocks):
            value = str(self.partition(number).clock).encode()
            self._pending.append(StateChange(self.state_topic, number, _CLOCK, value))
        self._dirty_clocks.clear()

    def set_district(self, district: str, state: DistrictState) -> None:
        self.districts[district] = state
        self._pending.append(
            StateChange(self.district_topic, 0, district.encode(), state.to_bytes()))

    def load_district(self, key: bytes, value: bytes | None) -> None:
        if value is None:
            self.districts.pop(key.decode(), None)
        else:
            self.districts[key.decode()] = DistrictState.from_bytes(value)

    def students(self) -> Iterator[tuple[int, str]]:
        for number, state in self.partitions.items():
            for student in state.holders:
                yield number, student

    def consent_state_size(self) -> int:
        return sum(len(p.consent) for p in self.partitions.values())
