"""``hallpass acl apply``: make the broker's ACLs match the plan of the contracts and roles.

What hallpass manages (and so may remove), an ALLOW ACL that

1. belongs to a principal hallpass manages: one of the plan's principals (the roles' and the
   contracts'), or one an earlier ``acl apply`` recorded in the admin-only compacted topic
   ``hallpass.acl.principals`` (under the topic prefix). A retired contract's vendor stays
   recorded until every ACL of its principal is gone, so it loses all its access, whatever
   its topic and group names were. Contract principals must be dedicated to hallpass: any
   other ACL they hold is removed (DESIGN: a vendor may read its own topic, nothing else).
2. or lies on a resource in hallpass's namespace, whoever holds it: a topic, group or
   transactional id that the plan names or that starts with a name of the bus (the change,
   consent and audit topics, ``hallpass.``, ``partner.``, groups and transactional ids
   starting with ``hallpass``, all under the topic prefix). Access to the bus goes through
   the contracts and roles, not by hand.

DENY ACLs are never removed (they only take access away; that is a person's call), and
ACLs that hallpass does not manage are left alone; those that still reach a resource of the
plan (a wildcard, a short prefix) are reported as warnings.

The plan itself is :func:`streams.security.acl_plan.plan_acls`; this module compares and
applies. :func:`diff_acls` is pure; the rest talks to the broker through an AdminClient.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import (  # type: ignore[attr-defined]
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ConfigResource,
    ResourcePatternType,
    ResourceType,
)

from streams.config import Connection
from streams.errors import HallpassError
from streams.kafka.admin import ensure_topics
from streams.kafka.names import Topics
from streams.kafka.read_to_end import nonempty_from_start, read_to_end
from streams.policy.contracts import Contract
from streams.policy.retention import DEFAULT_TOPIC_SETTINGS, Role, spec
from streams.security.acl_plan import (
    ALLOW,
    CLUSTER,
    CLUSTER_NAME,
    GROUP,
    LITERAL,
    PREFIXED,
    TOPIC,
    TRANSACTIONAL_ID,
    AclRule,
    acks_topic_of,
    partner_topics,
)

#: The record of the principals hallpass manages (admin-only: it has no ACL).
PRINCIPALS_TOPIC = "hallpass.acl.principals"

_KIND = {
    TOPIC: ResourceType.TOPIC,
    GROUP: ResourceType.GROUP,
    TRANSACTIONAL_ID: ResourceType.TRANSACTIONAL_ID,
    CLUSTER: ResourceType.BROKER,
}
_KIND_NAME = {kind: name for name, kind in _KIND.items()}


class AclApplyError(HallpassError, RuntimeError):
    """The broker refused to list or change ACLs; the message says what to do."""


# --- the pure part ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Namespace:
    """The resources and principals hallpass manages (see the module docstring)."""

    principals: frozenset[str]
    prefixes: Mapping[str, tuple[str, ...]]  # resource type -> name prefixes

    def manages(self, rule: AclRule) -> bool:
        if rule.permission != ALLOW:
            return False
        if rule.principal in self.principals:
            return True
        return any(
            rule.resource_name.startswith(p) for p in self.prefixes.get(rule.resource_type, ())
        )


def namespace(
    plan: Iterable[AclRule],
    contracts: Iterable[Contract],
    topics: Topics,
    recorded: Iterable[str] = (),
) -> Namespace:
    """What hallpass manages, given the plan, the contracts and the recorded principals."""
    plan = list(plan)
    topic_names = [
        topics.changes,
        topics.consent,
        topics.audit,
        topics.name("hallpass."),
        topics.name("partner."),
    ]
    for contract in contracts:
        topic_names.extend(partner_topics(contract, topics))
        topic_names.append(acks_topic_of(contract, topics))
    ids = [topics.name("hallpass")]
    prefixes: dict[str, list[str]] = {
        TOPIC: topic_names,
        GROUP: list(ids),
        TRANSACTIONAL_ID: list(ids),
        CLUSTER: [],
    }
    for rule in plan:
        if rule.resource_type != CLUSTER:
            prefixes.setdefault(rule.resource_type, []).append(rule.resource_name)
    return Namespace(
        principals=frozenset({r.principal for r in plan} | set(recorded)),
        prefixes={kind: tuple(sorted(set(names))) for kind, names in prefixes.items()},
    )


@dataclass(frozen=True)
class AclChanges:
    """What ``acl apply`` does: add what the plan has and the broker lacks; remove the
    managed ACLs that the plan no longer has."""

    add: tuple[AclRule, ...]
    remove: tuple[AclRule, ...]
    unchanged: int
    #: unmanaged ALLOW ACLs that still reach a resource of the plan
    foreign: tuple[AclRule, ...] = ()

    @property
    def empty(self) -> bool:
        return not self.add and not self.remove


def diff_acls(
    plan: Iterable[AclRule], on_broker: Iterable[AclRule], managed: Namespace
) -> AclChanges:
    wanted = set(plan)
    present = set(on_broker)
    remove = {r for r in present - wanted if managed.manages(r)}
    planned_resources = {(r.resource_type, r.resource_name) for r in wanted}
    foreign = {
        r
        for r in present - wanted - remove
        if r.permission == ALLOW and any(covers(r, kind, name) for kind, name in planned_resources)
    }
    return AclChanges(
        add=tuple(sorted(wanted - present)),
        remove=tuple(sorted(remove)),
        unchanged=len(wanted & present),
        foreign=tuple(sorted(foreign)),
    )


def covers(rule: AclRule, resource_type: str, name: str) -> bool:
    """Whether ``rule``'s resource pattern matches the resource (``resource_type``, ``name``)."""
    if rule.resource_type != resource_type:
        return False
    if rule.pattern_type == PREFIXED:
        return name.startswith(rule.resource_name)
    return rule.resource_name in ("*", name)


