"""What one input event produces: partner views, tombstones, deletion notices, audit records
and table writes. Kafka-free: the loop hands in messages and produces what comes back.

Time is event time: each input partition keeps a clock (the latest event time seen), and a
decision is taken at ``max(clock, event time)``, so a late change cannot re-disclose what a
newer consent event withdrew, and a rerun decides exactly as the first run did.
"""

from __future__ import annotations

import heapq
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from streams.consent import ConsentEvent, ConsentStatus, DistrictState, StudentConsentHistory
from streams.contracts import Contract
from streams.policy import Decision, Disclosed, Withheld, decide
from streams.processor.dlq import DlqLimit, InvalidMessage
from streams.processor.loop import Output
from streams.processor.state import Tables
from streams.topics import CHANGES, DEFAULT_TOPICS, Topics, notices_topic
from streams.views import PartnerView
from streams.wire import WireFormatError

NO_RECORD = "no_record"


class Message(Protocol):
    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...


Encode = Callable[[Mapping[str, Any]], bytes]
Decode = Callable[[bytes | None], dict[str, Any]]


@dataclass(frozen=True)
class PartnerRoute:
    """Everything needed to serve one partner."""

    contract: Contract
    view: PartnerView
    encode_view: Encode
    pseudonym: Callable[[str], str]

    @property
    def partner(self) -> str:
        return self.contract.partner


@dataclass
class Counters:
    """What happened, for progress lines and metrics."""

    changes: int = 0
    consent_events: int = 0
    dead_letters: int = 0
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    disclosed: dict[str, int] = field(default_factory=dict)
    withheld: dict[tuple[str, str], int] = field(default_factory=dict)
    retracted: dict[tuple[str, str], int] = field(default_factory=dict)

    def bump(self, table: dict[Any, int], key: Any) -> None:
        table[key] = table.get(key, 0) + 1


def strip_paths(record: dict[str, Any], paths: Sequence[str]) -> dict[str, Any]:
    """Set the leaves at ``paths`` (``a.b``, ``a[].b``) to None, in place; returns record."""
    for path in paths:
        _strip(record, path.replace("[]", ".[]").split("."))
    return record


def _strip(node: Any, parts: list[str]) -> None:
    if node is None or not parts:
        return
    head, rest = parts[0], parts[1:]
    if head == "[]":
        if isinstance(node, list):
            for item in node:
                _strip(item, rest)
        return
    if not isinstance(node, dict) or head not in node:
        return
    if rest:
        _strip(node[head], rest)
    else:
        node[head] = None


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    status: ConsentStatus
    district_opt_out: bool
    now: int
    contract_active: bool

    def same_decision_as(self, other: DecisionInputs) -> bool:
        return (self.status == other.status and self.district_opt_out == other.district_opt_out
                and self.contract_active == other.contract_active)


