"""The simulator's pods report CPU use as metrics.k8s.io would: each ready pod a tenth of its
request idle and the rest in proportion to the share of capacity in use, so an `hpa` policy on
CPU can be replayed (`simulate --scenario api` of a workload scaled by it)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import yaml

from autoscaler.cli import main
from autoscaler.model import Signal, WorkloadStatus
from autoscaler.sim.adapters import ModelCluster
from autoscaler.sim.clock import run_virtual
from autoscaler.sim.model import POD_CPU_REQUEST_MILLI, ClusterModel
from autoscaler.sim.traces import Trace

REPO = Path(__file__).resolve().parents[2]


def read(model: ClusterModel, at: float) -> tuple[Signal, WorkloadStatus]:
    cluster = ModelCluster(model)

    async def go() -> tuple[Signal, WorkloadStatus]:
        await asyncio.sleep(at)
        return (await cluster.pod_cpu("tracardi", "api"),
                await cluster.get_workload("tracardi", "api"))

    return run_virtual(go())


def test_each_ready_pod_reports_its_share_of_the_load() -> None:
    # 150 requests/s on 4 pods of 100/s: 37.5 % busy, so 50 + 450 * 0.375 = 218.75 -> 219 m
    model = ClusterModel(trace=Trace("flat", (150.0,) * 120, 1), kind="api", workload="api",
                         replicas=4, capacity=100.0)
    cpu, status = read(model, 30.0)
    assert [s.usage_milli for s in cpu.samples] == [219] * 4
    assert cpu.value == 4 * 219
    assert {s.pod for s in cpu.samples} == {p.name for p in status.pods}
    assert {p.cpu_request_milli for p in status.pods} == {POD_CPU_REQUEST_MILLI}


def test_a_starting_pod_has_no_metrics_and_an_overloaded_one_its_whole_request() -> None:
    model = ClusterModel(trace=Trace("peak", (900.0,) * 120, 1), kind="api", workload="api",
                         replicas=2, capacity=100.0)

    async def scaled() -> tuple[Signal, WorkloadStatus]:
        cluster = ModelCluster(model)
        await asyncio.sleep(20.0)
        model.scale(6, at=20.0)  # four more, ready after a start-up of about 30 s
        await asyncio.sleep(1.0)
        return (await cluster.pod_cpu("tracardi", "api"),
                await cluster.get_workload("tracardi", "api"))

    cpu, status = run_virtual(scaled())
    ready = {p.name for p in status.pods if p.ready}
    assert len(ready) == 2 and len(status.pods) == 6
    assert {s.pod for s in cpu.samples} == ready
    assert [s.usage_milli for s in cpu.samples] == [POD_CPU_REQUEST_MILLI] * 2


def test_no_ready_pod_is_an_error_not_a_zero() -> None:
    model = ClusterModel(trace=Trace("idle", (0.0,) * 60, 1), kind="api", workload="api",
                         replicas=1, capacity=100.0)
    model.deployment.pods[0].ready = False
    model.deployment.pods[0].ready_at = 1e9
    cpu, _ = read(model, 5.0)
    assert cpu.value is None and cpu.error == "no pod metrics for api"


def hpa_config(folder: Path) -> Path:
    """The shipped config with the API scaled as by an HPA on CPU at 70 %, HPA behavior."""
    config = yaml.safe_load((REPO / "policies" / "tracardi.yaml").read_text())
    api = config["workloads"]["be-fa-public"]
    api["policies"] = [{"name": "hpa", "metric": {
        "type": "Resource", "target": {"type": "Utilization", "average_utilization": 70}}}]
    api["behavior"] = {}
    path = folder / "hpa.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_an_api_scaled_by_an_hpa_on_cpu_is_replayed(tmp_path: Path) -> None:
    config = hpa_config(tmp_path)
    trace = tmp_path / "rise.csv"  # 10 min at a quarter of the peak, then 20 min at the peak
    trace.write_text("t_seconds,requests\n" + "".join(
        f"{60 * i},{60 * (100 if i < 10 else 400)}\n" for i in range(30)))
    out = tmp_path / "run.json"
    assert main(["simulate", "--config", str(config), "--trace", str(trace), "--scenario", "api",
                 "--no-progress", "--json", str(out)]) == 0
    run = json.loads(out.read_text())["runs"][0]
    assert run["workload"] == "be-fa-public"
    # it scaled up for the peak (20 pods' worth), as an HPA at 70 % does: well above 20 pods
    assert run["scale_actions"] >= 1 and run["reaction_p99_s"] is not None
    assert run["replica_seconds"] > 20 * 1200


def test_the_api_scenario_prefers_a_request_rate_workload(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = yaml.safe_load((REPO / "policies" / "tracardi.yaml").read_text())
    hpa = {"name": "hpa", "metric": {"type": "Resource", "target": {
        "type": "Utilization", "average_utilization": 70}}}
    config["workloads"] = {"a-cpu": {"min": 1, "max": 5, "policies": [hpa]},
                           **config["workloads"]}
    path = tmp_path / "both.yaml"
    path.write_text(yaml.safe_dump(config))
    trace = tmp_path / "flat.csv"
    trace.write_text("t_seconds,requests\n" + "".join(f"{60 * i},6000\n" for i in range(5)))
    out = tmp_path / "run.json"
    assert main(["simulate", "--config", str(path), "--trace", str(trace), "--scenario", "api",
                 "--no-progress", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["runs"][0]["workload"] == "be-fa-public"
    assert main(["simulate", "--config", str(path), "--trace", str(trace), "--scenario", "api",
                 "--workload", "a-cpu", "--peak-replicas", "5", "--no-progress", "--json",
                 str(out)]) == 0
    assert json.loads(out.read_text())["runs"][0]["workload"] == "a-cpu"
