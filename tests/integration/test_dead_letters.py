"""Bad input on the change topic: dead-lettered with its reason and origin, the rest goes on;
a broken upstream (most events invalid) halts the processor with a clear error."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Producer
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import ENV_BOOTSTRAP, ENV_REGISTRY, Connection
from streams.kafka.admin import ensure_topics
from streams.kafka.names import ENV_TOPIC_PREFIX, Topics, TopicSpec
from streams.kafka.wire import WireDecoder, WireEncoder
from streams.policy.catalog import load_schema, schema_dir
from streams.processor.app import apply_contracts
from tests.kafka_helpers import read_topic

pytestmark = pytest.mark.kafka

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"


def _process(bus: Connection, topics: Topics, tmp: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.update(
        {
            ENV_BOOTSTRAP: bus.bootstrap_servers,
            ENV_REGISTRY: bus.schema_registry_url,
            ENV_TOPIC_PREFIX: topics.prefix,
        }
    )
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "--data-dir",
            str(tmp),
            "process",
            "--until-idle",
            "--contracts",
            str(CONTRACTS),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )


def _setup(bus: Connection, tmp: Path) -> tuple[Topics, Producer]:
    topics = Topics(f"t.dlq.{uuid.uuid4().hex[:8]}.")
    apply_contracts(bus, CONTRACTS, topics, secrets_file=tmp / "partner-secrets.json")
    ensure_topics(bus, [TopicSpec(topics.changes, 3), TopicSpec(topics.consent, 3)])
    return topics, Producer(bus.kafka_config({"partitioner": "murmur2_random"}))


def test_undecodable_event_is_dead_lettered_and_processing_goes_on(
    bus: Connection, tmp_path: Path
) -> None:
    topics, producer = _setup(bus, tmp_path)
    good = json.loads(
        (schema_dir() / "examples" / "student_record_changed.upsert.json").read_text()
    )
    encoder = WireEncoder(
        SchemaRegistryClient(bus.registry_config()),
        f"{topics.changes}-value",
        load_schema("student_record_changed"),
    )
    producer.produce(topics.changes, key=b"NY-BAD-1", value=b"\x07this is not avro")
    producer.produce(topics.changes, key=good["student_id"].encode(), value=encoder.encode(good))
    assert producer.flush(30) == 0

    run = _process(bus, topics, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "1 dead letters" in run.stdout

    dead = read_topic(bus, topics.changes_dlq)
    assert [d.value for d in dead] == [b"\x07this is not avro"]
    headers = dead[0].headers
    assert b"magic byte 7" in headers["hallpass.dlq.reason"]
    assert headers["hallpass.dlq.topic"] == topics.changes.encode()
    assert headers["hallpass.dlq.offset"].isdigit()
    assert dead[0].key == b"NY-BAD-1"
    learnwell = read_topic(bus, topics.name("partner.learnwell.students"))
    assert len([r for r in learnwell if r.value is not None]) == 1  # the good event went on


def test_mostly_invalid_input_halts_with_a_clear_error(bus: Connection, tmp_path: Path) -> None:
    topics, producer = _setup(bus, tmp_path)
    for i in range(300):
        producer.produce(topics.changes, key=f"NY-{i}".encode(), value=b"garbage: bad deploy")
    assert producer.flush(30) == 0
    run = _process(bus, topics, tmp_path)
    assert run.returncode == 1
    assert "events were invalid" in run.stderr and "fix the producer" in run.stderr
    # it stopped instead of dead-lettering everything
    assert len(read_topic(bus, topics.changes_dlq)) < 300


def test_decodable_dead_letters_hold_no_never_share_value_and_name_the_field(
    bus: Connection, tmp_path: Path
) -> None:
    """A record keyed by another student (decodable, invalid) and a record written with a
    schema of its own whose first_name is an int (it decodes, then would crash the view
    encoder): both dead-lettered with never-share fields stripped, the reason naming the field
    and not its value; the processor goes on."""
    topics, producer = _setup(bus, tmp_path)
    registry = SchemaRegistryClient(bus.registry_config())
    good = json.loads(
        (schema_dir() / "examples" / "student_record_changed.upsert.json").read_text()
    )
    schema = load_schema("student_record_changed")
    encoder = WireEncoder(registry, f"{topics.changes}-value", schema)
    foreign = json.loads(json.dumps(schema))
    names = next(f for f in foreign["fields"] if f["name"] == "names")
    first = next(f for f in names["type"][1]["fields"] if f["name"] == "first_name")
    first["type"] = ["null", "long"]
    odd = WireEncoder(registry, f"{topics.prefix}someone-else-value", foreign)
    wrong_type = {
        **good,
        "student_id": "NY-ODD-1",
        "names": {**good["names"], "first_name": 4815162342},
    }
    producer.produce(topics.changes, key=b"NY-SOMEONE-ELSE", value=encoder.encode(good))
    producer.produce(topics.changes, key=b"NY-ODD-1", value=odd.encode(wrong_type))
    producer.produce(topics.changes, key=good["student_id"].encode(), value=encoder.encode(good))
    assert producer.flush(30) == 0

    run = _process(bus, topics, tmp_path)
    assert run.returncode == 0, run.stderr
    assert "4815162342" not in run.stdout + run.stderr

    dead = sorted(read_topic(bus, topics.changes_dlq), key=lambda d: d.key or b"")
    assert [d.key for d in dead] == [b"NY-ODD-1", b"NY-SOMEONE-ELSE"]
    secrets = [v.encode() for v in good["restricted"].values()]
    decoder = WireDecoder(registry)
    for record in dead:
        assert record.value is not None
        assert not [s for s in secrets if s in record.value], "never-share values dead-lettered"
        assert decoder.decode(record.value)["restricted"] == dict.fromkeys(good["restricted"])
    reason = dead[0].headers["hallpass.dlq.reason"]
    assert b"names.first_name" in reason and b"4815162342" not in reason
    learnwell = read_topic(bus, topics.name("partner.learnwell.students"))
    assert len([r for r in learnwell if r.value is not None]) == 1  # the good event went on
