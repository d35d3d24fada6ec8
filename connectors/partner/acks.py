"""Proof of deletion on the bus: the partners' deletion notices and acknowledgements read
(``read_committed``, to the end), acknowledgements written, and the outstanding ones served as
Prometheus metrics. The join itself is pure: :mod:`streams.policy.retractions`.

- :func:`read_retractions`: every notice of the given partners joined with their acks
  (``hallpass retractions``; the auditor's principal may read both topics).
- :class:`AckWriter`: what ``hallpass vendor pull`` uses to acknowledge a notice after its
  local delete is committed (the vendor's principal may write its acks topic, nothing else).
- :class:`AckWatcher` and :class:`AckCollector`: ``hallpass lag-exporter --deletion-acks``
  follows the topics incrementally and serves ``hallpass_deletion_acks_outstanding`` and
  ``hallpass_deletion_ack_oldest_outstanding_seconds`` per partner.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, Message, Producer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from streams.config import Connection
from streams.errors import HallpassError
from streams.kafka.names import Topics
from streams.kafka.read_to_end import read_to_end, topic_partitions
from streams.kafka.wire import WireDecoder, WireEncoder, WireFormatError
from streams.policy.catalog import load_schema
from streams.policy.retractions import Ack, Join, Notice, Outstanding, join, outstanding_by_partner

#: the auditor's groups (acl_plan.AUDITOR_GROUP_PREFIX); reads assign, never commit
READER_GROUP_PREFIX = "hallpass-disclosures-retractions-"


class AcksUnavailableError(HallpassError, RuntimeError):
    """The acknowledgements cannot be read or written; the message says what to do."""


def _partner_of(topic: str, topics: Topics, suffix: str) -> str | None:
    found = re.fullmatch(re.escape(topics.name("partner.")) + r"(.+)\." + suffix, topic)
    return found.group(1) if found else None


def partners_with_notices(consumer: Consumer, topics: Topics, timeout_s: float = 30.0) -> list[str]:
    """Every partner whose notices topic exists under the deployment's prefix."""
    names = consumer.list_topics(timeout=timeout_s).topics
    found = {_partner_of(t, topics, "notices") for t in names}
    return sorted(p for p in found if p)


def _reader(conn: Connection) -> Consumer:
    return Consumer(
        conn.kafka_config(
            {
                "group.id": READER_GROUP_PREFIX + uuid.uuid4().hex[:8],
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
                "enable.partition.eof": True,
            }
        )
    )


def notice_of(partner: str, value: Mapping[str, Any]) -> Notice:
    return Notice(
        partner,
        str(value["event_id"]),
        str(value["partner_student_key"]),
        str(value["reason"]),
        int(value["retracted_at"]),
        tuple(value.get("categories") or ()),
        tuple(value.get("fields") or ()),
    )


def ack_of(partner: str, value: Mapping[str, Any]) -> Ack:
    return Ack(
        partner,
        str(value["notice_id"]),
        str(value["partner_student_key"]),
        int(value["deleted_at"]),
        str(value["partner"]),
    )


class _Follower:
    """Reads the notices and acks topics of every partner from where it last stopped to their
    current end (``read_committed``), decoding through the registry."""

    def __init__(self, conn: Connection, topics: Topics, partners: Iterable[str] = ()) -> None:
        self.conn = conn
        self.topics = topics
        self.only = sorted(partners)
        registry = SchemaRegistryClient(conn.registry_config())
        self.notice_decoder = WireDecoder(registry, reader_schema=load_schema("deletion_notice"))
        self.ack_decoder = WireDecoder(registry, reader_schema=load_schema("deletion_ack"))
        #: (topic, partition) -> next offset to read
        self.positions: dict[tuple[str, int], int] = {}
        self.notices: list[Notice] = []
        self.acks: list[Ack] = []
        self.partners: list[str] = []

    def catch_up(self, timeout_s: float = 120.0) -> None:
        consumer = _reader(self.conn)
        try:
            self.partners = self.only or partners_with_notices(consumer, self.topics)
            assignment = []
            for partner in self.partners:
                for topic in (self.topics.notices(partner), self.topics.acks(partner)):
                    numbers = topic_partitions(consumer, topic)
                    if numbers is None:
                        if topic == self.topics.notices(partner) and self.only:
                            raise AcksUnavailableError(
                                f"{topic} does not exist: is {partner!r} a partner of this "
                                "deployment (`hallpass contracts apply` creates its topics)?"
                            )
                        continue
                    for p in numbers:
                        tp = TopicPartition(topic, p)
                        low, high = consumer.get_watermark_offsets(tp, timeout=30)
                        start = max(self.positions.get((topic, p), low), low)
                        if high > start:
                            assignment.append(TopicPartition(topic, p, start))
            for msg in read_to_end(consumer, assignment, timeout_s):
                self._take(msg)
        finally:
            consumer.close()

    def _take(self, msg: Message) -> None:
        topic, partition, offset = msg.topic() or "", msg.partition() or 0, msg.offset() or 0
        self.positions[(topic, partition)] = offset + 1
        value = msg.value()
        if value is None:
            return
        notice_partner = _partner_of(topic, self.topics, "notices")
        if notice_partner is not None:
            self.notices.append(notice_of(notice_partner, self.notice_decoder.decode(value)))
            return
        ack_partner = _partner_of(topic, self.topics, "acks")
        if ack_partner is not None:
            try:
                self.acks.append(ack_of(ack_partner, self.ack_decoder.decode(value)))
            except Exception:  # an undecodable ack proves nothing; it is not ours to repair
                return

    def joined(self) -> Join:
        return join(self.notices, self.acks)


