"""The processor depends on nothing anyone else registers: it compiles each partner view from
the contracts and looks the schema up by its exact content, so a newer version someone else
registered under a partner's subject (or under the audit subject) is never used and never
stops it."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from streams.config import Connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import Topics, TopicSpec
from streams.kafka.wire import WireEncoder
from streams.policy.catalog import load_schema, schema_dir
from streams.processor.app import ProcessorSetupError, apply_contracts, build_handler
from tests.kafka_helpers import read_topic
from tests.processor_helpers import drop_prefix, hallpass

pytestmark = pytest.mark.kafka

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"


@pytest.fixture
def topics(bus: Connection) -> Iterator[Topics]:
    found = Topics(f"t.reg.{uuid.uuid4().hex[:8]}.")
    try:
        yield found
    finally:
        drop_prefix(bus, found.prefix)


def test_a_foreign_version_under_a_partner_subject_changes_nothing(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    secrets = tmp_path / "partner-secrets.json"
    applied = {a.partner: a for a in apply_contracts(bus, CONTRACTS, topics, secrets_file=secrets)}
    registry = SchemaRegistryClient(bus.registry_config())
    learnwell = applied["learnwell"]
    subject = learnwell.subject
    # someone else registers a newer version: the view plus a field of its own (compatible)
    ours = json.loads(registry.get_version(subject, "latest").schema.schema_str or "{}")
    foreign = {
        **ours,
        "fields": [*ours["fields"], {"name": "leak", "type": ["null", "string"], "default": None}],
    }
    foreign_id = registry.register_schema(subject, Schema(json.dumps(foreign), "AVRO"))
    assert foreign_id != learnwell.schema_id
    # and an incompatible one under the audit subject
    registry.set_compatibility(f"{topics.audit}-value", "NONE")
    registry.register_schema(
        f"{topics.audit}-value",
        Schema(
            json.dumps(
                {"type": "record", "name": "Garbage", "fields": [{"name": "x", "type": "int"}]}
            ),
            "AVRO",
        ),
    )

    keys = {p: bytes.fromhex(h) for p, h in json.loads(secrets.read_text()).items()}
    handler = build_handler(bus, CONTRACTS, keys, topics)  # starts
    route = next(r for r in handler.routes if r.partner == "learnwell")
    assert "leak" not in {f["name"] for f in route.view.schema["fields"]}

    ensure_topics(bus, [TopicSpec(topics.changes, 3), TopicSpec(topics.consent, 3)])
    record = json.loads(
        (schema_dir() / "examples" / "student_record_changed.upsert.json").read_text()
    )
    encoder = WireEncoder(
        registry, f"{topics.changes}-value", load_schema("student_record_changed")
    )
    producer = Producer(bus.kafka_config({"partitioner": "murmur2_random"}))
    producer.produce(
        topics.changes, key=record["student_id"].encode(), value=encoder.encode(record)
    )
    assert producer.flush(30) == 0
    hallpass(
        bus,
        topics,
        tmp_path,
        "process",
        "--until-idle",
        "--contracts",
        str(CONTRACTS),
        "--partner-secrets",
        str(secrets),
    )
    [sent] = [r.value for r in read_topic(bus, topics.partner("learnwell")) if r.value is not None]
    assert int.from_bytes(sent[1:5], "big") == learnwell.schema_id, (
        "the record was written with another schema than the one apply registered"
    )


def test_a_view_not_applied_refuses_to_start_with_what_to_do(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    secrets = tmp_path / "partner-secrets.json"
    applied = apply_contracts(bus, CONTRACTS, topics, secrets_file=secrets)
    registry = SchemaRegistryClient(bus.registry_config())
    subject = next(a.subject for a in applied if a.partner == "measurely")
    registry.delete_subject(subject)
    registry.delete_subject(subject, permanent=True)
    keys = {p: bytes.fromhex(h) for p, h in json.loads(secrets.read_text()).items()}
    with pytest.raises(ProcessorSetupError, match="contracts apply"):
        build_handler(bus, CONTRACTS, keys, topics)
