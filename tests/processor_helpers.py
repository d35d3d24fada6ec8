"""Helpers of the processor's integration tests: what a simulated dataset should end as on
the partner topics (an oracle written from DESIGN's rules, independent of the processor's
code paths), leaf paths of records, the CLI and the processor as subprocesses, clean-up."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec  # type: ignore[attr-defined]
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.simulation.stream import SimEvent
from streams.config import ENV_BOOTSTRAP, ENV_REGISTRY, Connection
from streams.kafka.names import ENV_TOPIC_PREFIX, Topics
from streams.policy.catalog import FieldInfo
from streams.policy.consent import (
    ConsentEvent,
    ConsentStatus,
    DistrictState,
    StudentConsentHistory,
)
from streams.policy.contracts import Basis, Contract
from streams.policy.majority import MajorityAges, record_majority_at
from streams.policy.schema_walk import leaves
from tests.eventually import eventually


def event_time(value: Mapping[str, Any]) -> int:
    """Event time of a change (occurred_at) or a consent event (effective_at)."""
    return int(value["occurred_at"] if "occurred_at" in value else value["effective_at"])


# --- leaf paths ---------------------------------------------------------------------------


def non_null_leaves(record: Mapping[str, Any], leaf_paths: Iterable[str]) -> set[str]:
    """Dotted paths (``a.b``, ``a[].b``) of the leaves that carry a value in ``record``.

    A key that is neither a known leaf nor a record/array of records counts as a leaf, so an
    unexpected field shows up instead of being skipped.
    """
    leaves = set(leaf_paths)
    found: set[str] = set()

    def walk(node: Any, path: str) -> None:
        if node is None:
            return
        if path in leaves:
            found.add(path)
        elif isinstance(node, Mapping):
            for key, value in node.items():
                walk(value, f"{path}.{key}" if path else str(key))
        elif isinstance(node, list) and all(isinstance(item, Mapping) for item in node):
            for item in node:
                walk(item, f"{path}[]")
        else:
            found.add(path)

    walk(record, "")
    return found


def schema_leaf_paths(schema: Mapping[str, Any]) -> set[str]:
    """Leaf paths of an Avro record schema (inline records and arrays of records)."""
    return {path for path, _ in leaves(schema)}


# --- what the partner topics should end as ----------------------------------------------------


@dataclass
class Expected:
    """The final state of a simulated dataset, from its events alone."""

    catalog: Mapping[str, FieldInfo]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    last_change: dict[str, str] = field(default_factory=dict)
    deleted: set[str] = field(default_factory=set)
    district_of: dict[str, str] = field(default_factory=dict)
    histories: dict[str, StudentConsentHistory] = field(default_factory=dict)
    districts: dict[str, DistrictState] = field(default_factory=dict)
    end: int = 0

    @classmethod
    def of(
        cls,
        catalog: Mapping[str, FieldInfo],
        changes: Iterable[Mapping[str, Any]],
        consent: Iterable[Mapping[str, Any]],
    ) -> Expected:
        out = cls(catalog)
        for value in changes:
            student = str(value["student_id"])
            out.end = max(out.end, event_time(value))
            out.district_of[student] = str(value["district_id"])
            out.last_change[student] = str(value["event_id"])
            if value["operation"] == "DELETE":
                out.deleted.add(student)
                out.records.pop(student, None)
                continue
            out.deleted.discard(student)
            previous = out.records.get(student, {})
            # a null section means "not part of this change"
            out.records[student] = {
                k: (previous.get(k) if v is None else v) for k, v in value.items()
            }
        for value in consent:
            event = ConsentEvent.from_avro(value)
            out.end = max(out.end, event.effective_at)
            if event.is_district_event:
                state = out.districts.get(event.district_id, DistrictState())
                out.districts[event.district_id] = state.apply(event)
            else:
                student = event.student_id or ""
                history = out.histories.get(student, StudentConsentHistory())
                out.histories[student] = history.apply(event)
        return out

    @property
    def students(self) -> set[str]:
        return set(self.district_of)

    def status(self, student: str, partner: str) -> ConsentStatus:
        """At the end; whose consent counts follows the student's age (DESIGN: the rights
        pass to the student at 18, 34 CFR 99.5; the record's birth date, midnight UTC)."""
        majority = record_majority_at(self.records.get(student), MajorityAges())
        return self.histories.get(student, StudentConsentHistory()).status_at(
            self.end, partner, majority
        )

    def district_opted_out(self, student: str, partner: str) -> bool:
        state = self.districts.get(self.district_of[student], DistrictState())
        return state.opted_out(self.end, partner)

    def view_fields(
        self, student: str, contract: Contract, allowances: Mapping[str, Basis]
    ) -> set[str] | None:
        """The leaves ``contract``'s partner holds of ``student`` at the end; None: nothing.

        DESIGN: nothing once the contract ended, the student was deleted, the district or the
        parent opted out; else the allowed fields whose basis holds for this student
        (directory unless the parent opted out of it, school_official, consent only with a
        live grant of the field's category and of every special category its values can
        reveal) and that carry a value.
        """
        status = self.status(student, contract.partner)
        if (
            not contract.is_active(self.end)
            or student in self.deleted
            or self.district_opted_out(student, contract.partner)
            or status.parent_opted_out_all
            or status.parent_opted_out_partner
        ):
            return None
        permitted = {
            path
            for path, basis in allowances.items()
            if basis is Basis.SCHOOL_OFFICIAL
            or (basis is Basis.DIRECTORY and not status.directory_opt_out)
            or (
                basis is Basis.CONSENT
                and {self.catalog[path].category, *self.catalog[path].reveals}
                <= status.live_consent_categories
            )
        }
        if not permitted:
            return None
        return non_null_leaves(self.records[student], self.catalog) & permitted


