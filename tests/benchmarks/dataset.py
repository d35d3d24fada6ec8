"""What every benchmark scenario shares: the simulated data (seed fixed), encoded once; the
partner contracts for 1, 3 and 10 partners; producing the data onto a topic prefix; the
processor's handler run in memory; and deleting what a run created."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.simulation.stream import SimEvent
from streams.config import Connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import CHANGES, Topics, TopicSpec
from streams.kafka.wire import WireEncoder
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import contract_files, lock_contracts
from streams.processor.handlers import BusHandler
from streams.processor.messages import Output
from streams.processor.routing import partition_for
from streams.processor.state import Tables
from tests.benchmarks.results import REPO
from tests.processor_helpers import drop_prefix

CONTRACTS = REPO / "deploy" / "contracts"
#: input partitions: a multiple of 1 and 2, so that one worker and two workers (the range
#: assignor keeps changes and consent co-partitioned) both get even shares
PARTITIONS = 4
BATCH = 5000  #: the processor's default batch (events per transaction)


@dataclass(frozen=True)
class Event:
    """One simulated event as it sits on the bus."""

    consent: bool  #: on the consent topic (else the changes topic)
    key: bytes
    value: bytes


Encoded = list[Event]


def contracts_dir(tmp: Path, partners: int) -> Path:
    """1: learnwell; 3: the samples; more: the samples and copies under new partner ids."""
    out = tmp / f"contracts-{partners}"
    out.mkdir(exist_ok=True)
    samples = contract_files(CONTRACTS)
    if partners == 1:
        samples = [CONTRACTS / "learnwell.yaml"]
    for path in samples[:partners]:
        shutil.copy(path, out)
    for i in range(partners - len(samples)):
        source = samples[i % len(samples)]
        name = f"{source.stem}-copy{i}"
        text = source.read_text().replace(f"partner: {source.stem}", f"partner: {name}")
        text = text.replace(f"User:{source.stem}", f"User:{name}")
        (out / f"{name}.yaml").write_text(text)
    lock_contracts(out, field_catalog(load_schema("student_record_changed")))
    return out


def encode_dataset(conn: Connection, events: Sequence[SimEvent], subject_prefix: str) -> Encoded:
    """The events in Confluent wire format, schemas registered under ``subject_prefix``."""
    registry = SchemaRegistryClient(conn.registry_config())
    change = WireEncoder(
        registry, f"{subject_prefix}changes-value", load_schema("student_record_changed")
    )
    consent = WireEncoder(
        registry, f"{subject_prefix}consent-value", load_schema("consent_changed")
    )
    out: Encoded = []
    for ev in events:
        if ev.topic == CHANGES:
            out.append(Event(False, ev.key.encode(), change.encode(ev.value)))
        else:
            out.append(Event(True, ev.key.encode(), consent.encode(ev.value)))
    return out


def produce(conn: Connection, topics: Topics, data: Encoded) -> None:
    """Put the data on the prefixed input topics (3 partitions, keyed like the SIS does)."""
    ensure_topics(
        conn, [TopicSpec(topics.changes, PARTITIONS), TopicSpec(topics.consent, PARTITIONS)]
    )
    producer = Producer(
        conn.kafka_config(
            {
                "enable.idempotence": True,
                "linger.ms": 20,
                "compression.type": "lz4",
                "partitioner": "murmur2_random",
                "queue.buffering.max.messages": 500000,
            }
        )
    )
    for ev in data:
        topic = topics.consent if ev.consent else topics.changes
        while True:
            try:
                producer.produce(topic, key=ev.key, value=ev.value)
                break
            except BufferError:
                producer.poll(0.05)
    left = producer.flush(120)
    if left:
        raise RuntimeError(f"producing the data under {topics.prefix}: {left} not acknowledged")


class FakeMessage:
    """An input record as the handler sees it, without Kafka."""

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

    def headers(self) -> None:
        return None

    def timestamp(self) -> tuple[int, int]:
        return (1, int(time.time() * 1000))


def bench_keys(secrets_file: Path) -> dict[str, bytes]:
    """The pseudonym secrets ``contracts apply`` made for the benchmark."""
    return {p: bytes.fromhex(h) for p, h in json.loads(secrets_file.read_text()).items()}


def fake_messages(topics: Topics, data: Encoded) -> list[FakeMessage]:
    """The data as input messages, each on its key's partition (murmur2, as the publishers
    and the processor choose it)."""
    return [
        FakeMessage(
            topics.consent if ev.consent else topics.changes,
            partition_for(ev.key, PARTITIONS),
            i,
            ev.key,
            ev.value,
        )
        for i, ev in enumerate(data)
    ]


def run_in_memory(
    handler: BusHandler, topics: Topics, messages: Sequence[FakeMessage]
) -> tuple[float, list[list[Output]]]:
    """Feed ``messages`` through ``handler`` in batches as the loop does (outputs, batch end,
    table writes), no Kafka; (events/s, the outputs of each message)."""
    tables = Tables(topics.state, topics.districts)
    outputs: list[list[Output]] = []
    started = time.perf_counter()
    for start in range(0, len(messages), BATCH):
        for msg in messages[start : start + BATCH]:
            outputs.append(handler.handle(msg, tables))
        handler.on_batch_end(tables)
        tables.take_changes()
    return len(messages) / (time.perf_counter() - started), outputs


def drop_run(
    conn: Connection, prefix: str, note: Callable[[str], None], group_wait_s: float = 90.0
) -> None:
    """Delete the topics, registry subjects and consumer groups under ``prefix``. A group
    whose static members (the processor's) have not yet timed out of it cannot be deleted:
    tried again for up to ``group_wait_s``."""
    drop_prefix(conn, prefix)
    admin = AdminClient(conn.kafka_config())
    try:
        listed = admin.list_consumer_groups(request_timeout=30).result()
    except Exception as exc:  # clean-up must not hide the results
        note(f"could not list the consumer groups: {exc}")
        return
    pending = [g.group_id for g in listed.valid if g.group_id.startswith(prefix)]
    deadline = time.monotonic() + group_wait_s
    while pending:
        failed: dict[str, str] = {}
        for group, future in admin.delete_consumer_groups(pending, request_timeout=30).items():
            try:
                future.result()
            except Exception as exc:  # NON_EMPTY_GROUP until its static members expire
                failed[group] = str(exc)
        pending = sorted(failed)
        if not pending:
            return
        if time.monotonic() >= deadline:
            note(f"could not delete the consumer groups {pending}: {failed[pending[0]]}")
            return
        note(f"waiting for {len(pending)} consumer group(s) to empty before deleting them")
        time.sleep(10)
