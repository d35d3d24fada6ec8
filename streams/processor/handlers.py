"""What the processor does with one input record, a timer or a followed district event:
partner views, tombstones, deletion notices, audit records and table writes. Kafka-free:
the loop hands in records and produces what comes back.

* **Processing time.** Every decision is taken at "now", the wall clock (a ``Clock``, so
  tests control it). Effective times order consent events and take effect when they come
  due; an event's own time never moves the clock. A change dated further ahead than
  ``future_skew_ms`` is a dead letter.
* **Routing.** A student's changes and consent events are decided on the partition Kafka's
  default (murmur2) partitioner gives the student id (a district event: the district id),
  whatever client wrote them; a record that arrived on another partition is forwarded there
  through the repartition topic. A record whose key is not that id is a dead letter.
* **Per student**, a change older than the newest one applied is not applied, a change seen
  before (same event id) is decided once, and a deleted student stays deleted until a newer
  change.
* **Nothing sent when nothing changed for the partner.** A change event sends a partner its
  view only when it differs from the one it holds (a re-send would tell it that something
  outside its contract changed); the ledger records disclosures, retractions and withholdings
  for a privacy reason, and the rest is counted (``Counters.unchanged``).
* **Age of majority.** A student's guardian grants stop counting at the instant the student
  comes of age (``HandlerSettings.majority_ages``, from the birth date of the latest record:
  ``streams.policy.majority``); a timer is scheduled then for every student with a record
  and a consent history, so partners lose what a guardian's consent gave them on the
  birthday even when no event arrives (reason MAJORITY_REACHED).
* **Reconciling.** Consent events, timers (``tick``) and district events followed from the
  global table decide again and send only what changes what a partner holds (each holding is
  kept as a fingerprint of the view sent).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.kafka.names import CHANGES, DEFAULT_TOPICS, Topics, notices_topic
from streams.kafka.wire import RegistryUnavailable, WireFormatError
from streams.policy.consent import ConsentEvent, DistrictState, StudentConsentHistory
from streams.policy.decision import Decision, Disclosed, Withheld, WithheldReason
from streams.policy.input_limits import MAX_RECORD_BYTES as MAX_INPUT_BYTES
from streams.policy.majority import DEFAULT_MAJORITY_AGES, MajorityAges, record_majority_at
from streams.policy.schema_walk import holders, last_name
from streams.processor.clock import Clock, MonotonicNow, WallClock
from streams.processor.decider import (
    DecisionInputs,
    Encode,
    PartnerRoute,
    decide_at,
    held_differs,
    inputs_at,
    withdrawn_fields,
)
from streams.processor.dlq import DlqLimit, InvalidMessage, TooManyInvalidError
from streams.processor.emitter import Counters, Emitter, Subject
from streams.processor.messages import TIMER, Message, Origin, Output, header
from streams.processor.routing import partition_for
from streams.processor.state import SEEN_IDS, Holding, Tables, holdings_by_partner
from streams.processor.timers import StudentTimers, contract_dates_due, district_dates_due
from streams.processor.validate import change_rules, consent_refused, record_checker

Decode = Callable[[bytes | None], dict[str, Any]]
log = logging.getLogger("hallpass.processor")
#: the largest record (key, value and headers) the processor writes: the producer refuses
#: one over its ``message.max.bytes`` (1,000,000) and the broker one over the topic's
#: ``max.message.bytes`` (1 MiB); a change that would need a larger one is a dead letter
MAX_RECORD_BYTES = 990_000

_OVERSIZED = f"oversized: the record is larger than {MAX_INPUT_BYTES} bytes"
#: headers of a forwarded record: which input it came from, and where it was
SOURCE_HEADER = "hallpass.source"
ORIGIN_HEADER = "hallpass.origin"
_SOURCE_CHANGES = b"changes"
_SOURCE_CONSENT = b"consent"
_DAY_MS = 86_400_000
#: a student's consent history is compacted up to this long before its partition's clock
#: (the time up to which timers acted): decisions from then on are as with the whole history,
#: also on a worker whose wall clock lags the one that moved the partition's clock
_COMPACT_MARGIN_MS = _DAY_MS


@dataclass(frozen=True)
class Codecs:
    decode_change: Decode
    decode_consent: Decode
    encode_audit: Encode
    encode_notice: Encode
    #: a decoded change (never-share fields stripped) encoded again as its original bytes
    #: were, for the dead-letter topic; None: such a dead letter keeps no body at all
    encode_dead_change: Callable[[bytes | None, Mapping[str, Any]], bytes] | None = None
    #: look up (and cache) the writer schema a change or a consent event needs, before
    #: anything is decided; raise ``RegistryUnavailable`` when the registry does not answer
    prefetch_change: Callable[[bytes | None], None] | None = None
    prefetch_consent: Callable[[bytes | None], None] | None = None
    #: was a change (already decoded) written with exactly the student schema? Its types
    #: are then the schema's by construction and are not checked again; None: always check
    change_conforms: Callable[[bytes | None], bool] | None = None


@dataclass(frozen=True)
class HandlerSettings:
    #: partitions of the inputs (and of the state changelog and the repartition topic)
    partitions: int = 3
    #: a change dated further ahead of the processing clock than this is a dead letter
    future_skew_ms: int = _DAY_MS
    never_share: Sequence[str] = field(default_factory=tuple)
    topics: Topics = DEFAULT_TOPICS
    #: field path -> data category of the student schema (names what a notice withdraws)
    field_categories: Mapping[str, str] = field(default_factory=dict)
    #: the student schema every change must fit (a record decoded with another writer schema
    #: may not); None: not checked
    change_schema: Mapping[str, Any] | None = None
    #: the largest record the processor writes (outputs and table changes of one input)
    max_record_bytes: int = MAX_RECORD_BYTES
    #: districts a record may belong to (``HALLPASS_KNOWN_DISTRICTS``); empty: any
    known_districts: frozenset[str] = frozenset()
    #: the age of majority per district (``HALLPASS_AGE_OF_MAJORITY``; default 18)
    majority_ages: MajorityAges = DEFAULT_MAJORITY_AGES


def strip_paths(record: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """Set the leaves at ``paths`` (``a.b``, ``a[].b``) to None, in place; returns record."""
    for path in paths:
        name = last_name(path)
        for holder in holders(record, path):
            if isinstance(holder, dict) and name in holder:
                holder[name] = None
    return record


class Rejected(Exception):
    """An input record that is decodable but must not be decided: a dead letter. ``record``:
    the decoded change, whose never-share fields are stripped before it is dead-lettered."""

    def __init__(self, reason: str, record: dict[str, Any] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.record = record


@dataclass(frozen=True, slots=True)
class _Input:
    """A decoded input record and where it is decided."""

    change: dict[str, Any] | None
    consent: ConsentEvent | None
    routing_key: str
    origin: Origin


class BusHandler:
    """Turns change and consent events, timers and district events into each partner's
    view, retractions and audit records."""

    def __init__(
        self,
        routes: Sequence[PartnerRoute],
        codecs: Codecs,
        settings: HandlerSettings = HandlerSettings(),
        clock: Clock | None = None,
        dlq_limit: DlqLimit | None = None,
    ) -> None:
        self.routes = list(routes)
        self.codecs = codecs
        self.settings = settings
        self.topics = settings.topics
        self.never_share = list(settings.never_share)
        #: the settings of each input partition's limit on invalid records
        self.dlq_limit = dlq_limit or DlqLimit()
        self._limits: dict[tuple[str, int], DlqLimit] = {}
        self._reasons: dict[tuple[str, int], collections.Counter[str]] = {}
        #: input partitions whose recent records were mostly invalid -> why: the loop pauses
        #: them (the others go on); cleared with :meth:`resume`
        self.halted: dict[tuple[str, int], str] = {}
        self.now = MonotonicNow(clock or WallClock())
        self.counters = Counters()
        self.emitter = Emitter(
            self.topics,
            codecs.encode_audit,
            codecs.encode_notice,
            self.now,
            self.counters,
            settings.field_categories,
        )
        self.timers = StudentTimers()
        self._misfit = (
            record_checker(settings.change_schema) if settings.change_schema is not None else None
        )
        #: the input rules (ids, dates, sizes, districts: streams.policy.input_limits)
        self._refused = (
            change_rules(settings.change_schema, settings.known_districts)
            if settings.change_schema is not None
            else None
        )
        #: per partition, the global district table version it was reconciled with
        self._districts_seen: dict[int, int] = {}

    # -- entry points ------------------------------------------------------------------------
    def prepare(self, batch: Sequence[Message]) -> None:
        """Before a batch is decided: look up the schemas its records need. Raises
        ``RegistryUnavailable`` (the loop waits and tries again; nothing is decided)."""
        for msg in batch:
            topic = msg.topic()
            consent = topic == self.topics.consent or (
                topic == self.topics.repartition and header(msg, SOURCE_HEADER) == _SOURCE_CONSENT
            )
            prefetch = self.codecs.prefetch_consent if consent else self.codecs.prefetch_change
            if prefetch is not None:
                prefetch(msg.value())

    def handle(self, msg: Message, tables: Tables) -> list[Output]:
        """One input record: what to produce, or its dead letter. Whatever goes wrong with
        the record, its table writes are undone and it is a dead letter with the reason; only
        an unanswered registry (``RegistryUnavailable``) is raised: a wait, not bad input."""
        mark = tables.mark()
        try:
            outputs = self._handle(msg, tables)
        except RegistryUnavailable:
            tables.rollback(mark)
            raise
        except Exception as exc:  # every per-record failure is a dead letter with a reason
            tables.rollback(mark)
            return self._dead_letter(msg, exc)
        self._limit(msg).record(True)
        return outputs

    def resume(self, topic: str, partition: int) -> None:
        """Forget that ``topic``[``partition``] was halted (and its recent records)."""
        for table in (self.halted, self._limits, self._reasons):
            table.pop((topic, partition), None)

    def _limit(self, msg: Message) -> DlqLimit:
        where = (msg.topic() or "", msg.partition() or 0)
        found = self._limits.get(where)
        if found is None:
            found = self._limits[where] = dataclasses.replace(self.dlq_limit)
        return found

    def _handle(self, msg: Message, tables: Tables) -> list[Output]:
        decoded = self._decode(msg)
        target = partition_for(decoded.routing_key.encode(), self.settings.partitions)
        if target != (msg.partition() or 0):
            return [self._forward(msg, decoded, target)]
        now = self.now()
        mark = tables.mark()
        try:
            if decoded.consent is not None:
                self.counters.consent_events += 1
                outputs = self._on_consent(decoded.consent, decoded.origin, target, tables, now)
            else:
                assert decoded.change is not None
                self.counters.changes += 1
                outputs = self._on_change(decoded.change, decoded.origin, target, tables, now)
            self._check_sizes(outputs, tables.changes_since(mark))
        except (RegistryUnavailable, Rejected):
            raise
        except Exception as exc:
            raise Rejected(
                _failure("the record could not be decided", exc), decoded.change
            ) from exc
        return outputs

    def _check_sizes(self, outputs: Sequence[Output], changes: Sequence[Any]) -> None:
        limit = self.settings.max_record_bytes
        for out in outputs:
            size = _size(out.key, out.value, out.headers)
            if size > limit:
                raise Rejected(
                    f"too_large: its record on {out.topic} would be {size} bytes, "
                    f"over the {limit}-byte limit of a record"
                )
        for change in changes:
            size = _size(change.key, change.value, None)
            if size > limit:
                raise Rejected(
                    f"too_large: its table entry on {change.topic} would be "
                    f"{size} bytes, over the {limit}-byte limit of a record"
                )

    def on_batch_end(self, tables: Tables) -> list[Output]:
        """After a batch: act on district events this worker wrote or followed."""
        return self._reconcile_districts(tables, self.now())

    def tick(self, tables: Tables) -> list[Output]:
        """Act on what came due (timers) and on followed district events; call it at least
        every few seconds, also when no record arrives."""
        now = self.now()
        outputs: list[Output] = []
        for number in sorted(tables.partitions):
            outputs.extend(self._fire_timers(number, tables, now))
        outputs.extend(self._reconcile_districts(tables, now))
        return outputs

    def on_restored(self, tables: Tables) -> None:
        """Rebuild what is derived from the tables (timer heaps) after a restore."""
        for number, state in tables.partitions.items():
            # from the due times kept beside each history: no history is decoded
            self.timers.drop(number)
            for student, events, dues in state.consent.dues():
                for due in dues:
                    if due > state.clock:
                        self.timers.schedule(number, due, student)
                if events and student in state.records:
                    majority = self._majority_at(state.record(student))
                    if majority is not None and majority > state.clock:
                        self.timers.schedule(number, majority, student)
            self._districts_seen.pop(number, None)
            # a partition taken over from a worker further along the global table: what it
            # already acted on is on the global topic, so this worker knows it now instead
            # of deciding its students with an older district state until it follows there
            for district in state.district_applied.values():
                tables.merge_districts(district)

    def on_revoked(self, partitions: Sequence[int]) -> None:
        for number in partitions:
            self.timers.drop(number)
            self._districts_seen.pop(number, None)

    # -- decoding and routing ----------------------------------------------------------------
    def _decode(self, msg: Message) -> _Input:
        topic = msg.topic() or ""
        origin = Origin(topic, msg.partition() or 0, msg.offset() or 0)
        if topic == self.topics.repartition:
            source = header(msg, SOURCE_HEADER)
            origin = _origin_of(header(msg, ORIGIN_HEADER)) or origin
            is_consent = source == _SOURCE_CONSENT
            if source not in (_SOURCE_CHANGES, _SOURCE_CONSENT):
                raise Rejected("invalid: a forwarded record without its source header")
        else:
            is_consent = topic == self.topics.consent
        key = msg.key()
        if is_consent:
            event = ConsentEvent.from_avro(self.codecs.decode_consent(msg.value()))
            self._door_consent(event, len(msg.value() or b""))
            routing = event.district_id if event.is_district_event else (event.student_id or "")
            what = "district_id" if event.is_district_event else "student_id"
            if key is None or key != routing.encode():
                raise Rejected(
                    f"invalid: the record key is not the event's {what} (a "
                    "student's events must be keyed by its id)"
                )
            return _Input(None, event, routing, origin)
        value = msg.value()
        change = self.codecs.decode_change(value)
        self._door_change(change, len(value or b""))
        conforms = self.codecs.change_conforms
        try:
            return self._checked_change(
                change, key, origin, typed=conforms is not None and conforms(value)
            )
        except Rejected:
            raise
        except Exception as exc:  # whatever it is, its dead letter is redacted
            raise Rejected(_failure("the change could not be read", exc), change) from exc

    def _checked_change(
        self, change: dict[str, Any], key: bytes | None, origin: Origin, typed: bool = False
    ) -> _Input:
        """``typed``: the decoder gave the change the student schema's types (no check)."""
        misfit = self._misfit(change) if self._misfit is not None and not typed else None
        if misfit is not None:  # the field, never its value
            raise Rejected(
                f"invalid: {misfit} does not have the type the student schema gives it", change
            )
        student = change.get("student_id")
        if not isinstance(student, str) or not student:
            raise Rejected("invalid: student_id is empty", change)
        if key is None or key != student.encode():
            raise Rejected(
                "invalid: the record key is not its student_id (a student's "
                "changes must be keyed by the student id)",
                change,
            )
        occurred = change.get("occurred_at")
        if not isinstance(occurred, int) or isinstance(occurred, bool):
            raise Rejected("invalid: occurred_at is not a timestamp", change)
        if occurred > self.now() + self.settings.future_skew_ms:
            raise Rejected(
                f"future_dated: occurred_at lies more than "
                f"{self.settings.future_skew_ms / 3_600_000:g} h after the "
                "processing time",
                change,
            )
        return _Input(change, None, student, origin)

    def _door_change(self, change: dict[str, Any], size: int) -> None:
        """The input rules (streams.policy.input_limits): a change that breaks one is a dead
        letter (redacted, like any decodable change) whose reason names the field and the
        rule, never the value."""
        if size > MAX_INPUT_BYTES:
            raise Rejected(_OVERSIZED, change)
        refused = self._refused(change, self.now()) if self._refused is not None else None
        if refused is not None:
            raise Rejected(f"invalid: {refused}", change)

    def _door_consent(self, event: ConsentEvent, size: int) -> None:
        if size > MAX_INPUT_BYTES:
            raise Rejected(_OVERSIZED)
        refused = consent_refused(event, self.now(), self.settings.known_districts)
        if refused is not None:
            raise Rejected(f"invalid: {refused}")

    def _forward(self, msg: Message, decoded: _Input, target: int) -> Output:
        self.counters.repartitioned += 1
        origin = decoded.origin
        return Output(
            self.topics.repartition,
            decoded.routing_key.encode(),
            msg.value(),
            [
                (
                    SOURCE_HEADER,
                    _SOURCE_CONSENT if decoded.consent is not None else _SOURCE_CHANGES,
                ),
                (ORIGIN_HEADER, f"{origin.topic}|{origin.partition}|{origin.offset}".encode()),
            ],
            partition=target,
        )

    def _dead_letter(self, msg: Message, exc: Exception) -> list[Output]:
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        forwarded = (
            _origin_of(header(msg, ORIGIN_HEADER)) if topic == self.topics.repartition else None
        )
        if forwarded is not None:
            topic, partition, offset = forwarded.topic, forwarded.partition, forwarded.offset
        value = msg.value()
        if isinstance(exc, Rejected) and exc.record is not None:
            value = self._redacted(value, exc.record)
        reason, key = _reason(exc), msg.key()
        limit = self.settings.max_record_bytes
        if _size(key, value, None) + len(reason) + 200 > limit:
            reason += f" (its body of {len(value or b'')} bytes is left out: too large)"
            value = None
            if len(key or b"") > limit // 2:
                key = None
        bad = InvalidMessage(topic, partition, offset, reason, key, value)
        kind = (
            "undecodable"
            if isinstance(exc, WireFormatError)
            else exc.reason.split(":", 1)[0]
            if isinstance(exc, Rejected)
            else "invalid"
        )
        self.counters.dead_letters += 1
        self.counters.bump(self.counters.dead_letters_by_reason, kind)
        dead = [Output(self.topics.changes_dlq, bad.key, bad.value, bad.headers())]
        where = (msg.topic() or "", msg.partition() or 0)
        self._reasons.setdefault(where, collections.Counter())[kind] += 1
        try:
            if where not in self.halted:
                self._limit(msg).record(False, bad)
        except TooManyInvalidError as halt:
            self._halt(where, bad, str(halt))
        return dead

    def _halt(self, where: tuple[str, int], last: InvalidMessage, why: str) -> None:
        """Most recent records of one input partition were invalid: the loop pauses it (its
        records from the next one on stay unprocessed and uncommitted), the others go on."""
        topic, partition = where
        counts = self._reasons.get(where, collections.Counter())
        common = ", ".join(f"{kind} {n}" for kind, n in counts.most_common(3))
        summary = why.split(" (last:", 1)[0].split(". ", 1)[0]
        self.halted[where] = (
            f"paused {topic}[{partition}]: {summary} on it (by reason: {common}; the last: "
            f"{last.topic}[{last.partition}]@{last.offset}: {last.reason}). The invalid "
            f"records are in {self.topics.changes_dlq}; the other partitions go on. Upstream "
            "looks broken: fix the producer of this partition's records (`hallpass dlq "
            "list` shows what it wrote), then restart the processor: "
            f"{topic}[{partition}] resumes after offset {last.offset}."
        )
        log.error("%s", self.halted[where])

    def _redacted(self, raw: bytes | None, record: dict[str, Any]) -> bytes | None:
        """A decodable change for the dead-letter topic: never-share fields stripped, encoded
        as it came (its writer schema); no body at all if that cannot be done."""
        strip_paths(record, self.never_share)
        record.pop(SEEN_IDS, None)
        encode = self.codecs.encode_dead_change
        if encode is None:
            return None
        try:
            return encode(raw, record)
        except Exception:  # a body we cannot write again is left out, never kept raw
            return None

    # -- changes -----------------------------------------------------------------------------
    def _on_change(
        self, change: dict[str, Any], origin: Origin, partition: int, tables: Tables, now: int
    ) -> list[Output]:
        student = str(change["student_id"])
        occurred = int(change["occurred_at"])
        event_id = _event_id(origin, change)
        state = tables.partition(partition)
        stored = state.stored(student)
        seen: list[str] = []
        if stored is not None:
            last = int(stored.get("occurred_at") or 0)
            if occurred < last:
                self.counters.bump(self.counters.skipped, "stale")
                return []
            if occurred == last:
                seen = list(stored.get(SEEN_IDS) or [stored.get("event_id")])
                if event_id in seen:
                    self.counters.bump(self.counters.skipped, "duplicate")
                    return []
                if stored.get("operation") == "DELETE":  # restrictive at equal times
                    self.counters.bump(self.counters.skipped, "stale")
                    return []
        strip_paths(change, self.never_share)
        if change.get("operation") == "DELETE":
            record = {
                k: change.get(k)
                for k in (
                    "event_id",
                    "student_id",
                    "source_system",
                    "district_id",
                    "school_id",
                    "operation",
                    "occurred_at",
                )
            }
        elif stored is not None and stored.get("operation") != "DELETE":
            # a null section means "not part of this change": keep what we knew
            record = {k: (stored.get(k) if v is None else v) for k, v in change.items()}
        else:
            record = change
        record[SEEN_IDS] = [*seen, event_id]
        history = state.consent.get(student, StudentConsentHistory())
        district = tables.districts.get(str(record.get("district_id")), DistrictState())
        held = holdings_by_partner(state.holders.get(student, ()))
        subject = Subject(student, record.get("district_id"), origin, event_id, "")
        majority = self._majority_at(record)
        outputs: list[Output] = []
        for route in self.routes:
            inputs = inputs_at(route, history, district, now, majority)
            decision = decide_at(route, record, inputs, now)
            if not self._tells_partner(route, decision, held):
                continue
            outputs.extend(
                self.emitter.emit(
                    route,
                    decision,
                    _decided(subject, route, per_student=False),
                    held,
                    audit_withheld=True,
                    withdrawn=_withdrawn(route, inputs, decision, held),
                )
            )
        # the tables only once every view is encoded (a failure above is a dead letter)
        tables.set_record(partition, student, record)
        tables.set_holders(partition, student, held)
        self._schedule_majority(partition, student, majority, history, now)
        return outputs

    def _majority_at(self, record: Mapping[str, Any] | None) -> int | None:
        return record_majority_at(record, self.settings.majority_ages)

    def _schedule_majority(
        self,
        partition: int,
        student: str,
        majority: int | None,
        history: StudentConsentHistory,
        now: int,
    ) -> None:
        """A timer at the student's coming of age, when guardian grants stop counting and
        the student's own start to (only a student with a consent history has either)."""
        if majority is not None and majority > now and history.events:
            self.timers.schedule(partition, majority, student)

    def _tells_partner(
        self, route: PartnerRoute, decision: Decision, held: Mapping[str, Holding]
    ) -> bool:
        """Whether a change event's ``decision`` is one the partner hears of or the ledger
        records: a view that differs from the one it holds, a retraction, or a withholding
        for a privacy reason. A view equal to the one held, or a deleted student it never
        held, changes nothing for it: counted as unchanged, nothing sent, nothing recorded."""
        if held_differs(decision, held.get(route.partner)):
            return True
        if isinstance(decision, Withheld) and decision.reason is not WithheldReason.STUDENT_DELETED:
            return True
        self.counters.bump(self.counters.unchanged, route.partner)
        return False

    # -- consent -----------------------------------------------------------------------------
    def _on_consent(
        self, event: ConsentEvent, origin: Origin, partition: int, tables: Tables, now: int
    ) -> list[Output]:
        if event.is_district_event:
            # into the global table; every worker (this one at the batch end) then decides
            # again for the district's students it owns
            tables.add_district_event(event)
            return []
        student = event.student_id or ""
        state = tables.partition(partition)
        before = state.consent.get(student, StudentConsentHistory())
        after = before.apply(event)
        if after is before:
            return []  # seen before
        horizon = tables.clock(partition) - _COMPACT_MARGIN_MS
        tables.set_consent(partition, student, after.compact(horizon, keep_endings=True))
        for due in (event.effective_at, event.expires_at):
            if due is not None and due > now:
                self.timers.schedule(partition, due, student)
        self._schedule_majority(
            partition, student, self._majority_at(state.record(student)), after, now
        )
        return self._reconcile(
            partition, student, tables, now, origin, event.event_id, history_before=before
        )

    # -- deciding again ----------------------------------------------------------------------
    def _reconcile(
        self,
        partition: int,
        student: str,
        tables: Tables,
        now: int,
        origin: Origin,
        event_id: str,
        only: str | None = None,
        history_before: StudentConsentHistory | None = None,
        per_student: bool = False,
    ) -> list[Output]:
        """Decide again for ``student`` at ``now`` and send what changes what a partner holds.
        ``history_before``: the consent history before an event, so that partners whose
        decision inputs it did not change are skipped without projecting the view."""
        state = tables.partition(partition)
        record = state.record(student)
        if record is None:
            return []
        history = state.consent.get(student, StudentConsentHistory())
        district = tables.districts.get(str(record.get("district_id")), DistrictState())
        held = holdings_by_partner(state.holders.get(student, ()))
        subject = Subject(student, record.get("district_id"), origin, event_id, "")
        majority = self._majority_at(record)
        outputs: list[Output] = []
        for route in self.routes:
            if only is not None and route.partner != only:
                continue
            inputs = inputs_at(route, history, district, now, majority)
            if history_before is not None and _same(
                inputs, inputs_at(route, history_before, district, now, majority)
            ):
                continue
            decision = decide_at(route, record, inputs, now)
            if not held_differs(decision, held.get(route.partner)):
                continue
            outputs.extend(
                self.emitter.emit(
                    route,
                    decision,
                    _decided(subject, route, per_student),
                    held,
                    audit_withheld=False,
                    withdrawn=_withdrawn(route, inputs, decision, held),
                )
            )
        tables.set_holders(partition, student, held)
        return outputs

    def _fire_timers(self, partition: int, tables: Tables, now: int) -> list[Output]:
        state = tables.partition(partition)
        swept = state.clock
        if now <= swept:
            return []
        outputs: list[Output] = []
        for student, due in sorted(self.timers.pop_due(partition, now).items()):
            outputs.extend(
                self._timer_decision(partition, student, tables, now, f"timer:consent@{due}")
            )
        for route, at in contract_dates_due(self.routes, swept, now):
            for student in sorted(state.records):
                outputs.extend(
                    self._timer_decision(
                        partition,
                        student,
                        tables,
                        now,
                        f"timer:contract:{route.partner}@{at}",
                        only=route.partner,
                    )
                )
        for district, at in district_dates_due(tables.districts, swept, now):
            for student in sorted(state.students_of_district(district)):
                outputs.extend(
                    self._timer_decision(
                        partition, student, tables, now, f"timer:district:{district}@{at}"
                    )
                )
        tables.set_clock(partition, now)
        return outputs

    def _timer_decision(
        self,
        partition: int,
        student: str,
        tables: Tables,
        now: int,
        event_id: str,
        only: str | None = None,
    ) -> list[Output]:
        outputs = self._reconcile(
            partition, student, tables, now, TIMER, event_id, only=only, per_student=True
        )
        self.counters.timer_decisions += len(outputs) and 1
        return outputs

    def _reconcile_districts(self, tables: Tables, now: int) -> list[Output]:
        """Decide again for the students of every district whose opt-outs this partition has
        not yet acted on (written by this worker or followed from another)."""
        outputs: list[Output] = []
        for number in sorted(tables.partitions):
            if self._districts_seen.get(number) == tables.districts_version:
                continue
            state = tables.partition(number)
            behind = False
            for district, current in sorted(tables.districts.items()):
                applied = state.district_applied.get(district)
                if applied == current:
                    continue
                if applied is not None and not set(applied.events) <= set(current.events):
                    # the partition already acted on district events this worker has not
                    # followed yet (it came from a worker further along the global table):
                    # acting on the older state would undo them; wait until followed
                    behind = True
                    continue
                version = _state_digest(current)
                for student in sorted(state.students_of_district(district)):
                    outputs.extend(
                        self._timer_decision(
                            number, student, tables, now, f"district:{district}@{version}"
                        )
                    )
                tables.set_district_applied(number, district, current)
            if not behind:
                self._districts_seen[number] = tables.districts_version
        return outputs


