"""Graceful termination in the simulated cluster: a deleted pod terminates (deletionTimestamp,
`Terminating`) until the kubelet would see its container exit, while its replacement starts and
no controller counts it; `--grace-period=0 --force` removes it at once."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from wire_k8s import Kubectl, Ticks, kubectl_binary, validate

from autoscaler.sim.cluster import pod_info
from autoscaler.sim.kubeapi import ServedApp, create_app, serve, write_kubeconfig
from autoscaler.sim.kubestate import KubeState, TooManyRequestsError, WatchEvent

NS = "tracardi"
API = "be-fa-public"
GRACE = 5.0


def terminating_state(ticks: Ticks) -> KubeState:
    state = KubeState(clock=ticks, wall=ticks, termination_seconds=GRACE)
    state.add_deployment(NS, API, replicas=3)
    for pod in state.workload_pods(NS, API):
        state.mark_ready(NS, pod.name, True)
    return state


def test_a_scaled_down_pod_terminates_and_then_is_gone() -> None:
    ticks = Ticks()
    state = terminating_state(ticks)
    events: list[WatchEvent] = []
    state.subscribe("pods", NS, events.append)
    state.set_replicas(NS, API, 2)

    [leaving] = [p for p in state.workload_pods(NS, API) if p.deleting]
    assert len(state.workload_pods(NS, API)) == 3
    status = state.deployment_json(state.deployment(NS, API))["status"]
    assert (status["replicas"], status["readyReplicas"]) == (2, 2)
    assert [e.type for e in events] == ["MODIFIED"]
    meta = events[0].object["metadata"]
    assert meta["deletionGracePeriodSeconds"] == 30 and "deletionTimestamp" in meta
    validate(events[0].object)
    assert pod_info(leaving).deleting

    ticks.t += GRACE - 1
    assert state.reap() == []
    ticks.t += 1
    assert state.reap() == [leaving]
    assert len(state.workload_pods(NS, API)) == 2
    assert [e.type for e in events] == ["MODIFIED", "DELETED"]


def test_a_deleted_pod_is_replaced_while_it_terminates() -> None:
    ticks = Ticks()
    state = terminating_state(ticks)
    victim = state.workload_pods(NS, API)[0]
    state.delete_pod(NS, victim.name)
    pods = state.workload_pods(NS, API)
    assert len(pods) == 4 and sum(not p.deleting for p in pods) == 3
    state.delete_pod(NS, victim.name)  # deleting it again changes nothing
    assert len(state.workload_pods(NS, API)) == 4
    state.delete_pod(NS, victim.name, force=True)
    assert victim.name not in {p.name for p in state.workload_pods(NS, API)}


def test_a_short_grace_period_ends_the_termination_sooner() -> None:
    ticks = Ticks()
    state = terminating_state(ticks)
    victim = state.workload_pods(NS, API)[0]
    state.delete_pod(NS, victim.name, grace=2)
    ticks.t += 2
    assert state.reap() == [victim]


def test_a_terminating_pod_counts_for_no_disruption_budget() -> None:
    ticks = Ticks()
    state = terminating_state(ticks)
    state.add_pdb(NS, "api-pdb", min_available=2, selector=state.deployment(NS, API).selector)
    first, second, _ = state.workload_pods(NS, API)
    state.evict(NS, first.name)
    # The replacement is not ready yet: two healthy pods are left, and the budget needs two.
    with pytest.raises(TooManyRequestsError):
        state.evict(NS, second.name)
    state.evict(NS, first.name)  # a pod on its way out is evicted without a check


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[KubeState, ServedApp, Kubectl]]:
    state = KubeState(clock=time.monotonic, wall=time.time, termination_seconds=60)
    state.add_deployment(NS, API, replicas=2)
    for pod in state.workload_pods(NS, API):
        state.mark_ready(NS, pod.name, True)
    server = await serve(create_app(state))
    kubectl = Kubectl(kubectl_binary(), write_kubeconfig(tmp_path / "kubeconfig", server.url),
                      tmp_path / "cache")
    try:
        yield state, server, kubectl
    finally:
        await server.stop()


async def test_kubectl_shows_a_deleted_pod_terminating_and_can_force_it(
        served: tuple[KubeState, ServedApp, Kubectl]) -> None:
    state, _, kubectl = served
    victim = state.workload_pods(NS, API)[0].name
    out = await kubectl("delete", "pod", victim, "--wait=false")
    assert f'pod "{victim}" deleted' in out
    rows = {line.split()[0]: line.split() for line in
            (await kubectl("get", "pods")).splitlines()[1:]}
    assert rows[victim][2] == "Terminating" and len(rows) == 3
    listed = json.loads(await kubectl("get", "pod", victim, "-o", "json"))
    assert listed["metadata"]["deletionGracePeriodSeconds"] == 30

    async with asyncio.timeout(30):
        await kubectl("delete", "pod", victim, "--grace-period=0", "--force")
    assert victim not in {p.name for p in state.pods(NS)}

    other = next(p.name for p in state.workload_pods(NS, API) if not p.deleting)
    await kubectl("delete", "pod", other, "--grace-period=5", "--wait=false")
    shorter = json.loads(await kubectl("get", "pod", other, "-o", "json"))
    assert shorter["metadata"]["deletionGracePeriodSeconds"] == 5  # killed after 5 s, not 60
