"""The Helm chart deploy/helm/hallpass: `helm lint`, `helm template` with the default values and
with the three sample partners, every rendered object valid against its schema, and the
chart's topics and users the same as `hallpass deploy render strimzi`, `hallpass topics plan`
and `hallpass acl plan`.

Schemas, all checked strictly (a field the schema does not list is an error, as with
`kubectl apply --validate=strict`): Kubernetes 1.33's own objects (tests/fixtures/kubernetes),
Strimzi 1.2.0's CRDs (tests/fixtures/strimzi, tests/fixtures/strimzi-kafka) and Prometheus
Operator 0.93's (tests/fixtures/prometheus-operator). `make tools` installs helm.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import (
    Draft7Validator,
    Draft202012Validator,
)

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "deploy" / "helm" / "hallpass"
EXAMPLES = REPO / "deploy" / "helm" / "examples"
THREE_PARTNERS = (EXAMPLES / "contracts.values.yaml", EXAMPLES / "partners.values.yaml")
FIXTURES = REPO / "tests" / "fixtures"
KUBE_VERSION = "1.33.0"
HALLPASS = str(Path(sys.executable).parent / "hallpass")
PARTNERS = ("carewell-health", "learnwell", "measurely")
LAG_EXPORTER_USER = "hallpass-lag-exporter"


def _helm() -> str | None:
    found = shutil.which("helm")
    if found:
        return found
    gopath = os.environ.get("GOPATH") or str(Path.home() / "go")
    go = shutil.which("go")
    if go:  # where `make tools` installed it: `go install` puts it in $(go env GOPATH)/bin
        gopath = (
            subprocess.run(
                [go, "env", "GOPATH"], capture_output=True, text=True, check=False
            ).stdout.strip()
            or gopath
        )
    candidate = Path(gopath.split(os.pathsep)[0]) / "bin" / "helm"
    return str(candidate) if candidate.exists() else None


HELM = _helm()
pytestmark = pytest.mark.skipif(
    HELM is None, reason="helm is not installed (`make tools` installs it with `go install`)"
)


# -- rendering ------------------------------------------------------------------------------


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    assert HELM is not None
    return subprocess.run([HELM, *args], capture_output=True, text=True, check=False, timeout=120)


def template_args(values: tuple[Path, ...], sets: tuple[str, ...]) -> list[str]:
    args = ["template", "hp", str(CHART), "--namespace", "hallpass", "--kube-version", KUBE_VERSION]
    for file in values:
        args += ["-f", str(file)]
    for item in sets:
        args += ["--set", item]
    return args


@cache
def render(values: tuple[Path, ...] = (), sets: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    result = helm(*template_args(values, sets))
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def render_error(values: tuple[Path, ...] = (), sets: tuple[str, ...] = ()) -> str:
    result = helm(*template_args(values, sets))
    assert result.returncode != 0
    return result.stderr


def of_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = of_kind(docs, kind).values()
    return found


VALUE_SETS = {
    "defaults": ((), ()),
    "three-partners": (THREE_PARTNERS, ()),
    "three-partners-secrets-in-values": (
        THREE_PARTNERS,
        (
            "partnerSecrets.existingSecret=",
            *(f"partnerSecrets.secrets.{p}={'ab' * 32}" for p in PARTNERS),
        ),
    ),
}


# -- schemas --------------------------------------------------------------------------------


def _strict(schema: Any) -> Any:
    """A CRD schema that refuses unknown fields: an object schema listing its properties
    accepts no others (unless it preserves unknown fields). Go's inline flags after `^`
    (`^(?i)...`) move to the front, where Python's re wants them."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        pattern = out.get("pattern")
        if isinstance(pattern, str) and pattern.startswith("^(?i)"):
            out["pattern"] = "(?i)^" + pattern[len("^(?i)") :]
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


