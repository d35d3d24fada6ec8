"""The provenance a test grant carries (FERPA 99.30; every GRANT needs it since issue 19):
a guardian's paper form, signed at the epoch."""

from __future__ import annotations

from typing import Any

from streams.policy.consent import GrantedBy, SigningMethod

#: keyword arguments of a ConsentEvent GRANT given by a guardian
GUARDIAN_SIGNED: dict[str, Any] = {
    "granted_by": GrantedBy.GUARDIAN,
    "guardian_id": "guardian-1",
    "signed_at": 0,
    "method": SigningMethod.PAPER,
    "document_ref": "form-1",
}
#: the same for a grant the eligible student gave
STUDENT_SIGNED: dict[str, Any] = {
    **GUARDIAN_SIGNED,
    "granted_by": GrantedBy.ELIGIBLE_STUDENT,
    "guardian_id": None,
}
