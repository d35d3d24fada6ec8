"""Topic names of the bus and their creation (idempotent)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)
from confluent_kafka.cimpl import NewTopic

from streams.config import Connection

CHANGES = "sis.student.changes"
CONSENT = "consent.events"
AUDIT = "audit.disclosures"
CHANGES_DLQ = "sis.student.changes.dlq"
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


@dataclass(frozen=True)
class Topics:
    """The names the bus uses, under an optional prefix (empty: the names above)."""

    prefix: str = ""

    def __post_init__(self) -> None:
        if not _PREFIX.match(self.prefix):
            raise ValueError(f"topic prefix {self.prefix!r}: use at most 100 letters, digits, "
                             "'.', '_' or '-'")

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


#: The unprefixed names.
DEFAULT_TOPICS = Topics()


def topics_from(env: Mapping[str, str]) -> Topics:
    """The topic names of the environment's deployment (``HALLPASS_TOPIC_PREFIX``)."""
    return Topics(env.get(ENV_TOPIC_PREFIX, "").strip())


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: its topic-level configuration, its replication factor (-1: the
    cluster's default) and why it is configured so. The bus's own topics come from
    :mod:`streams.topic_policy`, the one place their retention is decided."""

    name: str
    partitions: int = 3
    config: Mapping[str, str] = field(default_factory=dict)
    replication_factor: int = -1
    why: str = ""


COMPACTED: Mapping[str, str] = {"cleanup.policy": "compact"}


def ensure_topics(
    conn: Connection, specs: Iterable[TopicSpec], timeout_s: float = 30.0
) -> list[str]:
    """Create the topics that do not exist yet; return the names created."""
    admin = AdminClient(conn.kafka_config())
    existing = set(admin.list_topics(timeout=timeout_s).topics)
    wanted = [
        NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor,
                 config=dict(s.config))
        for s in specs
        if s.name not in existing
    ]
    if not wanted:
        return []
    created: list[str] = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout_s).items():
        try:
            future.result()
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    _await_metadata(admin, [t.topic for t in wanted], timeout_s)
    return created


def _await_metadata(admin: AdminClient, names: list[str], timeout_s: float) -> None:
    """Wait (bounded) until the broker's metadata has a leader for every partition of the
    topics just created: the controller acknowledges a creation before the brokers know it,
    and a describe or produce in between finds no such topic."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = admin.list_topics(timeout=timeout_s).topics
        if all(n in found and found[n].error is None and found[n].partitions
               and all(p.leader >= 0 for p in found[n].partitions.values()) for n in names):
            return
        time.sleep(0.1)


def describe_topics(conn: Connection, names: Iterable[str], timeout_s: float = 30.0,
                    ) -> tuple[dict[str, dict[str, str]], dict[str, int]]:
    """The effective configuration and the replication factor of each existing topic among
    ``names`` (topics that do not exist are left out)."""
    admin = AdminClient(conn.kafka_config())
    wanted = list(names)
    configs: dict[str, dict[str, str]] = {}
    if wanted:
        futures = admin.describe_configs(
            [ConfigResource(ResourceType.TOPIC, n) for n in wanted], request_timeout=timeout_s)
        for resource, future in futures.items():
            try:
                entries = future.result()
            except KafkaException as exc:
                if exc.args[0].name() == "UNKNOWN_TOPIC_OR_PART":
                    continue
                raise
            configs[resource.name] = {k: e.value for k, e in entries.items()
                                      if e.value is not None}
    found = admin.list_topics(timeout=timeout_s).topics
    replicas = {n: min((len(p.replicas) for p in found[n].partitions.values()), default=0)
                for n in configs if n in found}
    return configs, replicas


def alter_topic_configs(conn: Connection, changes: Mapping[str, Mapping[str, str]],
                        timeout_s: float = 30.0) -> None:
    """Set the given topic-level settings (topic -> {key: value}) on existing topics,
    leaving their other settings as they are."""
    if not changes:
        return
    admin = AdminClient(conn.kafka_config())
    resources = [
        ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            for key, value in sorted(settings.items())])
        for topic, settings in changes.items()
    ]
    for future in admin.incremental_alter_configs(resources,
                                                  request_timeout=timeout_s).values():
        future.result()


def partition_counts(conn: Connection, names: Iterable[str],
                     timeout_s: float = 30.0) -> dict[str, int]:
    """The number of partitions of each existing topic among ``names``."""
    admin = AdminClient(conn.kafka_config())
    found = admin.list_topics(timeout=timeout_s).topics
    return {name: len(found[name].partitions) for name in names if name in found}
