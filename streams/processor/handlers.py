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
from streams.processor.dlq import DLQ_TOPIC, DlqLimit, InvalidMessage
from streams.processor.loop import Output
from streams.processor.state import Tables
from streams.topics import AUDIT, CHANGES, CONSENT
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


def notices_topic(partner: str) -> str:
    return f"partner.{partner}.notices"


@dataclass
class Counters:
    """What happened, for progress lines and metrics."""

    changes: int = 0
    consent_events: int = 0
    dead_letters: int = 0
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
    ) -> None:
        self.routes = list(routes)
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
            if topic == CONSENT:
                event = ConsentEvent.from_avro(self.decode_consent(msg.value()))
            else:
                change = self.decode_change(msg.value())
        except (WireFormatError, ValueError, KeyError, TypeError) as exc:
            bad = InvalidMessage(topic, partition, msg.offset() or 0, _reason(exc), msg.key(),
                                 msg.value())
            self.counters.dead_letters += 1
            self.dlq_limit.record(False, bad)
            return [Output(DLQ_TOPIC, bad.key, bad.value, bad.headers())]
        self.dlq_limit.record(True)
        if topic == CONSENT:
            self.counters.consent_events += 1
            outputs = self._on_consent(event, msg, partition, tables)
        else:
            self.counters.changes += 1
            outputs = self._on_change(change, msg, partition, tables)
        outputs.extend(self._sweep(partition, tables, msg))
        return outputs

    def on_batch_end(self, tables: Tables) -> list[Output]:
        return []

    def on_restored(self, tables: Tables) -> None:
        """Rebuild what is derived from the tables (expiry heaps) after a restore."""
        for number, state in tables.partitions.items():
            heap: list[tuple[int, str]] = []
            for student, history in state.consent.items():
                for event in history.events:
                    if event.expires_at is not None:
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
            previous = state.records.get(student)
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
        status: ConsentStatus = history.status_at(now, route.partner)
        return decide(record, route.contract, route.view, status,
                      district.opted_out(now, route.partner), now, route.pseudonym)

    def _apply(self, route: PartnerRoute, decision: Decision, student: str,
               record: Mapping[str, Any], holders: set[str], msg: Message, now: int,
               event_id: str, audit_always: bool) -> list[Output]:
        partner = route.partner
        outputs: list[Output] = []
        if isinstance(decision, Disclosed):
            outputs.append(Output(route.contract.topic, decision.partner_student_key.encode(),
                                  route.encode_view(decision.value)))
            holders.add(partner)
            self.counters.bump(self.counters.disclosed, partner)
            outputs.append(self._audit(route, student, record, msg, event_id, "DISCLOSED", None,
                                       decision.partner_student_key, decision))
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
            outputs.append(Output(notices_topic(partner), key.encode(), self.encode_notice({
                "event_id": event_id,
                "partner": partner,
                "partner_student_key": key,
                "reason": reason,
                "categories": [],
                "contract_version": route.contract.version,
                "retracted_at": now,
            })))
            outputs.append(self._audit(route, student, record, msg, event_id, "RETRACTED",
                                       reason, key, None))
        elif audit_always:
            self.counters.bump(self.counters.withheld, (partner, reason))
            outputs.append(self._audit(route, student, record, msg, event_id, "WITHHELD",
                                       reason, None, None))
        return outputs

    def _key(self, route: PartnerRoute, student: str) -> str:
        return route.pseudonym(student) if route.contract.pseudonymous_ids else student

    def _audit(self, route: PartnerRoute, student: str, record: Mapping[str, Any],
               msg: Message, event_id: str, decision: str, reason: str | None,
               key: str | None, disclosed: Disclosed | None) -> Output:
        value = {
            "decision_id": f"{event_id}:{route.partner}",
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
        return Output(AUDIT, student.encode(), self.encode_audit(value))

    # -- consent -----------------------------------------------------------------------------
    def _on_consent(self, event: ConsentEvent, msg: Message, partition: int,
                    tables: Tables) -> list[Output]:
        now = self._now(partition, event.effective_at, tables)
        if event.is_district_event:
            before = tables.districts.get(event.district_id, DistrictState())
            after = before.apply(event)
            tables.set_district(event.district_id, after)
            outputs: list[Output] = []
            # this worker retracts the students of that district it holds
            for number, state in tables.partitions.items():
                for student in list(state.holders):
                    record = state.records.get(student)
                    if record is not None and record.get("district_id") == event.district_id:
                        outputs.extend(self._reevaluate(number, student, tables, msg, now,
                                                        event.event_id, district_before=before))
            return outputs
        student = event.student_id or ""
        state = tables.partition(partition)
        before_history = state.consent.get(student, StudentConsentHistory())
        after_history = before_history.apply(event)
        tables.set_consent(partition, student, after_history)
        if event.expires_at is not None:
            heapq.heappush(self._expiries.setdefault(partition, []), (event.expires_at, student))
        return self._reevaluate(partition, student, tables, msg, now, event.event_id,
                                history_before=before_history)

    def _reevaluate(self, partition: int, student: str, tables: Tables, msg: Message, now: int,
                    event_id: str,
                    history_before: StudentConsentHistory | None = None,
                    district_before: DistrictState | None = None) -> list[Output]:
        """Decide again for a student whose consent, district or contract changed; send only
        what changes what a partner holds."""
        state = tables.partition(partition)
        record = state.records.get(student)
        if record is None:
            return []
        history = state.consent.get(student, StudentConsentHistory())
        district = tables.districts.get(str(record.get("district_id")), DistrictState())
        holders = set(state.holders.get(student, frozenset()))
        outputs: list[Output] = []
        for route in self.routes:
            decision = self._decide(route, record, history, district, now)
            if history_before is not None or district_before is not None:
                before = self._decide(route, record, history_before or history,
                                      district_before or district, now)
                same = _same(before, decision)
                if same and (isinstance(decision, Disclosed) == (route.partner in holders)):
                    continue
            outputs.extend(self._apply(route, decision, student, record, holders, msg, now,
                                       event_id, audit_always=False))
        tables.set_holders(partition, student, frozenset(holders))
        return outputs

    # -- time-driven retraction: consent expiry, contract end ---------------------------------
    def _sweep(self, partition: int, tables: Tables, msg: Message) -> list[Output]:
        now = self._clock.get(partition, 0)
        outputs: list[Output] = []
        heap = self._expiries.get(partition)
        due: set[str] = set()
        while heap and heap[0][0] <= now:
            due.add(heapq.heappop(heap)[1])
        state = tables.partition(partition)
        trigger = f"expiry@{now}"
        for student in sorted(due):
            if state.holders.get(student):
                outputs.extend(self._reevaluate(partition, student, tables, msg, now, trigger))
        ended = self._ended.setdefault(partition, set())
        for route in self.routes:
            if route.partner not in ended and now >= route.contract.active_until_ms:
                ended.add(route.partner)
                holding = sorted(s for s, p in state.holders.items() if route.partner in p)
                for student in holding:
                    outputs.extend(self._reevaluate(partition, student, tables, msg, now,
                                                    f"contract-end:{route.partner}"))
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
