"""The privacy decision: what one partner may see of one student record, right now.

``decide`` is pure: given the record, the partner's contract and compiled view, the student's
consent status for that partner, whether the student's district opted out of the partner, and
the time, it returns either what to disclose or why nothing is disclosed. Checks run in this
order, the first that applies giving the reason: the contract has not started or has ended;
the student was deleted; the district opted out of the partner; the parent opted out of all
sharing; the parent opted out of this partner; no field the contract allows is permitted for
this student, because consent was revoked, expired, given by a guardian of a student who has
come of age since, or never given, or the parent opted out of
directory disclosure. The reasons are those the audit and deletion schemas document.

Per field (DESIGN, legal basis): ``directory`` fields are dropped when the parent opted out of
directory disclosure; ``school_official`` fields pass (the opt-outs above already withheld
everything); ``consent`` fields pass only with a live consent for this partner and the field's
category.
"""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from streams.policy.consent import ConsentStatus
from streams.policy.contracts import Basis, Contract
from streams.policy.views import PartnerView, Permits, project

PARTNER_KEY_LENGTH = 32
MIN_SECRET_BYTES = 16


class WithheldReason(StrEnum):
    """Why a partner gets nothing, or loses what it held: the reasons the schemas document
    (``DisclosureRecord.reason``, ``DeletionNotice.reason``)."""

    #: the contract is not in force yet (never a retraction)
    CONTRACT_NOT_STARTED = "CONTRACT_NOT_STARTED"
    #: the contract ended (Ed Law 2-d: return or destroy)
    CONTRACT_ENDED = "CONTRACT_ENDED"
    STUDENT_DELETED = "STUDENT_DELETED"
    DISTRICT_OPT_OUT = "DISTRICT_OPT_OUT"
    #: the parent opted out of all sharing
    ALL_OPT_OUT = "ALL_OPT_OUT"
    #: the parent opted out of this partner
    PARTNER_OPT_OUT = "PARTNER_OPT_OUT"
    #: consent is required and was never given for this partner and category
    NO_CONSENT = "NO_CONSENT"
    CONSENT_REVOKED = "CONSENT_REVOKED"
    CONSENT_EXPIRED = "CONSENT_EXPIRED"
    #: the student came of age (34 CFR 99.5): the guardian's consent no longer counts, the
    #: student's own is needed
    MAJORITY_REACHED = "MAJORITY_REACHED"
    #: the parent opted out of directory disclosure (99.37)
    DIRECTORY_OPT_OUT = "DIRECTORY_OPT_OUT"
    #: a new contract version (or student schema) no longer allows fields the partner holds
    CONTRACT_CHANGED = "CONTRACT_CHANGED"


#: how a consent category stops being live, most telling first
CONSENT_ENDINGS = (
    WithheldReason.CONSENT_REVOKED,
    WithheldReason.MAJORITY_REACHED,
    WithheldReason.CONSENT_EXPIRED,
    WithheldReason.NO_CONSENT,
)


@dataclass(frozen=True, slots=True)
class Disclosed:
    """Send ``value`` (the view value) keyed by ``partner_student_key``; record the rest."""

    value: dict[str, Any]
    partner_student_key: str
    fields: tuple[str, ...]
    categories: frozenset[str]
    legal_bases: frozenset[Basis]


@dataclass(frozen=True, slots=True)
class Withheld:
    reason: WithheldReason


Decision = Disclosed | Withheld


def partner_key(student_id: str, secret: bytes) -> str:
    """The partner-scoped pseudonymous id: HMAC-SHA256 of the student id, 32 hex characters.

    Use one secret per partner so that partners cannot join their data on this key.
    """
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"a partner key secret needs at least {MIN_SECRET_BYTES} bytes")
    return hmac.digest(secret, student_id.encode(), "sha256").hex()[:PARTNER_KEY_LENGTH]


_REFERENCE_LABEL = b"hallpass partner reference v1\x00"


