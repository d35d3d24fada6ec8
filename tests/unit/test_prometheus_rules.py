"""deploy/prometheus: the scrape config and the alert rules are valid for Prometheus's own
checker, and every alert passes its ``promtool test rules`` unit tests, which make it fire
and make it stay quiet.

promtool comes with Debian's ``prometheus`` package (``make test`` installs it).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

PROMETHEUS_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
CONFIG = PROMETHEUS_DIR / "prometheus.yml"
RULES = PROMETHEUS_DIR / "rules" / "hallpass.rules.yml"
RULE_TESTS = sorted((PROMETHEUS_DIR / "tests").glob("*.test.yml"))

#: job -> targets of the local stack (the ports the commands serve /metrics on)
JOBS = {
    "hallpass-processor": ["localhost:9464"],
    "hallpass-lag-exporter": ["localhost:9465"],
    "hallpass-connector": ["localhost:9466"],
}
#: what an operator is alerted on (issue 5), plus the exporter the lag alerts depend on
ALERTS = {
    "HallpassPartnerLagHigh",
    "HallpassPartnerGroupStalled",
    "HallpassProcessorDown",
    "HallpassProcessorStalled",  # up, but no commit while its input lag grows (issue 15)
    "HallpassDeadLettersIncreasing",
    "HallpassRejectedRowsIncreasing",
    "HallpassProcessingLatencyHigh",
    "HallpassLagExporterDown",
    "HallpassDeletionUnacknowledged",  # proof of deletion outstanding too long (issue 19)
}
SEVERITIES = {"critical", "warning"}


@pytest.fixture(scope="module")
def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail(
            "promtool is not installed: it comes with Debian's prometheus package "
            "(sudo apt-get install prometheus), which `make test` installs."
        )
    return found


def run_promtool(promtool: str, *args: str) -> str:
    result = subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"promtool {' '.join(args)} failed:\n{output}"
    return output


def load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def rules() -> Iterator[dict[str, Any]]:
    for group in load(RULES)["groups"]:
        yield from group["rules"]


def alerts() -> dict[str, dict[str, Any]]:
    return {rule["alert"]: rule for rule in rules() if "alert" in rule}


def test_scrape_config_is_valid_and_scrapes_the_local_stack(promtool: str) -> None:
    output = run_promtool(promtool, "check", "config", str(CONFIG))
    # the config's rule_files glob finds the rules, and they are checked with it
    assert "SUCCESS: 1 rule files found" in output, output
    jobs = {
        job["job_name"]: [t for sc in job["static_configs"] for t in sc["targets"]]
        for job in load(CONFIG)["scrape_configs"]
    }
    assert jobs == JOBS


def test_rules_are_valid(promtool: str) -> None:
    output = run_promtool(promtool, "check", "rules", str(RULES))
    assert f"SUCCESS: {len(list(rules()))} rules found" in output, output


def test_every_alert_says_how_severe_it_is_and_what_to_do() -> None:
    assert set(alerts()) == ALERTS
    for name, rule in alerts().items():
        assert rule.get("labels", {}).get("severity") in SEVERITIES, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary", "").strip(), f"{name} has no summary"
        description = annotations.get("description", "")
        assert len(description.split()) >= 20, f"{name}: the description is too short to act on"


def test_the_processor_down_alert_is_critical() -> None:
    assert alerts()["HallpassProcessorDown"]["labels"]["severity"] == "critical"


def test_alerts_name_only_jobs_the_scrape_config_defines() -> None:
    jobs = {job["job_name"] for job in load(CONFIG)["scrape_configs"]}
    for name, rule in alerts().items():
        for job in re.findall(r'\bjob\s*=~?\s*"([^"]*)"', rule["expr"]):
            assert job in jobs, f"{name} selects job {job!r}, which nothing scrapes"


def test_every_alert_has_unit_tests_that_fire_it_and_keep_it_quiet() -> None:
    assert RULE_TESTS, f"no *.test.yml in {PROMETHEUS_DIR / 'tests'}"
    fires: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TESTS:
        spec = load(path)
        assert [(path.parent / f).resolve() for f in spec["rule_files"]] == [RULES], path
        for case in spec["tests"]:
            for check in case.get("alert_rule_test", []):
                (fires if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert fires == ALERTS, f"never made to fire: {sorted(ALERTS - fires)}"
    assert quiet == ALERTS, f"never checked to stay quiet: {sorted(ALERTS - quiet)}"


@pytest.mark.parametrize("path", RULE_TESTS, ids=lambda p: p.name)
def test_promtool_rule_unit_tests_pass(promtool: str, path: Path) -> None:
    output = run_promtool(promtool, "test", "rules", str(path))
    assert "SUCCESS" in output, output
