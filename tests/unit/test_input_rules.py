"""Validation at the door (issue 16, finding 5): a change or consent event with an empty or
control-character id, a date outside 1900-01-01 .. today + 2 years, an unknown district (when
districts are configured) or a value over a size limit is a dead letter whose reason names the
field and the rule, never the value; a valid one is decided as before."""

from __future__ import annotations

import copy
import datetime as dt
import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from streams.policy.consent import ConsentEvent, ConsentKind
from streams.policy.input_limits import (
    MAX_NAME_CHARS,
    MAX_RECORD_BYTES,
    date_problem,
    id_problem,
    known_districts_from,
)
from streams.processor.clock import ManualClock
from streams.settings import settings_from
from tests.processor_harness import REPO, Cluster, murmur2_partitioner, routes_for
from tests.processor_harness import sample_contracts as contracts

NOW = int(datetime(2026, 11, 30, 12, tzinfo=UTC).timestamp() * 1000)
BASE = json.loads(
    (REPO / "schemas" / "examples" / "student_record_changed.upsert.json").read_text()
)
DISTRICT = BASE["district_id"]
ROUTES = routes_for(contracts())


def _cluster(known: frozenset[str] = frozenset()) -> Cluster:
    cluster = Cluster(ROUTES, 3, ManualClock(NOW), known_districts=known)
    cluster.start_worker()
    cluster.rebalance()
    return cluster


def _change(edit: Callable[[dict[str, Any]], None], student: str = "NY-1") -> dict[str, Any]:
    record: dict[str, Any] = copy.deepcopy(BASE)
    record.update(student_id=student, occurred_at=NOW - 3_600_000, event_id=f"e-{student}")
    edit(record)
    return record


def _reasons(cluster: Cluster) -> list[str]:
    out = []
    for dead in cluster.dead_letters():
        reason = dict(dead.headers_)["hallpass.dlq.reason"]
        assert isinstance(reason, bytes)
        out.append(reason.decode())
    return out


def _send(cluster: Cluster, record: dict[str, Any], key: str | None = None) -> None:
    cluster.broker.produce(
        cluster.topics.changes,
        (key if key is not None else record["student_id"]).encode(),
        orjson.dumps(record),
        murmur2_partitioner,
    )


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = record
        for part in parents:
            node = node[part]
        node[last] = value

    return edit


def _days(year: int, month: int = 1, day: int = 1) -> int:
    return (dt.date(year, month, day) - dt.date(1970, 1, 1)).days


CASES = [
    ("a NUL in the student id", _set("student_id", "NY-\x001"), "student_id contains a control"),
    ("a newline in the school id", _set("school_id", "2802\n01"), "school_id contains a control"),
    ("an empty district id", _set("district_id", ""), "district_id is empty"),
    ("a blank event id", _set("event_id", "   "), "event_id is empty"),
    (
        "an id of 65 characters",
        _set("identity.sourced_id", "x" * 65),
        "identity.sourced_id is longer than 64",
    ),
    (
        "a birth date in year 1",
        _set("demographics.birth_date", _days(1, 1, 1)),
        "demographics.birth_date is before 1900-01-01",
    ),
    (
        "an entry date in 2100",
        _set("enrollment.entry_date", _days(2100)),
        "enrollment.entry_date is more than 2 years ahead",
    ),
    (
        "a 900 KB first name",
        _set("names.first_name", "N" * 300),
        f"names.first_name is longer than {MAX_NAME_CHARS}",
    ),
    ("a NUL in a city", _set("contact.city", "Al\x00bany"), "contact.city contains a NUL"),
    (
        "an event dated 1800",
        _set("occurred_at", -5_364_662_400_000),
        "occurred_at is before 1900-01-01",
    ),
]


@pytest.mark.parametrize(("edit", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_a_change_breaking_an_input_rule_is_a_dead_letter(
    edit: Callable[[dict[str, Any]], None], reason: str
) -> None:
    cluster = _cluster()
    bad = _change(edit, "NY-BAD")
    _send(cluster, bad, key="NY-BAD" if "student_id" not in reason else bad["student_id"])
    _send(cluster, _change(lambda r: None, "NY-GOOD"))
    cluster.drain()
    [why] = _reasons(cluster)
    assert why == f"invalid: {reason}" or why.startswith(f"invalid: {reason}"), why
    assert "N" * 50 not in why and "Al" not in why  # never the value
    # the valid change went on
    assert cluster.partner_state(next(r for r in ROUTES if r.partner == "learnwell"))


def test_a_whole_record_over_64_kb_is_a_dead_letter() -> None:
    cluster = _cluster()
    notes = ["x" * 4000] * (MAX_RECORD_BYTES // 4000 + 1)
    bad = _change(_set("special.medical_alerts", notes), "NY-BIG")
    _send(cluster, bad)
    cluster.drain()
    [why] = _reasons(cluster)
    assert why.startswith("oversized: the record is larger than 65536 bytes")


def test_an_unknown_district_is_a_dead_letter_only_when_districts_are_configured() -> None:
    other = _change(_set("district_id", "NY-999999"), "NY-ELSEWHERE")
    cluster = _cluster(frozenset({DISTRICT}))
    _send(cluster, other)
    _send(cluster, _change(lambda r: None, "NY-GOOD"))
    cluster.drain()
    assert _reasons(cluster) == ["invalid: district_id is not a known district"]

    anything = _cluster()
    _send(anything, other)
    anything.drain()
    assert _reasons(anything) == []


def _consent(**fields: Any) -> ConsentEvent:
    values: dict[str, Any] = {
        "event_id": "c-1",
        "kind": ConsentKind.ALL_OPT_OUT,
        "district_id": DISTRICT,
        "effective_at": NOW - 1,
        "student_id": "NY-1",
    }
    values.update(fields)
    return ConsentEvent(**values)


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        (_consent(student_id="NY\x001"), "student_id contains a control character"),
        (_consent(effective_at=-5_364_662_400_000), "effective_at is before 1900-01-01"),
        (_consent(effective_at=NOW + 3 * 366 * 86_400_000), "effective_at is more than 2 years"),
        (_consent(district_id="NY-999999"), "district_id is not a known district"),
    ],
    ids=["nul-student", "year-1800", "three-years-ahead", "unknown-district"],
)
def test_a_consent_event_breaking_an_input_rule_is_a_dead_letter(
    event: ConsentEvent, reason: str
) -> None:
    cluster = _cluster(frozenset({DISTRICT}))
    key = event.student_id or event.district_id
    cluster.broker.produce(
        cluster.topics.consent, key.encode(), orjson.dumps(event.to_avro()), murmur2_partitioner
    )
    cluster.drain()
    [why] = _reasons(cluster)
    assert why.startswith(f"invalid: {reason}"), why


def test_the_limits_and_the_setting() -> None:
    assert id_problem("NY-1") is None and id_problem("") == "is empty"
    assert id_problem("a\tb") == "contains a control character"
    today = dt.date(2026, 11, 30)
    assert date_problem(dt.date(1900, 1, 1), today) is None
    assert date_problem(dt.date(2028, 11, 30), today) is None
    assert date_problem(dt.date(2028, 12, 1), today) == "is more than 2 years ahead"
    assert known_districts_from(" NY-1, ,NY-2") == frozenset({"NY-1", "NY-2"})
    settings = settings_from({"HALLPASS_KNOWN_DISTRICTS": "NY-280201,NY-1"})
    assert settings.known_districts == frozenset({"NY-280201", "NY-1"})
    assert settings_from({}).known_districts == frozenset()
