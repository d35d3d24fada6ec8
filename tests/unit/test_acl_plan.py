"""The ACL plan: least privilege per role, vendors kept apart, `hallpass acl plan`.

Isolation is checked with a small evaluator of Kafka's ACL semantics written here (literal
names match exactly, prefixed ones by prefix; READ, WRITE, DELETE and ALTER imply DESCRIBE)
against the concrete names the code uses: another vendor's `<partner>-vendor` group, the
processor's groups, the ledger reader's group, the registry's `apicurio-<uuid>` groups.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Sequence
from datetime import date
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given, reject
from hypothesis import strategies as st

from streams.cli import main
from streams.kafka.names import DEFAULT_TOPICS, Topics
from streams.policy.catalog import field_catalog, load_schema
from streams.policy.contracts import Allowance, Basis, Contract, lock_contracts
from streams.security.acl_plan import (
    AclPlanError,
    AclRule,
    Roles,
    plan_acls,
    vendor_group_prefix,
)

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CONTRACTS = REPO / "deploy" / "contracts"
ROLES = Roles()
REGISTRY_TOPICS = ("kafkasql-journal", "kafkasql-snapshots", "registry-events")

# The whole plan for deploy/contracts, as a reviewer reads it.
EXPECTED_SAMPLE_PLAN = """
User:carewell-health    GROUP            PREFIXED carewell-health-                 READ
User:carewell-health    TOPIC            LITERAL  partner.carewell-health.acks     DESCRIBE
User:carewell-health    TOPIC            LITERAL  partner.carewell-health.acks     WRITE
User:carewell-health    TOPIC            LITERAL  partner.carewell-health.notices  DESCRIBE
User:carewell-health    TOPIC            LITERAL  partner.carewell-health.notices  READ
User:carewell-health    TOPIC            LITERAL  partner.carewell-health.students DESCRIBE
User:carewell-health    TOPIC            LITERAL  partner.carewell-health.students READ
User:hallpass-auditor   GROUP            PREFIXED hallpass-disclosures-            READ
User:hallpass-auditor   TOPIC            LITERAL  audit.disclosures                DESCRIBE
User:hallpass-auditor   TOPIC            LITERAL  audit.disclosures                READ
User:hallpass-auditor   TOPIC            LITERAL  partner.carewell-health.acks     DESCRIBE
User:hallpass-auditor   TOPIC            LITERAL  partner.carewell-health.acks     READ
User:hallpass-auditor   TOPIC            LITERAL  partner.carewell-health.notices  DESCRIBE
User:hallpass-auditor   TOPIC            LITERAL  partner.carewell-health.notices  READ
User:hallpass-auditor   TOPIC            LITERAL  partner.learnwell.acks           DESCRIBE
User:hallpass-auditor   TOPIC            LITERAL  partner.learnwell.acks           READ
User:hallpass-auditor   TOPIC            LITERAL  partner.learnwell.notices        DESCRIBE
User:hallpass-auditor   TOPIC            LITERAL  partner.learnwell.notices        READ
User:hallpass-auditor   TOPIC            LITERAL  partner.measurely.acks           DESCRIBE
User:hallpass-auditor   TOPIC            LITERAL  partner.measurely.acks           READ
User:hallpass-auditor   TOPIC            LITERAL  partner.measurely.notices        DESCRIBE
User:hallpass-auditor   TOPIC            LITERAL  partner.measurely.notices        READ
User:hallpass-consent   CLUSTER          LITERAL  kafka-cluster                    IDEMPOTENT_WRITE
User:hallpass-consent   TOPIC            LITERAL  consent.events                   DESCRIBE
User:hallpass-consent   TOPIC            LITERAL  consent.events                   WRITE
User:hallpass-processor CLUSTER          LITERAL  kafka-cluster                    IDEMPOTENT_WRITE
User:hallpass-processor GROUP            LITERAL  hallpass-processor               READ
User:hallpass-processor GROUP            LITERAL  hallpass-processor-global        READ
User:hallpass-processor GROUP            LITERAL  hallpass-processor-restore       READ
User:hallpass-processor TOPIC            LITERAL  audit.disclosures                DESCRIBE
User:hallpass-processor TOPIC            LITERAL  audit.disclosures                WRITE
User:hallpass-processor TOPIC            LITERAL  consent.events                   DESCRIBE
User:hallpass-processor TOPIC            LITERAL  consent.events                   READ
User:hallpass-processor TOPIC            LITERAL  hallpass.processor.districts     DESCRIBE
User:hallpass-processor TOPIC            LITERAL  hallpass.processor.districts     READ
User:hallpass-processor TOPIC            LITERAL  hallpass.processor.districts     WRITE
User:hallpass-processor TOPIC            LITERAL  hallpass.processor.repartition   DESCRIBE
User:hallpass-processor TOPIC            LITERAL  hallpass.processor.repartition   READ
User:hallpass-processor TOPIC            LITERAL  hallpass.processor.repartition   WRITE
User:hallpass-processor TOPIC            LITERAL  hallpass.processor.state         DESCRIBE
User:hallpass-processor TOPIC            LITERAL  hallpass.processor.state         READ
User:hallpass-processor TOPIC            LITERAL  hallpass.processor.state         WRITE
User:hallpass-processor TOPIC            LITERAL  partner.carewell-health.notices  DESCRIBE
User:hallpass-processor TOPIC            LITERAL  partner.carewell-health.notices  WRITE
User:hallpass-processor TOPIC            LITERAL  partner.carewell-health.students DESCRIBE
User:hallpass-processor TOPIC            LITERAL  partner.carewell-health.students WRITE
User:hallpass-processor TOPIC            LITERAL  partner.learnwell.notices        DESCRIBE
User:hallpass-processor TOPIC            LITERAL  partner.learnwell.notices        WRITE
User:hallpass-processor TOPIC            LITERAL  partner.learnwell.students       DESCRIBE
User:hallpass-processor TOPIC            LITERAL  partner.learnwell.students       WRITE
User:hallpass-processor TOPIC            LITERAL  partner.measurely.notices        DESCRIBE
User:hallpass-processor TOPIC            LITERAL  partner.measurely.notices        WRITE
User:hallpass-processor TOPIC            LITERAL  partner.measurely.students       DESCRIBE
User:hallpass-processor TOPIC            LITERAL  partner.measurely.students       WRITE
User:hallpass-processor TOPIC            LITERAL  sis.student.changes              DESCRIBE
User:hallpass-processor TOPIC            LITERAL  sis.student.changes              READ
User:hallpass-processor TOPIC            LITERAL  sis.student.changes.dlq          DESCRIBE
User:hallpass-processor TOPIC            LITERAL  sis.student.changes.dlq          WRITE
User:hallpass-processor TRANSACTIONAL_ID PREFIXED hallpass-processor-              DESCRIBE
User:hallpass-processor TRANSACTIONAL_ID PREFIXED hallpass-processor-              WRITE
User:hallpass-registry  CLUSTER          LITERAL  kafka-cluster                    IDEMPOTENT_WRITE
User:hallpass-registry  GROUP            PREFIXED apicurio-                        READ
User:hallpass-registry  TOPIC            LITERAL  kafkasql-journal                 CREATE
User:hallpass-registry  TOPIC            LITERAL  kafkasql-journal                 DESCRIBE
User:hallpass-registry  TOPIC            LITERAL  kafkasql-journal                 DESCRIBE_CONFIGS
User:hallpass-registry  TOPIC            LITERAL  kafkasql-journal                 READ
User:hallpass-registry  TOPIC            LITERAL  kafkasql-journal                 WRITE
User:hallpass-registry  TOPIC            LITERAL  kafkasql-snapshots               CREATE
User:hallpass-registry  TOPIC            LITERAL  kafkasql-snapshots               DESCRIBE
User:hallpass-registry  TOPIC            LITERAL  kafkasql-snapshots               DESCRIBE_CONFIGS
User:hallpass-registry  TOPIC            LITERAL  kafkasql-snapshots               READ
User:hallpass-registry  TOPIC            LITERAL  kafkasql-snapshots               WRITE
User:hallpass-registry  TOPIC            LITERAL  registry-events                  CREATE
User:hallpass-registry  TOPIC            LITERAL  registry-events                  DESCRIBE
User:hallpass-registry  TOPIC            LITERAL  registry-events                  DESCRIBE_CONFIGS
User:hallpass-registry  TOPIC            LITERAL  registry-events                  WRITE
User:hallpass-sis       CLUSTER          LITERAL  kafka-cluster                    IDEMPOTENT_WRITE
User:hallpass-sis       TOPIC            LITERAL  sis.student.changes              DESCRIBE
User:hallpass-sis       TOPIC            LITERAL  sis.student.changes              WRITE
User:learnwell          GROUP            PREFIXED learnwell-                       READ
User:learnwell          TOPIC            LITERAL  partner.learnwell.acks           DESCRIBE
User:learnwell          TOPIC            LITERAL  partner.learnwell.acks           WRITE
User:learnwell          TOPIC            LITERAL  partner.learnwell.notices        DESCRIBE
User:learnwell          TOPIC            LITERAL  partner.learnwell.notices        READ
User:learnwell          TOPIC            LITERAL  partner.learnwell.students       DESCRIBE
User:learnwell          TOPIC            LITERAL  partner.learnwell.students       READ
User:measurely          GROUP            PREFIXED measurely-                       READ
User:measurely          TOPIC            LITERAL  partner.measurely.acks           DESCRIBE
User:measurely          TOPIC            LITERAL  partner.measurely.acks           WRITE
User:measurely          TOPIC            LITERAL  partner.measurely.notices        DESCRIBE
User:measurely          TOPIC            LITERAL  partner.measurely.notices        READ
User:measurely          TOPIC            LITERAL  partner.measurely.students       DESCRIBE
User:measurely          TOPIC            LITERAL  partner.measurely.students       READ
"""

OPERATIONS = (
    "READ",
    "WRITE",
    "CREATE",
    "DELETE",
    "ALTER",
    "DESCRIBE",
    "CLUSTER_ACTION",
    "DESCRIBE_CONFIGS",
    "ALTER_CONFIGS",
    "IDEMPOTENT_WRITE",
)


def contract(partner: str, principal: str | None = None) -> Contract:
    return Contract(
        partner=partner,
        display_name=partner.title(),
        version=1,
        purpose="tests",
        valid_from=date(2026, 1, 1),
        valid_until=date(2027, 1, 1),
        laws=("FERPA",),
        principal=principal or f"User:{partner}",
        pseudonymous_ids=True,
        allow=(Allowance(Basis.DIRECTORY, category="student_name"),),
    )


def sample_contracts() -> list[Contract]:
    from streams.policy.catalog import field_catalog, load_schema
    from streams.policy.contracts import load_contracts

    return load_contracts(SAMPLE_CONTRACTS, field_catalog(load_schema("student_record_changed")))


def allows(
    rules: Sequence[AclRule], principal: str, resource_type: str, name: str, operation: str
) -> bool:
    """Kafka's answer for an authorizer holding only ``rules`` (no super users)."""
    granting = {operation, "ALL"}
    if operation == "DESCRIBE":
        granting |= {"READ", "WRITE", "DELETE", "ALTER"}
    if operation == "DESCRIBE_CONFIGS":
        granting.add("ALTER_CONFIGS")
    return any(
        r.principal == principal
        and r.resource_type == resource_type
        and r.permission == "ALLOW"
        and r.operation in granting
        and (
            r.resource_name == name or r.resource_name == "*"
            if r.pattern_type == "LITERAL"
            else name.startswith(r.resource_name)
        )
        for r in rules
    )


