"""kubectl's writes against the simulated API: a server-side dry run stores nothing, a change the
simulated cluster does not model is refused rather than answered as done, and an invalid scale
names its field as the apiserver does."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

import aiohttp
import pytest
from wire_k8s import API, NS, Kubectl, Served, kubectl_binary

from autoscaler.sim import openapi

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


async def test_a_server_dry_run_checks_the_resource_version_as_a_write_does(
        served: Served, kubectl: Kubectl) -> None:
    """A dry run that names a stale resourceVersion is the 409 the write would be."""
    stale = "1"
    assert str(served.state.deployment(NS, API).resource_version) != stale
    pod = served.state.workload_pods(NS, API)[0]
    conflict = r'the object has been modified; please apply your changes to the latest version'
    for args in (("patch", f"deploy/{API}", "--subresource=scale", "-p",
                  f'{{"metadata":{{"resourceVersion":"{stale}"}},"spec":{{"replicas":7}}}}'),
                 ("patch", f"deploy/{API}", "-p",
                  f'{{"metadata":{{"resourceVersion":"{stale}"}},"spec":{{"replicas":6}}}}'),
                 ("patch", f"pod/{pod.name}", "-p",
                  f'{{"metadata":{{"resourceVersion":"{stale}","labels":{{"a":"b"}}}}}}')):
        with pytest.raises(AssertionError, match=conflict):
            await kubectl(*args, "--dry-run=server")
    current = served.state.deployment(NS, API).resource_version
    out = await kubectl("scale", f"deploy/{API}", "--replicas=7",
                        f"--resource-version={current}", "--dry-run=server")
    assert "(server dry run)" in out
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


async def _kubectl_raw(served: Served, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    """kubectl's exit code, stdout and stderr (`diff` exits 1 when it finds a difference)."""
    proc = await asyncio.create_subprocess_exec(
        kubectl_binary(), f"--kubeconfig={served.kubeconfig}",
        f"--cache-dir={tmp_path / 'kube-cache'}", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def test_kubectl_apply_and_diff_a_manifest_validated_by_the_server(
        served: Served, kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "api.yaml"
    manifest.write_text(f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {API}\n"
                        f"  namespace: {NS}\nspec:\n  replicas: 5\n")
    code, out, _ = await _kubectl_raw(served, tmp_path, "diff", "-f", str(manifest))
    assert code == 1 and "-  replicas: 3\n+  replicas: 5" in out
    assert served.state.deployment(NS, API).replicas == 3

    # kubectl reads the OpenAPI documents, finds that the server validates fields and asks it to
    code, out, err = await _kubectl_raw(served, tmp_path, "apply", "-f", str(manifest), "-v=6")
    assert code == 0 and f"deployment.apps/{API} configured" in out
    assert re.search(r"PATCH \S+/deployments/be-fa-public\?\S*fieldValidation=Strict\S* 200",
                     err)
    assert served.state.deployment(NS, API).replicas == 5
    assert "kubectl.kubernetes.io/last-applied-configuration" in \
        served.state.deployment(NS, API).annotations
    code, out, _ = await _kubectl_raw(served, tmp_path, "diff", "-f", str(manifest))
    assert (code, out) == (0, "")

    manifest.write_text(manifest.read_text() + "  template:\n    spec:\n      containers:\n"
                        f"      - name: {API}\n        image: tracardi/tracardi-api:9.9.9\n")
    with pytest.raises(AssertionError, match=r"spec.template: Forbidden"):
        await kubectl("apply", "-f", str(manifest))
    assert served.state.deployment(NS, API).replicas == 5


async def test_the_openapi_documents_name_each_served_operation(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{served.server.url}/openapi/v3") as response:
            paths = (await response.json())["paths"]
        assert {"api/v1", "apis/apps/v1", "apis/coordination.k8s.io/v1",
                "apis/rbac.authorization.k8s.io/v1"} <= set(paths)
        docs = {}
        for name, ref in paths.items():
            async with session.get(served.server.url + ref["serverRelativeURL"]) as response:
                assert response.status == 200, name
                docs[name] = await response.json()
    assert {d["openapi"] for d in docs.values()} == {"3.0.0"}
    apps = docs["apis/apps/v1"]["paths"]
    scale = apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"]
    assert scale["patch"]["x-kubernetes-group-version-kind"] == {
        "group": "autoscaling", "version": "v1", "kind": "Scale"}
    assert scale["put"]["operationId"] == "replaceAppsV1NamespacedDeploymentScale"
    assert {"name": "fieldValidation", "in": "query",
            "schema": {"type": "string", "uniqueItems": True}} in scale["patch"]["parameters"]
    assert "patch" not in apps["/apis/apps/v1/namespaces/{namespace}/replicasets/{name}"]
    # a server-side apply is taken where it is served: a Deployment and its scale, not a pod
    applied = "application/apply-patch+yaml"
    assert applied in scale["patch"]["requestBody"]["content"]
    assert applied in apps["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"][
        "patch"]["requestBody"]["content"]
    assert "get" in apps["/apis/apps/v1/deployments"]  # the list across namespaces
    core = docs["api/v1"]["paths"]
    eviction = core["/api/v1/namespaces/{namespace}/pods/{name}/eviction"]["post"]
    pod_patch = core["/api/v1/namespaces/{namespace}/pods/{name}"]["patch"]
    assert set(pod_patch["requestBody"]["content"]) == {
        "application/json-patch+json", "application/merge-patch+json",
        "application/strategic-merge-patch+json"}
    for name, doc in docs.items():  # each document's references resolve within it
        schemas = doc["components"]["schemas"]
        text = json.dumps(doc)
        refs = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
        assert refs <= set(schemas), (name, refs - set(schemas))
        assert '"null"' not in text and "$defs" not in text, name
    apps_schemas = docs["apis/apps/v1"]["components"]["schemas"]
    deployment = apps_schemas["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [
        {"group": "apps", "kind": "Deployment", "version": "v1"}]
    assert deployment["properties"]["apiVersion"] == {
        "description": deployment["properties"]["apiVersion"]["description"], "type": "string"}
    assert deployment["properties"]["spec"]["allOf"] == [
        {"$ref": "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"}]
    assert {"io.k8s.api.apps.v1.DeploymentList", "io.k8s.api.autoscaling.v1.Scale",
            "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"} <= set(apps_schemas)
    assert apps_schemas["io.k8s.apimachinery.pkg.util.intstr.IntOrString"] == {
        "oneOf": [{"type": "integer"}, {"type": "string"}], "format": "int-or-string"}
    assert "io.k8s.api.policy.v1.Eviction" in docs["api/v1"]["components"]["schemas"]
    metrics = docs["apis/metrics.k8s.io/v1beta1"]["components"]["schemas"]
    pod_metrics = metrics["io.k8s.metrics.pkg.apis.metrics.v1beta1.PodMetrics"]
    assert pod_metrics["x-kubernetes-group-version-kind"] == [
        {"group": "metrics.k8s.io", "kind": "PodMetrics", "version": "v1beta1"}]
    assert pod_metrics["properties"]["apiVersion"] == {
        "description": pod_metrics["properties"]["apiVersion"]["description"], "type": "string"}
    assert {"io.k8s.metrics.pkg.apis.metrics.v1beta1.NodeMetricsList",
            "io.k8s.metrics.pkg.apis.metrics.v1beta1.ContainerMetrics",
            "io.k8s.apimachinery.pkg.apis.meta.v1.Duration"} <= set(metrics)
    assert eviction["x-kubernetes-group-version-kind"]["kind"] == "Eviction"
    assert core["/api/v1/nodes/{name}"]["patch"]["operationId"] == "patchCoreV1Node"


def test_a_release_without_official_schemas_serves_none() -> None:
    # kubernetes-validate knows no such release (nor is it there without the dev extra):
    # the documents still list the operations, with no schemas
    assert openapi.schemas({("apps", "v1", "Deployment")}, release="0.0") == {}
    found = openapi.schemas({("apps", "v1", "Deployment")}, release="1.32")
    assert "io.k8s.api.apps.v1.DeploymentStrategy" in found
