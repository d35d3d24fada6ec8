"""Processor figures beside their baselines, on one broker in one run. Not part of `make test`.

    HALLPASS_DATA_DIR=... python -m tests.benchmarks.bench_processor [--students 10000]

Scenarios (each on its own topic prefix, same simulated data, seed fixed):
  relay      confluent-kafka consume-and-produce of the same bytes, batched, transactions on/off
  codec      decode each change and encode 3 partner views + 3 audit records (fastavro, no Kafka)
  inmemory   the processor's handler with 3 partners, no Kafka (codec + policy + tables)
  processor  `run_processor` with 1, 3 and 10 partners, exactly once
  latency    steady 1,000 events/s into a running `hallpass process`; producer send to the
             record being visible to a read_committed vendor consumer
  scale      resident memory of `hallpass process` with N students in the consent state, and
             the time to restore that state after a restart
Prints a table and writes bench-results.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.simulator import simulate
from streams.catalog import load_schema
from streams.config import Connection, resolve_connection
from streams.consent import ConsentEvent, ConsentKind
from streams.processor.app import apply_contracts, build_handler, run_processor
from streams.processor.state import Tables
from streams.topics import Topics, TopicSpec, ensure_topics
from streams.wire import WireDecoder, WireEncoder

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
Encoded = list[tuple[str, bytes, bytes]]  # (logical topic "changes"/"consent", key, value)


def median_of(runs: list[float]) -> dict[str, float]:
    return {"median": statistics.median(runs), "min": min(runs), "max": max(runs)}


def contracts_dir(tmp: Path, partners: int) -> Path:
    """1: learnwell; 3: the samples; 10: the samples and copies under new partner ids."""
    out = tmp / f"contracts-{partners}"
    out.mkdir()
    samples = sorted(CONTRACTS.glob("*.yaml"))
    if partners == 1:
        shutil.copy(CONTRACTS / "learnwell.yaml", out)
        return out
    for path in samples:
        shutil.copy(path, out)
    for i in range(partners - len(samples)):
        source = samples[i % len(samples)]
        name = f"{source.stem}-copy{i}"
        text = source.read_text().replace(f"partner: {source.stem}", f"partner: {name}")
        text = text.replace(f"User:{source.stem}", f"User:{name}")
        (out / f"{name}.yaml").write_text(text)
    return out


def encode_dataset(conn: Connection, students: int, days: int) -> Encoded:
    registry = SchemaRegistryClient(conn.registry_config())
    change = WireEncoder(registry, "bench.changes-value", load_schema("student_record_changed"))
    consent = WireEncoder(registry, "bench.consent-value", load_schema("consent_changed"))
    out: Encoded = []
    for ev in simulate(students, 2014, days, districts=2):
        if ev.topic == "sis.student.changes":
            out.append(("changes", ev.key.encode(), change.encode(ev.value)))
        else:
            out.append(("consent", ev.key.encode(), consent.encode(ev.value)))
    return out


def produce(conn: Connection, topics: Topics, data: Encoded) -> None:
    ensure_topics(conn, [TopicSpec(topics.changes, 3), TopicSpec(topics.consent, 3)])
    producer = Producer(conn.kafka_config({"enable.idempotence": True, "linger.ms": 20,
                                           "compression.type": "lz4",
                                           "partitioner": "murmur2_random",
                                           "queue.buffering.max.messages": 500000}))
    for kind, key, value in data:
        topic = topics.changes if kind == "changes" else topics.consent
        while True:
            try:
                producer.produce(topic, key=key, value=value)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0


def relay(conn: Connection, topics: Topics, transactional: bool) -> float:
    """Copy every input record byte for byte to an output topic; events/s while busy."""
    out_topic = topics.name("relay.out")
    ensure_topics(conn, [TopicSpec(out_topic, 3)])
    group = topics.name(f"relay-{uuid.uuid4().hex[:6]}")
    config: dict[str, str | int | float | bool] = {
        "linger.ms": 5, "compression.type": "lz4", "enable.idempotence": True,
        "queue.buffering.max.messages": 500000}
    if transactional:
        config["transactional.id"] = group
    producer = Producer(conn.kafka_config(config))
    consumer = Consumer(conn.kafka_config({
        "group.id": group, "enable.auto.commit": False, "auto.offset.reset": "earliest",
        "isolation.level": "read_committed", "enable.partition.eof": True}))
    if transactional:
        producer.init_transactions(30)
    consumer.subscribe([topics.changes, topics.consent])
    eof: set[tuple[str, int]] = set()
    count, started = 0, 0.0
    while True:
        msgs = consumer.consume(num_messages=1000, timeout=0.5)
        batch = []
        for m in msgs:  # in order: an EOF after a partition's last record counts
            err = m.error()
            if err is None:
                batch.append(m)
                eof.discard((m.topic() or "", m.partition() or 0))
            elif err.code() == KafkaError._PARTITION_EOF:
                eof.add((m.topic() or "", m.partition() or 0))
        if not batch:
            if len(eof) >= 6:
                break
            continue
        if not started:
            started = time.perf_counter()
        if transactional:
            producer.begin_transaction()
        for m in batch:
            producer.produce(out_topic, key=m.key(), value=m.value())
        if transactional:
            producer.send_offsets_to_transaction(consumer.position(consumer.assignment()),
                                                 consumer.consumer_group_metadata(), 30)
            producer.commit_transaction(60)
        else:
            producer.flush(60)
            consumer.commit(asynchronous=False)
        count += len(batch)
    elapsed = time.perf_counter() - started
    consumer.close()
    return count / elapsed


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int, key: bytes, value: bytes):
        self._t, self._p, self._o, self._k, self._v = topic, partition, offset, key, value

    def topic(self) -> str:
        return self._t

    def partition(self) -> int:
        return self._p

    def offset(self) -> int:
        return self._o

    def key(self) -> bytes:
        return self._k

    def value(self) -> bytes:
        return self._v


def inmemory(conn: Connection, topics: Topics, contracts: Path, data: Encoded,
             secrets: Path) -> tuple[float, float]:
    """(codec events/s, in-memory handler events/s) over the change events."""
    handler = build_handler(conn, contracts, secrets, lambda _m: None, topics)
    registry = SchemaRegistryClient(conn.registry_config())
    decoder = WireDecoder(registry)
    changes = [(k, v) for kind, k, v in data if kind == "changes"]
    msgs = [FakeMessage(topics.changes, hash(k) % 3, i, k, v) for i, (k, v) in enumerate(changes)]
    tables = Tables(topics.state, topics.districts)
    started = time.perf_counter()
    for msg in msgs:
        handler.handle(msg, tables)  # type: ignore[arg-type]
        tables.take_changes()
    handler_rate = len(msgs) / (time.perf_counter() - started)

    # codec: decode, encode 3 views and 3 audit records of fixed shape
    audit = WireEncoder(registry, topics.name("bench.audit-value"),
                        load_schema("disclosure_record"))
    sample_audit = json.loads((REPO / "schemas/examples/disclosure_record.disclosed.json")
                              .read_text())
    routes = handler.routes[:3]
    views = []
    for route in routes:
        record = decoder.decode(changes[0][1])
        from streams.consent import StudentConsentHistory
        from streams.policy import Disclosed
        decision = handler._decide(route, record, StudentConsentHistory(), _no_district(),
                                   int(record["occurred_at"]))
        views.append(decision.value if isinstance(decision, Disclosed) else None)
    started = time.perf_counter()
    for _, value in changes:
        decoder.decode(value)
        for route, view in zip(routes, views, strict=True):
            if view is not None:
                route.encode_view(view)
            audit.encode(sample_audit)
    codec_rate = len(changes) / (time.perf_counter() - started)
    return codec_rate, handler_rate


def _no_district() -> Any:
    from streams.consent import DistrictState

    return DistrictState()


def process(conn: Connection, topics: Topics, contracts: Path, secrets: Path) -> float:
    stats, _ = run_processor(conn, contracts, secrets, until_idle=True, worker=0,
                             note=lambda _m: None, topics=topics)
    return stats.consumed / max(stats.last_commit_at - stats.first_batch_at, 1e-9)


def cli_env(conn: Connection, topics: Topics) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"HALLPASS_BOOTSTRAP_SERVERS": conn.bootstrap_servers,
                "HALLPASS_SCHEMA_REGISTRY_URL": conn.schema_registry_url,
                "HALLPASS_TOPIC_PREFIX": topics.prefix})
    return env


def latency(conn: Connection, topics: Topics, contracts: Path, secrets: Path, data: Encoded,
            rate: int, seconds: float) -> dict[str, float]:
    """Start `hallpass process`, send changes at ``rate``/s, time each record to the vendor."""
    ensure_topics(conn, [TopicSpec(topics.changes, 3), TopicSpec(topics.consent, 3)])
    apply_contracts(conn, contracts, topics)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams", "process", "--contracts", str(contracts),
         "--partner-secrets", str(secrets)],
        env=cli_env(conn, topics), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    registry = SchemaRegistryClient(conn.registry_config())
    decoder = WireDecoder(registry)
    partner_topic = topics.name("partner.measurely.students")
    consumer = Consumer(conn.kafka_config({
        "group.id": topics.name("lat-vendor"), "auto.offset.reset": "latest",
        "isolation.level": "read_committed", "enable.auto.commit": False}))
    consumer.subscribe([partner_topic])
    sent: dict[str, float] = {}
    received: dict[str, float] = {}
    decoder_change = WireDecoder(registry)
    changes = [(k, v) for kind, k, v in data if kind == "changes"]
    ids = [str(decoder_change.decode(v)["event_id"]) for _, v in changes]
    # wait until the processor and the vendor consumer are assigned
    deadline = time.monotonic() + 60
    while not consumer.assignment() and time.monotonic() < deadline:
        consumer.poll(0.2)
    time.sleep(5)  # processor start-up: restore, join its group

    def send() -> None:
        producer = Producer(conn.kafka_config({"linger.ms": 1, "enable.idempotence": True,
                                               "partitioner": "murmur2_random"}))
        total = min(int(rate * seconds), len(changes))  # each event id sent once
        start = time.perf_counter()
        for i in range(total):
            target = start + i / rate
            pause = target - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            key, value = changes[i]
            sent[ids[i]] = time.time()
            producer.produce(topics.changes, key=key, value=value)
            producer.poll(0)
        producer.flush(30)

    sender = threading.Thread(target=send)
    sender.start()
    end = time.monotonic() + seconds + 15
    while time.monotonic() < end:
        msg = consumer.poll(0.2)
        if msg is None or msg.error() or msg.value() is None:
            continue
        event_id = str(decoder.decode(msg.value())["event_id"])
        if event_id in sent and event_id not in received:
            received[event_id] = time.time()
        if not sender.is_alive() and len(received) >= len(sent) * 0.999:
            break
    sender.join()
    consumer.close()
    proc.terminate()
    proc.wait(60)
    lat = sorted(received[e] - sent[e] for e in received)
    return {"p50_s": lat[len(lat) // 2], "p99_s": lat[int(len(lat) * 0.99)], "max_s": lat[-1],
            "samples": float(len(lat))}


def watch_rss(proc: subprocess.Popen[str]) -> Callable[[], int]:
    peak = [0]

    def loop() -> None:
        while proc.poll() is None:
            try:
                for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        peak[0] = max(peak[0], int(line.split()[1]) * 1024)
            except OSError:
                return
            time.sleep(0.2)

    threading.Thread(target=loop, daemon=True).start()
    return lambda: peak[0]


def scale(conn: Connection, topics: Topics, contracts: Path, secrets: Path,
          students: int) -> dict[str, float]:
    """Resident memory with ``students`` consent histories, and the restore time."""
    ensure_topics(conn, [TopicSpec(topics.changes, 3), TopicSpec(topics.consent, 3)])
    apply_contracts(conn, contracts, topics)
    registry = SchemaRegistryClient(conn.registry_config())
    encoder = WireEncoder(registry, topics.name("consent-value"), load_schema("consent_changed"))
    producer = Producer(conn.kafka_config({"linger.ms": 20, "compression.type": "lz4",
                                           "partitioner": "murmur2_random",
                                           "queue.buffering.max.messages": 1000000}))
    base = 1_788_000_000_000
    for i in range(students):
        event = ConsentEvent(event_id=f"scale-{i}", kind=ConsentKind.GRANT,
                             district_id="D1", effective_at=base + i, student_id=f"S{i:08d}",
                             partner="carewell-health",
                             categories=frozenset({"special_medical"}))
        value = encoder.encode(event.to_avro())
        while True:
            try:
                producer.produce(topics.consent, key=f"S{i:08d}".encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(300) == 0

    def run_once() -> tuple[int, str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams", "process", "--until-idle", "--contracts",
             str(contracts), "--partner-secrets", str(secrets)],
            env=cli_env(conn, topics), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True)
        peak = watch_rss(proc)
        out, _ = proc.communicate(timeout=3600)
        return peak(), out

    started = time.perf_counter()
    rss, out = run_once()
    first_s = time.perf_counter() - started
    busy = _field(out, "busy ", "s (")
    rss_restart, out2 = run_once()
    restore = _field(out2, "table records in ", "s;")
    return {"rss_bytes": float(rss), "process_s": first_s, "busy_s": busy,
            "events_per_s": students / busy if busy else 0.0,
            "restore_s": restore, "rss_after_restore_bytes": float(rss_restart)}


def _field(text: str, before: str, after: str) -> float:
    try:
        return float(text.split(before, 1)[1].split(after, 1)[0])
    except (IndexError, ValueError):
        return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--students", type=int, default=10000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--latency-seconds", type=float, default=12.0)
    parser.add_argument("--only", nargs="*", default=None,
                        help="Scenarios to run (relay codec processor latency scale).")
    args = parser.parse_args()
    wanted = set(args.only or ["relay", "codec", "processor", "latency", "scale"])
    conn = resolve_connection(os.environ,
                              Path(os.environ.get("HALLPASS_DATA_DIR", ".hallpass")).resolve())
    run = uuid.uuid4().hex[:6]
    results: dict[str, Any] = {"machine": {"cpus": os.cpu_count()}, "students": args.students}
    tmp = Path(tempfile.mkdtemp(prefix="hallpass-bench-"))
    secrets = tmp / "secrets.json"
    print(f"encoding the simulated data ({args.students} students, {args.days} days) ...",
          file=sys.stderr)
    data = encode_dataset(conn, args.students, args.days)
    results["events"] = len(data)
    dirs = {n: contracts_dir(tmp, n) for n in (1, 3, 10)}

    def prefix(name: str) -> Topics:
        return Topics(f"bench.{run}.{name}.")

    if "relay" in wanted:
        for tx in (True, False):
            rates = []
            for i in range(args.repeat):
                t = prefix(f"relay{int(tx)}{i}")
                produce(conn, t, data)
                rates.append(relay(conn, t, tx))
            results["relay" if tx else "relay_no_tx"] = {"events_per_s": median_of(rates)}
            print(f"relay tx={tx}: {median_of(rates)}", file=sys.stderr)
    if "codec" in wanted:
        t = prefix("codec")
        apply_contracts(conn, dirs[3], t)
        codec_rates, handler_rates = [], []
        for _ in range(args.repeat):
            c, h = inmemory(conn, t, dirs[3], data, secrets)
            codec_rates.append(c)
            handler_rates.append(h)
        results["codec"] = {"events_per_s": median_of(codec_rates)}
        results["inmemory_handler_3"] = {"events_per_s": median_of(handler_rates)}
        print(f"codec {median_of(codec_rates)} handler {median_of(handler_rates)}",
              file=sys.stderr)
    if "processor" in wanted:
        results["processor"] = {}
        for partners in (1, 3, 10):
            rates = []
            for i in range(args.repeat):
                t = prefix(f"p{partners}r{i}")
                apply_contracts(conn, dirs[partners], t)
                produce(conn, t, data)
                rates.append(process(conn, t, dirs[partners], secrets))
            entry: dict[str, Any] = {"events_per_s": median_of(rates)}
            if "relay" in results:
                entry["ratio_to_relay"] = statistics.median(rates) / \
                    results["relay"]["events_per_s"]["median"]
            if "codec" in results:
                entry["ratio_to_codec"] = statistics.median(rates) / \
                    results["codec"]["events_per_s"]["median"]
            results["processor"][str(partners)] = entry
            print(f"processor {partners}: {entry}", file=sys.stderr)
    if "latency" in wanted:
        results["latency"] = latency(conn, prefix("lat"), dirs[3], secrets, data, 1000,
                                     args.latency_seconds)
        print(f"latency {results['latency']}", file=sys.stderr)
    if "scale" in wanted:
        results["scale"] = {}
        for n in args.scale:
            results["scale"][str(n)] = scale(conn, prefix(f"scale{n}"), dirs[3], secrets, n)
            print(f"scale {n}: {results['scale'][str(n)]}", file=sys.stderr)
    (REPO / "bench-results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
