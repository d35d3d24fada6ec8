"""The processor's tables, in memory and in a compacted changelog topic.

Every change to a table is also produced to the changelog in the same Kafka transaction as
the outputs and the input offsets, so after a crash the restored tables match exactly what
was committed. Student tables are partitioned like the input topics (the state of input
partition p lives in changelog partition p).

The global table (a one-partition compacted topic every worker reads whole at start and then
follows, as Kafka Streams' GlobalKTable) holds every district opt-out event, keyed by
district and event id so that writes from any worker merge and never overwrite each other,
and the fingerprint of each partner's pseudonym secret. Each partition also records which
district state it has applied to its students (``d|``), so a district event that a worker
followed but had not yet acted on before a crash is acted on after the restore.
"""

from __future__ import annotations

import struct
import sys
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson
import ormsgpack

from streams.kafka.names import PROCESSOR_DISTRICTS, PROCESSOR_STATE
from streams.policy.consent import ConsentEvent, DistrictState, StudentConsentHistory

STATE_TOPIC = PROCESSOR_STATE
DISTRICT_TOPIC = PROCESSOR_DISTRICTS

#: what partners hold of one student: (partner, view fingerprint, fields of that view that
#: carried a value or None if unknown), sorted by partner
Holdings = tuple[tuple[str, int, tuple[str, ...] | None], ...]
#: what one partner holds: (view fingerprint, fields or None)
Holding = tuple[int, tuple[str, ...] | None]
#: field lists are few (one per combination of permits and filled sections): kept once
_FIELD_LISTS: dict[tuple[str, ...], tuple[str, ...]] = {}
_MAX_FIELD_LISTS = 65_536


def shared_fields(fields: tuple[str, ...] | list[str] | None) -> tuple[str, ...] | None:
    """``fields`` as one shared tuple of interned strings (memory: millions of holdings)."""
    if fields is None:
        return None
    key = tuple(fields)
    found = _FIELD_LISTS.get(key)
    if found is None:
        found = tuple(sys.intern(f) for f in key)
        if len(_FIELD_LISTS) < _MAX_FIELD_LISTS:
            _FIELD_LISTS[found] = found
    return found


_CONSENT = b"c|"
_RECORD = b"r|"
_HOLDERS = b"p|"
_CLOCK = b"t|"
_APPLIED_DISTRICT = b"d|"
#: global table keys: a district opt-out event, a partner's pseudonym-secret fingerprint
_DISTRICT_EVENT = b"D|"
_FINGERPRINT = b"S|"
#: reserved key of a stored record: the ids of the events applied at its ``occurred_at``
SEEN_IDS = "hallpass_seen_event_ids"
#: first byte of a table value in the compact binary format (MessagePack after it). Values
#: written before it are JSON, which starts with ``{`` or ``[``, and are still read.
_BINARY = b"\x01"


def pack(value: Any) -> bytes:
    """A table value as stored in memory and on the changelog: binary (MessagePack) with
    strings as raw UTF-8, so a record is about 20% smaller than as JSON and a value JSON would
    escape (quotes, control characters: up to 6 bytes each) takes its own size."""
    return _BINARY + ormsgpack.packb(value)


def unpack(value: bytes) -> Any:
    """A table value from :func:`pack` or :func:`consent_value` (its history's rows), or
    from an older changelog (JSON)."""
    if value[:1] == _BINARY:
        return ormsgpack.unpackb(memoryview(value)[1:])
    if value[:1] == _CONSENT_FORMAT:
        return orjson.loads(memoryview(value)[_consent_body(value) :])
    return orjson.loads(value)


#: first byte of a consent history value: then the number of its events and of its due
#: times, the due times (every effective and expiry time of its events), then the history
#: (``StudentConsentHistory.to_bytes``). A restore schedules the timers from the due times
#: without decoding a history; histories written before it (JSON) are still read.
_CONSENT_FORMAT = b"\x02"
_CONSENT_HEAD = struct.Struct(">cHH")
_DUE = struct.Struct(">q")


def consent_value(history: StudentConsentHistory) -> bytes:
    """A consent history as the consent table keeps it and its changelog holds it."""
    dues = sorted(
        {t for e in history.events for t in (e.effective_at, e.expires_at) if t is not None}
    )
    head = _CONSENT_HEAD.pack(_CONSENT_FORMAT, len(history.events), len(dues))
    return head + b"".join(_DUE.pack(t) for t in dues) + history.to_bytes()


