"""The Grafana dashboard and the Prometheus alert rules, checked without a running Prometheus:
promtool checks and unit-tests the rules, and every expression may only name metrics that
`autoscaler.telemetry` defines. test_dashboard_prometheus.py runs them against real data.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
import yaml
from deploy_support import (
    DASHBOARD,
    RULES,
    RULES_TEST,
    dashboard_exprs,
    dashboard_panels,
    exported_metric_names,
    promql_metric_names,
    require_tool,
    rule_exprs,
    run,
)

PREFIX = "tracardi_autoscaler_"
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


@pytest.fixture(scope="module")
def rules() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(RULES.read_text())
    return loaded


def _variables(dashboard: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in dashboard["templating"]["list"]}


def test_promtool_checks_the_rules() -> None:
    promtool = require_tool("promtool")
    result = run([promtool, "check", "rules", str(RULES)])
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"
    assert "SUCCESS" in result.stdout


def test_the_rules_fire_as_their_unit_tests_expect() -> None:
    promtool = require_tool("promtool")
    result = run([promtool, "test", "rules", str(RULES_TEST)], cwd=RULES_TEST.parent)
    assert result.returncode == 0, f"{result.stdout}{result.stderr}"


def test_the_rules_cover_the_issue(rules: dict[str, Any]) -> None:
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    required = {
        "TracardiAutoscalerWorkloadFrozen": "10m",
        "TracardiAutoscalerDependencyDown": "5m",
        "TracardiAutoscalerBreakerOpen": None,
        "TracardiAutoscalerNoLeader": "2m",
        "TracardiAutoscalerAbsent": None,
        "TracardiAutoscalerConfigReloadFailing": None,
        "TracardiAutoscalerPinnedAtMax": "30m",
        "TracardiAutoscalerCapacityBelowConfigured": "30m",
    }
    for name, duration in required.items():
        assert name in alerts, name
        if duration:
            assert alerts[name]["for"] == duration, name
    assert "absent(tracardi_autoscaler_leader)" in alerts["TracardiAutoscalerAbsent"]["expr"]
    for alert in alerts.values():
        assert alert["labels"]["severity"] in {"warning", "critical"}
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]


def test_deploy_readme_lists_every_alert(rules: dict[str, Any]) -> None:
    readme = (RULES.parents[1] / "README.md").read_text()
    listed = set(re.findall(r"^\| (TracardiAutoscaler\w+) \|", readme, flags=re.MULTILINE))
    assert listed == {r["alert"] for g in rules["groups"] for r in g["rules"]}


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_expressions_only_name_exported_metrics(source: str, dashboard: dict[str, Any],
                                                rules: dict[str, Any]) -> None:
    exported = exported_metric_names()
    exprs = dashboard_exprs(dashboard) if source == "dashboard" else rule_exprs(rules)
    assert exprs
    for where, expr in exprs:
        names = promql_metric_names(expr)
        assert names, f"{where}: selects no metric"
        unknown = names - exported
        assert not unknown, f"{where}: {sorted(unknown)} not defined in autoscaler/telemetry.py"


def test_the_metric_name_parser() -> None:
    expr = ('histogram_quantile(0.99, sum by (le) (rate(a_bucket{x=~"$w", le!="1"}'
            '[$__rate_interval]))) > bool on (instance) group_left (job) b offset 5m '
            'or absent(c) unless time() - d')
    assert promql_metric_names(expr) == {"a_bucket", "b", "c", "d"}


def test_the_dashboard_is_importable(dashboard: dict[str, Any]) -> None:
    for key in ("title", "uid", "panels", "templating", "schemaVersion", "time"):
        assert key in dashboard, key
    assert dashboard["uid"] == "tracardi-autoscaler"
    assert "__inputs" not in dashboard, "the datasource is a variable, not an import input"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


def test_the_dashboard_has_a_datasource_variable(dashboard: dict[str, Any]) -> None:
    variables = _variables(dashboard)
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for name in ("namespace", "workload"):
        variable = variables[name]
        assert variable["datasource"] == DATASOURCE
        assert variable["includeAll"] and variable["allValue"] == ".*"
        [metric] = re.findall(r"label_values\((\w+)", variable["query"]["query"])
        assert metric in exported_metric_names()
    for panel in dashboard_panels(dashboard):
        assert panel["datasource"] == DATASOURCE, panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE, panel["title"]


def test_panels_filter_by_the_workload_variables(dashboard: dict[str, Any]) -> None:
    """Every per-workload metric in a panel honours $namespace and $workload."""
    per_workload = re.compile(
        rf"{PREFIX}(current_replicas|ready_replicas|desired_replicas|min_replicas|max_replicas|"
        rf"recommended_replicas|decisions_total|frozen|paused|scale_writes_total|restarts_total|"
        rf"unhealthy_pods|breaker_open|conflicting_autoscaler|replicas_changed_elsewhere_total|"
        rf"replica_capacity_configured|replica_capacity)"
        rf"(\{{[^}}]*\}})?")
    for where, expr in dashboard_exprs(dashboard):
        for match in per_workload.finditer(expr):
            selector = match.group(2) or ""
            assert 'namespace=~"$namespace"' in selector, where
            assert 'workload=~"$workload"' in selector, where


def test_the_dashboard_shows_what_the_issue_asks_for(dashboard: dict[str, Any]) -> None:
    used = set().union(*(promql_metric_names(e) for _, e in dashboard_exprs(dashboard)))
    for family in ("desired_replicas", "current_replicas", "ready_replicas", "signal_value",
                   "frozen", "dependency_up", "decisions_total", "restarts_total",
                   "breaker_open", "reaction_seconds_bucket", "evaluation_seconds_bucket",
                   "leader", "config_reloads_total", "replica_capacity",
                   "replica_capacity_configured"):
        assert PREFIX + family in used, family
    quantiles = [e for _, e in dashboard_exprs(dashboard) if "histogram_quantile" in e]
    for histogram in ("reaction_seconds", "evaluation_seconds"):
        levels = {q.split(",")[0] for q in quantiles if histogram in q}
        assert levels == {"histogram_quantile(0.5", "histogram_quantile(0.99"}, histogram


def test_panels_do_not_overlap(dashboard: dict[str, Any]) -> None:
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
