"""``hallpass dlq list|show|replay`` on a real broker: dead letters the processor wrote are
listed with reason and origin, shown without never-share values or raw undecodable bytes,
and replayed to their input topic exactly once (a second replay, or one that overlaps it,
writes nothing more)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import Connection
from streams.errors import HallpassError
from streams.kafka.admin import ensure_topics
from streams.kafka.names import Topics, TopicSpec
from streams.kafka.wire import WireEncoder
from streams.policy.catalog import load_schema, schema_dir
from streams.processor.app import apply_contracts
from streams.processor.dlq_tool import REPLAYED_HEADER, Selection, read_dead_letters, replay
from tests.kafka_helpers import read_topic
from tests.processor_helpers import cli_env, hallpass

pytestmark = pytest.mark.kafka

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"
GARBAGE = b"\x07SECRET-GARBAGE not avro at all"


def _example() -> dict[str, Any]:
    example: dict[str, Any] = json.loads(
        (schema_dir() / "examples" / "student_record_changed.upsert.json").read_text()
    )
    return example


def _dead_letters(bus: Connection, topics: Topics, tmp: Path) -> dict[str, Any]:
    """An undecodable record and a future-dated change, dead-lettered by the processor."""
    apply_contracts(bus, CONTRACTS, topics, secrets_file=tmp / "partner-secrets.json")
    ensure_topics(bus, [TopicSpec(topics.changes, 3), TopicSpec(topics.consent, 3)])
    producer = Producer(bus.kafka_config({"partitioner": "murmur2_random"}))
    encoder = WireEncoder(
        SchemaRegistryClient(bus.registry_config()),
        f"{topics.changes}-value",
        load_schema("student_record_changed"),
    )
    future = {**_example(), "occurred_at": int(time.time() * 1000) + 5 * 86_400_000}
    producer.produce(topics.changes, key=b"NY-BAD-1", value=GARBAGE)
    producer.produce(
        topics.changes, key=future["student_id"].encode(), value=encoder.encode(future)
    )
    assert producer.flush(30) == 0
    hallpass(bus, topics, tmp, "process", "--until-idle", "--contracts", str(CONTRACTS))
    return future


def _replayed(bus: Connection, topics: Topics) -> list[bytes]:
    return [
        r.headers[REPLAYED_HEADER]
        for r in read_topic(bus, topics.changes)
        if REPLAYED_HEADER in r.headers
    ]


def test_list_show_and_replay_exactly_once(bus: Connection, topics: Topics, tmp_path: Path) -> None:
    future = _dead_letters(bus, topics, tmp_path)

    rows = json.loads(hallpass(bus, topics, tmp_path, "dlq", "list", "--json").stdout)
    by_kind = {row["reason"].split(":")[0]: row for row in rows}
    assert set(by_kind) == {"undecodable", "future_dated"}
    for row in rows:
        assert row["origin_topic"] == topics.changes
        assert isinstance(row["origin_offset"], int) and row["replayed"] is False
    assert by_kind["undecodable"]["key"] == "NY-BAD-1"
    text = hallpass(bus, topics, tmp_path, "dlq", "list").stdout
    assert "future_dated" in text and topics.changes in text

    shown = hallpass(
        bus, topics, tmp_path, "dlq", "show", by_kind["undecodable"]["position"]
    ).stdout
    assert f"{len(GARBAGE)} bytes: 07 53 45" in shown and "SECRET" not in shown
    shown = hallpass(
        bus, topics, tmp_path, "dlq", "show", by_kind["future_dated"]["position"]
    ).stdout
    assert future["names"]["first_name"] in shown and "future_dated" in shown
    assert not [v for v in future["restricted"].values() if v in shown]

    first = hallpass(bus, topics, tmp_path, "dlq", "replay", "--reason", "future_dated").stdout
    assert "1 replayed, 0 replayed before" in first
    assert len(_replayed(bus, topics)) == 1
    again = hallpass(bus, topics, tmp_path, "dlq", "replay", "--reason", "future_dated").stdout
    assert "0 replayed, 1 replayed before" in again
    assert len(_replayed(bus, topics)) == 1

    everything = hallpass(bus, topics, tmp_path, "dlq", "replay", "--all").stdout
    assert "1 replayed, 1 replayed before" in everything
    back = [r for r in read_topic(bus, topics.changes) if REPLAYED_HEADER in r.headers]
    assert [r.value for r in back if r.key == b"NY-BAD-1"] == [GARBAGE]
    assert len(back) == 2
    rows = json.loads(hallpass(bus, topics, tmp_path, "dlq", "list", "--json").stdout)
    assert all(row["replayed"] for row in rows)


def test_a_replay_overlapping_another_writes_each_record_once(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    """A second replay starts while the first has written but not committed: it fences the
    first (whose transaction is aborted) and replays; the first fails with one line."""
    _dead_letters(bus, topics, tmp_path)
    selection = Selection(everything=True)
    second: list[int] = []

    def start_another() -> None:
        second.append(len(replay(bus, topics, selection).replayed))

    with pytest.raises(HallpassError, match="took over"):
        replay(bus, topics, selection, on_fenced=start_another)
    assert second == [2]
    assert len(_replayed(bus, topics)) == 2
    assert replay(bus, topics, selection).replayed == []
    assert len(_replayed(bus, topics)) == 2
    assert len(read_dead_letters(bus, topics)) == 2


def test_selections_by_origin_and_mistakes_are_one_line(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    _dead_letters(bus, topics, tmp_path)
    letters = read_dead_letters(bus, topics)
    bad = next(d for d in letters if d.kind == "undecodable")
    origin = f"{topics.changes}:{bad.origin_partition}:{bad.origin_offset}"
    out = hallpass(bus, topics, tmp_path, "dlq", "replay", "--origin", origin).stdout
    assert "1 replayed" in out and bad.position in out
    assert _replayed(bus, topics) == [f"{topics.changes_dlq}|{bad.position}".encode()]

    for args in (
        ["dlq", "replay"],
        ["dlq", "show", "7:99999"],
        ["dlq", "show", "x"],
        ["dlq", "replay", "--origin", "t:a:b"],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "streams", "--data-dir", str(tmp_path), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=cli_env(bus, topics),
            check=False,
        )
        assert run.returncode == 1, (args, run.stderr)
        assert run.stderr.startswith("Error: ") and len(run.stderr.splitlines()) == 1, run.stderr
