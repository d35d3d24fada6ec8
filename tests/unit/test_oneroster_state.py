"""Stateful deltas, minimal deletes, withdrawals and their guard, DELETE fingerprints (no Kafka:
an in-memory publisher acknowledges what it is given).

Fixtures after ``bulk``: ``delta_users_only`` (only users.csv changed, every other file
absent), ``delta_enrollments_only`` (one enrollment deleted, one added), ``delta_minimal_delete``
(rows with only sourcedId, status and dateLastModified), ``bulk_missing_student`` (Chloe is no
longer in the export).
"""

from __future__ import annotations

import datetime as dt
import shutil
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from connectors.oneroster import PackageReadResult, read_package
from connectors.oneroster.publish import PublishOutcome, publish_result
from connectors.source.publisher import DeliveryReport, PublishError
from connectors.source.state import SourceStateStore

DATA = Path(__file__).resolve().parents[1] / "data" / "oneroster"
AVA, BEN, CHLOE = "1234567890", "2234567890", "3234567890"
TOPIC = "sis.student.changes"


class MemoryPublisher:
    """Acknowledges every record on close (or fails them all with ``fail=True``)."""

    def __init__(self, fail: bool = False) -> None:
        self.fail = fail
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self._callbacks: list[Callable[[], None]] = []

    def publish(
        self,
        topic: str,
        key: str,
        record: Mapping[str, Any],
        on_delivered: Callable[[], None] | None = None,
    ) -> None:
        assert topic == TOPIC
        self.sent.append((key, dict(record)))
        if on_delivered is not None:
            self._callbacks.append(on_delivered)

    def close(self, timeout_s: float = 60.0) -> DeliveryReport:
        report = DeliveryReport(sent=len(self.sent))
        if self.fail:
            raise PublishError("broker gone", report)
        for callback in self._callbacks:
            callback()
        report.acknowledged = len(self.sent)
        return report


