"""Consent and opt-out state as pure data.

Times are integer epoch milliseconds (UTC) everywhere in this module.

Semantics, applied per student (``StudentConsentHistory``) and per district (``DistrictState``):

* A ``GRANT`` for partner P and category c is live at ``now`` when it is effective
  (``effective_at <= now``), not expired (``now < expires_at``), and no ``REVOKE`` of P covering c
  (its categories contain c, or are empty: every category of P) comes after it. Several grants
  for the same partner and category are a union: each one counts until it expires or is revoked.
* Opt-outs (``ALL_OPT_OUT``, ``PARTNER_OPT_OUT`` of P, ``DIRECTORY_OPT_OUT``, and per district
  ``DISTRICT_OPT_OUT`` of P) have one scope each. In a scope, the latest effective event is the
  one in force, from its ``effective_at`` until its ``expires_at`` (none: for good). To lift an
  opt-out, publish the same kind for the same scope with ``expires_at == effective_at``.
* "Later" always means later effective time, ties broken by ``event_id``; arrival order never
  matters, so the same set of events gives the same status whatever order they were applied in.
  Re-applying an event id is idempotent.

Provenance and the age of majority (FERPA 99.30, 99.5):

* A ``GRANT`` records who gave it (``granted_by``: ``GUARDIAN`` with a ``guardian_id``, or
  ``ELIGIBLE_STUDENT``), when it was signed (``signed_at``), how (``method``) and a document
  reference (``document_ref``). :func:`provenance_problem` names what a grant lacks; the
  consent commands, the CSV import and the processor refuse such a grant (the processor
  dead-letters it). Histories written before provenance existed still load: a grant without
  ``granted_by`` counts as a guardian's.
* ``majority_at`` (``status_at``'s argument, from :mod:`streams.policy.majority`) is the
  instant the student reaches the age of majority, None when unknown (no birth date): the
  student is then treated as a minor. Before it, guardian grants count and the student's
  own grants do not yet; from it on, only the eligible student's own grants count (a grant
  the student signed earlier counts from then).
* A ``REVOKE`` withdraws every earlier grant of its partner and categories, whoever gave
  either, except that a guardian's revoke effective at or after the majority instant
  withdraws only guardian grants (which no longer count): from then on the rights are the
  student's (99.5(a)). A revoke without ``granted_by`` withdraws everything.

``compact(horizon_ms)`` drops the events that can no longer change the status at any time at or
after the horizon, whatever events arrive later; histories stay bounded by the state in force.
"""

from __future__ import annotations

import bisect
import json
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any, TypeVar, overload

from streams.errors import HallpassError
from streams.policy.catalog import CATEGORIES

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_FOREVER = 2**63
_FORMAT_VERSION = 1


class ConsentKind(StrEnum):
    GRANT = "GRANT"
    REVOKE = "REVOKE"
    PARTNER_OPT_OUT = "PARTNER_OPT_OUT"
    ALL_OPT_OUT = "ALL_OPT_OUT"
    DIRECTORY_OPT_OUT = "DIRECTORY_OPT_OUT"
    DISTRICT_OPT_OUT = "DISTRICT_OPT_OUT"


_NEEDS_PARTNER = frozenset(
    {
        ConsentKind.GRANT,
        ConsentKind.REVOKE,
        ConsentKind.PARTNER_OPT_OUT,
        ConsentKind.DISTRICT_OPT_OUT,
    }
)
_NO_PARTNER = frozenset({ConsentKind.ALL_OPT_OUT, ConsentKind.DIRECTORY_OPT_OUT})
_HAS_CATEGORIES = frozenset({ConsentKind.GRANT, ConsentKind.REVOKE})


class GrantedBy(StrEnum):
    """Who gave (or withdrew) a consent."""

    #: a parent or guardian of a minor student (``guardian_id`` names them)
    GUARDIAN = "GUARDIAN"
    #: the student, once of age (34 CFR 99.5: the rights pass to the student at majority)
    ELIGIBLE_STUDENT = "ELIGIBLE_STUDENT"


class SigningMethod(StrEnum):
    """How a written consent was signed (99.30(d) allows electronic signatures)."""

    PAPER = "PAPER"
    PORTAL = "PORTAL"
    EMAIL = "EMAIL"
    OTHER = "OTHER"


