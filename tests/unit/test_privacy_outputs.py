"""What partners receive, on the in-memory cluster running the real handler (issue 12, part
B): nothing links one partner's records to another's, nothing is sent when nothing changed
for a partner, a partial revocation is a retraction, dead letters hold no never-share value,
and every reason is one the schemas document."""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import orjson

from streams.policy.consent import ConsentEvent, ConsentKind
from streams.policy.contracts import Allowance, Basis
from streams.processor.clock import ManualClock
from streams.processor.decider import PartnerRoute
from streams.processor.emitter import DAY_MS
from tests.processor_harness import (
    REPO,
    Cluster,
    Record,
    murmur2_partitioner,
    routes_for,
    sample_contracts,
)
from tests.provenance import GUARDIAN_SIGNED, STUDENT_SIGNED

NOW = int(datetime(2026, 11, 30, 12, 34, 56, 789_000, tzinfo=UTC).timestamp() * 1000)
HOUR = 3_600_000
ROUTES = routes_for(sample_contracts())
BY_PARTNER = {r.partner: r for r in ROUTES}
BASE = json.loads(
    (REPO / "schemas" / "examples" / "student_record_changed.upsert.json").read_text()
)
DISTRICT = "NY-280201"
STUDENTS = [f"NY-{i:03d}" for i in range(12)]
CAREWELL, LEARNWELL, MEASURELY = "carewell-health", "learnwell", "measurely"
#: envelope fields of a view: everything else in a view is a contracted data field
VIEW_ENVELOPE = ("partner_student_key", "event_id", "occurred_at", "contract_version")
#: fields of a deletion notice whose values come from a closed vocabulary shared by every
#: student with the same reason (a reason code, category and field names, the partner's own
#: contract version) or by every student whose view changed the same day (times at day
#: resolution, checked by ``times_at_day_resolution``): equal across partners for many
#: students at once, so they single out nobody. Everything else must differ between partners.
VOCABULARY = ("reason", "categories", "fields", "contract_version", "partner", "retracted_at")
HEADER_VOCABULARY = ("hallpass.deletion.reason", "hallpass.contract.version")


def change(student: str, at: int, event_id: str, **sections: Any) -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(BASE)
    record.update(
        event_id=event_id,
        student_id=student,
        occurred_at=at,
        operation="UPSERT",
        district_id=DISTRICT,
    )
    for name, value in sections.items():
        record[name] = value
    return record


class Bus:
    def __init__(self) -> None:
        self.clock = ManualClock(NOW)
        self.cluster = Cluster(ROUTES, 3, self.clock)
        self.cluster.start_worker()
        self.cluster.rebalance()

    def change(self, record: dict[str, Any]) -> None:
        self.cluster.broker.produce(
            self.cluster.topics.changes,
            record["student_id"].encode(),
            orjson.dumps(record),
            murmur2_partitioner,
        )

    def consent(self, event: ConsentEvent) -> None:
        key = event.district_id if event.is_district_event else event.student_id or ""
        self.cluster.broker.produce(
            self.cluster.topics.consent,
            key.encode(),
            orjson.dumps(event.to_avro()),
            murmur2_partitioner,
        )

    def settle(self) -> None:
        self.cluster.drain()

    def records(self, route: PartnerRoute, student: str) -> list[Record]:
        key = route.key(student).encode()
        return [r for r in self.cluster.broker.records(route.contract.topic) if r.key == key]

    def notices(self, route: PartnerRoute, student: str) -> list[dict[str, Any]]:
        key = route.key(student).encode()
        return [
            orjson.loads(r.value)
            for r in self.cluster.broker.records(self.cluster.topics.notices(route.partner))
            if r.key == key and r.value is not None
        ]

    def ledger(self, partner: str | None = None) -> list[dict[str, Any]]:
        return [d for d in self.cluster.ledger() if partner is None or d["partner"] == partner]


def grant(
    student: str,
    at: int,
    categories: Iterable[str] = ("special_medical",),
    expires: int | None = None,
    event_id: str = "",
) -> ConsentEvent:
    return ConsentEvent(
        event_id or f"grant-{student}-{at}",
        ConsentKind.GRANT,
        DISTRICT,
        at,
        student,
        CAREWELL,
        frozenset(categories),
        expires_at=expires,
        **GUARDIAN_SIGNED,
    )


