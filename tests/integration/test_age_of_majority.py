"""Consent provenance and the age of majority on the real broker (issue 19; FERPA 34 CFR
99.30, 99.5), driven as a privacy officer would: ``hallpass consent grant`` and ``hallpass
process --until-idle --frozen-clock`` (the processor's clock set past the birthday with no
event to carry it).

A student with a guardian's consent for the health partner is shared with it; when the
processor's clock passes the student's 18th birthday the partner gets a tombstone and a
deletion notice, and the ledger records why (MAJORITY_REACHED); the school-official partners
keep the student; the student's own grant brings the view back. A grant without its
provenance is refused by the CLI and dead-lettered by the processor.
"""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from connectors.source.publisher import EventPublisher
from streams.config import Connection
from streams.kafka.names import Topics
from streams.kafka.wire import WireDecoder
from streams.policy.consent import ConsentEvent, ConsentKind
from streams.policy.decision import partner_key
from tests.kafka_helpers import decode_all, latest_by_key, read_topic
from tests.processor_helpers import cli_env, hallpass

pytestmark = pytest.mark.kafka

REPO = Path(__file__).resolve().parents[2]
CONTRACTS = REPO / "deploy" / "contracts"
CAREWELL, LEARNWELL = "carewell-health", "learnwell"
DISTRICT = "NY-280201"
STUDENT, UNSIGNED = "NY-990000001", "NY-990000002"
BORN = date(2008, 10, 15)
BIRTHDAY = "2026-10-15T00:00:00Z"  # the 18th, midnight UTC


def ms(text: str) -> int:
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def record(student: str) -> dict[str, Any]:
    base = json.loads((REPO / "schemas/examples/student_record_changed.upsert.json").read_text())
    value: dict[str, Any] = copy.deepcopy(base)
    value.update(
        event_id=f"chg-{student}",
        student_id=student,
        district_id=DISTRICT,
        occurred_at=ms("2026-09-01T10:00:00Z"),
    )
    value["demographics"]["birth_date"] = (BORN - date(1970, 1, 1)).days
    return value


def grant_args(student: str, *provenance: str, effective: str) -> list[str]:
    return [
        "consent",
        "grant",
        "--student",
        student,
        "--district",
        DISTRICT,
        "--partner",
        CAREWELL,
        "--category",
        "student_name",
        "--category",
        "special_medical",
        "--category",
        "special_iep_504",
        "--effective-at",
        effective,
        *provenance,
    ]


def process(bus: Connection, topics: Topics, data_dir: Path, clock: str) -> None:
    hallpass(
        bus,
        topics,
        data_dir,
        "process",
        "--until-idle",
        "--contracts",
        str(CONTRACTS),
        "--frozen-clock",
        str(ms(clock)),
    )


def held(bus: Connection, topics: Topics, partner: str, key: bytes) -> dict[str, Any] | None:
    """What the partner's compacted topic holds under ``key`` (None: a tombstone or nothing)."""
    value = latest_by_key(read_topic(bus, topics.partner(partner))).get(key)
    if value is None:
        return None
    decoded: dict[str, Any] = WireDecoder(SchemaRegistryClient(bus.registry_config())).decode(value)
    return decoded