def bus_topic_names(topics: Topics) -> list[str]:
    return [
        topics.changes,
        topics.consent,
        topics.audit,
        topics.changes_dlq,
        topics.state,
        topics.districts,
        topics.changes_dlq_replayed,
        *REGISTRY_TOPICS,
    ]


def own_topics(c: Contract, topics: Topics) -> tuple[str, str]:
    return topics.partner(c.partner), topics.notices(c.partner)


# Partner ids that collide with each other or with a deployment's prefix, and some that do
# not. Ids that name a role's principal or overlap a role's groups (apicurio, hallpass,
# hallpass-processor, ...) are refused whatever else is drawn: the refusal tests below have
# them, the properties of plans do not (each such draw would be rejected).
TRICKY = ("learn", "learn-well", "a", "a-b", "b", "measurely", "t", "district7")
partner_ids = st.one_of(
    st.sampled_from(TRICKY), st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
)
contract_sets = st.lists(partner_ids, unique=True, max_size=6).map(
    lambda ids: [contract(p) for p in ids]
)
some_contracts = st.lists(partner_ids, unique=True, min_size=1, max_size=6).map(
    lambda ids: [contract(p) for p in ids]
)
deployments = st.one_of(
    st.sampled_from(["", "t-", "district7.", "a-"]),
    st.from_regex(r"[A-Za-z0-9._-]{0,8}", fullmatch=True),
).map(Topics)


