"""`metadata.managedFields` of the simulated Deployments, their ReplicaSets and pods, and Events,
as the apiserver records them: the creator holds what it made, a write takes the fields it
changes from whoever held them, and the manager is the write's `fieldManager`, else its
User-Agent up to the first "/"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from wire_k8s import API, NS, WORKER, Kubectl, Served, kubectl_binary, validate

from autoscaler.sim.managed import fields_v1, manager_of


@pytest.fixture
def kubectl(served: Served, tmp_path: Path) -> Kubectl:
    return Kubectl(kubectl_binary(), served.kubeconfig, tmp_path / "kube-cache")


def _holders(obj: dict[str, Any], *path: str) -> list[tuple[str, str]]:
    """(manager, subresource) of each managedFields entry that holds `path`."""
    found = []
    for entry in obj["metadata"]["managedFields"]:
        node = entry["fieldsV1"]
        for step in path:
            node = node.get(step)
            if node is None:
                break
        else:
            found.append((entry["manager"], entry.get("subresource", "")))
    return found


async def _deployment(kubectl: Kubectl) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(await kubectl("get", f"deploy/{API}", "-o", "json",
                                                   "--show-managed-fields"))
    validate(got)
    return got


@pytest.mark.real
async def test_kubectl_writes_take_the_fields_they_change(kubectl: Kubectl) -> None:
    made = await _deployment(kubectl)
    assert _holders(made, "f:spec", "f:replicas") == [("helm", "")]
    assert _holders(made, "f:status", "f:replicas") == [("kube-controller-manager", "status")]
    await kubectl("scale", f"deploy/{API}", "--replicas=5")
    await kubectl("annotate", f"deploy/{API}", "team=crm")
    await kubectl("label", f"deploy/{API}", "tier=api", "--field-manager=argocd-controller")
    changed = await _deployment(kubectl)
    assert _holders(changed, "f:spec", "f:replicas") == [("kubectl", "scale")]
    assert _holders(changed, "f:metadata", "f:annotations", "f:team") == [
        ("kubectl-annotate", "")]
    assert _holders(changed, "f:metadata", "f:labels", "f:tier") == [("argocd-controller", "")]
    assert _holders(changed, "f:spec", "f:selector") == [("helm", "")]  # untouched: still its
    await kubectl("annotate", f"deploy/{API}", "team-")  # a removed field is nobody's
    assert _holders(await _deployment(kubectl), "f:metadata", "f:annotations", "f:team") == []


@pytest.mark.real
async def test_a_write_that_changes_nothing_takes_nothing(kubectl: Kubectl,
                                                          served: Served) -> None:
    await kubectl("scale", f"deploy/{API}", "--replicas=3")  # it already has 3
    assert _holders(await _deployment(kubectl), "f:spec", "f:replicas") == [("helm", "")]
    assert served.state.deployment(NS, API).generation == 1


def test_a_manager_is_the_field_manager_or_the_user_agents_prefix() -> None:
    assert manager_of("argocd-controller", "kubectl/v1.32.4") == "argocd-controller"
    assert manager_of("", "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07") == "kubectl"
    assert manager_of("", "OpenAPI-Generator/33.3.0+snapshot/python") == "OpenAPI-Generator"
    assert manager_of("", "a\x00b\tc/1.0") == "abc"  # unprintable characters dropped
    assert manager_of("", "é" * 100) == "é" * 64  # cut at 128 bytes, not inside a character
    assert manager_of("", "") == ""


def test_fields_render_as_fields_v1() -> None:
    paths = frozenset({("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:app"),
             ("f:spec", "f:replicas"), ("f:spec", "f:selector")})
    assert fields_v1(paths) == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:replicas": {}, "f:selector": {}}}


def _manifest(served: Served, path: Path, *, replicas: int | None = 3,
              labels: dict[str, str] | None = None, image: str | None = None) -> Path:
    """A GitOps manifest of the API Deployment as it runs: its selector and template, with
    `replicas` (None: left out) and `labels` besides its own."""
    live = served.state.deployment_json(served.state.deployment(NS, API))
    template = live["spec"]["template"]
    container = {"name": API, "image": image or template["spec"]["containers"][0]["image"]}
    spec: dict[str, Any] = {"selector": live["spec"]["selector"], "template": {
        "metadata": template["metadata"], "spec": {"containers": [container]}}}
    if replicas is not None:
        spec["replicas"] = replicas
    path.write_text(json.dumps({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": API, "namespace": NS, "labels": labels or {}}, "spec": spec}))
    return path


@pytest.mark.real
async def test_server_side_apply_holds_what_it_sets_and_conflicts_over_what_others_changed(
        served: Served, kubectl: Kubectl, tmp_path: Path) -> None:
    manifest = _manifest(served, tmp_path / "api.json", labels={"team": "crm"})
    out = await kubectl("apply", "--server-side", "-f", str(manifest))
    assert "serverside-applied" in out
    applied = await _deployment(kubectl)
    # The same count as it has: held by both, no conflict.
    assert _holders(applied, "f:spec", "f:replicas") == [("kubectl", ""), ("helm", "")]
    assert _holders(applied, "f:metadata", "f:labels", "f:team") == [("kubectl", "")]
    served.state.set_replicas(NS, API, 5, manager="tracardi-autoscaler")  # it scales
    with pytest.raises(AssertionError) as refused:
        await kubectl("apply", "--server-side", "-f", str(manifest))
    assert ('Apply failed with 1 conflict: conflict with "tracardi-autoscaler" with subresource '
            '"scale" using apps/v1 at ') in str(refused.value)
    assert str(refused.value).count(": .spec.replicas") == 1
    assert served.state.deployment(NS, API).replicas == 5
    await kubectl("apply", "--server-side", "--force-conflicts", "-f", str(manifest))
    forced = await _deployment(kubectl)
    assert forced["spec"]["replicas"] == 3
    assert _holders(forced, "f:spec", "f:replicas") == [("kubectl", "")]


@pytest.mark.real
async def test_a_field_an_apply_drops_goes_unless_another_manager_holds_it(
        served: Served, kubectl: Kubectl, tmp_path: Path) -> None:
    served.state.set_replicas(NS, API, 5, manager="tracardi-autoscaler")
    await kubectl("apply", "--server-side", "--force-conflicts", "-f",
                  str(_manifest(served, tmp_path / "a.json", replicas=4,
                                labels={"team": "crm"})))
    await kubectl("apply", "--server-side", "-f",
                  str(_manifest(served, tmp_path / "b.json", replicas=None)))
    after = await _deployment(kubectl)
    assert "team" not in after["metadata"]["labels"]
    # The one holder of the count dropped it: it is gone, and defaults to 1 (an HPA's
    # or this autoscaler's count is lost this way, unless they hold it).
    assert after["spec"]["replicas"] == 1
    assert after["metadata"]["labels"]["app.kubernetes.io/component"] == API  # helm's stays


@pytest.mark.real
async def test_an_apply_dry_run_stores_nothing_and_a_rollout_is_refused(
        served: Served, kubectl: Kubectl, tmp_path: Path) -> None:
    out = await kubectl("apply", "--server-side", "--force-conflicts", "--dry-run=server",
                        "-o", "json", "-f", str(_manifest(served, tmp_path / "a.json",
                                                          replicas=9)))
    assert json.loads(out)["spec"]["replicas"] == 9
    assert served.state.deployment(NS, API).replicas == 3
    with pytest.raises(AssertionError, match=r"spec.template.spec.containers\[0\].image: "
                                             r"Forbidden"):
        await kubectl("apply", "--server-side", "-f",
                      str(_manifest(served, tmp_path / "b.json", image="tracardi/api:9.9")))
    # An apply of a Deployment that does not exist would create it: refused, not a 404
    other = json.loads(_manifest(served, tmp_path / "c.json").read_text())
    other["metadata"]["name"] = "tracardi-gui"
    (tmp_path / "c.json").write_text(json.dumps(other))
    with pytest.raises(AssertionError, match=r'"tracardi-gui" is invalid: metadata.name: '
                                             r"Forbidden: the simulated cluster creates no "
                                             r"Deployments"):
        await kubectl("apply", "--server-side", "-f", str(tmp_path / "c.json"))
    assert [d.name for d in served.state.deployments(NS)] == sorted([API, WORKER])


async def test_an_apply_names_its_field_manager(served: Served) -> None:
    url = f"{served.server.url}/apis/apps/v1/namespaces/{NS}/deployments/{API}"
    async with aiohttp.ClientSession() as session, session.patch(
            url, data=json.dumps({"apiVersion": "apps/v1", "kind": "Deployment",
                                  "metadata": {"name": API}, "spec": {"replicas": 4}}),
            headers={"Content-Type": "application/apply-patch+yaml"}) as response:
        status = await response.json()
    assert (response.status, status["reason"]) == (422, "Invalid")
    assert status["message"].endswith("fieldManager: Required value: is required for apply "
                                      "patch")
    assert served.state.deployment(NS, API).replicas == 3


async def _json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(await kubectl("get", *args, "-o", "json",
                                                   "--show-managed-fields"))
    for obj in got["items"] if got["kind"] == "List" else [got]:  # kubectl's list: no schema
        validate(obj)
    return got


@pytest.mark.real
async def test_pods_replica_sets_and_events_name_who_set_their_fields(
        served: Served, kubectl: Kubectl) -> None:
    pod = served.state.workload_pods(NS, API)[0]
    made = await _json(kubectl, f"pod/{pod.name}")
    controller = [("kube-controller-manager", "")]
    assert _holders(made, "f:spec", "f:containers", f'k:{{"name":"{API}"}}', "f:image") == \
        controller  # the ReplicaSet's controller sent the template
    assert _holders(made, "f:metadata", "f:generateName") == controller
    rs = served.state.deployment(NS, API).replica_set_uid
    assert _holders(made, "f:metadata", "f:ownerReferences", f'k:{{"uid":"{rs}"}}') == controller
    assert _holders(made, "f:status", "f:phase") == [("kubelet", "status")]
    assert _holders(made, "f:status", "f:conditions", 'k:{"type":"Ready"}', "f:status") == [
        ("kubelet", "status")]
    assert _holders(made, "f:spec", "f:nodeName") == []  # the scheduler's binding: not tracked
    before = {e["manager"]: e["time"] for e in made["metadata"]["managedFields"]}

    served.state.crash(NS, pod.name)  # the kubelet writes the status again, later
    await kubectl("label", f"pod/{pod.name}", "team=crm")
    changed = await _json(kubectl, f"pod/{pod.name}")
    assert _holders(changed, "f:metadata", "f:labels", "f:team") == [("kubectl-label", "")]
    assert _holders(changed, "f:metadata", "f:labels", "f:pod-template-hash") == controller
    times = {e["manager"]: e["time"] for e in changed["metadata"]["managedFields"]}
    assert times["kube-controller-manager"] == before["kube-controller-manager"]
    await kubectl("label", f"pod/{pod.name}", "team-")  # a removed label is nobody's
    gone = await _json(kubectl, f"pod/{pod.name}")
    assert [e["manager"] for e in gone["metadata"]["managedFields"]] == [
        "kube-controller-manager", "kubelet"]

    replica_set = served.state.deployment(NS, WORKER).replica_set_name
    owned = await _json(kubectl, f"rs/{replica_set}")
    assert _holders(owned, "f:spec", "f:replicas") == controller
    assert _holders(owned, "f:status", "f:replicas") == [("kube-controller-manager", "status")]

    events = (await _json(kubectl, "events"))["items"]
    by_component = {e["source"]["component"]: [m["manager"] for m in
                                                e["metadata"]["managedFields"]]
                    for e in events}
    assert by_component["kubelet"] == ["kubelet"]
    assert by_component["default-scheduler"] == ["kube-scheduler"]
    assert by_component["replicaset-controller"] == ["kube-controller-manager"]
    started = next(e for e in events if e["reason"] == "BackOff")
    [entry] = started["metadata"]["managedFields"]
    assert set(entry["fieldsV1"]) >= {"f:involvedObject", "f:reason", "f:message", "f:count"}
    assert "f:eventTime" not in entry["fieldsV1"]  # null: not set


@pytest.mark.real
async def test_an_event_posted_is_its_posters(served: Served) -> None:
    body = {"metadata": {"name": "probe.1", "namespace": NS},
            "involvedObject": {"kind": "Deployment", "name": API, "namespace": NS},
            "reason": "Probe", "message": "hello", "type": "Normal"}
    async with aiohttp.ClientSession() as session, session.post(
            f"{served.server.url}/api/v1/namespaces/{NS}/events?fieldManager=probe-writer",
            json=body) as response:
        assert response.status == 201
        event = await response.json()
    [entry] = event["metadata"]["managedFields"]
    assert (entry["manager"], entry["operation"]) == ("probe-writer", "Update")
    assert entry["fieldsV1"]["f:involvedObject"] == {"f:kind": {}, "f:name": {}, "f:namespace": {}}


def _owned_fields_exist(obj: dict[str, Any]) -> None:
    """Every field of every managedFields entry is in the object: a map's key, or a keyed
    list's item (`k:{...}`) whose keys match."""
    def walk(fields: dict[str, Any], node: Any, where: str) -> None:
        for step, inner in fields.items():
            if step == ".":
                continue
            kind, _, key = step.partition(":")
            if kind == "f":
                assert isinstance(node, dict) and key in node, f"{where}.{key} not in the object"
                walk(inner, node[key], f"{where}.{key}")
            else:
                wanted = json.loads(key)
                [item] = [i for i in node if all(i.get(k) == v for k, v in wanted.items())]
                walk(inner, item, f"{where}[{key}]")
    for entry in obj["metadata"]["managedFields"]:
        walk(entry["fieldsV1"], obj, entry["manager"])


