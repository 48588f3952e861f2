"""The demo's simulated cluster reports what metrics-server would: every running pod has a CPU
sample, busier when its workload serves more of its capacity. It times the daemon's reactions,
and apart from them the scale-ups that the daemon's dependency gate held."""

from __future__ import annotations

import pytest

from autoscaler import demo
from autoscaler.cli import default_config_path
from autoscaler.config import load_config
from autoscaler.demo import DemoCluster, Scaled, build_cluster
from autoscaler.sim.traces import generated_trace


def test_every_running_pod_has_a_cpu_sample_that_follows_the_load() -> None:
    loaded = load_config(default_config_path())
    cluster = build_cluster(loaded, generated_trace(hours=1.0), speed=10.0, peak_replicas=20,
                            seed=1)
    cluster.step()
    ns = loaded.config.daemon.namespace
    running = [p for p in cluster.kube.pods(ns) if p.phase == "Running"]
    sampled = cluster.kube.pod_metrics(ns)
    assert running and {p.name for p in sampled} == {p.name for p in running}
    for pod in sampled:
        assert pod.cpu_usage_milli is not None
        assert pod.cpu_request_milli // 10 <= pod.cpu_usage_milli <= pod.cpu_request_milli
    busy = [p for p in sampled if p.ready and p.cpu_usage_milli > p.cpu_request_milli // 10]
    assert busy  # the scaled workloads serve traffic from the start


class FakeTime:
    """The demo's real-time clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


def _crossing(monkeypatch: pytest.MonkeyPatch) -> tuple[DemoCluster, Scaled, FakeTime]:
    loaded = load_config(default_config_path())
    cluster = build_cluster(loaded, generated_trace(hours=1.0), speed=10.0, peak_replicas=20,
                            seed=1)
    clock = FakeTime()
    monkeypatch.setattr(demo.time, "monotonic", clock.monotonic)
    cluster.started = clock.now
    cluster.step()
    scaled = next(s for s in cluster.scaled if s.name == "wk-pl-background")
    # The workers' policy, fed the true state, wants more from here on.
    monkeypatch.setattr(scaled, "threshold_crossed", lambda replicas, t: True)
    return cluster, scaled, clock


def _scale_up(cluster: DemoCluster, scaled: Scaled) -> None:
    ns, name = cluster.namespace, scaled.name
    cluster.kube.set_replicas(ns, name, cluster.kube.deployment(ns, name).replicas + 1)


def test_a_reaction_is_timed_from_the_crossing(monkeypatch: pytest.MonkeyPatch) -> None:
    cluster, scaled, clock = _crossing(monkeypatch)
    cluster.step()
    clock.now += 0.4
    _scale_up(cluster, scaled)
    cluster.step()
    assert cluster.reactions == [pytest.approx(0.4)]
    assert cluster.held == []


@pytest.mark.parametrize("seen_open", [False, True])
def test_a_scale_up_the_gate_held_is_timed_apart(monkeypatch: pytest.MonkeyPatch,
                                                 seen_open: bool) -> None:
    cluster, scaled, clock = _crossing(monkeypatch)
    for _ in range(3):  # the daemon holds the workers behind a dependency for 2 s
        cluster.step(lambda workload: workload == "wk-pl-background")
        clock.now += 1.0
    # The gate opened after the driver last saw it closed; the daemon scaled before the driver's
    # next step, or after one that saw the gate open: either way the reaction is timed from the
    # last step that saw the gate closed.
    clock.now -= 0.9
    if seen_open:
        cluster.step()
    clock.now += 0.2
    _scale_up(cluster, scaled)
    cluster.step()
    assert cluster.reactions == [pytest.approx(0.3)]
    assert cluster.held == [pytest.approx(2.3)]
