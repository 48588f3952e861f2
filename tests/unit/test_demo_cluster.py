"""The demo's simulated cluster reports what metrics-server would: every running pod has a CPU
sample, busier when its workload serves more of its capacity."""

from __future__ import annotations

from autoscaler.cli import default_config_path
from autoscaler.config import load_config
from autoscaler.demo import build_cluster
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
