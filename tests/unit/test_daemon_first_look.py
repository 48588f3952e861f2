"""As the HPA (`recordInitialRecommendation`), a daemon that has just started holds each
workload's count for a scale-down stabilization window before it scales down: a restart or a
new leader is no reason to shed pods on the first look."""

from __future__ import annotations

from pathlib import Path

from test_daemon_write_guard import WORKLOAD, _Cluster, _ready

from autoscaler.engine.behavior import first_recommendation
from autoscaler.model import Action, ScalingHistory, Signal, TimedValue


def test_the_first_look_remembers_the_current_count() -> None:
    assert first_recommendation(ScalingHistory(), current=7, now=100.0).recommendations == (
        TimedValue(100.0, 7),)
    seen = ScalingHistory(recommendations=(TimedValue(90.0, 3),))
    assert first_recommendation(seen, current=7, now=100.0) is seen


async def test_a_fresh_daemon_does_not_scale_down_on_its_first_look(tmp_path: Path) -> None:
    daemon, cluster, _, _ = await _ready(tmp_path, _Cluster(replicas=10))
    now = daemon.a.clock.now()
    daemon._take_signals([Signal("wk-0000.backlog", 0.0, now),
                          Signal("wk-0000.in_rate", 0.0, now)])
    state = daemon.workloads[WORKLOAD]
    decision = await daemon.evaluate_workload(state)
    assert decision is not None and decision.action is Action.HOLD and decision.desired == 10
    assert any("ScaleDownStabilized" in r for r in decision.reasons), decision.reasons
    assert cluster.writes == []
    # Once the window has passed with no higher recommendation, it scales down.
    window = state.spec.settings.behavior.down.stabilization_window_seconds
    state.history = ScalingHistory(
        recommendations=tuple(TimedValue(r.at - window - 1, r.value)
                              for r in state.history.recommendations))
    again = await daemon.evaluate_workload(state)
    assert again is not None and again.action is Action.SCALE and again.desired < 10


async def test_a_fresh_daemon_scales_up_at_once(tmp_path: Path) -> None:
    daemon, cluster, _, _ = await _ready(tmp_path, _Cluster(replicas=1))
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.action is Action.SCALE
    assert cluster.writes == [decision.desired] and decision.desired > 1
