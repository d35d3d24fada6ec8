"""The whole bus on the secure broker, each step as its least-privileged principal: the SIS
connector publishes a simulated district, the processor turns it into partner views, a
vendor pulls its view, the auditor reads a parent's disclosure report. Every step is the
hallpass CLI as a user runs it, pointed at the principal's client properties."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from connectors.simulation.stream import CHANGES_TOPIC, simulate
from streams.config import ENV_REGISTRY_USER_INFO_FILE
from streams.security.acl_plan import DEFAULT_ROLES
from tests.integration.conftest import SecureBus, process_list

pytestmark = pytest.mark.kafka

STUDENTS, DAYS, SEED = 300, 3, 611


@dataclass(frozen=True)
class Flow:
    simulate_out: str
    process_out: str
    process_exit: int
    pull_out: str


@pytest.fixture(scope="module")
def flow(secure_bus: SecureBus, tmp_path_factory: pytest.TempPathFactory) -> Flow:
    stack = secure_bus.stack
    sis = secure_bus.role(DEFAULT_ROLES.sis_connector)
    # changes as the SIS connector, consents as the consent source: neither may write the
    # other's topic
    simulated = stack.hallpass(
        "simulate",
        "--students",
        str(STUDENTS),
        "--days",
        str(DAYS),
        "--seed",
        str(SEED),
        "--consent-client-properties",
        str(secure_bus.role(DEFAULT_ROLES.consent_source)),
        client_properties=sis,
    )

    log = tmp_path_factory.mktemp("secure-flow") / "process.log"
    processor = stack.popen(
        "process",
        "--until-idle",
        client_properties=secure_bus.role(DEFAULT_ROLES.processor),
        log=log,
    )
    deadline = time.monotonic() + 600
    while processor.poll() is None and time.monotonic() < deadline:
        stack.ps_samples.append(process_list())  # broker, registry and processor running
        time.sleep(1.0)
    if processor.poll() is None:
        processor.kill()
    code = processor.wait(30)
    process_out = log.read_text()
    stack.transcript.append(f"$ hallpass process --until-idle\n{process_out}")

    # the flag instead of the environment variable, this time
    # with the registry's read-only credentials a vendor is given
    pulled = stack.hallpass(
        "--client-properties",
        str(secure_bus.properties["learnwell"]),
        "vendor",
        "pull",
        "--partner",
        "learnwell",
        "--show",
        "1",
        env={ENV_REGISTRY_USER_INFO_FILE: str(stack.registry_reader)},
    )
    return Flow(simulated.stdout, process_out, code, pulled.stdout)


def test_sis_connector_publishes_the_district(flow: Flow) -> None:
    published = re.search(r"published (\d+) events", flow.simulate_out)
    assert published and int(published.group(1)) > STUDENTS


def test_processor_runs_with_its_own_acls_only(flow: Flow) -> None:
    assert flow.process_exit == 0, flow.process_out
    disclosed = re.search(r"learnwell\s+disclosed\s+(\d+)", flow.process_out)
    assert disclosed and int(disclosed.group(1)) > 0, flow.process_out
    assert "0 dead letters" in flow.process_out


def test_vendor_pulls_its_view(flow: Flow) -> None:
    held = re.search(r"local copy holds (\d+) students", flow.pull_out)
    assert held and int(held.group(1)) > 0, flow.pull_out
    shown = json.loads(flow.pull_out[flow.pull_out.index("\n{") :])  # the record shown
    assert "student_id" not in shown  # learnwell's view is pseudonymous


def test_auditor_reads_a_disclosure_report(secure_bus: SecureBus, flow: Flow) -> None:
    student = next(e.key for e in simulate(STUDENTS, SEED, DAYS) if e.topic == CHANGES_TOPIC)
    report = secure_bus.stack.hallpass(
        "disclosures",
        "--student",
        student,
        "--json",
        client_properties=secure_bus.role(DEFAULT_ROLES.auditor),
    )
    rows = json.loads(report.stdout)
    assert rows and {row["partner"] for row in rows} <= {
        "learnwell",
        "measurely",
        "carewell-health",
    }


def test_a_vendor_cannot_read_the_ledger(secure_bus: SecureBus, flow: Flow) -> None:
    student = next(e.key for e in simulate(STUDENTS, SEED, DAYS) if e.topic == CHANGES_TOPIC)
    report = secure_bus.stack.hallpass(
        "disclosures",
        "--student",
        student,
        "--json",
        check=False,
        client_properties=secure_bus.properties["learnwell"],
    )
    # refused, and said so: not an empty report that looks like "nothing was shared"
    assert report.returncode == 1
    assert report.stdout == ""
    assert "cannot read audit.disclosures" in report.stderr
    assert "TOPIC_AUTHORIZATION_FAILED" in report.stderr or "authoriz" in report.stderr.lower()


def test_processor_made_its_secrets_private(secure_bus: SecureBus, flow: Flow) -> None:
    secrets_file: Path = secure_bus.stack.data_dir / "partner-secrets.json"
    assert secrets_file.stat().st_mode & 0o077 == 0
