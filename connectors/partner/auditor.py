"""A parent's disclosure report (FERPA 34 CFR 99.32), read from the audit ledger."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import Connection
from streams.kafka.names import AUDIT
from streams.kafka.read_to_end import nonempty_from_start, read_to_end, topic_partitions
from streams.kafka.wire import WireDecoder
from streams.policy.catalog import load_schema


def read_ledger(
    conn: Connection, topic: str = AUDIT, timeout_s: float = 60.0
) -> Iterator[tuple[bytes | None, dict[str, Any]]]:
    """Every committed record of the audit ledger, from the beginning to the current end."""
    decoder = WireDecoder(
        SchemaRegistryClient(conn.registry_config()), reader_schema=load_schema("disclosure_record")
    )
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": "hallpass-disclosures-reader",
                "enable.auto.commit": False,
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )
    try:
        partitions = topic_partitions(consumer, topic)
        if partitions is None:
            return
        assignment = nonempty_from_start(consumer, topic, partitions)
        for msg in read_to_end(consumer, assignment, timeout_s):
            yield msg.key(), decoder.decode(msg.value())
    finally:
        consumer.close()


def read_disclosures(conn: Connection, student_id: str, topic: str = AUDIT) -> list[dict[str, Any]]:
    """The student's DISCLOSED and RETRACTED decisions, oldest first."""
    wanted = student_id.encode()
    rows = [
        record
        for key, record in read_ledger(conn, topic)
        if key == wanted and record["decision"] in ("DISCLOSED", "RETRACTED")
    ]
    rows.sort(key=lambda r: (r["decided_at"], r["decision_id"]))
    return rows
