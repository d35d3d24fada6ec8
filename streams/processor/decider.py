"""What a partner may hold of a student right now: the routes to each partner and the pure
decision over the processor's state (no Kafka, no tables, no clock of its own)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

from streams.consent import ConsentStatus, DistrictState, StudentConsentHistory
from streams.contracts import Contract
from streams.policy import Decision, Disclosed, Withheld, decide
from streams.views import PartnerView

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


def inputs_at(route: PartnerRoute, history: StudentConsentHistory, district: DistrictState,
              now: int) -> DecisionInputs:
    """The decision inputs of one student for one partner at processing time ``now``: the
    consent events and district opt-outs in force then (effective, not expired)."""
    return DecisionInputs(history.status_at(now, route.partner),
                          district.opted_out(now, route.partner),
                          route.contract.is_active(now))


def decide_at(route: PartnerRoute, record: Mapping[str, Any], inputs: DecisionInputs,
              now: int) -> Decision:
    return decide(record, route.contract, route.view, inputs.status, inputs.district_opt_out,
                  now, route.pseudonym)


def view_fingerprint(decision: Disclosed) -> int:
    """A 63-bit fingerprint of what a disclosure tells the partner (its view without the
    per-event envelope fields), to tell whether a partner already holds it."""
    value = {k: v for k, v in decision.value.items() if k not in _PER_EVENT}
    digest = hashlib.blake2b(orjson.dumps(value, option=orjson.OPT_SORT_KEYS),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1 or 1


def held_differs(decision: Decision, held: int | None) -> bool:
    """Whether ``decision`` changes what the partner holds (``held``: the fingerprint of the
    view it holds, None if it holds nothing)."""
    if isinstance(decision, Disclosed):
        return held != view_fingerprint(decision)
    assert isinstance(decision, Withheld)
    return held is not None