def principals_to_forget(
    recorded: Iterable[str], plan: Iterable[AclRule], after: Iterable[AclRule]
) -> set[str]:
    """Recorded principals that are out of the plan and hold no ALLOW ACL any more."""
    still = {r.principal for r in after if r.permission == ALLOW}
    return set(recorded) - {r.principal for r in plan} - still


def describe_rule(rule: AclRule) -> str:
    where = "" if rule.host == "*" else f" from {rule.host}"
    pattern = "" if rule.pattern_type == LITERAL else f" ({rule.pattern_type.lower()})"
    return (
        f"{rule.permission:<5} {rule.principal:<26} {rule.operation:<16} "
        f"{rule.resource_type}:{rule.resource_name}{pattern}{where}"
    )


# --- the broker ----------------------------------------------------------------------------


def to_binding(rule: AclRule) -> AclBinding:
    return AclBinding(
        _KIND[rule.resource_type],
        rule.resource_name,
        ResourcePatternType[rule.pattern_type],
        rule.principal,
        rule.host,
        AclOperation[rule.operation],
        AclPermissionType[rule.permission],
    )


def to_filter(rule: AclRule) -> AclBindingFilter:
    """The filter that matches exactly ``rule``."""
    return AclBindingFilter(
        _KIND[rule.resource_type],
        rule.resource_name,
        ResourcePatternType[rule.pattern_type],
        rule.principal,
        rule.host,
        AclOperation[rule.operation],
        AclPermissionType[rule.permission],
    )


def from_binding(binding: Any) -> AclRule:
    kind = _KIND_NAME.get(binding.restype, str(binding.restype.name))
    return AclRule(
        principal=str(binding.principal),
        resource_type=kind,
        pattern_type=str(binding.resource_pattern_type.name),
        resource_name=CLUSTER_NAME if kind == CLUSTER else str(binding.name),
        operation=str(binding.operation.name),
        permission=str(binding.permission_type.name),
        host=str(binding.host),
    )


