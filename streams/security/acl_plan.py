"""The Kafka ACLs that the contracts and the roles imply: a pure plan, no broker.

Deny by default; every principal gets exactly what its job needs:

- the SIS connector writes the change topic, and only it;
- the consent source (the district's consent records: ``hallpass consent``, a parent portal)
  writes the consent topic, and only it: an SIS integration cannot forge consents;
- the processor reads both, keeps its state changelogs, writes every partner's topic and
  notices topic, the audit ledger and the dead-letter topic, under its own consumer groups
  and transactional ids;
- each vendor (the ``principal`` of its contract) reads and describes its own partner topic
  and notices topic, writes (and describes) its own acknowledgements topic
  ``partner.<id>.acks`` and nothing else writes it (the proof of deletion is the vendor's
  word alone), and uses consumer groups named ``<partner>-...``; nothing else: it cannot
  read any acknowledgements, its own included;
- the auditor reads the audit ledger and every partner's notices and acknowledgements
  (``hallpass retractions``, the deletion acknowledgement metrics);
- the schema registry keeps its KafkaSQL storage topics.

The admin is a super user of the broker and needs no ACL; the dead-letter replay markers
(``sis.student.changes.dlq.replayed``, ``hallpass dlq replay``) are the admin's alone, like
the dead letters themselves. Every topic of the bus and the
processor's group and transactional ids take the deployment's topic prefix (:class:`Topics`);
vendor, auditor and registry groups are named by code that does not take it, so neither do
their ACLs.

Resource and operation names are Kafka's (``AclOperation``); the ``CLUSTER`` resource is
confluent-kafka's ``ResourceType.BROKER``, always named ``kafka-cluster``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import combinations

from streams.errors import HallpassError
from streams.kafka.names import DEFAULT_TOPICS, Topics
from streams.policy.contracts import Contract

TOPIC = "TOPIC"
GROUP = "GROUP"
TRANSACTIONAL_ID = "TRANSACTIONAL_ID"
CLUSTER = "CLUSTER"
LITERAL = "LITERAL"
PREFIXED = "PREFIXED"
ALLOW = "ALLOW"
CLUSTER_NAME = "kafka-cluster"

READ = "READ"
WRITE = "WRITE"
DESCRIBE = "DESCRIBE"
CREATE = "CREATE"
DESCRIBE_CONFIGS = "DESCRIBE_CONFIGS"
IDEMPOTENT_WRITE = "IDEMPOTENT_WRITE"

#: Suffix of the processor's group for restoring its tables (streams/processor/loop.py).
RESTORE_GROUP_SUFFIX = "-restore"
#: the consumer that follows the global table (district opt-outs) on every worker
GLOBAL_GROUP_SUFFIX = "-global"

#: The auditor's consumer groups: connectors/partner/auditor.py reads the ledger as
#: ``hallpass-disclosures-reader`` (a fixed name, not under the topic prefix).
AUDITOR_GROUP_PREFIX = "hallpass-disclosures-"

# Apicurio Registry 3 with KafkaSQL storage, defaults as of 3.3.1 (source:
# app/src/main/java/io/apicurio/registry/storage/impl/kafkasql/KafkaSqlConfiguration.java and
# KafkaSqlRegistryStorage.initialize() in the Apicurio/apicurio-registry repository; the
# Apicurio 3.1 migration guide names the same journal topic, kafkasql-journal):
# - apicurio.kafkasql.topic            = kafkasql-journal    (read and written)
# - apicurio.kafkasql.snapshots.topic  = kafkasql-snapshots  (read and written)
# - apicurio.events.kafka.topic        = registry-events     (written only, 1 partition)
# - apicurio.kafkasql.consumer.group-prefix = apicurio-; every consumer's group.id is this
#   prefix + a random UUID (a user-set group.id is ignored since 3.3), so only a prefix fits.
# - apicurio.kafkasql.topic.auto-create = true: at start it lists topics, creates the missing
#   ones (CREATE) and checks their configuration (DESCRIBE_CONFIGS).
# - its Java producers are idempotent by default (IDEMPOTENT_WRITE on the cluster).
# These are the defaults; `hallpass up --secure` also sets them explicitly. No topic prefix.
REGISTRY_JOURNAL_TOPIC = "kafkasql-journal"
REGISTRY_SNAPSHOTS_TOPIC = "kafkasql-snapshots"
REGISTRY_EVENTS_TOPIC = "registry-events"
REGISTRY_GROUP_PREFIX = "apicurio-"


@dataclass(frozen=True, order=True)
class AclRule:
    """One ACL binding: ``principal`` may do ``operation`` on the resource from ``host``."""

    principal: str  # "User:learnwell"
    resource_type: str  # "TOPIC" | "GROUP" | "TRANSACTIONAL_ID" | "CLUSTER"
    pattern_type: str  # "LITERAL" | "PREFIXED"
    resource_name: str
    operation: str  # Kafka AclOperation name: "READ", "WRITE", "IDEMPOTENT_WRITE", ...
    permission: str = ALLOW
    host: str = "*"


@dataclass(frozen=True)
class Roles:
    """The principal of each hallpass role (vendors' principals come from their contracts)."""

    admin: str = "User:admin"
    sis_connector: str = "User:hallpass-sis"
    consent_source: str = "User:hallpass-consent"
    processor: str = "User:hallpass-processor"
    auditor: str = "User:hallpass-auditor"
    registry: str = "User:hallpass-registry"

    def principals(self) -> tuple[str, ...]:
        return (
            self.admin,
            self.sis_connector,
            self.consent_source,
            self.processor,
            self.auditor,
            self.registry,
        )


#: The default principals.
DEFAULT_ROLES = Roles()


class AclPlanError(HallpassError, ValueError):
    """The contracts and roles cannot be isolated from each other; ``problems`` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def vendor_group_prefix(partner: str) -> str:
    """Every consumer group a vendor may use starts with this (``hallpass vendor pull``
    uses ``<partner>-vendor`` by default)."""
    return f"{partner}-"


def plan_acls(
    contracts: Sequence[Contract], topics: Topics = DEFAULT_TOPICS, roles: Roles = DEFAULT_ROLES
) -> list[AclRule]:
    """Every ACL the contracts and roles imply, sorted, without duplicates.

    Raises :class:`AclPlanError` when a vendor's rules would reach another principal's
    resources (see :func:`isolation_problems`).
    """
    problems = isolation_problems(contracts, topics, roles)
    if problems:
        raise AclPlanError(problems)
    rules: set[AclRule] = set()
    rules.update(sis_connector_rules(roles.sis_connector, topics))
    rules.update(consent_source_rules(roles.consent_source, topics))
    rules.update(processor_rules(roles.processor, contracts, topics))
    rules.update(auditor_rules(roles.auditor, topics, contracts))
    rules.update(registry_rules(roles.registry))
    for contract in contracts:
        rules.update(vendor_rules(contract, topics))
    return sorted(rules)


def partner_topics(contract: Contract, topics: Topics = DEFAULT_TOPICS) -> tuple[str, str]:
    """The contract's partner topic and notices topic under the deployment's prefix."""
    return topics.name(contract.topic), topics.notices(contract.partner)


def acks_topic_of(contract: Contract, topics: Topics = DEFAULT_TOPICS) -> str:
    """The contract's acknowledgements topic under the deployment's prefix."""
    return topics.acks(contract.partner)


def vendor_rules(contract: Contract, topics: Topics = DEFAULT_TOPICS) -> list[AclRule]:
    """Read and describe its own two topics; write its own acknowledgements (a Kafka 3+
    broker lets a producer with WRITE on a topic be idempotent: no cluster ACL); read (join,
    commit) its own groups."""
    who = contract.principal
    return [
        *_topic(who, partner_topics(contract, topics), READ, DESCRIBE),
        *_topic(who, (acks_topic_of(contract, topics),), WRITE, DESCRIBE),
        AclRule(who, GROUP, PREFIXED, vendor_group_prefix(contract.partner), READ),
    ]


def sis_connector_rules(principal: str, topics: Topics = DEFAULT_TOPICS) -> list[AclRule]:
    """Write (idempotently) the change topic; nothing else."""
    return [
        *_topic(principal, (topics.changes,), WRITE, DESCRIBE),
        _idempotent(principal),
    ]


def consent_source_rules(principal: str, topics: Topics = DEFAULT_TOPICS) -> list[AclRule]:
    """Write (idempotently) the consent topic; nothing else (DESIGN: the consent source has
    a principal of its own, and the SIS connector cannot write consents)."""
    return [
        *_topic(principal, (topics.consent,), WRITE, DESCRIBE),
        _idempotent(principal),
    ]


def processor_rules(
    principal: str, contracts: Sequence[Contract], topics: Topics = DEFAULT_TOPICS
) -> list[AclRule]:
    """Read the inputs, keep the state changelogs, write every output, transactionally."""
    group = topics.processor_group
    outputs = [topics.audit, topics.changes_dlq]
    for contract in contracts:
        outputs.extend(partner_topics(contract, topics))
    return [
        *_topic(principal, (topics.changes, topics.consent), READ, DESCRIBE),
        *_topic(
            principal, (topics.state, topics.districts, topics.repartition), READ, WRITE, DESCRIBE
        ),
        *_topic(principal, outputs, WRITE, DESCRIBE),
        AclRule(principal, GROUP, LITERAL, group, READ),
        AclRule(principal, GROUP, LITERAL, group + RESTORE_GROUP_SUFFIX, READ),
        AclRule(principal, GROUP, LITERAL, group + GLOBAL_GROUP_SUFFIX, READ),
        # run_processor: transactional.id = f"{processor_group}-{hostname}-{worker}"
        AclRule(principal, TRANSACTIONAL_ID, PREFIXED, f"{group}-", WRITE),
        AclRule(principal, TRANSACTIONAL_ID, PREFIXED, f"{group}-", DESCRIBE),
        _idempotent(principal),
    ]


def auditor_rules(
    principal: str, topics: Topics = DEFAULT_TOPICS, contracts: Sequence[Contract] = ()
) -> list[AclRule]:
    """Read the audit ledger (``hallpass disclosures``) and each partner's deletion notices
    and acknowledgements (``hallpass retractions``)."""
    proofs = [
        topic for c in contracts for topic in (topics.notices(c.partner), acks_topic_of(c, topics))
    ]
    return [
        *_topic(principal, (topics.audit, *proofs), READ, DESCRIBE),
        AclRule(principal, GROUP, PREFIXED, AUDITOR_GROUP_PREFIX, READ),
    ]


def registry_rules(principal: str) -> list[AclRule]:
    """The schema registry's KafkaSQL storage (see the notes on the defaults above)."""
    storage = (REGISTRY_JOURNAL_TOPIC, REGISTRY_SNAPSHOTS_TOPIC)
    return [
        *_topic(principal, storage, READ, WRITE, DESCRIBE, CREATE, DESCRIBE_CONFIGS),
        *_topic(principal, (REGISTRY_EVENTS_TOPIC,), WRITE, DESCRIBE, CREATE, DESCRIBE_CONFIGS),
        AclRule(principal, GROUP, PREFIXED, REGISTRY_GROUP_PREFIX, READ),
        _idempotent(principal),
    ]


def isolation_problems(
    contracts: Sequence[Contract], topics: Topics = DEFAULT_TOPICS, roles: Roles = DEFAULT_ROLES
) -> list[str]:
    """Why the plan could not keep the vendors apart (empty when it can).

    - Each vendor needs a principal of its own, none of the roles' principals.
    - A vendor's group prefix must not cover, nor be covered by, a group that another
      principal uses: partners ``learn`` and ``learn-well`` would share ``learn-well-vendor``;
      a partner ``apicurio`` could join the registry's groups.
    - A vendor's topics must not be a bus topic or another vendor's topic.
    """
    return [
        *_principal_clashes(contracts, roles),
        *_group_overlaps(contracts, topics),
        *_topic_clashes(contracts, topics),
    ]


def _principal_clashes(contracts: Sequence[Contract], roles: Roles) -> list[str]:
    role_of = {principal: role for role, principal in _role_principals(roles)}
    owner: dict[str, Contract] = {}
    problems = []
    for contract in contracts:
        if contract.principal in role_of:
            problems.append(
                f"partner {contract.partner}: principal {contract.principal} is the "
                f"{role_of[contract.principal]}'s; give the vendor a principal of its own"
            )
        first = owner.setdefault(contract.principal, contract)
        if first is not contract:
            problems.append(
                f"partners {first.partner} and {contract.partner} share the principal "
                f"{contract.principal}: each contract needs a principal of its own"
            )
    return problems


def _topic_clashes(contracts: Sequence[Contract], topics: Topics) -> list[str]:
    bus = {
        topics.changes,
        topics.consent,
        topics.audit,
        topics.changes_dlq,
        topics.state,
        topics.districts,
        topics.repartition,
        topics.changes_dlq_replayed,
        REGISTRY_JOURNAL_TOPIC,
        REGISTRY_SNAPSHOTS_TOPIC,
        REGISTRY_EVENTS_TOPIC,
    }
    owner: dict[str, str] = {}
    problems = []
    for contract in contracts:
        for topic in (*partner_topics(contract, topics), acks_topic_of(contract, topics)):
            if topic in bus:
                problems.append(f"partner {contract.partner}: {topic} is a bus topic")
            first = owner.setdefault(topic, contract.partner)
            if first != contract.partner:
                problems.append(f"partners {first} and {contract.partner} share the topic {topic}")
    return problems


def _group_overlaps(contracts: Sequence[Contract], topics: Topics) -> list[str]:
    fixed = [  # (whose, pattern, group name or prefix)
        ("the processor", LITERAL, topics.processor_group),
        ("the processor", LITERAL, topics.processor_group + RESTORE_GROUP_SUFFIX),
        ("the auditor", PREFIXED, AUDITOR_GROUP_PREFIX),
        ("the registry", PREFIXED, REGISTRY_GROUP_PREFIX),
    ]
    vendors = [(c.partner, vendor_group_prefix(c.partner)) for c in contracts]
    problems = []
    for partner, prefix in vendors:
        for whose, pattern, name in fixed:
            if _overlap(prefix, pattern, name):
                shown = name + ("*" if pattern == PREFIXED else "")
                problems.append(
                    f"partner {partner}: its consumer groups ({prefix}*) overlap "
                    f"{whose}'s ({shown}); rename the partner"
                )
    for (first, first_prefix), (second, second_prefix) in combinations(vendors, 2):
        if _overlap(first_prefix, PREFIXED, second_prefix):
            problems.append(
                f"partners {first} and {second}: their consumer groups ({first_prefix}*, "
                f"{second_prefix}*) overlap; rename one of them"
            )
    return problems


def _overlap(prefix: str, pattern: str, name: str) -> bool:
    """Whether a group named by ``prefix`` can also be named by (``pattern``, ``name``)."""
    return name.startswith(prefix) or (pattern == PREFIXED and prefix.startswith(name))


def _role_principals(roles: Roles) -> Iterator[tuple[str, str]]:
    yield "admin", roles.admin
    yield "SIS connector", roles.sis_connector
    yield "consent source", roles.consent_source
    yield "processor", roles.processor
    yield "auditor", roles.auditor
    yield "schema registry", roles.registry


def _topic(principal: str, names: Iterable[str], *operations: str) -> list[AclRule]:
    return [AclRule(principal, TOPIC, LITERAL, n, op) for n in names for op in operations]


def _idempotent(principal: str) -> AclRule:
    return AclRule(principal, CLUSTER, LITERAL, CLUSTER_NAME, IDEMPOTENT_WRITE)
