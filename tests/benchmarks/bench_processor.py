"""Every figure of the performance issue beside its baseline, on one broker in one run.
Not part of `make test`.

    python -m tests.benchmarks.bench_processor [--students 10000] [--quick] [--only SCENARIO ...]

Scenarios (each on its own topic prefix, the same simulated data with a fixed seed; each
figure the median of --repeat repetitions, with min and max; repetitions of compared
variants interleaved):
  publisher  the simulator and the OneRoster connector publishing, beside a raw produce of the
             same bytes (bench_publish)
  relay      confluent-kafka consume-and-produce of the same bytes, batched, transactions on
             (the I/O baseline) and off
  codec      decode every event and encode every view, audit record and notice the handler
             produced for it, fastavro, no Kafka (the CPU baseline); and the handler itself in
             memory, 3 partners
  processor  `run_processor`, 1, 3 and 10 partners, exactly once: ratio to relay and codec
  metrics    `run_processor`, 3 partners, with and without a Prometheus registry
  workers    one `hallpass process` against two in one group (4 partitions), throughput from
             the first to the last commit of the group
  latency    steady 1,000 events/s into a running `hallpass process` (3 partners): producer
             send to the record visible to a read_committed vendor consumer, beside the same
             records read straight off the input topic (the broker alone)
  scale      `hallpass process` with N students in the consent state: peak resident memory
             while loading it, the restore after a restart beside a plain read of the same
             changelog, and the processor's throughput on the data with that state
Prints a table (progress on stderr) and writes bench-results.json at the repo root: the whole
file after a full run; with --only, just those sections (the others stay, stamped with the run
that measured them in meta.sections).
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client import CollectorRegistry, generate_latest

from connectors.simulation.stream import SimEvent, simulate
from streams.config import Connection, resolve_connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import Topics, TopicSpec
from streams.kafka.read_to_end import nonempty_from_start, read_to_end
from streams.kafka.wire import WireDecoder, WireEncoder
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.consent import ConsentEvent, ConsentKind
from streams.policy.contracts import load_contracts
from streams.policy.decision import partner_reference
from streams.processor.app import (
    apply_contracts,
    build_handler,
    load_partner_secrets,
    run_processor,
)
from streams.processor.handlers import BusHandler
from streams.processor.messages import Output
from tests.benchmarks.bench_publish import SEED, measure_publisher
from tests.benchmarks.dataset import (
    PARTITIONS,
    Encoded,
    bench_keys,
    contracts_dir,
    drop_run,
    encode_dataset,
    fake_messages,
    produce,
    run_in_memory,
)
from tests.benchmarks.processes import (
    RssWatch,
    WorkerProcess,
    WorkerSummary,
    run_workers,
    wait_group_stable,
)
from tests.benchmarks.results import (
    RESULTS_FILE,
    Progress,
    add_ratios,
    summary,
    table,
    write_results,
)
from tests.processor_helpers import ProcessorProcess
from tests.provenance import GUARDIAN_SIGNED

SCENARIOS = ("publisher", "relay", "codec", "processor", "metrics", "workers", "latency", "scale")
Section = dict[str, Any]


@dataclass
class Bench:
    """One run: the connection, the data, the contracts and where its topics go."""

    conn: Connection
    run: str
    tmp: Path
    events: list[SimEvent]
    data: Encoded
    repeat: int
    progress: Callable[[str], None]
    args: argparse.Namespace
    dirs: dict[int, Path] = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"bench.{self.run}."

    @property
    def secrets(self) -> Path:
        return self.tmp / "secrets.json"

    def topics(self, name: str) -> Topics:
        """A fresh prefix whose input topics exist with PARTITIONS partitions (the processor
        and `contracts apply` then give the state changelog as many)."""
        topics = Topics(f"{self.prefix}{name}.")
        ensure_topics(
            self.conn,
            [TopicSpec(topics.changes, PARTITIONS), TopicSpec(topics.consent, PARTITIONS)],
        )
        return topics

    def ready(self, name: str, partners: int = 3) -> Topics:
        """A fresh prefix with the partner topics and schemas applied and the data on it."""
        topics = self.topics(name)
        apply_contracts(self.conn, self.dirs[partners], topics, secrets_file=self.secrets)
        produce(self.conn, topics, self.data)
        return topics


# --- relay: the I/O baseline ----------------------------------------------------------------


def relay_once(conn: Connection, topics: Topics, transactional: bool) -> float:
    """Copy every input record byte for byte to an output topic in batches of up to 1,000;
    events/s from the first batch to the last commit."""
    out_topic = topics.name("relay.out")
    ensure_topics(conn, [TopicSpec(out_topic, PARTITIONS)])
    group = topics.name("relay")
    config: dict[str, str | int | float | bool] = {
        "linger.ms": 5,
        "compression.type": "lz4",
        "enable.idempotence": True,
        "queue.buffering.max.messages": 500000,
    }
    if transactional:
        config["transactional.id"] = group
    producer = Producer(conn.kafka_config(config))
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )
    if transactional:
        producer.init_transactions(30)
    consumer.subscribe([topics.changes, topics.consent])
    eof: set[tuple[str, int]] = set()
    count, started, last = 0, 0.0, 0.0
    try:
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
                if len(eof) >= 2 * PARTITIONS:
                    break
                continue
            if not started:
                started = time.perf_counter()
            if transactional:
                producer.begin_transaction()
            for m in batch:
                while True:
                    try:
                        producer.produce(out_topic, key=m.key(), value=m.value())
                        break
                    except BufferError:
                        producer.poll(0.05)
            if transactional:
                producer.send_offsets_to_transaction(
                    consumer.position(consumer.assignment()), consumer.consumer_group_metadata(), 30
                )
                producer.commit_transaction(60)
            else:
                producer.flush(60)
                consumer.commit(asynchronous=False)
            count += len(batch)
            last = time.perf_counter()
    finally:
        consumer.close()
    return count / max(last - started, 1e-9)


def scenario_relay(bench: Bench) -> Section:
    rates: dict[bool, list[float]] = {True: [], False: []}
    for i in range(bench.repeat):
        for tx in (True, False) if i % 2 == 0 else (False, True):
            bench.progress(f"relay {i + 1}/{bench.repeat}, transactions {'on' if tx else 'off'}")
            topics = bench.topics(f"relay{int(tx)}r{i}")
            produce(bench.conn, topics, bench.data)
            rates[tx].append(relay_once(bench.conn, topics, tx))
    return {
        "relay": {"events_per_s": summary(rates[True]), "transactions": True},
        "relay_no_tx": {"events_per_s": summary(rates[False]), "transactions": False},
    }


# --- codec and the handler in memory ---------------------------------------------------------


def codec_once(
    handler: BusHandler,
    topics: Topics,
    data: Encoded,
    outputs: list[list[Output]],
    decoder: WireDecoder,
) -> tuple[float, int]:
    """Decode every input event and encode every record the handler produced for it (views,
    audit records, deletion notices) with the handler's own codecs; (events/s, records)."""
    encoders: dict[str, Callable[[Any], bytes]] = {
        route.contract.topic: route.encode_view for route in handler.routes
    }
    encoders[topics.audit] = handler.codecs.encode_audit
    for route in handler.routes:
        encoders[topics.notices(route.partner)] = handler.codecs.encode_notice
    jobs = []
    records = 0
    for ev, outs in zip(data, outputs, strict=True):
        encodes = [
            (encoders[out.topic], decoder.decode(out.value))
            for out in outs
            if out.value is not None and out.topic in encoders
        ]
        records += len(encodes)
        jobs.append(
            (
                handler.codecs.decode_consent if ev.consent else handler.codecs.decode_change,
                ev.value,
                encodes,
            )
        )
    started = time.perf_counter()
    for decode, value, encodes in jobs:
        decode(value)
        for encode, record in encodes:
            encode(record)
    return len(jobs) / (time.perf_counter() - started), records