CRDS = {
    ("kafka.strimzi.io/v1", "Kafka"): "strimzi-kafka/040-Crd-kafka.yaml",
    ("kafka.strimzi.io/v1", "KafkaNodePool"): "strimzi-kafka/045-Crd-kafkanodepool.yaml",
    ("kafka.strimzi.io/v1", "KafkaTopic"): "strimzi/043-Crd-kafkatopic.yaml",
    ("kafka.strimzi.io/v1", "KafkaUser"): "strimzi/044-Crd-kafkauser.yaml",
    (
        "monitoring.coreos.com/v1",
        "PodMonitor",
    ): "prometheus-operator/monitoring.coreos.com_podmonitors.yaml",
    (
        "monitoring.coreos.com/v1",
        "ServiceMonitor",
    ): "prometheus-operator/monitoring.coreos.com_servicemonitors.yaml",
    (
        "monitoring.coreos.com/v1",
        "PrometheusRule",
    ): "prometheus-operator/monitoring.coreos.com_prometheusrules.yaml",
}


@cache
def kubernetes_schemas() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / "kubernetes" / "v1.33.0-strict.json").read_text())
    return data


@cache
def validator(api_version: str, kind: str) -> Any:
    if (api_version, kind) in CRDS:
        crd = yaml.safe_load((FIXTURES / CRDS[api_version, kind]).read_text())
        assert crd["spec"]["names"]["kind"] == kind
        version = api_version.rsplit("/", 1)[1]
        (served,) = [v for v in crd["spec"]["versions"] if v["name"] == version]
        schema = _strict(served["schema"]["openAPIV3Schema"])
        Draft7Validator.check_schema(schema)
        return Draft7Validator(schema)
    schemas = kubernetes_schemas()
    root = schemas["kinds"].get(f"{api_version}/{kind}")
    assert root is not None, f"no schema for {api_version} {kind}: add it to the fixture"
    full = {**root, "$defs": schemas["$defs"]}
    Draft202012Validator.check_schema(full)
    return Draft202012Validator(full)


DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def schema_errors(doc: dict[str, Any]) -> list[str]:
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator(doc["apiVersion"], doc["kind"]).iter_errors(doc)
    ]
    name = doc["metadata"]["name"]
    if not (len(name) <= 253 and DNS_SUBDOMAIN.match(name)):
        errors.append(f"metadata.name {name!r}")
    for key, value in doc["metadata"].get("labels", {}).items():
        if not (isinstance(value, str) and len(value) <= 63 and LABEL_VALUE.match(value)):
            errors.append(f"label {key}={value!r}")
    return errors


def pod_specs(docs: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in docs:
        spec = doc.get("spec", {})
        if doc["kind"] == "CronJob":
            spec = spec["jobTemplate"]["spec"]
        if "template" in spec and doc["kind"] in {"Deployment", "StatefulSet", "Job", "CronJob"}:
            yield doc["metadata"]["name"], spec["template"]


# -- helm lint, and every object valid -------------------------------------------------------


@pytest.mark.parametrize("values", [(), THREE_PARTNERS], ids=["defaults", "three-partners"])
def test_helm_lint_passes(values: tuple[Path, ...]) -> None:
    args = ["lint", str(CHART), "--strict", "--kube-version", KUBE_VERSION]
    for file in values:
        args += ["-f", str(file)]
    result = helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_every_rendered_object_is_valid_against_its_schema(name: str) -> None:
    docs = render(*VALUE_SETS[name])
    assert len(docs) > 30
    for doc in docs:
        assert schema_errors(doc) == [], f"{doc['kind']} {doc['metadata']['name']}"
    names = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names))


def test_the_schema_check_refuses_unknown_fields_and_wrong_types() -> None:
    docs = render(THREE_PARTNERS)
    statefulset = one(docs, "StatefulSet")
    typo = copy.deepcopy(statefulset)
    typo["spec"]["template"]["spec"]["containers"][0]["volumeMount"] = []
    mode = copy.deepcopy(statefulset)
    mode["spec"]["template"]["spec"]["volumes"][0]["projected"]["defaultMode"] = "0440"
    kafka = copy.deepcopy(one(docs, "Kafka"))
    kafka["spec"]["kafka"]["listeners"][0]["authentication"]["type"] = "scram-sha-256"
    pod_monitor = copy.deepcopy(one(docs, "PodMonitor"))
    pod_monitor["spec"]["podMetricsEndpoint"] = pod_monitor["spec"].pop("podMetricsEndpoints")
    policy = copy.deepcopy(next(iter(of_kind(docs, "NetworkPolicy").values())))
    policy["spec"]["ingres"] = []
    for broken in (typo, mode, kafka, pod_monitor, policy):
        assert schema_errors(broken) != [], broken["kind"]