#: the provenance a GRANT must carry, in the order a missing one is named
PROVENANCE_FIELDS = ("granted_by", "guardian_id", "signed_at", "method", "document_ref")


class InvalidConsentEventError(HallpassError, ValueError):
    """A consent event that breaks the ConsentChanged rules (e.g. a GRANT without categories)."""


def to_epoch_ms(value: int | datetime) -> int:
    """Epoch milliseconds from an int (returned as is) or an aware datetime."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidConsentEventError("naive datetime: timestamps must carry a time zone")
        return (value - _EPOCH) // _ONE_MS
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidConsentEventError(f"not a timestamp: {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class ConsentEvent:
    """One ConsentChanged event. Construction validates the per-kind rules."""

    event_id: str
    kind: ConsentKind
    district_id: str
    effective_at: int
    student_id: str | None = None
    partner: str | None = None
    categories: frozenset[str] = frozenset()
    purpose: str | None = None
    expires_at: int | None = None
    recorded_by: str = ""
    source_system: str = ""
    #: provenance (GRANT; ``granted_by`` also on a REVOKE: who withdrew it)
    granted_by: GrantedBy | None = None
    guardian_id: str | None = None
    signed_at: int | None = None
    method: SigningMethod | None = None
    document_ref: str | None = None

    def __post_init__(self) -> None:
        if not self.event_id:
            raise InvalidConsentEventError("event_id is empty")
        if not isinstance(self.kind, ConsentKind):
            raise InvalidConsentEventError(f"unknown kind {self.kind!r}")
        if self.kind in _NEEDS_PARTNER and not self.partner:
            raise InvalidConsentEventError(f"{self.kind} needs a partner")
        if self.kind in _NO_PARTNER and self.partner is not None:
            raise InvalidConsentEventError(f"{self.kind} takes no partner")
        if self.categories and self.kind not in _HAS_CATEGORIES:
            raise InvalidConsentEventError(f"{self.kind} takes no categories")
        if self.kind is ConsentKind.GRANT and not self.categories:
            raise InvalidConsentEventError("GRANT needs at least one category")
        if self.kind is not ConsentKind.DISTRICT_OPT_OUT and not self.student_id:
            raise InvalidConsentEventError(f"{self.kind} needs a student_id")
        unknown = self.categories - CATEGORIES
        if unknown:
            raise InvalidConsentEventError(f"unknown categories: {sorted(unknown)}")
        if self.granted_by is not None and not isinstance(self.granted_by, GrantedBy):
            raise InvalidConsentEventError("granted_by is not GUARDIAN or ELIGIBLE_STUDENT")
        if self.method is not None and not isinstance(self.method, SigningMethod):
            raise InvalidConsentEventError(
                f"method is not one of {', '.join(m.value for m in SigningMethod)}"
            )
        if self.kind not in _HAS_CATEGORIES and self.granted_by is not None:
            raise InvalidConsentEventError(f"{self.kind} takes no granted_by")
        if self.kind is not ConsentKind.GRANT and any(
            v is not None
            for v in (self.guardian_id, self.signed_at, self.method, self.document_ref)
        ):
            raise InvalidConsentEventError(
                f"{self.kind} takes no guardian_id, signed_at, method or document_ref"
            )
        if self.granted_by is GrantedBy.ELIGIBLE_STUDENT and self.guardian_id is not None:
            raise InvalidConsentEventError(
                "guardian_id is only for a grant given by a guardian (granted_by GUARDIAN)"
            )

    @property
    def by_guardian(self) -> bool:
        """A grant or revoke of a guardian (one without ``granted_by`` counts as one)."""
        return self.granted_by is not GrantedBy.ELIGIBLE_STUDENT

    @property
    def sort_key(self) -> tuple[int, str]:
        return (self.effective_at, self.event_id)

    @property
    def is_district_event(self) -> bool:
        return self.kind is ConsentKind.DISTRICT_OPT_OUT

    @classmethod
    def from_avro(cls, value: Mapping[str, Any]) -> ConsentEvent:
        """From a decoded ConsentChanged value (timestamps as int millis or aware datetimes)."""
        try:
            kind = ConsentKind(value["kind"])
            expires = value.get("expires_at")
            signed = value.get("signed_at")
            # ConsentChanged: categories are ignored by kinds other than GRANT and REVOKE.
            categories = (value.get("categories") or ()) if kind in _HAS_CATEGORIES else ()
            return cls(
                event_id=str(value["event_id"]),
                kind=kind,
                district_id=_shared(str(value["district_id"])),
                effective_at=to_epoch_ms(value["effective_at"]),
                student_id=_shared(value.get("student_id")),
                partner=_shared(value.get("partner")),
                categories=_shared_set(categories),
                purpose=_shared(value.get("purpose")),
                expires_at=None if expires is None else to_epoch_ms(expires),
                recorded_by=_shared(str(value.get("recorded_by", ""))),
                source_system=_shared(str(value.get("source_system", ""))),
                granted_by=_enum(GrantedBy, value.get("granted_by")),
                guardian_id=value.get("guardian_id"),
                signed_at=None if signed is None else to_epoch_ms(signed),
                method=_enum(SigningMethod, value.get("method")),
                document_ref=value.get("document_ref"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, InvalidConsentEventError):
                raise
            raise InvalidConsentEventError(f"bad ConsentChanged value: {exc!r}") from exc

    def to_avro(self) -> dict[str, Any]:
        """A ConsentChanged value for the Avro serializer (timestamps as int millis)."""
        return {
            "event_id": self.event_id,
            "kind": self.kind.value,
            "student_id": self.student_id,
            "district_id": self.district_id,
            "partner": self.partner,
            "categories": sorted(self.categories),
            "purpose": self.purpose,
            "effective_at": self.effective_at,
            "expires_at": self.expires_at,
            "recorded_by": self.recorded_by,
            "source_system": self.source_system,
            "granted_by": None if self.granted_by is None else self.granted_by.value,
            "guardian_id": self.guardian_id,
            "signed_at": self.signed_at,
            "method": None if self.method is None else self.method.value,
            "document_ref": self.document_ref,
        }

    def _row(self) -> list[Any]:
        return [
            self.event_id,
            self.kind.value,
            self.district_id,
            self.effective_at,
            self.student_id,
            self.partner,
            sorted(self.categories),
            self.purpose,
            self.expires_at,
            self.recorded_by,
            self.source_system,
            *self._provenance_row(),
        ]

    def _provenance_row(self) -> list[Any]:
        """The provenance columns; none at all without provenance, so a history written
        before provenance existed serialises (and compares) as it did."""
        row = [
            None if self.granted_by is None else self.granted_by.value,
            self.guardian_id,
            self.signed_at,
            None if self.method is None else self.method.value,
            self.document_ref,
        ]
        return row if any(v is not None for v in row) else []

    def _canonical(self) -> str:
        return json.dumps(self._row(), separators=(",", ":"))

    @classmethod
    def _from_row(cls, row: list[Any]) -> ConsentEvent:
        (eid, kind, district, eff, student, partner, cats, purpose, exp, by, source) = row[:11]
        granted_by, guardian, signed, method, document = (row[11:] or [None] * 5)[:5]
        return cls(
            event_id=eid,
            kind=ConsentKind(kind),
            district_id=_shared(district),
            effective_at=int(eff),
            student_id=_shared(student),
            partner=_shared(partner),
            categories=_shared_set(cats),
            purpose=_shared(purpose),
            expires_at=None if exp is None else int(exp),
            recorded_by=_shared(by),
            source_system=_shared(source),
            granted_by=_enum(GrantedBy, granted_by),
            guardian_id=guardian,
            signed_at=None if signed is None else int(signed),
            method=_enum(SigningMethod, method),
            document_ref=document,
        )


def provenance_problem(event: ConsentEvent) -> str | None:
    """What a GRANT lacks of its provenance (FERPA 99.30: who signed, when, how, and the
    document), naming the missing fields and never a value; None when complete or
    when the event is not a grant."""
    missing = missing_provenance(event)
    if not missing:
        return None
    why = (
        "a guardian's grant names the guardian"
        if missing == ("guardian_id",)
        else "a consent grant records who gave it (granted_by, and guardian_id for a "
        "guardian), when it was signed (signed_at), how (method) and the signed document "
        "(document_ref)"
    )
    return f"GRANT without provenance: {', '.join(missing)} missing ({why})"


def missing_provenance(event: ConsentEvent) -> tuple[str, ...]:
    """The provenance fields (:data:`PROVENANCE_FIELDS`) a GRANT lacks; () for other kinds."""
    if event.kind is not ConsentKind.GRANT:
        return ()
    return tuple(
        name
        for name, value in (
            ("granted_by", event.granted_by),
            (
                "guardian_id",
                event.guardian_id if event.granted_by is GrantedBy.GUARDIAN else "n/a",
            ),
            ("signed_at", event.signed_at),
            ("method", event.method),
            ("document_ref", event.document_ref),
        )
        if value is None or (isinstance(value, str) and not value.strip())
    )


_E = TypeVar("_E", GrantedBy, SigningMethod)


def _enum(kind: type[_E], value: Any) -> _E | None:
    if value is None:
        return None
    try:
        return kind(value)
    except ValueError:
        raise InvalidConsentEventError(
            f"{'granted_by' if kind is GrantedBy else 'method'} is not one of "
            f"{', '.join(m.value for m in kind)}"
        ) from None


# Memory: a worker holds the consent histories of up to millions of students. The same few
# district ids, partners, category sets and recorders recur in every event, and a student id
# is also the table's key, so each is kept once (interned) instead of once per event.
_CATEGORY_SETS: dict[frozenset[str], frozenset[str]] = {}
_MAX_CATEGORY_SETS = 4096


@overload
def _shared(value: str) -> str: ...
@overload
def _shared(value: None) -> None: ...
@overload
def _shared(value: str | None) -> str | None: ...
def _shared(value: str | None) -> str | None:
    return None if value is None else sys.intern(value)


def _shared_set(categories: Iterable[str]) -> frozenset[str]:
    key = frozenset(categories)
    found = _CATEGORY_SETS.get(key)
    if found is None:
        found = key
        if len(_CATEGORY_SETS) < _MAX_CATEGORY_SETS:
            _CATEGORY_SETS[key] = key
    return found


@dataclass(frozen=True, slots=True)
class ConsentStatus:
    """What one student's consent events say about one partner at one time."""

    partner: str
    parent_opted_out_all: bool = False
    parent_opted_out_partner: bool = False
    directory_opt_out: bool = False
    live_consent_categories: frozenset[str] = frozenset()