def planned(contracts: list[Contract], topics: Topics) -> list[AclRule]:
    """The plan, for a property of plans: hypothesis rejects a draw whose contracts the plan
    refuses (they would share access; the refusals have their own tests below), so each
    property counts only draws it checks."""
    try:
        return plan_acls(contracts, topics)
    except AclPlanError:
        reject()  # assume(False): not an example of a plan


# -- the sample contracts ---------------------------------------------------------------


def test_plan_of_the_sample_contracts_is_exactly_the_reviewed_one() -> None:
    expected = [
        AclRule(principal, rtype, pattern, name, operation)
        for principal, rtype, pattern, name, operation in (
            line.split() for line in EXPECTED_SAMPLE_PLAN.strip().splitlines()
        )
    ]
    assert plan_acls(sample_contracts()) == expected


def test_every_sample_vendor_reads_its_own_topics_and_nothing_else() -> None:
    contracts = sample_contracts()
    rules = plan_acls(contracts)
    for c in contracts:
        mine, notices = own_topics(c, DEFAULT_TOPICS)
        assert allows(rules, c.principal, "TOPIC", mine, "READ")
        assert allows(rules, c.principal, "TOPIC", notices, "READ")
        assert allows(rules, c.principal, "GROUP", f"{c.partner}-vendor", "READ")
        for other in contracts:
            if other is not c:
                assert not allows(rules, c.principal, "TOPIC", other.topic, "DESCRIBE")
                assert not allows(rules, c.principal, "GROUP", f"{other.partner}-vendor", "READ")
        for topic in bus_topic_names(DEFAULT_TOPICS):
            assert not allows(rules, c.principal, "TOPIC", topic, "DESCRIBE")
        for operation in ("WRITE", "CREATE", "DELETE", "ALTER", "ALTER_CONFIGS"):
            assert not allows(rules, c.principal, "TOPIC", mine, operation)
        assert not allows(rules, c.principal, "CLUSTER", "kafka-cluster", "CREATE")
        assert not allows(rules, c.principal, "GROUP", "hallpass-processor", "READ")


