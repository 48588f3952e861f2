"""RBAC in the simulated Kubernetes API: the daemon's ServiceAccount bound to the shipped Role,
as kubectl sees it through `--as` (`auth can-i`, 403s worded as the apiserver's) and as a client
with the account's token does, and the admin unrestricted."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

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
