"""The privacy decision: what one partner may see of one student record, right now.

``decide`` is pure: given the record, the partner's contract and compiled view, the student's
consent status for that partner, whether the student's district opted out of the partner, and
the time, it returns either what to disclose or why nothing is disclosed. Checks run in this
order, the first that applies giving the reason: the contract is not active; the student was
deleted; the district opted out of the partner; the parent opted out of all sharing; the
parent opted out of this partner; no field the contract allows is permitted for this student.

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

from streams.consent import ConsentStatus
from streams.contracts import Basis, Contract
from streams.views import PartnerView, Permits, project

PARTNER_KEY_LENGTH = 32
MIN_SECRET_BYTES = 16


class WithheldReason(StrEnum):
    CONTRACT_NOT_ACTIVE = "contract_not_active"
    STUDENT_DELETED = "student_deleted"
    DISTRICT_OPT_OUT = "district_opt_out"
    PARENT_OPT_OUT_ALL = "parent_opt_out_all"
    PARENT_OPT_OUT_PARTNER = "parent_opt_out_partner"
    NO_PERMITTED_FIELDS = "no_permitted_fields"


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
) -> Decision:
    """Decide what ``contract``'s partner receives of ``record`` (a decoded StudentRecordChanged).

    ``consent`` is the student's status for this partner at ``now_ms``
    (``StudentConsentHistory.status_at(now_ms, contract.partner)``); ``district_opt_out`` is
    ``DistrictState.opted_out(now_ms, contract.partner)`` for the record's district.
    ``pseudonym_fn`` maps a student id to this partner's pseudonymous key; it is used unless the
    contract turns pseudonymous ids off.
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
        return Withheld(WithheldReason.CONTRACT_NOT_ACTIVE)
    if record.get("operation") == "DELETE":
        return Withheld(WithheldReason.STUDENT_DELETED)
    if district_opt_out:
        return Withheld(WithheldReason.DISTRICT_OPT_OUT)
    if consent.parent_opted_out_all:
        return Withheld(WithheldReason.PARENT_OPT_OUT_ALL)
    if consent.parent_opted_out_partner:
        return Withheld(WithheldReason.PARENT_OPT_OUT_PARTNER)
    student_id = record["student_id"]
    key = pseudonym_fn(student_id) if contract.pseudonymous_ids else student_id
    permits = Permits(
        directory=not consent.directory_opt_out,
        school_official=True,
        consent_categories=consent.live_consent_categories,
    )
    projection = project(record, view, permits, key)
    if projection is None:
        return Withheld(WithheldReason.NO_PERMITTED_FIELDS)
    return Disclosed(
        value=projection.value,
        partner_student_key=key,
        fields=projection.fields,
        categories=projection.categories,
        legal_bases=projection.legal_bases,
    )
