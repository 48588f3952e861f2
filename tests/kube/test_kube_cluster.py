"""KubeCluster against the simulated Kubernetes API over real loopback HTTP."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import cast

import aiohttp
import pytest
from kube_fixtures import NS, TOKEN, RealClock, Served
from kubernetes_asyncio.client import ApiClient, Configuration

from autoscaler.kube.cluster import KubeCluster, parse_cpu_milli
from autoscaler.kube.errors import KubeError
from autoscaler.ports import PodEvent, WriteOutcome
from autoscaler.sim.kubestate import KubeState

API = "be-fa-public"
WORKER = "wk-pl-collector"


def _deploy(state: KubeState, name: str = API, replicas: int = 3) -> None:
    state.add_deployment(NS, name, replicas=replicas, cpu_request_milli=250)


async def test_get_workload_reads_deployment_scale_and_pods(served: Served,
                                                            cluster: KubeCluster) -> None:
    state = served.state
    _deploy(state)
    first, second, third = state.workload_pods(NS, API)
    state.mark_ready(NS, first.name, True)
    state.mark_ready(NS, second.name, True)
    state.crash(NS, third.name)
    state.crash(NS, third.name)
    state.set_paused(NS, API, True)
    _deploy(state, WORKER, replicas=1)

    status = await cluster.get_workload(NS, API)

    assert (status.name, status.namespace, status.replicas, status.ready_replicas) == \
        (API, NS, 3, 2)
    assert status.paused is True
    assert status.resource_version == str(state.deployment(NS, API).resource_version)
    pods = {p.name: p for p in status.pods}
    assert set(pods) == {first.name, second.name, third.name}
    assert pods[first.name].ready and pods[first.name].phase == "Running"
    assert pods[first.name].ip == state.pod(NS, first.name).ip != ""
    assert pods[third.name].ready is False
    assert (pods[third.name].restarts, pods[third.name].waiting_reason) == (2, "CrashLoopBackOff")
    assert all(p.cpu_request_milli == 250 and not p.deleting for p in status.pods)
    assert abs(pods[first.name].started_at - time.time()) < 5


async def test_a_deployment_at_zero_has_a_scale_without_replicas_and_is_read_as_zero(
        served: Served, cluster: KubeCluster) -> None:
    _deploy(served.state, WORKER, replicas=0)
    async with aiohttp.ClientSession() as session, session.get(
            f"{served.server.url}/apis/apps/v1/namespaces/{NS}/deployments/{WORKER}/scale",
            headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        scale = await response.json()
    assert scale["spec"] == {}  # autoscaling/v1 ScaleSpec.replicas is omitempty
    assert scale["status"]["replicas"] == 0
    status = await cluster.get_workload(NS, WORKER)
    assert (status.replicas, status.ready_replicas) == (0, 0)


async def test_get_workload_of_missing_deployment_raises_with_status_message(
        served: Served, cluster: KubeCluster) -> None:
    with pytest.raises(KubeError) as info:
        await cluster.get_workload(NS, "nope")
    assert (info.value.code, info.value.reason) == (404, "NotFound")
    assert info.value.message == 'deployments.apps "nope" not found'


async def test_stale_scale_conflicts_then_reread_succeeds(served: Served,
                                                          cluster: KubeCluster) -> None:
    state = served.state
    _deploy(state, replicas=2)
    stale = await cluster.get_workload(NS, API)
    state.mark_ready(NS, state.workload_pods(NS, API)[0].name, True)  # bumps the status

    result = await cluster.scale(NS, API, replicas=5, resource_version=stale.resource_version)

    assert result.outcome is WriteOutcome.CONFLICT
    assert "the object has been modified" in result.message
    assert state.deployment(NS, API).replicas == 2
    fresh = await cluster.get_workload(NS, API)
    assert fresh.resource_version != stale.resource_version
    result = await cluster.scale(NS, API, replicas=5, resource_version=fresh.resource_version)
    assert result.outcome is WriteOutcome.DONE
    assert state.deployment(NS, API).replicas == 5
    assert len(state.workload_pods(NS, API)) == 5


async def test_scale_without_resource_version_is_refused_unsent(served: Served,
                                                               cluster: KubeCluster) -> None:
    _deploy(served.state, replicas=2)
    result = await cluster.scale(NS, API, replicas=4, resource_version="")
    assert result.outcome is WriteOutcome.FAILED
    assert served.state.deployment(NS, API).replicas == 2


@pytest.mark.parametrize(("code", "retry_after", "outcome"), [
    pytest.param(403, None, WriteOutcome.FORBIDDEN, id="rbac-403-forbidden"),
    pytest.param(404, None, WriteOutcome.NOT_FOUND, id="404-not-found"),
    pytest.param(429, 7.0, WriteOutcome.THROTTLED, id="429-throttled-with-retry-after"),
    pytest.param(500, None, WriteOutcome.FAILED, id="500-failed"),
    pytest.param(503, None, WriteOutcome.FAILED, id="503-failed"),
])
async def test_scale_errors_map_to_outcomes_and_change_nothing(
        served: Served, cluster: KubeCluster, code: int, retry_after: float | None,
        outcome: WriteOutcome) -> None:
    state = served.state
    _deploy(state, replicas=2)
    status = await cluster.get_workload(NS, API)
    state.faults.inject("update", "deployments/scale", code=code, retry_after=retry_after)

    result = await cluster.scale(NS, API, replicas=6, resource_version=status.resource_version)

    assert result.outcome is outcome
    assert result.retry_after == retry_after
    assert state.deployment(NS, API).replicas == 2


async def test_evict_blocked_by_pdb_is_throttled_and_deletes_nothing(
        served: Served, cluster: KubeCluster) -> None:
    state = served.state
    _deploy(state, replicas=2)
    pods = state.workload_pods(NS, API)
    for pod in pods:
        state.mark_ready(NS, pod.name, True)
    state.add_pdb(NS, "api-pdb", min_available=2, selector=state.deployment(NS, API).selector)
    deleted: list[str] = []
    state.subscribe("pods", NS, lambda e: deleted.append(e.type) if e.type == "DELETED" else None)

    result = await cluster.evict(NS, pods[0].name)

    assert result.outcome is WriteOutcome.THROTTLED
    assert result.message == "Cannot evict pod as it would violate the pod's disruption budget."
    assert state.pod(NS, pods[0].name) is pods[0]
    assert deleted == []


async def test_evict_within_budget_replaces_the_pod(served: Served,
                                                   cluster: KubeCluster) -> None:
    state = served.state
    _deploy(state, replicas=3)
    pods = state.workload_pods(NS, API)
    for pod in pods:
        state.mark_ready(NS, pod.name, True)
    state.add_pdb(NS, "api-pdb", min_available=2, selector=state.deployment(NS, API).selector)

    result = await cluster.evict(NS, pods[0].name)

    assert result.outcome is WriteOutcome.DONE
    names = {p.name for p in state.workload_pods(NS, API)}
    assert pods[0].name not in names and len(names) == 3


@pytest.mark.parametrize(("pod_exists", "outcome"), [
    pytest.param(True, WriteOutcome.DONE, id="existing-pod-deleted"),
    pytest.param(False, WriteOutcome.NOT_FOUND, id="missing-pod-not-found"),
])
async def test_delete_pod(served: Served, cluster: KubeCluster, pod_exists: bool,
                          outcome: WriteOutcome) -> None:
    state = served.state
    _deploy(state, replicas=1)
    name = state.workload_pods(NS, API)[0].name if pod_exists else "ghost"
    result = await cluster.delete_pod(NS, name)
    assert result.outcome is outcome
    assert name not in {p.name for p in state.workload_pods(NS, API)}
    assert len(state.workload_pods(NS, API)) == 1


async def test_event_is_created_and_visible_through_the_api(served: Served,
                                                            cluster: KubeCluster) -> None:
    state = served.state
    _deploy(state, replicas=1)
    await cluster.get_workload(NS, API)

    await cluster.emit_event(NS, API, reason="SuccessfulRescale",
                             message="New size: 6; reason: backlog 12000 above target")

    headers = {"Authorization": f"Bearer {TOKEN}"}
    url = f"{served.server.url}/api/v1/namespaces/{NS}/events"
    async with aiohttp.ClientSession() as session, session.get(
            url, params={"fieldSelector": f"involvedObject.name={API},"
                                          "source=tracardi-autoscaler"},
            headers=headers) as response:
        events = (await response.json())["items"]
    assert len(events) == 1
    event = events[0]
    assert (event["reason"], event["message"], event["type"]) == (
        "SuccessfulRescale", "New size: 6; reason: backlog 12000 above target", "Normal")
    assert event["source"] == {"component": "tracardi-autoscaler"}
    assert event["reportingInstance"] == "test-daemon"
    assert event["involvedObject"]["kind"] == "Deployment"
    assert event["involvedObject"]["uid"] == state.deployment(NS, API).uid


async def test_event_failure_is_logged_not_raised(served: Served, cluster: KubeCluster) -> None:
    served.state.faults.inject("create", "events", code=403)
    await cluster.emit_event(NS, API, reason="SuccessfulRescale", message="New size: 2",
                             warning=True)
    assert [e for e in served.state.events(NS) if e.source_component == "tracardi-autoscaler"] == []


@pytest.mark.parametrize(("setup", "expected"), [
    pytest.param("none", None, id="nothing-targets-it"),
    pytest.param("hpa", "HorizontalPodAutoscaler/api-hpa", id="hpa-targets-it"),
    pytest.param("hpa-other", None, id="hpa-targets-another-deployment"),
    pytest.param("keda", "ScaledObject/api-so", id="keda-scaledobject-targets-it"),
])
async def test_conflicting_autoscaler(served: Served, cluster: KubeCluster, setup: str,
                                      expected: str | None) -> None:
    state = served.state
    _deploy(state)
    if setup == "hpa":
        state.add_hpa(NS, "api-hpa", target=API)
    elif setup == "hpa-other":
        state.add_hpa(NS, "worker-hpa", target=WORKER)
    elif setup == "keda":
        state.add_scaled_object(NS, "api-so", target=API)
    assert await cluster.conflicting_autoscaler(NS, API) == expected


async def test_conflicting_autoscaler_raises_when_it_cannot_tell(served: Served,
                                                                 cluster: KubeCluster) -> None:
    served.state.faults.inject("list", "horizontalpodautoscalers", code=403,
                               message="forbidden by RBAC")
    with pytest.raises(KubeError) as info:
        await cluster.conflicting_autoscaler(NS, API)
    assert (info.value.code, info.value.message) == (403, "forbidden by RBAC")


async def test_pod_cpu_sums_the_deployments_pods(served: Served, cluster: KubeCluster) -> None:
    state = served.state
    _deploy(state, replicas=2)
    _deploy(state, WORKER, replicas=1)
    for pod, milli in zip(state.workload_pods(NS, API), (120, 330), strict=True):
        state.mark_ready(NS, pod.name, True)
        state.set_cpu_usage(NS, pod.name, milli)
    worker_pod = state.workload_pods(NS, WORKER)[0]
    state.mark_ready(NS, worker_pod.name, True)
    state.set_cpu_usage(NS, worker_pod.name, 900)

    signal = await cluster.pod_cpu(NS, API)

    assert signal.ok and signal.name == "resources.cpu"
    assert signal.value == 450
    assert sorted(s.usage_milli for s in signal.samples) == [120, 330]


async def test_pod_cpu_without_metrics_is_an_error_not_zero(served: Served,
                                                            cluster: KubeCluster) -> None:
    _deploy(served.state, replicas=2)
    signal = await cluster.pod_cpu(NS, API)
    assert not signal.ok
    assert signal.error == f"no pod metrics for {API}"


@pytest.mark.parametrize(("quantity", "milli"), [
    pytest.param("250m", 250, id="millicores"),
    pytest.param("2", 2000, id="cores"),
    pytest.param("0.5", 500, id="fraction"),
    pytest.param("123456789n", 123, id="nanocores"),
    pytest.param("1500u", 2, id="microcores"),
    pytest.param("", 0, id="empty"),
])
def test_parse_cpu_milli(quantity: str, milli: int) -> None:
    assert parse_cpu_milli(quantity) == milli


Events = AsyncGenerator[PodEvent, None]


def _watch(cluster: KubeCluster) -> Events:
    return cast(Events, cluster.watch_pods(NS))


async def _next_events(events: Events, count: int, resource: str = "pods") -> list[PodEvent]:
    """The next `count` events of `resource`; the other resource's events are skipped."""
    out = []
    async with asyncio.timeout(10):
        while len(out) < count:
            event = await anext(events)
            if event.resource == resource:
                out.append(event)
    return out


