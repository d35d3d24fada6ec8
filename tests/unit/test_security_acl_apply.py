"""What `hallpass acl apply` adds and removes: the plan's ACLs, and only the managed ones go
(see streams/security/acl_apply.py for the rule); applying twice changes nothing."""

from __future__ import annotations

from pathlib import Path

from confluent_kafka.admin import ResourceType  # type: ignore[attr-defined]
from hypothesis import given
from hypothesis import strategies as st

from streams.kafka.names import DEFAULT_TOPICS, Topics
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import Contract, load_contracts
from streams.security.acl_apply import (
    Namespace,
    covers,
    diff_acls,
    from_binding,
    namespace,
    principals_to_forget,
    to_binding,
    to_filter,
)
from streams.security.acl_plan import AclRule, plan_acls

CONTRACTS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "contracts"


def contracts() -> list[Contract]:
    return load_contracts(CONTRACTS_DIR, field_catalog(load_schema("student_record_changed")))


def rule(
    principal: str,
    kind: str,
    name: str,
    operation: str = "READ",
    pattern: str = "LITERAL",
    permission: str = "ALLOW",
) -> AclRule:
    return AclRule(f"User:{principal}", kind, pattern, name, operation, permission)


def test_an_empty_broker_gets_the_whole_plan() -> None:
    every = contracts()
    plan = plan_acls(every)
    changes = diff_acls(plan, [], namespace(plan, every, DEFAULT_TOPICS))
    assert list(changes.add) == sorted(plan) and changes.remove == () and changes.unchanged == 0


def test_a_retired_contract_loses_every_acl_of_its_vendor() -> None:
    every = contracts()
    kept = [c for c in every if c.partner != "measurely"]
    before = plan_acls(every)
    after = plan_acls(kept)
    changes = diff_acls(
        after,
        before,
        namespace(after, kept, DEFAULT_TOPICS, recorded={r.principal for r in before}),
    )
    assert changes.add == ()
    removed = set(changes.remove)
    assert {r for r in before if r.principal == "User:measurely"} <= removed
    assert {r for r in before if "partner.measurely." in r.resource_name} <= removed
    assert removed == set(before) - set(after)


def test_even_an_unrecorded_vendor_loses_access_to_bus_topics() -> None:
    """Without the record (say, ACLs made by hand), the resource rule still applies."""
    kept = [c for c in contracts() if c.partner != "measurely"]
    plan = plan_acls(kept)
    old = [
        rule("measurely", "TOPIC", "partner.measurely.students"),
        rule("measurely", "GROUP", "measurely-", pattern="PREFIXED"),
    ]
    changes = diff_acls(plan, [*plan, *old], namespace(plan, kept, DEFAULT_TOPICS))
    assert changes.remove == (old[0],)  # its group is none of hallpass's names


def test_what_hallpass_does_not_manage_stays() -> None:
    every = contracts()
    plan = plan_acls(every)
    foreign = [
        rule("other-app", "TOPIC", "orders"),
        rule("other-app", "GROUP", "orders-consumer"),
        rule("ops", "CLUSTER", "kafka-cluster", "DESCRIBE"),
        rule("learnwell", "TOPIC", "partner.learnwell.notices", permission="DENY"),
    ]
    changes = diff_acls(plan, [*plan, *foreign], namespace(plan, every, DEFAULT_TOPICS))
    assert changes.empty and changes.unchanged == len(plan)


def test_hand_made_grants_on_the_bus_are_removed_and_wildcards_reported() -> None:
    every = contracts()
    plan = plan_acls(every)
    snoop = [
        rule("snoop", "TOPIC", "audit.disclosures"),
        rule("snoop", "TOPIC", "partner.", pattern="PREFIXED"),
        rule("snoop", "GROUP", "hallpass-processor"),
        rule("snoop", "TRANSACTIONAL_ID", "hallpass-processor-x", "WRITE"),
    ]
    wildcard = rule("ops", "TOPIC", "*", "DESCRIBE")
    short_prefix = rule("ops", "TOPIC", "part", pattern="PREFIXED")
    changes = diff_acls(
        plan, [*plan, *snoop, wildcard, short_prefix], namespace(plan, every, DEFAULT_TOPICS)
    )
    assert set(changes.remove) == set(snoop)
    assert set(changes.foreign) == {wildcard, short_prefix}