def test_sis_connector_only_writes_the_change_topic() -> None:
    rules = plan_acls(sample_contracts())
    sis = ROLES.sis_connector
    assert allows(rules, sis, "TOPIC", "sis.student.changes", "WRITE")
    assert not allows(rules, sis, "TOPIC", "sis.student.changes", "READ")
    # consents come from a principal of their own: an SIS integration cannot forge them
    assert not allows(rules, sis, "TOPIC", "consent.events", "WRITE")
    for topic in (
        "consent.events",
        "audit.disclosures",
        "partner.learnwell.students",
        "sis.student.changes.dlq",
    ):
        assert not allows(rules, sis, "TOPIC", topic, "DESCRIBE")
    assert allows(rules, sis, "CLUSTER", "kafka-cluster", "IDEMPOTENT_WRITE")
    assert not any(r.resource_type == "GROUP" for r in rules if r.principal == sis)


def test_consent_source_only_writes_the_consent_topic() -> None:
    rules = plan_acls(sample_contracts())
    consent = ROLES.consent_source
    assert consent == "User:hallpass-consent"
    assert {
        (r.resource_type, r.resource_name, r.operation) for r in rules if r.principal == consent
    } == {
        ("TOPIC", "consent.events", "WRITE"),
        ("TOPIC", "consent.events", "DESCRIBE"),
        ("CLUSTER", "kafka-cluster", "IDEMPOTENT_WRITE"),
    }


def test_processor_runs_transactions_under_its_group_and_never_reads_partner_topics() -> None:
    rules = plan_acls(sample_contracts())
    proc = ROLES.processor
    # the ids run_processor and the restore reader use
    assert allows(rules, proc, "TRANSACTIONAL_ID", "hallpass-processor-host1-0", "WRITE")
    assert allows(rules, proc, "GROUP", "hallpass-processor", "READ")
    assert allows(rules, proc, "GROUP", "hallpass-processor-restore", "READ")
    assert not allows(rules, proc, "GROUP", "learnwell-vendor", "READ")
    assert not allows(rules, proc, "TRANSACTIONAL_ID", "other-app-0", "WRITE")
    for topic in ("partner.learnwell.students", "partner.learnwell.notices", "audit.disclosures"):
        assert allows(rules, proc, "TOPIC", topic, "WRITE")
        assert not allows(rules, proc, "TOPIC", topic, "READ")
    for topic in ("sis.student.changes", "consent.events"):
        assert allows(rules, proc, "TOPIC", topic, "READ")
        assert not allows(rules, proc, "TOPIC", topic, "WRITE")


