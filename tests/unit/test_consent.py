"""Consent state: grants, revocations, opt-outs, order independence, compaction, bytes."""

from __future__ import annotations

import io
import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import fastavro
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.policy.catalog import load_schema
from streams.policy.consent import (
    ConsentEvent,
    ConsentKind,
    ConsentStatus,
    DistrictState,
    GrantedBy,
    InvalidConsentEventError,
    StudentConsentHistory,
    to_epoch_ms,
)
from streams.processor.decider import consent_endings
from tests.unit.strategies import PARTNERS, district_events, student_events

REPO = Path(__file__).resolve().parents[2]
K = ConsentKind
_counter = iter(range(10**9))


def ev(
    kind: ConsentKind,
    at: int,
    partner: str | None = None,
    categories: Iterable[str] = (),
    expires: int | None = None,
    event_id: str | None = None,
) -> ConsentEvent:
    return ConsentEvent(
        event_id=event_id or f"e{next(_counter):06d}",
        kind=kind,
        district_id="d1",
        effective_at=at,
        student_id=None if kind is K.DISTRICT_OPT_OUT else "s1",
        partner=partner,
        categories=frozenset(categories),
        expires_at=expires,
        recorded_by="officer",
        source_system="test",
    )


def status(events: Iterable[ConsentEvent], now: int, partner: str = "p1") -> ConsentStatus:
    return StudentConsentHistory.of(events).status_at(now, partner)


# --- grants and revocations -------------------------------------------------------------------


def test_no_events_means_no_consent_and_no_opt_out() -> None:
    assert StudentConsentHistory().status_at(5, "p1") == ConsentStatus(partner="p1")


def test_grant_is_live_from_effective_until_expiry() -> None:
    events = [ev(K.GRANT, 10, "p1", ["special_medical"], expires=20)]
    assert status(events, 9).live_consent_categories == frozenset()
    assert status(events, 10).live_consent_categories == {"special_medical"}
    assert status(events, 19).live_consent_categories == {"special_medical"}
    assert status(events, 20).live_consent_categories == frozenset(), "expired counts as revoked"


def test_grant_concerns_only_its_partner() -> None:
    events = [ev(K.GRANT, 1, "p1", ["student_name"])]
    assert status(events, 5, "p2").live_consent_categories == frozenset()


def test_later_revoke_removes_only_its_categories() -> None:
    events = [
        ev(K.GRANT, 1, "p1", ["student_name", "special_medical"]),
        ev(K.REVOKE, 5, "p1", ["special_medical"]),
    ]
    assert status(events, 4).live_consent_categories == {"student_name", "special_medical"}
    assert status(events, 5).live_consent_categories == {"student_name"}


def test_revoke_without_categories_revokes_every_category_of_that_partner() -> None:
    events = [
        ev(K.GRANT, 1, "p1", ["student_name", "special_medical"]),
        ev(K.GRANT, 1, "p2", ["student_name"]),
        ev(K.REVOKE, 5, "p1"),
    ]
    assert status(events, 6, "p1").live_consent_categories == frozenset()
    assert status(events, 6, "p2").live_consent_categories == {"student_name"}


def test_grant_after_revoke_is_live_again() -> None:
    events = [
        ev(K.GRANT, 1, "p1", ["special_medical"]),
        ev(K.REVOKE, 5, "p1"),
        ev(K.GRANT, 8, "p1", ["special_medical"]),
    ]
    assert status(events, 6).live_consent_categories == frozenset()
    assert status(events, 8).live_consent_categories == {"special_medical"}


def test_effective_time_wins_over_arrival_order() -> None:
    """A revocation effective before a grant does not undo it, whenever it arrives."""
    grant = ev(K.GRANT, 10, "p1", ["special_medical"])
    old_revoke = ev(K.REVOKE, 5, "p1", ["special_medical"])
    history = StudentConsentHistory().apply(grant).apply(old_revoke)
    assert history.status_at(12, "p1").live_consent_categories == {"special_medical"}


def test_same_effective_time_is_ordered_by_event_id() -> None:
    def live(grant_id: str, revoke_id: str) -> frozenset[str]:
        events = [
            ev(K.GRANT, 5, "p1", ["conduct"], event_id=grant_id),
            ev(K.REVOKE, 5, "p1", ["conduct"], event_id=revoke_id),
        ]
        return status(events, 5).live_consent_categories

    assert live(grant_id="b", revoke_id="a") == {"conduct"}
    assert live(grant_id="a", revoke_id="b") == frozenset()