def revoke(student: str, at: int, categories: Iterable[str] = ()) -> ConsentEvent:
    return ConsentEvent(
        f"revoke-{student}-{at}",
        ConsentKind.REVOKE,
        DISTRICT,
        at,
        student,
        CAREWELL,
        frozenset(categories),
    )


def opt_out(student: str, at: int) -> ConsentEvent:
    return ConsentEvent(f"out-{student}-{at}", ConsentKind.ALL_OPT_OUT, DISTRICT, at, student)


# --- linkage across partners -------------------------------------------------------------------


def unlinkable_values(bus: Bus, route: PartnerRoute, student: str) -> set[tuple[str, str]]:
    """Every value ``route``'s partner got about ``student`` that is not a contracted data
    field and not from the closed vocabulary: record keys, view envelopes, notice fields,
    header values (as ``(where, value)``; ``where`` only says where it was seen)."""
    found: set[tuple[str, str]] = set()
    for record in bus.records(route, student):
        if route.contract.pseudonymous_ids:
            found.add(("key", (record.key or b"").decode()))
        for name, value in record.headers_:
            if name not in HEADER_VOCABULARY:
                found.add((f"header {name}", str(value)))
        if record.value is not None:
            view = orjson.loads(record.value)
            for name in VIEW_ENVELOPE:
                if name not in ("contract_version", "occurred_at"):
                    found.add((f"view {name}", str(view[name])))
    for notice in bus.notices(route, student):
        for name, value in notice.items():
            if name not in VOCABULARY:
                found.add((f"notice {name}", str(value)))
    return found


def times_at_day_resolution(bus: Bus) -> None:
    for route in ROUTES:
        for student in STUDENTS:
            for record in bus.records(route, student):
                # the Kafka timestamp too: ms-exact times would link partners' records
                assert record.timestamp is not None and record.timestamp % DAY_MS == 0
                if record.value is not None:
                    assert orjson.loads(record.value)["occurred_at"] == record.timestamp
            for notice in bus.notices(route, student):
                assert notice["retracted_at"] % DAY_MS == 0
        for record in bus.cluster.broker.records(bus.cluster.topics.notices(route.partner)):
            assert record.timestamp is not None and record.timestamp % DAY_MS == 0


def test_no_value_outside_the_contract_is_shared_between_two_partners() -> None:
    bus = Bus()
    for i, student in enumerate(STUDENTS):
        bus.change(change(student, NOW - HOUR + i, f"c-{student}"))
        if i % 2 == 0:
            bus.consent(grant(student, NOW - HOUR, ("special_medical", "student_name")))
    bus.settle()
    bus.clock.advance(61_000)
    for i, student in enumerate(STUDENTS):
        bus.change(
            change(
                student, NOW - 1, f"c2-{student}", names={**BASE["names"], "first_name": f"New{i}"}
            )
        )
    bus.consent(opt_out(STUDENTS[0], NOW))  # every partner: a retraction
    bus.consent(revoke(STUDENTS[2], NOW))  # carewell: a retraction
    bus.settle()

    joined = 0
    for a, b in itertools.combinations(ROUTES, 2):
        for student in STUDENTS:
            values_a = unlinkable_values(bus, a, student)
            values_b = unlinkable_values(bus, b, student)
            if values_a and values_b:
                joined += 1
            shared = {v for _, v in values_a} & {v for _, v in values_b}
            assert not shared, (
                f"{a.partner} and {b.partner} both got {sorted(shared)} about {student}: "
                "a join key across partners"
            )
    assert joined >= len(STUDENTS), "the partners received records of the same students"
    assert bus.notices(BY_PARTNER[LEARNWELL], STUDENTS[0]), "the opt-out sent notices"
    assert bus.notices(BY_PARTNER[CAREWELL], STUDENTS[0])
    times_at_day_resolution(bus)


def test_a_partners_ids_are_stable_for_the_same_decision_and_unique_per_record() -> None:
    bus = Bus()
    for student in STUDENTS[:4]:
        bus.change(change(student, NOW - HOUR, f"c-{student}"))
    bus.settle()
    for route in ROUTES:
        ids = [
            orjson.loads(r.value)["event_id"]
            for s in STUDENTS[:4]
            for r in bus.records(route, s)
            if r.value is not None
        ]
        assert len(ids) == len(set(ids))
        assert not {f"c-{s}" for s in STUDENTS} & set(ids), "a source event id reached a partner"


# --- nothing sent when nothing changed for the partner --------------------------------------------