def test_auditor_reads_the_ledger_with_the_disclosures_reader_group() -> None:
    rules = plan_acls(sample_contracts())
    auditor = ROLES.auditor
    assert allows(rules, auditor, "TOPIC", "audit.disclosures", "READ")
    assert allows(rules, auditor, "GROUP", "hallpass-disclosures-reader", "READ")  # disclosures.py
    assert not allows(rules, auditor, "TOPIC", "partner.learnwell.students", "READ")
    assert not allows(rules, auditor, "TOPIC", "sis.student.changes", "READ")


def test_only_the_vendor_writes_its_acknowledgements_and_only_the_auditor_reads_them() -> None:
    """Issue 19, proof of deletion: partner.<id>.acks carries the vendor's word alone."""
    contracts = sample_contracts()
    rules = plan_acls(contracts, Topics("x."))
    principals = {r.principal for r in rules}
    for c in contracts:
        acks = f"x.partner.{c.partner}.acks"
        writers = {p for p in principals if allows(rules, p, "TOPIC", acks, "WRITE")}
        readers = {p for p in principals if allows(rules, p, "TOPIC", acks, "READ")}
        assert writers == {c.principal}, acks
        assert readers == {ROLES.auditor}, acks
        assert allows(rules, ROLES.auditor, "TOPIC", f"x.partner.{c.partner}.notices", "READ")
        for other in contracts:
            if other is not c:
                assert not allows(rules, other.principal, "TOPIC", acks, "DESCRIBE")
    # the dead-letter replay markers are the admin's (a super user) alone
    replayed = "x.sis.student.changes.dlq.replayed"
    assert not any(allows(rules, p, "TOPIC", replayed, "DESCRIBE") for p in principals)


def test_registry_keeps_its_kafkasql_storage() -> None:
    rules = plan_acls(sample_contracts())
    registry = ROLES.registry
    assert allows(rules, registry, "TOPIC", "kafkasql-journal", "READ")
    assert allows(rules, registry, "TOPIC", "kafkasql-journal", "CREATE")
    assert allows(rules, registry, "TOPIC", "kafkasql-snapshots", "WRITE")
    assert allows(rules, registry, "TOPIC", "registry-events", "WRITE")
    assert allows(rules, registry, "GROUP", "apicurio-6f1c0e2a-4d3b-4a43-9d0e-2f4f0f8f7b11", "READ")
    assert not allows(rules, registry, "TOPIC", "sis.student.changes", "DESCRIBE")
    assert not allows(rules, registry, "TOPIC", "other-topic", "CREATE")


# -- any set of contracts -----------------------------------------------------------------


@given(contract_sets, deployments)
def test_each_vendor_reads_its_own_two_topics_writes_its_acks_and_has_its_group_prefix(
    contracts: list[Contract], topics: Topics
) -> None:
    rules = planned(contracts, topics)
    for c in contracts:
        mine, notices = own_topics(c, topics)
        assert {r for r in rules if r.principal == c.principal} == {
            AclRule(c.principal, "TOPIC", "LITERAL", mine, "READ"),
            AclRule(c.principal, "TOPIC", "LITERAL", mine, "DESCRIBE"),
            AclRule(c.principal, "TOPIC", "LITERAL", notices, "READ"),
            AclRule(c.principal, "TOPIC", "LITERAL", notices, "DESCRIBE"),
            AclRule(c.principal, "TOPIC", "LITERAL", topics.acks(c.partner), "WRITE"),
            AclRule(c.principal, "TOPIC", "LITERAL", topics.acks(c.partner), "DESCRIBE"),
            AclRule(c.principal, "GROUP", "PREFIXED", vendor_group_prefix(c.partner), "READ"),
        }


@given(contract_sets, deployments)
def test_no_vendor_reaches_a_name_another_principal_uses(
    contracts: list[Contract], topics: Topics
) -> None:
    rules = planned(contracts, topics)
    for c in contracts:
        others = [o for o in contracts if o is not c]
        theirs = [t for o in others for t in (*own_topics(o, topics), topics.acks(o.partner))]
        foreign_topics = [*bus_topic_names(topics), *theirs]
        foreign_groups = [
            topics.processor_group,
            f"{topics.processor_group}-restore",
            "hallpass-disclosures-reader",
            "apicurio-0b7e4a3c",
            *(f"{o.partner}-vendor" for o in others),
        ]
        for topic in foreign_topics:
            assert not any(allows(rules, c.principal, "TOPIC", topic, op) for op in OPERATIONS)
        for group in foreign_groups:
            assert not allows(rules, c.principal, "GROUP", group, "DESCRIBE"), group
        assert allows(rules, c.principal, "GROUP", f"{c.partner}-vendor", "READ")


@given(
    st.lists(st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True), unique=True, max_size=6),
    st.sampled_from(["", "district7.", "t."]),
)
def test_partner_ids_without_dashes_are_always_kept_apart(partners: list[str], prefix: str) -> None:
    partners = [p for p in partners if p not in ("admin", "apicurio", "hallpass")]
    plan_acls([contract(p) for p in partners], Topics(prefix))  # raises if not


@given(contract_sets, deployments)
def test_the_plan_is_sorted_without_duplicates(contracts: list[Contract], topics: Topics) -> None:
    rules = planned(contracts, topics)
    assert rules == sorted(set(rules))


@given(some_contracts, deployments, st.data())
def test_retiring_a_contract_removes_its_vendor_and_the_processors_writes_to_its_topics(
    contracts: list[Contract], topics: Topics, data: st.DataObject
) -> None:
    before = planned(contracts, topics)
    retired = data.draw(st.sampled_from(contracts))
    after = plan_acls([c for c in contracts if c is not retired], topics)
    gone = set(before) - set(after)
    assert set(after) <= set(before)
    mine = set(own_topics(retired, topics))
    proofs = (topics.notices(retired.partner), topics.acks(retired.partner))
    assert gone == {r for r in before if r.principal == retired.principal} | {
        AclRule(ROLES.processor, "TOPIC", "LITERAL", topic, op)
        for topic in mine
        for op in ("WRITE", "DESCRIBE")
    } | {
        AclRule(ROLES.auditor, "TOPIC", "LITERAL", t, op)
        for t in proofs
        for op in ("READ", "DESCRIBE")
    }


@given(contract_sets, deployments)
def test_the_topic_prefix_applies_to_every_bus_name(
    contracts: list[Contract], topics: Topics
) -> None:
    rules = planned(contracts, topics)
    for r in rules:
        if r.resource_type == "TOPIC" and r.resource_name not in REGISTRY_TOPICS:
            assert r.resource_name.startswith(topics.prefix)
        if r.principal == ROLES.processor and r.resource_type in ("GROUP", "TRANSACTIONAL_ID"):
            assert r.resource_name.startswith(topics.processor_group)


@given(contract_sets, deployments)
def test_nobody_may_delete_alter_or_create_beyond_the_registry_topics(
    contracts: list[Contract], topics: Topics
) -> None:
    rules = planned(contracts, topics)
    assert all(r.permission == "ALLOW" and r.host == "*" for r in rules)
    assert not {r.operation for r in rules} & {
        "ALL",
        "DELETE",
        "ALTER",
        "ALTER_CONFIGS",
        "CLUSTER_ACTION",
    }
    assert {(r.principal, r.resource_name) for r in rules if r.operation == "CREATE"} == {
        (ROLES.registry, t) for t in REGISTRY_TOPICS
    }
    assert not [r for r in rules if r.resource_type == "TOPIC" and r.pattern_type == "PREFIXED"]
    assert ROLES.admin not in {r.principal for r in rules}  # a super user


# -- what cannot be kept apart ----------------------------------------------------------


