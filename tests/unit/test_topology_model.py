"""A model-based check of the processor in production topology: 1-3 workers over 3-6
partitions, records from producers with either partitioner (Java's murmur2, librdkafka's
CRC32), future- and past-dated events, duplicates, rebalances and crashes, the wall clock
moving past consent, contract and district dates with no event to carry them.

The reference model is the same rules written the simplest way: one thread, every input at
once, the final record of each student by ``occurred_at``, consent and district status at the
final clock. After the cluster settles, every partner topic must hold exactly what the model
says, and no disclosure may ever include a field the model forbade at its time given every
consent and district event the cluster had settled before it.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import random
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.policy.consent import (
    ConsentEvent,
    ConsentKind,
    DistrictState,
    GrantedBy,
    StudentConsentHistory,
)
from streams.policy.decision import Disclosed, decide
from streams.policy.majority import MajorityAges, record_majority_at
from streams.processor.clock import ManualClock
from streams.processor.decider import PartnerRoute
from streams.processor.handlers import SOURCE_HEADER
from tests.processor_harness import (
    REPO,
    Cluster,
    crc32_partitioner,
    murmur2_partitioner,
    routes_for,
    sample_contracts,
)
from tests.provenance import GUARDIAN_SIGNED, STUDENT_SIGNED

HOUR = 3_600_000
DAY = 24 * HOUR
#: the run starts two days before learnwell's contract ends (2027-06-30, inclusive)
T0 = int(datetime(2027, 6, 29, tzinfo=UTC).timestamp() * 1000)
DISTRICTS = ("NY-1", "NY-2")
STUDENTS = tuple(f"NY-{100 + i}" for i in range(6))
#: a student who turns 18 a day into the run (34 CFR 99.5): from then on only the student's
#: own grants count, and partners lose what a guardian's grant gave them with no event to
#: carry it; the others are minors (the example record's birth date)
COMING_OF_AGE = "NY-105"
BORN_18_YEARS_BEFORE_DAY_2 = (date(2009, 6, 30) - date(1970, 1, 1)).days
BASE = json.loads(
    (REPO / "schemas" / "examples" / "student_record_changed.upsert.json").read_text()
)


def contracts() -> list[Any]:
    found = {c.partner: c for c in sample_contracts()}
    # a contract that starts during the run
    sunrise = dataclasses.replace(
        found["measurely"],
        partner="sunrise",
        topic="partner.sunrise.students",
        valid_from=date(2027, 6, 30),
        principal="User:sunrise",
    )
    return [*found.values(), sunrise]


ROUTES = routes_for(contracts())
PARTNERS = tuple(r.partner for r in ROUTES)


def snapshot(
    student: str, district: str, at: int, variant: int, event_id: str, deleted: bool
) -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(BASE)
    record.update(
        event_id=event_id,
        student_id=student,
        district_id=district,
        occurred_at=at,
        operation="DELETE" if deleted else "UPSERT",
    )
    record["names"]["first_name"] = f"Name{variant}"
    record["enrollment"]["grade_level"] = f"0{variant % 9 + 1}"
    record["special"]["medical_alerts"] = (
        [f"alert-{variant}"]
        if "medical_alerts" in record["special"]
        else record["special"].get("medical_alerts")
    )
    record["attendance"]["days_present"] = float(variant)
    if student == COMING_OF_AGE:
        record["demographics"]["birth_date"] = BORN_18_YEARS_BEFORE_DAY_2
    return record


# --- the scenario ------------------------------------------------------------------------


@dataclass
class Published:
    """What was published, for the model (valid: what the processor must decide)."""

    changes: list[dict[str, Any]] = field(default_factory=list)
    consents: list[ConsentEvent] = field(default_factory=list)
    dead: int = 0


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "partitions": draw(st.sampled_from([3, 4, 6])),
        "workers": draw(st.integers(1, 3)),
        "seed": draw(st.integers(0, 2**32 - 1)),
        "steps": draw(st.integers(20, 70)),
    }


def district_of(student: str) -> str:
    return DISTRICTS[int(student[-1]) % 2]


def provenance(kind: ConsentKind, rng: random.Random) -> dict[str, Any]:
    """A grant signed by a guardian or by the student; a revoke by either or unsaid."""
    if kind is ConsentKind.GRANT:
        return rng.choice([GUARDIAN_SIGNED, GUARDIAN_SIGNED, STUDENT_SIGNED])
    if kind is ConsentKind.REVOKE:
        return {"granted_by": rng.choice([None, GrantedBy.GUARDIAN, GrantedBy.ELIGIBLE_STUDENT])}
    return {}


def majority(record: dict[str, Any]) -> int | None:
    return record_majority_at(record, MajorityAges())


class Scenario:
    def __init__(self, partitions: int, workers: int, seed: int) -> None:
        self.rng = random.Random(seed)
        self.clock = ManualClock(T0)
        self.cluster = Cluster(ROUTES, partitions, self.clock, rng=self.rng)
        for _ in range(workers):
            self.cluster.start_worker()
        self.cluster.rebalance()
        self.published = Published()
        self.ids = 0
        #: per disclosure checked: the events settled before it
        self.settled = Published()
        self.checked = 0

    def next_id(self) -> str:
        self.ids += 1
        return f"ev-{self.ids:05d}"

    def partitioner(self) -> Any:
        return self.rng.choice([murmur2_partitioner, crc32_partitioner])

    # -- publishing ---------------------------------------------------------------------
    def publish_change(self) -> None:
        rng = self.rng
        topic = self.cluster.topics.changes
        student = rng.choice(STUDENTS)
        roll = rng.random()
        if roll < 0.08 and self.published.changes:
            # the same event again (an SIS retry, a re-run of a connector)
            again = rng.choice(self.published.changes)
            self.cluster.broker.produce(
                topic, again["student_id"].encode(), orjson.dumps(again), self.partitioner()
            )
            return
        at = self.clock.now_ms() - rng.randrange(0, 3 * DAY) + self.ids  # unique per event
        record = snapshot(
            student,
            district_of(student),
            at,
            rng.randrange(50),
            self.next_id(),
            deleted=rng.random() < 0.12,
        )
        if roll < 0.13:
            record["occurred_at"] = int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1000)
            self.published.dead += 1
        elif roll < 0.16:
            self.cluster.broker.produce(topic, b"NY-999", orjson.dumps(record), self.partitioner())
            self.published.dead += 1
            return
        else:
            self.published.changes.append(record)
        self.cluster.broker.produce(
            topic, student.encode(), orjson.dumps(record), self.partitioner()
        )

    def publish_consent(self) -> None:
        rng = self.rng
        now = self.clock.now_ms()
        effective = now + rng.randrange(-2 * DAY, 3 * DAY)
        expires = effective + rng.randrange(HOUR, 3 * DAY) if rng.random() < 0.4 else None
        student = rng.choice(STUDENTS)
        kind = rng.choice(
            [
                ConsentKind.GRANT,
                ConsentKind.GRANT,
                ConsentKind.REVOKE,
                ConsentKind.PARTNER_OPT_OUT,
                ConsentKind.ALL_OPT_OUT,
                ConsentKind.DIRECTORY_OPT_OUT,
                ConsentKind.DISTRICT_OPT_OUT,
            ]
        )
        partner = rng.choice(PARTNERS)
        categories: frozenset[str] = frozenset()
        if kind is ConsentKind.GRANT:
            partner = "carewell-health"
            categories = frozenset(
                rng.sample(["special_medical", "special_iep_504"], rng.randint(1, 2))
            )
        elif kind is ConsentKind.REVOKE:
            partner = "carewell-health"
        elif kind in (ConsentKind.ALL_OPT_OUT, ConsentKind.DIRECTORY_OPT_OUT):
            partner = None  # type: ignore[assignment]
        if kind is ConsentKind.DISTRICT_OPT_OUT:
            district = rng.choice(DISTRICTS)
            event = ConsentEvent(
                self.next_id(), kind, district, effective, None, partner, expires_at=expires
            )
            key = district
        else:
            event = ConsentEvent(
                self.next_id(),
                kind,
                district_of(student),
                effective,
                student,
                partner,
                categories,
                expires_at=expires,
                **provenance(kind, rng),
            )
            key = student
        self.published.consents.append(event)
        self.cluster.broker.produce(
            self.cluster.topics.consent,
            key.encode(),
            orjson.dumps(event.to_avro()),
            self.partitioner(),
        )

    # -- the run ------------------------------------------------------------------------
    def act(self) -> None:
        rng = self.rng
        cluster = self.cluster
        roll = rng.random()
        if roll < 0.35:
            self.publish_change()
        elif roll < 0.6:
            self.publish_consent()
        elif roll < 0.78:
            worker = rng.choice(cluster.workers)
            crash = rng.random() < 0.05
            cluster.step(worker, max_records=rng.randint(1, 20), crash=crash)
            if crash:
                cluster.start_worker()
                cluster.rebalance()
        elif roll < 0.86:
            self.clock.advance(rng.randrange(1, DAY // 2))
            cluster.follow_and_tick(rng.choice(cluster.workers))
        elif roll < 0.9:
            cluster.rebalance()
        elif roll < 0.95:
            self.settle()
        else:
            cluster.follow_and_tick(rng.choice(cluster.workers))
        self.check_disclosures()

    def settle(self) -> None:
        self.check_disclosures()
        self.cluster.drain()
        self.check_disclosures()
        self.settled = Published(list(self.published.changes), list(self.published.consents))
        assert_matches_model(self.cluster, self.published, self.clock.now_ms())

    def check_disclosures(self) -> None:
        """No disclosure committed since the last check may hold a field the model forbids
        at its time, given the consent and district events settled before it and any of
        those published since (the processor may have read some of them, in any order)."""
        settled = self.settled.consents
        fresh = [e for e in self.published.consents if e not in set(settled)]
        by_key = {(r.partner, r.key(s)): (r, s) for r in ROUTES for s in STUDENTS}
        for at, out in self.cluster.committed[self.checked :]:
            route_student = by_key.get((_partner_of(out.topic), (out.key or b"").decode()))
            if out.value is None or route_student is None:
                continue
            route, student = route_student
            view = orjson.loads(out.value)
            sent = {k for k, v in view.items() if v is not None} - ENVELOPE
            relevant = [
                e
                for e in fresh
                if e.student_id == student
                or (e.is_district_event and e.district_id == district_of(student))
            ]
            assert any(
                sent <= permitted_leaves(route, student, [*settled, *chosen], at)
                for chosen in subsets(relevant)
            ), (
                f"{route.partner} got {sorted(sent)} of {student} at {at}, which no state "
                "the settled and published consent and district events allow"
            )
        self.checked = len(self.cluster.committed)

    def finish(self) -> None:
        self.clock.advance(self.rng.randrange(0, 2 * DAY))
        self.settle()


def _partner_of(topic: str) -> str:
    parts = topic.split(".")
    return parts[1] if len(parts) == 3 and parts[2] == "students" else ""


def consent_state(
    events: Sequence[ConsentEvent],
) -> tuple[dict[str, StudentConsentHistory], dict[str, DistrictState]]:
    histories: dict[str, StudentConsentHistory] = {}
    districts: dict[str, DistrictState] = {}
    for event in events:
        if event.is_district_event:
            districts[event.district_id] = districts.get(event.district_id, DistrictState()).apply(
                event
            )
        else:
            student = event.student_id or ""
            histories[student] = histories.get(student, StudentConsentHistory()).apply(event)
    return histories, districts


ENVELOPE = {"partner_student_key", "event_id", "occurred_at", "contract_version"}


def subsets(events: Sequence[ConsentEvent]) -> Iterator[list[ConsentEvent]]:
    for size in range(len(events) + 1):
        for chosen in itertools.combinations(events, size):
            yield list(chosen)


def permitted_leaves(
    route: PartnerRoute, student: str, events: Sequence[ConsentEvent], at: int
) -> set[str]:
    """The top-level view fields the model lets ``route``'s partner hold of ``student`` at
    ``at`` given ``events``."""
    histories, districts = consent_state(events)
    record = snapshot(student, district_of(student), at, 0, "model", deleted=False)
    decision = decide(
        record,
        route.contract,
        route.view,
        histories.get(student, StudentConsentHistory()).status_at(
            at, route.partner, majority(record)
        ),
        districts.get(district_of(student), DistrictState()).opted_out(at, route.partner),
        at,
        route.pseudonym,
    )
    if not isinstance(decision, Disclosed):
        return set()
    return {k for k, v in decision.value.items() if v is not None} - ENVELOPE


# --- the model ---------------------------------------------------------------------------


def model_state(published: Published, now: int) -> dict[str, dict[str, dict[str, Any]]]:
    """partner -> partner key -> view (without per-event fields), from every input at once."""
    latest: dict[str, dict[str, Any]] = {}
    for record in published.changes:
        student = record["student_id"]
        current = latest.get(student)
        rank = (record["occurred_at"], record["operation"] == "DELETE")
        if current is None or rank > (current["occurred_at"], current["operation"] == "DELETE"):
            latest[student] = record
    histories, districts = consent_state(published.consents)
    expected: dict[str, dict[str, dict[str, Any]]] = {r.partner: {} for r in ROUTES}
    for student, record in latest.items():
        for route in ROUTES:
            decision = decide(
                record,
                route.contract,
                route.view,
                histories.get(student, StudentConsentHistory()).status_at(
                    now, route.partner, majority(record)
                ),
                districts.get(record["district_id"], DistrictState()).opted_out(now, route.partner),
                now,
                route.pseudonym,
            )
            if isinstance(decision, Disclosed):
                view = {
                    k: v for k, v in decision.value.items() if k not in ("event_id", "occurred_at")
                }
                expected[route.partner][decision.partner_student_key] = view
    return expected


def assert_matches_model(cluster: Cluster, published: Published, now: int) -> None:
    expected = model_state(published, now)
    for route in ROUTES:
        held = cluster.partner_state(route)
        want = json.loads(json.dumps(expected[route.partner]))
        assert held == want, (
            f"{route.partner} at {now}: holds {sorted(held)}, the model says {sorted(want)}; "
            f"differing: {sorted(k for k in set(held) | set(want) if held.get(k) != want.get(k))}"
        )
    assert len(cluster.dead_letters()) >= published.dead


# --- the tests ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_partner_topics_equal_the_model_whatever_the_topology(case: dict[str, Any]) -> None:
    scenario = Scenario(case["partitions"], case["workers"], case["seed"])
    for _ in range(case["steps"]):
        scenario.act()
    scenario.finish()
    ledger = scenario.cluster.ledger()
    decisions = [d["decision_id"] for d in ledger]
    assert len(decisions) == len(set(decisions)), "a decision was recorded twice"
    change_ids = {c["event_id"] for c in scenario.published.changes}
    partial = [d for d in ledger if d["decision"] == "RETRACTED" and d["fields"]]
    per_event = [
        (d["event_id"], d["partner"])
        for d in ledger
        if d["event_id"] in change_ids and d not in partial
    ]
    assert len(per_event) == len(set(per_event)), "a change was decided twice for a partner"
    disclosed = {d["decision_id"] for d in ledger if d["decision"] == "DISCLOSED"}
    for d in partial:  # a partial retraction comes with the reduced view of its decision
        assert d["decision_id"].rsplit(":", 1)[0] in disclosed, d
    assert_sent_only_changes(scenario.cluster)
    assert_ledger_matches_topics(scenario.cluster)


def assert_sent_only_changes(cluster: Cluster) -> None:
    """Nothing sent when nothing changed for the partner: per key, no record equals the one
    before it (views without their per-record envelope; a tombstone only after a view)."""
    for route in ROUTES:
        last: dict[bytes, Any] = {}
        for record in cluster.broker.records(route.contract.topic):
            key = record.key or b""
            view = (
                None
                if record.value is None
                else {
                    k: v
                    for k, v in orjson.loads(record.value).items()
                    if k not in ("event_id", "occurred_at")
                }
            )
            assert key in last or view is not None, f"{route.partner}: a tombstone of nothing"
            assert last.get(key, ...) != view, f"{route.partner}: the same record twice in a row"
            last[key] = view


def assert_ledger_matches_topics(cluster: Cluster) -> None:
    """Every record a partner got is one DISCLOSED decision of the ledger, every tombstone one
    RETRACTED decision (of the whole record), and nothing else is."""
    ledger = cluster.ledger()
    for route in ROUTES:
        recorded = Counter(
            (d["partner_student_key"], d["decision"])
            for d in ledger
            if d["partner"] == route.partner
            and (d["decision"] == "DISCLOSED" or (d["decision"] == "RETRACTED" and not d["fields"]))
        )
        sent = Counter(
            ((r.key or b"").decode(), "DISCLOSED" if r.value is not None else "RETRACTED")
            for r in cluster.broker.records(route.contract.topic)
        )
        assert recorded == sent, f"{route.partner}: ledger and topic disagree"


def test_the_repartition_topic_carries_only_records_of_other_partitions() -> None:
    scenario = Scenario(6, 2, 7)
    for _ in range(40):
        scenario.publish_change()
        scenario.publish_consent()
    scenario.finish()
    forwarded = scenario.cluster.broker.records(scenario.cluster.topics.repartition)
    assert forwarded, "CRC32-partitioned input must be forwarded"
    for record in forwarded:
        assert dict(record.headers_)[SOURCE_HEADER] in (b"changes", b"consent")
        assert murmur2_partitioner(record.key, 6) == record.partition