def test_overlapping_grants_count_until_each_expires() -> None:
    events = [
        ev(K.GRANT, 1, "p1", ["assessment"], expires=10),
        ev(K.GRANT, 5, "p1", ["assessment"], expires=30),
    ]
    assert status(events, 20).live_consent_categories == {"assessment"}
    assert status(events, 30).live_consent_categories == frozenset()


def test_future_events_do_not_count_yet() -> None:
    events = [ev(K.ALL_OPT_OUT, 50), ev(K.GRANT, 40, "p1", ["assessment"])]
    assert status(events, 30) == ConsentStatus(partner="p1")


# --- opt-outs ----------------------------------------------------------------------------------


def test_partner_opt_out_concerns_only_that_partner() -> None:
    events = [ev(K.PARTNER_OPT_OUT, 3, "p1")]
    assert status(events, 4, "p1").parent_opted_out_partner
    assert not status(events, 4, "p2").parent_opted_out_partner
    assert not status(events, 2, "p1").parent_opted_out_partner


def test_all_and_directory_opt_outs_concern_every_partner() -> None:
    events = [ev(K.ALL_OPT_OUT, 3), ev(K.DIRECTORY_OPT_OUT, 6)]
    for partner in PARTNERS:
        at_4 = status(events, 4, partner)
        assert at_4.parent_opted_out_all and not at_4.directory_opt_out
        at_6 = status(events, 6, partner)
        assert at_6.parent_opted_out_all and at_6.directory_opt_out


def test_opt_out_with_expiry_ends_then() -> None:
    events = [ev(K.DIRECTORY_OPT_OUT, 3, expires=10)]
    assert status(events, 9).directory_opt_out
    assert not status(events, 10).directory_opt_out


def test_opt_out_is_lifted_by_a_later_zero_length_opt_out_of_the_same_scope() -> None:
    events = [ev(K.PARTNER_OPT_OUT, 3, "p1"), ev(K.PARTNER_OPT_OUT, 8, "p1", expires=8)]
    assert status(events, 7).parent_opted_out_partner
    assert not status(events, 8).parent_opted_out_partner


def test_lifting_one_partner_opt_out_leaves_the_others() -> None:
    events = [
        ev(K.PARTNER_OPT_OUT, 3, "p1"),
        ev(K.PARTNER_OPT_OUT, 3, "p2"),
        ev(K.PARTNER_OPT_OUT, 8, "p2", expires=8),
    ]
    assert status(events, 9, "p1").parent_opted_out_partner
    assert not status(events, 9, "p2").parent_opted_out_partner


def test_a_grant_does_not_lift_an_opt_out() -> None:
    events = [ev(K.PARTNER_OPT_OUT, 3, "p1"), ev(K.GRANT, 8, "p1", ["student_name"])]
    now = status(events, 9)
    assert now.parent_opted_out_partner
    assert now.live_consent_categories == {"student_name"}


def test_district_state_opt_out_lift_and_scope() -> None:
    state = DistrictState.of(
        [
            ev(K.DISTRICT_OPT_OUT, 5, "p1"),
            ev(K.DISTRICT_OPT_OUT, 5, "p2"),
            ev(K.DISTRICT_OPT_OUT, 9, "p2", expires=9),
        ]
    )
    assert not state.opted_out(4, "p1")
    assert state.opted_out(5, "p1") and state.opted_out(5, "p2")
    assert state.opted_out(9, "p1") and not state.opted_out(9, "p2")
    assert state.opted_out_partners(9) == {"p1"}
    assert state.opted_out_partners(6) == {"p1", "p2"}


# --- applying -----------------------------------------------------------------------------------


def test_applying_an_event_twice_changes_nothing() -> None:
    event = ev(K.GRANT, 1, "p1", ["student_name"])
    once = StudentConsentHistory().apply(event)
    assert once.apply(event) is once


def test_conflicting_events_with_one_id_resolve_the_same_whatever_the_order() -> None:
    a = ev(K.GRANT, 1, "p1", ["student_name"], event_id="same")
    b = ev(K.REVOKE, 1, "p1", event_id="same")
    ab = StudentConsentHistory().apply(a).apply(b)
    ba = StudentConsentHistory().apply(b).apply(a)
    assert ab == ba
    assert len(ab.events) == 1


