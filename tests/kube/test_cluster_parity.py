"""SimCluster (in memory) answers exactly as KubeCluster (over HTTP) does, scenario by scenario."""

from __future__ import annotations

import pytest
from kube_fixtures import NS, RealClock, Served

from autoscaler.kube.cluster import KubeCluster
from autoscaler.kube.errors import KubeError
from autoscaler.ports import Cluster, WriteOutcome
from autoscaler.sim.cluster import SimCluster
from autoscaler.sim.kubestate import KubeState

API = "be-fa-public"


@pytest.fixture(params=["kube-over-http", "sim-in-memory"])
def adapter(request: pytest.FixtureRequest, served: Served, cluster: KubeCluster) -> Cluster:
    if request.param == "kube-over-http":
        return cluster
    return SimCluster(served.state, clock=RealClock())


def _ready_deployment(state: KubeState, replicas: int) -> None:
    state.add_deployment(NS, API, replicas=replicas, cpu_request_milli=300)
    for pod in state.workload_pods(NS, API):
        state.mark_ready(NS, pod.name, True)


async def test_both_read_the_same_workload_status(served: Served, cluster: KubeCluster) -> None:
    state = served.state
    _ready_deployment(state, 3)
    state.crash(NS, state.workload_pods(NS, API)[1].name)
    state.set_paused(NS, API, True)
    sim = SimCluster(state, clock=RealClock())
    assert await cluster.get_workload(NS, API) == await sim.get_workload(NS, API)


async def test_missing_deployment(served: Served, adapter: Cluster) -> None:
    with pytest.raises(KubeError) as info:
        await adapter.get_workload(NS, "nope")
    assert (info.value.code, info.value.message) == (404, 'deployments.apps "nope" not found')


async def test_conflict_then_reread(served: Served, adapter: Cluster) -> None:
    state = served.state
    _ready_deployment(state, 2)
    stale = await adapter.get_workload(NS, API)
    state.set_paused(NS, API, False)
    result = await adapter.scale(NS, API, replicas=4, resource_version=stale.resource_version)
    assert result.outcome is WriteOutcome.CONFLICT
    fresh = await adapter.get_workload(NS, API)
    result = await adapter.scale(NS, API, replicas=4, resource_version=fresh.resource_version)
    assert result.outcome is WriteOutcome.DONE
    scaled = await adapter.get_workload(NS, API)
    assert scaled.replicas == 4 and scaled.generation == fresh.generation + 1


@pytest.mark.parametrize(("verb", "resource", "code", "outcome"), [
    pytest.param("update", "deployments/scale", 403, WriteOutcome.FORBIDDEN, id="scale-403"),
    pytest.param("update", "deployments/scale", 429, WriteOutcome.THROTTLED, id="scale-429"),
    pytest.param("update", "deployments/scale", 502, WriteOutcome.FAILED, id="scale-502"),
    pytest.param("create", "pods/eviction", 500, WriteOutcome.FAILED, id="evict-500"),
    pytest.param("delete", "pods", 403, WriteOutcome.FORBIDDEN, id="delete-403"),
])
async def test_injected_faults_give_the_same_outcomes(served: Served, adapter: Cluster, *,
                                                      verb: str, resource: str, code: int,
                                                      outcome: WriteOutcome) -> None:
    state = served.state
    _ready_deployment(state, 2)
    status = await adapter.get_workload(NS, API)
    state.faults.inject(verb, resource, code=code, retry_after=3 if code == 429 else None)
    pod = status.pods[0].name
    if resource == "deployments/scale":
        result = await adapter.scale(NS, API, replicas=5,
                                     resource_version=status.resource_version)
    elif resource == "pods/eviction":
        result = await adapter.evict(NS, pod)
    else:
        result = await adapter.delete_pod(NS, pod)
    assert result.outcome is outcome
    assert result.retry_after == (3 if code == 429 else None)
    assert state.deployment(NS, API).replicas == 2
    assert pod in {p.name for p in state.workload_pods(NS, API)}


async def test_pdb_throttles_eviction(served: Served, adapter: Cluster) -> None:
    state = served.state
    _ready_deployment(state, 2)
    state.add_pdb(NS, "pdb", min_available=2, selector=state.deployment(NS, API).selector)
    pod = state.workload_pods(NS, API)[0].name
    result = await adapter.evict(NS, pod)
    assert result.outcome is WriteOutcome.THROTTLED
    assert pod in {p.name for p in state.workload_pods(NS, API)}


async def test_conflicting_hpa(served: Served, adapter: Cluster) -> None:
    served.state.add_hpa(NS, "legacy", target=API)
    assert await adapter.conflicting_autoscaler(NS, API) == "HorizontalPodAutoscaler/legacy"


async def test_pod_cpu(served: Served, adapter: Cluster) -> None:
    state = served.state
    _ready_deployment(state, 2)
    for i, pod in enumerate(state.workload_pods(NS, API)):
        state.set_cpu_usage(NS, pod.name, 100 * (i + 1))
    signal = await adapter.pod_cpu(NS, API)
    assert (signal.value, len(signal.samples), signal.error) == (300.0, 2, None)


async def test_events(served: Served, adapter: Cluster) -> None:
    state = served.state
    _ready_deployment(state, 1)
    await adapter.emit_event(NS, API, reason="SuccessfulRescale", message="New size: 1")
    [event] = [e for e in state.events(NS)  # not the controllers' and kubelet's Events
               if e.involved["kind"] == "Deployment" and e.reason != "ScalingReplicaSet"]
    assert (event.reason, event.message, event.type, event.source_component) == (
        "SuccessfulRescale", "New size: 1", "Normal", "tracardi-autoscaler")
    assert event.involved["uid"] == state.deployment(NS, API).uid


@pytest.mark.parametrize(("verb", "resource", "code"), [
    pytest.param("get", "deployments", 403, id="deployment-403"),
    pytest.param("get", "deployments/scale", 500, id="scale-500"),
    pytest.param("list", "pods", 429, id="pods-429"),
])
async def test_read_faults_raise_the_same_kube_error(served: Served, adapter: Cluster, *,
                                                     verb: str, resource: str,
                                                     code: int) -> None:
    _ready_deployment(served.state, 1)
    served.state.faults.inject(verb, resource, code=code, message="injected")
    with pytest.raises(KubeError) as info:
        await adapter.get_workload(NS, API)
    assert (info.value.code, info.value.message) == (code, "injected")
    assert (await adapter.get_workload(NS, API)).replicas == 1


@pytest.mark.parametrize("restart", ["evict", "delete_pod"])
async def test_a_restart_of_a_pod_that_changed_since_it_was_read_is_a_conflict(
        served: Served, adapter: Cluster, restart: str) -> None:
    state = served.state
    _ready_deployment(state, 2)
    judged = (await adapter.get_workload(NS, API)).pods[0]
    assert judged.resource_version
    state.mark_ready(NS, judged.name, False)  # the pod changes after it was read
    act = getattr(adapter, restart)

    result = await act(NS, judged.name, resource_version=judged.resource_version)

    assert result.outcome is WriteOutcome.CONFLICT
    assert not state.pod(NS, judged.name).deleting
    now = next(p for p in (await adapter.get_workload(NS, API)).pods if p.name == judged.name)
    assert now.resource_version != judged.resource_version
    result = await act(NS, judged.name, resource_version=now.resource_version)
    assert result.outcome is WriteOutcome.DONE
    assert not state.has_pod(NS, judged.name) or state.pod(NS, judged.name).deleting
