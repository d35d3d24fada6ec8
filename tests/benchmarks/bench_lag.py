"""How long the lag exporter takes to sample a cluster with 100 consumer groups. Not part of
`make test`; prints the figures.

    python -m tests.benchmarks.bench_lag [--groups 100 --topics 10 --rounds 10]

Creates ``--topics`` topics of 3 partitions with records, then ``--groups`` groups that each
commit offsets (with lag) on all partitions of one topic; every name is under a fresh
``bench.lag.<run>.`` prefix and removed afterwards. The first round is cold: no history yet,
so it reads the timestamp of the record at every lagging committed offset. The next rounds
are what a running exporter does every interval (while producers keep writing). Also timed:
rendering /metrics from the last round (what a Prometheus scrape costs).
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time
import uuid
from pathlib import Path

from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from prometheus_client import CollectorRegistry, generate_latest

from streams.config import Connection, resolve_connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import Topics, TopicSpec
from streams.lag.collect import KafkaOffsets
from streams.lag.exporter import LagCollector, LagExporter
from streams.lag.model import GroupSelection
from streams.lag.tracker import LagSampler, LagTracker

PARTITIONS = 3


def produce(conn: Connection, topics: list[str], per_partition: int) -> None:
    producer = Producer(conn.kafka_config({"linger.ms": 20}))
    for topic in topics:
        for partition in range(PARTITIONS):
            for i in range(per_partition):
                producer.produce(topic, value=b"r%d" % i, partition=partition)
            producer.poll(0)
    assert producer.flush(60) == 0


def commit_groups(admin: AdminClient, groups: dict[str, str], per_partition: int) -> None:
    """Each group commits an offset with lag on every partition of its topic."""
    futures = [
        admin.alter_consumer_group_offsets(
            [
                ConsumerGroupTopicPartitions(
                    group,
                    [
                        TopicPartition(
                            topic, p, random.randrange(per_partition // 2, per_partition)
                        )
                        for p in range(PARTITIONS)
                    ],
                )
            ]
        )[group]
        for group, topic in groups.items()
    ]
    for future in futures:
        future.result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--topics", type=int, default=10)
    parser.add_argument("--records", type=int, default=200, help="records per partition")
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    conn = resolve_connection(os.environ, Path(os.environ.get("HALLPASS_DATA_DIR", ".hallpass")))
    prefix = f"bench.lag.{uuid.uuid4().hex[:8]}."
    topics = [f"{prefix}topic.{i}" for i in range(args.topics)]
    groups = {f"{prefix}group.{i:03d}": topics[i % len(topics)] for i in range(args.groups)}
    admin = AdminClient(conn.kafka_config())
    ensure_topics(conn, [TopicSpec(t, PARTITIONS) for t in topics])
    try:
        produce(conn, topics, args.records)
        commit_groups(admin, groups, args.records)

        exporter = LagExporter(
            connect=lambda: conn,
            open_source=lambda c: KafkaOffsets(c, timeout_s=10.0),
            sampler=LagSampler(LagTracker(Topics())),
            selection=GroupSelection((f"{prefix}*",)),
            note=lambda _m: None,
        )
        registry = CollectorRegistry()
        registry.register(LagCollector(lambda: exporter.latest))

        cold = exporter.sample()
        assert cold.up and cold.report is not None
        assert len(cold.report.groups) == args.groups
        warm: list[float] = []
        for _ in range(args.rounds):
            produce(conn, topics, 5)  # the log ends move between rounds, as in production
            scrape = exporter.sample()
            assert scrape.up
            warm.append(scrape.duration_s)
        started = time.perf_counter()
        body = generate_latest(registry)
        render_s = time.perf_counter() - started
        exporter.close()

        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        partitions = sum(len(g.partitions) for g in cold.report.groups)
        print(
            f"lag exporter on {conn.bootstrap_servers}: {args.groups} groups, "
            f"{args.topics} topics x {PARTITIONS} partitions, "
            f"{partitions} group partitions"
        )
        print(
            f"  first round (cold, reads {partitions} record timestamps): "
            f"{cold.duration_s * 1000:.0f} ms"
        )
        print(
            f"  next {args.rounds} rounds: median {statistics.median(warm) * 1000:.0f} ms, "
            f"max {max(warm) * 1000:.0f} ms"
        )
        print(
            f"  /metrics rendering: {render_s * 1000:.1f} ms for {series} series "
            f"({len(body) / 1024:.0f} KiB)"
        )
    finally:
        for future in admin.delete_consumer_groups(list(groups)).values():
            future.result()
        for future in admin.delete_topics(topics).values():
            future.result()


if __name__ == "__main__":
    main()
