"""Helpers of the deploy/ tests: finding the real tools, rendering kustomize, reading YAML, and
the metric names that `autoscaler.telemetry` exports (the only names dashboards and alerts may
use).

A missing tool skips its test loudly on a developer's machine and fails it in CI (`CI` set),
where .ci/run must have installed it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.telemetry import Telemetry

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
POLICIES = REPO / "policies" / "tracardi.yaml"
DASHBOARD = DEPLOY / "grafana" / "tracardi-autoscaler.json"
RULES = DEPLOY / "prometheus" / "rules.yaml"
RULES_TEST = DEPLOY / "prometheus" / "rules.test.yaml"
DOCKERFILE = REPO / "Dockerfile"

Manifest = dict[str, Any]


def require_tool(name: str, *candidates: Path) -> str:
    """The path of `name`: on PATH, beside this interpreter (the venv's bin/, also when the venv
    is not activated) or at one of `candidates`. Skips loudly without it; fails in CI."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found:
        return found
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed; CI must install it (.ci/run)")
    pytest.skip(f"!!! {name} IS NOT INSTALLED: this deploy/ check is SKIPPED. Install it to run "
                f"it; in CI its absence is a failure.")


def checkov_binary() -> str:
    """checkov pins `packaging<24` while pytest 9 needs `>=24`, so it lives in its own venv:
    `$CHECKOV`, PATH, or `.venv/checkov/bin/checkov` (see deploy/README.md)."""
    explicit = os.environ.get("CHECKOV")
    if explicit:
        return explicit
    return require_tool("checkov", Path(sys.prefix) / "checkov" / "bin" / "checkov",
                        REPO / ".venv" / "checkov" / "bin" / "checkov")


def run(args: list[str], *, cwd: Path = REPO, timeout: float = 120,
        env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          check=False, env=env)


def kustomize(kubectl: str, directory: Path) -> list[Manifest]:
    """`kubectl kustomize DIR` with the default (root-only) load restrictor, as parsed YAML."""
    result = run([kubectl, "kustomize", str(directory)])
    assert result.returncode == 0, f"kubectl kustomize {directory} failed:\n{result.stderr}"
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def find(manifests: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    matches = [m for m in manifests if m["kind"] == kind
               and (name is None or m["metadata"]["name"] == name)]
    assert len(matches) == 1, f"expected one {kind} {name or ''}, found {len(matches)}"
    return matches[0]


def exported_metric_names() -> set[str]:
    """Every series name a daemon's registry can export: counters as `_total`, histograms as
    `_bucket`, `_sum` and `_count` (the `_created` series are left out on purpose: a dashboard
    has no use for them)."""
    names: set[str] = set()
    for family in Telemetry().registry.collect():  # every family, with or without samples
        if family.type == "counter":
            names.add(f"{family.name}_total")
        elif family.type == "histogram":
            names.update(f"{family.name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        else:
            names.add(family.name)
    return names


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENT = re.compile(r"(?<![\w$.:])([A-Za-z_:][\w:]*+)(?!\s*\()")
_KEYWORDS = {"and", "or", "unless", "bool", "by", "without", "on", "ignoring", "group_left",
             "group_right", "offset", "inf", "nan", "atan2"}


def promql_metric_names(expr: str) -> set[str]:
    """The metric names an expression selects: identifiers that are not functions, keywords,
    label names (inside `{}` or grouping clauses), durations or numbers."""
    text = _STRING.sub("", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = _GROUPING.sub("", text)
    text = re.sub(r"\b\d+(?:\.\d+)?(?:e[+-]?\d+)?[smhdwy]?\b", "", text)
    return {m for m in _IDENT.findall(text) if m.lower() not in _KEYWORDS}


def dashboard_panels(dashboard: Manifest) -> Iterator[Manifest]:
    """Every panel with queries, rows (and the panels of collapsed rows) excluded."""
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def dashboard_exprs(dashboard: Manifest) -> list[tuple[str, str]]:
    """(panel title and refId, expr) of every query in the dashboard."""
    return [(f"{panel['title']} [{target['refId']}]", target["expr"])
            for panel in dashboard_panels(dashboard) for target in panel["targets"]]


def rule_exprs(rules: Manifest) -> list[tuple[str, str]]:
    return [(rule.get("alert") or rule["record"], rule["expr"])
            for group in rules["groups"] for rule in group["rules"]]
