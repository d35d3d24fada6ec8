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
from typing import Any, overload

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
        ]

    def _canonical(self) -> str:
        return json.dumps(self._row(), separators=(",", ":"))

    @classmethod
    def _from_row(cls, row: list[Any]) -> ConsentEvent:
        (eid, kind, district, eff, student, partner, cats, purpose, exp, by, source) = row
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
        )


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

    def status_at(self, now_ms: int, partner: str) -> ConsentStatus:
        all_out: ConsentEvent | None = None
        partner_out: ConsentEvent | None = None
        directory_out: ConsentEvent | None = None
        live_until: dict[str, int] = {}
        for event in self.events:
            if event.effective_at > now_ms:
                break
            kind = event.kind
            if kind is ConsentKind.GRANT:
                if event.partner == partner:
                    until = _FOREVER if event.expires_at is None else event.expires_at
                    for category in event.categories:
                        if until > live_until.get(category, -_FOREVER):
                            live_until[category] = until
            elif kind is ConsentKind.REVOKE:
                if event.partner == partner:
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
        revoked_all: set[str] = set()
        revoked: set[tuple[str, str]] = set()
        #: (partner, category) with a later grant or revoke about it, by the horizon
        mentioned: set[tuple[str, str]] = set()

        def covered(partner: str, category: str) -> bool:
            return partner in revoked_all or (partner, category) in revoked

        def said_later(partner: str, category: str) -> bool:
            return partner in revoked_all or (partner, category) in mentioned

        kept: list[ConsentEvent] = []
        for event in reversed(self.events):
            partner = event.partner or ""
            if event.kind is ConsentKind.GRANT:
                expired = event.expires_at is not None and (
                    event.expires_at <= horizon_ms or event.expires_at <= event.effective_at
                )
                keep = not expired and not all(covered(partner, c) for c in event.categories)
                if keep_endings and not keep:
                    keep = not all(said_later(partner, c) for c in event.categories)
            elif event.kind is ConsentKind.REVOKE:
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
                    if event.categories:
                        revoked.update((partner, c) for c in event.categories)
                        mentioned.update((partner, c) for c in event.categories)
                    else:
                        revoked_all.add(partner)
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