def scenario_codec(bench: Bench) -> Section:
    topics = bench.topics("codec")
    apply_contracts(bench.conn, bench.dirs[3], topics, secrets_file=bench.secrets)
    decoder = WireDecoder(SchemaRegistryClient(bench.conn.registry_config()))
    codec_rates, handler_rates, records = [], [], 0
    for i in range(bench.repeat):
        bench.progress(f"codec and in-memory handler {i + 1}/{bench.repeat}")
        handler = build_handler(
            bench.conn, bench.dirs[3], bench_keys(bench.secrets), topics, PARTITIONS
        )
        rate, outputs = run_in_memory(handler, topics, fake_messages(topics, bench.data))
        handler_rates.append(rate)
        codec_rate, records = codec_once(handler, topics, bench.data, outputs, decoder)
        codec_rates.append(codec_rate)
    return {
        "codec": {
            "events_per_s": summary(codec_rates),
            "encoded_records_per_event": records / len(bench.data),
        },
        "inmemory_handler_3": {"events_per_s": summary(handler_rates)},
    }


# --- the processor, in process ----------------------------------------------------------------


def process_once(
    bench: Bench, topics: Topics, partners: int, metrics: CollectorRegistry | None = None
) -> float:
    """`run_processor` until idle; events/s from the first batch to the last commit."""
    stats, _ = run_processor(
        bench.conn,
        bench.dirs[partners],
        bench.secrets,
        until_idle=True,
        worker=0,
        note=lambda _m: None,
        topics=topics,
        metrics=metrics,
    )
    if stats.consumed != len(bench.data):
        raise RuntimeError(f"the processor consumed {stats.consumed} of {len(bench.data)}")
    return stats.consumed / max(stats.last_commit_at - stats.first_batch_at, 1e-9)


