"""What SASL/SCRAM (and TLS) cost against plaintext: the same messages produced and consumed
on three local stacks started by this script, repetitions interleaved. Not part of
`make test`.

    python -m tests.benchmarks.bench_security [--messages 500000] [--size 512] [--reps 5]

  plaintext   `hallpass up`                   PLAINTEXT, no authorizer
  scram       `hallpass up --secure`          SASL_PLAINTEXT, SCRAM-SHA-512, ACLs
  scram+tls   `hallpass up --secure --tls`    SASL_SSL, SCRAM-SHA-512, ACLs
On the secure stacks the client is a least-privileged principal (rights on its own
topics and groups), so every request goes through the StandardAuthorizer like a vendor's or
the processor's would. Producer settings are the SIS publisher's (idempotent, acks=all, lz4).

Figures: produce (send N and wait for every ack), consume (read the N back, one consumer),
and connect (a new client's first metadata answer: TCP, TLS handshake, SCRAM exchange). Each
is the median of the repetitions; the ratio is secure over plaintext. With --write the
``security`` section of bench-results.json is replaced (the other sections stay).
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.config import Connection
from streams.local.stack import LocalStack, Ports
from streams.security.acl_apply import create_rules
from streams.security.acl_plan import AclRule
from streams.security.client_settings import read_properties
from streams.security.users import set_password
from tests.benchmarks.results import RESULTS_FILE, Progress, ratio, summary, write_results
from tests.eventually import eventually

#: the SIS publisher's producer (connectors/source/publisher.py)
PRODUCER_SETTINGS: Mapping[str, str | int | float | bool] = {
    "enable.idempotence": True,
    "acks": "all",
    "linger.ms": 25,
    "batch.num.messages": 10000,
    "compression.type": "lz4",
    "queue.buffering.max.messages": 200000,
}
BENCH_USER = "hallpass-bench"
TOPIC_PREFIX = "bench."


@dataclass(frozen=True)
class Mode:
    name: str
    ports: Ports
    secure: bool = False
    tls: bool = False


MODES = (
    Mode("plaintext", Ports(30492, 30493, 30481)),
    Mode("scram", Ports(30592, 30593, 30581), secure=True),
    Mode("scram+tls", Ports(30692, 30693, 30681), secure=True, tls=True),
)


def bench_acls(principal: str) -> list[AclRule]:
    """What the bench client needs, and nothing more."""
    topic_ops = ("READ", "WRITE", "DESCRIBE", "CREATE", "DELETE")
    return [
        *(AclRule(principal, "TOPIC", "PREFIXED", TOPIC_PREFIX, op) for op in topic_ops),
        AclRule(principal, "GROUP", "PREFIXED", "bench-", "READ"),
        AclRule(principal, "CLUSTER", "LITERAL", "kafka-cluster", "IDEMPOTENT_WRITE"),
    ]


def start(mode: Mode, root: Path, note: Callable[[str], None]) -> tuple[LocalStack, Connection]:
    """The stack of ``mode`` and the bench client's connection to it."""
    stack = LocalStack(
        root / mode.name,
        ports=mode.ports,
        secure=mode.secure,
        tls=mode.tls,
        progress=lambda m: note(f"[{mode.name}] {m}"),
    )
    state = stack.up()
    if not mode.secure:
        return stack, Connection(state.bootstrap_servers, state.schema_registry_url)
    admin = dict(read_properties(Path(state.admin_properties)))
    admin_config: dict[str, Any] = {
        "bootstrap.servers": state.bootstrap_servers,
        "log_level": 0,
        **admin,
    }
    password = secrets.token_urlsafe(24)
    set_password(admin_config, BENCH_USER, password)
    create_rules(admin_config, bench_acls(f"User:{BENCH_USER}"))
    props = {**admin, "sasl.username": BENCH_USER, "sasl.password": password}
    return stack, Connection(state.bootstrap_servers, state.schema_registry_url, props)


