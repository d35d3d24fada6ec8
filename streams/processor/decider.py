"""What a partner may hold of a student right now: the routes to each partner and the pure
decision over the processor's state (no Kafka, no tables, no clock of its own)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streams.policy.consent import (
    ConsentKind,
    ConsentStatus,
    DistrictState,
    StudentConsentHistory,
    revoke_spares_student,
)
from streams.policy.contracts import Basis, Contract
from streams.policy.decision import (
    CONSENT_ENDINGS,
    Decision,
    Disclosed,
    Withheld,
    WithheldReason,
    decide,
    permits_of,
)
from streams.policy.views import PartnerView
from streams.processor.state import Holding

Encode = Callable[[Mapping[str, Any]], bytes]

#: envelope fields that change with every event, not with what the partner is told
_PER_EVENT = ("event_id", "occurred_at")


@dataclass(frozen=True)
class PartnerRoute:
    """Everything needed to serve one partner."""

    contract: Contract
    view: PartnerView
    encode_view: Encode
    pseudonym: Callable[[str], str]
    #: the partner-scoped opaque id of an internal id (``policy.partner_reference`` with the
    #: partner's secret): what the partner gets instead of any id another partner also gets
    reference: Callable[[str], str]

    @property
    def partner(self) -> str:
        return self.contract.partner

    def key(self, student: str) -> str:
        """The student's key on this partner's topic."""
        return self.pseudonym(student) if self.contract.pseudonymous_ids else student


@dataclass(frozen=True, slots=True)
class DecisionInputs:
    """Everything a decision depends on besides the record: equal inputs, equal decision."""

    status: ConsentStatus
    district_opt_out: bool
    contract_active: bool
    #: per consent category of the view that is not live: revoked, expired or never given
    consent_endings: tuple[tuple[str, WithheldReason], ...] = ()


def inputs_at(
    route: PartnerRoute,
    history: StudentConsentHistory,
    district: DistrictState,
    now: int,
    majority_at: int | None = None,
) -> DecisionInputs:
    """The decision inputs of one student for one partner at processing time ``now``: the
    consent events and district opt-outs in force then (effective, not expired), and whose
    consent counts (``majority_at``: when the student comes of age, None if unknown)."""
    status = history.status_at(now, route.partner, majority_at)
    ended = route.view.consent_categories - status.live_consent_categories
    return DecisionInputs(
        status,
        district.opted_out(now, route.partner),
        route.contract.is_active(now),
        consent_endings(history, route.partner, ended, now, majority_at) if ended else (),
    )


def consent_endings(
    history: StudentConsentHistory,
    partner: str,
    categories: frozenset[str],
    now: int,
    majority_at: int | None = None,
) -> tuple[tuple[str, WithheldReason], ...]:
    """Why each of ``categories`` (not live at ``now``) has no consent: the last event about
    it was a revoke (CONSENT_REVOKED), a guardian's grant still unexpired while the student
    has come of age (MAJORITY_REACHED), a grant that has expired since (CONSENT_EXPIRED), or
    there was none (NO_CONSENT)."""
    of_age = majority_at is not None and now >= majority_at
    last: dict[str, WithheldReason] = {}
    for event in history.events:
        if event.effective_at > now:
            break
        if event.partner != partner:
            continue
        if event.kind is ConsentKind.GRANT:
            reason = WithheldReason.CONSENT_EXPIRED
            if event.expires_at is None or now < event.expires_at:
                if event.by_guardian and of_age:
                    reason = WithheldReason.MAJORITY_REACHED
                elif not event.by_guardian and not of_age:
                    reason = WithheldReason.NO_CONSENT  # the student's, before it counts

            for category in event.categories & categories:
                last[category] = reason
        elif event.kind is ConsentKind.REVOKE:
            if of_age and revoke_spares_student(event, majority_at):
                continue  # a guardian's revoke after the majority changes nothing that counts
            for category in (event.categories or categories) & categories:
                last[category] = WithheldReason.CONSENT_REVOKED
    return tuple(sorted((c, last.get(c, WithheldReason.NO_CONSENT)) for c in categories))


def decide_at(
    route: PartnerRoute, record: Mapping[str, Any], inputs: DecisionInputs, now: int
) -> Decision:
    return decide(
        record,
        route.contract,
        route.view,
        inputs.status,
        inputs.district_opt_out,
        now,
        route.pseudonym,
        dict(inputs.consent_endings),
    )


def withdrawn_fields(
    route: PartnerRoute, inputs: DecisionInputs, held: Holding | None
) -> dict[WithheldReason, tuple[str, ...]]:
    """The fields the partner holds that it may no longer hold under ``inputs`` (while it
    still gets a view), by reason: a consent category revoked or expired, a directory
    opt-out, or a contract (or schema) that no longer allows the field."""
    if held is None:
        return {}
    fields = held[1] if held[1] is not None else tuple(leaf.path for leaf in route.view.leaves)
    permitted = route.view.permitted_paths(permits_of(inputs.status))
    leaves = {leaf.path: leaf for leaf in route.view.leaves}
    endings = dict(inputs.consent_endings)
    out: dict[WithheldReason, list[str]] = {}
    for path in fields:
        if path in permitted:
            continue
        leaf = leaves.get(path)
        if leaf is None:
            reason = WithheldReason.CONTRACT_CHANGED
        elif leaf.basis is Basis.DIRECTORY:
            reason = WithheldReason.DIRECTORY_OPT_OUT
        elif leaf.basis is Basis.CONSENT:
            found = {
                endings.get(c, WithheldReason.NO_CONSENT)
                for c in leaf.requires - inputs.status.live_consent_categories
            }
            reason = next((r for r in CONSENT_ENDINGS if r in found), WithheldReason.NO_CONSENT)
            if reason is WithheldReason.NO_CONSENT:  # it was held: its basis changed
                reason = WithheldReason.CONTRACT_CHANGED
        else:
            continue
        out.setdefault(reason, []).append(path)
    return {reason: tuple(paths) for reason, paths in out.items()}


def view_fingerprint(decision: Disclosed) -> int:
    """A 63-bit fingerprint of what a disclosure tells the partner (its view without the
    per-event envelope fields), to tell whether a partner already holds it."""
    value = {k: v for k, v in decision.value.items() if k not in _PER_EVENT}
    digest = hashlib.blake2b(
        orjson.dumps(value, option=orjson.OPT_SORT_KEYS), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") >> 1 or 1


def held_differs(decision: Decision, held: Holding | None) -> bool:
    """Whether ``decision`` changes what the partner holds (``held``: what it holds, None if
    it holds nothing)."""
    if isinstance(decision, Disclosed):
        return held is None or held[0] != view_fingerprint(decision)
    assert isinstance(decision, Withheld)
    return held is not None