async def test_watch_sees_pod_changes(served: Served, cluster: KubeCluster) -> None:
    state = served.state
    _deploy(state, replicas=1)
    events = _watch(cluster)
    try:
        assert await _next_events(events, 1) == [PodEvent("ADDED", NS, API)]
        state.set_replicas(NS, API, 2)
        state.mark_ready(NS, state.workload_pods(NS, API)[0].name, True)
        seen = await _next_events(events, 2)
        assert [e.kind for e in seen] == ["ADDED", "MODIFIED"]
        assert {e.workload for e in seen} == {API}
    finally:
        await events.aclose()


async def test_watch_sees_deployment_changes(served: Served, cluster: KubeCluster) -> None:
    state = served.state
    _deploy(state, replicas=1)
    events = _watch(cluster)
    try:
        # The list announces the Deployments; the watch follows from it.
        assert await _next_events(events, 1, "deployments") == [
            PodEvent("ADDED", NS, API, "deployments")]
        state.set_paused(NS, API, True)  # no pod changes
        assert await _next_events(events, 1, "deployments") == [
            PodEvent("MODIFIED", NS, API, "deployments")]
        state.delete_deployment(NS, API)
        assert await _next_events(events, 1, "deployments") == [
            PodEvent("DELETED", NS, API, "deployments")]
    finally:
        await events.aclose()