def scenario_processor(bench: Bench) -> Section:
    rates: dict[int, list[float]] = {1: [], 3: [], 10: []}
    order = list(rates)
    for i in range(bench.repeat):
        for partners in order if i % 2 == 0 else order[::-1]:
            bench.progress(f"processor {i + 1}/{bench.repeat}, {partners} partner(s)")
            topics = bench.ready(f"p{partners}r{i}", partners)
            rates[partners].append(process_once(bench, topics, partners))
    return {
        "processor": {
            str(n): {"events_per_s": summary(r), "exactly_once": True} for n, r in rates.items()
        }
    }


def scenario_metrics(bench: Bench) -> Section:
    rates: dict[bool, list[float]] = {True: [], False: []}
    per_rep: list[float] = []
    scrape: list[float] = []
    for i in range(bench.repeat):
        for on in (True, False) if i % 2 == 0 else (False, True):
            bench.progress(f"metrics {i + 1}/{bench.repeat}, registry {'on' if on else 'off'}")
            topics = bench.ready(f"m{int(on)}r{i}")
            registry = CollectorRegistry() if on else None
            rates[on].append(process_once(bench, topics, 3, registry))
            if registry is not None:
                started = time.perf_counter()
                exposition = generate_latest(registry)
                scrape.append(time.perf_counter() - started)
                if b"hallpass" not in exposition:
                    raise RuntimeError("the registry exposes no hallpass metric")
        per_rep.append(rates[True][-1] / rates[False][-1])
    return {
        "metrics": {
            "with": {"events_per_s": summary(rates[True])},
            "without": {"events_per_s": summary(rates[False])},
            "ratio_per_repetition": summary(per_rep),
            "scrape_s": summary(scrape),
            "partners": 3,
        }
    }


# --- worker processes -------------------------------------------------------------------------


