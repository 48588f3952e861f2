"""The autoscaler's writes are recorded under its own name in `metadata.managedFields`, and it
reads from them who last set spec.replicas."""

from __future__ import annotations

import pytest
from kube_fixtures import NS, Served
from kubernetes_asyncio.client import ApiClient, AppsV1Api

from autoscaler.kube.cluster import (
    KubeCluster,
    replicas_set_by,
)
from autoscaler.ports import FIELD_MANAGER, WriteOutcome
from autoscaler.sim.kubestate import ConflictError
from autoscaler.sim.managed import REPLICAS

API = "be-fa-public"


def _replicas_held_by(served: Served) -> list[tuple[str, str]]:
    return [(e.manager, e.subresource) for e in served.state.deployment(NS, API).managed
            if REPLICAS in e.fields]


async def test_a_scale_is_recorded_under_the_autoscalers_name(served: Served,
                                                              cluster: KubeCluster) -> None:
    served.state.add_deployment(NS, API, replicas=2)
    status = await cluster.get_workload(NS, API)
    assert status.replicas_set_by == "helm"  # whoever made it
    result = await cluster.scale(NS, API, replicas=4, resource_version=status.resource_version)
    assert result.outcome is WriteOutcome.DONE
    assert _replicas_held_by(served) == [(FIELD_MANAGER, "scale")]
    assert (await cluster.get_workload(NS, API)).replicas_set_by == FIELD_MANAGER
    served.state.set_replicas(NS, API, 3)  # as `kubectl scale` records it
    assert (await cluster.get_workload(NS, API)).replicas_set_by == "kubectl"


async def test_a_write_naming_no_manager_is_recorded_by_the_user_agent(served: Served,
                                                                       api: ApiClient) -> None:
    served.state.add_deployment(NS, API, replicas=2)
    await AppsV1Api(api).patch_namespaced_deployment(API, NS, {"spec": {"replicas": 5}})
    assert _replicas_held_by(served) == [(FIELD_MANAGER, "")]


def _entry(manager: str, time: str, fields: object) -> dict[str, object]:
    return {"manager": manager, "operation": "Update", "time": time, "fieldsV1": fields}


def test_the_newest_holder_of_the_count_set_it() -> None:
    replicas = {"f:spec": {"f:replicas": {}}}
    assert replicas_set_by([
        _entry("argocd-controller", "2026-12-06T10:00:05Z", replicas),
        _entry("helm", "2026-12-06T10:00:00Z", replicas),  # shared by an apply: older
        _entry("kubectl-annotate", "2026-12-06T11:00:00Z", {"f:metadata": {}}),
    ]) == "argocd-controller"
    assert replicas_set_by([_entry("helm", "2026-12-06T10:00:00Z", {"f:spec": {}})]) == ""
    assert replicas_set_by(None) == ""  # a cluster that reports none
    # What it cannot read names no writer, and holds nothing up: the count is read as ever.
    assert replicas_set_by([_entry("helm", "2026-12-06T10:00:00Z", ["f:spec"]), "entry",
                            _entry("argocd-controller", "yesterday", replicas),
                            _entry("kubectl", "2026-12-06T09:00:00Z", replicas)]) == "kubectl"
    assert replicas_set_by({"f:spec": {}}) == ""


async def test_a_forced_server_side_apply_names_the_gitops_tool(served: Served,
                                                                cluster: KubeCluster) -> None:
    state = served.state
    state.add_deployment(NS, API, replicas=2)
    status = await cluster.get_workload(NS, API)
    await cluster.scale(NS, API, replicas=6, resource_version=status.resource_version)

    def sync(*, force: bool) -> None:  # Flux applies its manifest's count, server-side
        state.apply_deployment(NS, API, manager="kustomize-controller", replicas=2, labels={},
                               annotations={}, spec=frozenset(), force=force)

    with pytest.raises(ConflictError, match=r'conflict with "tracardi-autoscaler" with '
                                            r'subresource "scale" using apps/v1 at .*: '
                                            r"\.spec\.replicas"):
        sync(force=False)
    assert (await cluster.get_workload(NS, API)).replicas == 6
    sync(force=True)
    synced = await cluster.get_workload(NS, API)
    assert (synced.replicas, synced.replicas_set_by) == (2, "kustomize-controller")