def read_retractions(
    conn: Connection, topics: Topics, partners: Iterable[str] = (), timeout_s: float = 120.0
) -> tuple[Join, list[str]]:
    """Every notice of ``partners`` (default: every partner with a notices topic) with its
    acknowledgement; and the partners read."""
    follower = _Follower(conn, topics, partners)
    follower.catch_up(timeout_s)
    return follower.joined(), follower.partners


# -- writing acknowledgements (the vendor) -----------------------------------------------


class AckSchemaMissing(HallpassError, LookupError):
    """The acknowledgement schema is not registered for this partner's acks topic."""


class AckWriter:
    """Acknowledges notices on ``partner.<id>.acks`` (idempotent producer, acks=all)."""

    def __init__(self, conn: Connection, topics: Topics, partner: str) -> None:
        self.partner = partner
        self.topic = topics.acks(partner)
        registry = SchemaRegistryClient(conn.registry_config())
        subject = f"{self.topic}-value"
        # a vendor's registry credentials are read-only: `contracts apply` registered the
        # schema, and the latest version is read (a lookup is a POST, refused to readers)
        try:
            self.encoder = WireEncoder.latest(registry, subject)
        except WireFormatError as exc:
            raise AckSchemaMissing(
                f"no acknowledgement schema is registered under {subject} ({exc}): the "
                "district's admin registers it with `hallpass contracts apply`"
            ) from exc
        self.producer = Producer(
            conn.kafka_config({"enable.idempotence": True, "acks": "all", "linger.ms": 20})
        )
        self._failed: list[str] = []

    def ack(self, notice: Mapping[str, Any], deleted_at_ms: int, note: str | None = None) -> None:
        """Acknowledge one notice (as decoded from the notices topic)."""
        key = str(notice["partner_student_key"])
        value = {
            "notice_id": str(notice["event_id"]),
            "partner": self.partner,
            "partner_student_key": key,
            "deleted_at": deleted_at_ms,
            "note": note,
        }
        self.producer.produce(
            self.topic, key=key.encode(), value=self.encoder.encode(value), on_delivery=self._done
        )
        self.producer.poll(0)

    def _done(self, err: Any, _msg: Message) -> None:
        if err is not None:
            self._failed.append(str(err))

    def flush(self, timeout_s: float = 60.0) -> None:
        """Wait until every acknowledgement is written; raise if any was not."""
        left = self.producer.flush(timeout_s)
        if left or self._failed:
            problem = self._failed[0] if self._failed else f"{left} not delivered in {timeout_s}s"
            raise AcksUnavailableError(
                f"could not acknowledge on {self.topic}: {problem} (the principal needs WRITE "
                "on it: `hallpass acl plan`; the next pull acknowledges again)"
            )


# -- the exporter ------------------------------------------------------------------------


@dataclass(frozen=True)
class AckSnapshot:
    """The outstanding acknowledgements per partner after one round."""

    outstanding: Mapping[str, Outstanding]
    stray: int


class AckWatcher:
    """Follows every partner's notices and acks incrementally, a round every interval; a
    failed round keeps the last figures (an outstanding notice stays outstanding) and logs."""

    def __init__(
        self,
        connect: Callable[[], Connection],
        topics: Topics,
        note: Callable[[str], None],
        partners: Iterable[str] = (),
    ) -> None:
        self.connect = connect
        self.topics = topics
        self.note = note
        self.partners = list(partners)
        self.latest: AckSnapshot | None = None
        self._follower: _Follower | None = None
        self._failing = False

    def sample(self) -> AckSnapshot | None:
        try:
            if self._follower is None:
                self._follower = _Follower(self.connect(), self.topics, self.partners)
            self._follower.catch_up()
            joined = self._follower.joined()
            self.latest = AckSnapshot(
                outstanding_by_partner(joined.retractions, self._follower.partners),
                len(joined.stray),
            )
            if self._failing:
                self.note("deletion acks: reading the notices and acks again")
            self._failing = False
        except Exception as exc:  # a round that fails is a log line, never a crash
            if not self._failing:
                self.note(f"deletion acks: {type(exc).__name__}: {exc}; keeping the last figures")
            self._failing = True
        return self.latest

    def run(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            self.sample()
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))


class AckCollector(Collector):
    """The outstanding acknowledgements of the last round; ages against the wall clock at
    scrape time (they grow between rounds, as they do)."""

    def __init__(
        self,
        latest: Callable[[], AckSnapshot | None],
        now_ms: Callable[[], int] = lambda: int(time.time() * 1000),
    ) -> None:
        self.latest = latest
        self.now_ms = now_ms

    def collect(self) -> Iterator[Metric]:
        snapshot = self.latest()
        if snapshot is None:
            return
        now = self.now_ms()
        count = GaugeMetricFamily(
            "hallpass_deletion_acks_outstanding",
            "Deletion notices the partner has not acknowledged (partner.<id>.acks).",
            labels=["partner"],
        )
        oldest = GaugeMetricFamily(
            "hallpass_deletion_ack_oldest_outstanding_seconds",
            "Age of the partner's oldest unacknowledged deletion notice, from the UTC day it "
            "was sent (0: none outstanding).",
            labels=["partner"],
        )
        for partner, o in snapshot.outstanding.items():
            count.add_metric([partner], o.count)
            oldest.add_metric([partner], o.oldest_age_s(now))
        stray = GaugeMetricFamily(
            "hallpass_deletion_acks_stray",
            "Acknowledgements that name no notice of their partner (they prove nothing).",
            value=snapshot.stray,
        )
        yield from (count, oldest, stray)