def scenario_workers(bench: Bench) -> Section:
    found: dict[int, list[Any]] = {1: [], 2: []}
    for i in range(bench.repeat):
        for count in (1, 2) if i % 2 == 0 else (2, 1):
            bench.progress(f"workers {i + 1}/{bench.repeat}: {count} x hallpass process")
            topics = bench.topics(f"w{count}r{i}")
            apply_contracts(bench.conn, bench.dirs[3], topics, secrets_file=bench.secrets)

            def feed(topics: Topics = topics) -> int:
                produce(bench.conn, topics, bench.data)
                return len(bench.data)

            found[count].append(
                run_workers(
                    bench.conn, topics, bench.dirs[3], bench.secrets, count, bench.tmp, feed
                )
            )
    section: Section = {}
    for count, runs in found.items():
        section[str(count)] = {
            "events_per_s": summary([r.events_per_s for r in runs]),
            "rss_bytes": summary([float(max(r.rss_bytes)) for r in runs]),
            "events_per_worker": [s.consumed for s in runs[-1].summaries],
            "busy_events_per_s_per_worker": [s.busy_events_per_s for s in runs[-1].summaries],
            "commits_seen": len(runs[-1].commits),
        }
    section["partitions"] = PARTITIONS
    section["measured"] = (
        "workers started (no --until-idle), stable in one group, paused; "
        "the input produced; resumed together: input events / seconds "
        "from the resume to the group's last commit (committed offsets "
        "polled every 20 ms); then SIGTERM"
    )
    return {"workers": section}


# --- latency ----------------------------------------------------------------------------------


def latency_once(bench: Bench, topics: Topics, rate: int, seconds: float) -> dict[str, Any]:
    """Start `hallpass process`, send changes at ``rate``/s from a warmed-up producer, time
    each to a read_committed vendor consumer and to a consumer of the input topic itself (the
    broker alone)."""
    conn = bench.conn
    ensure_topics(
        conn,
        [
            TopicSpec(topics.changes, PARTITIONS),
            TopicSpec(topics.consent, PARTITIONS),
            TopicSpec(topics.name("latency.warmup"), 1),
        ],
    )
    apply_contracts(conn, bench.dirs[3], topics, secrets_file=bench.secrets)
    processor = WorkerProcess(
        conn,
        topics,
        bench.tmp,
        ["--contracts", str(bench.dirs[3]), "--partner-secrets", str(bench.secrets)],
        bench.tmp / f"{topics.prefix}latency.log",
    )
    decoder = WireDecoder(SchemaRegistryClient(conn.registry_config()))
    partner_topic = topics.partner("measurely")
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": topics.name("latency-vendor"),
                "auto.offset.reset": "latest",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
    )
    changes = [ev for ev in bench.data if not ev.consent]
    total = min(int(rate * seconds), len(changes))  # each event id sent once
    ids = [str(decoder.decode(ev.value)["event_id"]) for ev in changes[:total]]
    id_of_value = {ev.value: ids[i] for i, ev in enumerate(changes[:total])}
    # a partner's record carries its own id for the decision (one per event and partner,
    # made with the partner's secret), never the source event's: map it back
    secret = load_partner_secrets(bench.secrets, ["measurely"], lambda _m: None)["measurely"]
    id_of_view = {partner_reference(f"view|{i}:measurely", secret): i for i in ids}
    sent: dict[str, float] = {}
    received: dict[str, dict[str, float]] = {partner_topic: {}, topics.changes: {}}
    try:
        consumer.subscribe([partner_topic, topics.changes])
        deadline = time.monotonic() + 60
        while len(consumer.assignment()) < 2 * PARTITIONS and time.monotonic() < deadline:
            consumer.poll(0.2)
        wait_group_stable(conn, topics.processor_group, 1, 120)
        time.sleep(1.0)  # the processor's restore after its assignment
        # a cold idempotent producer holds its first records until it has its producer id:
        # that start-up is not the latency of the bus
        producer = Producer(
            conn.kafka_config(
                {"linger.ms": 1, "enable.idempotence": True, "partitioner": "murmur2_random"}
            )
        )
        producer.produce(topics.name("latency.warmup"), value=b"warm-up")
        producer.flush(30)

        def send() -> None:
            start = time.perf_counter()
            for i in range(total):
                pause = start + i / rate - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                sent[ids[i]] = time.time()
                producer.produce(topics.changes, key=changes[i].key, value=changes[i].value)
                producer.poll(0)
            producer.flush(30)

        sender = threading.Thread(target=send)
        sender.start()
        end = time.monotonic() + seconds + 60
        last_record = time.monotonic()
        while time.monotonic() < end:
            msg = consumer.poll(0.1)
            value = None if msg is None or msg.error() is not None else msg.value()
            if msg is not None and value is not None:
                now = time.time()
                topic = msg.topic() or ""
                event_id = (
                    id_of_value.get(value)
                    if topic == topics.changes
                    else id_of_view.get(str(decoder.decode(value)["event_id"]))
                )
                seen = received[topic]
                if event_id in sent and event_id not in seen:
                    seen[event_id] = now
                    last_record = time.monotonic()
            # a change the partner may not see (withheld) never reaches the vendor: done once
            # the broker copy is complete and the vendor has had nothing new for 3 s
            if (
                not sender.is_alive()
                and len(received[topics.changes]) >= total
                and (len(received[partner_topic]) >= total or time.monotonic() - last_record > 3.0)
            ):
                break
        sender.join()
    finally:
        consumer.close()
        summary_line, _ = processor.stop()
    vendor = sorted(t - sent[e] for e, t in received[partner_topic].items())
    broker = sorted(t - sent[e] for e, t in received[topics.changes].items())
    if not vendor or not broker:
        raise RuntimeError(
            f"no latency samples (vendor {len(vendor)}, broker {len(broker)}); "
            f"the processor said:\n{processor.output()}"
        )

    def q(values: list[float], p: float) -> float:
        return values[min(len(values) - 1, int(len(values) * p))]

    return {
        "p50_s": q(vendor, 0.5),
        "p99_s": q(vendor, 0.99),
        "max_s": vendor[-1],
        "broker_p50_s": q(broker, 0.5),
        "broker_p99_s": q(broker, 0.99),
        "broker_max_s": broker[-1],
        "samples": len(vendor),
        "sent": total,
        "processed": summary_line.consumed,
    }


