"""Every object the simulated Kubernetes API returns validates against the official schema
(kubernetes-validate, strict), and its error bodies match the captured Status samples."""

from __future__ import annotations

import json
from typing import Any

import aiohttp
import jsonschema
import pytest
from wire_k8s import API, NS, WORKER, Served, sample_json, validate

from autoscaler.sim import openapi
from autoscaler.sim.kubeapi import KUBE_VERSION, create_app, serve

APPS = f"/apis/apps/v1/namespaces/{NS}"
CORE = f"/api/v1/namespaces/{NS}"


async def _get(served: Served, path: str, **params: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(
            served.server.url + path, params=params) as response:
        return response.status, await response.json()


async def _send(served: Served, method: str, path: str, body: Any,
                content_type: str = "application/json") -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
            method, served.server.url + path, data=json.dumps(body),
            headers={"Content-Type": content_type}) as response:
        return response.status, await response.json()


def _path(served: Served, template: str) -> str:
    state = served.state
    return template.format(
        pod=state.workload_pods(NS, API)[0].name,
        crashed=state.workload_pods(NS, WORKER)[0].name,
        pending=state.workload_pods(NS, API)[2].name,
        event=state.events(NS)[0].name)


@pytest.mark.parametrize(("path", "kind"), [
    pytest.param("/version", None, id="version"),
    pytest.param("/api", "APIVersions", id="core-versions"),
    pytest.param("/apis", "APIGroupList", id="group-list"),
    pytest.param("/apis/apps", "APIGroup", id="group"),
    pytest.param("/api/v1", "APIResourceList", id="core-resources"),
    pytest.param("/apis/apps/v1", "APIResourceList", id="apps-resources"),
    pytest.param("/apis/coordination.k8s.io/v1", "APIResourceList", id="lease-resources"),
    pytest.param("/apis/metrics.k8s.io/v1beta1", "APIResourceList", id="metrics-resources"),
    pytest.param(f"{APPS}/deployments", "DeploymentList", id="deployment-list"),
    pytest.param(f"{APPS}/deployments/{API}", "Deployment", id="deployment"),
    pytest.param(f"{APPS}/deployments/{API}/scale", "Scale", id="scale"),
    pytest.param(f"{CORE}/pods", "PodList", id="pod-list"),
    pytest.param(CORE + "/pods/{pod}", "Pod", id="ready-pod"),
    pytest.param(CORE + "/pods/{pending}", "Pod", id="pending-pod"),
    pytest.param(CORE + "/pods/{crashed}", "Pod", id="crashlooping-pod"),
    pytest.param(f"{CORE}/events", "EventList", id="event-list"),
    pytest.param(CORE + "/events/{event}", "Event", id="event"),
    pytest.param(f"/apis/events.k8s.io/v1/namespaces/{NS}/events", "EventList",
                 id="events-k8s-io-list"),
    pytest.param(f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases", "LeaseList",
                 id="lease-list"),
    pytest.param(f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/tracardi-autoscaler",
                 "Lease", id="lease"),
    pytest.param(f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers",
                 "HorizontalPodAutoscalerList", id="hpa-list"),
    pytest.param(f"/apis/policy/v1/namespaces/{NS}/poddisruptionbudgets",
                 "PodDisruptionBudgetList", id="pdb-list"),
    pytest.param("/api/v1/services", "ServiceList", id="service-list"),
    pytest.param("/api/v1/namespaces/default/services/kubernetes", "Service", id="service"),
    pytest.param(f"{CORE}/serviceaccounts/default", "ServiceAccount", id="service-account"),
    pytest.param("/apis/rbac.authorization.k8s.io/v1", "APIResourceList", id="rbac-resources"),
    pytest.param("/api/v1/namespaces", "NamespaceList", id="namespace-list"),
    pytest.param(f"/api/v1/namespaces/{NS}", "Namespace", id="namespace"),
    pytest.param(f"{APPS}/deployments/nope", "Status", id="status-404"),
    pytest.param("/apis/nope.example.com/v1", "Status", id="status-404-unknown-group"),
])
async def test_served_objects_validate(served: Served, path: str, kind: str | None) -> None:
    status, body = await _get(served, _path(served, path))
    if kind is None:
        assert {"major", "minor", "gitVersion"} <= set(body)
        return
    assert body["kind"] == kind
    validate(body)
    for item in body.get("items", []):
        # Items of a List omit kind/apiVersion on the wire, as the apiserver's do.
        assert "kind" not in item
        validate({"kind": kind.removesuffix("List"), "apiVersion": body["apiVersion"], **item})
    assert (status == 404) == (kind == "Status")