def views_sent(bus: Bus, route: PartnerRoute, student: str) -> list[dict[str, Any] | None]:
    """The records ``route``'s partner got about ``student``, without the envelope."""
    out: list[dict[str, Any] | None] = []
    for record in bus.records(route, student):
        if record.value is None:
            out.append(None)
        else:
            view = orjson.loads(record.value)
            out.append({k: v for k, v in view.items() if k not in VIEW_ENVELOPE})
    return out


def test_a_change_outside_a_partners_contract_sends_it_nothing_and_records_nothing() -> None:
    bus = Bus()
    student = STUDENTS[0]
    first = change(student, NOW - 3 * HOUR, "c-1")
    bus.change(first)
    bus.settle()
    # attendance (measurely's contract) and a nurse's note (never shared) change; learnwell's
    # fields do not
    second = change(
        student,
        NOW - 2 * HOUR,
        "c-2",
        attendance={**BASE["attendance"], "days_absent": 3.0},
        restricted={**BASE["restricted"], "health_notes": "new note"},
    )
    bus.change(second)
    # the same content again under a new event id: nothing changes for anyone
    bus.change({**second, "event_id": "c-3", "occurred_at": NOW - HOUR})
    bus.settle()

    learnwell, measurely = BY_PARTNER[LEARNWELL], BY_PARTNER[MEASURELY]
    assert len(views_sent(bus, learnwell, student)) == 1, "learnwell was told of a change"
    assert len(views_sent(bus, measurely, student)) == 2
    by_event = {(d["event_id"], d["partner"]): d["decision"] for d in bus.ledger()}
    assert by_event == {
        ("c-1", LEARNWELL): "DISCLOSED",
        ("c-1", MEASURELY): "DISCLOSED",
        ("c-2", MEASURELY): "DISCLOSED",
        # carewell gets nothing without consent: withheld for a privacy reason, every time
        ("c-1", CAREWELL): "WITHHELD",
        ("c-2", CAREWELL): "WITHHELD",
        ("c-3", CAREWELL): "WITHHELD",
    }
    [worker] = bus.cluster.workers
    assert worker.handler.counters.unchanged == {LEARNWELL: 2, MEASURELY: 1}
    # the ledger still says what each partner received, when and under which basis
    for route in (learnwell, measurely):
        disclosed = [d for d in bus.ledger(route.partner) if d["decision"] == "DISCLOSED"]
        sent = [v for v in views_sent(bus, route, student) if v is not None]
        assert len(disclosed) == len(sent)
        for row in disclosed:
            assert row["fields"] and row["legal_basis"] and row["decided_at"] == NOW


def test_a_partner_never_gets_the_same_view_twice_in_a_row() -> None:
    bus = Bus()
    for round_ in range(3):
        for i, student in enumerate(STUDENTS):
            grade = f"0{(i + round_ // 2) % 9 + 1}"
            bus.change(
                change(
                    student,
                    NOW - HOUR + round_ * 1000 + i,
                    f"c{round_}-{student}",
                    enrollment={**BASE["enrollment"], "grade_level": grade},
                )
            )
        bus.consent(grant(STUDENTS[round_], NOW - HOUR))
        bus.settle()
    for route in ROUTES:
        for student in STUDENTS:
            sent = views_sent(bus, route, student)
            for before, after in itertools.pairwise(sent):
                assert before != after, f"{route.partner} got the same view of {student} twice"


# --- partial revocation is a retraction ---------------------------------------------------------


def documented_reasons(schema: str, marker: str) -> set[str]:
    """The reason codes a schema's doc lists after ``marker``."""
    fields = json.loads((REPO / "schemas" / f"{schema}.avsc").read_text())["fields"]
    doc = next(f["doc"] for f in fields if f["name"] == "reason")
    return set(
        re.findall(
            r"\b[A-Z][A-Z_]{3,}\b", doc.split(marker, 1)[1].split(".", 1)[0] if marker else doc
        )
    )


def assert_reasons_documented(bus: Bus) -> None:
    notice_reasons = documented_reasons("deletion_notice", "")
    withheld_reasons = documented_reasons("disclosure_record", "WITHHELD:")
    for route in ROUTES:
        for record in bus.cluster.broker.records(bus.cluster.topics.notices(route.partner)):
            assert orjson.loads(record.value or b"{}")["reason"] in notice_reasons
    for row in bus.ledger():
        if row["decision"] == "WITHHELD":
            assert row["reason"] in withheld_reasons, row
        elif row["decision"] == "RETRACTED":
            assert row["reason"] in notice_reasons, row


