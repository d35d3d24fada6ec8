"""`hallpass acl apply` on the real secure broker: a retired contract's vendor loses its
access, an unchanged plan changes nothing, a dry run changes nothing, a hand-made grant on the
bus is taken back while what hallpass does not manage is left alone."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient

from streams.config import Connection
from streams.kafka.names import AUDIT, partner_topic
from streams.security.acl_apply import broker_acls, create_rules, to_filter
from streams.security.acl_plan import AclRule
from tests.eventually import eventually
from tests.integration.conftest import CONTRACTS, SecureBus, SecureStack

pytestmark = pytest.mark.kafka

RETIRED = "measurely"


def acls(stack: SecureStack) -> list[AclRule]:
    return broker_acls(AdminClient(stack.connection().kafka_config({"log_level": 0})))


def read_outcome(conn: Connection, topic: str, group: str, timeout_s: float = 30.0) -> str:
    """ "record" if the consumer reads a record of ``topic``, else the first error's name."""
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": group,
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "log_level": 0,
            }
        )
    )
    consumer.subscribe([topic])

    def outcome() -> str | None:
        msg = consumer.poll(0.5)
        if msg is None:
            return None
        err = msg.error()
        if err is None:
            return "record"
        if err.code() != KafkaError._PARTITION_EOF:
            return str(err.name())
        return None

    try:
        return eventually(outcome, timeout_s, f"no record and no error on {topic}", interval_s=0)
    finally:
        consumer.close()


@pytest.fixture
def without_retired(secure_bus: SecureBus, tmp_path: Path) -> Iterator[Path]:
    """deploy/contracts without the retired partner's contract; the full set is re-applied
    afterwards, so the other tests keep their bus."""
    retired = tmp_path / "contracts"
    shutil.copytree(CONTRACTS, retired)
    (retired / f"{RETIRED}.yaml").unlink()
    try:
        yield retired
    finally:
        secure_bus.stack.hallpass("acl", "apply", "--contracts", str(CONTRACTS))


@pytest.fixture(scope="module")
def retired_topic_has_a_record(secure_bus: SecureBus) -> None:
    producer = Producer(secure_bus.stack.connection().kafka_config({"log_level": 0}))
    for partition in range(3):
        producer.produce(partner_topic(RETIRED), key=b"k", value=b"a record", partition=partition)
    assert producer.flush(30) == 0


def test_retiring_a_contract_removes_the_vendors_access(
    secure_bus: SecureBus, without_retired: Path, retired_topic_has_a_record: None
) -> None:
    stack = secure_bus.stack
    vendor = stack.connection(secure_bus.properties[RETIRED])
    group = f"{RETIRED}-t-{uuid.uuid4().hex[:6]}"
    assert read_outcome(vendor, partner_topic(RETIRED), group) == "record"

    applied = stack.hallpass("acl", "apply", "--contracts", str(without_retired))
    removed = [line for line in applied.stdout.splitlines() if line.startswith("removed")]
    assert removed and not any(line.startswith("added") for line in applied.stdout.splitlines())
    assert any(
        f"User:{RETIRED}" in line and f"TOPIC:{partner_topic(RETIRED)}" in line for line in removed
    )
    # the processor no longer writes the retired partner's topic either
    assert any(
        "User:hallpass-processor" in line and f"partner.{RETIRED}." in line for line in removed
    )
    left = acls(stack)
    assert not [r for r in left if r.principal == f"User:{RETIRED}"]
    assert not [r for r in left if f"partner.{RETIRED}." in r.resource_name]

    assert read_outcome(vendor, partner_topic(RETIRED), group) in (
        "TOPIC_AUTHORIZATION_FAILED",
        "GROUP_AUTHORIZATION_FAILED",
    )
    # the others keep theirs
    learnwell = AdminClient(
        stack.connection(secure_bus.properties["learnwell"]).kafka_config({"log_level": 0})
    )
    own = learnwell.list_topics("partner.learnwell.students", timeout=30).topics
    assert own["partner.learnwell.students"].error is None

    again = stack.hallpass("acl", "apply", "--contracts", str(without_retired))
    assert "nothing changed" in again.stdout
    assert acls(stack) == left


def test_unchanged_plan_changes_nothing(secure_bus: SecureBus) -> None:
    before = acls(secure_bus.stack)
    again = secure_bus.stack.hallpass("acl", "apply", "--contracts", str(CONTRACTS))
    assert again.stdout.strip().endswith("nothing changed")
    assert "added" not in again.stdout and "removed" not in again.stdout
    assert acls(secure_bus.stack) == before


def test_dry_run_changes_nothing(secure_bus: SecureBus, without_retired: Path) -> None:
    before = acls(secure_bus.stack)
    dry = secure_bus.stack.hallpass(
        "acl", "apply", "--dry-run", "--contracts", str(without_retired)
    )
    assert "would remove" in dry.stdout and "dry run, nothing changed" in dry.stdout
    assert acls(secure_bus.stack) == before


def test_hand_made_grants_on_the_bus_are_taken_back(secure_bus: SecureBus) -> None:
    stack = secure_bus.stack
    snoop = AclRule("User:snoop", "TOPIC", "LITERAL", AUDIT, "READ")
    wildcard = AclRule("User:ops", "TOPIC", "LITERAL", "*", "DESCRIBE")
    unrelated = AclRule("User:other-app", "TOPIC", "LITERAL", "other.app.topic", "READ")
    deny = AclRule(
        "User:learnwell", "TOPIC", "LITERAL", "partner.learnwell.notices", "READ", permission="DENY"
    )
    create_rules(
        stack.connection().kafka_config({"log_level": 0}), [snoop, wildcard, unrelated, deny]
    )
    try:
        applied = stack.hallpass("acl", "apply", "--contracts", str(CONTRACTS))
        removed = [line for line in applied.stdout.splitlines() if line.startswith("removed")]
        assert len(removed) == 1 and "User:snoop" in removed[0]
        assert "User:ops" in applied.stderr and "warning" in applied.stderr
        left = set(acls(stack))
        assert snoop not in left and {wildcard, unrelated, deny} <= left
    finally:
        admin = AdminClient(stack.connection().kafka_config({"log_level": 0}))
        for future in admin.delete_acls(
            [to_filter(r) for r in (wildcard, unrelated, deny)], request_timeout=30
        ).values():
            future.result()