def test_a_student_turning_18_loses_the_guardian_consent_data_until_a_student_grant(
    bus: Connection, topics: Topics, tmp_path: Path
) -> None:
    hallpass(bus, topics, tmp_path, "contracts", "apply", "--contracts", str(CONTRACTS))
    secrets = json.loads((tmp_path / "partner-secrets.json").read_text())
    key = partner_key(STUDENT, bytes.fromhex(secrets[CAREWELL])).encode()
    learnwell_key = partner_key(STUDENT, bytes.fromhex(secrets[LEARNWELL])).encode()
    change = record(STUDENT)
    guardian = change["guardians"][0]["guardian_id"]
    publisher = EventPublisher(
        bus, {topics.changes: "student_record_changed", topics.consent: "consent_changed"}
    )
    publisher.publish(topics.changes, STUDENT, change)
    publisher.publish(topics.changes, UNSIGNED, record(UNSIGNED))
    # a grant without provenance, as another system might publish it
    unsigned = ConsentEvent(
        "grant-without-provenance",
        ConsentKind.GRANT,
        DISTRICT,
        ms("2026-09-01T00:00:00Z"),
        UNSIGNED,
        CAREWELL,
        frozenset({"student_name"}),
        recorded_by="another-system",
        source_system="another-system",
    )
    publisher.publish(topics.consent, UNSIGNED, unsigned.to_avro())
    publisher.close()
    # the records first, decided before any grant is published: which of the two input
    # topics a processor reads first is not fixed, so the ledger's history would not be
    process(bus, topics, tmp_path, "2026-09-02T00:00:00Z")

    # the CLI refuses a guardian's grant that does not name the guardian, publishing nothing
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "streams",
            "--data-dir",
            str(tmp_path),
            *grant_args(
                STUDENT,
                "--granted-by",
                "guardian",
                "--signed-at",
                "2026-08-28",
                "--method",
                "paper",
                "--document-ref",
                "scan-1",
                effective="2026-09-01",
            ),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env=cli_env(bus, topics),
        check=False,
    )
    assert refused.returncode == 2 and "--guardian-id" in refused.stderr, refused.stderr
    hallpass(
        bus,
        topics,
        tmp_path,
        *grant_args(
            STUDENT,
            "--granted-by",
            "guardian",
            "--guardian-id",
            guardian,
            "--signed-at",
            "2026-08-28",
            "--method",
            "paper",
            "--document-ref",
            "scan-1",
            effective="2026-09-01",
        ),
    )
    consents = decode_all(bus, read_topic(bus, topics.consent))
    assert len(consents) == 2, "the refused grant was published"

    # a minor: the guardian's consent counts
    process(bus, topics, tmp_path, "2026-09-02T00:00:00Z")
    view = held(bus, topics, CAREWELL, key)
    assert view is not None and view["names"] is not None and view["special"] is not None
    [dead] = [r for r in read_topic(bus, topics.changes_dlq) if r.key == UNSIGNED.encode()]
    reason = dead.headers["hallpass.dlq.reason"].decode()
    assert "GRANT without provenance" in reason and "granted_by" in reason, reason
    assert (
        held(
            bus, topics, CAREWELL, partner_key(UNSIGNED, bytes.fromhex(secrets[CAREWELL])).encode()
        )
        is None
    )

    # the day before the birthday nothing changes; at midnight UTC of it, with no event, the
    # rights are the student's: the partner must delete what the guardian's consent allowed
    process(bus, topics, tmp_path, "2026-10-14T23:59:59Z")
    assert held(bus, topics, CAREWELL, key) is not None
    process(bus, topics, tmp_path, BIRTHDAY)
    assert held(bus, topics, CAREWELL, key) is None, "no tombstone at the 18th birthday"
    notices = [
        n
        for n in decode_all(bus, read_topic(bus, topics.notices(CAREWELL)))
        if n["partner_student_key"] == key.decode()
    ]
    assert [n["reason"] for n in notices] == ["MAJORITY_REACHED"]
    ledger = [
        d
        for d in decode_all(bus, read_topic(bus, topics.audit))
        if d["student_id"] == STUDENT and d["partner"] == CAREWELL
    ]
    assert [(d["decision"], d["reason"]) for d in ledger] == [
        ("WITHHELD", "NO_CONSENT"),
        ("DISCLOSED", None),
        ("RETRACTED", "MAJORITY_REACHED"),
    ]
    # school-official and directory data do not rest on consent: learnwell keeps the student
    assert held(bus, topics, LEARNWELL, learnwell_key) is not None

    # the student's own grant brings the data back
    hallpass(
        bus,
        topics,
        tmp_path,
        *grant_args(
            STUDENT,
            "--granted-by",
            "student",
            "--signed-at",
            "2026-10-16",
            "--method",
            "portal",
            "--document-ref",
            "portal-submission-7",
            effective="2026-10-16",
        ),
    )
    process(bus, topics, tmp_path, "2026-10-17T00:00:00Z")
    back = held(bus, topics, CAREWELL, key)
    assert back is not None and back["names"] is not None and back["special"] is not None
    granted = [c for c in decode_all(bus, read_topic(bus, topics.consent)) if c["granted_by"]]
    assert sorted((c["granted_by"], c["guardian_id"], c["method"]) for c in granted) == [
        ("ELIGIBLE_STUDENT", None, "PORTAL"),
        ("GUARDIAN", guardian, "PAPER"),
    ]
