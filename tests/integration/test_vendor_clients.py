"""Vendors in Python, Java and Node.js with their default clients (deploy/vendors/).

A small simulated district goes through the processor; then each example consumer (Python
confluent-kafka, Java kafka-clients with Apache Avro, Node.js kafkajs with avsc) reads one
partner's topics read_committed, decodes through the registry and keeps a local copy, twice:
after the initial load, and after parents' opt-outs (a directory opt-out narrows the view:
a notice naming fields; an opt-out of all sharing: a tombstone and a whole-record notice). Each
copy must equal, key for key and field for field, what ``hallpass vendor pull`` holds.

Proof of deletion: each consumer acknowledges every notice it applied on partner.<id>.acks
(a DeletionAck in the Confluent wire format under the schema id registered for
``partner.<id>.acks-value``, its note naming the client). ``hallpass vendor pull`` runs with
``--no-ack`` here, so every acknowledgement on the topic is a consumer's: after the opt-outs
``hallpass retractions --unacknowledged`` lists the new notices until the consumers run, and
nothing after; each consumer's acknowledgements decode and name every notice once.

Compression: the processor writes LZ4; kafkajs reads only gzip without plugins, so the bus
creates partner topics with a topic-level ``compression.type=gzip`` (the broker recompresses;
streams/policy/retention.py), and the kafkajs consumer reads them with no setting of its own.

The Java and Node builds (``mvn package``, ``npm ci``) run once per source into the hallpass
cache (``~/.cache/hallpass/vendor-java-<hash>``, ``vendor-node-<hash>``), offline after the
first fetch (``~/.m2``, ``~/.npm``).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    ConfigResource,
    ResourceType,
)
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import Connection
from streams.kafka.wire import WireDecoder
from tests.eventually import eventually
from tests.processor_helpers import count_records, drop_prefix, hallpass

try:  # the package layout of the streams/connectors refactor
    from connectors.simulation.stream import CHANGES_TOPIC, CONSENT_TOPIC, simulate
    from connectors.source.publisher import EventPublisher
    from streams.kafka.names import Topics
except ImportError:  # the layout before it
    from connectors.publisher import (  # type: ignore[import-not-found,no-redef,unused-ignore]
        EventPublisher,
    )
    from connectors.simulator import (  # type: ignore[import-not-found,no-redef,unused-ignore]
        CHANGES_TOPIC,
        CONSENT_TOPIC,
        simulate,
    )
    from streams.topics import (  # type: ignore[import-not-found,import-untyped,no-redef,unused-ignore]
        Topics,
    )

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
VENDORS = REPO / "deploy" / "vendors"
CONTRACTS = REPO / "deploy" / "contracts"
STUDENTS, SEED, DAYS, DISTRICTS = 300, 7, 10, 2
#: read with gzip on its topics (the recommended setting) / as the bus creates them (LZ4)
PARTNER, LZ4_PARTNER = "learnwell", "measurely"
CLIENTS = ("python", "java", "node")


def cache_dir() -> Path:
    """The hallpass cache (``HALLPASS_CACHE_DIR``, else ``$XDG_CACHE_HOME/hallpass``, else
    ``~/.cache/hallpass``), as the local runtime uses it."""
    if os.environ.get("HALLPASS_CACHE_DIR"):
        return Path(os.environ["HALLPASS_CACHE_DIR"]).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "hallpass"


def _progress(message: str) -> None:
    print(f"[vendor-clients] {message}", file=sys.stderr)


def _built(kind: str, sources: Sequence[Path], build: Any) -> Path:
    """The directory ``build(staging)`` made, once per content of ``sources``, in the hallpass
    cache; built in a private directory renamed into place (concurrent runs never see half of
    one)."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update(source.relative_to(REPO).as_posix().encode() + b"\0" + source.read_bytes())
    root = cache_dir()
    target = root / f"vendor-{kind}-{digest.hexdigest()[:16]}"
    if (target / ".built").exists():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".vendor-{kind}-", dir=root))
    try:
        started = time.monotonic()
        build(staging)
        (staging / ".built").touch()
        try:
            staging.rename(target)
        except OSError:  # another run put the same build there first
            if not (target / ".built").exists():
                raise
        _progress(f"built the {kind} consumer in {time.monotonic() - started:.1f}s: {target}")
        return target
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _run(argv: Sequence[str], cwd: Path, what: str, timeout: float = 600) -> None:
    result = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=timeout
    )
    assert result.returncode == 0, f"{what} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"