class Run:
    """Packages published one after the other against one state store."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store = SourceStateStore(tmp_path / "state.sqlite3")
        self.count = 0

    def read(self, name: str) -> PackageReadResult:
        self.count += 1
        package = self.tmp_path / f"{self.count}-{name}"
        shutil.copytree(DATA / name, package)
        return read_package(package, store=self.store, fallback_time_ms=7)

    def publish(
        self, name: str, confirm: bool = False, publisher: MemoryPublisher | None = None
    ) -> tuple[PackageReadResult, PublishOutcome, dict[str, dict[str, Any]]]:
        result = self.read(name)
        publisher = publisher or MemoryPublisher()
        outcome = publish_result(result, self.store, publisher, TOPIC, confirm_withdrawals=confirm)
        return result, outcome, dict(publisher.sent)


@pytest.fixture
def run(tmp_path: Path) -> Iterator[Run]:
    state = Run(tmp_path)
    yield state
    state.store.close()


def ms(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).timestamp() * 1000)


def test_bulk_then_rerun_publishes_nothing(run: Run) -> None:
    _, first, sent = run.publish("bulk")
    assert sorted(sent) == [AVA, BEN, CHLOE] and first.acknowledged == 3
    _, again, sent = run.publish("bulk")
    assert sent == {} and again.unchanged == 3


def test_delta_with_absent_files_rebuilds_the_student_from_the_stored_state(run: Run) -> None:
    _, _, before = run.publish("bulk")
    result, outcome, sent = run.publish("delta_users_only")
    assert result.rejects == [] and result.mode == "delta"
    assert list(sent) == [AVA]  # only what changed
    ava = sent[AVA]
    assert ava["names"]["last_name"] == "Lopez-Hart"
    assert ava["contact"]["email"] == "ava.hart@students.maple.example"
    # everything else comes whole from the stored orgs, classes, enrollments, demographics
    for section in ("schedule", "demographics", "guardians"):
        assert ava[section] == before[AVA][section], section
    assert ava["enrollment"]["entry_date"] == dt.date(2025, 9, 3)
    assert (ava["district_id"], ava["school_id"]) == ("3600001", "360000100001")
    assert ava["occurred_at"] == ms("2026-02-02T14:15:00+00:00")
    assert outcome.unchanged == 2


def test_delta_of_enrollments_only_changes_the_schedule(run: Run) -> None:
    run.publish("bulk")
    _, _, sent = run.publish("delta_enrollments_only")
    assert list(sent) == [BEN]
    sections = sent[BEN]["schedule"]["sections"]
    assert [(s["section_id"], s["teacher_name"]) for s in sections] == [
        ("cls-ela7-2", "Emma Schultz")
    ]  # the teacher from the stored enrollments and users
    assert sent[BEN]["names"]["first_name"] == "Ben"
    assert sent[BEN]["occurred_at"] == ms("2026-02-05T08:00:00+00:00")


def test_minimal_delete_finds_the_student_through_the_state(run: Run) -> None:
    run.publish("bulk")
    result, _, sent = run.publish("delta_minimal_delete")
    assert result.rejects == []
    # no event for the teacher, but her students' math section lost its teacher
    assert sorted(sent) == [AVA, BEN, CHLOE]
    math = [s for s in sent[BEN]["schedule"]["sections"] if s["section_id"] == "cls-math7-1"]
    assert math[0]["teacher_name"] is None
    chloe = sent[CHLOE]
    assert (chloe["operation"], chloe["district_id"], chloe["school_id"]) == (
        "DELETE",
        "3600001",
        "360000100001",
    )
    assert chloe["occurred_at"] == ms("2026-02-10T16:00:00+00:00")
    assert [w.message for w in result.warnings] == [
        "users.csv:4:*: tobedeleted user 'usr-nobody' is not a known student (not in the "
        "stored state, never published): nothing to withdraw"
    ]
    # fingerprinted like an upsert: the same delta again sends nothing
    result, outcome, sent = run.publish("delta_minimal_delete")
    assert sent == {} and outcome.unchanged == 3
    # and the withdrawn student is gone from the state: the next bulk does not bring it back
    assert CHLOE not in {e.key for e in run.read("bulk_missing_student").withdrawals}


def test_bulk_without_a_student_withdraws_it_behind_the_guard(run: Run) -> None:
    run.publish("bulk")
    result, outcome, sent = run.publish("bulk_missing_student")
    assert [e.key for e in result.withdrawals] == [CHLOE]
    # 1 of 3 (33%) is over the default 10%: nothing withdrawn, and the command says why
    assert CHLOE not in sent and outcome.held_withdrawals == 1
    assert outcome.guard is not None and "--confirm-withdrawals" in outcome.guard
    assert "1 of the 3 students published before (33%)" in outcome.guard
    # confirmed: the DELETE goes, with the district and school it was published with
    result, outcome, sent = run.publish("bulk_missing_student", confirm=True)
    assert sent[CHLOE]["operation"] == "DELETE" and outcome.withdrawn == 1
    assert (sent[CHLOE]["district_id"], sent[CHLOE]["school_id"]) == ("3600001", "360000100001")
    # once withdrawn, a re-run withdraws nothing more
    result, outcome, sent = run.publish("bulk_missing_student")
    assert sent == {} and result.withdrawals == [] and outcome.guard is None


def test_a_failed_publish_leaves_the_state_as_it_was(run: Run) -> None:
    run.publish("bulk")
    with pytest.raises(PublishError):
        run.publish("delta_users_only", publisher=MemoryPublisher(fail=True))
    # nothing was recorded: the same delta publishes the same change again
    _, _, sent = run.publish("delta_users_only")
    assert list(sent) == [AVA]


def test_a_changed_key_deletes_the_old_one(run: Run, tmp_path: Path) -> None:
    run.publish("bulk")
    package = tmp_path / "changed"
    shutil.copytree(DATA / "bulk", package)
    users = package / "users.csv"
    users.write_text(users.read_text().replace("{stateID:2234567890}", "{stateID:2999999999}"))
    result = read_package(package, store=run.store, fallback_time_ms=7)
    operations = {(e.key, e.operation) for e in result.events}
    assert {(BEN, "DELETE"), ("2999999999", "UPSERT")} <= operations
    assert any("the student key changed" in w.reason for w in result.warnings)


def test_the_classic_self_contained_delta_still_works_after_a_bulk(run: Run) -> None:
    run.publish("bulk")
    result, _, sent = run.publish("delta")
    assert result.rejects == []
    assert sent[BEN]["operation"] == "DELETE"
    assert sent[AVA]["names"]["last_name"] == "Lopez-Hart"
    # the schedule comes from the stored enrollments (the delta marks them absent)
    assert len(sent[AVA]["schedule"]["sections"]) == 3
    assert set(sent[AVA]["demographics"].values()) == {None}  # its row was tobedeleted
