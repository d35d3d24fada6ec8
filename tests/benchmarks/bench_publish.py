"""Publisher throughput beside a raw confluent-kafka produce of the same messages, on the same
broker in the same run. Not part of `make test`.

    python -m tests.benchmarks.bench_publish [--students 10000] [--days 3]
                                             [--oneroster-students 20000] [--quick]

  simulator  encode each simulated event (fastavro, Confluent wire format) and publish it
  oneroster  what `hallpass publish oneroster` does with a bulk of --oneroster-students
             students (default 20,000) and a fresh state store: read the package, join it
             with the stored state, fingerprint, encode, publish, record every ack, commit
             the entities; then the same bulk again (nothing changed: nothing published)
Each first publish is beside a raw produce of exactly the bytes it published (pre-encoded, same
producer settings), repetitions interleaved. Prints a table and writes the ``publisher``
section of bench-results.json (the other sections stay); `make bench` runs the same code as
the ``publisher`` scenario of `bench_processor`.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from connectors.fingerprints import SourceStateStore
from connectors.oneroster import read_package
from connectors.oneroster.publish import publish_result
from connectors.oneroster_writer import write_oneroster_package
from connectors.publisher import DeliveryReport, EventPublisher
from connectors.simulator import SimEvent, simulate
from streams.config import Connection, resolve_connection
from streams.topics import CHANGES, Topics
from tests.benchmarks.results import RESULTS_FILE, Progress, ratio, summary, write_results
from tests.processor_helpers import drop_prefix

SEED = 2014
Messages = list[tuple[str, bytes, bytes]]  # (topic, key, value)

#: what EventPublisher's producer uses, so the raw baseline differs only in the work before
PRODUCER_SETTINGS: Mapping[str, str | int | float | bool] = {
    "enable.idempotence": True, "acks": "all", "linger.ms": 25, "batch.num.messages": 10000,
    "compression.type": "lz4", "queue.buffering.max.messages": 200000,
}


def raw_produce(conn: Connection, messages: Messages, rename: Callable[[str], str]) -> float:
    """Produce pre-encoded ``messages`` (topics renamed) and wait for every ack; events/s."""
    producer = Producer(conn.kafka_config(PRODUCER_SETTINGS))
    started = time.perf_counter()
    for topic, key, value in messages:
        while True:
            try:
                producer.produce(rename(topic), key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(120)
    elapsed = time.perf_counter() - started
    if left:
        raise RuntimeError(f"raw produce: {left} messages not acknowledged")
    return len(messages) / elapsed


def publish_simulated(conn: Connection, topics: Topics, events: Sequence[SimEvent],
                      encoded: Messages) -> float:
    """The simulator's path: encode each event, publish it, wait for every ack; events/s.
    Appends what was published to ``encoded``."""
    publisher = EventPublisher(conn, {topics.changes: "student_record_changed",
                                      topics.consent: "consent_changed"})
    started = time.perf_counter()
    for ev in events:
        target = topics.changes if ev.topic == CHANGES else topics.consent
        value = publisher.encode(target, ev.value)
        publisher.publish_encoded(target, ev.key, value)
        encoded.append((target, ev.key.encode(), value))
    publisher.close()
    return len(events) / (time.perf_counter() - started)


class _Recording:
    """An EventPublisher that also keeps the bytes it produced (for the raw baseline)."""

    def __init__(self, publisher: EventPublisher, encoded: Messages) -> None:
        self.publisher = publisher
        self.encoded = encoded

    def publish(self, topic: str, key: str, record: Mapping[str, Any],
                on_delivered: Callable[[], None] | None = None) -> None:
        value = self.publisher.encode(topic, record)
        self.publisher.publish_encoded(topic, key, value, on_delivered)
        self.encoded.append((topic, key.encode(), value))

    def close(self, timeout_s: float = 60.0) -> DeliveryReport:
        return self.publisher.close(timeout_s)


def publish_oneroster(conn: Connection, topics: Topics, package: Path, store_file: Path,
                      encoded: Messages) -> tuple[float, int]:
    """`hallpass publish oneroster`'s path on a bulk: read and join the package with the
    source's state, publish what changed, record the acks, commit the entities; students/s
    and how many were published. Appends what was published to ``encoded``."""
    publisher = _Recording(EventPublisher(conn, {topics.changes: "student_record_changed"}),
                           encoded)
    started = time.perf_counter()
    with SourceStateStore(store_file) as store:
        result = read_package(package, store=store, write_rejects_file=False)
        outcome = publish_result(result, store, publisher, topics.changes)
    if result.rejects:
        raise RuntimeError(f"the simulated package had rejects: {result.rejects[0]}")
    return len(result.events) / (time.perf_counter() - started), outcome.acknowledged


def measure_publisher(conn: Connection, students: int, days: int, repeat: int,
                      prefix: str, progress: Callable[[str], None],
                      events: Sequence[SimEvent] | None = None,
                      oneroster_students: int = 20000) -> dict[str, Any]:
    """The ``publisher`` section: each publisher's events/s beside a raw produce of the very
    messages it published, repetitions interleaved, every topic under ``prefix``."""
    if events is None:
        events = list(simulate(students, SEED, days, districts=2))
    sim_rates: list[float] = []
    sim_raw: list[float] = []
    or_rates: list[float] = []
    or_raw: list[float] = []
    or_rerun: list[float] = []
    or_events = 0
    with tempfile.TemporaryDirectory(prefix="hallpass-bench-publish-") as tmp:
        package = Path(tmp) / "oneroster"
        progress(f"writing a OneRoster bulk of {oneroster_students} students")
        write_oneroster_package(oneroster_students, package, seed=SEED, districts=2)
        for i in range(repeat):
            progress(f"publisher {i + 1}/{repeat}: simulator, {len(events)} events")
            topics = Topics(f"{prefix}sim{i}.")
            sim_msgs: Messages = []
            sim_rates.append(publish_simulated(conn, topics, events, sim_msgs))
            sim_raw.append(raw_produce(conn, sim_msgs, lambda t: f"{t}.raw"))
            progress(f"publisher {i + 1}/{repeat}: oneroster, {oneroster_students} students")
            topics = Topics(f"{prefix}or{i}.")
            or_msgs: Messages = []
            state = Path(tmp) / f"state{i}.sqlite3"
            rate, or_events = publish_oneroster(conn, topics, package, state, or_msgs)
            or_rates.append(rate)
            or_raw.append(raw_produce(conn, or_msgs, lambda t: f"{t}.raw"))
            progress(f"publisher {i + 1}/{repeat}: oneroster again, nothing changed")
            rerun_msgs: Messages = []
            or_rerun.append(publish_oneroster(conn, topics, package, state, rerun_msgs)[0])
            if rerun_msgs:
                raise RuntimeError(f"an unchanged re-run published {len(rerun_msgs)} records")

    def entry(rates: list[float], raw: list[float], count: int) -> dict[str, Any]:
        figure, baseline = summary(rates), summary(raw)
        return {"events_per_s": figure, "raw_events_per_s": baseline,
                "ratio_to_raw": ratio(figure, baseline), "events": count}

    oneroster = entry(or_rates, or_raw, or_events)
    oneroster["unchanged_rerun_students_per_s"] = summary(or_rerun)
    oneroster["students"] = oneroster_students
    return {"simulator": entry(sim_rates, sim_raw, len(events)),
            "oneroster": oneroster,
            "students": students, "days": days, "seed": SEED}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=10000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--oneroster-students", type=int, default=20000,
                        help="Students in the OneRoster bulk (default 20,000).")
    parser.add_argument("--quick", action="store_true",
                        help="Smoke test: 2,000 students, 2 days, 1 repetition.")
    args = parser.parse_args()
    if args.quick:
        args.students, args.days, args.repeat = 2000, 2, 1
        args.oneroster_students = 2000
    progress = Progress()
    conn = resolve_connection(os.environ,
                              Path(os.environ.get("HALLPASS_DATA_DIR", ".hallpass")).resolve())
    run = uuid.uuid4().hex[:6]
    prefix = f"bench.{run}.publish."
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        section = measure_publisher(conn, args.students, args.days, args.repeat, prefix,
                                    progress, oneroster_students=args.oneroster_students)
    finally:
        progress(f"deleting the topics and subjects {prefix}*")
        drop_prefix(conn, prefix)

    def show(name: str, rates: Mapping[str, Any]) -> None:
        print(f"{name:<36} median {rates['median']:>9,.0f}/s  "
              f"(min {rates['min']:,.0f}, max {rates['max']:,.0f})")

    sim, oneroster = section["simulator"], section["oneroster"]
    print(f"{sim['events']} simulated events, {args.students} students, "
          f"{args.repeat} repetition(s)")
    show("raw produce of the simulator's bytes", sim["raw_events_per_s"])
    show("simulator publish (encode+produce)", sim["events_per_s"])
    show("raw produce of the OneRoster bytes", oneroster["raw_events_per_s"])
    show(f"oneroster bulk, {oneroster['students']} students/s", oneroster["events_per_s"])
    show("oneroster unchanged re-run, students/s", oneroster["unchanged_rerun_students_per_s"])
    print(f"simulator / raw = {sim['ratio_to_raw']:.2f}; "
          f"oneroster / raw = {oneroster['ratio_to_raw']:.2f}")
    meta = {"run": run, "started": started, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "command": "bench_publish", "repeat": args.repeat}
    write_results(RESULTS_FILE, {"publisher": section}, meta, fresh=False)
    progress(f"wrote the publisher section of {RESULTS_FILE}")


if __name__ == "__main__":
    main()
