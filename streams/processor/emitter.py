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

import copy
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from streams.kafka.names import Topics
from streams.policy.decision import Decision, Disclosed, Withheld, WithheldReason
from streams.processor.decider import Encode, PartnerRoute, view_fingerprint
from streams.processor.messages import Origin, Output
from streams.processor.state import Holding

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
    #: whole retractions (tombstone + notice), by partner and reason
    retracted: dict[tuple[str, str], int] = field(default_factory=dict)
    #: partial retractions (reduced view + notice naming the fields), by partner and reason
    narrowed: dict[tuple[str, str], int] = field(default_factory=dict)
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

    def snapshot(self) -> Counters:
        """A copy, to go back to when the batch counted since is not committed."""
        return copy.deepcopy(self)

    def restore(self, snapshot: Counters) -> None:
        """Back to ``snapshot`` in place (the emitter and the metrics hold this object): a
        batch that is rolled back and decided again is counted once."""
        for name in self.__dataclass_fields__:
            setattr(self, name, copy.deepcopy(getattr(snapshot, name)))


@dataclass(frozen=True, slots=True)
class Subject:
    """Who a decision is about, and what caused it."""

    student: str
    district: str | None
    origin: Origin
    event_id: str
    decision_id: str


class Emitter:
    def __init__(
        self,
        topics: Topics,
        encode_audit: Encode,
        encode_notice: Encode,
        now_ms: Callable[[], int],
        counters: Counters,
        categories: Mapping[str, str] | None = None,
    ) -> None:
        """``categories``: field path -> data category of the student schema (to name the
        categories of fields withdrawn that a view no longer has)."""
        self.topics = topics
        self.encode_audit = encode_audit
        self.encode_notice = encode_notice
        self.now_ms = now_ms
        self.counters = counters
        self.categories = dict(categories or {})

    def emit(
        self,
        route: PartnerRoute,
        decision: Decision,
        subject: Subject,
        held: MutableMapping[str, Holding],
        audit_withheld: bool,
        withdrawn: Mapping[WithheldReason, tuple[str, ...]] | None = None,
    ) -> list[Output]:
        """The outputs of ``decision``; ``held`` (partner -> what it holds) is updated.
        A withholding is audited when the partner held the student (a retraction) or when
        ``audit_withheld`` (a change event's decision). ``withdrawn``: fields the partner held
        that a disclosure no longer carries because it may not hold them any more, by reason
        (a partial retraction: the reduced view, and per reason a deletion notice naming the
        categories and fields and a RETRACTED record)."""
        partner = route.partner
        if isinstance(decision, Disclosed):
            held[partner] = (view_fingerprint(decision), decision.fields)
            self.counters.bump(self.counters.disclosed, partner)
            value = dict(decision.value)
            value["event_id"] = route.reference(f"view|{subject.decision_id}")
            day = coarse_time(self.now_ms())
            value["occurred_at"] = day
            key = decision.partner_student_key
            outputs = [
                Output(route.contract.topic, key.encode(), route.encode_view(value), timestamp=day),
                self._audit(
                    route,
                    subject,
                    "DISCLOSED",
                    None,
                    key,
                    list(decision.fields),
                    sorted(decision.categories),
                    sorted(b.value for b in decision.legal_bases),
                ),
            ]
            for reason, paths in sorted((withdrawn or {}).items()):
                outputs.extend(self._withdraw(route, subject, key, reason, paths))
            return outputs
        assert isinstance(decision, Withheld)
        if partner in held:
            del held[partner]
            key = route.key(subject.student)
            why = _retraction_reason(decision.reason).value
            self.counters.bump(self.counters.retracted, (partner, why))
            return [
                Output(
                    route.contract.topic,
                    key.encode(),
                    None,
                    [
                        ("hallpass.deletion.reason", why.encode()),
                        ("hallpass.contract.version", str(route.contract.version).encode()),
                    ],
                    timestamp=coarse_time(self.now_ms()),
                ),
                self._notice(route, subject, key, why, [], []),
                self._audit(route, subject, "RETRACTED", why, key, [], [], []),
            ]
        if audit_withheld:
            self.counters.bump(self.counters.withheld, (partner, decision.reason.value))
            return [
                self._audit(route, subject, "WITHHELD", decision.reason.value, None, [], [], [])
            ]
        return []

    def _withdraw(
        self,
        route: PartnerRoute,
        subject: Subject,
        key: str,
        reason: WithheldReason,
        paths: tuple[str, ...],
    ) -> list[Output]:
        """A partial retraction: the partner keeps a reduced view and must delete ``paths``."""
        leaves = {leaf.path: leaf for leaf in route.view.leaves}
        categories = sorted(
            {leaves[p].category if p in leaves else self.categories.get(p, "") for p in paths}
            - {""}
        )
        bases = sorted({leaves[p].basis.value for p in paths if p in leaves})
        withdrawal = Subject(
            subject.student,
            subject.district,
            subject.origin,
            subject.event_id,
            f"{subject.decision_id}:{reason.value}",
        )
        self.counters.bump(self.counters.narrowed, (route.partner, reason.value))
        return [
            self._notice(route, withdrawal, key, reason.value, categories, list(paths)),
            self._audit(
                route, withdrawal, "RETRACTED", reason.value, key, list(paths), categories, bases
            ),
        ]

    def _notice(
        self,
        route: PartnerRoute,
        subject: Subject,
        key: str,
        reason: str,
        categories: list[str],
        fields: list[str],
    ) -> Output:
        """A deletion notice: categories and fields empty means the whole record."""
        day = coarse_time(self.now_ms())
        return Output(
            self.topics.notices(route.partner),
            key.encode(),
            self.encode_notice(
                {
                    "event_id": route.reference(f"notice|{subject.decision_id}"),
                    "partner": route.partner,
                    "partner_student_key": key,
                    "reason": reason,
                    "categories": categories,
                    "contract_version": route.contract.version,
                    "retracted_at": day,
                    "fields": fields,
                }
            ),
            timestamp=day,
        )

    def _audit(
        self,
        route: PartnerRoute,
        subject: Subject,
        decision: str,
        reason: str | None,
        key: str | None,
        fields: list[str],
        categories: list[str],
        bases: list[str],
    ) -> Output:
        value = {
            "decision_id": subject.decision_id,
            "event_id": subject.event_id,
            "student_id": subject.student,
            "district_id": subject.district,
            "partner": route.partner,
            "partner_student_key": key,
            "decision": decision,
            "reason": reason,
            "fields": fields,
            "categories": categories,
            "legal_basis": bases,
            "contract_version": route.contract.version,
            "decided_at": self.now_ms(),
            "source_topic": subject.origin.topic,
            "source_partition": subject.origin.partition,
            "source_offset": subject.origin.offset,
        }
        return Output(self.topics.audit, subject.student.encode(), self.encode_audit(value))


def _retraction_reason(reason: WithheldReason) -> WithheldReason:
    """Why a partner must delete a student it holds: the withholding's reason, except that
    a partner cannot have received what consent it never had, or a contract not yet started,
    allowed: then the contract changed under it."""
    if reason in (WithheldReason.NO_CONSENT, WithheldReason.CONTRACT_NOT_STARTED):
        return WithheldReason.CONTRACT_CHANGED
    return reason
