"""The processor's handler and tables, driven in memory: each finding of the topology review
as a case that failed before (district opt-outs on one worker only, producer-dependent
co-partitioning, event time as the clock, district windows judged at the wrong time, stale
changes, per-worker secrets, duplicates), and the tables' restore."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from streams.policy.consent import ConsentEvent, ConsentKind, DistrictState, StudentConsentHistory
from streams.processor.app import ProcessorSetupError, check_fingerprints, secret_fingerprint
from streams.processor.clock import ManualClock
from streams.processor.decider import inputs_at
from streams.processor.routing import partition_for
from streams.processor.state import Tables, fingerprint_key, fingerprint_value
from tests.processor_harness import (
    REPO,
    Cluster,
    Record,
    crc32_partitioner,
    murmur2_partitioner,
    routes_for,
    sample_contracts,
)
from tests.provenance import GUARDIAN_SIGNED

NOW = int(datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp() * 1000)
HOUR, DAY = 3_600_000, 86_400_000
ROUTES = routes_for(sample_contracts())
BY_PARTNER = {r.partner: r for r in ROUTES}
BASE = json.loads(
    (REPO / "schemas" / "examples" / "student_record_changed.upsert.json").read_text()
)
DISTRICT = "NY-280201"


def change(
    student: str, at: int, event_id: str, operation: str = "UPSERT", name: str = "Daniel"
) -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(BASE)
    record.update(
        event_id=event_id,
        student_id=student,
        occurred_at=at,
        operation=operation,
        district_id=DISTRICT,
    )
    record["names"]["first_name"] = name
    return record


def grant(student: str, at: int, expires: int | None = None, event_id: str = "") -> ConsentEvent:
    return ConsentEvent(
        event_id or f"grant-{student}-{at}",
        ConsentKind.GRANT,
        DISTRICT,
        at,
        student,
        "carewell-health",
        frozenset({"special_medical"}),
        expires_at=expires,
        **GUARDIAN_SIGNED,
    )


def district_opt_out(
    partner: str, at: int, expires: int | None = None, event_id: str = ""
) -> ConsentEvent:
    return ConsentEvent(
        event_id or f"district-{partner}-{at}",
        ConsentKind.DISTRICT_OPT_OUT,
        DISTRICT,
        at,
        None,
        partner,
        expires_at=expires,
    )


class Bus:
    def __init__(self, partitions: int = 4, workers: int = 1) -> None:
        self.clock = ManualClock(NOW)
        self.cluster = Cluster(ROUTES, partitions, self.clock)
        for _ in range(workers):
            self.cluster.start_worker()
        self.cluster.rebalance()

    def change(
        self, record: dict[str, Any], partitioner: Any = murmur2_partitioner, key: str | None = None
    ) -> None:
        self.cluster.broker.produce(
            self.cluster.topics.changes,
            (key or record["student_id"]).encode(),
            orjson.dumps(record),
            partitioner,
        )

    def consent(self, event: ConsentEvent, partitioner: Any = murmur2_partitioner) -> None:
        key = event.district_id if event.is_district_event else event.student_id or ""
        self.cluster.broker.produce(
            self.cluster.topics.consent, key.encode(), orjson.dumps(event.to_avro()), partitioner
        )

    def holds(self, partner: str) -> set[str]:
        route = BY_PARTNER[partner]
        keys = self.cluster.partner_state(route)
        return {s for s in STUDENTS if route.key(s) in keys}

    def settle(self) -> None:
        self.cluster.drain()


STUDENTS = [f"NY-{i:03d}" for i in range(40)]


def dlq_reason(record: Record) -> bytes:
    reason = dict(record.headers_)["hallpass.dlq.reason"]
    assert isinstance(reason, bytes)
    return reason


def test_a_district_opt_out_binds_every_worker() -> None:
    bus = Bus(partitions=6, workers=3)
    for student in STUDENTS:
        bus.change(change(student, NOW - HOUR, f"c-{student}"))
    bus.settle()
    assert bus.holds("measurely") == set(STUDENTS)
    owners = {
        w.name
        for w in bus.cluster.workers
        for s in STUDENTS
        if partition_for(s.encode(), 6) in w.owned
    }
    assert len(owners) == 3, "the students are spread over the three workers"
    bus.consent(district_opt_out("measurely", NOW - 1))
    bus.settle()
    assert bus.holds("measurely") == set()
    assert bus.holds("learnwell") == set(STUDENTS)


@pytest.mark.parametrize("partitioner", [crc32_partitioner, murmur2_partitioner])
def test_an_opt_out_counts_whatever_partitioner_wrote_it(partitioner: Any) -> None:
    bus = Bus(partitions=4, workers=2)
    for student in STUDENTS:
        bus.change(change(student, NOW - HOUR, f"c-{student}"), murmur2_partitioner)
    bus.settle()
    for student in STUDENTS[:10]:
        bus.consent(
            ConsentEvent(f"out-{student}", ConsentKind.ALL_OPT_OUT, DISTRICT, NOW - 1, student),
            partitioner,
        )
    bus.settle()
    assert bus.holds("learnwell") == set(STUDENTS[10:])


def test_a_record_whose_key_is_not_its_student_is_a_dead_letter() -> None:
    bus = Bus()
    bus.change(change("NY-001", NOW - HOUR, "c-1"), key="NY-002")
    bus.settle()
    [dead] = bus.cluster.dead_letters()
    assert b"key is not its student_id" in dlq_reason(dead)
    assert bus.holds("learnwell") == set()


def test_a_consent_effective_later_discloses_nothing_until_then() -> None:
    bus = Bus()
    bus.change(change("NY-001", NOW - HOUR, "c-1"))
    bus.consent(grant("NY-001", NOW + 30 * DAY))
    bus.settle()
    assert bus.holds("carewell-health") == set()
    bus.clock.advance(30 * DAY)
    bus.settle()  # no event: the timer acts
    assert bus.holds("carewell-health") == {"NY-001"}


def test_a_row_dated_2099_is_a_dead_letter_and_moves_no_clock() -> None:
    bus = Bus()
    bus.change(change("NY-001", NOW - HOUR, "c-1"))
    bus.consent(grant("NY-001", NOW - HOUR, expires=NOW + DAY))
    bus.settle()
    assert bus.holds("carewell-health") == {"NY-001"}
    bus.change(change("NY-002", int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1000), "c-9"))
    bus.settle()
    [dead] = bus.cluster.dead_letters()
    assert dlq_reason(dead).startswith(b"future_dated")
    assert bus.holds("carewell-health") == {"NY-001"}, "the consent did not expire"
    assert bus.holds("learnwell") == {"NY-001"}


def test_an_expiry_on_a_quiet_partition_is_retracted_by_the_timer() -> None:
    bus = Bus()
    bus.change(change("NY-001", NOW - HOUR, "c-1"))
    bus.consent(grant("NY-001", NOW - HOUR, expires=NOW + HOUR))
    bus.settle()
    assert bus.holds("carewell-health") == {"NY-001"}
    bus.clock.advance(HOUR)
    bus.settle()
    assert bus.holds("carewell-health") == set()
    assert bus.holds("learnwell") == {"NY-001"}


def test_a_contract_end_is_retracted_with_no_event() -> None:
    bus = Bus()
    bus.change(change("NY-001", NOW - HOUR, "c-1"))
    bus.settle()
    assert bus.holds("learnwell") == {"NY-001"}
    bus.clock.set(BY_PARTNER["learnwell"].contract.active_until_ms)
    bus.settle()
    assert bus.holds("learnwell") == set()
    assert bus.holds("measurely") == {"NY-001"}


def test_district_opt_out_windows_are_per_partner_and_judged_now() -> None:
    bus = Bus()
    bus.change(change("NY-001", NOW - HOUR, "c-1"))
    # measurely: out now, lifted tomorrow; learnwell: out from next week (scheduled)
    bus.consent(district_opt_out("measurely", NOW - 1, expires=NOW + DAY))
    bus.consent(district_opt_out("learnwell", NOW + 7 * DAY))
    bus.settle()
    assert bus.holds("measurely") == set(), "a later event of another partner ended it"
    assert bus.holds("learnwell") == {"NY-001"}, "a scheduled opt-out acted at once"
    bus.clock.advance(DAY)
    bus.settle()
    assert bus.holds("measurely") == {"NY-001"}, "the lift did not act at its time"
    bus.clock.advance(6 * DAY)
    bus.settle()
    assert bus.holds("learnwell") == set()


def test_a_stale_change_does_not_bring_back_a_deleted_student() -> None:
    bus = Bus()
    bus.change(change("NY-001", NOW - 2 * HOUR, "c-1"))
    bus.change(change("NY-001", NOW - HOUR, "c-2", operation="DELETE"))
    bus.settle()
    assert bus.holds("learnwell") == set()
    bus.change(change("NY-001", NOW - 3 * HOUR, "c-0", name="Old"))  # arrives late
    bus.settle()
    assert bus.holds("learnwell") == set()
    bus.change(change("NY-001", NOW - 1, "c-3", name="Back"))
    bus.settle()
    assert bus.holds("learnwell") == {"NY-001"}
    worker = bus.cluster.workers[0]
    assert worker.handler.counters.skipped == {"stale": 1}


def test_the_same_event_twice_is_decided_once() -> None:
    bus = Bus()
    record = change("NY-001", NOW - HOUR, "c-1")
    bus.change(record)
    bus.change(record, crc32_partitioner)
    bus.settle()
    decided = [(d["event_id"], d["partner"]) for d in bus.cluster.ledger()]
    assert sorted(decided) == sorted(("c-1", r.partner) for r in ROUTES)


def test_a_worker_with_other_secrets_refuses_to_start() -> None:
    tables = Tables()
    bus_secret, other = b"s" * 32, b"t" * 32
    tables.load_global(
        fingerprint_key("learnwell"), fingerprint_value(secret_fingerprint(bus_secret))
    )
    check_fingerprints({"learnwell": bus_secret})(tables)  # the bus's own: starts
    with pytest.raises(ProcessorSetupError, match="not the bus's"):
        check_fingerprints({"learnwell": other})(tables)
    with pytest.raises(ProcessorSetupError, match="contracts apply"):
        check_fingerprints({"measurely": other})(tables)


def test_tables_restored_from_their_changelog_equal_the_originals() -> None:
    bus = Bus(partitions=3, workers=1)
    for student in STUDENTS[:12]:
        bus.change(change(student, NOW - HOUR, f"c-{student}"))
        bus.consent(grant(student, NOW - HOUR, expires=NOW + DAY))
    bus.consent(district_opt_out("measurely", NOW - 1))
    bus.settle()
    [worker] = bus.cluster.workers
    restored = bus.cluster.start_worker()
    bus.cluster.assign({restored.name: worker.owned})
    for number in worker.owned:
        before, after = worker.tables.partition(number), restored.tables.partition(number)
        assert after.records == before.records
        assert after.consent == before.consent
        assert after.holders == before.holders
        assert after.district_applied == before.district_applied
        assert after.clock == before.clock
    assert restored.tables.districts == worker.tables.districts


def test_a_long_consent_history_stays_bounded_and_decides_as_the_whole_one() -> None:
    """Forty rounds of yearly-style consent (a grant that expires, now and then a revoke, an
    opt-out and its lift): the stored history is compacted as it is updated and keeps only
    what decides from the partition's clock on; every decision input, the reasons why a
    category has no consent included, is the one the whole history gives."""
    bus = Bus()
    student, period = "NY-001", 10 * DAY
    bus.change(change(student, NOW - HOUR, "c-1"))
    bus.settle()
    [worker] = bus.cluster.workers
    partition = partition_for(student.encode(), bus.cluster.partitions)
    sent: list[ConsentEvent] = []
    held: list[bool] = []
    for n in range(40):
        start = NOW + n * period
        round_events = [grant(student, start, expires=start + period - HOUR)]
        if n % 3 == 1:
            round_events.append(
                ConsentEvent(
                    f"revoke-{n}",
                    ConsentKind.REVOKE,
                    DISTRICT,
                    start + period // 2,
                    student,
                    "carewell-health",
                    frozenset({"special_medical"}),
                )
            )
        if n % 5 == 2:
            round_events.append(
                ConsentEvent(
                    f"out-{n}",
                    ConsentKind.PARTNER_OPT_OUT,
                    DISTRICT,
                    start + DAY,
                    student,
                    "learnwell",
                    expires_at=start + 3 * DAY,
                )
            )
            round_events.append(
                ConsentEvent(
                    f"dir-{n}", ConsentKind.DIRECTORY_OPT_OUT, DISTRICT, start + DAY, student
                )
            )
        for event in round_events:
            bus.consent(event)
            sent.append(event)
        for at in (start, start + 2 * DAY, start + period // 2 + HOUR, start + period - 1):
            bus.clock.set(at)
            bus.settle()
            stored = worker.tables.partition(partition).consent[student]
            assert len(stored.events) <= 8, (n, stored.events)  # a round's, and the last word
            whole = StudentConsentHistory.of(sent)
            for route in ROUTES:
                assert inputs_at(route, stored, DistrictState(), at) == inputs_at(
                    route, whole, DistrictState(), at
                ), (n, at, route.partner)
            held.append(student in bus.holds("carewell-health"))
    stored = worker.tables.partition(partition).consent[student]
    assert len(sent) == 69
    assert len(stored.events) <= 6, stored.events
    assert True in held and False in held  # consent came and went
