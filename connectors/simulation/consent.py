"""``ConsentChanged`` values (schemas/consent_changed.avsc) made by the simulator."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

#: Sample partners of the local deployment (deploy/contracts/<partner>.yaml).
LEARNWELL: Final = "learnwell"
MEASURELY: Final = "measurely"
CAREWELL: Final = "carewell-health"
PARTNERS: Final[tuple[str, ...]] = (LEARNWELL, MEASURELY, CAREWELL)

#: The purpose the health partner states when it asks consent.
HEALTH_PURPOSE: Final = (
    "Coordinate school health services: care plans, medication and accommodations"
)

#: Who records parent decisions, and from where.
PARENT_PORTAL: Final = "parent-portal"
REGISTRAR_SYSTEM: Final = "sis-registrar"
PRIVACY_OFFICE: Final = "hallpass-cli"

Kind = Literal[
    "GRANT", "REVOKE", "PARTNER_OPT_OUT", "ALL_OPT_OUT", "DIRECTORY_OPT_OUT", "DISTRICT_OPT_OUT"
]


GrantedBy = Literal["GUARDIAN", "ELIGIBLE_STUDENT"]
Method = Literal["PAPER", "PORTAL", "EMAIL", "OTHER"]


@dataclass(frozen=True)
class Provenance:
    """Who gave a grant, when it was signed, how and the signed document (FERPA 99.30);
    every field None for the kinds that carry none."""

    granted_by: GrantedBy | None = None
    guardian_id: str | None = None
    signed_at: int | None = None
    method: Method | None = None
    document_ref: str | None = None


def consent_value(
    *,
    event_id: str,
    kind: Kind,
    student_id: str | None,
    district_id: str,
    effective_at: int,
    recorded_by: str,
    source_system: str,
    partner: str | None = None,
    categories: list[str] | None = None,
    purpose: str | None = None,
    expires_at: int | None = None,
    provenance: Provenance | None = None,
) -> dict[str, Any]:
    given = provenance or Provenance()
    return {
        "event_id": event_id,
        "kind": kind,
        "student_id": student_id,
        "district_id": district_id,
        "partner": partner,
        "categories": categories if categories is not None else [],
        "purpose": purpose,
        "effective_at": effective_at,
        "expires_at": expires_at,
        "recorded_by": recorded_by,
        "source_system": source_system,
        "granted_by": given.granted_by,
        "guardian_id": given.guardian_id,
        "signed_at": given.signed_at,
        "method": given.method,
        "document_ref": given.document_ref,
    }