def scenario_latency(bench: Bench) -> Section:
    runs = []
    for i in range(bench.repeat):
        bench.progress(
            f"latency {i + 1}/{bench.repeat}: 1,000 events/s for {bench.args.latency_seconds:.0f}s"
        )
        runs.append(latency_once(bench, bench.topics(f"lat{i}"), 1000, bench.args.latency_seconds))
    section: Section = {
        key: summary([r[key] for r in runs])
        for key in ("p50_s", "p99_s", "max_s", "broker_p50_s", "broker_p99_s", "broker_max_s")
    }
    section.update(
        {
            "rate_per_s": 1000,
            "partners": 3,
            "samples": [r["samples"] for r in runs],
            "sent": [r["sent"] for r in runs],
        }
    )
    return {"latency": section}


# --- scale ------------------------------------------------------------------------------------


def produce_consent_state(bench: Bench, topics: Topics, students: int) -> None:
    """One GRANT per student (the state the processor must hold and restore)."""
    registry = SchemaRegistryClient(bench.conn.registry_config())
    encoder = WireEncoder(registry, f"{topics.consent}-value", load_schema("consent_changed"))
    producer = Producer(
        bench.conn.kafka_config(
            {
                "linger.ms": 20,
                "compression.type": "lz4",
                "partitioner": "murmur2_random",
                "enable.idempotence": True,
                "queue.buffering.max.messages": 1000000,
            }
        )
    )
    base = 1_788_000_000_000
    for i in range(students):
        student = f"S{i:08d}"
        event = ConsentEvent(
            event_id=f"scale-{i}",
            kind=ConsentKind.GRANT,
            district_id="D1",
            effective_at=base + i,
            student_id=student,
            partner="carewell-health",
            categories=frozenset({"special_medical"}),
            **GUARDIAN_SIGNED,
        )
        value = encoder.encode(event.to_avro())
        while True:
            try:
                producer.produce(topics.consent, key=student.encode(), value=value)
                break
            except BufferError:
                producer.poll(0.05)
        if i and i % 200_000 == 0:
            bench.progress(f"  {i:,} of {students:,} consent events produced")
    left = producer.flush(300)
    if left:
        raise RuntimeError(f"{left} consent events not acknowledged")


