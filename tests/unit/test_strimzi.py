"""Strimzi manifests: valid against Strimzi's own CRD schemas, the ACLs of the plan, the
topics the processor creates; `hallpass deploy render strimzi`.

The CRDs are Strimzi 1.2.0's (tests/fixtures/strimzi/README.md). They are checked strictly:
an object schema that lists its properties accepts no others, as `kubectl apply` (strict
field validation) refuses unknown fields.
"""

from __future__ import annotations

import copy
import dataclasses
import re
from collections.abc import Iterator
from datetime import date
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from streams.cli import main
from streams.kafka.names import DEFAULT_TOPICS, Topics
from streams.policy.contracts import Allowance, Basis, Contract
from streams.policy.retention import TopicSettings
from streams.security.acl_plan import AclPlanError, AclRule, Roles, plan_acls
from streams.security.strimzi import (
    StrimziRenderError,
    StrimziTarget,
    kafka_topics,
    kafka_users,
    render_strimzi,
)

REPO = Path(__file__).resolve().parents[2]
FIXTURES = REPO / "tests" / "fixtures" / "strimzi"
SAMPLE_CONTRACTS = REPO / "deploy" / "contracts"
K8S_EXAMPLE = REPO / "deploy" / "k8s"
ROLES = Roles()
DEFAULT_TARGET = StrimziTarget()

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")

# Strimzi's ACL vocabulary back to Kafka's, written out here rather than taken from the code
# under test.
KAFKA_OPERATION = {
    "Read": "READ",
    "Write": "WRITE",
    "Create": "CREATE",
    "Delete": "DELETE",
    "Alter": "ALTER",
    "Describe": "DESCRIBE",
    "ClusterAction": "CLUSTER_ACTION",
    "DescribeConfigs": "DESCRIBE_CONFIGS",
    "AlterConfigs": "ALTER_CONFIGS",
    "IdempotentWrite": "IDEMPOTENT_WRITE",
    "All": "ALL",
}
KAFKA_RESOURCE = {
    "topic": "TOPIC",
    "group": "GROUP",
    "transactionalId": "TRANSACTIONAL_ID",
    "cluster": "CLUSTER",
}
KAFKA_PATTERN = {"literal": "LITERAL", "prefix": "PREFIXED"}


def _strict(schema: Any) -> Any:
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if (
            "properties" in out
            and "additionalProperties" not in out
            and not out.get("x-kubernetes-preserve-unknown-fields")
        ):
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


@cache
def validator(kind: str) -> Draft7Validator:
    crd_file = {"KafkaTopic": "043-Crd-kafkatopic.yaml", "KafkaUser": "044-Crd-kafkauser.yaml"}
    crd = yaml.safe_load((FIXTURES / crd_file[kind]).read_text())
    assert crd["spec"]["names"]["kind"] == kind
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)


def crd_errors(manifest: dict[str, Any]) -> list[str]:
    """Every way ``manifest`` breaks its CRD schema or Kubernetes' naming rules."""
    errors = [
        f"{'/'.join(map(str, e.path))}: {e.message}"
        for e in validator(manifest["kind"]).iter_errors(manifest)
    ]
    if manifest["apiVersion"] != "kafka.strimzi.io/v1":
        errors.append(f"apiVersion {manifest['apiVersion']}")
    metadata = manifest["metadata"]
    name = metadata["name"]
    if not (len(name) <= 253 and DNS_SUBDOMAIN.match(name)):
        errors.append(f"metadata.name {name!r}")
    if "namespace" in metadata and not DNS_LABEL.match(metadata["namespace"]):
        errors.append(f"metadata.namespace {metadata['namespace']!r}")
    for key, value in metadata.get("labels", {}).items():
        if not (len(value) <= 63 and LABEL_VALUE.match(value)):
            errors.append(f"label {key}={value!r}")
    return errors