#: None matches anything in a filter (confluent-kafka types these fields as str)
_ANYTHING: Any = None
_EVERY_ACL = AclBindingFilter(
    ResourceType.ANY,
    _ANYTHING,
    ResourcePatternType.ANY,
    _ANYTHING,
    _ANYTHING,
    AclOperation.ANY,
    AclPermissionType.ANY,
)


def _explain(exc: KafkaException, doing: str) -> AclApplyError:
    err: Any = exc.args[0] if exc.args else None
    name = err.name() if hasattr(err, "name") else ""
    if name in ("CLUSTER_AUTHORIZATION_FAILED", "TOPIC_AUTHORIZATION_FAILED"):
        return AclApplyError(
            f"{doing}: the broker refused (not authorized); run it as the admin "
            "(a super user), e.g. --client-properties <data dir>/admin.properties"
        )
    if name == "SECURITY_DISABLED":
        return AclApplyError(
            f"{doing}: the broker has no authorizer, so it has no ACLs to manage; start "
            "it with `hallpass up --secure` (or configure authorizer.class.name)"
        )
    return AclApplyError(f"{doing}: {err.str() if hasattr(err, 'str') else exc}")


def broker_acls(admin: AdminClient, timeout_s: float = 30.0) -> list[AclRule]:
    try:
        bindings = admin.describe_acls(_EVERY_ACL, request_timeout=timeout_s).result()
    except KafkaException as exc:
        raise _explain(exc, "listing the broker's ACLs") from exc
    return sorted(from_binding(b) for b in bindings)


def check_authorized(admin: AdminClient, alter: bool, timeout_s: float = 30.0) -> None:
    """Refuse early unless the principal may describe (and, with ``alter``, alter) the
    cluster's ACLs: a broker answers an unauthorized DescribeAcls with an empty list, which
    would read as "no ACLs at all"."""
    needed = {AclOperation.DESCRIBE} | ({AclOperation.ALTER} if alter else set())
    allowed, nodes = cluster_operations(admin, timeout_s)
    if not needed <= allowed:
        what = "describe and alter" if alter else "describe"
        raise AclApplyError(
            f"not authorized to {what} the cluster's ACLs: run it as the admin (a super "
            "user), e.g. --client-properties <data dir>/admin.properties"
        )
    if nodes and not _authorizer(admin, nodes[0], timeout_s):
        raise AclApplyError(
            "the broker has no authorizer (authorizer.class.name is empty), so ACLs would "
            "change nothing: start it with `hallpass up --secure`, or configure an authorizer"
        )


def cluster_operations(admin: AdminClient, timeout_s: float = 30.0) -> tuple[set[Any], list[int]]:
    """(the operations the client's principal may do on the cluster, the broker ids)."""
    try:
        cluster = admin.describe_cluster(
            include_authorized_operations=True, request_timeout=timeout_s
        ).result()
    except KafkaException as exc:
        raise _explain(exc, "describing the cluster") from exc
    allowed = set(cluster.authorized_operations or ())
    if AclOperation.ALL in allowed:
        allowed |= set(AclOperation)
    return allowed, [node.id for node in cluster.nodes]


def _authorizer(admin: AdminClient, broker_id: int, timeout_s: float) -> str:
    """The broker's ``authorizer.class.name`` ("" without one)."""
    resource = ConfigResource(ResourceType.BROKER, str(broker_id))
    try:
        (future,) = admin.describe_configs([resource], request_timeout=timeout_s).values()
        entry = future.result().get("authorizer.class.name")
    except KafkaException as exc:
        raise _explain(exc, "describing the broker's configuration") from exc
    return str(entry.value or "") if entry is not None else ""


def create_rules(
    config: Mapping[str, Any], rules: Sequence[AclRule], timeout_s: float = 30.0
) -> None:
    """Create ``rules`` on the broker (existing ones are left as they are)."""
    _create(AdminClient(dict(config)), rules, timeout_s)


def _create(admin: AdminClient, rules: Sequence[AclRule], timeout_s: float) -> None:
    if not rules:
        return
    futures = admin.create_acls([to_binding(r) for r in rules], request_timeout=timeout_s)
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            raise _explain(exc, "creating ACLs") from exc