# -- topics and users: the same as hallpass's own plans ------------------------------------


def hallpass(*args: str, contracts: Path) -> str:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("HALLPASS_") or k == "HALLPASS_TOPIC_PREFIX"
    }
    result = subprocess.run(
        [HALLPASS, *args, "--contracts", str(contracts)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
        timeout=60,
    )
    return result.stdout


def rendered_by_hallpass(
    contracts: Path, partitions: int, tmp_path: Path
) -> tuple[list[Any], list[Any]]:
    out = tmp_path / f"k8s-{partitions}"
    hallpass(
        "deploy",
        "render",
        "strimzi",
        "--out",
        str(out),
        "--partitions",
        str(partitions),
        contracts=contracts,
    )
    return (
        list(yaml.safe_load_all((out / "kafka-topics.yaml").read_text())),
        list(yaml.safe_load_all((out / "kafka-users.yaml").read_text())),
    )


def comparable(manifest: dict[str, Any]) -> dict[str, Any]:
    """What the renderer decides: name, the reason annotation, the spec, the cluster."""
    metadata = manifest["metadata"]
    return {
        "name": metadata["name"],
        "annotations": metadata.get("annotations", {}),
        "cluster": metadata["labels"]["strimzi.io/cluster"],
        "spec": manifest["spec"],
    }


@pytest.mark.parametrize("partitions", [3, 12])
@pytest.mark.parametrize("with_partners", [False, True], ids=["no-partner", "three-partners"])
def test_topics_and_users_are_those_of_deploy_render_strimzi(
    partitions: int, with_partners: bool, tmp_path: Path
) -> None:
    values = THREE_PARTNERS if with_partners else ()
    contracts = REPO / "deploy" / "contracts" if with_partners else tmp_path / "none"
    contracts.mkdir(exist_ok=True)
    docs = render(values, (f"topics.partitions={partitions}", "processor.replicas=3"))
    topics, users = rendered_by_hallpass(contracts, partitions, tmp_path)
    chart_topics = sorted(of_kind(docs, "KafkaTopic").values(), key=lambda m: m["metadata"]["name"])
    assert [comparable(m) for m in chart_topics] == [comparable(m) for m in topics]
    chart_users = [
        u for name, u in sorted(of_kind(docs, "KafkaUser").items()) if name != LAG_EXPORTER_USER
    ]
    assert [comparable(m) for m in chart_users] == [comparable(m) for m in users]


@pytest.mark.parametrize("with_partners", [False, True], ids=["no-partner", "three-partners"])
def test_topics_have_the_settings_of_topics_plan(with_partners: bool, tmp_path: Path) -> None:
    values = THREE_PARTNERS if with_partners else ()
    contracts = REPO / "deploy" / "contracts" if with_partners else tmp_path
    plan = json.loads(hallpass("topics", "plan", "--json", contracts=contracts))
    docs = render(values, ("topics.partitions=3", "processor.replicas=3"))
    chart = {t["spec"].get("topicName", name): t for name, t in of_kind(docs, "KafkaTopic").items()}
    assert sorted(chart) == sorted(p["topic"] for p in plan)
    for entry in plan:
        spec = chart[entry["topic"]]["spec"]
        assert spec["partitions"] == entry["partitions"], entry["topic"]
        assert spec.get("config", {}) == entry["config"], entry["topic"]
        # -1 in the plan: the cluster's default.replication.factor, which the chart sets
        assert spec.get("replicas", -1) == entry["replication_factor"]
        assert (
            chart[entry["topic"]]["metadata"]["annotations"]["hallpass.io/retention-reason"]
            == entry["why"]
        )


# Strimzi's ACL vocabulary back to Kafka's, written out here rather than taken from code.
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


def acl_rules(user: dict[str, Any]) -> set[tuple[str, ...]]:
    principal = f"User:{user['metadata']['name']}"
    rules: set[tuple[str, ...]] = set()
    for acl in user["spec"].get("authorization", {}).get("acls", []):
        resource = acl["resource"]
        for operation in acl["operations"]:
            rules.add(
                (
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


@pytest.mark.parametrize("with_partners", [False, True], ids=["no-partner", "three-partners"])
def test_users_have_exactly_the_acls_of_acl_plan(with_partners: bool, tmp_path: Path) -> None:
    values = THREE_PARTNERS if with_partners else ()
    contracts = REPO / "deploy" / "contracts" if with_partners else tmp_path
    plan = {
        (
            r["principal"],
            r["resource_type"],
            r["pattern_type"],
            r["resource_name"],
            r["operation"],
            r["permission"],
            r["host"],
        )
        for r in json.loads(hallpass("acl", "plan", "--json", contracts=contracts))
    }
    users = of_kind(render(values), "KafkaUser")
    exporter = users.pop(LAG_EXPORTER_USER)
    assert set().union(*(acl_rules(u) for u in users.values())) == plan
    assert {u["spec"]["authentication"]["type"] for u in users.values()} == {"scram-sha-512"}
    assert "authorization" not in users["admin"]["spec"]
    assert one(render(values), "Kafka")["spec"]["kafka"]["authorization"]["superUsers"] == ["admin"]
    if with_partners:
        assert set(PARTNERS) <= set(users)
    # the chart's one addition, the lag exporter: it describes, and reads only the proofs of
    # deletion the auditor reads (every partner's notices and acks), never the ledger
    proofs = {r[3] for r in plan if r[0] == "User:hallpass-auditor" and r[1] == "TOPIC"}
    proofs.discard("audit.disclosures")
    assert exporter_reads(exporter) == proofs
    assert {rule[4] for rule in acl_rules(exporter)} == {"DESCRIBE", "READ"}


def exporter_reads(user: dict[str, Any]) -> set[str]:
    """The topics the user may read (literal names: a pattern would fail the caller)."""
    reads = {r for r in acl_rules(user) if r[1] == "TOPIC" and r[4] == "READ"}
    assert {r[2] for r in reads} <= {"LITERAL"} and "*" not in {r[3] for r in reads}
    return {r[3] for r in reads}


def may_read(user: dict[str, Any], topic: str) -> bool:
    """Whether an ACL of ``user`` lets it read ``topic`` (literal, wildcard or prefix)."""
    return any(
        r[1] == "TOPIC"
        and r[4] in {"READ", "ALL"}
        and (r[3] in {topic, "*"} if r[2] == "LITERAL" else topic.startswith(r[3]))
        for r in acl_rules(user)
    )


def check_exporter_follows_deletion_acks(
    docs: list[dict[str, Any]], prefix: str = "", partners: tuple[str, ...] = PARTNERS
) -> None:
    """`lag-exporter --deletion-acks`, and its user may read every partner's notices and acks
    and join the follower's groups (connectors/partner/acks.py READER_GROUP_PREFIX, never
    under the topic prefix), but read no students topic; it decodes as the registry's
    read-only user."""
    (exporter,) = [
        d for d in docs if d["kind"] == "Deployment" and "lag-exporter" in d["metadata"]["name"]
    ]
    pod = exporter["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert "--deletion-acks" in container["args"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["HALLPASS_SASL_USERNAME"] == LAG_EXPORTER_USER
    assert (
        env["HALLPASS_SCHEMA_REGISTRY_USER_INFO_FILE"] == "/run/hallpass/private/registry.user-info"
    )
    secrets = {v["name"]: v for v in pod["volumes"]}["secrets"]["projected"]["sources"]
    registry_keys = [
        item["key"]
        for source in secrets
        if source["secret"]["name"].endswith("-registry-users")
        for item in source["secret"]["items"]
    ]
    assert registry_keys == ["reader.user-info"]

    user = of_kind(docs, "KafkaUser")[LAG_EXPORTER_USER]
    proofs = {f"{prefix}partner.{p}.{kind}" for p in partners for kind in ("notices", "acks")}
    assert exporter_reads(user) == proofs
    rules = acl_rules(user)
    for topic in proofs:
        assert (
            f"User:{LAG_EXPORTER_USER}",
            "TOPIC",
            "LITERAL",
            topic,
            "DESCRIBE",
            "ALLOW",
            "*",
        ) in rules
    students = [
        t["spec"].get("topicName", name)
        for name, t in of_kind(docs, "KafkaTopic").items()
        if t["spec"].get("topicName", name).endswith(".students")
    ]
    assert sorted(students) == sorted(f"{prefix}partner.{p}.students" for p in partners)
    for topic in students:
        assert not may_read(user, topic), topic
        assert not any(r[3] == topic for r in rules), topic
    groups = {r[2:5] for r in rules if r[1] == "GROUP" and r[4] == "READ"}
    assert groups == {("PREFIXED", "hallpass-disclosures-retractions-", "READ")}


def test_the_lag_exporter_exports_deletion_acknowledgements_by_default() -> None:
    """lagExporter.deletionAcks (on by default): the exporter serves the outstanding deletion
    notices per partner that HallpassDeletionUnacknowledged watches."""
    check_exporter_follows_deletion_acks(render(THREE_PARTNERS))
    # no partner yet: the flag and the group, no topic to read
    check_exporter_follows_deletion_acks(render(), partners=())


def test_the_lag_exporter_follows_deletion_acks_under_a_topic_prefix(tmp_path: Path) -> None:
    """The partners' topics as generate.py writes them for a deployment with a topic prefix;
    the follower's groups are never prefixed."""
    values = tmp_path / "prefixed.values.yaml"
    subprocess.run(
        [
            sys.executable,
            str(REPO / "deploy" / "helm" / "generate.py"),
            "--contracts",
            str(REPO / "deploy" / "contracts"),
            "--out",
            str(values),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
        env={
            **{k: v for k, v in os.environ.items() if not k.startswith("HALLPASS_")},
            "HALLPASS_TOPIC_PREFIX": "d7.",
        },
    )
    docs = render((values, THREE_PARTNERS[1]))
    check_exporter_follows_deletion_acks(docs, prefix="d7.")


def test_without_deletion_acks_the_lag_exporter_only_describes() -> None:
    docs = render(THREE_PARTNERS, ("lagExporter.deletionAcks=false",))
    (exporter,) = [
        d for d in docs if d["kind"] == "Deployment" and "lag-exporter" in d["metadata"]["name"]
    ]
    assert "--deletion-acks" not in exporter["spec"]["template"]["spec"]["containers"][0]["args"]
    user = of_kind(docs, "KafkaUser")[LAG_EXPORTER_USER]
    assert {rule[4] for rule in acl_rules(user)} == {"DESCRIBE"}


def test_generated_files_are_current() -> None:
    """values.yaml's generated block, examples/contracts.values.yaml and the copies of the
    alert rules and the dashboard: `make helm` writes them."""
    result = subprocess.run(
        [sys.executable, str(REPO / "deploy" / "helm" / "generate.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr


# -- what the chart promises ---------------------------------------------------------------


def test_kafka_is_kraft_with_three_brokers_and_safe_replication() -> None:
    docs = render(THREE_PARTNERS)
    kafka = one(docs, "Kafka")
    config = kafka["spec"]["kafka"]["config"]
    assert config["default.replication.factor"] == 3
    assert config["min.insync.replicas"] == 2
    assert config["transaction.state.log.min.isr"] == 2
    pools = of_kind(docs, "KafkaNodePool")
    assert {n: (p["spec"]["roles"], p["spec"]["replicas"]) for n, p in pools.items()} == {
        "brokers": (["broker"], 3),
        "controllers": (["controller"], 3),
    }
    assert "zookeeper" not in kafka["spec"]


def test_workers_are_a_statefulset_numbered_by_pod_index() -> None:
    docs = render(THREE_PARTNERS)
    statefulset = one(docs, "StatefulSet")
    assert statefulset["spec"]["replicas"] == 4
    container = statefulset["spec"]["template"]["spec"]["containers"][0]
    assert "--worker=$(HALLPASS_WORKER)" in container["args"]
    (worker,) = [e for e in container["env"] if e["name"] == "HALLPASS_WORKER"]
    assert worker["valueFrom"]["fieldRef"]["fieldPath"] == (
        "metadata.labels['apps.kubernetes.io/pod-index']"
    )
    services = of_kind(docs, "Service")
    assert services[statefulset["spec"]["serviceName"]]["spec"]["clusterIP"] == "None"
    assert of_kind(docs, "KafkaTopic")["sis.student.changes"]["spec"]["partitions"] == 12


def test_more_workers_than_partitions_is_refused() -> None:
    assert "processor.replicas (7) > topics.partitions (6)" in render_error(
        (), ("processor.replicas=7",)
    )


def test_a_partner_without_network_peers_or_secret_is_refused() -> None:
    assert "partners.learnwell needs networkPeers" in render_error(
        THREE_PARTNERS, ("partners.learnwell.networkPeers=null",)
    )
    assert "no pseudonym secret for carewell-health" in render_error(
        THREE_PARTNERS, ("partnerSecrets.existingSecret=",)
    )
    assert "partners.acme has no contract" in render_error(
        THREE_PARTNERS, ("partners.acme.networkPeers[0].ipBlock.cidr=192.0.2.0/24",)
    )


def test_connectors_run_nightly_from_the_export_volume() -> None:
    cronjobs = of_kind(render(THREE_PARTNERS), "CronJob")
    assert sorted(cronjobs) == ["hp-hallpass-edfi", "hp-hallpass-oneroster"]
    for kind, cronjob in (
        ("oneroster", cronjobs["hp-hallpass-oneroster"]),
        ("edfi", cronjobs["hp-hallpass-edfi"]),
    ):
        assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
        pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert container["args"][:2] == ["publish", kind]
        assert container["args"][2].startswith("/var/lib/hallpass-export/")
        volumes = {v["name"]: v for v in pod["volumes"]}
        # writable: the rejects and warnings files go beside the package
        assert volumes["export"]["persistentVolumeClaim"] == {"claimName": "sis-exports"}
        assert volumes["data"]["persistentVolumeClaim"]["claimName"].endswith("-state")
        assert {"name": "HALLPASS_SASL_USERNAME", "value": "hallpass-sis"} in container["env"]


@pytest.mark.parametrize("name", list(VALUE_SETS))
def test_secrets_are_mounted_0440_for_fs_group_and_read_from_a_private_copy(name: str) -> None:
    for pod_name, template in pod_specs(render(*VALUE_SETS[name])):
        pod = template["spec"]
        if pod_name.endswith("-registry"):
            continue  # Apicurio reads its secrets from the environment
        assert pod["securityContext"]["runAsNonRoot"] is True, pod_name
        assert pod["securityContext"]["fsGroup"] == 10001, pod_name
        volumes = {v["name"]: v for v in pod["volumes"]}
        assert volumes["secrets"]["projected"]["defaultMode"] == 0o440, pod_name
        assert volumes["private"]["emptyDir"]["medium"] == "Memory"
        (copy_step,) = pod["initContainers"]
        assert "umask 077" in copy_step["args"][0]
        for container in pod["containers"]:
            env = {e["name"]: e.get("value") for e in container["env"]}
            assert env["HALLPASS_SASL_PASSWORD_FILE"].startswith("/run/hallpass/private/")
            assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_vendors_reach_only_the_brokers() -> None:
    docs = render(THREE_PARTNERS)
    values = {}
    for file in THREE_PARTNERS:
        values.update(yaml.safe_load(file.read_text()))
    vendor_peers = [
        peer
        for _, partner in sorted(values["partners"].items())
        for peer in partner["networkPeers"]
    ]
    listeners = {x["name"]: x for x in one(docs, "Kafka")["spec"]["kafka"]["listeners"]}
    assert listeners["vendors"]["networkPolicyPeers"] == vendor_peers
    assert listeners["vendors"]["authentication"]["type"] == "scram-sha-512"
    assert listeners["vendors"]["tls"] is True
    client = {"podSelector": {"matchLabels": {"hallpass.io/client": "hp"}}}
    assert listeners["hallpass"]["networkPolicyPeers"] == [client]
    policies = of_kind(docs, "NetworkPolicy")
    monitoring = yaml.safe_load((CHART / "values.yaml").read_text())["networkPolicy"]["metricsFrom"]
    for name, policy in policies.items():
        for rule in policy["spec"]["ingress"]:
            assert not any(peer in vendor_peers for peer in rule["from"]), name
            assert rule["from"] in ([client], monitoring), name
    # every pod of the chart is selected by a policy (its ingress is closed but for those)
    selected = [p["spec"]["podSelector"]["matchLabels"] for p in policies.values()]
    for pod_name, template in pod_specs(docs):
        labels = template["metadata"]["labels"]
        assert any(sel.items() <= labels.items() for sel in selected), pod_name
    # no vendor listener (open to all) when no partner is configured
    assert [x["name"] for x in one(render(), "Kafka")["spec"]["kafka"]["listeners"]] == ["hallpass"]


def test_metrics_alerts_and_dashboard_are_on_by_default() -> None:
    docs = render()
    rules = yaml.safe_load(
        (REPO / "deploy" / "prometheus" / "rules" / "hallpass.rules.yml").read_text()
    )
    assert one(docs, "PrometheusRule")["spec"] == rules
    dashboard = of_kind(docs, "ConfigMap")["hp-hallpass-dashboard"]
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"]["hallpass.json"]) == json.loads(
        (REPO / "deploy" / "grafana" / "hallpass.json").read_text()
    )
    # the job label of each scraped pod is a job the alert rules name
    jobs_in_rules = set(re.findall(r'job="([^"]+)"', json.dumps(rules)))
    pod_monitor, service_monitor = one(docs, "PodMonitor"), one(docs, "ServiceMonitor")
    assert (
        pod_monitor["spec"]["jobLabel"]
        == service_monitor["spec"]["jobLabel"]
        == ("hallpass.io/job")
    )
    (job_selector,) = [
        e
        for e in pod_monitor["spec"]["selector"]["matchExpressions"]
        if e["key"] == "hallpass.io/job"
    ]
    services = of_kind(docs, "Service")
    jobs = {
        *job_selector["values"],
        services["hp-hallpass-lag-exporter"]["metadata"]["labels"]["hallpass.io/job"],
    }
    assert jobs_in_rules <= jobs
    statefulset = one(docs, "StatefulSet")
    assert statefulset["spec"]["template"]["metadata"]["labels"]["hallpass.io/job"] == (
        "hallpass-processor"
    )
    args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--metrics-port=9464" in args


def _init_script(pod: dict[str, Any], root: Path) -> str:
    (step,) = pod["initContainers"]
    assert step["command"] == ["/bin/sh", "-c"]
    return (
        str(step["args"][0])
        .replace("/var/run/hallpass/secrets", str(root / "mounted"))
        .replace("/run/hallpass/private", str(root / "private"))
    )


def test_the_private_copy_is_mode_400_and_refuses_missing_partner_secrets(tmp_path: Path) -> None:
    """The init step of the contracts Job, run by sh on a copy of the mounted files."""
    (job,) = of_kind(render(THREE_PARTNERS), "Job").values()
    script = _init_script(job["spec"]["template"]["spec"], tmp_path)
    mounted, private = tmp_path / "mounted", tmp_path / "private"
    mounted.mkdir()
    private.mkdir()
    (mounted / "kafka-password").write_text("pw\n")
    (mounted / "partner-secrets.json").write_text(
        json.dumps({p: "ab" * 32 for p in PARTNERS if p != "measurely"})
    )
    for path in mounted.iterdir():
        path.chmod(0o440)
    missing = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)
    assert missing.returncode == 1
    assert "no pseudonym secret for measurely" in missing.stdout
    (mounted / "partner-secrets.json").chmod(0o640)
    (mounted / "partner-secrets.json").write_text(json.dumps({p: "ab" * 32 for p in PARTNERS}))
    done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sorted(p.name for p in private.iterdir()) == ["kafka-password", "partner-secrets.json"]
    assert {p.stat().st_mode & 0o777 for p in private.iterdir()} == {0o400}
