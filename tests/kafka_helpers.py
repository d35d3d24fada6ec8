"""Reading topics back in tests: everything committed, from the beginning to the end."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import ENV_BOOTSTRAP, ENV_REGISTRY, Connection
from streams.kafka.read_to_end import nonempty_from_start, read_to_end
from streams.kafka.wire import WireDecoder


@dataclass(frozen=True)
class Read:
    key: bytes | None
    value: bytes | None
    partition: int
    offset: int
    headers: dict[str, bytes]
    #: the record's Kafka timestamp (ms)
    timestamp: int = 0


def read_topic(conn: Connection, topic: str, timeout_s: float = 60.0) -> list[Read]:
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": f"t-read-{uuid.uuid4()}",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )
    out: list[Read] = []
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        for msg in read_to_end(
            consumer, nonempty_from_start(consumer, topic, meta.partitions), timeout_s
        ):
            # a consumed message's headers are (key, value) pairs; the dict form is for produce
            pairs = cast(list[tuple[str, bytes | str | None]], msg.headers() or [])
            headers = {k: v for k, v in pairs if isinstance(v, bytes)}
            out.append(
                Read(
                    msg.key(),
                    msg.value(),
                    msg.partition() or 0,
                    msg.offset() or 0,
                    headers,
                    msg.timestamp()[1],
                )
            )
    finally:
        consumer.close()
    return out


def decode_all(conn: Connection, reads: Sequence[Read]) -> list[dict[str, Any]]:
    decoder = WireDecoder(SchemaRegistryClient(conn.registry_config()))
    return [decoder.decode(r.value) for r in reads if r.value is not None]


def latest_by_key(reads: Sequence[Read]) -> dict[bytes, bytes | None]:
    """What a compacted topic holds once compacted: the last value per key (None = deleted)."""
    state: dict[bytes, bytes | None] = {}
    for r in sorted(reads, key=lambda r: (r.partition, r.offset)):
        state[r.key or b""] = r.value
    return state


def hallpass_cli(
    conn: Connection, data_dir: Path, *args: str, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    """Run the `hallpass` command as a user would, against ``conn``."""
    import os

    env = dict(os.environ)
    env.update({ENV_BOOTSTRAP: conn.bootstrap_servers, ENV_REGISTRY: conn.schema_registry_url})
    return subprocess.run(
        [sys.executable, "-m", "streams", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )
