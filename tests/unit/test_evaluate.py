"""Table-driven unit tests of `evaluate` and the gate (`engine.gate`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError

from autoscaler.config import (
    Behavior,
    PartialRules,
    PolicyRef,
    RatePolicy,
    Workload,
    WorkloadSpec,
)
from autoscaler.engine.evaluate import Evaluation, evaluate
from autoscaler.engine.gate import dependency_reasons, signal_reason
from autoscaler.model import (
    Action,
    DependencyState,
    Health,
    PodInfo,
    Recommendation,
    ScalingHistory,
    Signal,
    TimedValue,
    WorkloadStatus,
)
from autoscaler.policies.backlog import BacklogParams, BacklogPolicy
from autoscaler.policies.base import build_policy
from autoscaler.policies.request_rate import burst_rise

NOW = 10_000.0
UP = {"es": DependencyState("es", Health.UP)}


def hpa_avg(source: str, target: float) -> tuple[str, dict[str, Any]]:
    return ("hpa", {"metric": {"type": "External", "source": source,
                               "target": {"type": "AverageValue", "average_value": target}}})


def make_spec(policies: Sequence[tuple[str, Mapping[str, Any]]], *, lo: int = 1, hi: int = 10,
              requires: tuple[str, ...] = ("es",), behavior: Behavior | None = None,
              ) -> WorkloadSpec:
    refs = tuple(PolicyRef(name=n, params=dict(p)) for n, p in policies)
    settings = Workload(min=lo, max=hi, requires=requires, policies=refs,
                        behavior=behavior or Behavior())
    return WorkloadSpec(name="w", namespace="ns", deployment="w", settings=settings,
                        policies=tuple(build_policy(r.name, r.params) for r in refs))


def sig(name: str, value: float | None, *, age: float = 0.0, error: str | None = None) -> Signal:
    return Signal(name, value, NOW - age, error=error)


def run(spec: WorkloadSpec, current: int, signals: Sequence[Signal] = (), *,
        deps: Mapping[str, DependencyState] = UP, paused: bool = False,
        history: ScalingHistory | None = None, staleness: Mapping[str, float] | None = None,
        signal_history: Mapping[str, Sequence[Signal]] | None = None) -> Evaluation:
    status = WorkloadStatus("w", "ns", current, ready_replicas=current, paused=paused)
    return evaluate(spec, status=status, signals={s.name: s for s in signals},
                    dependencies=deps, history=history or ScalingHistory(), now=NOW,
                    staleness=staleness or {}, signal_history=signal_history)


# --------------------------------------------------------------------------------------- gate

@pytest.mark.parametrize(("requires", "deps", "expected"), [
    pytest.param(("es",), {"es": DependencyState("es", Health.UP)}, (), id="up"),
    pytest.param(("es",), {"es": DependencyState("es", Health.DOWN)}, ("DependencyDown:es",),
                 id="down"),
    pytest.param(("es",), {"es": DependencyState("es", Health.UNKNOWN)},
                 ("DependencyUnknown:es",), id="unknown"),
    pytest.param(("es",), {}, ("DependencyUnknown:es",), id="missing-state"),
    pytest.param(("es", "redis"), {"es": DependencyState("es", Health.DOWN)},
                 ("DependencyDown:es", "DependencyUnknown:redis"), id="two-in-order"),
    pytest.param((), {}, (), id="no-requires"),
    # up, but its last check failed (the hysteresis has not said down yet), or flapping lately
    pytest.param(("es",), {"es": DependencyState("es", Health.UP, failures=1)},
                 ("DependencySuspect:es",), id="up-but-failing"),
    pytest.param(("es",), {"es": DependencyState("es", Health.UP, settling=True)},
                 ("DependencySuspect:es",), id="up-but-settling"),
])
def test_dependency_reasons(requires: tuple[str, ...], deps: dict[str, DependencyState],
                            expected: tuple[str, ...]) -> None:
    assert dependency_reasons(requires, deps) == expected


@pytest.mark.parametrize(("signal", "stale_after", "expected"), [
    pytest.param(sig("q.value", 1.0), 30.0, None, id="fresh"),
    pytest.param(None, 30.0, "SignalMissing:q.value", id="missing"),
    pytest.param(sig("q.value", 1.0, error="boom"), 30.0, "SignalError:q.value", id="error"),
    pytest.param(sig("q.value", None), 30.0, "SignalError:q.value", id="no-value"),
    pytest.param(sig("q.value", math.nan), 30.0, "SignalError:q.value", id="nan"),
    pytest.param(sig("q.value", math.inf), 30.0, "SignalError:q.value", id="inf"),
    pytest.param(sig("q.value", 1.0, age=31.0), 30.0, "SignalStale:q.value", id="stale"),
    pytest.param(sig("q.value", 1.0, age=30.0), 30.0, None, id="exactly-at-limit"),
])
def test_signal_reason(signal: Signal | None, stale_after: float, expected: str | None) -> None:
    assert signal_reason("q.value", signal, now=NOW, stale_after=stale_after) == expected


def test_a_signal_made_from_another_works_out_its_own_ok() -> None:
    """`ok` is worked out when a signal is made: a copy with another value or an error has
    its own, and `ok` takes no part in equality."""
    good = sig("q.value", 1.0)
    assert good.ok
    assert not replace(good, error="boom").ok
    assert not replace(good, value=math.nan).ok
    assert replace(sig("q.value", None), value=2.0).ok
    assert replace(good, error="boom") == sig("q.value", 1.0, error="boom")


# ---------------------------------------------------------------------------------- freezing

FREEZE_CASES = [
    pytest.param({"paused": True}, Action.PAUSE, ("Paused",), id="paused"),
    pytest.param({"deps": {"es": DependencyState("es", Health.DOWN)}}, Action.FREEZE,
                 ("DependencyDown:es",), id="dependency-down"),
    pytest.param({"deps": {"es": DependencyState("es", Health.UNKNOWN)}}, Action.FREEZE,
                 ("DependencyUnknown:es",), id="dependency-unknown"),
    pytest.param({"deps": {}}, Action.FREEZE, ("DependencyUnknown:es",),
                 id="dependency-state-missing"),
    pytest.param({"signals": ()}, Action.FREEZE, ("SignalMissing:q.value",),
                 id="signal-missing"),
    pytest.param({"signals": (sig("q.value", 50.0, error="timeout"),)}, Action.FREEZE,
                 ("SignalError:q.value",), id="signal-error"),
    pytest.param({"signals": (sig("q.value", 50.0, age=100.0),),
                  "staleness": {"q.value": 30.0}}, Action.FREEZE, ("SignalStale:q.value",),
                 id="signal-stale"),
    pytest.param({"signals": (sig("q.value", 50.0, age=91.0),)}, Action.FREEZE,
                 ("SignalStale:q.value",), id="signal-stale-default-90s"),
]


@pytest.mark.parametrize(("overrides", "action", "reasons"), FREEZE_CASES)
def test_gate_freezes(overrides: dict[str, Any], action: Action,
                      reasons: tuple[str, ...]) -> None:
    spec = make_spec([hpa_avg("q", 1.0)])
    history = ScalingHistory(recommendations=(TimedValue(NOW - 1, 4),))
    kwargs: dict[str, Any] = {"signals": (sig("q.value", 50.0),), "history": history}
    kwargs.update(overrides)
    result = run(spec, 4, **kwargs)
    assert result.decision.action is action
    assert result.decision.desired == 4
    assert result.decision.reasons == reasons
    assert not result.decision.changes
    # nothing recorded (a dependency's freeze notes only when it began: `behavior.thawed`)
    assert replace(result.history, frozen_since=None) == history


# ------------------------------------------------------------------------- the full pipeline

SLOW_UP = Behavior(scale_up=PartialRules(
    policies=(RatePolicy(type="Pods", value=1, period_seconds=60),)))


@pytest.mark.parametrize(
    ("spec", "current", "signals", "history", "action", "desired", "reason"), [
        pytest.param(make_spec([hpa_avg("q", 1.0)], hi=10), 12, [sig("q.value", 12.0)], None,
                     Action.SCALE, 10, "TooManyReplicas", id="above-max-to-max"),
        pytest.param(make_spec([hpa_avg("q", 1.0)], lo=3), 1, [sig("q.value", 1.0)], None,
                     Action.SCALE, 3, "TooFewReplicas", id="below-min-to-min"),
        pytest.param(make_spec([hpa_avg("q", 1.0)], lo=0), 0, [], None,
                     Action.FREEZE, 0, "SignalMissing:q.value", id="zero-current-gated"),
        # The HPA's ScalingDisabled: a Deployment scaled to 0 by hand stays at 0, whatever the
        # load, until someone scales it up again.
        pytest.param(make_spec([hpa_avg("q", 1.0)], lo=3), 0, [sig("q.value", 50.0)], None,
                     Action.HOLD, 0, "ScalingDisabled", id="scaled-to-zero-by-hand-stays"),
        # policy: ceil(100 / 1) = 100; Pods 1 per 60 s from 2 -> 3.
        pytest.param(make_spec([hpa_avg("q", 1.0)], hi=50, behavior=SLOW_UP), 2,
                     [sig("q.value", 100.0)], None, Action.SCALE, 3, "ScaleUpLimit",
                     id="scale-up-rate-limited"),
        # one Pods event of +1 twenty seconds ago already used the 60 s budget.
        pytest.param(make_spec([hpa_avg("q", 1.0)], hi=50, behavior=SLOW_UP), 3,
                     [sig("q.value", 100.0)],
                     ScalingHistory(scale_up_events=(TimedValue(NOW - 20, 1),)),
                     Action.HOLD, 3, "ScaleUpLimit", id="scale-up-budget-used"),
        # policy: ceil(2 / 1) = 2; a rec of 5 a minute ago inside the 300 s window holds 5.
        pytest.param(make_spec([hpa_avg("q", 1.0)]), 5, [sig("q.value", 2.0)],
                     ScalingHistory(recommendations=(TimedValue(NOW - 60, 5),)),
                     Action.HOLD, 5, "ScaleDownStabilized", id="scale-down-stabilized"),
        # same, but the old rec of 4 allows shedding to 4.
        pytest.param(make_spec([hpa_avg("q", 1.0)]), 5, [sig("q.value", 2.0)],
                     ScalingHistory(recommendations=(TimedValue(NOW - 60, 4),)),
                     Action.SCALE, 4, "ScaleDownStabilized", id="scale-down-partly-stabilized"),
        # the rec of 5 is older than the window: free to go to 2.
        pytest.param(make_spec([hpa_avg("q", 1.0)]), 5, [sig("q.value", 2.0)],
                     ScalingHistory(recommendations=(TimedValue(NOW - 301, 5),)),
                     Action.SCALE, 2, "DesiredWithinRange", id="scale-down-window-expired"),
        # a: ceil(2/1)=2 < 5, b errors -> never scale down on partial data.
        pytest.param(make_spec([hpa_avg("a", 1.0), hpa_avg("b", 1.0)]), 5,
                     [sig("a.value", 2.0), sig("b.value", 9.0, error="boom")], None,
                     Action.HOLD, 5, "ScaleDownBlocked", id="partial-blocks-scale-down"),
        # a: ceil(8/1)=8 > 5 with b failing: scale up is allowed.
        pytest.param(make_spec([hpa_avg("a", 1.0), hpa_avg("b", 1.0)]), 5,
                     [sig("a.value", 8.0), sig("b.value", 9.0, error="boom")], None,
                     Action.SCALE, 8, "b.value", id="partial-allows-scale-up"),
        # a: ceil(3/1)=3, b: ceil(7/1)=7 -> 7 wins; default up limit max(5+4, 10) >= 7.
        pytest.param(make_spec([hpa_avg("a", 1.0), hpa_avg("b", 1.0)]), 5,
                     [sig("a.value", 3.0), sig("b.value", 7.0)], None,
                     Action.SCALE, 7, "b.value 7", id="largest-proposal-wins"),
        # value 5.2 against 1 per pod at 5: ratio 1.04 inside tolerance.
        pytest.param(make_spec([hpa_avg("q", 1.0)]), 5, [sig("q.value", 5.2)], None,
                     Action.HOLD, 5, "DesiredWithinRange", id="within-tolerance-hold"),
        pytest.param(make_spec([("fixed", {})], lo=1, hi=10), 4, [], None,
                     Action.HOLD, 4, "fixed", id="fixed-holds"),
    ])
def test_evaluate_pipeline(*, spec: WorkloadSpec, current: int, signals: list[Signal],
                           history: ScalingHistory | None, action: Action, desired: int,
                           reason: str) -> None:
    decision = run(spec, current, signals, history=history).decision
    assert decision.action is action, decision
    assert decision.desired == desired, decision
    assert any(reason in r for r in decision.reasons), decision.reasons


def test_partial_reason_first_and_names_failed_signal() -> None:
    spec = make_spec([hpa_avg("a", 1.0), hpa_avg("b", 1.0)])
    decision = run(spec, 5, [sig("a.value", 2.0)]).decision
    assert decision.reasons[0].startswith("ScaleDownBlocked")
    assert "SignalMissing:b.value" in decision.reasons


def test_all_policies_invalid_freezes_with_every_reason() -> None:
    spec = make_spec([hpa_avg("a", 1.0), hpa_avg("b", 1.0)])
    decision = run(spec, 5, [sig("b.value", 1.0, error="x")]).decision
    assert decision.action is Action.FREEZE
    assert decision.reasons == ("SignalMissing:a.value", "SignalError:b.value")


def hpa_value(source: str, target: float) -> tuple[str, dict[str, Any]]:
    return ("hpa", {"metric": {"type": "External", "source": source,
                               "target": {"type": "Value", "value": target}}})


def test_value_target_without_pods_freezes_as_the_hpa_errors() -> None:
    # HPA getReadyPodsCount: "no pods returned by selector" is an error, not zero ready pods
    # (ceil(5 * 0) = 0 would scale a loaded workload to its minimum).
    spec = make_spec([hpa_value("q", 10.0)])
    status = WorkloadStatus("w", "ns", 6, ready_replicas=0, pods=())
    decision = evaluate(spec, status=status, signals={"q.value": sig("q.value", 50.0)},
                        dependencies=UP, history=ScalingHistory(), now=NOW,
                        staleness={}).decision
    assert decision.action is Action.FREEZE
    assert decision.desired == 6
    assert "no pods returned by selector" in decision.reasons[0]


def test_value_target_counts_ready_pods_being_deleted() -> None:
    # getReadyPodsCount counts Running and Ready pods, a terminating one too: 4 ready pods,
    # value 50 against 10: ceil(50 / 10 * 4) = 20.
    spec = make_spec([hpa_value("q", 10.0)], hi=30)
    pods = tuple(PodInfo(name=f"p{i}", ready=True, phase="Running", deleting=i == 3)
                 for i in range(4))
    status = WorkloadStatus("w", "ns", 4, ready_replicas=4, pods=pods)
    decision = evaluate(spec, status=status, signals={"q.value": sig("q.value", 50.0)},
                        dependencies=UP, history=ScalingHistory(), now=NOW,
                        staleness={}).decision
    assert decision.recommendations[0].replicas == 20


def test_largest_wins_keeps_every_recommendation() -> None:
    spec = make_spec([hpa_avg("a", 1.0), hpa_avg("b", 1.0)])
    decision = run(spec, 5, [sig("a.value", 3.0), sig("b.value", 7.0)]).decision
    assert [r.replicas for r in decision.recommendations] == [3, 7]
    assert decision.steps[0].stage == "policy" and decision.steps[0].replicas == 7


def test_scale_records_recommendation_in_history() -> None:
    spec = make_spec([hpa_avg("q", 1.0)])
    result = run(spec, 2, [sig("q.value", 4.0)])
    assert result.decision.desired == 4
    assert result.history.recommendations == (TimedValue(NOW, 4),)


def test_a_freeze_does_not_age_the_scale_down_window() -> None:
    """8 pods recommended 60 s before an outage of 435 s, then reads that need 2: the count is
    held for the 240 s the window had left when the outage began, then follows the reads."""
    spec = make_spec([hpa_avg("q", 1.0)], hi=10)
    down = {"es": DependencyState("es", Health.DOWN)}
    history = ScalingHistory((TimedValue(NOW - 60.0, 8),))

    def at(t: float, deps: Mapping[str, DependencyState], h: ScalingHistory) -> Evaluation:
        status = WorkloadStatus("w", "ns", 8, ready_replicas=8)
        return evaluate(spec, status=status, signals={"q.value": Signal("q.value", 2.0, t)},
                        dependencies=deps, history=h, now=t, staleness={})

    frozen = at(NOW, down, history)
    assert frozen.decision.action is Action.FREEZE
    still = at(NOW + 435.0, down, frozen.history)
    assert still.history.frozen_since == NOW  # from the first frozen look
    back = at(NOW + 435.0, UP, still.history)
    assert (back.decision.action, back.decision.desired) == (Action.HOLD, 8)
    assert any("ScaleDownStabilized" in r for r in back.decision.reasons)
    assert back.history.frozen_since is None
    assert at(NOW + 435.0 + 239.0, UP, back.history).decision.desired == 8
    assert at(NOW + 435.0 + 240.0, UP, back.history).decision.desired == 2
    # Without the outage the same reads scale down as soon as the window has passed.
    assert at(NOW + 240.0, UP, history).decision.desired == 2


# ------------------------------------------------------------------------------------ backlog

BACKLOG = ("backlog", {"source": "f", "msgs_per_second": 10.0, "drain_seconds": 60.0,
                       "target_utilization": 1.0, "learn_min_samples": 3,
                       "saturation_seconds": 5.0})


def backlog_history(reads: Sequence[tuple[float, float, float]]) -> dict[str, list[Signal]]:
    """(backlog, out_rate, consumers) per read, one read every 2 s ending now."""
    hist: dict[str, list[Signal]] = {"f.backlog": [], "f.out_rate": [], "f.consumers": []}
    for i, (backlog, out, consumers) in enumerate(reads):
        at = NOW - 2 * (len(reads) - i)
        hist["f.backlog"].append(Signal("f.backlog", backlog, at))
        hist["f.out_rate"].append(Signal("f.out_rate", out, at))
        hist["f.consumers"].append(Signal("f.consumers", consumers, at))
    return hist


SATURATED = (1000.0, 60.0, 2.0)      # 1000 > 60 * 5 s: saturated, 60 / 2 = 30 msg/s per replica
SLOW = (1000.0, 10.0, 2.0)           # saturated, 10 / 2 = 5 msg/s per replica
IDLE = (100.0, 60.0, 2.0)            # 100 <= 60 * 5: not saturated


# A saturated read counts when the read before it was saturated with as many consumers: the
# out-rate covers the time between. So the oldest saturated read of a run counts for nothing.
@pytest.mark.parametrize(("reads", "replicas", "how"), [
    # needed = in 20 + backlog 600 / 60 s = 30 msg/s; configured 10/s at 100 % -> 3.
    pytest.param([], 3, "configured", id="no-history-configured"),
    pytest.param([SATURATED, SATURATED, SATURATED], 3, "configured",
                 id="too-few-saturated-reads"),
    pytest.param([SATURATED, SATURATED, SATURATED, IDLE], 3, "configured",
                 id="unsaturated-read-ignored"),
    # rates 30, 30, 30 -> median 30 -> 30 / 30 = 1.
    pytest.param([SATURATED] * 4, 1, "learned", id="learned-three"),
    # rates 5, 30, 30 -> median 30 -> 1.
    pytest.param([SATURATED, SLOW, SATURATED, SATURATED], 1, "learned",
                 id="learned-median-not-mean"),
    # rates 5, 5, 30 -> median 5 -> 30 / 5 = 6.
    pytest.param([SATURATED, SLOW, SLOW, SATURATED], 6, "learned", id="learned-slow-median"),
    # The backlog began after the read before: the out-rate includes idle time.
    pytest.param([IDLE, SATURATED, SATURATED, SATURATED], 3, "configured",
                 id="saturated-since-the-read-before-only"),
    pytest.param([SATURATED, IDLE, SATURATED, SATURATED, SATURATED], 3, "configured",
                 id="an-unsaturated-read-ends-a-run"),
    # A consumer joined since the read before: three consumers, out-rate of two for part of it.
    pytest.param([SATURATED, SATURATED, SATURATED, (1000.0, 60.0, 3.0)], 3, "configured",
                 id="consumers-joined-since-the-read-before"),
])
def test_backlog_learns_after_enough_saturated_reads(
        reads: list[tuple[float, float, float]], replicas: int, how: str) -> None:
    spec = make_spec([BACKLOG], lo=1, hi=20)
    result = run(spec, 3, [sig("f.backlog", 600.0), sig("f.in_rate", 20.0)],
                 signal_history=backlog_history(reads))
    rec = result.decision.recommendations[0]
    assert rec.replicas == replicas
    assert f"({how})" in rec.reason
    # what one replica drains, as sized for, next to the configured 10/s
    assert rec.capacity is not None and rec.capacity.configured == 10.0
    assert rec.capacity.learned == (how == "learned")
    assert rec.capacity.used == {"configured": 10.0, "learned": 30.0 if replicas == 1 else 5.0}[how]


SMOOTH = ("backlog", {**BACKLOG[1], "learn": False, "smooth_seconds": 60.0,
                      "startup_seconds": 20.0, "absorb_seconds": 5.0})


def in_rate_history(values: Sequence[float]) -> dict[str, list[Signal]]:
    """One in-rate read every 10 s ending now (the last value), after one read of 500/s at
    70 s ago: outside the 60 s window, so it must not count."""
    n = len(values)
    return {"f.in_rate": [Signal("f.in_rate", 500.0, NOW - 70.0)]
            + [Signal("f.in_rate", v, NOW - 10.0 * (n - 1 - i)) for i, v in enumerate(values)]}


@pytest.mark.parametrize(("params", "values", "backlog", "replicas", "settled", "urgent"), [
    # mean (5 * 10 + 24) / 6 = 12.3/s -> 2 replicas, 20/s. The newest 24/s would build
    # (24 - 20) * 20 s = 80 msgs by a new worker's start, under 5 s of 20/s: absorbed.
    pytest.param(SMOOTH, [10.0] * 5 + [24.0], 0.0, 2, False, False, id="absorbable-rise"),
    pytest.param(BACKLOG, [10.0] * 5 + [24.0], 0.0, 3, True, False, id="without-smoothing-newest"),
    # 40/s would build (40 - 20) * 20 = 400 > 100 msgs: sized for 40/s at once.
    pytest.param(SMOOTH, [10.0] * 5 + [40.0], 0.0, 4, False, True, id="rise-beyond-absorb-at-once"),
    # a backlog already queued counts: 60 msgs + (24 - 20) * 20 = 140 > 100.
    pytest.param(SMOOTH, [10.0] * 5 + [24.0], 60.0, 3, False, True, id="queued-backlog-counts"),
    # falling: the mean (5 * 40 + 10) / 6 = 35/s holds 4 replicas; the newest alone needs 1.
    pytest.param(SMOOTH, [40.0] * 5 + [10.0], 0.0, 4, False, False, id="fall-follows-the-mean"),
    # flat: 10/s + 1200 / 60 s drain = 30/s -> 3; a flat window is settled.
    pytest.param(SMOOTH, [10.0] * 6, 1200.0, 3, True, False, id="flat-with-drain"),
])
def test_backlog_smoothing(params: tuple[str, dict[str, Any]], values: list[float], *,
                           backlog: float, replicas: int, settled: bool, urgent: bool) -> None:
    spec = make_spec([params], lo=1, hi=20)
    result = run(spec, 1, [sig("f.backlog", backlog), sig("f.in_rate", values[-1])],
                 signal_history=in_rate_history(values))
    rec = result.decision.recommendations[0]
    assert (rec.replicas, rec.settled) == (replicas, settled)
    assert ("cannot absorb" in rec.reason) == urgent


def test_backlog_float_noise_costs_no_replica() -> None:
    # 0.1 * 3 * 100 = 30.000000000000004/s at 10/s a replica: 3 replicas, not
    # ceil(3.0000000000000004) = 4
    spec = make_spec([BACKLOG], lo=1, hi=20)
    result = run(spec, 3, [sig("f.backlog", 0.0), sig("f.in_rate", 0.1 * 3 * 100)])
    assert result.decision.recommendations[0].replicas == 3


def test_backlog_a_flat_window_is_the_newest_in_rate_exactly() -> None:
    # six reads of 17.9/s sum to a mean of 17.900000000000002/s: that is no rise above the
    # newest, and the reason names the in-rate, not a mean.
    spec = make_spec([SMOOTH], lo=1, hi=20)
    result = run(spec, 2, [sig("f.backlog", 0.0), sig("f.in_rate", 17.9)],
                 signal_history=in_rate_history([17.9] * 6))
    rec = result.decision.recommendations[0]
    assert (rec.replicas, rec.settled) == (2, True)
    assert rec.reason.startswith("backlog 0 + in-rate 17.9/s needs")


ABSORB_WINDOW = ("backlog", {**SMOOTH[1], "absorb_window_seconds": 6.0})


def two_second_reads(newest: Sequence[float]) -> dict[str, list[Signal]]:
    """In-rate reads every 2 s over the last minute: 10/s, then `newest` (the last one now)."""
    values = [10.0] * (30 - len(newest)) + list(newest)
    return {"f.in_rate": [Signal("f.in_rate", v, NOW - 2.0 * (len(values) - 1 - i))
                          for i, v in enumerate(values)]}


def backlog_recommendation(params: tuple[str, dict[str, Any]], newest: float,
                           history: dict[str, list[Signal]]) -> Recommendation:
    """What the one backlog policy recommends at 1 replica, no backlog, `newest` in-rate."""
    spec = make_spec([params], lo=1, hi=20)
    result = run(spec, 1, [sig("f.backlog", 0.0), sig("f.in_rate", newest)],
                 signal_history=history)
    return result.decision.recommendations[0]


@pytest.mark.parametrize(("params", "newest", "replicas", "reason"), [
    # one read of 40/s after 10/s: alone it would build (40 - 20) * 20 = 400 > 100 msgs by a
    # new worker's start (2 replicas hold the mean, 11/s)...
    pytest.param(SMOOTH, [40.0], 4, "in-rate 40.0/s (a rise the backlog cannot absorb",
                 id="without-window-one-read"),
    # ... but the reads of the last 6 s average (3 * 10 + 40) / 4 = 17.5/s, under 20/s: a
    # burst of one read, absorbed; the mean (29 * 10 + 40) / 30 = 11/s holds 2 replicas.
    pytest.param(ABSORB_WINDOW, [40.0], 2, "mean in-rate 11.0/s over 60s", id="a-burst-absorbed"),
    # every read of the window shows 40/s: (40 - 20) * 20 > 100 msgs, sized for 40/s at once.
    pytest.param(ABSORB_WINDOW, [40.0] * 4, 4,
                 "in-rate 40.0/s over 6s (a rise the backlog cannot absorb", id="a-rise-sized"),
])
def test_backlog_absorb_window(params: tuple[str, dict[str, Any]], newest: list[float],
                               replicas: int, reason: str) -> None:
    rec = backlog_recommendation(params, newest[-1], two_second_reads(newest))
    assert rec.replicas == replicas
    assert reason in rec.reason


PERSIST = ("backlog", {**SMOOTH[1], "persist_seconds": 20.0})


@pytest.mark.parametrize(("params", "values", "replicas", "lasts"), [
    # every read of the last 20 s shows at least 24/s, above the mean (3 * 10 + 3 * 24) / 6 =
    # 17/s: sized for 24/s (3 replicas), though the backlog could absorb it (as above).
    pytest.param(PERSIST, [10.0] * 3 + [24.0] * 3, 3, True, id="a-rise-that-lasts"),
    pytest.param(SMOOTH, [10.0] * 3 + [24.0] * 3, 2, False, id="without-persist-the-mean"),
    # the read 20 s ago was 10/s: the rise is younger than 20 s, the mean 12.3/s holds.
    pytest.param(PERSIST, [10.0] * 5 + [24.0], 2, False, id="a-young-rise-waits"),
    # a fall is no rise: the lowest read of the last 20 s (10/s) is under the mean.
    pytest.param(PERSIST, [40.0] * 3 + [10.0] * 3, 3, False, id="a-fall-follows-the-mean"),
])
def test_backlog_persisting_rise(params: tuple[str, dict[str, Any]], values: list[float],
                                 replicas: int, *, lasts: bool) -> None:
    rec = backlog_recommendation(params, values[-1], in_rate_history(values))
    assert rec.replicas == replicas
    assert ("a rise that lasts" in rec.reason) == lasts


FALLS = ("backlog", {**PERSIST[1], "follow_falls": True})


@pytest.mark.parametrize(("params", "values", "replicas", "reason"), [
    # the newest read (10/s) is under the mean (25/s): sized for it, not for the mean
    pytest.param(FALLS, [40.0] * 3 + [10.0] * 3, 1, "in-rate 10.0/s (a fall, followed at once",
                 id="a-fall-followed"),
    pytest.param(PERSIST, [40.0] * 3 + [10.0] * 3, 3, "mean in-rate 25.0/s over 60s",
                 id="without-it-the-mean"),
    # rises are still smoothed: a young rise above the mean waits for the mean, as above
    pytest.param(FALLS, [10.0] * 5 + [24.0], 2, "mean in-rate 12.3/s over 60s",
                 id="a-rise-still-smoothed"),
])
def test_backlog_follow_falls(params: tuple[str, dict[str, Any]], values: list[float],
                              replicas: int, reason: str) -> None:
    rec = backlog_recommendation(params, values[-1], in_rate_history(values))
    assert rec.replicas == replicas
    assert reason in rec.reason


TRUST = ("backlog", {**PERSIST[1], "trust_seconds": 300.0})


def ten_second_reads(values: Sequence[float]) -> dict[str, list[Signal]]:
    """One in-rate read every 10 s ending now (the last value)."""
    n = len(values)
    return {"f.in_rate": [Signal("f.in_rate", v, NOW - 10.0 * (n - 1 - i))
                          for i, v in enumerate(values)]}


STEPS = [10.0] * 6 + [24.0] * 6 + [10.0] * 6 + [24.0] * 6 + [10.0] * 6 + [24.0]
BURSTS = [10.0] * 6 + [24.0] + [10.0] * 11 + [24.0] + [10.0] * 11 + [24.0]


@pytest.mark.parametrize(("params", "values", "replicas", "trusted"), [
    # The two jumps from 10/s to 24/s before the newest held for 60 s, more than the 20 s of
    # persist_seconds: the newest read's 24/s is sized for at once (3 replicas). The mean over
    # 60 s, (6 * 10 + 24) / 7 = 12/s, holds 2; the backlog absorbs (24 - 20) * 20 = 80 < 100.
    pytest.param(TRUST, STEPS, 3, True, id="jumps-that-lasted"),
    pytest.param(PERSIST, STEPS, 2, False, id="without-trust-the-mean"),
    # The jumps before passed at the next read, 10 s later: the newest waits for the mean.
    pytest.param(TRUST, BURSTS, 2, False, id="jumps-that-passed"),
    # No read rose a replica's worth (10/s) over the one before: a drift, trusted. The mean of
    # 25..31 is 28/s and every read of the last 20 s is 29/s at least (3 replicas); 31/s: 4.
    pytest.param(TRUST, [float(v) for v in range(10, 32)], 4, True, id="a-drift"),
    # A jump younger than persist_seconds is not judged yet: the one before it passed.
    pytest.param(TRUST, [10.0] * 6 + [24.0] + [10.0] * 22 + [24.0, 24.0], 2, False,
                 id="a-young-jump-is-not-judged"),
])
def test_backlog_trusts_one_reads_rise_where_rises_last(
        params: tuple[str, dict[str, Any]], values: list[float], replicas: int, *,
        trusted: bool) -> None:
    rec = backlog_recommendation(params, values[-1], ten_second_reads(values))
    assert rec.replicas == replicas
    assert ("trusted at once" in rec.reason) == trusted


def test_backlog_trust_needs_a_mean_and_a_persist_to_judge_by() -> None:
    with pytest.raises(ValidationError, match="trust_seconds needs smooth_seconds and "
                                              "persist_seconds"):
        BacklogParams.model_validate({**SMOOTH[1], "trust_seconds": 300.0})


@pytest.mark.parametrize(("params", "seconds"), [
    pytest.param(SMOOTH, 60.0, id="the-mean-window"),
    pytest.param(PERSIST, 60.0, id="a-shorter-persist-fits-in-it"),
    pytest.param(("backlog", {**PERSIST[1], "persist_seconds": 90.0}), 90.0,
                 id="a-longer-persist-keeps-more"),
    pytest.param(("backlog", {**SMOOTH[1], "absorb_window_seconds": 75.0}), 75.0,
                 id="a-longer-absorb-window-keeps-more"),
    pytest.param(TRUST, 300.0, id="the-jumps-trust-judges"),
])
def test_backlog_smoothing_keeps_its_window_of_in_rates(params: tuple[str, dict[str, Any]],
                                                        seconds: float) -> None:
    policy = make_spec([params]).policies[0]
    assert isinstance(policy, BacklogPolicy)
    assert policy.history_seconds() == {"f.in_rate": seconds}


# ------------------------------------------------------------------------------- request rate

RATE = ("request-rate", {"source": "t", "capacity_rps": 10.0, "target_utilization": 1.0,
                         "startup_seconds": 30.0, "trend_seconds": 60.0,
                         "trend_min_samples": 3, "burst_seconds": 0.0})
BURSTY = ("request-rate", {**RATE[1], "burst_seconds": 600.0, "burst_quantile": 0.5,
                           "trend_seconds": 1.0})


def rate_history(values: Sequence[float], step: float = 15.0) -> dict[str, list[Signal]]:
    n = len(values)
    return {"t.value": [Signal("t.value", v, NOW - step * (n - 1 - i))
                        for i, v in enumerate(values)]}


@pytest.mark.parametrize(("values", "replicas"), [
    # rate 30/s at 10/s per replica -> 3 without a trend.
    pytest.param([30.0], 3, id="no-trend"),
    # slope (30-10)/30 s = 2/3 per s; 30 + 2/3 * 30 = 50 -> 5.
    pytest.param([10.0, 20.0, 30.0], 5, id="rising-looks-ahead"),
    # falling: slope < 0 -> no look-ahead; never below ceil(30/10) = 3.
    pytest.param([50.0, 40.0, 30.0], 3, id="falling-not-below-current-need"),
    # flat: slope 0 -> 3.
    pytest.param([30.0, 30.0, 30.0], 3, id="flat"),
    # two points < trend_min_samples 3: no look-ahead.
    pytest.param([10.0, 30.0], 3, id="too-few-points"),
])
def test_request_rate_look_ahead(values: list[float], replicas: int) -> None:
    spec = make_spec([RATE], lo=1, hi=50)
    result = run(spec, 3, [sig("t.value", values[-1])], signal_history=rate_history(values))
    assert result.decision.recommendations[0].replicas == replicas


@pytest.mark.parametrize(("values", "replicas"), [
    # 15 s apart, horizon 30 s: each 10 sees a 20 within reach (+10/s), each 20 sees no
    # rise: rises [0, 0, 0, 10, 10, 10], median 10/s -> 20 + 10 = 30/s -> 3 replicas.
    pytest.param([10.0, 20.0, 10.0, 20.0, 10.0, 20.0, 20.0], 3, id="bursty-traffic-earns-headroom"),
    # flat traffic shows no rise: 20/s needs 2 replicas, no more.
    pytest.param([20.0] * 7, 2, id="smooth-earns-none"),
    # on/off traffic: idle reads see bursts of 40/s ahead (rises [0, 0, 0, 40, 40, 40]); at
    # 1/s now the headroom is those 40/s, not a ratio of the idle rate: 41/s -> 5 replicas.
    pytest.param([0.0, 40.0, 0.0, 40.0, 0.0, 40.0, 1.0], 5, id="on-off-headroom-is-the-rise"),
])
def test_request_rate_burst_headroom(values: list[float], replicas: int) -> None:
    spec = make_spec([BURSTY], lo=1, hi=50)
    result = run(spec, 3, [sig("t.value", values[-1])], signal_history=rate_history(values))
    assert result.decision.recommendations[0].replicas == replicas


@pytest.mark.parametrize(("burst_utilization", "replicas", "sized_at"), [
    # 20/s now, bursts to 20 + 10 = 30/s (as above), at 10/s per replica and a target of 50 %:
    # everything at 50 % is 30 / 5 = 6 replicas.
    pytest.param(None, 6, None, id="by-default-at-the-target"),
    # the burst at 100 %: 30 / 10 = 3, but the rate at the target still needs 20 / 5 = 4.
    pytest.param(1.0, 4, "(sized at 100%)", id="the-rate-keeps-its-margin"),
    # at 25 %: 30 / 2.5 = 12, above the rate's 4.
    pytest.param(0.25, 12, "(sized at 25%)", id="a-lower-one-adds-margin"),
])
def test_request_rate_burst_utilization(burst_utilization: float | None, replicas: int,
                                        sized_at: str | None) -> None:
    params = {**BURSTY[1], "target_utilization": 0.5}
    if burst_utilization is not None:
        params["burst_utilization"] = burst_utilization
    spec = make_spec([("request-rate", params)], lo=1, hi=50)
    values = [10.0, 20.0, 10.0, 20.0, 10.0, 20.0, 20.0]
    result = run(spec, 3, [sig("t.value", values[-1])], signal_history=rate_history(values))
    rec = result.decision.recommendations[0]
    assert rec.replicas == replicas
    assert "bursts to 30.0/s" in rec.reason
    assert (sized_at in rec.reason) if sized_at else ("sized at" not in rec.reason)


@pytest.mark.parametrize(("points", "rise"), [
    pytest.param([(0.0, 10.0), (10.0, 15.0), (20.0, 12.0)], 5.0, id="best-rise-within-horizon"),
    pytest.param([(0.0, 10.0), (100.0, 30.0)], 0.0, id="later-peak-out-of-reach"),
    pytest.param([(0.0, 0.0), (10.0, 30.0)], 30.0, id="rise-from-idle-counts"),
    pytest.param([(0.0, 30.0), (10.0, 10.0)], 0.0, id="falls-are-no-rise"),
    pytest.param([], 0.0, id="no-points"),
])
def test_burst_rise(points: list[tuple[float, float]], rise: float) -> None:
    assert burst_rise(points, horizon=30.0, quantile=1.0) == pytest.approx(rise)


def test_request_rate_ignores_points_older_than_trend_window() -> None:
    spec = make_spec([RATE], lo=1, hi=50)
    # points 75 s and 70 s old are outside 60 s: only [30.0] remains -> no trend.
    hist = {"t.value": [Signal("t.value", 0.0, NOW - 75), Signal("t.value", 0.0, NOW - 70),
                        Signal("t.value", 30.0, NOW)]}
    result = run(spec, 3, [sig("t.value", 30.0)], signal_history=hist)
    assert result.decision.recommendations[0].replicas == 3
