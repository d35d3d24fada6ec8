"""Partner isolation on the real secure broker: a vendor's principal reads its own partner
topic and nothing else; it cannot write, create or delete topics, nor join another vendor's
group; a client without credentials, or with a wrong password, gets nowhere."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from typing import Any

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

from streams.config import Connection
from streams.kafka.names import (
    AUDIT,
    CHANGES,
    CHANGES_DLQ,
    CONSENT,
    acks_topic,
    notices_topic,
    partner_topic,
)
from streams.security.acl_plan import DEFAULT_ROLES
from streams.security.client_settings import read_properties
from tests.eventually import eventually
from tests.integration.conftest import SecureBus

pytestmark = pytest.mark.kafka

LEARNWELL, MEASURELY = "learnwell", "measurely"
OWN_TOPIC, OWN_NOTICES = partner_topic(LEARNWELL), notices_topic(LEARNWELL)
OTHER_NOTICES = notices_topic(MEASURELY)
REFUSED_TOPICS = [
    partner_topic(MEASURELY),
    OTHER_NOTICES,
    partner_topic("carewell-health"),
    CHANGES,
    CONSENT,
    AUDIT,
    CHANGES_DLQ,
]


def vendor(bus: SecureBus, partner: str = LEARNWELL) -> Connection:
    return bus.stack.connection(bus.properties[partner])


def first_error_or_record(consumer: Consumer, timeout_s: float = 20.0) -> tuple[str, bytes]:
    """(error name, b"") of the first error the consumer meets, or ("", value) of the first
    record it reads."""

    def outcome() -> tuple[str, bytes] | None:
        msg = consumer.poll(0.5)
        if msg is None:
            return None
        err = msg.error()
        if err is None:
            return "", msg.value() or b""
        if err.code() != KafkaError._PARTITION_EOF:
            return str(err.name()), b""
        return None

    return eventually(outcome, timeout_s, "neither a record nor an error", interval_s=0)


def subscribed(conn: Connection, topic: str, group: str) -> Consumer:
    consumer = Consumer(
        conn.kafka_config(
            {
                "group.id": group,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "log_level": 0,
            }
        )
    )
    consumer.subscribe([topic])
    return consumer


@pytest.fixture(scope="module")
def own_record(secure_bus: SecureBus) -> bytes:
    """A record on learnwell's notices topic and on measurely's, written by the admin (not a
    deletion notice: `vendor pull` skips it and says so)."""
    value = f"only for learnwell {uuid.uuid4()}".encode()
    producer = Producer(secure_bus.stack.connection().kafka_config({"log_level": 0}))
    for topic in (OWN_NOTICES, OTHER_NOTICES):
        for partition in range(3):
            producer.produce(topic, key=b"k", value=value, partition=partition)
    assert producer.flush(30) == 0
    return value


def test_vendor_reads_its_own_topics_in_its_own_group(
    secure_bus: SecureBus, own_record: bytes
) -> None:
    consumer = Consumer(
        vendor(secure_bus).kafka_config(
            {
                "group.id": f"{LEARNWELL}-t-{uuid.uuid4().hex[:6]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
                "enable.partition.eof": True,
                "log_level": 0,
            }
        )
    )
    consumer.subscribe([OWN_TOPIC, OWN_NOTICES])
    pending = {(t, p) for t in (OWN_TOPIC, OWN_NOTICES) for p in range(3)}
    values, errors = [], []

    def read_all() -> bool:
        msg = consumer.poll(0.5)
        if msg is not None:
            err = msg.error()
            if err is None:
                values.append(msg.value())
            elif err.code() == KafkaError._PARTITION_EOF:
                pending.discard((msg.topic(), msg.partition()))
            else:
                errors.append(err.name())
        return not pending

    try:
        eventually(
            read_all,
            60,
            lambda: f"partitions not read to the end: {sorted(pending)} (errors: {errors})",
            interval_s=0,
        )
        consumer.commit(asynchronous=False)  # its own group: committing is allowed too
    finally:
        consumer.close()
    assert (errors, pending) == ([], set())
    assert values.count(own_record) == 3


@pytest.mark.parametrize("topic", REFUSED_TOPICS)
def test_vendor_cannot_read_any_other_topic(
    secure_bus: SecureBus, own_record: bytes, topic: str
) -> None:
    # its own group, so that only the topic can be the reason
    consumer = subscribed(vendor(secure_bus), topic, f"{LEARNWELL}-t-{uuid.uuid4().hex[:6]}")
    try:
        error, value = first_error_or_record(consumer)
    finally:
        consumer.close()
    assert (error, value) == ("TOPIC_AUTHORIZATION_FAILED", b"")
    metadata = (
        AdminClient(vendor(secure_bus).kafka_config({"log_level": 0}))
        .list_topics(topic, timeout=30)
        .topics[topic]
    )
    assert metadata.error is not None and metadata.error.name() == "TOPIC_AUTHORIZATION_FAILED"
    assert not metadata.partitions


def test_vendor_sees_only_its_own_topics_in_the_metadata(
    secure_bus: SecureBus, own_record: bytes
) -> None:
    admin = AdminClient(vendor(secure_bus).kafka_config({"log_level": 0}))
    visible = {t for t in admin.list_topics(timeout=30).topics if not t.startswith("__")}
    assert visible == {OWN_TOPIC, OWN_NOTICES, acks_topic(LEARNWELL)}


@pytest.mark.parametrize("topic", [OWN_TOPIC, partner_topic(MEASURELY), CHANGES, CONSENT, AUDIT])
def test_vendor_cannot_produce(secure_bus: SecureBus, topic: str) -> None:
    errors: list[str] = []

    def delivered(err: KafkaError | None, _msg: Any) -> None:
        errors.append(err.name() if err else "delivered")

    producer = Producer(
        vendor(secure_bus).kafka_config(
            {
                "enable.idempotence": False,
                "acks": "all",
                "message.timeout.ms": 20000,
                "log_level": 0,
            }
        )
    )
    producer.produce(topic, key=b"k", value=b"forged by a vendor", on_delivery=delivered)
    producer.flush(30)
    assert errors == ["TOPIC_AUTHORIZATION_FAILED"]


@pytest.mark.parametrize(
    ("role", "refused"),
    [
        (DEFAULT_ROLES.sis_connector, CONSENT),
        (DEFAULT_ROLES.consent_source, CHANGES),
    ],
)
def test_sis_connector_and_consent_source_cannot_write_each_others_topic(
    secure_bus: SecureBus, role: str, refused: str
) -> None:
    """An SIS integration cannot forge consents, nor the consent source student records
    (that each writes its own topic is what the secure flow does)."""
    results: dict[str, str] = {}

    def delivered(err: KafkaError | None, msg: Any) -> None:
        results[msg.topic()] = err.name() if err else "delivered"

    conn = secure_bus.stack.connection(secure_bus.role(role))
    producer = Producer(
        conn.kafka_config(
            {
                "enable.idempotence": False,
                "acks": "all",
                "message.timeout.ms": 20000,
                "log_level": 0,
            }
        )
    )
    producer.produce(refused, key=b"isolation-probe", value=b"not avro", on_delivery=delivered)
    producer.flush(30)
    assert results == {refused: "TOPIC_AUTHORIZATION_FAILED"}


def test_vendor_writes_only_its_acknowledgements(secure_bus: SecureBus) -> None:
    """The vendor may write its acks topic alone (which lets its idempotent producer start:
    Write on a topic implies IdempotentWrite); a record to its view topic is refused."""
    producer = Producer(
        vendor(secure_bus).kafka_config(
            {"enable.idempotence": True, "message.timeout.ms": 15000, "log_level": 0}
        )
    )
    errors: list[str] = []

    def delivered(err: Any, _msg: Any) -> None:
        errors.append(err.name() if err is not None else "ok")

    producer.produce(OWN_TOPIC, value=b"x", on_delivery=delivered)
    producer.flush(30)
    assert errors == ["TOPIC_AUTHORIZATION_FAILED"]


def _admin_error(futures: Mapping[str, Any]) -> list[str]:
    names = []
    for future in futures.values():
        try:
            future.result()
            names.append("done")
        except KafkaException as exc:
            names.append(exc.args[0].name())
    return names


def test_vendor_cannot_create_or_delete_topics(secure_bus: SecureBus) -> None:
    admin = AdminClient(vendor(secure_bus).kafka_config({"log_level": 0}))
    created = admin.create_topics(
        [NewTopic("partner.learnwell.extra", 1, 1), NewTopic("t.vendor.made", 1, 1)],
        operation_timeout=20,
    )
    assert _admin_error(created) == ["TOPIC_AUTHORIZATION_FAILED"] * 2
    deleted = admin.delete_topics([OWN_TOPIC, CHANGES], operation_timeout=20)
    assert _admin_error(deleted) == ["TOPIC_AUTHORIZATION_FAILED"] * 2
    still = AdminClient(secure_bus.stack.connection().kafka_config()).list_topics(timeout=30)
    assert {OWN_TOPIC, CHANGES} <= set(still.topics)
    assert "t.vendor.made" not in still.topics


@pytest.mark.parametrize("group", [f"{MEASURELY}-vendor", "hallpass-processor", "other-app"])
def test_vendor_cannot_join_another_group(
    secure_bus: SecureBus, own_record: bytes, group: str
) -> None:
    consumer = subscribed(vendor(secure_bus), OWN_TOPIC, group)
    try:
        error, value = first_error_or_record(consumer)
    finally:
        consumer.close()
    assert (error, value) == ("GROUP_AUTHORIZATION_FAILED", b"")


def _refused(config: dict[str, Any]) -> list[str]:
    """The client errors of a metadata request made with ``config`` (which must fail)."""
    errors: list[str] = []
    config.update({"error_cb": lambda err: errors.append(err.name()), "log_level": 0})
    admin = AdminClient(config)
    with pytest.raises(KafkaException):
        admin.list_topics(timeout=8)
    admin.poll(1)  # serves the error callback
    return errors


def test_unauthenticated_clients_are_refused(secure_bus: SecureBus) -> None:
    bootstrap = secure_bus.stack.bootstrap
    _refused({"bootstrap.servers": bootstrap})  # no TLS, no SASL
    # TLS with the right CA, but no SASL: the broker waits for a SASL handshake in vain
    _refused(
        {
            "bootstrap.servers": bootstrap,
            "security.protocol": "SSL",
            "ssl.ca.location": str(secure_bus.stack.ca_file),
            "socket.timeout.ms": 5000,
        }
    )


@pytest.mark.parametrize("user", [LEARNWELL, "nobody"])
def test_a_wrong_password_is_refused(secure_bus: SecureBus, user: str) -> None:
    props = dict(read_properties(secure_bus.properties[LEARNWELL]))
    props.update({"sasl.username": user, "sasl.password": "not-the-password-at-all"})
    errors = _refused({"bootstrap.servers": secure_bus.stack.bootstrap, **props})
    assert "_AUTHENTICATION" in errors
