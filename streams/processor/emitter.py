"""Turns decisions into output records: partner views, tombstones, deletion notices and the
audit ledger; counts what happened. Keeps what each partner holds (view fingerprints) up to
date in the ``held`` mapping it is handed.

**Nothing a partner gets links it to another partner.** Besides its contracted fields, a
partner's record carries only values of its own: its pseudonymous key, an ``event_id`` and a
notice id made with its own secret from the decision (``PartnerRoute.reference``), its
contract version, and a time at day resolution (``occurred_at`` of a view: the UTC day the
view changed; ``retracted_at`` of a notice: the UTC day of the retraction). The source event
id and ``occurred_at`` never leave the processor (OneRoster event ids are uuid5 of a published
namespace, and an exact time is shared by every partner the same change reached). A day is
what a partner needs (its own retention and deletion duties run in days; order comes from the
topic's offsets) and is shared by every student whose view changed that day, so it cannot
single one out.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.policy import Decision, Disclosed, Withheld
from streams.processor.decider import Encode, PartnerRoute, view_fingerprint
from streams.processor.messages import Origin, Output
from streams.topics import Topics

DAY_MS = 86_400_000


def coarse_time(now_ms: int) -> int:
    """The UTC day of ``now_ms`` (midnight, epoch milliseconds): the only time a partner
    gets."""
    return now_ms - now_ms % DAY_MS


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
    #: per partner, decisions on a change event that left what the partner holds as it was:
    #: nothing sent, nothing in the ledger (a re-send would tell the partner that something
    #: outside its contract changed)
    unchanged: dict[str, int] = field(default_factory=dict)
    #: changes not applied: ``stale`` (older than the student's newest), ``duplicate``
    skipped: dict[str, int] = field(default_factory=dict)
    #: input records forwarded to the partition of their student
    repartitioned: int = 0
    #: decisions taken by a timer or a followed district event, without an input record
    timer_decisions: int = 0

    def bump(self, table: dict[Any, int], key: Any) -> None:
        table[key] = table.get(key, 0) + 1


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a decision is about, and what caused it."""

    student: str
    district: str | None
    origin: Origin
    event_id: str
    decision_id: str


class Emitter:
    def __init__(self, topics: Topics, encode_audit: Encode, encode_notice: Encode,
                 now_ms: Callable[[], int], counters: Counters) -> None:
        self.topics = topics
        self.encode_audit = encode_audit
        self.encode_notice = encode_notice
        self.now_ms = now_ms
        self.counters = counters

    def emit(self, route: PartnerRoute, decision: Decision, subject: Subject,
             held: MutableMapping[str, int], audit_withheld: bool) -> list[Output]:
        """The outputs of ``decision``; ``held`` (partner -> view fingerprint) is updated.
        A withholding is audited when the partner held the student (a retraction) or when
        ``audit_withheld`` (a change event's decision)."""
        partner = route.partner
        if isinstance(decision, Disclosed):
            held[partner] = view_fingerprint(decision)
            self.counters.bump(self.counters.disclosed, partner)
            value = dict(decision.value)
            value["event_id"] = route.reference(f"view|{subject.decision_id}")
            value["occurred_at"] = coarse_time(self.now_ms())
            return [
                Output(route.contract.topic, decision.partner_student_key.encode(),
                       route.encode_view(value)),
                self._audit(route, subject, "DISCLOSED", None, decision.partner_student_key,
                            decision),
            ]
        assert isinstance(decision, Withheld)
        reason = decision.reason.value
        if partner in held:
            del held[partner]
            key = route.key(subject.student)
            self.counters.bump(self.counters.retracted, (partner, reason))
            return [
                Output(route.contract.topic, key.encode(), None, [
                    ("hallpass.deletion.reason", reason.encode()),
                    ("hallpass.contract.version", str(route.contract.version).encode()),
                ]),
                Output(self.topics.notices(partner), key.encode(), self.encode_notice({
                    "event_id": route.reference(f"notice|{subject.decision_id}"),
                    "partner": partner,
                    "partner_student_key": key,
                    "reason": reason,
                    "categories": [],
                    "contract_version": route.contract.version,
                    "retracted_at": coarse_time(self.now_ms()),
                })),
                self._audit(route, subject, "RETRACTED", reason, key, None),
            ]
        if audit_withheld:
            self.counters.bump(self.counters.withheld, (partner, reason))
            return [self._audit(route, subject, "WITHHELD", reason, None, None)]
        return []

    def _audit(self, route: PartnerRoute, subject: Subject, decision: str, reason: str | None,
               key: str | None, disclosed: Disclosed | None) -> Output:
        value = {
            "decision_id": subject.decision_id,
            "event_id": subject.event_id,
            "student_id": subject.student,
            "district_id": subject.district,
            "partner": route.partner,
            "partner_student_key": key,
            "decision": decision,
            "reason": reason,
            "fields": list(disclosed.fields) if disclosed else [],
            "categories": sorted(disclosed.categories) if disclosed else [],
            "legal_basis": sorted(b.value for b in disclosed.legal_bases) if disclosed else [],
            "contract_version": route.contract.version,
            "decided_at": self.now_ms(),
            "source_topic": subject.origin.topic,
            "source_partition": subject.origin.partition,
            "source_offset": subject.origin.offset,
        }
        return Output(self.topics.audit, subject.student.encode(), self.encode_audit(value))