def never_share_values(
    events: Iterable[SimEvent], paths: Iterable[str], min_length: int = 10
) -> set[str]:
    """The raw values the simulator put in never-share fields, long enough to be searched for
    in encoded bytes without matching by chance (4-digit PINs are checked structurally)."""
    wanted = [p.split(".") for p in paths]
    found: set[str] = set()
    for event in events:
        for parts in wanted:
            node: Any = event.value
            for part in parts:
                node = node.get(part) if isinstance(node, Mapping) else None
            if isinstance(node, str) and len(node) >= min_length:
                found.add(node)
    return found


# --- processes --------------------------------------------------------------------------------


def cli_env(conn: Connection, topics: Topics) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        {
            ENV_BOOTSTRAP: conn.bootstrap_servers,
            ENV_REGISTRY: conn.schema_registry_url,
            ENV_TOPIC_PREFIX: topics.prefix,
        }
    )
    return env


def hallpass(
    conn: Connection, topics: Topics, data_dir: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    """Run ``hallpass ARGS`` as a user would, on the prefixed topics; fail on a bad exit."""
    result = subprocess.run(
        [sys.executable, "-m", "streams", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=cli_env(conn, topics),
        check=False,
    )
    assert result.returncode == 0, f"hallpass {' '.join(args)}:\n{result.stderr}"
    return result


class ProcessorProcess:
    """``hallpass process --until-idle`` as a subprocess whose progress lines can be waited
    for (they go to stderr, here a file)."""

    def __init__(
        self, conn: Connection, topics: Topics, data_dir: Path, args: Sequence[str], log: Path
    ) -> None:
        self.log = log
        self._out = log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streams",
                "--data-dir",
                str(data_dir),
                "process",
                "--until-idle",
                *args,
            ],
            stdout=self._out,
            stderr=subprocess.STDOUT,
            env=cli_env(conn, topics),
        )

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text()

    def wait_for(self, text: str, timeout_s: float) -> bool:
        """True once ``text`` is in the output; False if the process ended first."""
        eventually(
            lambda: text in self.output() or self.proc.poll() is not None,
            timeout_s,
            lambda: f"no {text!r}:\n{self.output()}",
            interval_s=0.02,
        )
        return text in self.output()

    def kill(self) -> bool:
        """SIGKILL; True if the process was still running."""
        running = self.proc.poll() is None
        if running:
            self.proc.kill()
        self.proc.wait(30)
        self._out.close()
        return running

    def finish(self, timeout_s: float) -> int:
        try:
            code = self.proc.wait(timeout_s)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._out.close()
        return code


