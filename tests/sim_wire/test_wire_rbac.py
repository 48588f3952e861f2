"""RBAC in the simulated Kubernetes API: the daemon's ServiceAccount bound to the shipped Role,
as kubectl sees it through `--as` (`auth can-i`, 403s worded as the apiserver's) and as a client
with the account's token does, and the admin unrestricted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml
from wire_k8s import API, NS, REPO, Kubectl, kubectl_binary, sample_json, tracardi_cluster, validate

from autoscaler.sim.kubeapi import ServedApp, create_app, serve, write_kubeconfig
from autoscaler.sim.kubestate import KubeState
from autoscaler.sim.rbac import Grant

pytestmark = pytest.mark.real

DAEMON = "daemon-token"
USER = "system:serviceaccount:tracardi:tracardi-autoscaler"


@pytest.fixture
async def server() -> AsyncIterator[ServedApp]:
    state = KubeState(clock=time.monotonic, wall=time.time)
    tracardi_cluster(state)
    role = yaml.safe_load((REPO / "deploy" / "base" / "role.yaml").read_text())
    grant = Grant.from_role(role, namespace=NS, service_account="tracardi-autoscaler")
    # No admin token: kubectl sends none over plain HTTP (it acts as the daemon with --as).
    served = await serve(create_app(state, grants={DAEMON: grant}))
    try:
        yield served
    finally:
        await served.stop()


async def can_i(kubeconfig: Path, *args: str) -> str:
    """`kubectl auth can-i ...`: "yes" (exit 0) or "no" (exit 1)."""
    proc = await asyncio.create_subprocess_exec(
        kubectl_binary(), f"--kubeconfig={kubeconfig}", f"--cache-dir={kubeconfig}.cache",
        "auth", "can-i", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    answer = out.decode().strip()
    assert (proc.returncode, answer) in ((0, "yes"), (1, "no")), (proc.returncode, out, err)
    return answer


@pytest.mark.parametrize(("args", "answer"), [
    pytest.param(("update", "deployments.apps", "--subresource=scale", "-n", NS), "yes",
                 id="scale"),
    pytest.param(("create", "pods", "--subresource=eviction", "-n", NS), "yes", id="evict"),
    pytest.param(("watch", "pods", "-n", NS), "yes", id="watch-pods"),
    pytest.param(("update", "leases.coordination.k8s.io/tracardi-autoscaler", "-n", NS), "yes",
                 id="own-lease"),
    pytest.param(("update", "leases.coordination.k8s.io/someone-else", "-n", NS), "no",
                 id="other-lease"),
    pytest.param(("delete", "deployments.apps", "-n", NS), "no", id="delete-deployment"),
    pytest.param(("delete", "pods", "-n", NS), "no", id="delete-pod"),  # allow-delete's
    pytest.param(("list", "pods", "-n", "kube-system"), "no", id="other-namespace"),
    pytest.param(("list", "nodes"), "no", id="cluster-scope"),
])
async def test_kubectl_auth_can_i_answers_from_the_role(server: ServedApp, tmp_path: Path,
                                                        args: tuple[str, ...],
                                                        answer: str) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    assert await can_i(kubeconfig, f"--as={USER}", *args) == answer
    assert await can_i(kubeconfig, *args) == "yes"
    if answer == "yes":  # a user no RoleBinding names may do nothing
        assert await can_i(kubeconfig, "--as=system:serviceaccount:tracardi:other", *args) == "no"


async def test_a_request_the_role_does_not_allow_is_the_apiservers_403(server: ServedApp,
                                                                       tmp_path: Path) -> None:
    kubectl = Kubectl(kubectl_binary(), write_kubeconfig(tmp_path / "kubeconfig", server.url),
                      tmp_path / "cache")
    with pytest.raises(AssertionError, match=(
            rf'Error from server \(Forbidden\): deployments.apps is forbidden: User "{USER}" '
            r'cannot list resource "deployments" in API group "apps" in the namespace "other"')):
        await kubectl(f"--as={USER}", "get", "deploy", "-n", "other")
    assert API in await kubectl(f"--as={USER}", "get", "deploy", "-n", NS)

    url = f"{server.url}/apis/apps/v1/namespaces/{NS}/deployments/{API}"
    async with aiohttp.ClientSession() as session, session.delete(
            url, headers={"Authorization": f"Bearer {DAEMON}"}) as response:
        body = await response.json()
    assert response.status == 403
    validate(body)
    assert body.keys() == sample_json("kubernetes/forbidden-403-rbac.json").keys()
    assert body["message"] == (f'deployments.apps "{API}" is forbidden: User "{USER}" cannot '
                               f'delete resource "deployments" in API group "apps" in the '
                               f'namespace "{NS}"')
    assert body["details"] == {"name": API, "group": "apps", "kind": "deployments"}

    # The account's own token may not act as anybody else.
    async with aiohttp.ClientSession() as session, session.get(
            f"{server.url}/api/v1/namespaces/{NS}/pods",
            headers={"Authorization": f"Bearer {DAEMON}", "Impersonate-User": "admin"}) as response:
        body = await response.json()
    assert (response.status, body["message"]) == (403, (
        f'users "admin" is forbidden: User "{USER}" cannot impersonate resource "users" in API '
        'group "" at the cluster scope'))


async def raw(server: ServedApp, method: str, path: str,
              headers: dict[str, str] | None = None, body: object = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.request(
            method, server.url + path, headers={"Authorization": f"Bearer {DAEMON}",
                                                **(headers or {})}, json=body) as response:
        return response.status, await response.json()


async def test_rbac_reads_a_request_as_the_apiserver_does(server: ServedApp) -> None:
    # A DELETE of a collection is `deletecollection`, which the Role does not grant.
    status, body = await raw(server, "DELETE", f"/api/v1/namespaces/{NS}/pods")
    assert status == 403 and 'cannot deletecollection resource "pods"' in body["message"]
    assert body["details"] == {"kind": "pods"}  # no group: the core group's is left out
    # A group the server does not serve: the Role's answer (403) before the 404.
    status, body = await raw(server, "GET", f"/apis/batch/v1/namespaces/{NS}/jobs")
    assert status == 403 and 'cannot list resource "jobs" in API group "batch"' in body["message"]
    async with aiohttp.ClientSession() as session, session.get(
            f"{server.url}/apis/batch/v1/namespaces/{NS}/jobs") as response:
        assert response.status == 404  # the admin: nothing there
    # A namespace's own object is in that namespace: the Role does not grant it either.
    status, body = await raw(server, "GET", f"/api/v1/namespaces/{NS}")
    assert status == 403 and f'in the namespace "{NS}"' in body["message"]


def test_a_wildcard_rule_matches_a_subresource_and_a_namespace_its_own_object() -> None:
    role = {"metadata": {"name": "r"}, "rules": [
        {"apiGroups": ["apps"], "resources": ["*/scale"], "verbs": ["update"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}]}
    grant = Grant.from_role(role, namespace=NS, service_account="sa")
    assert grant.allows("update", "apps", "deployments/scale", NS, "x")
    assert not grant.allows("update", "apps", "deployments", NS, "x")
    assert grant.allows("get", "", "namespaces", NS, NS)


@pytest.mark.parametrize(("attributes", "headers", "allowed"), [
    pytest.param({"nonResourceAttributes": {"path": "/version", "verb": "get"}}, {}, True,
                 id="get-version"),
    pytest.param({"nonResourceAttributes": {"path": "/version", "verb": "post"}}, {}, False,
                 id="post-version"),
    pytest.param({"nonResourceAttributes": {"path": "/apis/apps/v1", "verb": "get"}}, {}, True,
                 id="discovery"),
    pytest.param({"resourceAttributes": {"verb": "delete", "resource": "nodes"}},
                 {"Impersonate-Group": "system:masters"}, True, id="as-masters"),
    pytest.param({"resourceAttributes": {"verb": "delete", "resource": "nodes"}}, {}, False,
                 id="as-the-account"),
])
async def test_reviews_of_paths_and_groups(server: ServedApp, attributes: dict[str, Any],
                                           headers: dict[str, str], allowed: bool) -> None:
    async with aiohttp.ClientSession() as session, session.post(
            f"{server.url}/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            headers={"Impersonate-User": USER, **headers},
            json={"kind": "SelfSubjectAccessReview", "apiVersion": "authorization.k8s.io/v1",
                  "spec": attributes}) as response:
        body = await response.json()
    assert response.status == 201 and body["status"]["allowed"] is allowed


async def kubectl_out(kubeconfig: Path, *args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        kubectl_binary(), f"--kubeconfig={kubeconfig}", f"--cache-dir={kubeconfig}.cache", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_kubectl_lists_what_the_account_may_do_and_who_it_is(server: ServedApp,
                                                                     tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    rows = {tuple(line.split()) for line in
            (await kubectl_out(kubeconfig, "auth", "can-i", "--list", f"--as={USER}",
                               "-n", NS)).splitlines()}
    assert ("deployments.apps/scale", "[]", "[]", "[get", "update]") in rows
    assert ("leases.coordination.k8s.io", "[]", "[tracardi-autoscaler]", "[get",
            "update]") in rows
    elsewhere = await kubectl_out(kubeconfig, "auth", "can-i", "--list", f"--as={USER}",
                                  "-n", "other")
    assert "deployments.apps" not in elsewhere and "selfsubjectaccessreviews" in elsewhere
    whoami = await kubectl_out(kubeconfig, "auth", "whoami", f"--as={USER}")
    assert f"Username    {USER}" in whoami
    assert "system:serviceaccounts:tracardi" in whoami
    assert "Username    kubernetes-admin" in await kubectl_out(kubeconfig, "auth", "whoami")


async def test_a_rules_review_in_json_answers_from_the_role(server: ServedApp) -> None:
    status, body = await raw(server, "POST",
                             "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
                             body={"kind": "SelfSubjectRulesReview",
                                   "apiVersion": "authorization.k8s.io/v1",
                                   "spec": {"namespace": NS}})
    assert status == 201 and body["status"]["incomplete"] is False
    assert {"verbs": ["create"], "apiGroups": [""], "resources": ["pods/eviction"]} in (
        body["status"]["resourceRules"])


async def test_a_list_or_watch_of_one_name_is_authorized_for_that_name() -> None:
    state = KubeState(clock=time.monotonic, wall=time.time)
    tracardi_cluster(state)
    role = {"metadata": {"name": "lease-reader"},
            "rules": [{"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
                       "resourceNames": ["tracardi-autoscaler"], "verbs": ["list", "watch"]}]}
    grant = Grant.from_role(role, namespace=NS, service_account="tracardi-autoscaler")
    served = await serve(create_app(state, grants={DAEMON: grant}))
    leases = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"
    try:
        status, body = await raw(served, "GET", f"{leases}?fieldSelector=metadata.name%3D"
                                                "tracardi-autoscaler")
        assert status == 200
        assert [i["metadata"]["name"] for i in body["items"]] == ["tracardi-autoscaler"]
        status, _ = await raw(served, "GET", f"{leases}?fieldSelector=metadata.name%3D%3D"
                                             "tracardi-autoscaler&watch=1&timeoutSeconds=1")
        assert status == 200
        for query in ("", "?fieldSelector=metadata.name%3Dsomeone-else",
                      "?fieldSelector=metadata.name!%3Dsomeone-else"):
            status, body = await raw(served, "GET", leases + query)
            assert status == 403, query
            assert 'cannot list resource "leases"' in body["message"]
    finally:
        await served.stop()


def _canonical(rules: list[dict[str, Any]]) -> set[tuple[tuple[str, ...], ...]]:
    return {tuple(tuple(sorted(r.get(k, ()))) for k in ("apiGroups", "resources",
                                                         "resourceNames", "verbs"))
            for r in rules}


async def test_the_role_its_binding_and_account_are_served_as_the_server_enforces_them(
        tmp_path: Path) -> None:
    state = KubeState(clock=time.monotonic, wall=time.time)
    tracardi_cluster(state)
    role = yaml.safe_load((REPO / "deploy" / "base" / "role.yaml").read_text())
    grants = {DAEMON: Grant.from_role(role, namespace=NS, service_account="tracardi-autoscaler")}
    served = await serve(create_app(state, grants=grants))
    rbac = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{NS}"
    admin = {"Authorization": ""}
    try:
        status, listed = await raw(served, "GET", f"{rbac}/roles", admin)
        assert status == 200
        validate(listed)
        [served_role] = listed["items"]
        assert served_role["metadata"]["name"] == "tracardi-autoscaler"
        assert _canonical(served_role["rules"]) == _canonical(role["rules"])
        status, binding = await raw(served, "GET", f"{rbac}/rolebindings/tracardi-autoscaler",
                                    admin)
        assert status == 200
        validate(binding)
        assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                      "name": "tracardi-autoscaler"}
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "tracardi-autoscaler",
                                        "namespace": NS}]
        # both made by an operator's `kubectl apply` of deploy/base, which set all they hold
        for made, fields in ((served_role, {"f:rules": {}}),
                             (binding, {"f:roleRef": {"f:apiGroup": {}, "f:kind": {},
                                                      "f:name": {}}, "f:subjects": {}})):
            [entry] = made["metadata"]["managedFields"]
            assert (entry["manager"], entry["operation"], entry["fieldsV1"]) == (
                "kubectl-client-side-apply", "Update", fields)
        status, accounts = await raw(served, "GET", f"/api/v1/namespaces/{NS}/serviceaccounts",
                                     admin)
        assert status == 200
        validate(accounts)
        assert [a["metadata"]["name"] for a in accounts["items"]] == [
            "default", "tracardi-autoscaler"]

        # What is served is what authorizes: a Role changed meanwhile is served as changed.
        grants[DAEMON] = Grant.from_role(
            {"metadata": {"name": "tracardi-autoscaler"},
             "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]},
            namespace=NS, service_account="tracardi-autoscaler")
        _, changed = await raw(served, "GET", f"{rbac}/roles/tracardi-autoscaler", admin)
        assert changed["rules"] == [{"verbs": ["get"], "apiGroups": [""],
                                     "resources": ["pods"]}]
        status, _ = await raw(served, "GET", f"{rbac}/roles/nope", admin)
        assert status == 404
        # The account may not read Roles (its Role grants none); nobody may write them here.
        status, body = await raw(served, "GET", f"{rbac}/roles")
        assert status == 403 and 'cannot list resource "roles" in API group ' \
            '"rbac.authorization.k8s.io"' in body["message"]
        status, _ = await raw(served, "POST", f"{rbac}/roles", admin, body=role)
        assert status == 405

        kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", served.url)
        rows = [line.split() for line in (await kubectl_out(
            kubeconfig, "get", "rolebindings", "-o", "wide", "-n", NS)).splitlines()]
        assert rows[1] == ["tracardi-autoscaler", "Role/tracardi-autoscaler", rows[1][2],
                           f"{NS}/tracardi-autoscaler"]
        described = await kubectl_out(kubeconfig, "describe", "role", "tracardi-autoscaler",
                                      "-n", NS)
        assert ["pods", "[]", "[]", "[get]"] in [line.split() for line in described.splitlines()]
        sa_rows = (await kubectl_out(kubeconfig, "get", "sa", "-n", NS)).splitlines()
        assert [r.split()[:2] for r in sa_rows] == [["NAME", "SECRETS"], ["default", "0"],
                                                   ["tracardi-autoscaler", "0"]]
    finally:
        await served.stop()


async def test_kubectl_cluster_info_and_the_apiservers_service(server: ServedApp,
                                                               tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url)
    info = await kubectl_out(kubeconfig, "cluster-info")
    assert f"Kubernetes control plane is running at {server.url}" in info
    rows = [line.split() for line in
            (await kubectl_out(kubeconfig, "get", "svc", "-A")).splitlines()]
    assert rows == [["NAMESPACE", "NAME", "TYPE", "CLUSTER-IP", "EXTERNAL-IP", "PORT(S)", "AGE"],
                    ["default", "kubernetes", "ClusterIP", "10.96.0.1", "<none>", "443/TCP",
                     rows[1][-1]]]
    status, svc = await raw(server, "GET", "/api/v1/namespaces/default/services/kubernetes",
                            {"Authorization": ""})
    assert status == 200
    validate(svc)
    status, _ = await raw(server, "GET", f"/api/v1/namespaces/{NS}/services/kubernetes",
                          {"Authorization": ""})
    assert status == 404
