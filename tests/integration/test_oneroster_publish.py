"""`hallpass publish oneroster` on the real broker: what a district's nightly export needs.

Each test runs the command as a user would and reads back from the change topic only what
its own runs wrote (the records after the end offsets taken before them), then checks the
fields, the key, the district, the warnings and the rejects.
"""

from __future__ import annotations

import csv
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from connectors.oneroster import read_package
from connectors.source.publisher import EventPublisher, PublishError
from connectors.source.state import SourceStateStore
from streams.config import Connection
from streams.kafka.names import CHANGES
from tests.kafka_helpers import decode_all, hallpass_cli, read_topic

pytestmark = pytest.mark.kafka

DATA = Path(__file__).resolve().parents[1] / "data" / "oneroster"
SOURCES = DATA / "sources"
AVA, BEN, CHLOE = "1234567890", "2234567890", "3234567890"


class Changes:
    """Reads what was written to the change topic since it was created (or last marked)."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.start: dict[int, int] = {}
        self.mark()

    def _ends(self) -> dict[int, int]:
        consumer = Consumer(self.conn.kafka_config({"group.id": f"t-ends-{uuid.uuid4()}"}))
        try:
            meta = consumer.list_topics(CHANGES, timeout=30).topics.get(CHANGES)
            if meta is None or not meta.partitions:
                return {}
            return {
                p: consumer.get_watermark_offsets(TopicPartition(CHANGES, p), timeout=30)[1]
                for p in meta.partitions
            }
        finally:
            consumer.close()

    def mark(self) -> None:
        self.start = self._ends()

    def since_mark(self) -> list[tuple[str, dict[str, Any]]]:
        reads = [
            r
            for r in read_topic(self.conn, CHANGES)
            if r.value is not None and r.offset >= self.start.get(r.partition, 0)
        ]
        reads.sort(key=lambda r: (r.partition, r.offset))
        values = decode_all(self.conn, reads)
        return [((r.key or b"").decode(), v) for r, v in zip(reads, values, strict=True)]


@pytest.fixture
def changes(bus: Connection) -> Changes:
    return Changes(bus)


def copy(name: str, tmp_path: Path) -> Path:
    target = tmp_path / name
    shutil.copytree(DATA / name, target)
    return target


def publish(bus: Connection, tmp_path: Path, package: Path, *args: str) -> Any:
    return hallpass_cli(
        bus,
        tmp_path / "data",
        "publish",
        "oneroster",
        str(package),
        "--state",
        str(tmp_path / "state.sqlite3"),
        *args,
    )


def test_bulk_then_unchanged_rerun_then_delta(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    package = copy("bulk", tmp_path)
    expected = {e.key: e.value for e in read_package(package, write_rejects_file=False).events}

    first = publish(bus, tmp_path, package)
    assert first.returncode == 0, first.stderr
    assert f"published {len(expected)}, unchanged 0, rejected 0" in first.stdout
    published = dict(changes.since_mark())
    assert set(published) == set(expected)
    for key, event in published.items():
        assert event["student_id"] == key
        assert event["student_id_type"] == "state_id"
        assert event["district_id"] == "3600001"
        assert event["names"] == expected[key]["names"]
        assert event["schedule"] == expected[key]["schedule"]

    changes.mark()
    again = publish(bus, tmp_path, package)
    assert again.returncode == 0, again.stderr
    assert f"published 0, unchanged {len(expected)}" in again.stdout
    assert changes.since_mark() == []

    delta = copy("delta", tmp_path)
    run = publish(bus, tmp_path, delta)
    assert run.returncode == 0, run.stderr
    after = dict(changes.since_mark())
    assert after[BEN]["operation"] == "DELETE" and after[BEN]["district_id"] == "3600001"
    assert after[AVA]["names"]["last_name"] == "Lopez-Hart"
    assert len(after[AVA]["schedule"]["sections"]) == 3  # from the stored enrollments
    # a DELETE is fingerprinted like an upsert: the same delta again publishes nothing
    changes.mark()
    rerun = publish(bus, tmp_path, delta)
    assert rerun.returncode == 0, rerun.stderr
    assert changes.since_mark() == []
    with SourceStateStore(tmp_path / "state.sqlite3") as store:
        assert {d.student_id: d.operation for d in store.delivered()}[BEN] == "DELETE"


def test_bad_rows_are_rejected_and_the_rest_published(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    package = copy("bad_rows", tmp_path)
    result = publish(bus, tmp_path, package)
    assert result.returncode == 3, result.stderr  # published with rejected rows
    assert "rejected enrollments.csv:10:classSourcedId: unknown class 'cls-gone'" in result.stderr
    assert "warning demographics.csv:4:birthDate: '2013-02-30' is not a valid date" in result.stderr
    assert "Traceback" not in result.stderr
    for secret in ("hunter2", "078-05-1120", "219-09-9999"):
        assert secret not in result.stderr + result.stdout
    with (tmp_path / "bad_rows.rejects.csv").open(encoding="utf-8", newline="") as handle:
        rejects = list(csv.DictReader(handle))
    held = next(r for r in rejects if r["sourcedId"] == "usr-stu-8" and r["file"] == "users.csv")
    assert held["reason"] == (
        "student not published: a row it joins was rejected (enrollments.csv:10)"
    )
    assert next(r for r in rejects if r["sourcedId"] == "usr-stu-3")["password"] == "[redacted]"
    warnings = (tmp_path / "bad_rows.warnings.csv").read_text(encoding="utf-8")
    assert "enrollments.csv,6,primary" in warnings
    published = dict(changes.since_mark())
    assert set(published) == {AVA, BEN, "5234567890"}
    assert published[BEN]["schedule"]["sections"][0]["teacher_name"] == "Daniel Reyes"
    assert "published 3," in result.stdout


def test_oneroster_1_1_with_a_source_configuration(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    package = copy("v1_1", tmp_path)
    result = publish(bus, tmp_path, package, "--source", str(SOURCES / "birch-lake.yaml"))
    assert result.returncode == 0, result.stderr
    assert "(OneRoster 1.1)" in result.stdout
    assert "warning users.csv:0:grades: 1 user(s) list more than one grade" in result.stderr
    published = dict(changes.since_mark())
    assert set(published) == {"270000101", "270000102"}
    mia = published["270000101"]
    assert (mia["student_id_type"], mia["district_id"], mia["school_id"]) == (
        "state_id",
        "2700123",
        "270012300101",
    )
    assert mia["identity"]["state_student_id"] == "270000101"
    assert mia["identity"]["local_student_id"] is None  # identifier is the login here
    assert mia["source_system"] == "Birch Lake SIS"


def test_a_key_rule_that_picks_the_login_publishes_nothing(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    package = copy("v1_1", tmp_path)
    result = publish(
        bus, tmp_path, package, "--source", str(SOURCES / "birch-lake-identifier.yaml")
    )
    assert result.returncode == 3, result.stderr
    assert "a login is never published as an id" in result.stderr
    assert "mia.hansen" not in result.stderr
    assert changes.since_mark() == []


def test_oneroster_1_0_without_manifest_and_district(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    package = copy("v1_0", tmp_path)
    result = publish(bus, tmp_path, package, "--source", str(SOURCES / "cedar-creek.yaml"))
    assert result.returncode == 0, result.stderr
    assert "warning manifest.csv:0:*: no manifest.csv: read as a OneRoster 1.0" in result.stderr
    published = dict(changes.since_mark())
    assert set(published) == {"TX0088001", "TX0088002"}
    assert {e["district_id"] for e in published.values()} == {"4800555"}
    # without the configured district: one message, exit 1, nothing published
    changes.mark()
    other = tmp_path / "other"
    other.mkdir()
    (other / "src.yaml").write_text(
        "source: cedar-other\nstudent_key: {from: identifier, is: state_id}\n"
    )
    failed = hallpass_cli(
        bus, other, "publish", "oneroster", str(package), "--source", str(other / "src.yaml")
    )
    assert failed.returncode == 1
    assert failed.stderr.count("Error:") == 1 and "2 student(s) have no district" in failed.stderr
    assert "Traceback" not in failed.stderr
    assert changes.since_mark() == []


def test_tolerant_package_is_published_with_its_warnings(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    package = copy("tolerant", tmp_path)
    result = publish(bus, tmp_path, package, "--source", str(SOURCES / "oak-hill.yaml"))
    assert result.returncode == 0, result.stderr
    assert "rejected 0 rows" in result.stdout and "warnings 15" in result.stdout
    assert "s3cret!" not in result.stderr and "4417" not in result.stderr
    published = dict(changes.since_mark())
    assert published["4400001"]["demographics"]["home_language"] == "ar"
    assert published["4400001"]["source_system"] == "oak-hill"
    assert published["4400001"]["district_id"] == "4400007"


def test_delta_with_absent_files_and_a_minimal_delete(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    assert publish(bus, tmp_path, copy("bulk", tmp_path)).returncode == 0
    before = dict(changes.since_mark())
    changes.mark()
    users_only = publish(bus, tmp_path, copy("delta_users_only", tmp_path))
    assert users_only.returncode == 0, users_only.stderr
    assert "published 1, unchanged 2" in users_only.stdout
    ava = dict(changes.since_mark())[AVA]
    assert ava["names"]["last_name"] == "Lopez-Hart"
    assert ava["schedule"] == before[AVA]["schedule"]
    assert ava["demographics"] == before[AVA]["demographics"]
    changes.mark()
    minimal = publish(bus, tmp_path, copy("delta_minimal_delete", tmp_path))
    assert minimal.returncode == 0, minimal.stderr
    deleted = dict(changes.since_mark())[CHLOE]
    assert (deleted["operation"], deleted["district_id"]) == ("DELETE", "3600001")


def test_withdrawals_by_absence_wait_for_confirmation(
    bus: Connection, tmp_path: Path, changes: Changes
) -> None:
    assert publish(bus, tmp_path, copy("bulk", tmp_path)).returncode == 0
    changes.mark()
    missing = copy("bulk_missing_student", tmp_path)
    held = publish(bus, tmp_path, missing)
    assert held.returncode == 4, held.stderr
    assert "withdrawals held back: 1 of the 3 students published before (33%)" in held.stderr
    assert "--confirm-withdrawals" in held.stderr
    assert CHLOE not in dict(changes.since_mark())
    confirmed = publish(bus, tmp_path, missing, "--confirm-withdrawals")
    assert confirmed.returncode == 0, confirmed.stderr
    assert "withdrawn 1" in confirmed.stdout
    withdrawn = dict(changes.since_mark())[CHLOE]
    assert (withdrawn["operation"], withdrawn["district_id"], withdrawn["school_id"]) == (
        "DELETE",
        "3600001",
        "360000100001",
    )
    changes.mark()
    again = publish(bus, tmp_path, missing)
    assert again.returncode == 0 and changes.since_mark() == []


def test_usage_errors_exit_2_without_a_traceback(bus: Connection, tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("source: x\nstudent_key: {from: username, is: state_id}\n")
    result = publish(bus, tmp_path, copy("bulk", tmp_path), "--source", str(bad))
    assert result.returncode == 2
    assert "student_key.from: 'username' is not one of" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_package_stops_before_publishing(bus: Connection, tmp_path: Path) -> None:
    package = copy("missing_file", tmp_path)
    result = hallpass_cli(bus, tmp_path, "publish", "oneroster", str(package))
    assert result.returncode == 1
    assert "Error:" in result.stderr and "manifest" in result.stderr.lower()


def test_broker_gone_reports_acknowledged_and_keeps_fingerprints(
    bus: Connection, tmp_path: Path, unique_name: Callable[[str], str]
) -> None:
    dead = Connection("127.0.0.1:1", bus.schema_registry_url)
    publisher = EventPublisher(dead, delivery_timeout_s=3)
    store = SourceStateStore(tmp_path / "fp.db")
    event = read_package(DATA / "bulk", write_rejects_file=False).events[0]
    publisher.publish(
        CHANGES, event.key, event.value, lambda: store.mark_delivered(event.key, "fp")
    )
    with pytest.raises(PublishError) as failed:
        publisher.close(timeout_s=10)
    assert "only 0 of 1 records were acknowledged" in str(failed.value)
    assert store.get(event.key) is None
    json.dumps(failed.value.report.__dict__)  # the report is plain data
