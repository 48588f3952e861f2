"""`scale_down.retract_seconds`: the pods of a scale-up that is no longer recommended go at once
while they are still starting, past the scale-down window and rate limits."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from test_evaluate import hpa_avg, make_spec

from autoscaler.config import (
    Behavior,
    PartialRules,
    RatePolicy,
    ScalingRules,
    WorkloadSpec,
)
from autoscaler.engine.behavior import remember, retract
from autoscaler.engine.evaluate import evaluate
from autoscaler.model import (
    Action,
    ConsumerStat,
    DependencyState,
    Health,
    PodInfo,
    ScalingHistory,
    Signal,
    TimedValue,
    WorkloadStatus,
)

NOW = 10_000.0
DOWN = ScalingRules(stabilization_window_seconds=15, retract_seconds=30,
                    policies=(RatePolicy(type="Percent", value=25, period_seconds=30),))


def retracted(*, current: int = 10, desired: int = 4, allowed: int = 10, starting: int = 4,
              ups: tuple[tuple[float, int], ...] = ((5.0, 4),), min_replicas: int = 1,
              rules: ScalingRules = DOWN) -> tuple[int, str]:
    """`retract` with scale-ups (seconds ago, pods added)."""
    return retract(current=current, desired=desired, allowed=allowed, min_replicas=min_replicas,
                   starting=starting, rules=rules,
                   up_events=tuple(TimedValue(NOW - ago, n) for ago, n in ups), now=NOW)


@pytest.mark.parametrize(("kwargs", "expected"), [
    # 10 pods, 4 of them asked for 5 s ago and still starting; the policy wants 4 again.
    pytest.param({}, (6, "ScaleUpRetracted"), id="the-starting-pods-go"),
    pytest.param({"desired": 8}, (8, "ScaleUpRetracted"), id="not-below-desired"),
    pytest.param({"starting": 2}, (8, "ScaleUpRetracted"), id="only-pods-not-ready"),
    pytest.param({"ups": ((5.0, 1), (12.0, 1))}, (8, "ScaleUpRetracted"),
                 id="only-pods-added-within-the-window"),
    pytest.param({"ups": ((31.0, 4),)}, (10, ""), id="a-scale-up-older-than-the-window"),
    # the window is (now - 30 s, now], as the HPA's rate-limit periods are
    pytest.param({"ups": ((30.0, 4),)}, (10, ""), id="a-scale-up-as-old-as-the-window"),
    pytest.param({"min_replicas": 7}, (7, "ScaleUpRetracted"), id="not-below-min"),
    pytest.param({"desired": 9}, (10, ""), id="one-pod-over-is-left-to-the-window"),
    pytest.param({"allowed": 8}, (6, "ScaleUpRetracted"), id="below-what-the-rate-limit-gave"),
    pytest.param({"desired": 12, "allowed": 12}, (12, ""), id="a-scale-up-is-not-touched"),
    pytest.param({"current": 8, "allowed": 10, "starting": 2}, (10, ""),
                 id="not-while-the-behavior-raises-the-count"),
    pytest.param({"rules": DOWN.model_copy(update={"retract_seconds": 0})}, (10, ""),
                 id="off-as-the-hpa"),
    pytest.param({"desired": 9, "rules": DOWN.model_copy(update={"retract_slack": 0})},
                 (9, "ScaleUpRetracted"), id="no-slack-one-pod-over-goes"),
    pytest.param({"desired": 8, "rules": DOWN.model_copy(update={"retract_slack": 2})},
                 (10, ""), id="two-pods-of-slack-two-over-is-left-to-the-window"),
    pytest.param({"desired": 7, "rules": DOWN.model_copy(update={"retract_slack": 2})},
                 (7, "ScaleUpRetracted"), id="two-pods-of-slack-three-over-goes"),
])
def test_retract(kwargs: dict[str, object], expected: tuple[int, str]) -> None:
    assert retracted(**kwargs) == expected  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(current=st.integers(1, 40), data=st.data())
def test_retract_removes_only_recent_pods_not_ready_and_never_below_desired_or_min(
        current: int, data: st.DataObject) -> None:
    starting = data.draw(st.integers(0, current))
    desired = data.draw(st.integers(0, current))
    allowed = data.draw(st.integers(desired, current))
    low = data.draw(st.integers(0, allowed))  # the behavior never allows less than min
    ups = data.draw(st.lists(st.tuples(st.floats(0, 60), st.integers(1, 10)), max_size=5))
    got, why = retracted(current=current, desired=desired, allowed=allowed, starting=starting,
                         ups=tuple(ups), min_replicas=low)
    added = sum(n for ago, n in ups if ago < DOWN.retract_seconds)
    assert got <= allowed
    assert (why == "ScaleUpRetracted") == (got < allowed)
    if why:  # no ready pod, no pod of an older scale-up, and nothing below desired or min
        assert got >= max(desired, low, current - starting, current - added)
        assert allowed - desired > 1  # a count one pod over is left to the window


def spec_with(down: PartialRules) -> WorkloadSpec:
    return make_spec([hpa_avg("q", 1.0)], hi=30, behavior=Behavior(scale_down=down))


def decide(spec: WorkloadSpec, *, replicas: int, ready: int, value: float,
           history: ScalingHistory, pods: tuple[PodInfo, ...] = (),
           consumers: tuple[ConsumerStat, ...] | None = None,
           ) -> tuple[Action, int, tuple[str, ...]]:
    status = WorkloadStatus("w", "ns", replicas, ready_replicas=ready, pods=pods)
    d = evaluate(spec, status=status, signals={"q.value": Signal("q.value", value, NOW)},
                 dependencies={"es": DependencyState("es", Health.UP)}, history=history,
                 now=NOW, staleness={}, consumers=consumers).decision
    return d.action, d.desired, d.reasons


def test_evaluate_retracts_a_burst_the_next_read_no_longer_shows() -> None:
    # 3 -> 9 two seconds ago on a burst's first read; the next read needs 3 again.
    history = ScalingHistory((TimedValue(NOW - 2, 9),), (TimedValue(NOW - 2, 6),), ())
    on = spec_with(PartialRules(stabilization_window_seconds=15, retract_seconds=30))
    assert decide(on, replicas=9, ready=3, value=3.0, history=history) == (
        Action.SCALE, 3, ("q.value 3 against target 1", "ScaleUpRetracted"))
    # Without it, the HPA's window holds the 9 for 15 s.
    off = spec_with(PartialRules(stabilization_window_seconds=15))
    assert decide(off, replicas=9, ready=3, value=3.0, history=history)[:2] == (Action.HOLD, 9)
    # Once the new pods are ready, they have started serving: the window decides again.
    assert decide(on, replicas=9, ready=9, value=3.0, history=history)[:2] == (Action.HOLD, 9)


def test_a_ready_pod_that_consumes_nothing_yet_counts_as_starting() -> None:
    # Ready by its readiness (a worker without a readiness probe is ready once its container
    # runs), but only the first three pods are consumers of the subscription.
    history = ScalingHistory((TimedValue(NOW - 2, 9),), (TimedValue(NOW - 2, 6),), ())
    pods = tuple(PodInfo(f"p{i}", ready=True, ip=f"10.0.0.{i}") for i in range(9))
    consumers = tuple(ConsumerStat(f"c{i}", f"/10.0.0.{i}:4{i}000", 5.0) for i in range(3))
    on = spec_with(PartialRules(stabilization_window_seconds=15, retract_seconds=30))
    assert decide(on, replicas=9, ready=9, value=3.0, history=history, pods=pods,
                  consumers=consumers)[:2] == (Action.SCALE, 3)
    # Once they consume, they have started: the window holds them.
    every = tuple(ConsumerStat(f"c{i}", f"/10.0.0.{i}:4{i}000", 5.0) for i in range(9))
    assert decide(on, replicas=9, ready=9, value=3.0, history=history, pods=pods,
                  consumers=every)[:2] == (Action.HOLD, 9)
    # With the subscription not known, readiness alone decides.
    assert decide(on, replicas=9, ready=9, value=3.0, history=history, pods=pods)[:2] == (
        Action.HOLD, 9)


@pytest.mark.parametrize("rules", [{"retract_seconds": 30}, {"retract_slack": 2}])
def test_retracting_is_refused_on_scale_up(rules: dict[str, int]) -> None:
    with pytest.raises(ValidationError, match=r"scale_up\.retract_seconds, scale_up\."
                                              r"retract_slack: retracting is a scale-down; set "
                                              r"them under scale_down"):
        Behavior(scale_up=PartialRules(**rules))


def test_the_slack_is_one_pod_unless_set() -> None:
    assert Behavior().down.retract_slack == 1
    assert Behavior(scale_down=PartialRules(retract_seconds=30, retract_slack=0)
                    ).down.retract_slack == 0


def test_the_memory_keeps_scale_ups_for_the_retract_window() -> None:
    # The rate periods are 15 s; a scale-up 40 s ago still counts within a 60 s retract window.
    up = ScalingRules(stabilization_window_seconds=0,
                      policies=(RatePolicy(type="Pods", value=30, period_seconds=15),))
    down = ScalingRules(stabilization_window_seconds=15, retract_seconds=60,
                        policies=(RatePolicy(type="Percent", value=25, period_seconds=15),))
    history = ScalingHistory((), (TimedValue(NOW - 40, 4), TimedValue(NOW - 61, 2)), ())
    kept = remember(history, desired=4, now=NOW, up=up, down=down)
    assert kept.scale_up_events == (TimedValue(NOW - 40, 4),)
