"""The local fingerprint store: publish a student only when its content changed (no Kafka)."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from connectors.oneroster import StudentEvent, read_package
from connectors.source.state import FingerprintStore, canonical_json, fingerprint

DATA = Path(__file__).resolve().parents[1] / "data" / "oneroster"


def event(**changes: Any) -> dict[str, Any]:
    value: dict[str, Any] = {
        "event_id": "e-1",
        "student_id": "1234567890",
        "source_system": "Maple SIS",
        "district_id": "3600001",
        "school_id": "360000100001",
        "operation": "UPSERT",
        "occurred_at": 1_768_210_200_000,
        "names": {"first_name": "Ava", "last_name": "Lopez"},
        "guardians": [{"guardian_id": "P-501"}],
    }
    value.update(changes)
    return value


# --------------------------------------------------------------------------- fingerprint


def test_fingerprint_ignores_event_id_and_occurred_at() -> None:
    assert fingerprint(event()) == fingerprint(event(event_id="e-2", occurred_at=1))


def test_fingerprint_changes_with_any_content() -> None:
    base = fingerprint(event())
    assert fingerprint(event(names={"first_name": "Ava", "last_name": "Hart"})) != base
    assert fingerprint(event(operation="DELETE")) != base
    assert fingerprint(event(guardians=[])) != base
    assert fingerprint(event(school_id=None)) != base


def test_fingerprint_does_not_depend_on_key_order() -> None:
    shuffled = dict(reversed(list(event().items())))
    assert fingerprint(shuffled) == fingerprint(event())
    assert canonical_json(event()).startswith('{"district_id":"3600001"')
    assert len(fingerprint(event())) == 64


# --------------------------------------------------------------------------- store


def test_new_student_is_changed_until_delivered(tmp_path: Path) -> None:
    with FingerprintStore(tmp_path / "state" / "fp.sqlite3") as store:
        fp = fingerprint(event())
        assert store.changed("1234567890", fp)
        assert store.changed("1234567890", fp)  # asking does not record anything
        store.mark_delivered("1234567890", fp)
        assert not store.changed("1234567890", fp)
        assert store.changed("1234567890", fingerprint(event(school_id=None)))
        assert store.get("1234567890") == fp
        assert len(store) == 1


def test_store_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "fp.sqlite3"
    with FingerprintStore(path) as store:
        store.mark_delivered("s1", "a" * 64)
    with FingerprintStore(path) as store:
        assert not store.changed("s1", "a" * 64)
        assert store.changed("s2", "a" * 64)


def test_mark_delivered_replaces_the_previous_fingerprint(tmp_path: Path) -> None:
    with FingerprintStore(tmp_path / "fp.sqlite3") as store:
        store.mark_delivered("s1", "old")
        store.mark_delivered("s1", "new")
        assert store.get("s1") == "new"
        assert store.changed("s1", "old")
        assert len(store) == 1


def test_forget_after_a_delete(tmp_path: Path) -> None:
    with FingerprintStore(tmp_path / "fp.sqlite3") as store:
        store.mark_delivered("s1", "fp")
        store.forget("s1")
        assert store.get("s1") is None
        assert store.changed("s1", "fp")  # a student who comes back is published again
        store.forget("never-seen")  # forgetting twice or unknown ids is fine
        assert len(store) == 0


# --------------------------------------------------------------------------- with a publisher


def publish(
    events: Iterable[StudentEvent],
    store: FingerprintStore,
    deliver: Callable[[StudentEvent], bool],
) -> list[str]:
    """The publisher contract: send what changed, mark only what the broker acknowledged."""
    sent: list[str] = []
    for item in events:
        fp = fingerprint(item.value)
        if not store.changed(item.key, fp):
            continue
        sent.append(item.key)
        if deliver(item):  # the delivery report said ok
            if item.operation == "DELETE":
                store.forget(item.key)
            else:
                store.mark_delivered(item.key, fp)
    return sent


def test_a_second_bulk_load_publishes_only_changed_students(tmp_path: Path) -> None:
    package = tmp_path / "bulk"
    shutil.copytree(DATA / "bulk", package)
    with FingerprintStore(tmp_path / "fp.sqlite3") as store:
        first = read_package(package, fallback_time_ms=1, write_rejects_file=False)
        assert publish(first.events, store, lambda _: True) == [
            "1234567890",
            "2234567890",
            "3234567890",
        ]
        # the next night's export: same data, another export time, one email changed
        users = package / "users.csv"
        users.write_text(users.read_text().replace("ben.okafor@students", "b.okafor@students"))
        second = read_package(package, fallback_time_ms=2, write_rejects_file=False)
        assert publish(second.events, store, lambda _: True) == ["2234567890"]
        assert publish(second.events, store, lambda _: True) == []


def test_rerun_after_a_partial_run_sends_only_what_was_not_acknowledged(tmp_path: Path) -> None:
    package = tmp_path / "bulk"
    shutil.copytree(DATA / "bulk", package)
    result = read_package(package, fallback_time_ms=1, write_rejects_file=False)
    path = tmp_path / "fp.sqlite3"
    with FingerprintStore(path) as store:
        # the broker acknowledged Ava, then the connector crashed before the others
        sent = publish(result.events, store, lambda e: e.key == "1234567890")
        assert sent == ["1234567890", "2234567890", "3234567890"]
    with FingerprintStore(path) as store:  # the re-run, a new process
        assert publish(result.events, store, lambda _: True) == ["2234567890", "3234567890"]
        assert publish(result.events, store, lambda _: True) == []


def test_delete_forgets_and_a_returning_student_is_published(tmp_path: Path) -> None:
    with FingerprintStore(tmp_path / "fp.sqlite3") as store:
        bulk = read_package(DATA / "bulk", fallback_time_ms=1, write_rejects_file=False)
        publish(bulk.events, store, lambda _: True)
        delta = read_package(DATA / "delta", write_rejects_file=False)
        sent = publish(delta.events, store, lambda _: True)
        assert sent == ["1234567890", "2234567890"]  # Ava changed, Ben deleted
        assert store.get("2234567890") is None
        assert publish(bulk.events, store, lambda _: True) == ["1234567890", "2234567890"]
