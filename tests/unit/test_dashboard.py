"""The Grafana dashboard and the alert rules query only metrics the code exports.

Metric names are read out of every PromQL expression (dashboard panels, its variables, alert
and recording rules) and compared with the names the code registers: the processor's
collector and timings and the connectors' counters (``streams.metrics``), and the lag
exporter's collectors (``streams.lag.exporter``, and the deletion acknowledgements of
``connectors.partner.acks``), each built with a fresh registry. Recording
rules defined in deploy/prometheus/rules and the series Prometheus makes itself (``up``,
``ALERTS``) count as known too.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric

from connectors.partner.acks import AckCollector, AckSnapshot
from streams.lag.exporter import LagCollector, Scrape
from streams.lag.model import LagReport
from streams.metrics import (
    ConnectorMetrics,
    ProcessorCollector,
    ProcessorSources,
    ProcessorTimings,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
DASHBOARD = DEPLOY / "grafana" / "hallpass.json"
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.yml"))

#: series Prometheus itself writes
PROMETHEUS_SERIES = frozenset({"up", "ALERTS"})

# -- metric names in PromQL ----------------------------------------------------------------
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_LABEL_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_LABEL_LIST = re.compile(
    r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", re.IGNORECASE
)
_GRAFANA_VARIABLE = re.compile(r"\$\{[^}]*\}|\$\w+")
_TOKEN = re.compile(r"(?P<number>\d[\w.]*|\.\d+)|(?P<name>[A-Za-z_:][\w:]*)")
_KEYWORDS = frozenset(
    {
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "atan2",
        "inf",
        "nan",
    }
)
_LABEL_VALUES = re.compile(r"^\s*label_values\((?:(?P<expr>.*),)?\s*\w+\s*\)\s*$", re.DOTALL)


def metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions or
    aggregations (followed by ``(``), keywords, label names (in ``{...}``, ``by (...)``,
    ``on (...)`` ...), strings, numbers, durations or Grafana variables."""
    if "__name__" in expr:
        raise ValueError(f"selects metrics by __name__, which cannot be checked: {expr}")
    text = _STRING.sub(" ", expr)
    text = _LABEL_MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _LABEL_LIST.sub(" ", text)
    text = _GRAFANA_VARIABLE.sub(" ", text)
    names: set[str] = set()
    for match in _TOKEN.finditer(text):
        name = match.group("name")
        if name is None or name.lower() in _KEYWORDS:
            continue
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function or an aggregation
        names.add(name)
    return names


def variable_query_expr(query: str) -> str | None:
    """The PromQL inside a Grafana Prometheus variable query (``label_values(expr, label)``,
    ``query_result(expr)`` or plain PromQL); None when it selects no metric
    (``label_values(label)``)."""
    match = _LABEL_VALUES.match(query)
    if match:
        return match.group("expr")
    inner = re.match(r"^\s*query_result\((?P<expr>.*)\)\s*$", query, re.DOTALL)
    return inner.group("expr") if inner else query


# -- what the code exports -------------------------------------------------------------------
@dataclass
class _NoCounts:
    disclosed: dict[str, int] = field(default_factory=dict)
    withheld: dict[tuple[str, str], int] = field(default_factory=dict)
    retracted: dict[tuple[str, str], int] = field(default_factory=dict)
    narrowed: dict[tuple[str, str], int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)
    dead_letters_by_reason: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)
    repartitioned: int = 0