def rules_of(user: dict[str, Any]) -> set[AclRule]:
    principal = f"User:{user['metadata']['name']}"
    rules = set()
    for acl in user["spec"].get("authorization", {}).get("acls", []):
        resource = acl["resource"]
        for operation in acl["operations"]:
            rules.add(
                AclRule(
                    principal,
                    KAFKA_RESOURCE[resource["type"]],
                    KAFKA_PATTERN[resource.get("patternType", "literal")],
                    resource.get("name", "kafka-cluster"),
                    KAFKA_OPERATION[operation],
                    acl.get("type", "allow").upper(),
                    acl.get("host", "*"),
                )
            )
    return rules


def contract(partner: str) -> Contract:
    return Contract(
        partner=partner,
        display_name=partner.title(),
        version=1,
        purpose="tests",
        valid_from=date(2026, 1, 1),
        valid_until=date(2027, 1, 1),
        laws=("FERPA",),
        principal=f"User:{partner}",
        pseudonymous_ids=True,
        allow=(Allowance(Basis.DIRECTORY, category="student_name"),),
    )


def sample_contracts() -> list[Contract]:
    from streams.policy.catalog import field_catalog, load_schema
    from streams.policy.contracts import load_contracts

    return load_contracts(SAMPLE_CONTRACTS, field_catalog(load_schema("student_record_changed")))


def by_name(manifests: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {m["metadata"]["name"]: m for m in manifests}


def all_manifests(
    contracts: list[Contract],
    topics: Topics = DEFAULT_TOPICS,
    target: StrimziTarget = DEFAULT_TARGET,
) -> Iterator[dict[str, Any]]:
    yield from kafka_topics(contracts, topics, target)
    yield from kafka_users(contracts, topics, ROLES, target)


# -- the schema check itself ----------------------------------------------------------------


def test_the_crd_check_refuses_what_the_api_server_would() -> None:
    user = kafka_users(sample_contracts())[2]
    assert crd_errors(user) == []
    typo = copy.deepcopy(user)
    typo["spec"]["authorization"]["acls"][0]["resource"]["patterType"] = "prefix"
    kafka_names = copy.deepcopy(user)
    kafka_names["spec"]["authorization"]["acls"][0]["operations"] = ["READ"]
    no_type = copy.deepcopy(user)
    del no_type["spec"]["authentication"]["type"]
    bad_name = copy.deepcopy(user)
    bad_name["metadata"]["name"] = "User:Learnwell"
    for broken in (typo, kafka_names, no_type, bad_name):
        assert crd_errors(broken) != []
    topic = kafka_topics(sample_contracts())[0]
    zero = copy.deepcopy(topic)
    zero["spec"]["partitions"] = 0
    assert crd_errors(topic) == [] and crd_errors(zero) != []


# -- the sample contracts -----------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        DEFAULT_TARGET,
        StrimziTarget(
            "prod-kafka", "streaming", 6, TopicSettings(replication_factor=3, min_insync_replicas=2)
        ),
    ],
)
def test_every_manifest_is_valid_against_the_strimzi_crds(target: StrimziTarget) -> None:
    for manifest in all_manifests(sample_contracts(), target=target):
        assert crd_errors(manifest) == [], manifest["metadata"]["name"]
        assert manifest["metadata"]["labels"]["strimzi.io/cluster"] == target.cluster
        assert manifest["metadata"].get("namespace") == target.namespace


def test_each_principal_has_a_scram_user_with_exactly_its_planned_acls() -> None:
    contracts = sample_contracts()
    users = by_name(kafka_users(contracts))
    assert sorted(users) == [
        "admin",
        "carewell-health",
        "hallpass-auditor",
        "hallpass-consent",
        "hallpass-processor",
        "hallpass-registry",
        "hallpass-sis",
        "learnwell",
        "measurely",
    ]
    assert {u["spec"]["authentication"]["type"] for u in users.values()} == {"scram-sha-512"}
    plan = plan_acls(contracts)
    assert set().union(*(rules_of(u) for u in users.values())) == set(plan)
    for name, user in users.items():
        assert rules_of(user) == {r for r in plan if r.principal == f"User:{name}"}
    assert "authorization" not in users["admin"]["spec"]  # a super user of the Kafka resource