def partner_reference(value: str, secret: bytes) -> str:
    """A partner-scoped opaque id of an internal id (a decision, a notice): a UUID made of an
    HMAC-SHA256 of ``value`` with the partner's secret (domain-separated from the student
    key). Equal inputs give equal ids for one partner; two partners' ids of the same value
    share nothing, so they cannot be joined."""
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"a partner key secret needs at least {MIN_SECRET_BYTES} bytes")
    digest = hmac.digest(secret, _REFERENCE_LABEL + value.encode(), "sha256")
    return str(uuid.UUID(bytes=digest[:16], version=4))


def decide(
    record: Mapping[str, Any],
    contract: Contract,
    view: PartnerView,
    consent: ConsentStatus,
    district_opt_out: bool,
    now_ms: int,
    pseudonym_fn: Callable[[str], str],
    consent_endings: Mapping[str, WithheldReason] | None = None,
) -> Decision:
    """Decide what ``contract``'s partner receives of ``record`` (a decoded StudentRecordChanged).

    ``consent`` is the student's status for this partner at ``now_ms``
    (``StudentConsentHistory.status_at(now_ms, contract.partner)``); ``district_opt_out`` is
    ``DistrictState.opted_out(now_ms, contract.partner)`` for the record's district.
    ``pseudonym_fn`` maps a student id to this partner's pseudonymous key; it is used unless the
    contract turns pseudonymous ids off. ``consent_endings`` says, per consent category that
    is not live, whether its consent was revoked, expired or never given (default: never).
    """
    if consent.partner != contract.partner or view.partner != contract.partner:
        raise ValueError(
            f"consent status ({consent.partner}) and view ({view.partner}) must be for the "
            f"contract's partner ({contract.partner})"
        )
    if view.contract_version != contract.version:
        raise ValueError(
            f"view compiled for contract version {view.contract_version}, "
            f"contract is version {contract.version}"
        )
    if not contract.is_active(now_ms):
        return Withheld(
            WithheldReason.CONTRACT_ENDED
            if now_ms >= contract.active_until_ms
            else WithheldReason.CONTRACT_NOT_STARTED
        )
    if record.get("operation") == "DELETE":
        return Withheld(WithheldReason.STUDENT_DELETED)
    if district_opt_out:
        return Withheld(WithheldReason.DISTRICT_OPT_OUT)
    if consent.parent_opted_out_all:
        return Withheld(WithheldReason.ALL_OPT_OUT)
    if consent.parent_opted_out_partner:
        return Withheld(WithheldReason.PARTNER_OPT_OUT)
    student_id = record["student_id"]
    key = pseudonym_fn(student_id) if contract.pseudonymous_ids else student_id
    projection = project(record, view, permits_of(consent), key)
    if projection is None:
        return Withheld(nothing_permitted(view, consent, consent_endings))
    return Disclosed(
        value=projection.value,
        partner_student_key=key,
        fields=projection.fields,
        categories=projection.categories,
        legal_bases=projection.legal_bases,
    )


def permits_of(consent: ConsentStatus) -> Permits:
    """Which legal bases hold for a student and a partner, from its consent status (once the
    opt-outs that withhold everything have been checked)."""
    return Permits(
        directory=not consent.directory_opt_out,
        school_official=True,
        consent_categories=consent.live_consent_categories,
    )


def nothing_permitted(
    view: PartnerView, consent: ConsentStatus, consent_endings: Mapping[str, WithheldReason] | None
) -> WithheldReason:
    """Why no leaf of ``view`` is permitted: the view's leaves need consent or are directory
    information. A missing consent explains it first (revoked before expired before never
    given, over the view's consent categories), then a directory opt-out."""
    endings = consent_endings or {}
    missing = view.consent_categories - consent.live_consent_categories
    if missing:
        found = {endings.get(c, WithheldReason.NO_CONSENT) for c in missing}
        return next(r for r in CONSENT_ENDINGS if r in found)
    return WithheldReason.DIRECTORY_OPT_OUT
