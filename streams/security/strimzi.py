"""Strimzi manifests from the contracts: topics and users for a Kafka cluster on Kubernetes.

A ``KafkaTopic`` for every topic of the bus and every partner's two topics (partitions,
replication and every topic-level setting of :mod:`streams.policy.retention`, as ``hallpass
contracts apply`` creates them), and a ``KafkaUser`` for every principal:
SCRAM-SHA-512 authentication and ``simple`` authorization with exactly the ACLs of
:func:`~streams.security.acl_plan.plan_acls`. The admin's user has no ACLs: it is meant to be
a super user of the cluster (``spec.kafka.authorization.superUsers`` of the ``Kafka``
resource). Written for the ``kafka.strimzi.io/v1`` API (Strimzi 0.49 and later).

Pure: the functions return manifests as data or YAML text; the command writes the files.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import yaml

from streams.errors import HallpassError
from streams.kafka.names import DEFAULT_TOPICS, Topics, TopicSpec
from streams.policy.contracts import Contract
from streams.policy.retention import DEFAULT_TOPIC_SETTINGS, TopicSettings
from streams.processor.app import bus_topics, contract_topics, prefixed
from streams.security.acl_plan import DEFAULT_ROLES, AclRule, Roles, plan_acls

API_VERSION = "kafka.strimzi.io/v1"
CLUSTER_LABEL = "strimzi.io/cluster"
COMMON_LABELS = {
    "app.kubernetes.io/managed-by": "hallpass",
    "app.kubernetes.io/part-of": "hallpass",
}
#: the annotation of each KafkaTopic that says why it is configured so
WHY_ANNOTATION = "hallpass.io/retention-reason"
TOPICS_FILE = "kafka-topics.yaml"
USERS_FILE = "kafka-users.yaml"

#: Kafka's AclOperation names -> Strimzi's.
OPERATIONS = {
    "ALL": "All",
    "ALTER": "Alter",
    "ALTER_CONFIGS": "AlterConfigs",
    "CLUSTER_ACTION": "ClusterAction",
    "CREATE": "Create",
    "DELETE": "Delete",
    "DESCRIBE": "Describe",
    "DESCRIBE_CONFIGS": "DescribeConfigs",
    "IDEMPOTENT_WRITE": "IdempotentWrite",
    "READ": "Read",
    "WRITE": "Write",
}
RESOURCE_TYPES = {
    "TOPIC": "topic",
    "GROUP": "group",
    "TRANSACTIONAL_ID": "transactionalId",
    "CLUSTER": "cluster",
}
PATTERN_TYPES = {"LITERAL": "literal", "PREFIXED": "prefix"}
PERMISSIONS = {"ALLOW": "allow", "DENY": "deny"}

_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_NOT_NAME = re.compile(r"[^a-z0-9]+")


class StrimziRenderError(HallpassError, ValueError):
    """The manifests cannot be written; ``problems`` says why."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class StrimziTarget:
    """Where the manifests go: the Strimzi ``Kafka`` cluster's name, its namespace (none:
    the namespace ``kubectl`` applies to), the partitions of each topic and the topic
    settings (replication, ``min.insync.replicas``, tombstone retention) the bus uses.
    A replication factor of -1 leaves ``replicas`` out: the cluster's
    ``default.replication.factor``."""

    cluster: str = "hallpass"
    namespace: str | None = None
    partitions: int = 3
    settings: TopicSettings = DEFAULT_TOPIC_SETTINGS

    def problems(self) -> list[str]:
        found = []
        if not _DNS_LABEL.match(self.cluster):
            found.append(f"cluster {self.cluster!r} is not a valid Kubernetes name")
        if self.namespace is not None and not _DNS_LABEL.match(self.namespace):
            found.append(f"namespace {self.namespace!r} is not a valid Kubernetes namespace")
        if self.partitions < 1:
            found.append("partitions must be at least 1")
        return found


def kafka_topics(
    contracts: Sequence[Contract],
    topics: Topics = DEFAULT_TOPICS,
    target: StrimziTarget = StrimziTarget(),
) -> list[dict[str, Any]]:
    """A ``KafkaTopic`` for each topic of the bus and each partner's topics, by name."""
    _check(target.problems())
    specs = bus_topics(target.partitions, topics, target.settings) + contract_topics(
        prefixed(list(contracts), topics), target.partitions, topics, target.settings
    )
    return [_kafka_topic(spec, target) for spec in sorted(specs, key=lambda s: s.name)]


