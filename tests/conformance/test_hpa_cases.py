"""Every HPA case under $HPA_CASES_DIR runs through the project's own `hpa` policy and behavior.

The harness maps each case kind onto the real code path: `metric` -> the hpa policy's
recommendation, `rate` -> `limit_rate`, `stabilize` -> `stabilize`, `multi` -> the full
`evaluate` pipeline with HPA default behavior and no memory.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from shared_data import require_shared

from autoscaler.config import (
    Behavior,
    PolicyRef,
    RatePolicy,
    ScalingRules,
    Workload,
    WorkloadSpec,
    default_scale_down,
    default_scale_up,
)
from autoscaler.engine.behavior import limit_rate, stabilize
from autoscaler.engine.evaluate import evaluate
from autoscaler.model import (
    DependencyState,
    Health,
    PodInfo,
    PodSample,
    ScalingHistory,
    Signal,
    TimedValue,
    WorkloadStatus,
)
from autoscaler.policies.base import PolicyContext, build_policy

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = Path(os.environ.get("HPA_CASES_DIR", REPO.parent / "shared" / "conformance" / "hpa"))
NOW = 10_000.0


def _load_cases() -> list[Any]:
    files = sorted(CASES_DIR.rglob("*.json"))
    if not files:
        return [pytest.param(None, id="no-cases")]
    params = []
    for f in files:
        for case in json.loads(f.read_text())["cases"]:
            params.append(pytest.param(case, id=f"{f.stem}:{case['id']}"))
    return params


def _pods(case: dict[str, Any]) -> tuple[PodInfo, ...]:
    raw = case.get("pods")
    if raw is None:
        return tuple(PodInfo(name=f"pod-{i}") for i in range(case["current_replicas"]))
    return tuple(
        PodInfo(name=f"pod-{i}", ready=p.get("ready", True), phase=p.get("phase", "Running"),
                cpu_request_milli=p.get("request_milli") or 0, deleting=p.get("deleting", False))
        for i, p in enumerate(raw)
    )


def _signals(metric: dict[str, Any], pods: list[dict[str, Any]] | None,
             name: str) -> tuple[dict[str, Any], dict[str, Signal]]:
    """The hpa policy params for one case metric, and the signals it reads."""
    target = dict(metric["target"])
    if metric["type"] == "Resource":
        samples = tuple(PodSample(pod=f"pod-{i}", usage_milli=p["usage_milli"])
                        for i, p in enumerate(pods or []) if p.get("usage_milli") is not None)
        sig = Signal("resources.cpu", float(sum(s.usage_milli for s in samples)), NOW,
                     error=metric.get("error"), samples=samples)
        return {"metric": {"type": "Resource", "target": target}}, {"resources.cpu": sig}
    sig = Signal(f"{name}.value", metric.get("value"), NOW, error=metric.get("error"))
    return ({"metric": {"type": "External", "source": name, "target": target}},
            {f"{name}.value": sig})


def _rules(raw: dict[str, Any] | None, default: ScalingRules) -> ScalingRules:
    if raw is None:
        return default
    return ScalingRules(
        stabilization_window_seconds=raw.get("stabilization_window_seconds",
                                             default.stabilization_window_seconds),
        select_policy=raw.get("select_policy", "Max"),
        policies=tuple(RatePolicy(**p) for p in raw.get("policies", ())),
    )


def _events(raw: list[dict[str, Any]]) -> tuple[TimedValue, ...]:
    return tuple(TimedValue(NOW - e["age_seconds"], e["replica_change"]) for e in raw)


def run_case(case: dict[str, Any]) -> int:
    kind = case["kind"]
    if kind == "metric":
        params, signals = _signals(case["metric"], case.get("pods"), "external")
        policy = build_policy("hpa", params)
        status = WorkloadStatus("w", "ns", case["current_replicas"],
                                ready_replicas=case["current_replicas"], pods=_pods(case))
        ctx = PolicyContext(status=status, signals=signals, now=NOW, min_replicas=0,
                            max_replicas=10_000)
        return policy.recommend(ctx).replicas
    if kind == "rate":
        behavior = case.get("behavior", {})
        replicas, _ = limit_rate(
            current=case["current_replicas"], desired=case["desired"],
            min_replicas=case["min_replicas"], max_replicas=case["max_replicas"],
            up=_rules(behavior.get("scale_up"), default_scale_up()),
            down=_rules(behavior.get("scale_down"), default_scale_down()),
            up_events=_events(case.get("scale_up_events", [])),
            down_events=_events(case.get("scale_down_events", [])), now=NOW,
        )
        return replicas
    if kind == "stabilize":
        replicas, _ = stabilize(
            current=case["current_replicas"], desired=case["desired"],
            recommendations=tuple(TimedValue(NOW - r["age_seconds"], r["replicas"])
                                  for r in case["recommendations"]),
            now=NOW, up_window=case["scale_up_window_seconds"],
            down_window=case["scale_down_window_seconds"],
        )
        return replicas
    if kind == "multi":
        refs: list[PolicyRef] = []
        signals: dict[str, Signal] = {}
        for i, metric in enumerate(case["metrics"]):
            params, sigs = _signals(metric, case.get("pods"), f"m{i}")
            refs.append(PolicyRef(name="hpa", params=params))
            signals.update(sigs)
        settings = Workload(min=case["min_replicas"], max=case["max_replicas"],
                            policies=tuple(refs), behavior=Behavior())
        spec = WorkloadSpec(name="w", namespace="ns", deployment="w", settings=settings,
                            policies=tuple(build_policy(r.name, r.params) for r in refs))
        status = WorkloadStatus("w", "ns", case["current_replicas"],
                                ready_replicas=case["current_replicas"], pods=_pods(case))
        result = evaluate(spec, status=status, signals=signals,
                          dependencies={"_": DependencyState("_", Health.UP)},
                          history=ScalingHistory(), now=NOW, staleness={})
        return result.decision.desired
    raise AssertionError(f"unknown case kind {kind!r} in {case['id']}")


@pytest.mark.parametrize("case", _load_cases())
def test_hpa_case(case: dict[str, Any] | None) -> None:
    if case is None:  # no case files: skipped loudly, a failure in CI
        require_shared(CASES_DIR / "*.json")
        return
    assert run_case(case) == case["expected"], case.get("source", "")