def test_revoking_one_category_sends_the_reduced_view_and_a_notice_naming_it() -> None:
    bus = Bus()
    student = STUDENTS[0]
    carewell = BY_PARTNER[CAREWELL]
    bus.change(change(student, NOW - HOUR, "c-1"))
    bus.consent(grant(student, NOW - HOUR, ("student_name", "special_medical"), event_id="g-1"))
    bus.settle()
    [view] = views_sent(bus, carewell, student)
    assert view and view["special"]["medical_alerts"]
    bus.consent(revoke(student, NOW, ("special_medical",)))
    bus.settle()
    reduced = views_sent(bus, carewell, student)[-1]
    assert reduced and reduced["special"] is None and reduced["names"]["first_name"]
    [notice] = bus.notices(carewell, student)
    assert notice["reason"] == "CONSENT_REVOKED"
    assert notice["categories"] == ["special_medical"]
    assert notice["fields"] == ["special.medical_alerts"]
    retracted = [d for d in bus.ledger(CAREWELL) if d["decision"] == "RETRACTED"]
    assert [(d["reason"], d["categories"], d["fields"]) for d in retracted] == [
        ("CONSENT_REVOKED", ["special_medical"], ["special.medical_alerts"])
    ]
    assert retracted[0]["partner_student_key"] == carewell.key(student)
    # the same decision disclosed the reduced view
    disclosed = [d for d in bus.ledger(CAREWELL) if d["decision"] == "DISCLOSED"]
    assert retracted[0]["decision_id"].startswith(disclosed[-1]["decision_id"])
    assert "special.medical_alerts" not in disclosed[-1]["fields"]
    # revoking the rest retracts the whole record, for that reason
    bus.clock.advance(1)
    bus.consent(revoke(student, NOW + 1))
    bus.settle()
    assert views_sent(bus, carewell, student)[-1] is None
    assert bus.notices(carewell, student)[-1]["reason"] == "CONSENT_REVOKED"
    assert bus.notices(carewell, student)[-1]["categories"] == []
    assert_reasons_documented(bus)


def test_an_expiring_category_is_retracted_by_the_timer_as_expired() -> None:
    bus = Bus()
    student = STUDENTS[1]
    carewell = BY_PARTNER[CAREWELL]
    bus.change(change(student, NOW - HOUR, "c-1"))
    bus.consent(grant(student, NOW - HOUR, ("student_name",), event_id="g-name"))
    bus.consent(
        grant(student, NOW - HOUR, ("special_medical",), expires=NOW + HOUR, event_id="g-med")
    )
    bus.settle()
    bus.clock.advance(HOUR)
    bus.settle()
    [notice] = bus.notices(carewell, student)
    assert (notice["reason"], notice["categories"]) == ("CONSENT_EXPIRED", ["special_medical"])
    reduced = views_sent(bus, carewell, student)[-1]
    assert reduced and reduced["special"] is None
    assert_reasons_documented(bus)


def test_a_directory_opt_out_withdraws_directory_fields_with_a_notice() -> None:
    bus = Bus()
    student = STUDENTS[2]
    learnwell = BY_PARTNER[LEARNWELL]
    bus.change(change(student, NOW - HOUR, "c-1"))
    bus.settle()
    bus.consent(ConsentEvent("dir-1", ConsentKind.DIRECTORY_OPT_OUT, DISTRICT, NOW, student))
    bus.settle()
    [notice] = bus.notices(learnwell, student)
    assert (notice["reason"], notice["categories"], notice["fields"]) == (
        "DIRECTORY_OPT_OUT",
        ["enrollment"],
        ["enrollment.grade_level"],
    )
    reduced = views_sent(bus, learnwell, student)[-1]
    assert reduced and reduced["enrollment"]["grade_level"] is None
    assert not bus.notices(BY_PARTNER[MEASURELY], student), "measurely's grade is not directory"
    assert_reasons_documented(bus)


