"""Topic names of the bus, under an optional prefix, and what a topic to create is (pure:
no Kafka client here; :mod:`streams.kafka.admin` creates and configures them)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

CHANGES = "sis.student.changes"
CONSENT = "consent.events"
AUDIT = "audit.disclosures"
CHANGES_DLQ = "sis.student.changes.dlq"
#: one marker per replayed dead letter (``hallpass dlq replay``, streams/processor/dlq_tool.py)
CHANGES_DLQ_REPLAYED = CHANGES_DLQ + ".replayed"
PROCESSOR_STATE = "hallpass.processor.state"
PROCESSOR_DISTRICTS = "hallpass.processor.districts"
#: records that arrived on another partition than their student's, forwarded to it
PROCESSOR_REPARTITION = "hallpass.processor.repartition"
PROCESSOR_GROUP = "hallpass-processor"

#: Optional prefix of every topic, subject and processor group (one deployment or test run
#: among others on a shared cluster); read by the CLI, never at import time.
ENV_TOPIC_PREFIX = "HALLPASS_TOPIC_PREFIX"
_PREFIX = re.compile(r"^[A-Za-z0-9._-]{0,100}$")


def partner_topic(partner: str) -> str:
    return f"partner.{partner}.students"


def notices_topic(partner: str) -> str:
    return f"partner.{partner}.notices"


def acks_topic(partner: str) -> str:
    """Where the partner acknowledges each deletion notice (only its vendor writes it)."""
    return f"partner.{partner}.acks"


@dataclass(frozen=True)
class Topics:
    """The names the bus uses, under an optional prefix (empty: the names above)."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(
                f"topic prefix {self.prefix!r}: use at most 100 letters, digits, '.', '_' or '-'"
            )

    def name(self, topic: str) -> str:
        return self.prefix + topic

    @property
    def changes(self) -> str:
        return self.name(CHANGES)

    @property
    def consent(self) -> str:
        return self.name(CONSENT)

    @property
    def audit(self) -> str:
        return self.name(AUDIT)

    @property
    def changes_dlq(self) -> str:
        return self.name(CHANGES_DLQ)

    @property
    def changes_dlq_replayed(self) -> str:
        return self.name(CHANGES_DLQ_REPLAYED)

    @property
    def state(self) -> str:
        return self.name(PROCESSOR_STATE)

    @property
    def districts(self) -> str:
        return self.name(PROCESSOR_DISTRICTS)

    @property
    def repartition(self) -> str:
        return self.name(PROCESSOR_REPARTITION)

    @property
    def processor_group(self) -> str:
        return self.name(PROCESSOR_GROUP)

    def partner(self, partner: str) -> str:
        return self.name(partner_topic(partner))

    def notices(self, partner: str) -> str:
        return self.name(notices_topic(partner))

    def acks(self, partner: str) -> str:
        return self.name(acks_topic(partner))


#: The unprefixed names.
DEFAULT_TOPICS = Topics()


def topics_from(env: Mapping[str, str]) -> Topics:
    """The topic names of the environment's deployment (``HALLPASS_TOPIC_PREFIX``)."""
    return Topics(env.get(ENV_TOPIC_PREFIX, "").strip())


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its topic-level configuration, its replication factor (-1: the
    cluster's default) and why it is configured so. The bus's own topics come from
    :mod:`streams.policy.retention`, the one place their retention is decided."""

    name: str
    partitions: int = 3
    config: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int = -1
    why: str = ""


COMPACTED: Mapping[str, str] = {"cleanup.policy": "compact"}