def revoke_spares_student(event: ConsentEvent, majority_at: int | None) -> bool:
    """Whether a REVOKE leaves the student's own grants standing: a guardian's revoke
    effective at or after the student came of age (the rights are the student's then)."""
    return (
        event.granted_by is GrantedBy.GUARDIAN
        and majority_at is not None
        and event.effective_at >= majority_at
    )


def _in_force(event: ConsentEvent | None, now_ms: int) -> bool:
    return event is not None and (event.expires_at is None or now_ms < event.expires_at)


def _scope(event: ConsentEvent) -> tuple[str, str | None]:
    """The scope an opt-out governs: its kind, and the partner for per-partner kinds."""
    return (event.kind.value, event.partner)


def _insert(
    events: tuple[ConsentEvent, ...], event: ConsentEvent
) -> tuple[ConsentEvent, ...] | None:
    """``events`` with ``event`` inserted in key order; None when nothing changes.

    A second event with an existing event id replaces the first only if its canonical form sorts
    higher, so conflicting duplicates resolve the same way whatever the arrival order.
    """
    for i, existing in enumerate(events):
        if existing.event_id == event.event_id:
            if existing == event or existing._canonical() >= event._canonical():
                return None
            events = events[:i] + events[i + 1 :]
            break
    keys = [e.sort_key for e in events]
    at = bisect.bisect_right(keys, event.sort_key)
    return (*events[:at], event, *events[at:])


