"""Publisher throughput beside a raw confluent-kafka produce of the same pre-encoded messages,
on the same broker in the same run. Not part of `make test`.

    python -m tests.benchmarks.bench_publish --students 20000   (against the running stack)
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path

from confluent_kafka import Producer

from connectors.fingerprints import FingerprintStore, fingerprint
from connectors.oneroster import read_package
from connectors.oneroster_writer import write_oneroster_package
from connectors.publisher import EventPublisher
from connectors.simulator import simulate
from streams.config import resolve_connection
from streams.topics import CHANGES


def _raw(conn_cfg: dict[str, object], topic: str, messages: list[tuple[bytes, bytes]]) -> float:
    producer = Producer({**conn_cfg, "enable.idempotence": True, "acks": "all",  # type: ignore[dict-item]
                         "linger.ms": 25, "compression.type": "lz4",
                         "queue.buffering.max.messages": 200000})
    started = time.perf_counter()
    for key, value in messages:
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
    producer.flush(120)
    return len(messages) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--students", type=int, default=20000)
    parser.add_argument("--days", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    conn = resolve_connection(os.environ, Path(os.environ.get("HALLPASS_DATA_DIR", ".hallpass")))
    run = uuid.uuid4().hex[:6]
    events = list(simulate(args.students, 99, args.days))
    sim_rates, raw_rates, or_rates = [], [], []
    for i in range(args.repeat):
        topic = f"bench.publish.{run}.{i}"
        publisher = EventPublisher(conn, {topic: "student_record_changed",
                                          "consent.events": "consent_changed"})
        started = time.perf_counter()
        encoded = []
        for ev in events:
            target = topic if ev.topic == CHANGES else ev.topic
            value = publisher.encode(target, ev.value)
            publisher.publish_encoded(target, ev.key, value)
            encoded.append((ev.key.encode(), value))
        publisher.close()
        sim_rates.append(len(events) / (time.perf_counter() - started))
        raw_rates.append(_raw(conn.kafka_config(), f"{topic}.raw", encoded))

    with tempfile.TemporaryDirectory() as tmp:
        package = Path(tmp) / "pkg"
        write_oneroster_package(args.students, package, seed=99)
        for i in range(args.repeat):
            topic = f"bench.oneroster.{run}.{i}"
            publisher = EventPublisher(conn, {topic: "student_record_changed"})
            store = FingerprintStore(Path(tmp) / f"fp{i}.db")
            started = time.perf_counter()
            result = read_package(package, write_rejects_file=False)
            for event in result.events:
                fp = fingerprint(event.value)
                if store.changed(event.key, fp):
                    publisher.publish(topic, event.key, event.value,
                                      functools.partial(store.mark_delivered, event.key, fp))
            publisher.close()
            or_rates.append(len(result.events) / (time.perf_counter() - started))

    def show(name: str, rates: list[float]) -> None:
        print(f"{name:<34} median {statistics.median(rates):>9.0f}/s  "
              f"(min {min(rates):.0f}, max {max(rates):.0f})")

    print(f"{len(events)} simulated events, {args.students} students, {args.repeat} repetitions")
    show("raw produce (pre-encoded)", raw_rates)
    show("simulator publish (encode+produce)", sim_rates)
    show("oneroster publish (read+join+fp)", or_rates)
    print(f"simulator / raw = {statistics.median(sim_rates) / statistics.median(raw_rates):.2f}; "
          f"oneroster / raw = {statistics.median(or_rates) / statistics.median(raw_rates):.2f}")


if __name__ == "__main__":
    main()
