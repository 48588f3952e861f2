"""Chunked lists from the simulated Kubernetes API: `limit` and `continue`, as kubectl and
kubernetes_asyncio use them, in the apiserver's key order and from a consistent snapshot."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio.client import CoreV1Api
from wire_k8s import API, NS, WORKER, Kubectl, Served, kubectl_binary, validate

from autoscaler.kube.connect import connect
from autoscaler.sim import kubeapi, paging

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


def _versions(listed: Any) -> dict[str, str]:
    return {i["metadata"]["name"]: i["metadata"]["resourceVersion"] for i in listed["items"]}


async def test_an_exact_list_reads_the_pods_as_they_were_at_that_version(served: Served) -> None:
    pods = f"/api/v1/namespaces/{NS}/pods"
    _, before = await get(served, pods)
    rv = before["metadata"]["resourceVersion"]
    doomed = sorted(p.name for p in served.state.pods(NS))[-1]
    served.state.delete_pod(NS, doomed)  # gone, and replaced by a new pod
    served.state.mark_ready(NS, sorted(p.name for p in served.state.pods(NS))[0], False)
    served.state.set_replicas(NS, API, len(served.state.workload_pods(NS, API)) + 2)
    _, now = await get(served, pods)
    assert _versions(now) != _versions(before)

    status, exact = await get(served, pods, resourceVersion=rv, resourceVersionMatch="Exact")
    assert status == 200
    validate(exact)
    assert exact["metadata"]["resourceVersion"] == rv
    assert exact["items"] == before["items"]
    # The legacy exact read: a version with a limit and no match; its chunks stay at it.
    status, first = await get(served, pods, resourceVersion=rv, limit="2")
    seen, listed = names(first), first
    while "continue" in listed["metadata"]:
        status, listed = await get(served, pods, limit="2",
                                   **{"continue": listed["metadata"]["continue"]})
        assert listed["metadata"]["resourceVersion"] == rv
        seen += names(listed)
    assert seen == names(before)
    # Not older than that version: the newest state.
    for query in ({"resourceVersion": rv}, {"resourceVersion": rv,
                                              "resourceVersionMatch": "NotOlderThan"}):
        status, newest = await get(served, pods, **query)
        assert status == 200 and _versions(newest) == _versions(now), query


async def test_an_exact_list_the_history_cannot_rebuild_is_expired(served: Served) -> None:
    pods = f"/api/v1/namespaces/{NS}/pods"
    _, before = await get(served, pods)
    rv = before["metadata"]["resourceVersion"]
    served.state.compact()  # the history before now is gone; nothing has changed yet
    status, same = await get(served, pods, resourceVersion=rv, resourceVersionMatch="Exact")
    assert status == 200 and same["items"] == before["items"]
    served.state.delete_pod(NS, names(before)[0])  # changed after rv, from a version before
    status, body = await get(served, pods, resourceVersion=rv, resourceVersionMatch="Exact")
    assert (status, body["reason"], body["message"]) == (
        410, "Expired", "The resourceVersion for the provided list is too old.")
    validate(body)
    older = str(int(rv) - 1)  # compacted away
    status, body = await get(served, f"/api/v1/namespaces/{NS}/events",
                             resourceVersion=older, resourceVersionMatch="Exact")
    assert status == 410


async def test_a_list_at_a_version_not_reached_waits_then_times_out(
        served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kubeapi, "TOO_LARGE_WAIT_SECONDS", 0.2)
    future = str(served.state.resource_version + 1000)
    status, body = await get(served, f"/api/v1/namespaces/{NS}/pods", resourceVersion=future)
    assert status == 504
    validate(body)
    assert body["message"] == (f"Timeout: Too large resource version: {future}, current: "
                               f"{served.state.resource_version}")
    assert body["details"] == {"causes": [{"reason": "ResourceVersionTooLarge",
                                           "message": "Too large resource version"}],
                               "retryAfterSeconds": 1}
    # A version reached while the list waits is served.
    monkeypatch.setattr(kubeapi, "TOO_LARGE_WAIT_SECONDS", 5.0)
    soon = str(served.state.resource_version + 1)
    waiting = asyncio.create_task(get(served, f"/api/v1/namespaces/{NS}/pods",
                                      resourceVersion=soon))
    await asyncio.sleep(0.2)
    assert not waiting.done()
    served.state.set_replicas(NS, API, len(served.state.workload_pods(NS, API)) + 1)
    status, listed = await waiting
    assert status == 200 and int(listed["metadata"]["resourceVersion"]) >= int(soon)


@pytest.mark.parametrize(("query", "status", "message"), [
    pytest.param({"resourceVersionMatch": "Exact"}, 422,
                 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
                 "resourceVersionMatch is forbidden unless resourceVersion is provided",
                 id="match-without-version"),
    pytest.param({"resourceVersionMatch": "Exact", "resourceVersion": "0"}, 422,
                 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Forbidden: '
                 'resourceVersionMatch "exact" is forbidden for resourceVersion "0"',
                 id="exact-zero"),
    pytest.param({"resourceVersionMatch": "Newest", "resourceVersion": "1"}, 422,
                 'ListOptions.meta.k8s.io "" is invalid: resourceVersionMatch: Unsupported '
                 'value: "Newest": supported values: "Exact", "NotOlderThan", ""',
                 id="unsupported-match"),
    pytest.param({"resourceVersionMatch": "Exact", "continue": "x"}, 422,
                 'ListOptions.meta.k8s.io "" is invalid: [resourceVersionMatch: Forbidden: '
                 "resourceVersionMatch is forbidden unless resourceVersion is provided, "
                 "resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden when "
                 "continue is provided]", id="two-problems"),
    pytest.param({"resourceVersion": "5", "continue": "x"}, 400,
                 "specifying resource version is not allowed when using continue",
                 id="version-and-continue"),
    pytest.param({"resourceVersion": "five"}, 400,
                 'invalid resourceVersion "five": a list reads at a non-negative integer, as '
                 "this server hands them out", id="not-a-number"),
])
async def test_bad_list_versions_are_refused_as_the_apiserver_does(
        served: Served, query: dict[str, str], status: int, message: str) -> None:
    got, body = await get(served, f"/api/v1/namespaces/{NS}/pods", **query)
    assert (got, body["message"]) == (status, message)
    validate(body)
    if status == 422:
        assert {c["field"] for c in body["details"]["causes"]} == {"resourceVersionMatch"}