def test_a_vendor_user_reads_only_its_own_topics_and_groups_and_writes_its_acks() -> None:
    learnwell = by_name(kafka_users(sample_contracts()))["learnwell"]
    assert learnwell["spec"]["authorization"] == {
        "type": "simple",
        "acls": [
            {
                "type": "allow",
                "resource": {"type": "group", "name": "learnwell-", "patternType": "prefix"},
                "operations": ["Read"],
                "host": "*",
            },
            {
                "type": "allow",
                "resource": {
                    "type": "topic",
                    "name": "partner.learnwell.acks",
                    "patternType": "literal",
                },
                "operations": ["Describe", "Write"],
                "host": "*",
            },
            {
                "type": "allow",
                "resource": {
                    "type": "topic",
                    "name": "partner.learnwell.notices",
                    "patternType": "literal",
                },
                "operations": ["Describe", "Read"],
                "host": "*",
            },
            {
                "type": "allow",
                "resource": {
                    "type": "topic",
                    "name": "partner.learnwell.students",
                    "patternType": "literal",
                },
                "operations": ["Describe", "Read"],
                "host": "*",
            },
        ],
    }


def test_topics_are_those_the_processor_creates_with_their_compaction() -> None:
    topics = by_name(
        kafka_topics(
            sample_contracts(),
            target=StrimziTarget(partitions=6, settings=TopicSettings(replication_factor=2)),
        )
    )
    shape = {
        name: (t["spec"]["partitions"], t["spec"].get("config", {}).get("cleanup.policy"))
        for name, t in topics.items()
    }
    assert shape == {
        "sis.student.changes": (6, "delete"),
        "consent.events": (6, "delete"),
        "audit.disclosures": (6, "delete"),
        "sis.student.changes.dlq": (1, "delete"),
        "sis.student.changes.dlq.replayed": (1, "compact"),
        "hallpass.processor.state": (6, "compact"),
        "hallpass.processor.districts": (1, "compact"),
        "hallpass.processor.repartition": (6, "delete"),
        "partner.carewell-health.students": (6, "compact"),
        "partner.carewell-health.notices": (6, "delete"),
        "partner.carewell-health.acks": (6, "delete"),
        "partner.learnwell.students": (6, "compact"),
        "partner.learnwell.notices": (6, "delete"),
        "partner.learnwell.acks": (6, "delete"),
        "partner.measurely.students": (6, "compact"),
        "partner.measurely.notices": (6, "delete"),
        "partner.measurely.acks": (6, "delete"),
    }
    assert {t["spec"]["replicas"] for t in topics.values()} == {2}
    assert not any("topicName" in t["spec"] for t in topics.values())


def test_topics_carry_the_retention_the_law_needs_and_its_reason() -> None:
    settings = TopicSettings(min_insync_replicas=2, tombstone_retention_days=40)
    topics = by_name(kafka_topics(sample_contracts(), target=StrimziTarget(settings=settings)))
    config = {name: t["spec"]["config"] for name, t in topics.items()}
    forever = {
        "cleanup.policy": "delete",
        "retention.ms": "-1",
        "retention.bytes": "-1",
        "min.insync.replicas": "2",
    }
    for name in ("consent.events", "audit.disclosures"):
        assert config[name] == forever, name
    assert config["partner.learnwell.notices"] == forever | {"compression.type": "gzip"}
    assert config["partner.learnwell.acks"] == forever | {"compression.type": "gzip"}
    assert config["sis.student.changes.dlq.replayed"] == {
        "cleanup.policy": "compact",
        "min.insync.replicas": "2",
    }
    assert config["partner.learnwell.students"] == {
        "cleanup.policy": "compact",
        "delete.retention.ms": str(40 * 86_400_000),
        "compression.type": "gzip",
        "min.insync.replicas": "2",
    }
    assert config["sis.student.changes"]["retention.ms"] == str(7 * 86_400_000)
    assert config["hallpass.processor.repartition"]["retention.ms"] == str(72 * 3_600_000)
    # replication -1: no `replicas`, the cluster's default.replication.factor
    assert not any("replicas" in t["spec"] for t in topics.values())
    assert all(
        t["metadata"]["annotations"]["hallpass.io/retention-reason"] for t in topics.values()
    )