def test_histories_and_district_states_take_only_their_own_events() -> None:
    with pytest.raises(ValueError, match="DistrictState"):
        StudentConsentHistory().apply(ev(K.DISTRICT_OPT_OUT, 1, "p1"))
    with pytest.raises(ValueError, match="student history"):
        DistrictState().apply(ev(K.ALL_OPT_OUT, 1))


# --- event validation and Avro -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "partner", "categories", "message"),
    [
        (K.GRANT, "p1", (), "at least one category"),
        (K.GRANT, None, ("student_name",), "needs a partner"),
        (K.REVOKE, None, (), "needs a partner"),
        (K.PARTNER_OPT_OUT, None, (), "needs a partner"),
        (K.DISTRICT_OPT_OUT, None, (), "needs a partner"),
        (K.ALL_OPT_OUT, "p1", (), "takes no partner"),
        (K.DIRECTORY_OPT_OUT, "p1", (), "takes no partner"),
        (K.PARTNER_OPT_OUT, "p1", ("student_name",), "takes no categories"),
        (K.GRANT, "p1", ("student_names",), "unknown categories"),
    ],
)
def test_invalid_events_are_refused(
    kind: ConsentKind, partner: str | None, categories: tuple[str, ...], message: str
) -> None:
    with pytest.raises(InvalidConsentEventError, match=message):
        ev(kind, 1, partner, categories)


def test_student_events_need_a_student_id() -> None:
    with pytest.raises(InvalidConsentEventError, match="student_id"):
        ConsentEvent(event_id="e", kind=K.ALL_OPT_OUT, district_id="d1", effective_at=1)


def avro_value(**overrides: object) -> dict[str, object]:
    value: dict[str, object] = {
        "event_id": "c-1",
        "kind": "GRANT",
        "student_id": "s1",
        "district_id": "d1",
        "partner": "carewell-health",
        "categories": ["special_medical", "student_name"],
        "purpose": "school nursing",
        "effective_at": datetime(2026, 9, 1, tzinfo=UTC),
        "expires_at": datetime(2027, 6, 30, tzinfo=UTC),
        "recorded_by": "parent-portal",
        "source_system": "parent-portal",
    }
    value.update(overrides)
    return value


def test_from_avro_reads_a_decoded_consent_changed_value() -> None:
    event = ConsentEvent.from_avro(avro_value())
    assert event.kind is K.GRANT
    assert event.categories == {"special_medical", "student_name"}
    assert event.effective_at == 1_788_220_800_000
    assert event.expires_at == 1_814_313_600_000


def test_from_avro_round_trips_through_the_consent_changed_schema() -> None:
    schema = fastavro.parse_schema(load_schema("consent_changed"))
    event = ConsentEvent.from_avro(avro_value())
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, event.to_avro())
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, schema, schema)
    assert ConsentEvent.from_avro(decoded) == event  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "example", sorted((REPO / "schemas" / "examples").glob("consent_changed.*.json")), ids=str
)
def test_every_consent_example_applies_to_its_state(example: Path) -> None:
    event = ConsentEvent.from_avro(json.loads(example.read_text(encoding="utf-8")))
    assert event.kind.value == example.name.split(".")[1].upper()
    if event.is_district_event:
        assert DistrictState().apply(event).events == (event,)
    else:
        assert StudentConsentHistory().apply(event).events == (event,)


def test_from_avro_ignores_categories_of_opt_outs() -> None:
    event = ConsentEvent.from_avro(avro_value(kind="PARTNER_OPT_OUT", expires_at=None))
    assert event.categories == frozenset()


@pytest.mark.parametrize(
    "overrides",
    [
        {"kind": "MAYBE"},
        {"effective_at": datetime(2026, 9, 1)},  # naive on purpose
        {"effective_at": "yesterday"},
        {"categories": ["not_a_category"]},
        {"partner": None},
    ],
)
def test_from_avro_refuses_bad_values(overrides: dict[str, object]) -> None:
    with pytest.raises(InvalidConsentEventError):
        ConsentEvent.from_avro(avro_value(**overrides))


def test_to_epoch_ms_respects_time_zones() -> None:
    new_york = timezone(timedelta(hours=-5))
    assert to_epoch_ms(datetime(2026, 1, 1, 0, 0, tzinfo=new_york)) == 1_767_243_600_000
    assert to_epoch_ms(1234) == 1234


# --- bytes ----------------------------------------------------------------------------------------