@dataclass(frozen=True, slots=True)
class StudentConsentHistory:
    """The consent events of one student, sorted by (effective_at, event_id)."""

    events: tuple[ConsentEvent, ...] = field(default=())

    @classmethod
    def of(cls, events: Iterable[ConsentEvent]) -> StudentConsentHistory:
        history = cls()
        for event in events:
            history = history.apply(event)
        return history

    def apply(self, event: ConsentEvent) -> StudentConsentHistory:
        """A new history with ``event``; district events belong in ``DistrictState``."""
        if event.is_district_event:
            raise ValueError("DISTRICT_OPT_OUT belongs to DistrictState, not a student history")
        events = _insert(self.events, event)
        return self if events is None else StudentConsentHistory(events)

    def status_at(self, now_ms: int, partner: str, majority_at: int | None = None) -> ConsentStatus:
        """The student's status for ``partner`` at ``now_ms``; ``majority_at``: when the
        student comes of age (None: unknown, treated as a minor)."""
        all_out: ConsentEvent | None = None
        partner_out: ConsentEvent | None = None
        directory_out: ConsentEvent | None = None
        #: per category, until when a grant of the guardian (or of the student) counts
        guardian_until: dict[str, int] = {}
        student_until: dict[str, int] = {}
        for event in self.events:
            if event.effective_at > now_ms:
                break
            kind = event.kind
            if kind is ConsentKind.GRANT:
                if event.partner == partner:
                    until = _FOREVER if event.expires_at is None else event.expires_at
                    live_until = guardian_until if event.by_guardian else student_until
                    for category in event.categories:
                        if until > live_until.get(category, -_FOREVER):
                            live_until[category] = until
            elif kind is ConsentKind.REVOKE:
                if event.partner == partner:
                    withdrawn = [guardian_until]
                    if not revoke_spares_student(event, majority_at):
                        withdrawn.append(student_until)
                    for live_until in withdrawn:
                        if event.categories:
                            for category in event.categories:
                                live_until.pop(category, None)
                        else:
                            live_until.clear()
            elif kind is ConsentKind.ALL_OPT_OUT:
                all_out = event
            elif kind is ConsentKind.DIRECTORY_OPT_OUT:
                directory_out = event
            elif kind is ConsentKind.PARTNER_OPT_OUT and event.partner == partner:
                partner_out = event
        of_age = majority_at is not None and now_ms >= majority_at
        live_until = student_until if of_age else guardian_until
        return ConsentStatus(
            partner=partner,
            parent_opted_out_all=_in_force(all_out, now_ms),
            parent_opted_out_partner=_in_force(partner_out, now_ms),
            directory_opt_out=_in_force(directory_out, now_ms),
            live_consent_categories=frozenset(c for c, u in live_until.items() if now_ms < u),
        )

    def compact(self, horizon_ms: int, *, keep_endings: bool = False) -> StudentConsentHistory:
        """Drop the events that cannot change ``status_at(t, p)`` for any t >= horizon_ms.

        ``keep_endings``: also keep, for each partner and category, the last grant or revoke
        about it, even a grant that has expired, so that why a category has no consent
        (revoked, expired or never given; ``streams.processor.decider.consent_endings``) is
        also the same from the horizon on. Either way a late event (one dated before the
        horizon) applied to the compacted history gives what it gives to the full one.
        """
        seen_scopes: set[tuple[str, str | None]] = set()
        # later revokes by the horizon: those that withdraw every grant (``revoked_all``,
        # ``revoked``), and a guardian's, that may spare the student's own grants (its
        # majority is not known here), which surely withdraw only guardian grants and revokes
        revoked_all: set[str] = set()
        revoked: set[tuple[str, str]] = set()
        guardian_revoked_all: set[str] = set()
        guardian_revoked: set[tuple[str, str]] = set()
        #: (partner, category) with a later grant or revoke about it, by the horizon
        mentioned: set[tuple[str, str]] = set()

        def covered(partner: str, category: str, guardian_only: bool = False) -> bool:
            return (
                partner in revoked_all
                or (partner, category) in revoked
                or (
                    guardian_only
                    and (partner in guardian_revoked_all or (partner, category) in guardian_revoked)
                )
            )

        def said_later(partner: str, category: str) -> bool:
            return partner in revoked_all or (partner, category) in mentioned

        kept: list[ConsentEvent] = []
        for event in reversed(self.events):
            partner = event.partner or ""
            if event.kind is ConsentKind.GRANT:
                expired = event.expires_at is not None and (
                    event.expires_at <= horizon_ms or event.expires_at <= event.effective_at
                )
                guardian = event.by_guardian
                keep = not expired and not all(
                    covered(partner, c, guardian) for c in event.categories
                )
                if keep_endings and not keep:
                    keep = not all(said_later(partner, c) for c in event.categories)
            elif event.kind is ConsentKind.REVOKE:
                # a revoke is redundant only under a later one that withdraws everything: a
                # later guardian's revoke may come after the majority and spare what this
                # one withdraws (a student's grant signed before it)
                if event.categories:
                    keep = not all(covered(partner, c) for c in event.categories)
                else:
                    keep = partner not in revoked_all
            else:
                keep = _scope(event) not in seen_scopes
            if keep:
                kept.append(event)
            if event.effective_at <= horizon_ms:
                if event.kind is ConsentKind.REVOKE:
                    spares = event.granted_by is GrantedBy.GUARDIAN
                    if event.categories:
                        (guardian_revoked if spares else revoked).update(
                            (partner, c) for c in event.categories
                        )
                        if not spares:  # a guardian's may not count (after the majority)
                            mentioned.update((partner, c) for c in event.categories)
                    else:
                        (guardian_revoked_all if spares else revoked_all).add(partner)
                elif event.kind is ConsentKind.GRANT:
                    mentioned.update((partner, c) for c in event.categories)
                else:
                    seen_scopes.add(_scope(event))
        if len(kept) == len(self.events):
            return self
        kept.reverse()
        return StudentConsentHistory(tuple(kept))

    def to_bytes(self) -> bytes:
        return _dump(self.events)

    @classmethod
    def from_bytes(cls, data: bytes) -> StudentConsentHistory:
        events = _load(data)
        if any(e.is_district_event for e in events):
            raise ValueError("a student history cannot hold DISTRICT_OPT_OUT events")
        return cls(events)


