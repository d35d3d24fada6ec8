"""`hallpass simulate` on the real broker: what it publishes is exactly what it generates."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.simulation.stream import simulate
from streams.config import Connection
from streams.kafka.names import CHANGES, CONSENT
from tests.kafka_helpers import decode_all, hallpass_cli, read_topic

pytestmark = pytest.mark.kafka


def test_simulated_district_round_trips(bus: Connection, tmp_path: Path) -> None:
    students, seed, days = 300, 7707, 4
    expected = list(simulate(students, seed, days, districts=2))
    out = tmp_path / "oneroster"
    result = hallpass_cli(
        bus,
        tmp_path,
        "simulate",
        "--students",
        str(students),
        "--seed",
        str(seed),
        "--days",
        str(days),
        "--districts",
        "2",
        "--oneroster-out",
        str(out),
    )
    assert result.returncode == 0, result.stderr
    assert f"published {len(expected)} events" in result.stdout

    wanted = {ev.value["event_id"]: ev for ev in expected}
    seen: dict[str, dict[str, object]] = {}
    for topic in (CHANGES, CONSENT):
        for value in decode_all(bus, read_topic(bus, topic)):
            if value["event_id"] in wanted:
                seen[str(value["event_id"])] = value
    assert set(seen) == set(wanted)
    first_student = next(ev for ev in expected if ev.topic == CHANGES)
    read_back = seen[first_student.value["event_id"]]
    assert read_back["student_id"] == first_student.key
    assert read_back["names"] == first_student.value["names"]
    assert any(ev.value.get("kind") == "DISTRICT_OPT_OUT" for ev in expected)

    published = hallpass_cli(bus, tmp_path, "publish", "oneroster", str(out))
    assert published.returncode == 0, published.stderr
    assert f"{students} students; published {students}, unchanged 0, rejected 0" in published.stdout
