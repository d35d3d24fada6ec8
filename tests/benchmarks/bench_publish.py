"""Publisher throughput beside a raw confluent-kafka produce of the same messages, on the same
broker in the same run. Not part of `make test`.

    python -m tests.benchmarks.bench_publish [--students 10000] [--days 3]
                                             [--oneroster-students 20000] [--quick]

  simulator  encode each simulated event (fastavro, Confluent wire format) and publish it
  oneroster  what `hallpass publish oneroster` does with a bulk of --oneroster-students
             students (default 20,000) and a fresh state store: read the package, join it
             with the stored state, fingerprint, encode, publish, record every ack, commit
             the entities; then the same bulk again (nothing changed: nothing published)
  edfi       what `hallpass publish edfi` does with an Ed-Fi load (--edfi-load DIR, default
             $HALLPASS_EDFI_LOAD or the Grand Bend slice in tests/data/edfi/grand-bend; point
             it at the full sample's `Samples/Sample XML`): stream and join the interchanges,
             fingerprint, encode, publish, record every ack; and the peak resident memory of
             a process that only parses the load (beside the same interpreter's baseline)
Each first publish is beside a raw produce of exactly the bytes it published (pre-encoded, same
producer settings), repetitions interleaved. Prints a table and writes the ``publisher``
section of bench-results.json (the other sections stay); `make bench` runs the same code as
the ``publisher`` scenario of `bench_processor`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from connectors.edfi import DEFAULT_KEY_RULE, read_load
from connectors.oneroster import read_package
from connectors.oneroster.publish import publish_result
from connectors.oneroster.writer import write_oneroster_package
from connectors.simulation.stream import SimEvent, simulate
from connectors.source.config import SourceConfig
from connectors.source.publisher import DeliveryReport, EventPublisher
from connectors.source.state import SourceStateStore
from streams.config import Connection, resolve_connection
from streams.kafka.names import CHANGES, Topics
from tests.benchmarks.results import RESULTS_FILE, Progress, ratio, summary, write_results
from tests.processor_helpers import drop_prefix

SEED = 2014
EDFI_SLICE = Path(__file__).resolve().parents[1] / "data" / "edfi" / "grand-bend"
Messages = list[tuple[str, bytes, bytes]]  # (topic, key, value)

#: what EventPublisher's producer uses, so the raw baseline differs only in the work before
PRODUCER_SETTINGS: Mapping[str, str | int | float | bool] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 25,
    "batch.num.messages": 10000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 200000,
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


def publish_simulated(
    conn: Connection, topics: Topics, events: Sequence[SimEvent], encoded: Messages
) -> float:
    """The simulator's path: encode each event, publish it, wait for every ack; events/s.
    Appends what was published to ``encoded``."""
    publisher = EventPublisher(
        conn, {topics.changes: "student_record_changed", topics.consent: "consent_changed"}
    )
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

    def publish(
        self,
        topic: str,
        key: str,
        record: Mapping[str, Any],
        on_delivered: Callable[[], None] | None = None,
    ) -> None:
        value = self.publisher.encode(topic, record)
        self.publisher.publish_encoded(topic, key, value, on_delivered)
        self.encoded.append((topic, key.encode(), value))

    def close(self, timeout_s: float = 60.0) -> DeliveryReport:
        return self.publisher.close(timeout_s)


def publish_oneroster(
    conn: Connection, topics: Topics, package: Path, store_file: Path, encoded: Messages
) -> tuple[float, int]:
    """`hallpass publish oneroster`'s path on a bulk: read and join the package with the
    source's state, publish what changed, record the acks, commit the entities; students/s
    and how many were published. Appends what was published to ``encoded``."""
    publisher = _Recording(
        EventPublisher(conn, {topics.changes: "student_record_changed"}), encoded
    )
    started = time.perf_counter()
    with SourceStateStore(store_file) as store:
        result = read_package(package, store=store, write_rejects_file=False)
        outcome = publish_result(result, store, publisher, topics.changes)
    if result.rejects:
        raise RuntimeError(f"the simulated package had rejects: {result.rejects[0]}")
    return len(result.events) / (time.perf_counter() - started), outcome.acknowledged


def publish_edfi(
    conn: Connection, topics: Topics, load: Path, store_file: Path, encoded: Messages
) -> tuple[float, int]:
    """`hallpass publish edfi`'s path: stream and join the load, publish what changed, record
    the acks; students/s and how many were published."""
    publisher = _Recording(
        EventPublisher(conn, {topics.changes: "student_record_changed"}), encoded
    )
    config = SourceConfig(source_id="bench-edfi", student_key=DEFAULT_KEY_RULE)
    started = time.perf_counter()
    with SourceStateStore(store_file) as store:
        result, _ = read_load(
            load, config=config, store=store, as_of=dt.date(2022, 3, 1), write_rejects_file=False
        )
        outcome = publish_result(result, store, publisher, topics.changes)
    return len(result.events) / (time.perf_counter() - started), outcome.acknowledged


_PARSE_ONLY = """
import datetime, json, resource, sys, tracemalloc
from connectors.edfi import DEFAULT_KEY_RULE, read_load
from connectors.source.config import SourceConfig
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
config = SourceConfig(source_id="bench", student_key=DEFAULT_KEY_RULE)
result, summary = read_load(sys.argv[1], config=config, as_of=datetime.date(2022, 3, 1),
                            write_rejects_file=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
del result, summary
tracemalloc.start()
result, summary = read_load(sys.argv[1], config=config, as_of=datetime.date(2022, 3, 1),
                            write_rejects_file=False)
print(json.dumps({"baseline_kib": before, "peak_kib": peak,
                  "traced_peak_kib": tracemalloc.get_traced_memory()[1] // 1024,
                  "students": len(result.events)}))
"""


def edfi_parse_memory(load: Path) -> dict[str, Any]:
    """Peak RSS (MiB) of a fresh process that parses ``load``, and of one that only imports."""

    def run(arg: str) -> dict[str, Any]:
        out = subprocess.run(
            [sys.executable, "-c", _PARSE_ONLY, arg], capture_output=True, text=True, check=True
        ).stdout
        return dict(json.loads(out))

    parsed = run(str(load))
    size = sum(p.stat().st_size for p in load.rglob("*.xml"))
    return {
        "peak_rss_mib": round(parsed["peak_kib"] / 1024, 1),
        "python_allocations_peak_mib": round(parsed["traced_peak_kib"] / 1024, 1),
        "imports_only_rss_mib": round(parsed["baseline_kib"] / 1024, 1),
        "xml_mib": round(size / 2**20, 1),
        "students": parsed["students"],
    }


def measure_publisher(
    conn: Connection,
    students: int,
    days: int,
    repeat: int,
    prefix: str,
    progress: Callable[[str], None],
    events: Sequence[SimEvent] | None = None,
    oneroster_students: int = 20000,
    edfi_load: Path | None = None,
) -> dict[str, Any]:
    """The ``publisher`` section: each publisher's events/s beside a raw produce of the very
    messages it published, repetitions interleaved, every topic under ``prefix``."""
    if events is None:
        events = list(simulate(students, SEED, days, districts=2))
    sim_rates: list[float] = []
    sim_raw: list[float] = []
    or_rates: list[float] = []
    or_raw: list[float] = []
    or_rerun: list[float] = []
    # per CPU-second of this process (librdkafka's threads included): what the code costs,
    # whatever else the machine runs at the same time
    or_cpu: list[float] = []
    or_raw_cpu: list[float] = []
    or_events = 0
    edfi_load = edfi_load or Path(os.environ.get("HALLPASS_EDFI_LOAD", EDFI_SLICE))
    ed_rates: list[float] = []
    ed_raw: list[float] = []
    ed_events = 0
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
            cpu = time.process_time()
            rate, or_events = publish_oneroster(conn, topics, package, state, or_msgs)
            or_rates.append(rate)
            or_cpu.append(or_events / max(time.process_time() - cpu, 1e-9))
            cpu = time.process_time()
            or_raw.append(raw_produce(conn, or_msgs, lambda t: f"{t}.raw"))
            or_raw_cpu.append(len(or_msgs) / max(time.process_time() - cpu, 1e-9))
            progress(f"publisher {i + 1}/{repeat}: oneroster again, nothing changed")
            rerun_msgs: Messages = []
            or_rerun.append(publish_oneroster(conn, topics, package, state, rerun_msgs)[0])
            if rerun_msgs:
                raise RuntimeError(f"an unchanged re-run published {len(rerun_msgs)} records")
            progress(f"publisher {i + 1}/{repeat}: edfi, {edfi_load}")
            topics = Topics(f"{prefix}ed{i}.")
            ed_msgs: Messages = []
            rate, ed_events = publish_edfi(
                conn, topics, edfi_load, Path(tmp) / f"edfi{i}.sqlite3", ed_msgs
            )
            ed_rates.append(rate)
            ed_raw.append(raw_produce(conn, ed_msgs, lambda t: f"{t}.raw"))
        progress("edfi: peak memory of a process parsing the load")
        edfi_memory = edfi_parse_memory(edfi_load)

    def entry(rates: list[float], raw: list[float], count: int) -> dict[str, Any]:
        figure, baseline = summary(rates), summary(raw)
        return {
            "events_per_s": figure,
            "raw_events_per_s": baseline,
            "ratio_to_raw": ratio(figure, baseline),
            "events": count,
        }

    oneroster = entry(or_rates, or_raw, or_events)
    oneroster["unchanged_rerun_students_per_s"] = summary(or_rerun)
    oneroster["students_per_cpu_s"] = summary(or_cpu)
    oneroster["raw_events_per_cpu_s"] = summary(or_raw_cpu)
    oneroster["cpu_ratio_to_raw"] = ratio(summary(or_cpu), summary(or_raw_cpu))
    oneroster["students"] = oneroster_students
    edfi = entry(ed_rates, ed_raw, ed_events)
    edfi.update(load=str(edfi_load), **edfi_memory)
    return {
        "simulator": entry(sim_rates, sim_raw, len(events)),
        "oneroster": oneroster,
        "edfi": edfi,
        "students": students,
        "days": days,
        "seed": SEED,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=10000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--oneroster-students",
        type=int,
        default=20000,
        help="Students in the OneRoster bulk (default 20,000).",
    )
    parser.add_argument(
        "--edfi-load",
        type=Path,
        default=None,
        help="Ed-Fi load to publish (default $HALLPASS_EDFI_LOAD or the "
        "Grand Bend slice of tests/data/edfi).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="Smoke test: 2,000 students, 2 days, 1 repetition."
    )
    args = parser.parse_args()
    if args.quick:
        args.students, args.days, args.repeat = 2000, 2, 1
        args.oneroster_students = 2000
    progress = Progress()
    conn = resolve_connection(
        os.environ, Path(os.environ.get("HALLPASS_DATA_DIR", ".hallpass")).resolve()
    )
    run = uuid.uuid4().hex[:6]
    prefix = f"bench.{run}.publish."
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    try:
        section = measure_publisher(
            conn,
            args.students,
            args.days,
            args.repeat,
            prefix,
            progress,
            oneroster_students=args.oneroster_students,
            edfi_load=args.edfi_load,
        )
    finally:
        progress(f"deleting the topics and subjects {prefix}*")
        drop_prefix(conn, prefix)

    def show(name: str, rates: Mapping[str, Any]) -> None:
        print(
            f"{name:<36} median {rates['median']:>9,.0f}/s  "
            f"(min {rates['min']:,.0f}, max {rates['max']:,.0f})"
        )

    sim, oneroster = section["simulator"], section["oneroster"]
    print(
        f"{sim['events']} simulated events, {args.students} students, {args.repeat} repetition(s)"
    )
    show("raw produce of the simulator's bytes", sim["raw_events_per_s"])
    show("simulator publish (encode+produce)", sim["events_per_s"])
    show("raw produce of the OneRoster bytes", oneroster["raw_events_per_s"])
    show(f"oneroster bulk, {oneroster['students']} students/s", oneroster["events_per_s"])
    show("oneroster unchanged re-run, students/s", oneroster["unchanged_rerun_students_per_s"])
    show("raw produce of the OneRoster bytes, per CPU-s", oneroster["raw_events_per_cpu_s"])
    show("oneroster bulk, students per CPU-s", oneroster["students_per_cpu_s"])
    edfi = section["edfi"]
    show("raw produce of the Ed-Fi bytes", edfi["raw_events_per_s"])
    show(f"edfi load, {edfi['events']} students/s", edfi["events_per_s"])
    print(
        f"edfi parse: {edfi['xml_mib']} MiB of XML, peak RSS {edfi['peak_rss_mib']} MiB "
        f"(interpreter and imports alone {edfi['imports_only_rss_mib']} MiB; peak of "
        f"Python allocations while reading {edfi['python_allocations_peak_mib']} MiB)"
    )
    print(
        f"simulator / raw = {sim['ratio_to_raw']:.2f}; "
        f"oneroster / raw = {oneroster['ratio_to_raw']:.2f}; "
        f"edfi / raw = {edfi['ratio_to_raw']:.2f}"
    )
    meta = {
        "run": run,
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": "bench_publish",
        "repeat": args.repeat,
    }
    write_results(RESULTS_FILE, {"publisher": section}, meta, fresh=False)
    progress(f"wrote the publisher section of {RESULTS_FILE}")


if __name__ == "__main__":
    main()