def test_a_contract_version_that_drops_fields_withdraws_them_with_a_notice() -> None:
    bus = Bus()
    student = STUDENTS[3]
    bus.change(change(student, NOW - HOUR, "c-1"))
    bus.settle()
    learnwell = BY_PARTNER[LEARNWELL]
    narrowed = dataclasses.replace(
        learnwell.contract,
        version=learnwell.contract.version + 1,
        allow=tuple(a for a in learnwell.contract.allow if a.category != "schedule"),
    )
    [new_route] = routes_for([narrowed])
    bus.cluster.routes = [new_route if r.partner == LEARNWELL else r for r in ROUTES]
    [worker] = bus.cluster.workers
    bus.cluster.kill(worker)
    bus.cluster.start_worker()
    bus.cluster.rebalance()
    bus.change(change(student, NOW - 1, "c-2"))
    bus.settle()
    [notice] = bus.notices(new_route, student)
    assert notice["reason"] == "CONTRACT_CHANGED"
    assert notice["categories"] == ["schedule"]
    assert notice["fields"] and all(f.startswith("schedule.") for f in notice["fields"])
    assert notice["contract_version"] == narrowed.version
    reduced = views_sent(bus, new_route, student)[-1]
    assert reduced and reduced.get("schedule") is None
    assert_reasons_documented(bus)


def test_withheld_reasons_are_precise() -> None:
    bus = Bus()
    student = STUDENTS[4]
    bus.change(change(student, NOW - HOUR, "c-1"))
    bus.settle()
    [withheld] = [d for d in bus.ledger(CAREWELL) if d["decision"] == "WITHHELD"]
    assert withheld["reason"] == "NO_CONSENT"
    bus.consent(grant(student, NOW - HOUR, ("special_medical",), expires=NOW + HOUR))
    bus.settle()
    bus.clock.advance(2 * HOUR)
    bus.settle()
    assert bus.notices(BY_PARTNER[CAREWELL], student)[-1]["reason"] == "CONSENT_EXPIRED"
    bus.change(change(student, NOW + 1, "c-2"))
    bus.settle()
    last = [d for d in bus.ledger(CAREWELL) if d["event_id"] == "c-2"]
    assert [(d["decision"], d["reason"]) for d in last] == [("WITHHELD", "CONSENT_EXPIRED")]
    bus.clock.set(BY_PARTNER[LEARNWELL].contract.active_until_ms)
    bus.settle()
    assert bus.notices(BY_PARTNER[LEARNWELL], student)[-1]["reason"] == "CONTRACT_ENDED"
    assert_reasons_documented(bus)


# --- dead letters -------------------------------------------------------------------------------

SECRETS = [
    BASE["restricted"][k]
    for k in ("ssn", "other_government_id", "password", "health_notes", "counseling_notes")
]


def test_a_decodable_dead_letter_holds_no_never_share_value() -> None:
    bus = Bus()
    wrong_key = change(STUDENTS[0], NOW - HOUR, "c-1")
    bus.cluster.broker.produce(
        bus.cluster.topics.changes, b"NY-999", orjson.dumps(wrong_key), murmur2_partitioner
    )
    future = change(STUDENTS[1], NOW + 400 * 24 * HOUR, "c-2")
    bus.change(future)
    bus.cluster.broker.produce(
        bus.cluster.topics.changes, b"NY-998", b"\x07not json at all", murmur2_partitioner
    )
    bus.settle()
    dead = bus.cluster.dead_letters()
    assert len(dead) == 3
    decodable = [d for d in dead if d.value != b"\x07not json at all"]
    assert len(decodable) == 2, "what cannot be decoded stays as it came"
    for record in decodable:
        assert record.value is not None
        for secret in SECRETS:
            assert secret.encode() not in record.value, "a never-share value was dead-lettered"
        kept = orjson.loads(record.value)
        assert kept["restricted"] == dict.fromkeys(BASE["restricted"])
        assert kept["names"] == BASE["names"], "the rest is kept, to replay"


def test_a_leaf_of_the_wrong_type_is_a_dead_letter_naming_the_field_not_its_value() -> None:
    bus = Bus()
    bad = change(STUDENTS[0], NOW - HOUR, "c-1")
    bad["names"]["first_name"] = 987654321
    bad["guardians"][0]["email"] = ["not", "a", "string"]
    bus.change(bad)
    bus.change(change(STUDENTS[1], NOW - HOUR, "c-2"))
    bus.settle()
    [dead] = bus.cluster.dead_letters()
    reason = dict(dead.headers_)["hallpass.dlq.reason"]
    assert isinstance(reason, bytes)
    assert b"names.first_name" in reason and b"987654321" not in reason
    assert dead.value is not None and BASE["restricted"]["ssn"].encode() not in dead.value
    for route in ROUTES:
        assert not bus.records(route, STUDENTS[0])
    assert bus.records(BY_PARTNER[LEARNWELL], STUDENTS[1]), "processing went on"
    [worker] = bus.cluster.workers
    assert all(state.stored(STUDENTS[0]) is None for state in worker.tables.partitions.values()), (
        "the bad record was stored"
    )