def test_a_recorded_principal_loses_acls_outside_the_plan() -> None:
    every = contracts()
    plan = plan_acls(every)
    stray = rule("learnwell", "TOPIC", "some.other.topic")
    changes = diff_acls(plan, [*plan, stray], namespace(plan, every, DEFAULT_TOPICS))
    assert changes.remove == (stray,)


def test_the_namespace_follows_the_topic_prefix() -> None:
    every = contracts()
    topics = Topics("t1.")
    plan = plan_acls(every, topics)
    other_deployment = rule("someone", "TOPIC", "partner.learnwell.students")
    ours = rule("someone", "TOPIC", "t1.partner.learnwell.students")
    changes = diff_acls(plan, [*plan, other_deployment, ours], namespace(plan, every, topics))
    assert changes.remove == (ours,)


def test_recorded_principals_are_forgotten_once_they_hold_nothing() -> None:
    plan = [rule("learnwell", "TOPIC", "partner.learnwell.students")]
    after = [*plan, rule("old-vendor", "TOPIC", "x", permission="DENY")]
    recorded = {"User:learnwell", "User:old-vendor", "User:retired"}
    assert principals_to_forget(recorded, plan, after) == {"User:old-vendor", "User:retired"}


def test_covers_literal_wildcard_and_prefix() -> None:
    assert covers(rule("a", "TOPIC", "*"), "TOPIC", "audit.disclosures")
    assert covers(rule("a", "TOPIC", "audit.", pattern="PREFIXED"), "TOPIC", "audit.disclosures")
    assert not covers(rule("a", "GROUP", "*"), "TOPIC", "audit.disclosures")
    assert not covers(rule("a", "TOPIC", "audit.disclosure"), "TOPIC", "audit.disclosures")


def test_rules_become_bindings_and_back() -> None:
    for original in [
        rule("hallpass-sis", "CLUSTER", "kafka-cluster", "IDEMPOTENT_WRITE"),
        rule("learnwell", "GROUP", "learnwell-", pattern="PREFIXED"),
        rule("x", "TRANSACTIONAL_ID", "t", "WRITE", permission="DENY"),
    ]:
        assert from_binding(to_binding(original)) == original
    binding = to_binding(rule("hallpass-sis", "CLUSTER", "kafka-cluster", "IDEMPOTENT_WRITE"))
    assert str(binding.restype) == str(ResourceType.BROKER)  # confluent-kafka's CLUSTER
    exact = to_filter(rule("learnwell", "GROUP", "learnwell-", pattern="PREFIXED"))
    assert (exact.principal, exact.host, exact.name) == ("User:learnwell", "*", "learnwell-")


_NAMES = st.sampled_from(
    [
        "partner.learnwell.students",
        "partner.x.students",
        "audit.disclosures",
        "orders",
        "*",
        "hallpass-processor",
        "learnwell-",
        "other",
    ]
)
_RULES = st.builds(
    AclRule,
    principal=st.sampled_from(
        ["User:learnwell", "User:measurely", "User:ops", "User:snoop", "User:hallpass-processor"]
    ),
    resource_type=st.sampled_from(["TOPIC", "GROUP", "TRANSACTIONAL_ID", "CLUSTER"]),
    pattern_type=st.sampled_from(["LITERAL", "PREFIXED"]),
    resource_name=_NAMES,
    operation=st.sampled_from(["READ", "WRITE", "DESCRIBE"]),
    permission=st.sampled_from(["ALLOW", "DENY"]),
)


@given(
    plan=st.frozensets(_RULES, max_size=12),
    broker=st.frozensets(_RULES, max_size=12),
    recorded=st.frozensets(st.sampled_from(["User:measurely", "User:snoop"])),
)
def test_applying_twice_changes_nothing_and_leaves_the_unmanaged(
    plan: frozenset[AclRule], broker: frozenset[AclRule], recorded: frozenset[str]
) -> None:
    every = contracts()
    managed: Namespace = namespace(plan, every, DEFAULT_TOPICS, recorded)
    changes = diff_acls(plan, broker, managed)
    after = (broker | set(changes.add)) - set(changes.remove)
    assert plan <= after
    assert {r for r in broker if not managed.manages(r)} <= after  # never touched
    assert all(r in plan for r in after if managed.manages(r))
    again = diff_acls(plan, after, namespace(plan, every, DEFAULT_TOPICS, recorded))
    assert again.empty and again.unchanged == len(plan)