def sample_names(families: Iterable[Metric]) -> set[str]:
    """The series names a scrape of these families can show (labelled families without
    children yet still count: their names are fixed)."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "summary": ("", "_sum", "_count"),
        "info": ("_info",),
    }
    names: set[str] = set()
    for family in families:
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
        names.update(s.name for s in family.samples if not s.name.endswith("_created"))
    return names


def exported_names() -> set[str]:
    registry = CollectorRegistry()
    registry.register(
        ProcessorCollector(
            ProcessorSources(
                counts=_NoCounts,
                consumed_by_topic=dict,
                transactions=lambda: 0,
                last_commit_unix=lambda: 0.0,
                consent_students=lambda: 0,
                stripped_per_disclosure={},
            )
        )
    )
    ProcessorTimings(registry)
    ConnectorMetrics(registry, "oneroster")
    lag = LagCollector(
        lambda: Scrape(up=True, duration_s=0.0, report=LagReport(at=0.0, samples=1, groups=()))
    )
    registry.register(lag)
    registry.register(AckCollector(lambda: AckSnapshot(outstanding={}, stray=0)))
    return sample_names(registry.collect())


# -- expressions -----------------------------------------------------------------------------
def walk(node: Any) -> Iterator[Mapping[str, Any]]:
    if isinstance(node, Mapping):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_exprs() -> dict[str, str]:
    """Where -> PromQL: every panel target and every query variable."""
    board = dashboard()
    exprs: dict[str, str] = {}
    for node in walk(board["panels"]):
        for target in node.get("targets", []):
            exprs[f"panel {node.get('title')!r} {target.get('refId')}"] = target["expr"]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            text = query["query"] if isinstance(query, Mapping) else query
            expr = variable_query_expr(text)
            if expr is not None:
                exprs[f"variable {variable['name']}"] = expr
    return exprs


#: what Grafana puts in place of its variables, for checking the expressions outside Grafana
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "1h",
    "$partner": ".+",
}


def as_prometheus_query(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced as Grafana would."""
    for variable, replacement in sorted(GRAFANA_VARIABLES.items(), key=lambda kv: -len(kv[0])):
        expr = expr.replace(variable, replacement)
    assert "$" not in _STRING.sub("", expr), f"unknown Grafana variable in {expr}"
    return expr


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


def rule_exprs() -> dict[str, str]:
    return {f"rule {r.get('alert') or r.get('record')}": r["expr"] for r in rules()}


def alert_exprs() -> dict[str, str]:
    return {f"alert {r['alert']}": r["expr"] for r in rules() if "alert" in r}


def recorded_names() -> set[str]:
    return {rule["record"] for rule in rules() if "record" in rule}


# -- the parser ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expr", "names"),
    [
        (
            'sum by (partner, action) (rate(hallpass_partner_records_total{partner=~"$partner"}'
            "[$__rate_interval]))",
            {"hallpass_partner_records_total"},
        ),
        (
            "histogram_quantile(0.99, sum by (job, le) "
            "(rate(hallpass_processor_latency_seconds_bucket[5m]))) > 10",
            {"hallpass_processor_latency_seconds_bucket"},
        ),
        (
            'max by (consumergroup, partner) (hallpass_consumergroup_lag_seconds{partner!=""})\n'
            "> on (partner) group_left () hallpass:partner_lag_threshold_seconds",
            {"hallpass_consumergroup_lag_seconds", "hallpass:partner_lag_threshold_seconds"},
        ),
        ('up{job="hallpass-processor"} == 0 or absent(up{job="hallpass-processor"})', {"up"}),
        ("sum(x_total) by (le) / ignoring(reason) y unless z offset 15m", {"x_total", "y", "z"}),
        ("time() - max(last_commit > 0) + vector(1) * 2.5e3", {"last_commit"}),
        ('label_replace(foo, "dst", "$1", "src", "(bar_total)")', {"foo"}),
        ('count by (partner) (lag{partner!=""}) * 0 + 900', {"lag"}),
    ],
)
def test_metric_names_are_read_out_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_a_selection_by_name_is_refused() -> None:
    with pytest.raises(ValueError, match="__name__"):
        metric_names('{__name__=~"hallpass_.*"}')


def test_grafana_variable_queries_are_read() -> None:
    assert (
        variable_query_expr("label_values(hallpass_partner_records_total, partner)")
        == "hallpass_partner_records_total"
    )
    assert variable_query_expr("label_values(partner)") is None
    assert variable_query_expr("query_result(sum(up))") == "sum(up)"


