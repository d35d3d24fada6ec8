"""`hallpass publish oneroster` on the real broker: bulk, delta, rejects, unchanged re-runs."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from connectors.fingerprints import FingerprintStore
from connectors.oneroster import read_package
from connectors.publisher import EventPublisher, PublishError
from streams.config import Connection
from streams.topics import CHANGES
from tests.kafka_helpers import decode_all, hallpass_cli, read_topic

pytestmark = pytest.mark.kafka

DATA = Path(__file__).resolve().parents[1] / "data" / "oneroster"


def _changes_for(conn: Connection, students: set[str]) -> list[dict[str, object]]:
    return [e for e in decode_all(conn, read_topic(conn, CHANGES))
            if e["student_id"] in students]


def test_bulk_then_unchanged_rerun_then_delta(bus: Connection, tmp_path: Path) -> None:
    package = tmp_path / "bulk"
    shutil.copytree(DATA / "bulk", package)
    expected = {e.key: e.value for e in read_package(package, write_rejects_file=False).events}
    state = tmp_path / "fp.db"

    first = hallpass_cli(bus, tmp_path, "publish", "oneroster", str(package),
                         "--state", str(state))
    assert first.returncode == 0, first.stderr
    assert f"published {len(expected)}, unchanged 0, rejected 0" in first.stdout
    published = _changes_for(bus, set(expected))
    assert {e["student_id"] for e in published} == set(expected)
    for event in published:
        assert event["names"] == expected[str(event["student_id"])]["names"]

    again = hallpass_cli(bus, tmp_path, "publish", "oneroster", str(package),
                         "--state", str(state))
    assert again.returncode == 0, again.stderr
    assert f"published 0, unchanged {len(expected)}" in again.stdout
    assert len(_changes_for(bus, set(expected))) == len(expected)

    delta = read_package(DATA / "delta", write_rejects_file=False)
    deleted = {e.key for e in delta.events if e.operation == "DELETE"}
    assert deleted, "the delta fixture deletes a student"
    run = hallpass_cli(bus, tmp_path, "publish", "oneroster", str(DATA / "delta"),
                       "--state", str(state))
    assert run.returncode == 0, run.stderr
    after = _changes_for(bus, {e.key for e in delta.events})
    assert {str(e["student_id"]) for e in after if e["operation"] == "DELETE"} == deleted
    with FingerprintStore(state) as store:
        assert all(store.get(s) is None for s in deleted)


def test_bad_rows_are_rejected_and_the_rest_published(bus: Connection, tmp_path: Path) -> None:
    package = tmp_path / "bad_rows"
    shutil.copytree(DATA / "bad_rows", package)
    result = hallpass_cli(bus, tmp_path, "publish", "oneroster", str(package),
                         "--state", str(tmp_path / "fp.db"))
    assert result.returncode == 2, result.stderr
    assert "rejected demographics.csv:4:birthDate: '2013-02-30' is not a valid date" \
        in result.stderr
    rejects = (tmp_path / "bad_rows.rejects.csv").read_text()
    assert "enrollments.csv,5,beginDate" in rejects
    good = read_package(package, write_rejects_file=False).events
    assert good and f"published {len(good)}," in result.stdout


def test_missing_package_stops_before_publishing(bus: Connection, tmp_path: Path) -> None:
    package = tmp_path / "missing_file"
    shutil.copytree(DATA / "missing_file", package)
    result = hallpass_cli(bus, tmp_path, "publish", "oneroster", str(package))
    assert result.returncode == 1
    assert "Error:" in result.stderr and "manifest" in result.stderr.lower()


def test_broker_gone_reports_acknowledged_and_keeps_fingerprints(
    bus: Connection, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    dead = Connection("127.0.0.1:1", bus.schema_registry_url)
    publisher = EventPublisher(dead, delivery_timeout_s=3)
    store = FingerprintStore(tmp_path / "fp.db")
    event = read_package(DATA / "bulk", write_rejects_file=False).events[0]
    publisher.publish(CHANGES, event.key, event.value,
                      lambda: store.mark_delivered(event.key, "fp"))
    with pytest.raises(PublishError) as failed:
        publisher.close(timeout_s=10)
    assert "only 0 of 1 records were acknowledged" in str(failed.value)
    assert store.get(event.key) is None
    json.dumps(failed.value.report.__dict__)  # the report is plain data