@pytest.mark.real
async def test_every_kind_names_who_made_it(served: Served, kubectl: Kubectl) -> None:
    served.state.add_scaled_object(NS, "api-so", target=API)
    node = await _json(kubectl, "nodes")
    [namespaces, service, hpa, pdb] = [
        (await _json(kubectl, *args))["items"] for args in (
            ("namespaces",), ("services", "-A"), ("hpa", "-n", NS), ("pdb", "-n", NS))]
    # KEDA's kind has no official schema to validate against
    scaled = json.loads(await kubectl("get", "scaledobjects", "-n", NS, "-o", "json",
                                      "--show-managed-fields"))["items"]
    made = [*node["items"], *namespaces, *service, *hpa, *pdb, *scaled]
    for obj in made:
        _owned_fields_exist(obj)
    [node] = node["items"]
    assert _holders(node, "f:metadata", "f:labels", "f:kubernetes.io/hostname") == [
        ("kubelet", "")]  # the kubelet registers its node, with its labels
    assert _holders(node, "f:spec", "f:podCIDR") == [("kube-controller-manager", "")]
    assert _holders(node, "f:status", "f:conditions", 'k:{"type":"Ready"}') == [
        ("kubelet", "status")]
    by_name = {ns["metadata"]["name"]: ns for ns in namespaces}
    assert _holders(by_name["default"], "f:metadata", "f:labels") == [("kube-apiserver", "")]
    assert _holders(by_name[NS], "f:metadata", "f:labels") == [("kubectl-create", "")]
    [kubernetes] = service
    assert _holders(kubernetes, "f:spec", "f:ports", 'k:{"port":443,"protocol":"TCP"}',
                    "f:targetPort") == [("kube-apiserver", "")]
    for obj in (*hpa, *pdb):
        assert _holders(obj, "f:spec") == [("kubectl-client-side-apply", "")]
        assert _holders(obj, "f:status") == [("kube-controller-manager", "status")]
    assert _holders(scaled[0], "f:spec", "f:triggers") == [("kubectl-client-side-apply", "")]
    # a ServiceAccount made with its name alone owns no field: the apiserver keeps no entry
    accounts = (await _json(kubectl, "serviceaccounts", "-n", NS))["items"]
    assert accounts and all("managedFields" not in sa["metadata"] for sa in accounts)


