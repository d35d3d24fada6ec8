"""A vendor's consumer of its hallpass partner topics, with confluent-kafka's defaults.

Reads ``partner.<id>.notices`` and ``partner.<id>.students`` (``isolation.level``
``read_committed``), decodes each record through the schema registry with confluent-kafka's
``AvroDeserializer`` (Confluent wire format, any Confluent-compatible registry), keeps a local
copy (a JSON file) keyed by the record key, deletes a student on a tombstone, applies deletion
notices (the whole record when ``fields`` is empty, else the named fields become null), saves the
copy, acknowledges each notice on ``partner.<id>.acks`` (the proof of deletion: a
``DeletionAck``, schemas/deletion_ack.avsc, encoded with ``AvroSerializer`` under the schema the
district registered for ``partner.<id>.acks-value``), commits the group's offsets once the
acknowledgements are written, and prints a JSON summary.

One run reads to the end of both topics and stops; run it on a schedule (at least as often as
the topic keeps tombstones, 30 days by default). The order makes notices safe to apply: the
students topic's end is noted first, then notices are read to their end, then students up to
the noted end. A notice comes in the same transaction as its tombstone or reduced view, so
every notice is applied before that record and before anything newer about the student.
A crash after the copy is saved and before the offsets are committed applies and acknowledges
those notices again on the next run, which is harmless (the first acknowledgement counts).

    pip install 'confluent-kafka[avro]'
    python vendor_consumer.py --bootstrap 127.0.0.1:9092 \\
        --registry http://127.0.0.1:8081/apis/ccompat/v7 --partner learnwell --copy learnwell.json

Secure bus: ``--kafka security.protocol=SASL_SSL --kafka sasl.mechanism=SCRAM-SHA-512
--kafka sasl.username=learnwell --kafka sasl.password=... --kafka ssl.ca.location=ca.pem``,
``--registry-user-info hallpass-reader:...`` and ``--registry-ca ca.pem``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def plain(value: Any) -> Any:
    """A decoded value as JSON: dates, times and timestamps as the Avro ints they are
    (days, milliseconds of the day, epoch milliseconds), like every client without logical
    type conversion."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return (aware - EPOCH) // dt.timedelta(milliseconds=1)
    if isinstance(value, dt.date):
        return (value - EPOCH.date()).days
    if isinstance(value, dt.time):
        return (
            value.hour * 3600 + value.minute * 60 + value.second
        ) * 1000 + value.microsecond // 1000
    return value


def null_out(record: dict[str, Any], path: str) -> bool:
    """Set the field at ``path`` (``special.medical_alerts``) to null; True if it held a
    value."""
    *parents, leaf = path.split(".")
    node: Any = record
    for name in parents:
        node = node.get(name) if isinstance(node, dict) else None
    if not isinstance(node, dict) or node.get(leaf) is None:
        return False
    node[leaf] = None
    return True


class Reader:
    def __init__(self, kafka: dict[str, str], group: str) -> None:
        self.consumer = Consumer(
            {
                **kafka,
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",  # never see an aborted or open transaction
                "enable.partition.eof": True,
            }
        )
        self.to_commit: list[TopicPartition] = []

    def ends(self, topic: str) -> dict[int, int]:
        """Each partition's end as a read_committed consumer sees it (the last stable
        offset)."""
        meta = self.consumer.list_topics(topic, timeout=30).topics[topic]
        if meta.error is not None:
            raise SystemExit(f"{topic}: {meta.error}")
        return {
            p: self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[1]
            for p in meta.partitions
        }

    def read(self, topic: str, ends: dict[int, int], apply: Callable[[Message], None]) -> None:
        """Apply every record from the group's committed offset up to ``ends``, then commit
        ``ends``."""
        committed = self.consumer.committed([TopicPartition(topic, p) for p in ends], timeout=30)
        start = {tp.partition: tp.offset for tp in committed}
        low = {
            p: self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=30)[0]
            for p in ends
        }
        todo = {p for p in ends if max(start[p], low[p]) < ends[p]}
        self.consumer.assign(
            [TopicPartition(topic, p, start[p] if start[p] >= 0 else -2) for p in todo]
        )
        while todo:
            msg = self.consumer.poll(10.0)
            if msg is None:
                continue
            partition = msg.partition() or 0
            err = msg.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:  # past the last commit marker
                    todo.discard(partition)
                    continue
                raise SystemExit(f"{topic}: {err}")
            offset = msg.offset() or 0
            if offset < ends[partition]:
                apply(msg)
            if offset + 1 >= ends[partition]:
                todo.discard(partition)
        self.consumer.unassign()
        self.to_commit += [
            TopicPartition(topic, p, end) for p, end in ends.items() if end > max(start[p], 0)
        ]

    def commit(self) -> None:
        if self.to_commit:
            self.consumer.commit(offsets=self.to_commit, asynchronous=False)

    def close(self) -> None:
        self.consumer.close()