def _withdrawn(
    route: PartnerRoute, inputs: DecisionInputs, decision: Decision, held: Mapping[str, Holding]
) -> dict[WithheldReason, tuple[str, ...]]:
    """For a disclosure to a partner that holds the student: the fields it must delete."""
    current = held.get(route.partner)
    if current is None or not isinstance(decision, Disclosed):
        return {}
    return withdrawn_fields(route, inputs, current)


def _state_digest(state: DistrictState) -> str:
    """A short name for one state of a district's opt-outs (its set of events)."""
    ids = "\n".join(sorted(e.event_id for e in state.events)).encode()
    return hashlib.blake2b(ids, digest_size=6).hexdigest()


def _same(a: DecisionInputs, b: DecisionInputs) -> bool:
    return a == b


def _decided(subject: Subject, route: PartnerRoute, per_student: bool) -> Subject:
    """``subject`` with its decision id: one per (event, partner), and per student for an
    event that decides about many students (a timer, a district event)."""
    decision_id = f"{subject.event_id}:{route.partner}" + (
        f":{subject.student}" if per_student else ""
    )
    return Subject(subject.student, subject.district, subject.origin, subject.event_id, decision_id)


def _origin_of(value: bytes | None) -> Origin | None:
    if not value:
        return None
    try:
        topic, partition, offset = value.decode().rsplit("|", 2)
        return Origin(topic, int(partition), int(offset))
    except ValueError:
        return None


def _event_id(origin: Origin, record: Mapping[str, Any]) -> str:
    event_id = record.get("event_id")
    if isinstance(event_id, str) and event_id:
        return event_id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{origin.topic}/{origin.partition}/{origin.offset}"))


def _size(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, str | bytes | None]] | None
) -> int:
    return (
        len(key or b"") + len(value or b"") + sum(len(k) + len(v or b"") for k, v in headers or ())
    )


def _failure(what: str, exc: BaseException) -> str:
    """A reason for an unexpected failure; names a missing field, never a value."""
    detail = (
        f" ({type(exc).__name__}: {exc})"
        if isinstance(exc, KeyError)
        else f" ({type(exc).__name__})"
    )
    return f"invalid: {what}{detail}"


def _reason(exc: Exception) -> str:
    if isinstance(exc, WireFormatError):
        return f"undecodable: {exc}"
    if isinstance(exc, Rejected):
        return exc.reason
    return f"invalid: {type(exc).__name__}: {exc}"


__all__ = [
    "CHANGES",
    "BusHandler",
    "Codecs",
    "HandlerSettings",
    "PartnerRoute",
    "notices_topic",
    "strip_paths",
]
