"""Every topic the bus creates, its cleanup and retention, and why: the one place they are set.

A cluster's broker defaults are nobody's decision (Kafka deletes after 7 days unless told
otherwise, and tombstones on compacted topics vanish after 24 h), so every topic states each
setting its purpose depends on as a topic-level override:

==========================  =======  ===============================  ==========================
topic                       cleanup  retention                        why
==========================  =======  ===============================  ==========================
consent.events              delete   forever                          the parents' decisions
audit.disclosures           delete   forever                          record of disclosures
partner.<id>.notices        delete   forever                          what a partner was told
partner.<id>.acks           delete   forever                          that it deleted (proof)
partner.<id>.students       compact  tombstones >= a vendor outage    a vendor learns deletions
hallpass.processor.state    compact  (latest per key)                 the processor's tables
hallpass.processor.districts compact (latest per key)                 the global table
hallpass.acl.principals     compact  (latest per key)                 who ``acl apply`` manages
sis.student.changes         delete   bounded (7 days)                 raw records
sis.student.changes.dlq     delete   bounded (14 days)                raw records, for repair
sis.student.changes.dlq.replayed compact (latest per key)             replay exactly once
hallpass.processor.repartition delete short (3 days)                  raw records in transit
==========================  =======  ===============================  ==========================

The topics vendors read (and the acknowledgements they write) are stored gzip-compressed
(``compression.type=gzip``, the broker recompresses what the processor writes with lz4): gzip
is the one codec every mainstream client reads without a plugin (kafkajs reads no other), see
the vendor guide.

Replication factor and ``min.insync.replicas`` come from :class:`TopicSettings`, resolved once
from the environment (or flags) by the command; the default is the cluster's own default
(``replication_factor=-1`` when creating a topic, no ``min.insync.replicas`` override).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from streams.errors import HallpassError
from streams.kafka.names import DEFAULT_TOPICS, Topics, TopicSpec

ENV_REPLICATION_FACTOR = "HALLPASS_REPLICATION_FACTOR"
ENV_MIN_INSYNC_REPLICAS = "HALLPASS_MIN_INSYNC_REPLICAS"
ENV_TOMBSTONE_RETENTION_DAYS = "HALLPASS_TOMBSTONE_RETENTION_DAYS"
ENV_CHANGES_RETENTION_DAYS = "HALLPASS_CHANGES_RETENTION_DAYS"
ENV_DLQ_RETENTION_DAYS = "HALLPASS_DLQ_RETENTION_DAYS"
ENV_REPARTITION_RETENTION_HOURS = "HALLPASS_REPARTITION_RETENTION_HOURS"

HOUR_MS = 3_600_000
DAY_MS = 24 * HOUR_MS
#: retention.ms / retention.bytes of a topic kept forever
FOREVER = "-1"


class TopicSettingsError(HallpassError, ValueError):
    """A topic setting from the environment or a flag is not usable; the message says which."""


@dataclass(frozen=True)
class TopicSettings:
    """The configurable part of the topics' settings.

    - ``replication_factor``: replicas of every topic the bus creates; -1 (default) is the
      cluster's ``default.replication.factor``.
    - ``min_insync_replicas``: set on every topic when given; None keeps the cluster's.
    - ``tombstone_retention_days``: how long a deletion (tombstone) stays on a partner topic
      after compaction: at least the longest time a vendor may be offline and still learn
      of every deletion (``delete.retention.ms``).
    - ``changes_retention_days``, ``dlq_retention_days``, ``repartition_retention_hours``: the
      bounded life of raw student records on the change topic, its dead-letter topic and the
      processor's repartition topic.
    """

    replication_factor: int = -1
    min_insync_replicas: int | None = None
    tombstone_retention_days: int = 30
    changes_retention_days: int = 7
    dlq_retention_days: int = 14
    repartition_retention_hours: int = 72

    def __post_init__(self) -> None:
        problems = []
        if self.replication_factor != -1 and not 1 <= self.replication_factor <= 32767:
            problems.append(
                f"replication factor {self.replication_factor}: use -1 (the "
                "cluster's default) or a number of replicas from 1"
            )
        if self.min_insync_replicas is not None:
            if self.min_insync_replicas < 1:
                problems.append(f"min.insync.replicas {self.min_insync_replicas}: use 1 or more")
            elif 0 < self.replication_factor < self.min_insync_replicas:
                problems.append(
                    f"min.insync.replicas {self.min_insync_replicas} is more than the "
                    f"replication factor {self.replication_factor}: no write could succeed"
                )
        for name in (
            "tombstone_retention_days",
            "changes_retention_days",
            "dlq_retention_days",
            "repartition_retention_hours",
        ):
            if getattr(self, name) < 1:
                problems.append(f"{name.replace('_', ' ')}: must be at least 1")
        if problems:
            raise TopicSettingsError("; ".join(problems))

    @property
    def tombstone_retention_ms(self) -> int:
        return self.tombstone_retention_days * DAY_MS


#: the defaults: the cluster's replication, 30 days of tombstones
DEFAULT_TOPIC_SETTINGS = TopicSettings()

_ENV_FIELDS = (
    (ENV_REPLICATION_FACTOR, "replication_factor"),
    (ENV_MIN_INSYNC_REPLICAS, "min_insync_replicas"),
    (ENV_TOMBSTONE_RETENTION_DAYS, "tombstone_retention_days"),
    (ENV_CHANGES_RETENTION_DAYS, "changes_retention_days"),
    (ENV_DLQ_RETENTION_DAYS, "dlq_retention_days"),
    (ENV_REPARTITION_RETENTION_HOURS, "repartition_retention_hours"),
)


def topic_settings_from(
    env: Mapping[str, str], overrides: Mapping[str, int | None] | None = None
) -> TopicSettings:
    """The settings of the environment (``HALLPASS_REPLICATION_FACTOR``, ...), with the given
    flags (field name -> value, None: not given) on top. Called once by a command."""
    values: dict[str, int | None] = {}
    for variable, name in _ENV_FIELDS:
        raw = env.get(variable, "").strip()
        if not raw:
            continue
        try:
            values[name] = int(raw)
        except ValueError:
            raise TopicSettingsError(f"{variable}={raw!r} is not a whole number") from None
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return TopicSettings(**values)  # type: ignore[arg-type]


class Role(StrEnum):
    """What a topic is for; its policy follows."""

    CHANGES = "changes"
    CHANGES_DLQ = "changes_dlq"
    CONSENT = "consent"
    AUDIT = "audit"
    STATE = "state"
    DISTRICTS = "districts"
    REPARTITION = "repartition"
    PARTNER = "partner"
    NOTICES = "notices"
    ACKS = "acks"
    CHANGES_DLQ_REPLAYED = "changes_dlq_replayed"
    ACL_PRINCIPALS = "acl_principals"


@dataclass(frozen=True)
class TopicPolicy:
    """The cleanup and retention of one kind of topic, and the reason for them."""

    role: Role
    pattern: str  # the topic name, or its form for partner topics
    cleanup: str  # "delete" | "compact"
    retention: str  # for people: how long records stay
    why: str
    single_partition: bool = False


POLICIES: tuple[TopicPolicy, ...] = (
    TopicPolicy(
        Role.CONSENT,
        "consent.events",
        "delete",
        "forever",
        "the parents' consents and opt-outs are their legal record (34 CFR 99.30) and "
        "a student's status depends on every event: never compacted, never expired",
    ),
    TopicPolicy(
        Role.AUDIT,
        "audit.disclosures",
        "delete",
        "forever",
        "the record of disclosures is kept as long as the education record (34 CFR 99.32)",
    ),
    TopicPolicy(
        Role.NOTICES,
        "partner.<id>.notices",
        "delete",
        "forever",
        "proof of what each partner was told to delete (Ed Law 2-d: return or destroy)",
    ),
    TopicPolicy(
        Role.ACKS,
        "partner.<id>.acks",
        "delete",
        "forever",
        "the partner's acknowledgement of each deletion notice, written by its vendor "
        "alone: the proof that it deleted (Ed Law 2-d), kept as long as the notices",
    ),
    TopicPolicy(
        Role.PARTNER,
        "partner.<id>.students",
        "compact",
        f"latest view per student; tombstones kept {ENV_TOMBSTONE_RETENTION_DAYS} "
        "(default 30 days)",
        "a vendor reads the current view of each student; a vendor offline for up to "
        "the tombstone retention still learns of every deletion",
    ),
    TopicPolicy(
        Role.STATE,
        "hallpass.processor.state",
        "compact",
        "latest per key",
        "the processor's per-partition tables (restored at start)",
    ),
    TopicPolicy(
        Role.DISTRICTS,
        "hallpass.processor.districts",
        "compact",
        "latest per key",
        "the global table every worker follows (district opt-outs, secret fingerprints)",
        single_partition=True,
    ),
    TopicPolicy(
        Role.ACL_PRINCIPALS,
        "hallpass.acl.principals",
        "compact",
        "latest per key",
        "the principals `hallpass acl apply` manages",
        single_partition=True,
    ),
    TopicPolicy(
        Role.CHANGES,
        "sis.student.changes",
        "delete",
        f"{ENV_CHANGES_RETENTION_DAYS} (default 7 days)",
        "raw student records, the most sensitive topic: kept only long enough to "
        "outlast an outage of the processor",
    ),
    TopicPolicy(
        Role.CHANGES_DLQ,
        "sis.student.changes.dlq",
        "delete",
        f"{ENV_DLQ_RETENTION_DAYS} (default 14 days)",
        "records the processor could not decide (never-share fields stripped when "
        "decodable, raw otherwise): kept for an operator to repair and replay, then "
        "gone; readable only by the admin, like the change topic",
        single_partition=True,
    ),
    TopicPolicy(
        Role.CHANGES_DLQ_REPLAYED,
        "sis.student.changes.dlq.replayed",
        "compact",
        "latest per key",
        "one marker per replayed dead letter (keyed by its DLQ position), so `hallpass dlq "
        "replay` writes each record back once; holds no student data; admin only, like the "
        "DLQ",
        single_partition=True,
    ),
    TopicPolicy(
        Role.REPARTITION,
        "hallpass.processor.repartition",
        "delete",
        f"{ENV_REPARTITION_RETENTION_HOURS} (default 72 hours)",
        "raw records forwarded to their student's partition, read within seconds; "
        "kept over a weekend outage of the processor and no longer",
    ),
)

_BY_ROLE = {policy.role: policy for policy in POLICIES}


#: the codec of the topics vendors read: every mainstream client (kafkajs too) reads gzip
VENDOR_COMPRESSION = "gzip"


def policy_of(role: Role) -> TopicPolicy:
    return _BY_ROLE[role]


def topic_config(role: Role, settings: TopicSettings) -> dict[str, str]:
    """The topic-level configuration of a topic with this role."""
    policy = _BY_ROLE[role]
    config = {"cleanup.policy": policy.cleanup}
    if policy.retention == "forever":
        config |= {"retention.ms": FOREVER, "retention.bytes": FOREVER}
    elif role is Role.PARTNER:
        config["delete.retention.ms"] = str(settings.tombstone_retention_ms)
    elif role is Role.CHANGES:
        config |= {
            "retention.ms": str(settings.changes_retention_days * DAY_MS),
            "retention.bytes": FOREVER,
        }
    elif role is Role.CHANGES_DLQ:
        config |= {
            "retention.ms": str(settings.dlq_retention_days * DAY_MS),
            "retention.bytes": FOREVER,
        }
    elif role is Role.REPARTITION:
        config |= {
            "retention.ms": str(settings.repartition_retention_hours * HOUR_MS),
            "retention.bytes": FOREVER,
        }
    if role in (Role.PARTNER, Role.NOTICES, Role.ACKS):
        config["compression.type"] = VENDOR_COMPRESSION
    if settings.min_insync_replicas is not None:
        config["min.insync.replicas"] = str(settings.min_insync_replicas)
    return config


def spec(role: Role, name: str, partitions: int, settings: TopicSettings) -> TopicSpec:
    policy = _BY_ROLE[role]
    return TopicSpec(
        name,
        1 if policy.single_partition else partitions,
        topic_config(role, settings),
        settings.replication_factor,
        policy.why,
    )


def bus_topic_specs(
    partitions: int = 3,
    topics: Topics = DEFAULT_TOPICS,
    settings: TopicSettings = DEFAULT_TOPIC_SETTINGS,
) -> list[TopicSpec]:
    """The topics of the bus itself (not a partner's), as the processor creates them."""
    names = {
        Role.CHANGES: topics.changes,
        Role.CONSENT: topics.consent,
        Role.AUDIT: topics.audit,
        Role.CHANGES_DLQ: topics.changes_dlq,
        Role.STATE: topics.state,
        Role.DISTRICTS: topics.districts,
        Role.REPARTITION: topics.repartition,
        Role.CHANGES_DLQ_REPLAYED: topics.changes_dlq_replayed,
    }
    return [spec(role, name, partitions, settings) for role, name in names.items()]


def partner_topic_specs(
    partners: Iterable[tuple[str, str]],
    partitions: int = 3,
    topics: Topics = DEFAULT_TOPICS,
    settings: TopicSettings = DEFAULT_TOPIC_SETTINGS,
) -> list[TopicSpec]:
    """Each partner's three topics (its view, its deletion notices, its acknowledgements);
    ``partners`` are (partner id, its students topic under the deployment's prefix)."""
    specs = []
    for partner, students_topic in partners:
        specs.append(spec(Role.PARTNER, students_topic, partitions, settings))
        specs.append(spec(Role.NOTICES, topics.notices(partner), partitions, settings))
        specs.append(spec(Role.ACKS, topics.acks(partner), partitions, settings))
    return specs


@dataclass(frozen=True)
class TopicDrift:
    """One setting of an existing topic that differs from its spec."""

    topic: str
    key: str
    want: str
    found: str

    def fix(self, bootstrap: str) -> str:
        if self.key == "replication.factor":
            return (
                f"reassign its partitions to {self.want} replicas "
                "(kafka-reassign-partitions.sh --increase-replication-factor)"
            )
        if self.key == "partitions":
            return "see `hallpass process` for partition counts"
        command = (
            f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type "
            f"topics --entity-name {self.topic} --add-config {self.key}={self.want} "
            "(or `hallpass topics check --fix`)"
        )
        if self.key == "cleanup.policy" and "compact" in self.found and self.want == "delete":
            command += (
                "; records compaction already removed do not come back: re-record "
                "them from their source (for consents, the signed documents)"
            )
        return command

    def __str__(self) -> str:
        found = self.found if self.found else "(not set)"
        return f"{self.topic}: {self.key} is {found}, should be {self.want}"


def drift(
    specs: Sequence[TopicSpec],
    configs: Mapping[str, Mapping[str, str]],
    replicas: Mapping[str, int],
) -> list[TopicDrift]:
    """Which settings of the existing topics (``configs``: topic -> its effective config,
    ``replicas``: topic -> its replication factor) differ from ``specs``. Topics that do not
    exist are left out (they will be created right)."""
    found: list[TopicDrift] = []
    for s in specs:
        if s.name not in configs:
            continue
        have = configs[s.name]
        for key, want in sorted(s.config.items()):
            if have.get(key) != want:
                found.append(TopicDrift(s.name, key, want, have.get(key, "")))
        if (
            s.replication_factor > 0
            and replicas.get(s.name, s.replication_factor) != s.replication_factor
        ):
            found.append(
                TopicDrift(
                    s.name, "replication.factor", str(s.replication_factor), str(replicas[s.name])
                )
            )
    return found