def committed_offsets(
    conn: Connection, group: str, topics: Sequence[str], partitions: int = 3
) -> dict[tuple[str, int], int]:
    """The group's committed input offsets (what its transactions committed).

    Read uncommitted: a read_committed offset fetch waits while a dead worker's transaction
    still holds pending offsets (until its successor aborts it)."""
    consumer = Consumer(
        conn.kafka_config(
            {"group.id": group, "enable.auto.commit": False, "isolation.level": "read_uncommitted"}
        )
    )
    try:
        wanted = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        return {
            (tp.topic, tp.partition): max(tp.offset, 0)
            for tp in consumer.committed(wanted, timeout=30)
        }
    finally:
        consumer.close()


def drop_prefix(conn: Connection, prefix: str) -> None:
    """Delete the topics and registry subjects of one test run (best effort); with
    HALLPASS_KEEP_TEST_TOPICS=1 they are kept for inspection."""
    if os.environ.get("HALLPASS_KEEP_TEST_TOPICS") == "1":
        print(f"kept the topics and subjects {prefix}*")
        return
    admin = AdminClient(conn.kafka_config())
    names = [t for t in admin.list_topics(timeout=30).topics if t.startswith(prefix)]
    if names:
        for future in admin.delete_topics(names, operation_timeout=30).values():
            try:
                future.result()
            except Exception as exc:  # clean-up must not fail the tests
                print(f"could not delete a topic of {prefix}: {exc}")
    registry = SchemaRegistryClient(conn.registry_config())
    for subject in registry.get_subjects():
        if subject.startswith(prefix):
            try:
                registry.delete_subject(subject)
            except Exception as exc:  # clean-up must not fail the tests
                print(f"could not delete subject {subject}: {exc}")


def count_records(conn: Connection, topic: str, isolation: str) -> int:
    """How many records ``topic`` holds as a consumer with ``isolation`` sees them."""
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": f"t-count-{time.monotonic_ns()}",
                "enable.auto.commit": False,
                "isolation.level": isolation,
                "enable.partition.eof": True,
            }
        )
    )
    count = 0
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
        pending = set(partitions)

        def read_to_end() -> bool:
            nonlocal count
            for msg in consumer.consume(num_messages=10000, timeout=0.5):
                if msg.error() is not None:
                    pending.discard(msg.partition())
                else:
                    count += 1
            return not pending

        eventually(read_to_end, 60, f"no end of {topic}", interval_s=0)
    finally:
        consumer.close()
    return count


class OpenTransactions:
    """How many records on ``topics`` belong to transactions still open: the high watermark
    minus the last stable offset, per partition (a dead producer's transaction stays open
    until its successor's ``init_transactions`` aborts it)."""

    def __init__(self, conn: Connection, topics: Sequence[str], partitions: int = 3) -> None:
        self._admin = AdminClient(conn.kafka_config())
        self._wanted = {
            TopicPartition(t, p): OffsetSpec.latest()  # type: ignore[no-untyped-call]
            for t in topics
            for p in range(partitions)
        }

    def _ends(self, isolation: IsolationLevel) -> dict[tuple[str, int], int]:
        futures = self._admin.list_offsets(self._wanted, isolation_level=isolation)
        return {(tp.topic, tp.partition): f.result().offset for tp, f in futures.items()}

    def records(self) -> int:
        stable = self._ends(IsolationLevel.READ_COMMITTED)
        high = self._ends(IsolationLevel.READ_UNCOMMITTED)
        return sum(high[tp] - stable[tp] for tp in high)