async def _apply_scale(served: Served, body: dict[str, Any], **query: str) -> tuple[int, Any]:
    url = f"{served.server.url}/apis/apps/v1/namespaces/{NS}/deployments/{API}/scale"
    async with aiohttp.ClientSession() as session, session.patch(
            url, data=json.dumps(body), params=query,
            headers={"Content-Type": "application/apply-patch+yaml"}) as response:
        return response.status, await response.json()


async def test_an_apply_through_the_scale_subresource_holds_the_replicas(
        served: Served) -> None:
    scale = {"apiVersion": "autoscaling/v1", "kind": "Scale", "metadata": {"name": API},
             "spec": {"replicas": 4}}
    # helm set the count (3): another one conflicts with it, the same one is held with it
    status, body = await _apply_scale(served, scale, fieldManager="gitops")
    assert (status, body["reason"]) == (409, "Conflict")
    assert body["message"].startswith('Apply failed with 1 conflict: conflict with "helm" '
                                      "using apps/v1")
    status, body = await _apply_scale(served, {**scale, "spec": {"replicas": 3}},
                                      fieldManager="gitops")
    assert (status, body["kind"], body["spec"]["replicas"]) == (200, "Scale", 3)
    validate(body)
    deployment = served.state.deployment_json(served.state.deployment(NS, API))
    assert _holders(deployment, "f:spec", "f:replicas") == [("gitops", "scale"), ("helm", "")]
    [entry] = [e for e in deployment["metadata"]["managedFields"] if e["manager"] == "gitops"]
    assert entry["operation"] == "Apply"
    # the autoscaler scales it, taking the count from both; an apply of another conflicts
    served.state.set_replicas(NS, API, 6, manager="tracardi-autoscaler")
    status, body = await _apply_scale(served, {**scale, "spec": {"replicas": 3}},
                                      fieldManager="gitops")
    assert (status, body["reason"]) == (409, "Conflict")
    assert body["message"].startswith('Apply failed with 1 conflict: conflict with '
                                      '"tracardi-autoscaler" with subresource "scale"')
    # a dry run stores nothing; a forced apply takes the count
    status, body = await _apply_scale(served, {**scale, "spec": {"replicas": 3}},
                                      fieldManager="gitops", force="true", dryRun="All")
    assert (status, body["spec"]["replicas"]) == (200, 3)
    assert served.state.deployment(NS, API).replicas == 6
    status, body = await _apply_scale(served, {**scale, "spec": {"replicas": 3}},
                                      fieldManager="gitops", force="true")
    assert (status, served.state.deployment(NS, API).replicas) == (200, 3)
    deployment = served.state.deployment_json(served.state.deployment(NS, API))
    assert _holders(deployment, "f:spec", "f:replicas") == [("gitops", "scale")]
    # not a Scale: refused, and nothing changes
    status, body = await _apply_scale(served, {**scale, "kind": "Deployment"},
                                      fieldManager="gitops")
    assert (status, body["reason"]) == (400, "BadRequest")
    assert served.state.deployment(NS, API).replicas == 3
