"""kubectl's writes against the simulated API: a server-side dry run stores nothing, a change the
simulated cluster does not model is refused rather than answered as done, and an invalid scale
names its field as the apiserver does."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp
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


@pytest.mark.parametrize(("patch", "status", "message"), [
    pytest.param('{"metadata":{"labels":"x"}}', "BadRequest",
                 "cannot unmarshal into Go struct field ObjectMeta.metadata.labels", id="labels"),
    pytest.param('{"metadata":{"annotations":{"autoscaler.tracardi.com/paused":true}}}',
                 "BadRequest", "metadata.annotations of type map[string]string", id="bool-pause"),
    pytest.param('{"metadata":{"labels":{"bad key!":"x"}}}', "Invalid",
                 'metadata.labels: Invalid value: "bad key!": name part must consist',
                 id="label-key"),
    pytest.param('{"metadata":{"labels":{"ok":"not ok!"}}}', "Invalid",
                 'metadata.labels: Invalid value: "not ok!": a valid label must',
                 id="label-value"),
    pytest.param('{"metadata":"x"}', "BadRequest", "json: cannot unmarshal str into Go struct "
                 "field Deployment.metadata", id="metadata"),
])
async def test_metadata_of_the_wrong_shape_is_refused_and_stores_nothing(
        served: Served, kubectl: Kubectl, patch: str, status: str, message: str) -> None:
    before = served.state.deployment_json(served.state.deployment(NS, API))
    shown = ("Error from server (BadRequest)" if status == "BadRequest"
             else f'The Deployment "{API}" is invalid')  # how kubectl prints each
    with pytest.raises(AssertionError, match=re.escape(shown) + ".*" + re.escape(message)):
        await kubectl("patch", f"deploy/{API}", "--type=merge", "-p", patch)
    assert served.state.deployment_json(served.state.deployment(NS, API)) == before
    assert not served.state.deployment(NS, API).paused


async def test_a_body_of_the_wrong_shape_is_a_400_never_a_500(served: Served) -> None:
    pod = served.state.workload_pods(NS, API)[0].name
    base = f"{served.server.url}"
    requests = [
        ("PATCH", f"/apis/apps/v1/namespaces/{NS}/deployments/{API}/scale",
         "application/merge-patch+json", {"spec": "x"}),
        ("POST", f"/api/v1/namespaces/{NS}/pods/{pod}/eviction", "application/json",
         {"metadata": "x"}),
        ("PUT", f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/tracardi-autoscaler",
         "application/json", {"metadata": "x", "spec": "x"}),
        ("POST", f"/api/v1/namespaces/{NS}/events", "application/json", {"metadata": "x"}),
        ("DELETE", f"/api/v1/namespaces/{NS}/pods/{pod}", "application/json",
         {"preconditions": "x"}),
    ]
    async with aiohttp.ClientSession() as session:
        for method, path, content_type, body in requests:
            async with session.request(method, base + path, data=json.dumps(body),
                                       headers={"Content-Type": content_type}) as response:
                answer = await response.json()
            assert response.status in (400, 422), (method, path, response.status, answer)
            assert answer["kind"] == "Status" and answer["code"] == response.status
    assert served.state.has_pod(NS, pod)


async def test_a_scale_past_what_the_simulated_cluster_runs_is_refused(
        served: Served, kubectl: Kubectl) -> None:
    with pytest.raises(AssertionError, match=re.escape(
            "spec.replicas: Invalid value: 50000: the simulated cluster runs at most 1000 pods "
            "per Deployment")):
        await kubectl("scale", f"deploy/{API}", "--replicas=50000")
    assert served.state.deployment(NS, API).replicas == 3