def kafka_users(
    contracts: Sequence[Contract],
    topics: Topics = DEFAULT_TOPICS,
    roles: Roles = DEFAULT_ROLES,
    target: StrimziTarget = StrimziTarget(),
) -> list[dict[str, Any]]:
    """A ``KafkaUser`` for each role and each vendor, with the ACLs of ``plan_acls``."""
    rules = plan_acls(contracts, topics, roles)
    principals = sorted({*roles.principals(), *(c.principal for c in contracts)})
    problems = target.problems()
    for principal in principals:
        name = user_name(principal)
        if not (len(name) <= 253 and _DNS_SUBDOMAIN.match(name)):
            problems.append(
                f"principal {principal}: a Strimzi KafkaUser is named by its SCRAM user name, "
                f"and {name!r} is not a Kubernetes name (lowercase letters, digits, '-', '.')"
            )
    _check(problems)
    users = []
    for principal in principals:
        own = [r for r in rules if r.principal == principal]
        spec: dict[str, Any] = {"authentication": {"type": "scram-sha-512"}}
        if principal != roles.admin:
            spec["authorization"] = {"type": "simple", "acls": strimzi_acls(own)}
        users.append(_resource("KafkaUser", user_name(principal), target, spec))
    return users


def strimzi_acls(rules: Iterable[AclRule]) -> list[dict[str, Any]]:
    """Strimzi's ``acls``: one entry per resource, host and permission, its operations
    together."""
    grouped: dict[tuple[str, str, str, str, str], set[str]] = {}
    for rule in rules:
        key = (
            rule.resource_type,
            rule.pattern_type,
            rule.resource_name,
            rule.permission,
            rule.host,
        )
        grouped.setdefault(key, set()).add(_translate(OPERATIONS, "operation", rule.operation))
    acls = []
    for (resource_type, pattern, name, permission, host), operations in sorted(grouped.items()):
        resource: dict[str, str] = {"type": _translate(RESOURCE_TYPES, "resource", resource_type)}
        if resource_type != "CLUSTER":
            resource["name"] = name
            resource["patternType"] = _translate(PATTERN_TYPES, "pattern", pattern)
        acls.append(
            {
                "type": _translate(PERMISSIONS, "permission", permission),
                "resource": resource,
                "operations": sorted(operations),
                "host": host,
            }
        )
    return acls


def render_strimzi(
    contracts: Sequence[Contract],
    topics: Topics = DEFAULT_TOPICS,
    roles: Roles = DEFAULT_ROLES,
    target: StrimziTarget = StrimziTarget(),
    source: str = "the contracts",
) -> dict[str, str]:
    """File name -> YAML text of the topics and users manifests."""
    header = (
        f"# Generated by `hallpass deploy render strimzi` from {source}; do not edit.\n"
        f"# Strimzi {API_VERSION} resources for the Kafka cluster {target.cluster!r}.\n"
    )
    if topics.prefix:
        header += f"# Topic prefix: {topics.prefix!r}.\n"
    return {
        TOPICS_FILE: header + _dump(kafka_topics(contracts, topics, target)),
        USERS_FILE: header + _dump(kafka_users(contracts, topics, roles, target)),
    }


def user_name(principal: str) -> str:
    """The SCRAM user name of a ``User:`` principal (Strimzi's KafkaUser name)."""
    return principal.removeprefix("User:")


def topic_resource_name(topic: str) -> str:
    """The KafkaTopic's ``metadata.name``: the topic itself when Kubernetes accepts it, else
    a name made of its letters and digits and a hash of it (the topic goes in ``topicName``).
    """
    if len(topic) <= 253 and _DNS_SUBDOMAIN.match(topic):
        return topic
    digest = hashlib.sha256(topic.encode()).hexdigest()[:10]
    stem = _NOT_NAME.sub("-", topic.lower()).strip("-")[:200]
    return f"{stem}-{digest}" if stem else f"topic-{digest}"


def _kafka_topic(spec: TopicSpec, target: StrimziTarget) -> dict[str, Any]:
    """A topic as Strimzi creates it; the reason for its settings rides along as an
    annotation, so the manifest says why as the code does."""
    name = topic_resource_name(spec.name)
    body: dict[str, Any] = {}
    if name != spec.name:
        body["topicName"] = spec.name
    body["partitions"] = spec.partitions
    if spec.replication_factor > 0:
        body["replicas"] = spec.replication_factor
    if spec.config:
        body["config"] = dict(spec.config)
    resource = _resource("KafkaTopic", name, target, body)
    if spec.why:
        resource["metadata"]["annotations"] = {WHY_ANNOTATION: spec.why}
    return resource


def _resource(kind: str, name: str, target: StrimziTarget, spec: dict[str, Any]) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if target.namespace is not None:
        metadata["namespace"] = target.namespace
    metadata["labels"] = {CLUSTER_LABEL: target.cluster, **COMMON_LABELS}
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": metadata, "spec": spec}


def _translate(table: dict[str, str], what: str, value: str) -> str:
    try:
        return table[value]
    except KeyError:
        raise StrimziRenderError([f"no Strimzi equivalent of the {what} {value!r}"]) from None


def _check(problems: list[str]) -> None:
    if problems:
        raise StrimziRenderError(problems)


def _dump(documents: list[dict[str, Any]]) -> str:
    return yaml.safe_dump_all(documents, sort_keys=False, explicit_start=True, width=100)
