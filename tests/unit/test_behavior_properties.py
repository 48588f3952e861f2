"""Property tests of the engine: bounds, freezing, rate limits, no oscillation, partial data."""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

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
from autoscaler.engine.behavior import apply_behavior, record_scale, remember
from autoscaler.engine.evaluate import evaluate
from autoscaler.model import (
    Action,
    DependencyState,
    Health,
    ScalingHistory,
    Signal,
    TimedValue,
    WorkloadStatus,
)
from autoscaler.policies.base import build_policy

NOW = 100_000.0
UP = {"es": DependencyState("es", Health.UP)}
PROPS = settings(max_examples=200, deadline=None)


def hpa_ref(source: str, target: dict[str, Any]) -> PolicyRef:
    return PolicyRef(name="hpa", params={"metric": {"type": "External", "source": source,
                                                    "target": target}})


def avg(target: float) -> dict[str, Any]:
    return {"type": "AverageValue", "average_value": target}


def make_spec(refs: tuple[PolicyRef, ...], lo: int, hi: int) -> WorkloadSpec:
    settings_ = Workload(min=lo, max=hi, requires=("es",), policies=refs, behavior=Behavior())
    return WorkloadSpec(name="w", namespace="ns", deployment="w", settings=settings_,
                        policies=tuple(build_policy(r.name, r.params) for r in refs))


def status(current: int) -> WorkloadStatus:
    return WorkloadStatus("w", "ns", current, ready_replicas=current)


@st.composite
def bounds(draw: st.DrawFn) -> tuple[int, int]:
    lo = draw(st.integers(0, 30))
    hi = draw(st.integers(max(lo, 1), 60))
    return lo, hi


values = st.floats(0, 1e5, allow_nan=False, allow_infinity=False)
targets = st.floats(0.01, 1000, allow_nan=False, allow_infinity=False)
histories = st.builds(
    ScalingHistory,
    recommendations=st.lists(st.builds(TimedValue, at=st.floats(NOW - 400, NOW),
                                       value=st.integers(0, 100)), max_size=5).map(tuple),
    scale_up_events=st.lists(st.builds(TimedValue, at=st.floats(NOW - 30, NOW),
                                       value=st.integers(1, 10)), max_size=3).map(tuple),
    scale_down_events=st.lists(st.builds(TimedValue, at=st.floats(NOW - 30, NOW),
                                         value=st.integers(1, 10)), max_size=3).map(tuple),
)


@PROPS
@given(b=bounds(), current=st.integers(0, 100), value=values, target=targets,
       history=histories)
def test_desired_within_bounds_when_scaling_or_holding(
        b: tuple[int, int], current: int, value: float, target: float,
        history: ScalingHistory) -> None:
    lo, hi = b
    spec = make_spec((hpa_ref("q", avg(target)),), lo, hi)
    result = evaluate(spec, status=status(current), signals={"q.value": Signal("q.value", value,
                                                                               NOW)},
                      dependencies=UP, history=history, now=NOW, staleness={})
    decision = result.decision
    if current == 0 and lo > 0:  # scaled to zero by hand: switched off, as with the HPA
        assert decision.action is Action.HOLD and decision.desired == 0, decision
    elif decision.action in (Action.SCALE, Action.HOLD):
        assert lo <= decision.desired <= hi, decision


@PROPS
@given(b=bounds(), current=st.integers(0, 100), value=values, target=targets,
       history=histories,
       health=st.sampled_from([Health.DOWN, Health.UNKNOWN, None]))
def test_frozen_means_unchanged(*, b: tuple[int, int], current: int, value: float,
                                target: float, history: ScalingHistory,
                                health: Health | None) -> None:
    lo, hi = b
    spec = make_spec((hpa_ref("q", avg(target)),), lo, hi)
    deps = {} if health is None else {"es": DependencyState("es", health)}
    result = evaluate(spec, status=status(current),
                      signals={"q.value": Signal("q.value", value, NOW)},
                      dependencies=deps, history=history, now=NOW, staleness={})
    assert result.decision.action is Action.FREEZE
    assert result.decision.desired == current
    assert not result.decision.changes
    # The memory is kept as it was, but for when the freeze began (`behavior.thawed`).
    began = NOW if history.frozen_since is None else history.frozen_since
    assert result.history == replace(history, frozen_since=began)


def run_sequence(k: int, period: int, start: int, steps: list[tuple[int, int]],
                 down: ScalingRules) -> list[tuple[float, int]]:
    """Feed desired values through apply_behavior + record_scale; return every real change."""
    up = ScalingRules(stabilization_window_seconds=0, select_policy="Max",
                      policies=(RatePolicy(type="Pods", value=k, period_seconds=period),))
    history = ScalingHistory()
    current, now = start, NOW
    changes: list[tuple[float, int]] = []      # kept forever, independent of the engine's prune
    for gap, desired in steps:
        now += gap
        result = apply_behavior(current=current, desired=desired, min_replicas=0,
                                max_replicas=1000, up=up, down=down, history=history, now=now)
        history = record_scale(result.history, now=now, old=current, new=result.replicas)
        if result.replicas != current:
            changes.append((now, result.replicas - current))
        current = result.replicas
    return changes