def test_history_round_trips_through_bytes() -> None:
    history = StudentConsentHistory.of(
        [
            ev(K.GRANT, 1, "p1", ["student_name", "special_medical"], expires=99),
            ev(K.DIRECTORY_OPT_OUT, 2),
            ev(K.REVOKE, 3, "p2"),
        ]
    )
    assert StudentConsentHistory.from_bytes(history.to_bytes()) == history
    district = DistrictState.of([ev(K.DISTRICT_OPT_OUT, 1, "p1")])
    assert DistrictState.from_bytes(district.to_bytes()) == district


@pytest.mark.parametrize(
    "data",
    [b"", b"not json", b'{"v": 2, "events": []}', b'{"v": 1}', b'{"v": 1, "events": [[1]]}'],
)
def test_from_bytes_refuses_garbage(data: bytes) -> None:
    with pytest.raises(ValueError, match="consent state"):
        StudentConsentHistory.from_bytes(data)


def test_from_bytes_refuses_the_other_kind_of_state() -> None:
    district = DistrictState.of([ev(K.DISTRICT_OPT_OUT, 1, "p1")])
    with pytest.raises(ValueError, match="DISTRICT_OPT_OUT"):
        StudentConsentHistory.from_bytes(district.to_bytes())
    student = StudentConsentHistory.of([ev(K.ALL_OPT_OUT, 1)])
    with pytest.raises(ValueError, match="only DISTRICT_OPT_OUT"):
        DistrictState.from_bytes(student.to_bytes())


# --- properties ---------------------------------------------------------------------------------


def reference_status(
    events: list[ConsentEvent], now: int, partner: str, majority: int | None = None
) -> ConsentStatus:
    """The consent rules written out literally, one event against every other. Whose
    grants count: the guardian's before the student comes of age (``majority``, None:
    never), the student's own from then on; a guardian's revoke dated from the majority on
    withdraws no grant of the student."""
    effective = [e for e in events if e.effective_at <= now]
    of_age = majority is not None and now >= majority

    def counts(grant: ConsentEvent) -> bool:
        by_student = grant.granted_by is GrantedBy.ELIGIBLE_STUDENT
        return by_student if of_age else not by_student

    def withdraws(revoke: ConsentEvent, grant: ConsentEvent) -> bool:
        guardian_after_majority = (
            revoke.granted_by is GrantedBy.GUARDIAN
            and majority is not None
            and revoke.effective_at >= majority
        )
        return not (guardian_after_majority and grant.granted_by is GrantedBy.ELIGIBLE_STUDENT)

    def key(e: ConsentEvent) -> tuple[int, str]:
        return (e.effective_at, e.event_id)

    def in_force(kind: ConsentKind, for_partner: str | None = None) -> bool:
        scope = [e for e in effective if e.kind is kind and e.partner == for_partner]
        latest = max(scope, key=key, default=None)
        return latest is not None and (latest.expires_at is None or now < latest.expires_at)

    live: set[str] = set()
    for grant in effective:
        if grant.kind is not K.GRANT or grant.partner != partner or not counts(grant):
            continue
        if grant.expires_at is not None and now >= grant.expires_at:
            continue
        for category in grant.categories:
            revoked = any(
                r.kind is K.REVOKE
                and r.partner == partner
                and key(r) > key(grant)
                and (not r.categories or category in r.categories)
                and withdraws(r, grant)
                for r in effective
            )
            if not revoked:
                live.add(category)
    return ConsentStatus(
        partner=partner,
        parent_opted_out_all=in_force(K.ALL_OPT_OUT),
        parent_opted_out_partner=in_force(K.PARTNER_OPT_OUT, partner),
        directory_opt_out=in_force(K.DIRECTORY_OPT_OUT),
        live_consent_categories=frozenset(live),
    )


event_lists = st.lists(student_events(), max_size=12)
#: the categories student_events draws (tests/unit/strategies.py consent_categories)
ALL_CATEGORIES = frozenset({"student_name", "special_medical", "assessment", "conduct"})
short_ids = st.text(alphabet="ab", min_size=1, max_size=2)
colliding_event_lists = st.lists(student_events(event_ids=short_ids), max_size=12)
times = st.integers(-1, 30)
#: when the student comes of age (None: no birth date, a minor)
majorities = st.none() | st.integers(-1, 30)