def read_changelog_s(conn: Connection, topic: str) -> tuple[float, int]:
    """Seconds to read ``topic`` from start to end, read_committed, doing nothing with it."""
    reader = Consumer(
        conn.kafka_config(
            {
                "group.id": f"{topic}-read",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )
    started = time.perf_counter()
    try:
        count = sum(
            1
            for _ in read_to_end(reader, nonempty_from_start(reader, topic, range(PARTITIONS)), 600)
        )
    finally:
        reader.close()
    return time.perf_counter() - started, count


def cli_once(bench: Bench, topics: Topics) -> tuple[WorkerSummary, int]:
    """One `hallpass process --until-idle`: its summary and peak resident memory."""
    proc = ProcessorProcess(
        bench.conn,
        topics,
        bench.tmp,
        [
            "--contracts",
            str(bench.dirs[3]),
            "--partner-secrets",
            str(bench.secrets),
            "--metrics-port",
            "0",
        ],
        bench.tmp / f"{topics.prefix}{time.monotonic_ns()}.log",
    )
    rss = RssWatch(proc.proc.pid)
    code = proc.finish(3600)
    output = proc.log.read_text()
    if code != 0:
        raise RuntimeError(f"hallpass process exited with {code}:\n{output[-3000:]}")
    return WorkerSummary.parse(output), rss.join()


def scale_once(bench: Bench, topics: Topics, students: int) -> dict[str, float]:
    ensure_topics(
        bench.conn, [TopicSpec(topics.changes, PARTITIONS), TopicSpec(topics.consent, PARTITIONS)]
    )
    apply_contracts(bench.conn, bench.dirs[3], topics, secrets_file=bench.secrets)
    bench.progress(f"  producing {students:,} consent events")
    produce_consent_state(bench, topics, students)
    bench.progress("  loading them: hallpass process --until-idle")
    loaded, rss = cli_once(bench, topics)
    read_s, records = read_changelog_s(bench.conn, topics.state)
    bench.progress(
        f"  read the changelog ({records:,} records) in {read_s:.1f}s; "
        "restart on the simulated data"
    )
    produce(bench.conn, topics, bench.data)
    restarted, rss_restart = cli_once(bench, topics)
    if restarted.consumed != len(bench.data):
        raise RuntimeError(
            f"after the restart the processor consumed {restarted.consumed} "
            f"of {len(bench.data)} events"
        )
    return {
        "rss_bytes": float(rss),
        "load_events_per_s": loaded.busy_events_per_s,
        "restore_s": restarted.restore_s,
        "restored_records": float(restarted.restored),
        "changelog_read_s": read_s,
        "changelog_records": float(records),
        "events_per_s": restarted.busy_events_per_s,
        "rss_after_restore_bytes": float(rss_restart),
    }


def scenario_scale(bench: Bench) -> Section:
    section: Section = {}
    for n in bench.args.scale:
        runs = []
        for i in range(bench.args.scale_repeat):
            bench.progress(f"scale {n:,} students {i + 1}/{bench.args.scale_repeat}")
            runs.append(scale_once(bench, bench.topics(f"scale{n}r{i}"), n))
        section[str(n)] = {key: summary([r[key] for r in runs]) for key in runs[0]}
    return {"scale": section}


# --- the run ----------------------------------------------------------------------------------


RUNNERS: dict[str, Callable[[Bench], Section]] = {
    "relay": scenario_relay,
    "codec": scenario_codec,
    "processor": scenario_processor,
    "metrics": scenario_metrics,
    "workers": scenario_workers,
    "latency": scenario_latency,
    "scale": scenario_scale,
}


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    try:
        cpuinfo = Path("/proc/cpuinfo").read_text()
        info["cpu_model"] = next(
            (
                line.split(":", 1)[1].strip()
                for line in cpuinfo.splitlines()
                if line.startswith("model name")
            ),
            None,
        )
        meminfo = Path("/proc/meminfo").read_text().split()
        info["mem_total_bytes"] = int(meminfo[meminfo.index("MemTotal:") + 1]) * 1024
    except (OSError, ValueError):
        pass
    return info


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=10000)
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=3, help="Repetitions per figure.")
    parser.add_argument(
        "--scale",
        type=int,
        nargs="*",
        default=[100_000, 1_000_000],
        help="Students in the consent state for the scale scenario.",
    )
    parser.add_argument(
        "--scale-repeat",
        type=int,
        default=None,
        help="Repetitions of each scale size (default: --repeat).",
    )
    parser.add_argument("--latency-seconds", type=float, default=12.0)
    parser.add_argument(
        "--only",
        nargs="*",
        default=None,
        choices=SCENARIOS,
        metavar="SCENARIO",
        help=f"Run only these: {' '.join(SCENARIOS)}.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Smoke test in a few minutes: 2,000 students, 2 days, one "
        "repetition, scale 100,000 only, 5 s of latency.",
    )
    parser.add_argument("--out", type=Path, default=RESULTS_FILE)
    args = parser.parse_args(argv)
    if args.quick:
        args.students, args.days, args.repeat = 2000, 2, 1
        args.scale, args.latency_seconds = [100_000], 5.0
    if args.scale_repeat is None:
        args.scale_repeat = args.repeat
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    wanted = [s for s in SCENARIOS if args.only is None or s in args.only]
    progress = Progress()
    conn = resolve_connection(
        os.environ, Path(os.environ.get("HALLPASS_DATA_DIR", ".hallpass")).resolve()
    )
    run = uuid.uuid4().hex[:6]
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    tmp = Path(tempfile.mkdtemp(prefix="hallpass-bench-"))
    progress(f"run {run}: {', '.join(wanted)}; topics under bench.{run}.*; logs in {tmp}")
    events = list(simulate(args.students, SEED, args.days, districts=2))
    results: dict[str, Any] = {
        "machine": machine(),
        "students": args.students,
        "days": args.days,
        "seed": SEED,
        "repeat": args.repeat,
    }
    errors: dict[str, str] = {}
    bench = Bench(conn, run, tmp, events, [], args.repeat, progress, args)
    try:
        progress(f"encoding the simulated data ({args.students:,} students, {args.days} days)")
        bench.data = encode_dataset(conn, events, f"{bench.prefix}data.")
        results["events"] = len(bench.data)
        results["change_events"] = sum(1 for ev in bench.data if not ev.consent)
        bench.dirs = {n: contracts_dir(tmp, n) for n in (1, 3, 10)}
        # every partner's secret up front: concurrent workers would each make their own
        catalog = field_catalog(load_schema("student_record_changed"))
        load_partner_secrets(
            bench.secrets,
            [c.partner for c in load_contracts(bench.dirs[10], catalog)],
            lambda _m: None,
        )  # recorded by contracts apply
        for name in wanted:
            step = time.monotonic()
            try:
                if name == "publisher":
                    results["publisher"] = measure_publisher(
                        conn,
                        args.students,
                        args.days,
                        args.repeat,
                        f"{bench.prefix}pub.",
                        progress,
                        events,
                    )
                else:
                    results.update(RUNNERS[name](bench))
            except Exception as exc:  # one broken scenario must not lose the others
                errors[name] = f"{type(exc).__name__}: {exc}"
                progress(f"{name} FAILED: {errors[name]}")
                traceback.print_exc(file=sys.stderr)
            progress(f"{name} done in {time.monotonic() - step:.0f}s")
    finally:
        progress(f"deleting the topics, subjects and groups bench.{run}.*")
        drop_run(conn, bench.prefix, progress)
    add_ratios(results)
    if errors:
        results["errors"] = errors
    meta = {
        "run": run,
        "started": started,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "command": " ".join(["bench_processor", *(argv or sys.argv[1:])]),
        "scenarios": wanted,
        "quick": args.quick,
    }
    written = write_results(args.out, results, meta, fresh=args.only is None)
    print(table(written))
    progress(f"wrote {args.out}")
    if errors:
        progress(f"failed: {', '.join(errors)}; the processors' logs are in {tmp}")
        return 1
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
