"""KubeState: the controller, evictions, watches, selectors, patches and fault plans."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest
from wire_k8s import Ticks

from autoscaler.sim.kubeapi import apply_patch
from autoscaler.sim.kubestate import (
    BadRequestError,
    ConflictError,
    FieldSelector,
    GoneError,
    InvalidError,
    KubeState,
    LabelSelector,
    LeaseSpec,
    TooManyRequestsError,
    WatchEvent,
)

NS = "tracardi"
API = "be-fa-public"


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def state(ticks: Ticks) -> KubeState:
    return KubeState(clock=ticks, wall=ticks, watch_history=50)


def _pods(state: KubeState) -> list[str]:
    return [p.name for p in state.workload_pods(NS, API)]


def test_scale_up_creates_pending_pods_at_once(state: KubeState, ticks: Ticks) -> None:
    state.add_deployment(NS, API, replicas=1)
    ticks.t += 10
    state.set_replicas(NS, API, 3)
    pods = state.workload_pods(NS, API)
    assert len(pods) == 3
    assert [(p.phase, p.ready, p.created_at) for p in pods[1:]] == [
        ("Pending", False, ticks.t)] * 2
    assert all(p.labels["app.kubernetes.io/component"] == API for p in pods)


def test_scale_down_deletes_like_the_replicaset_controller(state: KubeState,
                                                           ticks: Ticks) -> None:
    """Pending first, then running-not-ready, then the most recently ready."""
    state.add_deployment(NS, API, replicas=1)
    old = _pods(state)[0]
    state.mark_ready(NS, old, True)
    ticks.t += 10
    state.set_replicas(NS, API, 4)
    newer = [p for p in _pods(state) if p != old]
    state.mark_ready(NS, newer[0], True)  # ready, but newer than `old`
    state.mark_ready(NS, newer[1], False)  # running, not ready
    # newer[2] stays Pending
    state.set_replicas(NS, API, 2)
    assert set(_pods(state)) == {old, newer[0]}
    state.set_replicas(NS, API, 1)
    assert _pods(state) == [old]


def test_stale_resource_version_conflicts(state: KubeState) -> None:
    d = state.add_deployment(NS, API, replicas=1)
    rv = d.resource_version
    state.mark_ready(NS, _pods(state)[0], True)  # the status change bumps the version
    assert d.resource_version > rv
    with pytest.raises(ConflictError, match=r'deployments\.apps "be-fa-public"'):
        state.set_replicas(NS, API, 3, resource_version=rv)
    state.set_replicas(NS, API, 3, resource_version=d.resource_version)
    assert d.replicas == 3
    with pytest.raises(InvalidError):
        state.set_replicas(NS, API, -1)


@pytest.mark.parametrize(("ready", "min_available", "victim_ready", "allowed"), [
    pytest.param(3, 2, True, True, id="ready-victim-within-budget"),
    pytest.param(2, 2, True, False, id="ready-victim-breaks-budget"),
    pytest.param(2, 2, False, True, id="unhealthy-victim-budget-healthy"),
    pytest.param(1, 2, False, False, id="unhealthy-victim-budget-already-broken"),
])
def test_eviction_respects_the_pdb(state: KubeState, ready: int, min_available: int,
                                   victim_ready: bool, allowed: bool) -> None:
    state.add_deployment(NS, API, replicas=4)
    pods = _pods(state)
    for name in pods[:ready]:
        state.mark_ready(NS, name, True)
    victim = pods[0] if victim_ready else pods[-1]
    state.add_pdb(NS, "pdb", min_available=min_available,
                  selector=state.deployment(NS, API).selector)
    if allowed:
        state.evict(NS, victim)
        assert victim not in _pods(state) and len(_pods(state)) == 4
    else:
        with pytest.raises(TooManyRequestsError):
            state.evict(NS, victim)
        assert victim in _pods(state)


def test_crash_and_recovery(state: KubeState) -> None:
    state.add_deployment(NS, API, replicas=1)
    name = _pods(state)[0]
    state.mark_ready(NS, name, True)
    pod = state.crash(NS, name)
    assert (pod.ready, pod.restarts, pod.waiting_reason) == (False, 1, "CrashLoopBackOff")
    pod = state.mark_ready(NS, name, True)
    assert (pod.ready, pod.restarts, pod.waiting_reason) == (True, 1, "")
    pod_cidr = ipaddress.ip_network(state.node_json()["spec"]["podCIDR"])
    assert ipaddress.ip_address(pod.ip) in pod_cidr


def test_watch_replays_from_a_resource_version_and_expires_old_ones(state: KubeState) -> None:
    state.add_deployment(NS, API, replicas=1)
    since = state.resource_version
    state.set_replicas(NS, API, 2)
    seen: list[WatchEvent] = []
    unsubscribe = state.subscribe("pods", NS, seen.append, since=since)
    assert [e.type for e in seen] == ["ADDED"]
    state.delete_pod(NS, _pods(state)[0])
    assert [e.type for e in seen] == ["ADDED", "DELETED", "ADDED"]
    unsubscribe()
    for _ in range(60):  # more changes than the history keeps
        state.set_paused(NS, API, True)
    with pytest.raises(GoneError, match="too old resource version"):
        state.subscribe("pods", NS, seen.append, since=since)


def test_lease_writes_need_the_current_resource_version(state: KubeState) -> None:
    lease = state.create_lease(NS, "l", LeaseSpec(holder="a", duration_seconds=15))
    rv = lease.resource_version
    state.update_lease(NS, "l", LeaseSpec(holder="a"), resource_version=rv)
    with pytest.raises(ConflictError, match=r'leases\.coordination\.k8s\.io "l"'):
        state.update_lease(NS, "l", LeaseSpec(holder="b"), resource_version=rv)


def test_the_node_lease_is_the_kubelets_and_its_renewals_keep_it_so(
        state: KubeState, ticks: Ticks) -> None:
    lease = state.leases("kube-node-lease")[0]

    def managers() -> list[tuple[str, str]]:
        return [(e["manager"], e["time"]) for e in
                state.lease_json(lease)["metadata"]["managedFields"]]

    assert managers() == [("kubelet", "2023-11-14T22:13:20Z")]
    ticks.t += 10
    state.renew_node()
    assert managers() == [("kubelet", "2023-11-14T22:13:30Z")]  # the renewal's time


@pytest.mark.parametrize(("selector", "labels", "matches"), [
    pytest.param("a=b", {"a": "b"}, True, id="equals"),
    pytest.param("a==b", {"a": "c"}, False, id="double-equals-mismatch"),
    pytest.param("a!=b", {}, True, id="not-equals-absent"),
    pytest.param("a in (x, y)", {"a": "y"}, True, id="in"),
    pytest.param("a notin (x,y),b", {"a": "z", "b": ""}, True, id="notin-and-exists"),
    pytest.param("!a", {"a": "1"}, False, id="does-not-exist"),
    pytest.param("", {"a": "1"}, True, id="empty-matches-all"),
])
def test_label_selectors(selector: str, labels: dict[str, str], matches: bool) -> None:
    assert LabelSelector.parse(selector).matches(labels) is matches


@pytest.mark.parametrize("selector", [
    pytest.param("a in x", id="in-without-parentheses"),
    pytest.param("!a=b", id="negated-equality"),
    pytest.param("a=b=c", id="two-operators"),
])
def test_malformed_label_selectors_are_bad_requests(selector: str) -> None:
    with pytest.raises(BadRequestError):
        LabelSelector.parse(selector)


def test_field_selectors() -> None:
    obj = {"metadata": {"name": "x"}, "involvedObject": {"kind": "Pod"}}
    assert FieldSelector.parse("metadata.name=x,involvedObject.kind!=Deployment").matches(obj)
    assert not FieldSelector.parse("metadata.name==y").matches(obj)


@pytest.mark.parametrize(("patch", "content_type", "expected"), [
    pytest.param({"spec": {"replicas": 5}}, "application/merge-patch+json",
                 {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"replicas": 5}},
                 id="merge"),
    pytest.param({"metadata": {"labels": {"a": None}}}, "application/merge-patch+json",
                 {"metadata": {"name": "x", "labels": {}}, "spec": {"replicas": 1}},
                 id="merge-null-removes"),
    pytest.param([{"op": "test", "path": "/spec/replicas", "value": 1},
                  {"op": "replace", "path": "/spec/replicas", "value": 2},
                  {"op": "add", "path": "/metadata/labels/b~1c", "value": "2"}],
                 "application/json-patch+json",
                 {"metadata": {"name": "x", "labels": {"a": "1", "b/c": "2"}},
                  "spec": {"replicas": 2}}, id="json-patch"),
])
def test_patches(patch: Any, content_type: str, expected: dict[str, Any]) -> None:
    doc = {"metadata": {"name": "x", "labels": {"a": "1"}}, "spec": {"replicas": 1}}
    assert apply_patch(doc, patch, content_type) == expected
    assert doc["spec"] == {"replicas": 1}


def test_failed_json_patch_test_is_invalid() -> None:
    with pytest.raises(InvalidError):
        apply_patch({"spec": {"replicas": 1}},
                    [{"op": "test", "path": "/spec/replicas", "value": 2}],
                    "application/json-patch+json")


def test_fault_plan_queues_per_verb_and_resource(state: KubeState) -> None:
    state.faults.inject("update", "deployments/scale", code=409, times=2)
    assert state.faults.take("get", "deployments/scale") is None
    first = state.faults.take("update", "deployments/scale")
    assert first is not None and first.error() is not None and first.error().code == 409
    assert state.faults.pending() == 1
    with pytest.raises(ValueError, match="unknown resource"):
        state.faults.inject("get", "deployment", code=500)


def test_the_available_condition_moves_its_transition_time_only_when_it_flips(
        state: KubeState, ticks: Ticks) -> None:
    def available() -> dict[str, str]:
        [cond] = [c for c in state.deployment_json(state.deployment(NS, "w"))["status"][
            "conditions"] if c["type"] == "Available"]
        return cond

    state.add_deployment(NS, "w", replicas=3)
    ticks.t += 10
    for pod in state.workload_pods(NS, "w"):
        state.mark_ready(NS, pod.name, True)
    up = available()
    assert up["status"] == "True"
    ticks.t += 10
    state.set_replicas(NS, "w", 4)  # one more pod, not ready yet: 3 of 4 is still available
    again = available()
    assert again["status"] == "True"
    assert again["lastTransitionTime"] == up["lastTransitionTime"]
    assert again["lastUpdateTime"] != up["lastUpdateTime"]
    ticks.t += 10
    state.set_replicas(NS, "w", 8)  # 3 of 8 ready: not available, from now
    down = available()
    assert down["status"] == "False"
    assert down["lastTransitionTime"] == down["lastUpdateTime"] != up["lastTransitionTime"]


def test_a_namespace_comes_with_its_default_service_account(state: KubeState) -> None:
    seen: list[WatchEvent] = []
    state.subscribe("serviceaccounts", None, seen.append)
    # every cluster's own namespaces, each with its `default` account, from the start
    assert state.service_accounts() == [("default", "default"), ("kube-node-lease", "default"),
                                        ("kube-public", "default"), ("kube-system", "default")]
    assert list(state.namespaces()) == ["default", "kube-node-lease", "kube-public",
                                        "kube-system"]
    state.add_deployment(NS, API, replicas=1)
    assert [(e.type, e.namespace, e.object["metadata"]["name"]) for e in seen] == [
        ("ADDED", NS, "default")]
    namespace_rv = int(state.namespace_json(NS)["metadata"]["resourceVersion"])
    assert int(seen[0].object["metadata"]["resourceVersion"]) > namespace_rv
    state.add_service_account(NS, "tracardi-autoscaler")
    state.add_service_account(NS, "tracardi-autoscaler")  # made once
    assert state.service_accounts(NS) == [(NS, "default"), (NS, "tracardi-autoscaler")]
    assert len(seen) == 2