@pytest.mark.parametrize("how", [
    pytest.param("compacted-history", id="410-as-watch-error-event"),
    pytest.param("http-410", id="410-as-http-status"),
])
async def test_watch_recovers_from_gone_by_relisting(served: Served, cluster: KubeCluster,
                                                     how: str) -> None:
    state = served.state
    _deploy(state, replicas=1)
    events = _watch(cluster)
    try:
        assert await _next_events(events, 1) == [PodEvent("ADDED", NS, API)]
        if how == "compacted-history":
            # Writes the pod watch never sees move the global resourceVersion past the one it
            # will resume from; compaction then makes that one too old.
            state.add_hpa(NS, "unrelated", target="other")
            state.compact()
        else:
            state.faults.inject("watch", "pods", code=410, message="too old resource version")
        # The server ends each watch after 1 s; the resume gets 410, the re-list yields ADDED.
        assert await _next_events(events, 1) == [PodEvent("ADDED", NS, API)]
        state.set_replicas(NS, API, 2)
        assert await _next_events(events, 1) == [PodEvent("ADDED", NS, API)]
    finally:
        await events.aclose()


async def test_watch_backs_off_and_resumes_after_server_errors(served: Served,
                                                              cluster: KubeCluster) -> None:
    state = served.state
    _deploy(state, replicas=1)
    state.faults.inject("list", "pods", code=503, times=2)
    events = _watch(cluster)
    try:
        assert await _next_events(events, 1) == [PodEvent("ADDED", NS, API)]
        assert state.faults.pending() == 0
    finally:
        await events.aclose()


async def test_unreachable_server_is_a_kube_error(served: Served, cluster: KubeCluster) -> None:
    await served.server.stop()
    with pytest.raises(KubeError) as info:
        await cluster.get_workload(NS, API)
    assert info.value.code == 0
    result = await cluster.scale(NS, API, replicas=3, resource_version="7")
    assert result.outcome is WriteOutcome.FAILED


async def test_wrong_token_is_refused(served: Served) -> None:
    configuration = Configuration(host=served.server.url)
    configuration.api_key = {"authorization": "Bearer wrong"}
    async with ApiClient(configuration) as client:
        cluster = KubeCluster(client, clock=RealClock())
        with pytest.raises(KubeError) as info:
            await cluster.get_workload(NS, API)
    assert (info.value.code, info.value.reason) == (401, "Unauthorized")