def _consent_body(value: bytes) -> int:
    dues: int = _CONSENT_HEAD.unpack_from(value)[2]
    return _CONSENT_HEAD.size + dues * _DUE.size


def consent_history(value: bytes) -> StudentConsentHistory:
    """The history of a consent table value (or of an older changelog's JSON)."""
    if value[:1] == _CONSENT_FORMAT:
        return StudentConsentHistory.from_bytes(value[_consent_body(value) :])
    return StudentConsentHistory.from_bytes(value)


class ConsentTable(MutableMapping[str, StudentConsentHistory]):
    """student -> consent history, each kept as its changelog bytes (:func:`consent_value`)
    and decoded when a decision asks for it: a million students' histories take a fraction
    of the memory of their objects, and a restore decodes none."""

    __slots__ = ("_decoded", "_raw")

    #: decoded histories kept for the students asked for lately (a change event asks for
    #: its student's history more than once); emptied when full
    DECODED = 4096

    def __init__(self) -> None:
        self._raw: dict[str, bytes] = {}
        self._decoded: dict[str, tuple[bytes, StudentConsentHistory]] = {}

    def __getitem__(self, student: str) -> StudentConsentHistory:
        return self._history(student, self._raw[student])

    def get(self, student: str, default: Any = None) -> Any:
        value = self._raw.get(student)
        return default if value is None else self._history(student, value)

    def _history(self, student: str, value: bytes) -> StudentConsentHistory:
        found = self._decoded.get(student)
        if found is not None and found[0] is value:
            return found[1]
        history = consent_history(value)
        if len(self._decoded) >= self.DECODED:
            self._decoded.clear()
        self._decoded[student] = (value, history)
        return history

    def __setitem__(self, student: str, history: StudentConsentHistory) -> None:
        self._raw[student] = consent_value(history)

    def __delitem__(self, student: str) -> None:
        del self._raw[student]

    def __contains__(self, student: object) -> bool:
        return student in self._raw

    def __iter__(self) -> Iterator[str]:
        return iter(self._raw)

    def __len__(self) -> int:
        return len(self._raw)

    def raw(self, student: str) -> bytes | None:
        return self._raw.get(student)

    def put_raw(self, student: str, value: bytes | None) -> None:
        """Keep ``value`` as it is (None removes the student)."""
        if value is None:
            self._raw.pop(student, None)
        else:
            self._raw[student] = value

    def dues(self) -> Iterator[tuple[str, int, tuple[int, ...]]]:
        """Per student, the number of events and every due time of its history, read from
        the value's head (older values are decoded)."""
        for student, value in self._raw.items():
            if value[:1] == _CONSENT_FORMAT:
                _, events, count = _CONSENT_HEAD.unpack_from(value)
                at = _CONSENT_HEAD.size
                times = struct.unpack_from(f">{count}q", value, at) if count else ()
                yield student, events, times
            else:
                history = consent_history(value)
                times = tuple(
                    sorted(
                        {
                            t
                            for e in history.events
                            for t in (e.effective_at, e.expires_at)
                            if t is not None
                        }
                    )
                )
                yield student, len(history.events), times


def _district_needles(district: str) -> tuple[bytes, bytes]:
    """What a stored record of ``district`` contains, packed and as older JSON."""
    return (
        ormsgpack.packb("district_id") + ormsgpack.packb(district),
        b'"district_id":' + orjson.dumps(district),
    )


@dataclass(frozen=True)
class StateChange:
    """One table write, to be produced to the changelog (value None deletes)."""

    topic: str
    partition: int
    key: bytes
    value: bytes | None


@dataclass(frozen=True)
class Mark:
    """A point in the table writes to roll back to (:meth:`Tables.rollback`)."""

    journal: int
    pending: int