async def test_watch_events_validate(served: Served) -> None:
    async with aiohttp.ClientSession() as session, session.get(
            f"{served.server.url}{CORE}/pods",
            params={"watch": "true", "timeoutSeconds": "1",
                    "labelSelector": f"app.kubernetes.io/component={API}"}) as response:
        lines = [json.loads(line) async for line in response.content]
    assert [e["type"] for e in lines] == ["ADDED"] * 3
    for event in lines:
        validate(event, kind="WatchEvent")
        validate(event["object"])


async def test_stale_scale_is_the_409_conflict_status(served: Served) -> None:
    _, scale = await _get(served, f"{APPS}/deployments/{API}/scale")
    stale = {**scale, "spec": {"replicas": 5},
             "metadata": {**scale["metadata"], "resourceVersion": "1"}}
    code, body = await _send(served, "PUT", f"{APPS}/deployments/{API}/scale", stale)
    expected = sample_json("kubernetes/conflict-409-stale-resourceversion.json")
    assert code == 409
    assert set(body) == set(expected)
    assert body["details"] == {"name": API, "group": "apps", "kind": "deployments"}
    assert body["message"] == expected["message"].replace('"controller"', f'"{API}"')
    assert {k: body[k] for k in ("apiVersion", "kind", "reason", "status", "code")} == \
        {k: expected[k] for k in ("apiVersion", "kind", "reason", "status", "code")}
    validate(body)


async def test_eviction_against_the_budget_is_the_429_status(served: Served) -> None:
    pod = served.state.workload_pods(NS, API)[0].name
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": pod, "namespace": NS}}
    validate(eviction)
    code, body = await _send(served, "POST", f"{CORE}/pods/{pod}/eviction", eviction)
    expected = sample_json("kubernetes/eviction-429-pdb.json")
    assert code == 429
    assert {k: v for k, v in body.items() if k != "details"} == \
        {k: v for k, v in expected.items() if k != "details"}
    assert body["details"]["causes"] == [{
        "reason": "DisruptionBudget",
        "message": "The disruption budget api-pdb needs 2 healthy pods and has 2 currently"}]
    validate(body)


STALE = {"preconditions": {"resourceVersion": "1"}}


@pytest.mark.parametrize(("ready", "options", "code", "reason"), [
    # the API's third pod is not ready and takes nothing from the budget (2 healthy of the 2
    # it needs): its precondition is what refuses it
    pytest.param(False, STALE, 409, "Conflict", id="stale-version"),
    # a ready one is counted against the budget first, as the apiserver does: none left, 429
    pytest.param(True, STALE, 429, "TooManyRequests", id="stale-version-budget-first"),
    pytest.param(True, "now", 400, "BadRequest", id="options-not-an-object"),
    pytest.param(True, {"preconditions": ["1"]}, 400, "BadRequest",
                 id="preconditions-not-an-object"),
])
async def test_an_eviction_the_pod_cannot_take_is_refused_and_evicts_nothing(
        served: Served, ready: bool, options: object, code: int, reason: str) -> None:
    pod = next(p for p in served.state.workload_pods(NS, API) if p.ready == ready)
    eviction = {"apiVersion": "policy/v1", "kind": "Eviction",
                "metadata": {"name": pod.name, "namespace": NS}, "deleteOptions": options}
    got, body = await _send(served, "POST", f"{CORE}/pods/{pod.name}/eviction", eviction)
    assert (got, body["kind"], body["reason"]) == (code, "Status", reason)
    validate(body)
    assert not served.state.pod(NS, pod.name).deleting