@pytest.mark.parametrize(
    ("contracts", "topics", "says"),
    [
        (
            [contract("learn"), contract("learn-well")],
            DEFAULT_TOPICS,
            "partners learn and learn-well",
        ),
        ([contract("apicurio")], DEFAULT_TOPICS, "the registry's (apicurio-*)"),
        ([contract("hallpass")], DEFAULT_TOPICS, "the processor's (hallpass-processor)"),
        ([contract("hallpass-processor")], DEFAULT_TOPICS, "hallpass-processor-restore"),
        ([contract("t")], Topics("t-"), "the processor's (t-hallpass-processor)"),
        ([contract("acme", "User:hallpass-processor")], DEFAULT_TOPICS, "is the processor's"),
        ([contract("admin")], DEFAULT_TOPICS, "is the admin's"),
        (
            [contract("one", "User:acme"), contract("two", "User:acme")],
            DEFAULT_TOPICS,
            "partners one and two share the principal User:acme",
        ),
        (
            [dataclasses.replace(contract("acme"), topic="sis.student.changes")],
            DEFAULT_TOPICS,
            "sis.student.changes is a bus topic",
        ),
    ],
)
def test_contracts_that_would_share_access_are_refused_with_the_reason(
    contracts: list[Contract], topics: Topics, says: str
) -> None:
    with pytest.raises(AclPlanError) as raised:
        plan_acls(contracts, topics)
    assert says in str(raised.value)


# -- hallpass acl plan --------------------------------------------------------------------


def run(args: list[str], env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, args, env={"HALLPASS_TOPIC_PREFIX": "", **(env or {})})
    return result.exit_code, result.stdout, result.stderr


def test_acl_plan_prints_one_aligned_row_per_acl() -> None:
    code, out, err = run(["acl", "plan", "--contracts", str(SAMPLE_CONTRACTS)])
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["PRINCIPAL", "RESOURCE", "PATTERN", "OPERATION"]
    rows = [line.split() for line in lines[1:]]
    assert rows == [
        [r.principal, f"{r.resource_type}:{r.resource_name}", r.pattern_type, r.operation]
        for r in plan_acls(sample_contracts())
    ]
    starts = {line.index("LITERAL") for line in lines[1:] if "LITERAL" in line}
    assert len(starts) == 1  # aligned
    assert "93 ACLs for 8 principals" in err


def test_acl_plan_json_is_the_plan() -> None:
    code, out, _ = run(["acl", "plan", "--json", "--contracts", str(SAMPLE_CONTRACTS)])
    assert code == 0
    assert json.loads(out) == [dataclasses.asdict(r) for r in plan_acls(sample_contracts())]


def test_acl_plan_reads_the_contracts_dir_and_prefix_from_the_environment(
    tmp_path: Path,
) -> None:
    shutil.copy(SAMPLE_CONTRACTS / "measurely.yaml", tmp_path)
    shutil.copy(SAMPLE_CONTRACTS / "measurely.lock.yaml", tmp_path)
    code, out, _ = run(
        ["acl", "plan", "--json"],
        {"HALLPASS_CONTRACTS_DIR": str(tmp_path), "HALLPASS_TOPIC_PREFIX": "district7."},
    )
    assert code == 0
    rules = [AclRule(**r) for r in json.loads(out)]
    vendors = {r.principal for r in rules} - set(ROLES.principals())
    assert vendors == {"User:measurely"}
    assert (
        AclRule(
            "User:measurely", "TOPIC", "LITERAL", "district7.partner.measurely.students", "READ"
        )
        in rules
    )


def test_acl_plan_refuses_invalid_contracts(tmp_path: Path) -> None:
    text = (SAMPLE_CONTRACTS / "measurely.yaml").read_text()
    (tmp_path / "measurely.yaml").write_text(
        text.replace("principal: User:measurely", "principal: measurely")
    )
    code, out, err = run(["acl", "plan", "--contracts", str(tmp_path)])
    assert code == 1
    assert out == ""
    assert "principal: must be a Kafka principal" in err


def test_acl_plan_refuses_partners_that_would_share_consumer_groups(tmp_path: Path) -> None:
    text = (SAMPLE_CONTRACTS / "learnwell.yaml").read_text()
    (tmp_path / "learnwell.yaml").write_text(text)
    (tmp_path / "learnwell-plus.yaml").write_text(text.replace("learnwell", "learnwell-plus"))
    lock_contracts(tmp_path, field_catalog(load_schema("student_record_changed")))
    code, out, err = run(["acl", "plan", "--contracts", str(tmp_path)])
    assert code == 1
    assert out == ""
    assert "partners learnwell and learnwell-plus" in err


def test_acl_plan_says_when_the_contracts_dir_is_missing(tmp_path: Path) -> None:
    code, _, err = run(["acl", "plan", "--contracts", str(tmp_path / "nowhere")])
    assert code == 1
    assert "no such directory of contracts" in err