@dataclass
class PartitionState:
    """The student tables of one input partition."""

    consent: ConsentTable = field(default_factory=ConsentTable)
    #: student -> latest record, kept as its changelog bytes (:func:`pack`): a fraction of the
    #: memory of the decoded dicts, and restore needs no decoding; decoded when a decision
    #: needs it
    records: dict[str, bytes] = field(default_factory=dict)
    #: student -> what each partner holding a record of the student holds: (partner, view
    #: fingerprint, fields) sorted by partner (fingerprint 0 and fields None: unknown, from
    #: an older changelog)
    holders: dict[str, Holdings] = field(default_factory=dict)
    #: processing time up to which timers (expiries, contract and district dates) have been
    #: acted on for this partition
    clock: int = 0
    #: district -> the district state this partition's students were last decided against
    district_applied: dict[str, DistrictState] = field(default_factory=dict)

    def stored(self, student: str) -> dict[str, Any] | None:
        """The student's stored record, decoded: the latest change applied, or a DELETE
        marker (``operation`` DELETE) that keeps the student deleted; None if unknown."""
        value = self.records.get(student)
        if value is None:
            return None
        record: dict[str, Any] = unpack(value)
        return record

    def record(self, student: str) -> dict[str, Any] | None:
        """The student's latest record, decoded (None if unknown or deleted)."""
        record = self.stored(student)
        if record is None or record.get("operation") == "DELETE":
            return None
        return record

    def students_of_district(self, district: str) -> list[str]:
        """The students whose latest record (not deleted) is in ``district``."""
        packed, json = _district_needles(district)
        found = []
        for student, value in self.records.items():
            if packed in value or json in value:
                record = unpack(value)
                if record.get("district_id") == district and record.get("operation") != "DELETE":
                    found.append(student)
        return found

    def load(self, key: bytes, value: bytes | None) -> None:
        """Apply one changelog record during restore."""
        kind, student = key[:2], sys.intern(key[2:].decode())
        if kind == _CONSENT:
            if value is None:
                self.consent.put_raw(student, None)
            else:
                self.consent.put_raw(student, value)
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
                self.holders[student] = _holdings(unpack(value))
        elif kind == _APPLIED_DISTRICT:
            if value is None:
                self.district_applied.pop(student, None)
            else:
                self.district_applied[student] = DistrictState.from_bytes(value)


