"""The simulated cluster's one Node, its Lease and its metrics, as kubectl and
kubernetes_asyncio read them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kubernetes_asyncio.client import CoreV1Api
from wire_k8s import NS, Kubectl, Served, kubectl_binary, validate

from autoscaler.kube.connect import connect
from autoscaler.sim.kubestate import (
    NODE_BASE_USAGE_MILLI,
    NODE_IP,
    NODE_NAME,
    KubeState,
    WatchEvent,
)

pytestmark = pytest.mark.real


@pytest.fixture
def kubectl(served: Served, tmp_path: Path) -> Kubectl:
    return Kubectl(kubectl_binary(), served.kubeconfig, tmp_path / "kube-cache")


async def test_get_nodes_shows_the_ready_node(kubectl: Kubectl) -> None:
    rows = [line.split() for line in (await kubectl("get", "nodes")).splitlines()]
    assert rows[0] == ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]
    assert len(rows) == 2 and rows[1][:3] == [NODE_NAME, "Ready", "<none>"]
    wide = (await kubectl("get", "no", "-o", "wide")).splitlines()
    assert wide[0].split()[5:7] == ["INTERNAL-IP", "EXTERNAL-IP"]
    assert wide[1].split()[5] == NODE_IP


async def test_the_node_and_its_lease_match_the_official_schemas(kubectl: Kubectl) -> None:
    node = json.loads(await kubectl("get", "node", NODE_NAME, "-o", "json"))
    validate(node)
    ready = [c for c in node["status"]["conditions"] if c["type"] == "Ready"]
    assert [c["status"] for c in ready] == ["True"]
    lease = json.loads(await kubectl("get", "lease", NODE_NAME, "-n", "kube-node-lease",
                                     "-o", "json"))
    validate(lease)
    assert lease["spec"]["holderIdentity"] == NODE_NAME


async def test_describe_node_lists_its_pods_and_lease(served: Served, kubectl: Kubectl) -> None:
    out = await kubectl("describe", "node", NODE_NAME)
    assert "Failed to get lease" not in out
    assert "HolderIdentity:  sim-node-1" in out
    pods = served.state.pods(NS)
    assert f"Non-terminated Pods:          ({len(pods)} in total)" in out
    for pod in pods:
        assert pod.name in out


async def test_top_node_adds_the_pods_cpu_to_the_nodes_own(served: Served,
                                                           kubectl: Kubectl) -> None:
    pods = sum(p.cpu_usage_milli or 0 for p in served.state.pod_metrics(NS))
    assert pods > 0
    [header, row] = (await kubectl("top", "node")).splitlines()
    assert header.split()[:3] == ["NAME", "CPU(cores)", "CPU(%)"]
    assert row.split()[:2] == [NODE_NAME, f"{NODE_BASE_USAGE_MILLI + pods}m"]


async def test_an_unknown_node_is_not_found(kubectl: Kubectl) -> None:
    with pytest.raises(AssertionError, match='nodes "nope" not found'):
        await kubectl("get", "node", "nope")


async def test_kubernetes_asyncio_reads_the_node(served: Served) -> None:
    client = await connect(served.kubeconfig)
    try:
        nodes = await CoreV1Api(client).list_node()
    finally:
        await client.close()
    [node] = nodes.items
    assert node.metadata.name == NODE_NAME
    assert node.status.allocatable["cpu"] == "63500m"


def test_the_kubelets_heartbeats_are_changes_with_their_own_resource_versions() -> None:
    now = [1_700_000_000.0]
    state = KubeState(clock=lambda: now[0], wall=lambda: now[0])
    events: list[WatchEvent] = []
    state.subscribe("leases", None, events.append)
    state.subscribe("nodes", None, events.append)
    lease_rv = state.get_lease("kube-node-lease", NODE_NAME).resource_version
    node = state.node_json()

    now[0] += 9
    state.renew_node()
    assert events == []  # the Lease is renewed every 10 s
    now[0] += 1
    state.renew_node()
    [renewed] = events
    assert (renewed.type, renewed.resource) == ("MODIFIED", "leases")
    assert int(renewed.object["metadata"]["resourceVersion"]) > lease_rv
    assert renewed.object["spec"]["renewTime"].startswith("2023-11-14T22:13:30")
    assert state.node_json() == node  # the Node's status only every 5 minutes

    now[0] += 300
    state.renew_node()
    assert [e.resource for e in events] == ["leases", "leases", "nodes"]
    assert int(state.node_json()["metadata"]["resourceVersion"]) > int(
        node["metadata"]["resourceVersion"])