class Acknowledger:
    """Writes a ``DeletionAck`` for each applied notice on ``partner.<id>.acks``, keyed like
    the notice, with the schema id registered for the topic's value subject (a vendor's
    registry user is read-only: nothing is registered)."""

    def __init__(
        self, kafka: dict[str, str], registry: SchemaRegistryClient, topic: str, partner: str
    ) -> None:
        self.topic, self.partner = topic, partner
        self.encode = AvroSerializer(  # the latest schema of <topic>-value: its id and its text
            registry, None, conf={"auto.register.schemas": False, "use.latest.version": True}
        )
        self.producer = Producer({**kafka, "enable.idempotence": True, "acks": "all"})
        self.failed: list[str] = []

    def ack(self, notice: dict[str, Any], deleted_at_ms: int, note: str) -> None:
        key = str(notice["partner_student_key"])
        value = {
            "notice_id": str(notice["event_id"]),
            "partner": self.partner,
            "partner_student_key": key,
            "deleted_at": deleted_at_ms,
            "note": note,
        }
        encoded = self.encode(value, SerializationContext(self.topic, MessageField.VALUE))
        self.producer.produce(self.topic, key=key.encode(), value=encoded, on_delivery=self.done)
        self.producer.poll(0)

    def done(self, err: KafkaError | None, _msg: Message) -> None:
        if err is not None:
            self.failed.append(str(err))

    def flush(self) -> None:
        """Wait until every acknowledgement is written; exit (committing nothing) if any was
        not."""
        left = self.producer.flush(60)
        if left or self.failed:
            problem = self.failed[0] if self.failed else f"{left} not delivered in 60s"
            raise SystemExit(f"{self.topic}: {problem}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument(
        "--registry",
        required=True,
        help="Confluent-compatible registry URL (Apicurio: .../apis/ccompat/v7)",
    )
    parser.add_argument("--partner", required=True)
    parser.add_argument("--topic-prefix", default="")
    parser.add_argument("--group", help="consumer group (default: <partner>-python-vendor)")
    parser.add_argument("--copy", type=Path, required=True, help="local copy (JSON file)")
    parser.add_argument(
        "--kafka",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another Kafka client setting (security)",
    )
    parser.add_argument("--registry-user-info", default=os.environ.get("REGISTRY_USER_INFO"))
    parser.add_argument("--registry-ca")
    args = parser.parse_args(argv)

    kafka = {"bootstrap.servers": args.bootstrap, **dict(kv.split("=", 1) for kv in args.kafka)}
    registry_conf = {"url": args.registry}
    if args.registry_user_info:
        registry_conf["basic.auth.user.info"] = args.registry_user_info
    if args.registry_ca:
        registry_conf["ssl.ca.location"] = args.registry_ca
    registry = SchemaRegistryClient(registry_conf)
    decode = AvroDeserializer(registry)

    students_topic = f"{args.topic_prefix}partner.{args.partner}.students"
    notices_topic = f"{args.topic_prefix}partner.{args.partner}.notices"
    acks_topic = f"{args.topic_prefix}partner.{args.partner}.acks"
    copy: dict[str, dict[str, Any]] = (
        json.loads(args.copy.read_text()) if args.copy.exists() else {}
    )
    summary = {
        "client": "python confluent-kafka",
        "partner": args.partner,
        "upserts": 0,
        "tombstones": 0,
        "notices": 0,
        "records_deleted_by_notices": 0,
        "fields_deleted_by_notices": 0,
        "acknowledged": 0,
    }
    applied: list[dict[str, Any]] = []  # the notices to acknowledge once the copy is saved

    def decoded(msg: Message) -> dict[str, Any]:
        value = decode(msg.value(), SerializationContext(msg.topic() or "", MessageField.VALUE))
        return dict(plain(value))

    def on_notice(msg: Message) -> None:
        notice = decoded(msg)
        summary["notices"] += 1
        applied.append(notice)
        key = notice["partner_student_key"]
        if not notice["fields"]:  # the whole record
            if copy.pop(key, None) is not None:
                summary["records_deleted_by_notices"] += 1
        elif key in copy:
            summary["fields_deleted_by_notices"] += sum(
                null_out(copy[key], path) for path in notice["fields"]
            )

    def on_student(msg: Message) -> None:
        key = (msg.key() or b"").decode()
        if msg.value() is None:  # tombstone: delete the student
            copy.pop(key, None)
            summary["tombstones"] += 1
        else:
            copy[key] = decoded(msg)
            summary["upserts"] += 1

    reader = Reader(kafka, args.group or f"{args.partner}-python-vendor")
    try:
        students_end = reader.ends(students_topic)  # 1. note where the students end
        reader.read(notices_topic, reader.ends(notices_topic), on_notice)  # 2. notices
        reader.read(students_topic, students_end, on_student)  # 3. students
        tmp = args.copy.with_name(args.copy.name + ".tmp")
        tmp.write_text(json.dumps(copy, sort_keys=True))
        tmp.replace(args.copy)  # save the copy, then acknowledge, then commit
        if applied:
            deleted_at = int(time.time() * 1000)  # the copy holds the deletions from now on
            acks = Acknowledger(kafka, registry, acks_topic, args.partner)
            for notice in applied:
                acks.ack(notice, deleted_at, note=str(summary["client"]))
            acks.flush()
            summary["acknowledged"] = len(applied)
        reader.commit()
    finally:
        reader.close()
    summary["students_held"] = len(copy)
    json.dump(summary, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