@pytest.mark.parametrize(("method", "path", "body", "content_type", "code", "reason"), [
    pytest.param("PATCH", f"{APPS}/deployments/{API}/scale", {"spec": {"replicas": 4}},
                 "application/merge-patch+json", 200, None, id="merge-patch-scale"),
    pytest.param("PATCH", f"{APPS}/deployments/{API}/scale",
                 [{"op": "replace", "path": "/spec/replicas", "value": 4}],
                 "application/json-patch+json", 200, None, id="json-patch-scale"),
    pytest.param("PATCH", f"{APPS}/deployments/{API}/scale",
                 {"metadata": {"resourceVersion": "2"}, "spec": {"replicas": 4}},
                 "application/strategic-merge-patch+json", 409, "Conflict",
                 id="patch-with-stale-rv"),
    pytest.param("PATCH", f"{APPS}/deployments/{API}/scale", {"spec": {"replicas": 4}},
                 "application/apply-patch+yaml", 422, "Invalid",
                 id="server-side-apply-of-scale-needs-a-field-manager"),
    pytest.param("PUT", f"{APPS}/deployments/{API}/scale", {"spec": {"replicas": "four"}},
                 "application/json", 422, "Invalid", id="replicas-not-a-number"),
    pytest.param("DELETE", f"{APPS}/deployments/{API}", {}, "application/json", 405,
                 "MethodNotAllowed", id="delete-deployment-not-allowed"),
    pytest.param("PATCH", f"{APPS}/deployments/{API}/scale", {"spec": {"replicas": 4}},
                 "text/plain", 415, "UnsupportedMediaType", id="patch-of-no-patch-type"),
    pytest.param("POST", f"{CORE}/pods/ghost/eviction",
                 {"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "ghost"}},
                 "application/json", 404, "NotFound", id="evict-missing-pod"),
])
async def test_writes_answer_like_the_apiserver(served: Served, *, method: str, path: str,
                                                body: Any, content_type: str, code: int,
                                                reason: str | None) -> None:
    status, answer = await _send(served, method, path, body, content_type)
    assert status == code
    validate(answer)
    if reason is None:
        assert answer["kind"] == "Scale" and answer["spec"]["replicas"] == 4
        assert len(served.state.workload_pods(NS, API)) == 4
    else:
        assert (answer["kind"], answer["reason"], answer["code"]) == ("Status", reason, code)
        assert served.state.deployment(NS, API).replicas == 3


async def test_a_patch_type_is_checked_before_its_body(served: Served) -> None:
    async with aiohttp.ClientSession() as session, session.patch(
            f"{served.server.url}{APPS}/deployments/{API}", data=b"not json at all",
            headers={"Content-Type": "text/plain"}) as response:
        body = await response.json()
    assert (response.status, body["reason"]) == (415, "UnsupportedMediaType")
    assert body["message"] == (
        "the body of the request was in an unknown format - accepted media types include: "
        "application/json-patch+json, application/merge-patch+json, "
        "application/strategic-merge-patch+json, application/apply-patch+yaml")
    validate(body)


@pytest.mark.parametrize(("method", "path", "code", "reason", "message"), [
    pytest.param("GET", f"{CORE}/configmaps", 404, "NotFound",
                 "the server could not find the requested resource", id="not-served"),
    pytest.param("POST", "/api/v1", 405, "MethodNotAllowed",
                 "the server does not allow this method on the requested resource",
                 id="method-not-taken"),
])
async def test_a_path_or_method_not_served_is_the_generic_status(
        served: Served, *, method: str, path: str, code: int, reason: str,
        message: str) -> None:
    """The apiserver's generic response: no kind or name to name, and `details` sent empty."""
    status, body = await _send(served, method, path, {})
    assert status == code
    assert body == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                    "message": message, "reason": reason, "details": {}, "code": code}
    validate(body)


async def test_bearer_token_is_required_when_configured(served: Served) -> None:
    token_server = await serve(create_app(served.state, token="s3cret"))
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{token_server.url}/api/v1/namespaces") as response:
                assert response.status == 401
                body = await response.json()
            async with session.get(f"{token_server.url}/api/v1/namespaces",
                                   headers={"Authorization": "Bearer s3cret"}) as response:
                assert response.status == 200
    finally:
        await token_server.stop()
    assert (body["reason"], body["code"]) == ("Unauthorized", 401)
    validate(body)


async def test_pod_metrics_are_shaped_like_metrics_server(served: Served) -> None:
    status, body = await _get(served, f"/apis/metrics.k8s.io/v1beta1/namespaces/{NS}/pods",
                              labelSelector=f"app.kubernetes.io/component={API}")
    assert status == 200 and body["kind"] == "PodMetricsList"
    [item] = body["items"]
    assert item["window"] == "15s"
    assert item["containers"][0]["usage"]["cpu"] == "420000000n"
    # ... and by the schemas served for them (kubectl explain's), which are metrics-server's
    _, nodes = await _get(served, "/apis/metrics.k8s.io/v1beta1/nodes")
    metrics_schema(body["kind"]).validate(body)
    metrics_schema(nodes["kind"]).validate(nodes)
    del item["containers"]
    with pytest.raises(jsonschema.ValidationError, match="'containers' is a required property"):
        metrics_schema(body["kind"]).validate(body)


def metrics_schema(kind: str) -> jsonschema.protocols.Validator:
    return definition_schema(f"io.k8s.metrics.pkg.apis.metrics.v1beta1.{kind}")


def definition_schema(name: str) -> jsonschema.protocols.Validator:
    definitions = openapi.definitions(".".join(KUBE_VERSION))
    return jsonschema.Draft202012Validator({"$defs": dict(definitions),
                                            "$ref": f"#/$defs/{name}"})