def net_in_window(changes: list[tuple[float, int]], end: float, period: int) -> int:
    """Net change of the events whose age at `end` is below the period (the HPA's counting)."""
    return sum(d for at, d in changes if 0 <= end - at < period)


rate_steps = st.lists(st.tuples(st.integers(1, 60), st.integers(0, 200)), min_size=1,
                      max_size=40)


@PROPS
@given(k=st.integers(1, 10), period=st.integers(1, 120), start=st.integers(0, 50),
       steps=rate_steps)
def test_rate_limit_holds_over_any_sequence(k: int, period: int, start: int,
                                            steps: list[tuple[int, int]]) -> None:
    # HPA semantics: scale-downs in the period are credit (period_start = current - up + down),
    # so the bound is on the net change over the period that ends at each scale-up.
    down = ScalingRules(stabilization_window_seconds=0, select_policy="Max",
                        policies=default_scale_down().policies)
    changes = run_sequence(k, period, start, steps, down)
    for t, d in changes:
        if d > 0:
            assert net_in_window(changes, t, period) <= k, (t, changes)


@PROPS
@given(k=st.integers(1, 10), period=st.integers(1, 120), start=st.integers(0, 50),
       steps=rate_steps)
def test_rate_limit_holds_in_every_window_without_scale_down(
        k: int, period: int, start: int, steps: list[tuple[int, int]]) -> None:
    down = ScalingRules(stabilization_window_seconds=0, select_policy="Disabled",
                        policies=default_scale_down().policies)
    changes = run_sequence(k, period, start, steps, down)
    assert all(d > 0 for _, d in changes)
    # Without scale-downs every window counts only scale-ups; the worst one ends at an event.
    for t, _ in changes:
        assert net_in_window(changes, t, period) <= k, (t, changes)


@PROPS
@given(b=bounds(), current=st.integers(0, 80), value=values, target=targets,
       kind=st.sampled_from(["AverageValue", "Value"]))
def test_constant_signal_never_oscillates(b: tuple[int, int], current: int, value: float,
                                          target: float, kind: str) -> None:
    lo, hi = b
    metric = avg(target) if kind == "AverageValue" else {"type": "Value", "value": target}
    spec = make_spec((hpa_ref("q", metric),), lo, hi)
    history = ScalingHistory()
    seen = [current]
    now = NOW
    for _ in range(100):
        now += 15
        result = evaluate(spec, status=status(current),
                          signals={"q.value": Signal("q.value", value, now)},
                          dependencies=UP, history=history, now=now, staleness={})
        new = result.decision.desired if result.decision.action is Action.SCALE else current
        history = record_scale(result.history, now=now, old=current, new=new)
        current = new
        seen.append(current)
    moves = [b2 - a for a, b2 in itertools.pairwise(seen) if b2 != a]
    assert all(m > 0 for m in moves) or all(m < 0 for m in moves), seen


@PROPS
@given(b=bounds(), data=st.data(), good=values, target=targets, history=histories,
       error=st.sampled_from(["error", "missing", "stale", "nan"]))
def test_partial_signals_never_scale_down(*, b: tuple[int, int], data: st.DataObject,
                                          good: float, target: float,
                                          history: ScalingHistory, error: str) -> None:
    lo, hi = b
    current = data.draw(st.integers(lo, hi))
    spec = make_spec((hpa_ref("a", avg(target)), hpa_ref("b", avg(target))), lo, hi)
    signals = {"a.value": Signal("a.value", good, NOW)}
    if error == "error":
        signals["b.value"] = Signal("b.value", 1.0, NOW, error="boom")
    elif error == "stale":
        signals["b.value"] = Signal("b.value", 1.0, NOW - 1000)
    elif error == "nan":
        signals["b.value"] = Signal("b.value", float("nan"), NOW)
    result = evaluate(spec, status=status(current), signals=signals, dependencies=UP,
                      history=history, now=NOW, staleness={})
    assert result.decision.desired >= current, result.decision


@PROPS
@given(history=histories, desired=st.integers(0, 100),
       gaps=st.lists(st.floats(0.0, 200.0), min_size=1, max_size=6))
def test_remembering_a_proposal_again_and_again_equals_remembering_it_last(
        history: ScalingHistory, desired: int, gaps: list[float]) -> None:
    """What lets a skipped evaluation record only its time (the daemon's `catch_up`)."""
    up, down = default_scale_up(), default_scale_down()
    times = list(itertools.accumulate(gaps, initial=NOW))[1:]
    each = history
    for t in times:
        each = remember(each, desired=desired, now=t, up=up, down=down)
    assert each == remember(history, desired=desired, now=times[-1], up=up, down=down)
