"""Chunked lists from the simulated Kubernetes API: `limit` and `continue`, as kubectl and
kubernetes_asyncio use them, in the apiserver's key order and from a consistent snapshot."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import CoreV1Api
from wire_k8s import API, NS, WORKER, Kubectl, Served, kubectl_binary, validate

from autoscaler.kube.connect import connect
from autoscaler.sim import paging

pytestmark = pytest.mark.real


async def get(served: Served, path: str, **query: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, \
            session.get(served.server.url + path, params=query) as response:
        return response.status, await response.json()


def names(listed: Any) -> list[str]:
    return [item["metadata"]["name"] for item in listed["items"]]


async def test_a_list_in_chunks_is_the_whole_list_in_key_order(served: Served) -> None:
    every = sorted(p.name for p in served.state.pods(NS))
    status, first = await get(served, f"/api/v1/namespaces/{NS}/pods", limit="2")
    assert status == 200
    validate(first)
    assert names(first) == every[:2]
    assert first["metadata"]["remainingItemCount"] == len(every) - 2
    seen, listed = names(first), first
    while "continue" in listed["metadata"]:
        status, listed = await get(served, f"/api/v1/namespaces/{NS}/pods", limit="2",
                                   **{"continue": listed["metadata"]["continue"]})
        assert status == 200
        seen += names(listed)
    assert seen == every
    assert "remainingItemCount" not in listed["metadata"]


async def test_later_chunks_come_from_the_first_chunks_snapshot(served: Served) -> None:
    status, first = await get(served, f"/api/v1/namespaces/{NS}/pods", limit="2")
    rv = first["metadata"]["resourceVersion"]
    last = sorted(p.name for p in served.state.pods(NS))[-1]
    served.state.delete_pod(NS, last)  # the controller replaces it: a new name, a new version

    status, rest = await get(served, f"/api/v1/namespaces/{NS}/pods",
                             **{"continue": first["metadata"]["continue"]})
    assert status == 200
    assert rest["metadata"]["resourceVersion"] == rv
    assert last in names(rest)
    assert len(names(first) + names(rest)) == len(served.state.pods(NS))


async def test_a_selector_leaves_out_the_remaining_count(served: Served) -> None:
    status, first = await get(served, f"/api/v1/namespaces/{NS}/pods", limit="1",
                              labelSelector=f"app.kubernetes.io/component={API}")
    assert status == 200 and len(first["items"]) == 1
    assert "continue" in first["metadata"] and "remainingItemCount" not in first["metadata"]
    status, rest = await get(served, f"/api/v1/namespaces/{NS}/pods",
                             labelSelector=f"app.kubernetes.io/component={API}",
                             **{"continue": first["metadata"]["continue"]})
    assert names(first) + names(rest) == sorted(p.name for p in
                                                served.state.workload_pods(NS, API))


async def test_a_compacted_token_is_expired_with_a_token_for_the_rest(served: Served) -> None:
    status, first = await get(served, f"/api/v1/namespaces/{NS}/pods", limit="2")
    last = sorted(p.name for p in served.state.pods(NS))[-1]
    served.state.delete_pod(NS, last)
    served.state.compact()

    status, expired = await get(served, f"/api/v1/namespaces/{NS}/pods",
                                **{"continue": first["metadata"]["continue"]})
    assert (status, expired["reason"], expired["code"]) == (410, "Expired", 410)
    validate(expired)
    assert expired["message"].startswith("The provided continue parameter is too old")
    status, rest = await get(served, f"/api/v1/namespaces/{NS}/pods",
                             **{"continue": expired["metadata"]["continue"]})
    assert status == 200
    now = sorted(p.name for p in served.state.pods(NS))
    assert names(rest) == [n for n in now if n > names(first)[-1]]
    assert last not in names(rest)
    # Any negative resourceVersion continues from the latest state, as the apiserver's store.
    _, start = paging.decode(expired["metadata"]["continue"])
    status, also = await get(served, f"/api/v1/namespaces/{NS}/pods",
                             **{"continue": paging.encode(-7, start)})
    assert (status, names(also)) == (200, names(rest))


@pytest.mark.parametrize(("query", "message"), [
    pytest.param({"continue": "not-a-token"}, "invalid continue token", id="token"),
    pytest.param({"limit": "two"}, 'invalid limit "two"', id="limit"),
    pytest.param({"limit": str(2**64)}, f'invalid limit "{2**64}"', id="limit-overflow"),
    pytest.param({"continue": paging.encode(5, "../../x")}, "invalid continue token",
                 id="token-out-of-prefix"),
    pytest.param({"continue": paging.encode(-1, "")}, "invalid continue token",
                 id="token-no-start"),
    pytest.param({"continue": paging.encode(0, "x")}, "invalid continue token",
                 id="token-rv-0"),
])
async def test_a_bad_token_or_limit_is_a_bad_request(served: Served, query: dict[str, str],
                                                     message: str) -> None:
    status, body = await get(served, f"/api/v1/namespaces/{NS}/pods", **query)
    assert (status, body["reason"]) == (400, "BadRequest")
    assert body["message"].startswith(message)


async def test_kubectl_reads_every_chunk(served: Served, tmp_path: Path) -> None:
    kubectl = Kubectl(kubectl_binary(), served.kubeconfig, tmp_path / "kube-cache")
    every = sorted(p.name for p in served.state.pods(NS))
    listed = await kubectl("get", "pods", "-n", NS, "--chunk-size=2", "-o", "name")
    assert listed.split() == [f"pod/{n}" for n in every]
    rows = (await kubectl("get", "pods", "-n", NS, "--chunk-size=2")).splitlines()
    assert rows[0].split()[0] == "NAME" and [r.split()[0] for r in rows[1:]] == every
    as_json = json.loads(await kubectl("get", "deploy", "-n", NS, "--chunk-size=1", "-o",
                                       "json"))
    assert names(as_json) == sorted([API, WORKER])


async def test_kubernetes_asyncio_pages_with_limit_and_continue(served: Served) -> None:
    client = await connect(served.kubeconfig)
    try:
        core = CoreV1Api(client)
        seen: list[str] = []
        token = None
        while True:
            page = await core.list_namespaced_pod(NS, limit=2, _continue=token)
            seen += [p.metadata.name for p in page.items]
            token = page.metadata._continue
            if not token:
                break
    finally:
        await client.close()
    assert seen == sorted(p.name for p in served.state.pods(NS))