@dataclass(frozen=True, slots=True)
class DistrictState:
    """The DISTRICT_OPT_OUT events of one district, sorted by (effective_at, event_id)."""

    events: tuple[ConsentEvent, ...] = field(default=())

    @classmethod
    def of(cls, events: Iterable[ConsentEvent]) -> DistrictState:
        state = cls()
        for event in events:
            state = state.apply(event)
        return state

    def apply(self, event: ConsentEvent) -> DistrictState:
        if not event.is_district_event:
            raise ValueError(f"{event.kind} belongs to a student history, not DistrictState")
        events = _insert(self.events, event)
        return self if events is None else DistrictState(events)

    def opted_out_partners(self, now_ms: int) -> frozenset[str]:
        latest: dict[str, ConsentEvent] = {}
        for event in self.events:
            if event.effective_at > now_ms:
                break
            latest[event.partner or ""] = event
        return frozenset(p for p, e in latest.items() if _in_force(e, now_ms))

    def opted_out(self, now_ms: int, partner: str) -> bool:
        latest: ConsentEvent | None = None
        for event in self.events:
            if event.effective_at > now_ms:
                break
            if event.partner == partner:
                latest = event
        return _in_force(latest, now_ms)

    def compact(self, horizon_ms: int) -> DistrictState:
        """Drop the events that cannot change ``opted_out(t, p)`` for any t >= horizon_ms."""
        seen: set[tuple[str, str | None]] = set()
        kept: list[ConsentEvent] = []
        for event in reversed(self.events):
            if _scope(event) not in seen:
                kept.append(event)
            if event.effective_at <= horizon_ms:
                seen.add(_scope(event))
        if len(kept) == len(self.events):
            return self
        kept.reverse()
        return DistrictState(tuple(kept))

    def to_bytes(self) -> bytes:
        return _dump(self.events)

    @classmethod
    def from_bytes(cls, data: bytes) -> DistrictState:
        events = _load(data)
        if not all(e.is_district_event for e in events):
            raise ValueError("a district state holds only DISTRICT_OPT_OUT events")
        return cls(events)


def _dump(events: tuple[ConsentEvent, ...]) -> bytes:
    body = {"v": _FORMAT_VERSION, "events": [e._row() for e in events]}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def _load(data: bytes) -> tuple[ConsentEvent, ...]:
    try:
        body = json.loads(data)
        if body.get("v") != _FORMAT_VERSION:
            raise ValueError(f"unsupported consent state format {body.get('v')!r}")
        events = tuple(ConsentEvent._from_row(row) for row in body["events"])
    except (TypeError, KeyError, AttributeError, ValueError) as exc:
        raise ValueError(f"not a serialised consent state: {exc}") from exc
    if [e.sort_key for e in events] != sorted(e.sort_key for e in events):
        raise ValueError("not a serialised consent state: events out of order")
    return events
