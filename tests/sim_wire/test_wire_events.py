"""The Events a real cluster's controllers, scheduler and kubelet record, as the simulated one
records them: what `kubectl describe` and `kubectl get events` show next to the autoscaler's
own Events, and the apiserver's one-hour Event TTL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from wire_k8s import Kubectl, Ticks, kubectl_binary, validate

from autoscaler.sim.kubeapi import ServedApp, create_app, serve, write_kubeconfig
from autoscaler.sim.kubestate import EVENT_TTL_SECONDS, NODE_NAME, KubeState, WatchEvent

pytestmark = pytest.mark.real

NS = "tracardi"
API = "be-fa-public"


@dataclass
class Cluster:
    ticks: Ticks
    state: KubeState
    server: ServedApp
    kubectl: Kubectl

    def reasons(self, kind: str, name: str) -> list[str]:
        return [e.reason for e in self.state.events(NS)
                if (e.involved["kind"], e.involved["name"]) == (kind, name)]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    ticks = Ticks()
    state = KubeState(clock=ticks, wall=ticks, termination_seconds=20)
    state.add_deployment(NS, API, replicas=2)
    server = await serve(create_app(state))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    try:
        yield Cluster(ticks, state, server,
                      Kubectl(kubectl_binary(), kubeconfig, tmp_path / "kube-cache"))
    finally:
        await server.stop()


def rs_name(state: KubeState) -> str:
    return str(state.replica_set_json(state.deployment(NS, API))["metadata"]["name"])


async def test_a_scale_up_is_recorded_by_each_controller_and_the_kubelet(
        cluster: Cluster) -> None:
    state, rs = cluster.state, rs_name(cluster.state)
    state.set_replicas(NS, API, 3)
    [new] = [p for p in state.workload_pods(NS, API) if p.phase == "Pending"][-1:]
    state.mark_ready(NS, new.name, True)

    assert cluster.reasons("Deployment", API) == ["ScalingReplicaSet"] * 2
    assert cluster.reasons("ReplicaSet", rs) == ["SuccessfulCreate"] * 3
    assert cluster.reasons("Pod", new.name) == ["Scheduled", "Pulled", "Created", "Started"]
    scaled = [e for e in state.events(NS) if e.reason == "ScalingReplicaSet"]
    assert [e.message for e in scaled] == [f"Scaled up replica set {rs} to 2 from 0",
                                           f"Scaled up replica set {rs} to 3 from 2"]
    assert {(e.source_component, e.involved["uid"]) for e in scaled} == {
        ("deployment-controller", state.deployment(NS, API).uid)}

    described = (await cluster.kubectl("describe", "deployment", API)).splitlines()
    last = described[-1].split()
    assert last[:2] + last[3:] == ["Normal", "ScalingReplicaSet", "deployment-controller",
                                   "Scaled", "up", "replica", "set", rs, "to", "3", "from", "2"]
    pod = (await cluster.kubectl("describe", "pod", new.name)).splitlines()
    rows = [[row[0], row[1], row[3]] for row in
            (line.split() for line in pod[pod.index("Events:") + 3:])]
    # one timestamp for all four: kubectl's order among them is not fixed
    assert sorted(rows) == [["Normal", "Created", "kubelet"], ["Normal", "Pulled", "kubelet"],
                            ["Normal", "Scheduled", "default-scheduler"],
                            ["Normal", "Started", "kubelet"]]
    assert any(f"Successfully assigned {NS}/{new.name} to {NODE_NAME}" in line for line in pod)
    listed = json.loads(await cluster.kubectl("get", "events", "-o", "json"))
    for item in listed["items"]:
        validate(item, kind="Event")


async def test_a_scale_down_deletes_and_kills_and_a_crash_backs_off(cluster: Cluster) -> None:
    state, rs = cluster.state, rs_name(cluster.state)
    for pod in state.workload_pods(NS, API):
        state.mark_ready(NS, pod.name, True)
    state.set_replicas(NS, API, 1)
    [leaving] = [p for p in state.workload_pods(NS, API) if p.deleting]
    assert cluster.reasons("ReplicaSet", rs)[-1] == "SuccessfulDelete"
    assert cluster.reasons("Pod", leaving.name)[-1] == "Killing"
    deleted = [e for e in state.events(NS) if e.reason == "SuccessfulDelete"]
    assert [e.message for e in deleted] == [f"Deleted pod: {leaving.name}"]

    [staying] = [p for p in state.workload_pods(NS, API) if not p.deleting]
    state.crash(NS, staying.name)
    [backoff] = [e for e in state.events(NS) if e.reason == "BackOff"]
    assert backoff.type == "Warning" and backoff.involved["fieldPath"].startswith(
        "spec.containers{")
    warnings = await cluster.kubectl("get", "events", "--field-selector", "type=Warning",
                                     "-o", "name")
    assert warnings.split() == [f"event/{backoff.name}"]


async def test_a_pending_pod_deleted_has_no_container_to_kill(cluster: Cluster) -> None:
    state = cluster.state
    pending = state.workload_pods(NS, API)[0]
    state.delete_pod(NS, pending.name)
    assert "Killing" not in cluster.reasons("Pod", pending.name)


async def test_events_are_gone_an_hour_after_they_are_made(cluster: Cluster) -> None:
    state = cluster.state
    old = {e.name for e in state.events(NS)}
    assert old
    seen: list[WatchEvent] = []
    state.subscribe("events", NS, seen.append)
    cluster.ticks.t += EVENT_TTL_SECONDS - 1
    state.set_replicas(NS, API, 3)  # new Events: the old ones are not an hour old yet
    assert old <= {e.name for e in state.events(NS)}
    cluster.ticks.t += 1
    state.record_event(NS, kind="Deployment", name=API, reason="SuccessfulRescale",
                       message="New size: 3")
    names = {e.name for e in state.events(NS)}
    assert not old & names and names
    assert {e.object["metadata"]["name"] for e in seen if e.type == "DELETED"} == old
    got = json.loads(await cluster.kubectl("get", "events", "-o", "json"))
    assert {item["metadata"]["name"] for item in got["items"]} == names


async def test_a_watch_of_events_k8s_io_sees_an_expired_event_deleted(cluster: Cluster) -> None:
    state = cluster.state
    old = {e.name for e in state.events(NS)}
    url = (f"{cluster.server.url}/apis/events.k8s.io/v1/namespaces/{NS}/events?watch=1&"
           f"resourceVersion={state.resource_version}&timeoutSeconds=5")
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        await asyncio.sleep(0.1)  # the watch is open
        cluster.ticks.t += EVENT_TTL_SECONDS
        # The Event that expires the old ones is recorded (its maker is not failed by the watch)
        state.record_event(NS, kind="Deployment", name=API, reason="SuccessfulRescale",
                           message="New size: 3")
        lines = [json.loads(await response.content.readline()) for _ in range(len(old) + 1)]
    deleted = [line["object"] for line in lines if line["type"] == "DELETED"]
    assert {o["metadata"]["name"] for o in deleted} == old
    for line in lines:
        validate(line["object"])
        assert line["object"]["apiVersion"] == "events.k8s.io/v1"
    added = [line["object"] for line in lines if line["type"] == "ADDED"]
    assert [(o["reason"], o["note"]) for o in added] == [("SuccessfulRescale", "New size: 3")]