def test_the_code_exports_the_names_the_check_relies_on() -> None:
    names = exported_names()
    assert {
        "hallpass_processor_events_consumed_total",
        "hallpass_partner_records_total",
        "hallpass_processor_latency_seconds_bucket",
        "hallpass_connector_rows_read_total",
        "hallpass_connector_rows_rejected_total",
        "kafka_consumergroup_lag",
        "hallpass_consumergroup_lag_seconds",
        "hallpass_consumergroup_status",
        "hallpass_lag_exporter_up",
    } <= names
    assert "hallpass_partner_records" not in names  # a counter is scraped with _total


# -- the dashboard and the rules -------------------------------------------------------------
def unknown_metrics(exprs: Mapping[str, str], known: set[str]) -> dict[str, list[str]]:
    """Where -> the metric names its expression selects that are not ``known``."""
    return {
        where: sorted(metric_names(expr) - known)
        for where, expr in exprs.items()
        if metric_names(expr) - known
    }


def test_a_metric_the_code_does_not_export_is_reported() -> None:
    exprs = {
        "panel": "sum(rate(hallpass_partner_record_total[5m]))",
        "alert": 'hallpass_processor_latency_seconds{quantile="0.99"} > 10',
    }
    assert unknown_metrics(exprs, exported_names()) == {
        "panel": ["hallpass_partner_record_total"],
        "alert": ["hallpass_processor_latency_seconds"],  # a histogram has no plain series
    }


def test_the_dashboard_and_rules_query_only_exported_metrics() -> None:
    known = exported_names() | recorded_names() | PROMETHEUS_SERIES
    unknown = unknown_metrics(dashboard_exprs() | rule_exprs(), known)
    assert not unknown, f"metrics the code does not export: {unknown}"
    # every panel and alert shows or watches some metric (a recording rule may be a constant)
    for where, expr in (dashboard_exprs() | alert_exprs()).items():
        assert metric_names(expr), f"{where} selects no metric: {expr}"


def test_the_dashboard_shows_what_operators_need() -> None:
    used = set().union(*(metric_names(e) for e in dashboard_exprs().values()))
    assert {
        "hallpass_partner_records_total",  # throughput per partner
        "hallpass_decisions_withheld_total",  # decisions by reason
        "kafka_consumergroup_lag",  # lag in messages per partner
        "hallpass_consumergroup_lag_seconds",  # lag in seconds per partner
        "hallpass_processor_latency_seconds_bucket",  # latency p50 / p99
        "hallpass_dead_letters_total",
        "hallpass_connector_rows_read_total",
        "hallpass_connector_rows_rejected_total",
    } <= used
    exprs = " ".join(dashboard_exprs().values())
    assert "histogram_quantile(0.5," in exprs and "histogram_quantile(0.99," in exprs


def test_the_dashboard_expressions_are_valid_promql(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is not installed: it comes with Debian's prometheus package "
            "(sudo apt-get install prometheus), which `make test` installs."
        )
    # promtool checks the PromQL of rules: every panel query as a recording rule
    exprs = dashboard_exprs()
    checked = [
        {"record": f"dashboard:query_{i}", "expr": as_prometheus_query(expr)}
        for i, expr in enumerate(exprs.values())
    ]
    rules_file = tmp_path / "dashboard.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": checked}]}))
    result = subprocess.run(
        [promtool, "check", "rules", str(rules_file)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_the_dashboard_queries_the_chosen_prometheus() -> None:
    board = dashboard()
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    selected = {"type": "prometheus", "uid": "${datasource}"}
    panels = [p for p in walk(board["panels"]) if "targets" in p]
    assert panels
    for panel in panels:
        assert panel["datasource"] == selected, panel["title"]
        assert all(t.get("datasource", selected) == selected for t in panel["targets"])
    assert variables["partner"]["datasource"] == selected


def test_the_dashboard_layout_is_consistent() -> None:
    board = dashboard()
    panels = list(walk(board["panels"]))
    panels = [p for p in panels if "gridPos" in p]
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids repeat"
    for panel in panels:
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
    assert board["uid"] and board["title"]