def payloads(count: int, size: int, seed: int = 7) -> list[bytes]:
    """Record-like values: half repetitive text, half random bytes (lz4 gets some of it)."""
    rng = random.Random(seed)
    text = b'{"student_name":"Ada Lovelace","grade_level":"07","school_id":"NY-0042"}' * 20
    return [text[: size // 2] + rng.randbytes(size - size // 2) for _ in range(count)]


def make_topic(conn: Connection) -> str:
    topic = f"{TOPIC_PREFIX}{uuid.uuid4().hex[:10]}"
    admin = AdminClient(conn.kafka_config({"log_level": 0}))
    for future in admin.create_topics([NewTopic(topic, 3, 1)], operation_timeout=30).values():
        future.result()
    return topic


def drop_topic(conn: Connection, topic: str) -> None:
    admin = AdminClient(conn.kafka_config({"log_level": 0}))
    for future in admin.delete_topics([topic], operation_timeout=30).values():
        future.result()


def produce(conn: Connection, topic: str, values: list[bytes]) -> float:
    """Seconds to send every value and have every ack."""
    producer = Producer(conn.kafka_config(PRODUCER_SETTINGS))
    producer.list_topics(topic, timeout=30)  # connected and authenticated before the clock
    failed: list[str] = []

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        if err is not None:
            failed.append(str(err))

    started = time.perf_counter()
    for number, value in enumerate(values):
        while True:
            try:
                producer.produce(
                    topic, key=str(number).encode(), value=value, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(300)
    elapsed = time.perf_counter() - started
    if left or failed:
        raise RuntimeError(f"{left} unacknowledged, {len(failed)} failed: {failed[:1]}")
    return elapsed


def consume(conn: Connection, topic: str, expected: int) -> float:
    """Seconds to read ``expected`` records of ``topic`` from the beginning."""
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": f"bench-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "enable.partition.eof": False,
                "fetch.max.bytes": 52428800,
                "log_level": 0,
                # a full local queue would otherwise pause fetching for 1 s (librdkafka's default),
                # which measured the pause instead of the transport
                "fetch.queue.backoff.ms": 10,
            }
        )
    )
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    started = time.perf_counter()
    consumer.assign([TopicPartition(topic, p, -2) for p in partitions])
    count = 0

    def read_all() -> bool:
        nonlocal count
        for msg in consumer.consume(num_messages=10000, timeout=0.5):
            if msg.error() is None:
                count += 1
        return count >= expected

    try:
        if expected > 0:
            eventually(
                read_all,
                300,
                lambda: f"read {count} of {expected} records of {topic}",
                interval_s=0,
            )
        return time.perf_counter() - started
    finally:
        consumer.close()


def connect(conn: Connection) -> float:
    """Seconds from a new client to its first metadata answer."""
    started = time.perf_counter()
    admin = AdminClient(conn.kafka_config({"log_level": 0}))
    admin.list_topics(timeout=30)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=500_000)
    parser.add_argument("--size", type=int, default=512, help="bytes per message")
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument(
        "--write", action="store_true", help="write the security section of bench-results.json"
    )
    args = parser.parse_args()
    note = Progress()
    root = Path(tempfile.mkdtemp(prefix="hallpass-bench-security-"))
    values = payloads(args.messages, args.size)
    stacks: list[LocalStack] = []
    figures: dict[str, dict[str, list[float]]] = {
        m.name: {"produce": [], "consume": [], "connect": []} for m in MODES
    }
    try:
        conns = {}
        for mode in MODES:  # all three up, so the repetitions can be interleaved
            stack, conns[mode.name] = start(mode, root, note)
            stacks.append(stack)
        for rep in range(1, args.reps + 1):
            for mode in MODES:
                conn = conns[mode.name]
                topic = make_topic(conn)
                sent = produce(conn, topic, values)
                read = consume(conn, topic, len(values))
                drop_topic(conn, topic)
                joined = sorted(connect(conn) for _ in range(5))[2]
                figures[mode.name]["produce"].append(len(values) / sent)
                figures[mode.name]["consume"].append(len(values) / read)
                figures[mode.name]["connect"].append(joined)
                note(
                    f"rep {rep} {mode.name:<10} produce {len(values) / sent:>9,.0f}/s  "
                    f"consume {len(values) / read:>9,.0f}/s  connect {joined * 1000:.0f} ms"
                )
    finally:
        for stack in stacks:
            stack.down(quiet=True)
        shutil.rmtree(root, ignore_errors=True)

    section: dict[str, Any] = {
        "messages": args.messages,
        "size_bytes": args.size,
        "reps": args.reps,
        "cores": os.cpu_count(),
    }
    for mode in MODES:
        section[mode.name] = {k: summary(v) for k, v in figures[mode.name].items()}
    for mode in MODES[1:]:
        section[mode.name]["ratio_to_plaintext"] = {
            k: ratio(section[mode.name][k], section["plaintext"][k])
            for k in ("produce", "consume", "connect")
        }
    print(
        f"{args.messages:,} messages of {args.size} bytes, median of {args.reps} "
        "interleaved repetitions"
    )
    print(
        f"{'':<11}{'produce msg/s':>15}{'consume msg/s':>15}{'connect ms':>12}   "
        "ratio to plaintext (produce / consume / connect)"
    )
    for mode in MODES:
        fig = section[mode.name]
        ratios = fig.get("ratio_to_plaintext")
        shown = (
            " / ".join(f"{ratios[k]:.2f}" for k in ("produce", "consume", "connect"))
            if ratios
            else ""
        )
        print(
            f"{mode.name:<11}{fig['produce']['median']:>15,.0f}"
            f"{fig['consume']['median']:>15,.0f}{fig['connect']['median'] * 1000:>12.1f}   "
            f"{shown}"
        )
    if args.write:
        run = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        write_results(RESULTS_FILE, {"security": section}, {"run": run}, fresh=False)
        print(f"wrote the security section of {RESULTS_FILE}")


if __name__ == "__main__":
    main()
