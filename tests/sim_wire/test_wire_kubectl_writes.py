"""kubectl's writes against the simulated API: a server-side dry run stores nothing, a change the
simulated cluster does not model is refused rather than answered as done, and an invalid scale
names its field as the apiserver does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from wire_k8s import API, NS, Kubectl, Served, kubectl_binary

pytestmark = pytest.mark.real


@pytest.fixture
def kubectl(served: Served, tmp_path: Path) -> Kubectl:
    return Kubectl(kubectl_binary(), served.kubeconfig, tmp_path / "kube-cache")


async def test_a_server_dry_run_scale_answers_and_stores_nothing(served: Served,
                                                                 kubectl: Kubectl) -> None:
    out = await kubectl("scale", f"deploy/{API}", "--replicas=7", "--dry-run=server")
    assert "(server dry run)" in out
    assert served.state.deployment(NS, API).replicas == 3
    patched = json.loads(await kubectl("patch", f"deploy/{API}", "--subresource=scale", "-p",
                                       '{"spec":{"replicas":6}}', "--dry-run=server",
                                       "-o", "json"))
    assert patched["spec"]["replicas"] == 6
    assert served.state.deployment(NS, API).replicas == 3


async def test_a_server_dry_run_label_and_delete_store_nothing(served: Served,
                                                               kubectl: Kubectl) -> None:
    await kubectl("label", f"deploy/{API}", "dry=yes", "--dry-run=server")
    assert "dry" not in served.state.deployment(NS, API).labels
    pod = served.state.workload_pods(NS, API)[0]
    out = await kubectl("delete", f"pod/{pod.name}", "--dry-run=server")
    assert "deleted (server dry run)" in out
    assert served.state.pod(NS, pod.name) is not None
    assert len(served.state.workload_pods(NS, API)) == 3


async def test_a_rollout_is_refused_not_answered_as_done(served: Served,
                                                          kubectl: Kubectl) -> None:
    before = json.loads(await kubectl("get", f"deploy/{API}", "-o", "json"))
    for args in (("set", "image", f"deploy/{API}", "*=tracardi/tracardi-api:9.9.9"),
                 ("rollout", "restart", f"deploy/{API}")):
        with pytest.raises(AssertionError, match=r'Deployment(\.apps)? "[^"]+" is invalid: '
                                                 r"spec.template: Forbidden"):
            await kubectl(*args)
    after = json.loads(await kubectl("get", f"deploy/{API}", "-o", "json"))
    assert after["spec"] == before["spec"]
    assert after["metadata"]["generation"] == before["metadata"]["generation"]


async def test_a_negative_scale_names_the_field_and_the_value(served: Served,
                                                              kubectl: Kubectl) -> None:
    with pytest.raises(AssertionError, match=r"spec.replicas: Invalid value: -1: must be "
                                             r"greater than or equal to 0"):
        await kubectl("patch", f"deploy/{API}", "--subresource=scale", "-p",
                      '{"spec":{"replicas":-1}}')
    assert served.state.deployment(NS, API).replicas == 3


async def test_a_pod_is_labelled_and_annotated_but_its_spec_stays(served: Served,
                                                                   kubectl: Kubectl) -> None:
    pod = served.state.workload_pods(NS, API)[0]
    await kubectl("annotate", f"pod/{pod.name}",
                  "controller.kubernetes.io/pod-deletion-cost=-100")
    await kubectl("label", f"pod/{pod.name}", "debug=true")
    shown = json.loads(await kubectl("get", f"pod/{pod.name}", "-o", "json"))
    assert shown["metadata"]["annotations"] == {
        "controller.kubernetes.io/pod-deletion-cost": "-100"}
    assert shown["metadata"]["labels"]["debug"] == "true"
    with pytest.raises(AssertionError, match=r'Pod "[^"]+" is invalid: spec: Forbidden'):
        await kubectl("patch", f"pod/{pod.name}", "-p",
                      '{"spec":{"containers":[{"name":"x","image":"y"}]}}')