def test_the_committed_example_matches_the_sample_contracts() -> None:
    rendered = render_strimzi(sample_contracts(), source="deploy/contracts")
    for name, text in rendered.items():
        assert (K8S_EXAMPLE / name).read_text() == text, (
            f"deploy/k8s/{name} is stale: run `hallpass deploy render strimzi`"
        )


# -- names Kubernetes does not take as they are --------------------------------------------


def test_topic_names_kubernetes_refuses_go_in_topic_name() -> None:
    topics = Topics("District_7.")
    manifests = kafka_topics(sample_contracts(), topics)
    for manifest in manifests:
        assert crd_errors(manifest) == []
        assert manifest["spec"]["topicName"].startswith("District_7.")
    assert len(by_name(manifests)) == len(manifests)  # still one resource per topic
    assert {m["spec"]["topicName"] for m in manifests} == {
        topics.name(m) for m in by_name(kafka_topics(sample_contracts()))
    }


def test_a_principal_that_cannot_name_a_kafka_user_is_refused() -> None:
    odd = dataclasses.replace(contract("acme"), principal="User:ACME@corp")
    with pytest.raises(StrimziRenderError, match="User:ACME@corp"):
        kafka_users([odd])


def test_a_bad_cluster_name_is_refused() -> None:
    with pytest.raises(StrimziRenderError, match="cluster 'My_Cluster'"):
        kafka_topics(sample_contracts(), target=StrimziTarget(cluster="My_Cluster"))


# -- any contracts ------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True),
        unique=True,
        max_size=5,
    ),
    st.sampled_from(["", "district7.", "T_1-", "a-"]),
)
def test_any_contracts_render_valid_manifests_with_the_planned_acls(
    partners: list[str], prefix: str
) -> None:
    contracts = [contract(p) for p in partners]
    topics = Topics(prefix)
    try:
        plan = plan_acls(contracts, topics)
    except AclPlanError:
        with pytest.raises(AclPlanError):
            kafka_users(contracts, topics)
        return
    users = kafka_users(contracts, topics)
    for manifest in [*kafka_topics(contracts, topics), *users]:
        assert crd_errors(manifest) == []
    assert set().union(*(rules_of(u) for u in users)) == set(plan)
    names = {
        m["spec"].get("topicName", m["metadata"]["name"]) for m in kafka_topics(contracts, topics)
    }
    assert {r.resource_name for r in plan if r.resource_type == "TOPIC"} - names == {
        "kafkasql-journal",
        "kafkasql-snapshots",
        "registry-events",
    }  # the registry's own


# -- hallpass deploy render strimzi --------------------------------------------------------


def test_render_command_writes_the_topics_and_users(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "deploy",
            "render",
            "strimzi",
            "--out",
            str(tmp_path / "k8s"),
            "--contracts",
            str(SAMPLE_CONTRACTS),
            "--cluster",
            "prod-kafka",
            "--namespace",
            "streaming",
            "--replicas",
            "2",
        ],
        env={"HALLPASS_TOPIC_PREFIX": "", "HALLPASS_MIN_INSYNC_REPLICAS": "2"},
    )
    assert result.exit_code == 0, result.output
    target = StrimziTarget(
        "prod-kafka",
        "streaming",
        settings=TopicSettings(replication_factor=2, min_insync_replicas=2),
    )
    topics = list(yaml.safe_load_all((tmp_path / "k8s" / "kafka-topics.yaml").read_text()))
    users = list(yaml.safe_load_all((tmp_path / "k8s" / "kafka-users.yaml").read_text()))
    assert topics == kafka_topics(sample_contracts(), target=target)
    assert users == kafka_users(sample_contracts(), target=target)
    assert f"wrote {tmp_path / 'k8s' / 'kafka-users.yaml'}" in result.stdout


def test_render_command_refuses_a_bad_namespace(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main,
        [
            "deploy",
            "render",
            "strimzi",
            "--out",
            str(tmp_path),
            "--namespace",
            "Not OK",
            "--contracts",
            str(SAMPLE_CONTRACTS),
        ],
    )
    assert result.exit_code == 1
    assert "namespace 'Not OK'" in result.stderr
    assert list(tmp_path.iterdir()) == []