def _delete(admin: AdminClient, rules: Sequence[AclRule], timeout_s: float) -> None:
    if not rules:
        return
    futures = admin.delete_acls([to_filter(r) for r in rules], request_timeout=timeout_s)
    for future in futures.values():
        try:
            future.result()
        except KafkaException as exc:
            raise _explain(exc, "deleting ACLs") from exc


# --- the record of managed principals ---------------------------------------------------------


class PrincipalRecord:
    """The compacted topic ``hallpass.acl.principals``: key principal, value a JSON note;
    a tombstone forgets a principal."""

    def __init__(self, conn: Connection, topics: Topics) -> None:
        self.conn = conn
        self.topic = topics.name(PRINCIPALS_TOPIC)

    def read(self) -> set[str]:
        consumer = Consumer(
            self.conn.kafka_config(
                {
                    "group.id": "hallpass-acl-apply",
                    "enable.auto.commit": False,
                    "enable.partition.eof": True,
                    "isolation.level": "read_committed",
                }
            )
        )
        found: dict[str, bool] = {}
        try:
            metadata = consumer.list_topics(self.topic, timeout=30).topics.get(self.topic)
            if metadata is None or metadata.error is not None:
                return set()
            assignment = nonempty_from_start(consumer, self.topic, metadata.partitions)
            for msg in read_to_end(consumer, assignment):
                found[(msg.key() or b"").decode()] = msg.value() is not None
        except KafkaException as exc:
            raise _explain(exc, f"reading {self.topic}") from exc
        finally:
            consumer.close()
        return {principal for principal, live in found.items() if live}

    def write(self, remember: Iterable[str], forget: Iterable[str]) -> None:
        note = json.dumps({"managed_since_ms": int(time.time() * 1000)}).encode()
        records: list[tuple[str, bytes | None]] = [(p, note) for p in sorted(remember)]
        records += [(p, None) for p in sorted(forget)]
        if not records:
            return
        ensure_topics(self.conn, [spec(Role.ACL_PRINCIPALS, self.topic, 1, DEFAULT_TOPIC_SETTINGS)])
        failed: list[str] = []

        def delivered(err: Any, _msg: Any) -> None:
            if err is not None:
                failed.append(str(err))

        producer = Producer(self.conn.kafka_config({"enable.idempotence": True, "acks": "all"}))
        for principal, value in records:
            producer.produce(self.topic, key=principal.encode(), value=value, on_delivery=delivered)
        if producer.flush(30) or failed:
            raise AclApplyError(
                f"could not record the managed principals in {self.topic}: "
                + (failed[0] if failed else "no answer from the broker")
            )


# --- apply ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ApplyResult:
    changes: AclChanges
    dry_run: bool


def apply_plan(
    conn: Connection,
    plan: Sequence[AclRule],
    contracts: Sequence[Contract],
    topics: Topics,
    dry_run: bool = False,
    timeout_s: float = 30.0,
) -> ApplyResult:
    """Make the broker's ACLs match ``plan``.

    Order: record the plan's principals as managed, add the missing ACLs, remove the stale
    ones, then forget the principals left without access. A crash at any point leaves
    nothing unrecorded, and the next run finishes the job.
    """
    admin = AdminClient(conn.kafka_config())
    on_broker = broker_acls(admin, timeout_s)
    check_authorized(admin, alter=not dry_run, timeout_s=timeout_s)
    record = PrincipalRecord(conn, topics)
    recorded = record.read()
    changes = diff_acls(plan, on_broker, namespace(plan, contracts, topics, recorded))
    if dry_run:
        return ApplyResult(changes, dry_run=True)
    planned = {r.principal for r in plan}
    record.write(remember=planned - recorded, forget=())
    _create(admin, changes.add, timeout_s)
    _delete(admin, changes.remove, timeout_s)
    after = (set(on_broker) | set(changes.add)) - set(changes.remove)
    record.write(remember=(), forget=principals_to_forget(recorded, plan, after))
    return ApplyResult(changes, dry_run=False)
