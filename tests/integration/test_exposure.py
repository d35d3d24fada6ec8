"""`hallpass exposure` on the real bus (issue 19): what a partner held at a breach time, from
the ledger, equals an independent reading of the partner topic as it stood then; later
retractions do not change the answer for that time but do for now; letters for each family."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from streams.config import Connection
from streams.kafka.names import Topics
from streams.kafka.wire import WireDecoder
from tests.kafka_helpers import latest_by_key, read_topic
from tests.processor_helpers import hallpass

pytestmark = pytest.mark.kafka

CONTRACTS = Path(__file__).resolve().parents[2] / "deploy" / "contracts"
ENVELOPE = {"partner_student_key", "event_id", "occurred_at", "contract_version"}


def leaves(value: Any, prefix: str = "") -> set[str]:
    """The paths of the non-null leaves of a decoded view (lists of records as a[].b)."""
    if isinstance(value, dict):
        return {
            p
            for k, v in value.items()
            if not (prefix == "" and k in ENVELOPE)
            for p in leaves(v, f"{prefix}{k}.")
        }
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return {p for v in value for p in leaves(v, prefix[:-1] + "[].")}
    return set() if value is None or value == [] else {prefix[:-1]}


def held_on_topic(conn: Connection, topic: str) -> dict[str, set[str]]:
    decoder = WireDecoder(SchemaRegistryClient(conn.registry_config()))
    return {
        key.decode(): leaves(decoder.decode(value))
        for key, value in latest_by_key(read_topic(conn, topic)).items()
        if value is not None
    }


def exposure(
    conn: Connection, topics: Topics, work: Path, partner: str, *args: str
) -> dict[str, set[str]]:
    out = json.loads(
        hallpass(
            conn, topics, work, "exposure", "--partner", partner, "--format", "json", *args
        ).stdout
    )
    return {row["partner_student_key"]: set(row["fields"]) for row in out["students"]}


def test_exposure_at_a_breach_time_is_what_the_partner_topic_held_then(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    hallpass(bus, topics, tmp_path, "contracts", "apply", "--contracts", str(CONTRACTS))
    hallpass(bus, topics, tmp_path, "simulate", "--students", "80", "--days", "4", "--seed", "19")
    hallpass(bus, topics, tmp_path, "process", "--until-idle", "--contracts", str(CONTRACTS))
    breach = time.time()
    then = held_on_topic(bus, topics.partner("learnwell"))
    assert len(then) > 20
    time.sleep(1.1)  # decisions after the breach have a later time
    students = json.loads(
        hallpass(
            bus, topics, tmp_path, "exposure", "--partner", "learnwell", "--format", "json"
        ).stdout
    )["students"]
    opted = sorted(students, key=lambda r: r["student_id"])[:5]
    for row in opted:
        hallpass(
            bus,
            topics,
            tmp_path,
            "consent",
            "opt-out",
            "--student",
            row["student_id"],
            "--district",
            row["district_id"],
        )
    hallpass(bus, topics, tmp_path, "process", "--until-idle", "--contracts", str(CONTRACTS))
    at_breach = exposure(
        bus,
        topics,
        tmp_path,
        "learnwell",
        "--as-of",
        time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(breach)),
    )
    assert at_breach == then
    now = exposure(bus, topics, tmp_path, "learnwell")
    assert now == held_on_topic(bus, topics.partner("learnwell"))
    assert set(then) - set(now) == {row["partner_student_key"] for row in opted}
    letters = tmp_path / "letters"
    hallpass(
        bus,
        topics,
        tmp_path,
        "exposure",
        "--partner",
        "learnwell",
        "--letters",
        str(letters),
        "--district-name",
        "Example CSD",
        "--contact",
        "dpo@example.org",
    )
    written = sorted(p.name for p in letters.iterdir())
    assert written == sorted(f"{r['student_id']}.html" for r in students if r not in opted)
    text = (letters / written[0]).read_text()
    assert "Example CSD" in text and "dpo@example.org" in text
    assert "your child&#x27;s name" in text  # its categories in plain words, escaped
    # the parent's report names the legitimate interest of each disclosure (99.32(a)(3))
    report = json.loads(
        hallpass(
            bus, topics, tmp_path, "disclosures", "--student", opted[0]["student_id"], "--json"
        ).stdout
    )
    disclosed = [r for r in report if r["decision"] == "DISCLOSED"]
    assert disclosed and all(
        r["purpose"].startswith(("rostering:", "assessment:", "health_services:"))
        for r in disclosed
    )