def java_consumer() -> list[str]:
    """``java -jar`` of deploy/vendors/java, built with ``mvn package`` once per source."""
    project = VENDORS / "java"
    mvn, java = shutil.which("mvn"), shutil.which("java")
    assert mvn and java, "Maven and Java 17+ are needed (make setup)"

    def build(staging: Path) -> None:
        work = staging / "project"
        shutil.copytree(project, work, ignore=shutil.ignore_patterns("target"))
        _run([mvn, "-q", "-B", "package"], work, "mvn package (deploy/vendors/java)")
        shutil.move(work / "target" / "hallpass-vendor-consumer.jar", staging)
        shutil.move(work / "target" / "lib", staging / "lib")
        shutil.rmtree(work)

    sources = [project / "pom.xml", *sorted((project / "src").rglob("*.*"))]
    built = _built("java", sources, build)
    return [java, "-jar", str(built / "hallpass-vendor-consumer.jar")]


def node_consumer() -> tuple[list[str], dict[str, str]]:
    """``node vendor-consumer.js`` with the packages of its lock file (``npm ci`` once)."""
    project = VENDORS / "node"
    node, npm = shutil.which("node"), shutil.which("npm")
    assert node and npm, "Node.js 18+ and npm are needed (make setup)"

    def build(staging: Path) -> None:
        for name in ("package.json", "package-lock.json"):
            shutil.copy(project / name, staging)
        _run(
            [npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error"],
            staging,
            "npm ci (deploy/vendors/node)",
        )

    built = _built("node", [project / "package.json", project / "package-lock.json"], build)
    return [node, str(project / "vendor-consumer.js")], {"NODE_PATH": str(built / "node_modules")}


@dataclass
class Run:
    summary: dict[str, Any]
    copy: dict[str, Any]
    seconds: float


@dataclass
class Vendors:
    conn: Connection
    topics: Topics
    work: Path
    java: list[str]
    node: list[str]
    node_env: dict[str, str]
    group: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def argv(self, client: str, partner: str) -> tuple[list[str], dict[str, str]]:
        copy = self.work / f"{client}-{partner}.json"
        common = [
            "--bootstrap",
            self.conn.bootstrap_servers,
            "--registry",
            self.conn.schema_registry_url,
            "--partner",
            partner,
            "--topic-prefix",
            self.topics.prefix,
            "--copy",
            str(copy),
            "--group",
            f"{partner}-{client}-{self.group}",
        ]
        if client == "python":
            return [sys.executable, str(VENDORS / "python" / "vendor_consumer.py"), *common], {}
        if client == "java":
            return [*self.java, *common], {}
        return [*self.node, *common], self.node_env

    def start(self, client: str, partner: str) -> subprocess.Popen[str]:
        argv, env = self.argv(client, partner)
        return subprocess.Popen(
            argv,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )

    def sync(self, partner: str, clients: Sequence[str] = CLIENTS) -> dict[str, Run]:
        """Run the consumers side by side; each one's summary and copy."""
        started = time.monotonic()
        procs = {c: self.start(c, partner) for c in clients}
        runs = {}
        for client, proc in procs.items():
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0, f"{client} consumer exited {proc.returncode}:\n{err}"
            copy = json.loads((self.work / f"{client}-{partner}.json").read_text())
            runs[client] = Run(
                json.loads(out.strip().splitlines()[-1]), copy, time.monotonic() - started
            )
        return runs

    def pull(self, partner: str) -> tuple[dict[str, Any], str]:
        """``hallpass vendor pull --no-ack``: its copy and its report line (the consumers
        alone acknowledge)."""
        copy = self.work / f"hallpass-{partner}.sqlite"
        result = hallpass(
            self.conn,
            self.topics,
            self.work,
            "vendor",
            "pull",
            "--partner",
            partner,
            "--copy",
            str(copy),
            "--group",
            f"{partner}-hallpass-{self.group}",
            "--show",
            "0",
            "--no-ack",
        )
        db = sqlite3.connect(copy)
        try:
            records = {k: json.loads(r) for k, r in db.execute("SELECT key, record FROM students")}
        finally:
            db.close()
        return records, result.stdout

    def unacknowledged(self, partner: str) -> dict[str, Any]:
        """``hallpass retractions --partner P --unacknowledged --format json``."""
        out = hallpass(
            self.conn,
            self.topics,
            self.work,
            "retractions",
            "--partner",
            partner,
            "--unacknowledged",
            "--format",
            "json",
        )
        parsed: dict[str, Any] = json.loads(out.stdout)
        return parsed


@dataclass
class Outcome:
    first: dict[str, Run]
    second: dict[str, Run]
    pulled_first: dict[str, Any]
    pulled_second: dict[str, Any]
    pull_reports: list[str]
    notices: int
    #: ``hallpass retractions --unacknowledged`` after the opt-outs, before and after the
    #: consumers' second run
    unacknowledged_before: dict[str, Any]
    unacknowledged_after: dict[str, Any]


def topic_compression(conn: Connection, topic: str) -> str:
    admin = AdminClient(conn.kafka_config())
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(30)
    return str(configs["compression.type"].value)


def _quiet_students(events: Sequence[Any]) -> list[tuple[str, str]]:
    """(student, district) of students with no consent event and never deleted."""
    touched = {e.key for e in events if e.topic == CONSENT_TOPIC}
    touched |= {
        e.key for e in events if e.topic == CHANGES_TOPIC and e.value.get("operation") != "UPSERT"
    }
    seen: dict[str, str] = {}
    for e in events:
        if e.topic == CHANGES_TOPIC and e.key not in touched:
            seen.setdefault(e.key, e.value["district_id"])
    return sorted(seen.items())


@pytest.fixture(scope="module")
def vendors(bus: Connection, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Vendors]:
    started = time.monotonic()
    java = java_consumer()
    node, node_env = node_consumer()
    _progress(f"consumers ready in {time.monotonic() - started:.1f}s")
    topics = Topics(f"t.vendor-clients.{uuid.uuid4().hex[:8]}.")
    try:
        yield Vendors(bus, topics, tmp_path_factory.mktemp("vendor-clients"), java, node, node_env)
    finally:
        drop_prefix(bus, topics.prefix)


@pytest.fixture(scope="module")
def outcome(vendors: Vendors) -> Outcome:
    conn, topics, work = vendors.conn, vendors.topics, vendors.work
    started = time.monotonic()

    def lap(what: str) -> None:
        _progress(f"[{time.monotonic() - started:5.1f}s] {what}")

    hallpass(conn, topics, work, "contracts", "apply", "--contracts", str(CONTRACTS))
    events = list(simulate(STUDENTS, SEED, DAYS, districts=DISTRICTS))
    publisher = EventPublisher(
        conn, {topics.changes: "student_record_changed", topics.consent: "consent_changed"}
    )
    for event in events:
        publisher.publish(topics.name(event.topic), event.key, event.value)
    publisher.close()
    hallpass(conn, topics, work, "process", "--until-idle", "--contracts", str(CONTRACTS))
    lap(f"published and processed {len(events)} events")

    first = vendors.sync(PARTNER)
    pulled_first, report_first = vendors.pull(PARTNER)
    lap("first sync: " + ", ".join(f"{c} {r.seconds:.1f}s" for c, r in first.items()))

    # parents decide: a narrower view (directory opt-out) and a whole retraction (opt-out)
    quiet = _quiet_students(events)
    for student, district in quiet[:4]:
        hallpass(
            conn,
            topics,
            work,
            "consent",
            "directory-opt-out",
            "--student",
            student,
            "--district",
            district,
        )
    for student, district in quiet[4:7]:
        hallpass(
            conn, topics, work, "consent", "opt-out", "--student", student, "--district", district
        )
    hallpass(conn, topics, work, "process", "--until-idle", "--contracts", str(CONTRACTS))
    lap("opt-outs processed")
    before = vendors.unacknowledged(PARTNER)

    second = vendors.sync(PARTNER)
    pulled_second, report_second = vendors.pull(PARTNER)
    lap("second sync: " + ", ".join(f"{c} {r.seconds:.1f}s" for c, r in second.items()))
    after = vendors.unacknowledged(PARTNER)
    notices = count_records(conn, topics.notices(PARTNER), "read_committed")
    return Outcome(
        first,
        second,
        pulled_first,
        pulled_second,
        [report_first, report_second],
        notices,
        before,
        after,
    )


def records(conn: Connection, topic: str) -> list[tuple[bytes, bytes]]:
    """(key, value) of every record of ``topic`` (read_committed, to its end), read
    independently of the code under test."""
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": f"t-read-{uuid.uuid4().hex[:8]}",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )
    found: list[tuple[bytes, bytes]] = []
    try:
        partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
        pending = set(partitions)

        def done() -> bool:
            for msg in consumer.consume(num_messages=1000, timeout=0.5):
                if msg.error() is not None:
                    pending.discard(msg.partition())
                elif msg.value() is not None:
                    found.append((msg.key() or b"", msg.value() or b""))
            return not pending

        eventually(done, 60, lambda: f"did not reach the end of {topic}", interval_s=0)
    finally:
        consumer.close()
    return found


def _pull_counts(report: str) -> tuple[int, int]:
    found = re.search(r"(\d+) upserts, (\d+) deletions", report)
    assert found, report
    return int(found.group(1)), int(found.group(2))


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_holds_what_hallpass_vendor_pull_holds(outcome: Outcome, client: str) -> None:
    assert len(outcome.pulled_first) > 50, "the partner should hold a good part of the district"
    for run, pulled in (
        (outcome.first[client], outcome.pulled_first),
        (outcome.second[client], outcome.pulled_second),
    ):
        assert run.copy.keys() == pulled.keys()
        different = [k for k in pulled if run.copy[k] != pulled[k]]
        assert not different, (
            f"{client}: {len(different)} records differ, e.g. "
            f"{run.copy[different[0]]} != {pulled[different[0]]}"
        )
        assert run.summary["students_held"] == len(pulled)


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_applies_tombstones_and_notices(outcome: Outcome, client: str) -> None:
    first, second = outcome.first[client].summary, outcome.second[client].summary
    pulled = [_pull_counts(r) for r in outcome.pull_reports]
    assert (first["upserts"], first["tombstones"]) == pulled[0]
    assert (second["upserts"], second["tombstones"]) == pulled[1]
    assert second["tombstones"] >= 3, "three students opted out of all sharing"
    # every notice read once, over the two runs
    assert first["notices"] + second["notices"] == outcome.notices
    # the second run found the students it held: a notice deleted whole records and fields
    # before the tombstones and reduced views arrived
    assert second["records_deleted_by_notices"] >= 3, second
    assert second["fields_deleted_by_notices"] >= 1, second


@pytest.mark.parametrize("client", CLIENTS)
def test_each_client_acknowledges_every_notice_it_applied(
    vendors: Vendors, outcome: Outcome, client: str
) -> None:
    """Its acknowledgements are DeletionAcks under the schema id the district registered for
    the acks topic, keyed like the notices, one per notice, each naming its notice."""
    conn, topics = vendors.conn, vendors.topics
    registry = SchemaRegistryClient(conn.registry_config())
    decode = WireDecoder(registry).decode
    notices = {
        n["event_id"]: n for n in (decode(v) for _, v in records(conn, topics.notices(PARTNER)))
    }
    assert len(notices) == outcome.notices >= 3, "the opt-outs sent notices"
    registered = registry.get_latest_version(f"{topics.acks(PARTNER)}-value").schema_id
    name = outcome.first[client].summary["client"]
    acks = []
    for key, value in records(conn, topics.acks(PARTNER)):
        assert value[0] == 0 and int.from_bytes(value[1:5], "big") == registered
        ack = decode(value)
        if ack["note"] == name:
            acks.append((key, ack))
    assert sorted(a["notice_id"] for _, a in acks) == sorted(notices), (
        f"{client} should acknowledge each notice once"
    )
    now_ms = time.time() * 1000
    for key, ack in acks:
        notice = notices[ack["notice_id"]]
        assert ack["partner"] == PARTNER
        assert ack["partner_student_key"] == notice["partner_student_key"] == key.decode()
        assert notice["retracted_at"] <= ack["deleted_at"] <= now_ms
    runs = (outcome.first[client].summary, outcome.second[client].summary)
    assert [r["acknowledged"] for r in runs] == [r["notices"] for r in runs]


def test_retractions_lists_nothing_unacknowledged_once_the_clients_ran(
    outcome: Outcome,
) -> None:
    """The opt-outs' notices are outstanding until the consumers run (``vendor pull`` does
    not acknowledge here), and none is after."""
    opted_out = outcome.second["python"].summary["notices"]
    before = outcome.unacknowledged_before
    assert len(before["retractions"]) == opted_out >= 3
    assert {r["partner"] for r in before["retractions"]} == {PARTNER}
    assert before["outstanding"][PARTNER]["count"] == opted_out
    after = outcome.unacknowledged_after
    assert after["retractions"] == []
    assert after["outstanding"][PARTNER]["count"] == 0


def test_the_clients_agree_on_every_count(outcome: Outcome) -> None:
    for runs in (outcome.first, outcome.second):
        summaries = [{k: v for k, v in r.summary.items() if k != "client"} for r in runs.values()]
        assert all(s == summaries[0] for s in summaries), summaries


def test_kafkajs_reads_partner_topics_as_the_bus_creates_them(
    vendors: Vendors, outcome: Outcome
) -> None:
    """The bus creates partner topics gzip-compressed (the processor writes LZ4, which
    kafkajs cannot read without a plugin): a Node.js vendor on kafkajs reads them as they
    are, with no setting of its own."""
    for topic in (vendors.topics.partner(LZ4_PARTNER), vendors.topics.notices(LZ4_PARTNER)):
        assert topic_compression(vendors.conn, topic) == "gzip"
    argv, env = vendors.argv("node", LZ4_PARTNER)
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=300, env={**os.environ, **env}, check=False
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    pulled, _ = vendors.pull(LZ4_PARTNER)
    assert summary["students_held"] == len(pulled)
    # it acknowledged what it read: nothing of this partner is outstanding
    assert summary["acknowledged"] == summary["notices"]
    assert vendors.unacknowledged(LZ4_PARTNER)["retractions"] == []