class BusHandler:
    """Turns change and consent events into each partner's view, retractions and audit."""

    def __init__(
        self,
        routes: Sequence[PartnerRoute],
        decode_change: Decode,
        decode_consent: Decode,
        encode_audit: Encode,
        encode_notice: Encode,
        never_share: Sequence[str],
        dlq_limit: DlqLimit | None = None,
        wall_clock_ms: Callable[[], int] = lambda: int(time.time() * 1000),
        topics: Topics = DEFAULT_TOPICS,
    ) -> None:
        self.routes = list(routes)
        self.topics = topics
        self.decode_change = decode_change
        self.decode_consent = decode_consent
        self.encode_audit = encode_audit
        self.encode_notice = encode_notice
        self.never_share = list(never_share)
        self.dlq_limit = dlq_limit or DlqLimit()
        self.wall_clock_ms = wall_clock_ms
        self.counters = Counters()
        self._clock: dict[int, int] = {}
        self._expiries: dict[int, list[tuple[int, str]]] = {}
        self._ended: dict[int, set[str]] = {}

    # -- entry points ------------------------------------------------------------------------
    def handle(self, msg: Message, tables: Tables) -> list[Output]:
        topic = msg.topic() or ""
        partition = msg.partition() or 0
        try:
            if topic == self.topics.consent:
                event = ConsentEvent.from_avro(self.decode_consent(msg.value()))
            else:
                change = self.decode_change(msg.value())
        except (WireFormatError, ValueError, KeyError, TypeError) as exc:
            bad = InvalidMessage(topic, partition, msg.offset() or 0, _reason(exc), msg.key(),
                                 msg.value())
            self.counters.dead_letters += 1
            self.counters.bump(self.counters.dead_letters_by_reason,
                               "undecodable" if isinstance(exc, WireFormatError) else "invalid")
            self.dlq_limit.record(False, bad)
            return [Output(self.topics.changes_dlq, bad.key, bad.value, bad.headers())]
        self.dlq_limit.record(True)
        # Time first: what the clock passing changes (consent expiries, contract ends) is sent
        # before the event's own decision, which then has the last word; the other way round,
        # a sweep could send again what the event's decision had just sent.
        event_ms = event.effective_at if topic == self.topics.consent else change["occurred_at"]
        self._now(partition, int(event_ms), tables)
        outputs = self._sweep(partition, tables, msg)
        if topic == self.topics.consent:
            self.counters.consent_events += 1
            outputs.extend(self._on_consent(event, msg, partition, tables))
        else:
            self.counters.changes += 1
            outputs.extend(self._on_change(change, msg, partition, tables))
        return outputs

    def on_batch_end(self, tables: Tables) -> list[Output]:
        return []

    def on_restored(self, tables: Tables) -> None:
        """Rebuild what is derived from the tables (expiry heaps) after a restore."""
        for number, state in tables.partitions.items():
            heap: list[tuple[int, str]] = []
            for student, history in state.consent.items():
                for event in history.events:
                    # an expiry the restored clock passed was swept before the crash
                    if event.expires_at is not None and event.expires_at > state.clock:
                        heap.append((event.expires_at, student))
            heapq.heapify(heap)
            self._expiries[number] = heap
            self._clock[number] = max(self._clock.get(number, 0), tables.clock(number))

    # -- changes -----------------------------------------------------------------------------
    def _now(self, partition: int, event_ms: int, tables: Tables) -> int:
        now = max(self._clock.get(partition, tables.clock(partition)), event_ms)
        self._clock[partition] = now
        tables.set_clock(partition, now)
        return now

    def _on_change(self, record: dict[str, Any], msg: Message, partition: int,
                   tables: Tables) -> list[Output]:
        student = str(record["student_id"])
        now = self._now(partition, int(record["occurred_at"]), tables)
        strip_paths(record, self.never_share)
        state = tables.partition(partition)
        deleted = record.get("operation") == "DELETE"
        if not deleted:
            # a null section means "not part of this change": keep what we knew
            previous = state.record(student)
            if previous is not None:
                record = {k: (previous.get(k) if v is None else v) for k, v in record.items()}
        tables.set_record(partition, student, None if deleted else record)
        history = state.consent.get(student, StudentConsentHistory())
        district = tables.districts.get(str(record.get("district_id")), DistrictState())
        holders = set(state.holders.get(student, frozenset()))
        outputs: list[Output] = []
        for route in self.routes:
            decision = self._decide(route, record, history, district, now)
            outputs.extend(self._apply(route, decision, student, record, holders, msg, now,
                                       _event_id(msg, record), audit_always=True))
        tables.set_holders(partition, student, frozenset(holders))
        return outputs

    def _decide(self, route: PartnerRoute, record: Mapping[str, Any],
                history: StudentConsentHistory, district: DistrictState, now: int) -> Decision:
        return self._decide_on(route, record, self._inputs(route, history, district, now))

    def _inputs(self, route: PartnerRoute, history: StudentConsentHistory,
                district: DistrictState, now: int) -> DecisionInputs:
        """Everything a decision depends on besides the record: equal inputs, equal decision."""
        status: ConsentStatus = history.status_at(now, route.partner)
        # A district event is decided on its own input partition's clock. Once processed, it
        # binds every later decision about the district's students, even on a partition whose
        # clock lags behind it: nothing would retract a record disclosed there when that clock
        # passes the opt-out (districts are not swept like consent expiries).
        district_now = max(now, district.events[-1].effective_at) if district.events else now
        return DecisionInputs(status, district.opted_out(district_now, route.partner), now,
                              route.contract.is_active(now))

    def _decide_on(self, route: PartnerRoute, record: Mapping[str, Any],
                   inputs: DecisionInputs) -> Decision:
        return decide(record, route.contract, route.view, inputs.status,
                      inputs.district_opt_out, inputs.now, route.pseudonym)

    def _apply(self, route: PartnerRoute, decision: Decision, student: str,
               record: Mapping[str, Any], holders: set[str], msg: Message, now: int,
               event_id: str, audit_always: bool, per_student: bool = False) -> list[Output]:
        """``per_student``: the event decides about many students (district opt-out, contract
        end, consent expiry), so the decision id names the student too."""
        partner = route.partner
        decision_id = f"{event_id}:{partner}" + (f":{student}" if per_student else "")
        outputs: list[Output] = []
        if isinstance(decision, Disclosed):
            outputs.append(Output(route.contract.topic, decision.partner_student_key.encode(),
                                  route.encode_view(decision.value)))
            holders.add(partner)
            self.counters.bump(self.counters.disclosed, partner)
            outputs.append(self._audit(route, student, record, msg, event_id, decision_id,
                                       "DISCLOSED", None, decision.partner_student_key, decision))
            return outputs
        assert isinstance(decision, Withheld)
        reason = decision.reason.value
        key = self._key(route, student)
        if partner in holders:
            holders.discard(partner)
            self.counters.bump(self.counters.retracted, (partner, reason))
            outputs.append(Output(route.contract.topic, key.encode(), None, [
                ("hallpass.deletion.reason", reason.encode()),
                ("hallpass.contract.version", str(route.contract.version).encode()),
            ]))
            outputs.append(Output(self.topics.notices(partner), key.encode(), self.encode_notice({
                "event_id": event_id,
                "partner": partner,
                "partner_student_key": key,
                "reason": reason,
                "categories": [],
                "contract_version": route.contract.version,
                "retracted_at": now,
            })))
            outputs.append(self._audit(route, student, record, msg, event_id, decision_id,
                                       "RETRACTED", reason, key, None))
        elif audit_always:
            self.counters.bump(self.counters.withheld, (partner, reason))
            outputs.append(self._audit(route, student, record, msg, event_id, decision_id,
                                       "WITHHELD", reason, None, None))
        return outputs

    def _key(self, route: PartnerRoute, student: str) -> str:
        return route.pseudonym(student) if route.contract.pseudonymous_ids else student

    def _audit(self, route: PartnerRoute, student: str, record: Mapping[str, Any],
               msg: Message, event_id: str, decision_id: str, decision: str,
               reason: str | None, key: str | None, disclosed: Disclosed | None) -> Output:
        value = {
            "decision_id": decision_id,
            "event_id": event_id,
            "student_id": student,
            "district_id": record.get("district_id"),
            "partner": route.partner,
            "partner_student_key": key,
            "decision": decision,
            "reason": reason,
            "fields": list(disclosed.fields) if disclosed else [],
            "categories": sorted(disclosed.categories) if disclosed else [],
            "legal_basis": sorted(b.value for b in disclosed.legal_bases) if disclosed else [],
            "contract_version": route.contract.version,
            "decided_at": self.wall_clock_ms(),
            "source_topic": msg.topic() or "",
            "source_partition": msg.partition() or 0,
            "source_offset": msg.offset() or 0,
        }
        return Output(self.topics.audit, student.encode(), self.encode_audit(value))

    # -- consent -----------------------------------------------------------------------------
    def _on_consent(self, event: ConsentEvent, msg: Message, partition: int,
                    tables: Tables) -> list[Output]:
        now = self._now(partition, event.effective_at, tables)
        if event.is_district_event:
            before = tables.districts.get(event.district_id, DistrictState())
            after = before.apply(event)
            tables.set_district(event.district_id, after)
            outputs: list[Output] = []
            # this worker retracts the students of that district it holds, each decided at
            # the clock of its own partition: this partition's clock may be behind events
            # (a grant) the student's partition already applied
            for number, state in tables.partitions.items():
                at = self._clock.get(number, tables.clock(number))
                for student in list(state.holders):
                    record = state.record(student)
                    if record is not None and record.get("district_id") == event.district_id:
                        outputs.extend(self._reevaluate(number, student, tables, msg, at,
                                                        event.event_id, district_before=before,
                                                        per_student=True))
            return outputs
        student = event.student_id or ""
        state = tables.partition(partition)
        before_history = state.consent.get(student, StudentConsentHistory())
        after_history = before_history.apply(event)
        tables.set_consent(partition, student, after_history)
        if event.expires_at is not None and event.expires_at > now:
            # (an event already expired is decided as such right below)
            heapq.heappush(self._expiries.setdefault(partition, []), (event.expires_at, student))
        return self._reevaluate(partition, student, tables, msg, now, event.event_id,
                                history_before=before_history)

    def _reevaluate(self, partition: int, student: str, tables: Tables, msg: Message, now: int,
                    event_id: str,
                    history_before: StudentConsentHistory | None = None,
                    district_before: DistrictState | None = None,
                    before_ms: int | None = None,
                    only: str | None = None,
                    per_student: bool = False) -> list[Output]:
        """Decide again for a student whose consent, district or contract changed; send only
        what changes what a partner holds.

        What changed is given as the state before (``history_before``, ``district_before``)
        or the time before (``before_ms``); ``only`` restricts the decision to one partner.
        """
        compare = (history_before is not None or district_before is not None
                   or before_ms is not None)
        state = tables.partition(partition)
        record = state.record(student)
        if record is None:
            return []
        history = state.consent.get(student, StudentConsentHistory())
        district = tables.districts.get(str(record.get("district_id")), DistrictState())
        holders = set(state.holders.get(student, frozenset()))
        outputs: list[Output] = []
        for route in self.routes:
            if only is not None and route.partner != only:
                continue
            inputs = self._inputs(route, history, district, now)
            decision = self._decide_on(route, record, inputs)
            if compare:
                inputs_before = self._inputs(route, history_before or history,
                                             district_before or district,
                                             now if before_ms is None else before_ms)
                # the same inputs decide the same: no second projection to compare
                same = (inputs_before.same_decision_as(inputs)
                        or _same(self._decide_on(route, record, inputs_before), decision))
                if same and (isinstance(decision, Disclosed) == (route.partner in holders)):
                    continue
            outputs.extend(self._apply(route, decision, student, record, holders, msg, now,
                                       event_id, audit_always=False, per_student=per_student))
        tables.set_holders(partition, student, frozenset(holders))
        return outputs

    # -- time-driven retraction: consent expiry, contract end ---------------------------------
    def _sweep(self, partition: int, tables: Tables, msg: Message) -> list[Output]:
        now = self._clock.get(partition, 0)
        outputs: list[Output] = []
        heap = self._expiries.get(partition)
        due: dict[str, int] = {}  # student -> earliest expiry passed
        while heap and heap[0][0] <= now:
            expires_at, student = heapq.heappop(heap)
            due.setdefault(student, expires_at)
        state = tables.partition(partition)
        for student, expires_at in sorted(due.items()):
            if state.holders.get(student):
                # only what the expiry changes: the decision just before it against now
                outputs.extend(self._reevaluate(partition, student, tables, msg, now,
                                                f"expiry@{expires_at}", before_ms=expires_at - 1,
                                                per_student=True))
        ended = self._ended.setdefault(partition, set())
        for route in self.routes:
            if route.partner not in ended and now >= route.contract.active_until_ms:
                ended.add(route.partner)
                holding = sorted(s for s, p in state.holders.items() if route.partner in p)
                for student in holding:
                    outputs.extend(self._reevaluate(partition, student, tables, msg, now,
                                                    f"contract-end:{route.partner}",
                                                    only=route.partner, per_student=True))
        return outputs


def _same(a: Decision, b: Decision) -> bool:
    if isinstance(a, Disclosed) and isinstance(b, Disclosed):
        return a.value == b.value
    return isinstance(a, Withheld) and isinstance(b, Withheld)


def _event_id(msg: Message, record: Mapping[str, Any]) -> str:
    event_id = record.get("event_id")
    if isinstance(event_id, str) and event_id:
        return event_id
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{msg.topic()}/{msg.partition()}/{msg.offset()}"))


def _reason(exc: Exception) -> str:
    if isinstance(exc, WireFormatError):
        return f"undecodable: {exc}"
    return f"invalid: {type(exc).__name__}: {exc}"


__all__ = ["CHANGES", "BusHandler", "PartnerRoute", "notices_topic", "strip_paths"]