def test_revoking_a_category_that_program_codes_reveal_retracts_the_codes() -> None:
    """``programs`` may carry IEP, 504 or homeless program codes: revoking the IEP/504
    consent withdraws the codes with the IEP/504 fields, as a retraction naming them."""
    carewell = BY_PARTNER[CAREWELL].contract
    with_programs = dataclasses.replace(
        carewell,
        frozen_fields=None,
        allow=(
            *carewell.allow,
            Allowance(Basis.CONSENT, category="student_program_membership"),
            Allowance(Basis.CONSENT, category="special_living_situation"),
        ),
    )
    [route] = routes_for([with_programs])
    bus = Bus()
    bus.cluster.routes = [route if r.partner == CAREWELL else r for r in ROUTES]
    [worker] = bus.cluster.workers
    bus.cluster.kill(worker)
    bus.cluster.start_worker()
    bus.cluster.rebalance()
    student = STUDENTS[5]
    everything = (
        "student_name",
        "special_iep_504",
        "student_program_membership",
        "special_living_situation",
    )
    bus.change(change(student, NOW - HOUR, "c-1"))
    bus.consent(grant(student, NOW - HOUR, everything, event_id="g-1"))
    bus.settle()
    [view] = views_sent(bus, route, student)
    assert view and view["programs"] == BASE["programs"]
    bus.consent(revoke(student, NOW, ("special_iep_504",)))
    bus.settle()
    reduced = views_sent(bus, route, student)[-1]
    assert reduced and reduced["programs"] is None and reduced["names"]["first_name"]
    [notice] = bus.notices(route, student)
    assert notice["reason"] == "CONSENT_REVOKED"
    assert "programs" in notice["fields"]
    assert {"special_iep_504", "student_program_membership"} <= set(notice["categories"])
    assert_reasons_documented(bus)


def test_coming_of_age_retracts_what_a_guardians_consent_gave_until_the_student_grants() -> None:
    """34 CFR 99.5 (issue 19): on the 18th birthday, with no event to carry it, the partner
    holding what a guardian's grant allowed gets a tombstone and a notice (MAJORITY_REACHED,
    also in the ledger); the student's own grant brings the view back."""
    bus = Bus()
    student, route = STUDENTS[7], BY_PARTNER[CAREWELL]
    born = (datetime(2008, 12, 1, tzinfo=UTC).date() - datetime(1970, 1, 1).date()).days
    birthday = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp() * 1000)
    record = change(student, NOW - HOUR, "c-1")
    record["demographics"] = {**record["demographics"], "birth_date": born}
    bus.change(record)
    bus.consent(grant(student, NOW - HOUR, ("special_medical", "student_name")))
    bus.settle()
    assert views_sent(bus, route, student)[-1] is not None
    bus.clock.set(birthday - 1)
    bus.settle()
    assert views_sent(bus, route, student)[-1] is not None, "still a minor"
    bus.clock.set(birthday)
    bus.settle()
    assert views_sent(bus, route, student)[-1] is None, "no tombstone at the birthday"
    assert bus.notices(route, student)[-1]["reason"] == "MAJORITY_REACHED"
    [retracted] = [d for d in bus.ledger(CAREWELL) if d["decision"] == "RETRACTED"]
    assert retracted["reason"] == "MAJORITY_REACHED"
    # a guardian's new grant changes nothing now; the student's own brings the view back
    bus.consent(grant(student, birthday + HOUR, ("special_medical", "student_name"), event_id="g2"))
    bus.clock.set(birthday + 2 * HOUR)
    bus.settle()
    assert views_sent(bus, route, student)[-1] is None
    bus.consent(
        ConsentEvent(
            "g-student",
            ConsentKind.GRANT,
            DISTRICT,
            birthday + 2 * HOUR,
            student,
            CAREWELL,
            frozenset({"special_medical", "student_name"}),
            **STUDENT_SIGNED,
        )
    )
    bus.settle()
    back = views_sent(bus, route, student)[-1]
    assert back is not None and back.get("names") is not None
    assert_reasons_documented(bus)