@given(event_lists, times, majorities)
def test_status_follows_the_rules_written_out(
    events: list[ConsentEvent], now: int, majority: int | None
) -> None:
    history = StudentConsentHistory.of(events)
    for partner in PARTNERS:
        assert history.status_at(now, partner, majority) == reference_status(
            events, now, partner, majority
        )


@given(colliding_event_lists, st.randoms(use_true_random=False))
def test_the_same_events_in_any_order_give_the_same_history(
    events: list[ConsentEvent], random: object
) -> None:
    shuffled = list(events)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    assert StudentConsentHistory.of(events) == StudentConsentHistory.of(shuffled)
    assert StudentConsentHistory.of([*events, *shuffled]) == StudentConsentHistory.of(events)


@given(event_lists, event_lists, times, st.integers(0, 10), majorities)
def test_compaction_changes_nothing_from_the_horizon_on_even_for_late_events(
    early: list[ConsentEvent],
    late: list[ConsentEvent],
    horizon: int,
    later: int,
    majority: int | None,
) -> None:
    compacted = StudentConsentHistory.of(early).compact(horizon)
    for event in late:
        compacted = compacted.apply(event)
    full = StudentConsentHistory.of([*early, *late])
    for now in (horizon, horizon + later):
        for partner in PARTNERS:
            assert compacted.status_at(now, partner, majority) == full.status_at(
                now, partner, majority
            )


@given(event_lists, event_lists, times, st.integers(0, 10), majorities)
def test_compaction_keeping_endings_also_keeps_why_a_category_has_no_consent(
    early: list[ConsentEvent],
    late: list[ConsentEvent],
    horizon: int,
    later: int,
    majority: int | None,
) -> None:
    compacted = StudentConsentHistory.of(early).compact(horizon, keep_endings=True)
    for event in late:
        compacted = compacted.apply(event)
    full = StudentConsentHistory.of([*early, *late])
    for now in (horizon, horizon + later):
        for partner in PARTNERS:
            assert compacted.status_at(now, partner, majority) == full.status_at(
                now, partner, majority
            )
            assert consent_endings(
                compacted, partner, ALL_CATEGORIES, now, majority
            ) == consent_endings(full, partner, ALL_CATEGORIES, now, majority)


@given(event_lists)
def test_compaction_keeps_a_history_bounded_by_what_is_in_force(
    events: list[ConsentEvent],
) -> None:
    horizon = 100  # after every effective time and every expiry the strategy draws
    kept = StudentConsentHistory.of(events).compact(horizon).events
    opt_out_scopes = [(e.kind, e.partner) for e in kept if e.kind not in (K.GRANT, K.REVOKE)]
    assert len(opt_out_scopes) == len(set(opt_out_scopes))
    assert not [e for e in kept if e.kind is K.GRANT and e.expires_at is not None]
    # a revoke that withdraws every grant of a partner is kept once; a guardian's may be
    # dated after the student's majority and spare the student's grants, so is not folded
    revoke_all = [
        e.partner
        for e in kept
        if e.kind is K.REVOKE and not e.categories and e.granted_by is not GrantedBy.GUARDIAN
    ]
    assert len(revoke_all) == len(set(revoke_all))


@given(colliding_event_lists)
def test_bytes_round_trip_keeps_every_event(events: list[ConsentEvent]) -> None:
    history = StudentConsentHistory.of(events)
    assert StudentConsentHistory.from_bytes(history.to_bytes()) == history


@given(
    st.lists(district_events(event_ids=short_ids), max_size=10),
    st.randoms(use_true_random=False),
    times,
    times,
)
def test_district_state_is_order_independent_and_compacts_safely(
    events: list[ConsentEvent], random: object, horizon: int, now: int
) -> None:
    shuffled = list(events)
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    state = DistrictState.of(events)
    assert state == DistrictState.of(shuffled)
    assert DistrictState.from_bytes(state.to_bytes()) == state
    compacted = state.compact(horizon)
    at = max(now, horizon)
    for partner in PARTNERS:
        latest = max(
            (e for e in events if e.partner == partner and e.effective_at <= at),
            key=lambda e: (e.effective_at, e.event_id),
            default=None,
        )
        # With colliding ids the surviving duplicate decides; compare against the state.
        expected = state.opted_out(at, partner)
        if len({e.event_id for e in events}) == len(events):
            expected = latest is not None and (latest.expires_at is None or at < latest.expires_at)
            assert state.opted_out(at, partner) == expected
        assert compacted.opted_out(at, partner) == expected