async def test_scaled_objects_are_shaped_like_kedas_crd(served: Served) -> None:
    served.state.add_scaled_object(NS, "api-so", target=API, min_replicas=2, max_replicas=9)
    status, body = await _get(served, f"/apis/keda.sh/v1alpha1/namespaces/{NS}/scaledobjects")
    assert status == 200 and body["kind"] == "ScaledObjectList"
    [item] = body["items"]
    assert item["spec"]["scaleTargetRef"]["name"] == API
    assert (item["spec"]["minReplicaCount"], item["spec"]["maxReplicaCount"]) == (2, 9)
    # ... and by the schema served for them (kubectl explain's), which is KEDA's CRD's
    definition_schema("sh.keda.v1alpha1.ScaledObjectList").validate(body)
    del item["spec"]["triggers"]
    with pytest.raises(jsonschema.ValidationError, match="'triggers' is a required property"):
        definition_schema("sh.keda.v1alpha1.ScaledObject").validate(item)


async def test_discovery_lists_subresources_short_names_and_verbs(served: Served) -> None:
    _, apps = await _get(served, "/apis/apps/v1")
    _, core = await _get(served, "/api/v1")
    by_name = {r["name"]: r for r in apps["resources"] + core["resources"]}
    assert by_name["deployments"]["shortNames"] == ["deploy"]
    assert by_name["pods"]["shortNames"] == ["po"]
    assert by_name["events"]["shortNames"] == ["ev"]
    assert by_name["deployments/scale"] == {
        "name": "deployments/scale", "singularName": "", "namespaced": True,
        "group": "autoscaling", "version": "v1", "kind": "Scale",
        "verbs": ["get", "patch", "update"]}
    assert by_name["pods/eviction"]["kind"] == "Eviction"
    assert by_name["pods/eviction"]["verbs"] == ["create"]
    _, authz = await _get(served, "/apis/authorization.k8s.io/v1")
    _, authn = await _get(served, "/apis/authentication.k8s.io/v1")
    assert {r["name"]: r["singularName"] for r in authz["resources"] + authn["resources"]} == {
        "selfsubjectaccessreviews": "selfsubjectaccessreview",
        "selfsubjectrulesreviews": "selfsubjectrulesreview",
        "selfsubjectreviews": "selfsubjectreview"}
    _, groups = await _get(served, "/apis")
    assert "keda.sh" not in {g["name"] for g in groups["groups"]}
    served.state.add_scaled_object(NS, "so", target=API)
    _, groups = await _get(served, "/apis")
    assert "keda.sh" in {g["name"] for g in groups["groups"]}


async def test_a_pod_has_what_the_captured_pod_has(served: Served) -> None:
    """The fields of kubernetes/pod-ready-single.json, but the chart's own (its volumes and
    ports); the admission plugins' default tolerations as there; a pod not ready says why."""
    sample = sample_json("kubernetes/pod-ready-single.json")
    ready, _, unready = served.state.workload_pods(NS, API)  # the third one is starting
    _, pod = await _get(served, f"/api/v1/namespaces/{NS}/pods/{ready.name}")
    assert set(sample["spec"]) - {"volumes"} <= set(pod["spec"])
    assert set(sample["spec"]["containers"][0]) - {"ports", "volumeMounts"} <= set(
        pod["spec"]["containers"][0])
    assert set(sample["status"]) <= set(pod["status"])
    assert pod["spec"]["tolerations"] == sample["spec"]["tolerations"]
    assert pod["spec"]["serviceAccount"] == pod["spec"]["serviceAccountName"]
    assert [c["type"] for c in pod["status"]["conditions"]] == [
        c["type"] for c in sample["status"]["conditions"]]
    assert all(set(c) == {"type", "status", "lastProbeTime", "lastTransitionTime"}
               for c in pod["status"]["conditions"])
    _, waiting = await _get(served, f"/api/v1/namespaces/{NS}/pods/{unready.name}")
    by_type = {c["type"]: c for c in waiting["status"]["conditions"]}
    for kind in ("Ready", "ContainersReady"):
        assert (by_type[kind]["status"], by_type[kind]["reason"], by_type[kind]["message"]) == (
            "False", "ContainersNotReady",
            f"containers with unready status: [{unready.container}]")
    validate(pod)


async def test_json_comes_as_the_apiserver_labels_it(served: Served) -> None:
    async with aiohttp.ClientSession() as session:
        for path in (f"{APPS}/deployments/{API}", f"{CORE}/configmaps"):
            async with session.get(served.server.url + path) as response:
                assert response.headers["Content-Type"] == "application/json"  # no charset