class Tables:
    """All tables this worker owns, and the changelog writes a transaction must carry."""

    def __init__(
        self, state_topic: str = STATE_TOPIC, district_topic: str = DISTRICT_TOPIC
    ) -> None:
        self.state_topic = state_topic
        self.district_topic = district_topic
        self.partitions: dict[int, PartitionState] = {}
        #: the global table: every district's opt-out events, merged
        self.districts: dict[str, DistrictState] = {}
        #: the global table: partner -> fingerprint of the bus's pseudonym secret
        self.fingerprints: dict[str, str] = {}
        #: bumped whenever the global district table changes (workers compare with it)
        self.districts_version = 0
        self._pending: list[StateChange] = []
        self._dirty_clocks: set[int] = set()
        #: how to undo each write since the last :meth:`forget` (newest last): a record that
        #: fails half-way and an aborted transaction leave the tables as they were
        self._journal: list[Callable[[], None]] = []

    # -- undo --------------------------------------------------------------------------------
    def mark(self) -> Mark:
        return Mark(len(self._journal), len(self._pending))

    def changes_since(self, mark: Mark) -> list[StateChange]:
        return self._pending[mark.pending :]

    def rollback(self, mark: Mark | None = None) -> None:
        """Undo every write since ``mark`` (None: since the last :meth:`forget`, and drop
        every changelog write not yet committed)."""
        stop = mark.journal if mark is not None else 0
        while len(self._journal) > stop:
            self._journal.pop()()
        if mark is None:
            self._pending = []
            self._dirty_clocks.clear()
        else:
            del self._pending[mark.pending :]

    def forget(self) -> None:
        """The writes so far are committed: nothing before now can be rolled back."""
        self._journal.clear()

    def _remember(self, table: dict[Any, Any], key: Any) -> None:
        if key in table:
            old = table[key]
            self._journal.append(lambda: table.__setitem__(key, old))
        else:
            self._journal.append(lambda: table.pop(key, None))

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
        table = self.partition(partition).consent
        old = table.raw(student)
        self._journal.append(lambda: table.put_raw(student, old))
        value = consent_value(history)
        table.put_raw(student, value)
        self._pending.append(
            StateChange(self.state_topic, partition, _CONSENT + student.encode(), value)
        )

    def set_record(self, partition: int, student: str, record: dict[str, Any]) -> None:
        """Store the student's latest record (a DELETE marker for a deleted student)."""
        state = self.partition(partition)
        value = pack(record)
        self._remember(state.records, student)
        state.records[student] = value
        self._pending.append(
            StateChange(self.state_topic, partition, _RECORD + student.encode(), value)
        )

    def set_district_applied(self, partition: int, district: str, state: DistrictState) -> None:
        self._remember(self.partition(partition).district_applied, district)
        self.partition(partition).district_applied[district] = state
        self._pending.append(
            StateChange(
                self.state_topic, partition, _APPLIED_DISTRICT + district.encode(), state.to_bytes()
            )
        )

    def set_holders(self, partition: int, student: str, held: Mapping[str, Holding]) -> None:
        state = self.partition(partition)
        partners = tuple(
            sorted((sys.intern(p), h[0], shared_fields(h[1])) for p, h in held.items())
        )
        if state.holders.get(student, ()) == partners:
            return
        self._remember(state.holders, student)
        if partners:
            state.holders[student] = partners
            value: bytes | None = pack([list(entry) for entry in partners])
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
            old, dirty = state.clock, partition in self._dirty_clocks

            def undo() -> None:
                state.clock = old
                if not dirty:
                    self._dirty_clocks.discard(partition)

            self._journal.append(undo)
            state.clock = now
            self._dirty_clocks.add(partition)

    def _flush_clocks(self) -> None:
        for number in sorted(self._dirty_clocks):
            value = str(self.partition(number).clock).encode()
            self._pending.append(StateChange(self.state_topic, number, _CLOCK, value))
        self._dirty_clocks.clear()

    def add_district_event(self, event: ConsentEvent) -> bool:
        """Merge a district opt-out event into the global table and write it there; False
        when the table already had it."""
        before = self.districts.get(event.district_id, DistrictState())
        after = before.apply(event)
        if after is before:
            return False
        self._remember(self.districts, event.district_id)
        self._journal.append(self._bump_districts_version)  # undone is changed too
        self.districts[event.district_id] = after
        self.districts_version += 1
        self._pending.append(
            StateChange(
                self.district_topic,
                0,
                district_event_key(event),
                DistrictState((event,)).to_bytes(),
            )
        )
        return True

    def _bump_districts_version(self) -> None:
        self.districts_version += 1

    def merge_districts(self, state: DistrictState) -> bool:
        """Merge district events already on the global topic (no write); True if new."""
        changed = False
        for event in state.events:
            before = self.districts.get(event.district_id, DistrictState())
            after = before.apply(event)
            if after is not before:
                self.districts[event.district_id] = after
                changed = True
        if changed:
            self.districts_version += 1
        return changed

    def load_global(self, key: bytes, value: bytes | None) -> bool:
        """Apply one record of the global table (restore or follow); True if it changed
        anything. Writes of every worker merge: a district's state is the union of its
        events, whatever order they are read in."""
        if value is None:
            return False
        if key.startswith(_FINGERPRINT):
            partner, fingerprint = key[2:].decode(), str(orjson.loads(value)["fingerprint"])
            changed = self.fingerprints.get(partner) != fingerprint
            self.fingerprints[partner] = fingerprint
            return changed
        # a district event (``D|district|event``), or a whole district state (older format,
        # keyed by the district id alone)
        return self.merge_districts(DistrictState.from_bytes(value))


def district_event_key(event: ConsentEvent) -> bytes:
    return _DISTRICT_EVENT + f"{event.district_id}|{event.event_id}".encode()


def fingerprint_key(partner: str) -> bytes:
    return _FINGERPRINT + partner.encode()


def fingerprint_value(fingerprint: str) -> bytes:
    return orjson.dumps({"fingerprint": fingerprint})


def _holdings(stored: list[Any]) -> Holdings:
    """Holdings from the changelog: [[partner, fingerprint, fields], ...], or an older format:
    [[partner, fingerprint], ...] (fields unknown) or a list of partners (fingerprint 0)."""
    entries: list[tuple[str, int, tuple[str, ...] | None]] = []
    for p in stored:
        if isinstance(p, str):
            entries.append((sys.intern(p), 0, None))
        else:
            fields = shared_fields(p[2]) if len(p) > 2 and p[2] is not None else None
            entries.append((sys.intern(str(p[0])), int(p[1]), fields))
    return tuple(sorted(entries, key=lambda e: e[0]))


def holdings_by_partner(holdings: Holdings) -> dict[str, Holding]:
    """partner -> what it holds, as the handler works with it."""
    return {partner: (fingerprint, fields) for partner, fingerprint, fields in holdings}
