"""The official Elasticsearch client (8.x, the major of the 8.4 node the simulator plays) works
against the simulated Elasticsearch unchanged; the 9.x client's compatibility header is refused
there as a real 8.x node refuses it, which is why the probe speaks plain HTTP."""

from __future__ import annotations

import aiohttp
import pytest
from elasticsearch import ApiError, AsyncElasticsearch

from autoscaler.sim.elasticsearch_api import ElasticsearchState
from autoscaler.sim.kubeapi import ServedApp


async def test_the_official_client_reads_the_node_and_its_health(
        elasticsearch: tuple[ElasticsearchState, ServedApp]) -> None:
    state, server = elasticsearch
    async with AsyncElasticsearch(server.url, retry_on_timeout=False, max_retries=0) as es:
        info = await es.info()
        assert info["version"]["number"] == "8.4.2"
        assert info.meta.headers["content-type"] == (
            "application/vnd.elasticsearch+json;compatible-with=8")
        health = await es.cluster.health()
        assert (health["status"], health["timed_out"]) == ("green", False)
        state.set_status("yellow")
        assert (await es.cluster.health())["status"] == "yellow"
        assert (await es.cluster.health(index="tracardi-profiles"))["status"] == "yellow"
        state.unavailable = True
        with pytest.raises(ApiError) as failed:
            await es.cluster.health()
        assert failed.value.meta.status == 503
        assert failed.value.error == "master_not_discovered_exception"
        # the node itself still answers, as one that has not joined its cluster
        assert (await es.info())["cluster_uuid"] == "_na_"


@pytest.mark.parametrize(("major", "status"), [(9, 400), (6, 400), (8, 200), (7, 200)])
async def test_the_compatibility_header_is_read_as_an_8x_node_reads_it(
        elasticsearch: tuple[ElasticsearchState, ServedApp], major: int, status: int) -> None:
    _, server = elasticsearch
    accept = f"application/vnd.elasticsearch+json; compatible-with={major}"
    async with aiohttp.ClientSession() as http, http.get(
            f"{server.url}/_cluster/health", headers={"Accept": accept}) as response:
        body = await response.json(content_type=None)
    assert response.status == status
    if status == 400:
        assert body["error"]["type"] == "media_type_header_exception"
        assert body["error"]["caused_by"]["reason"] == (
            f"Accept version must be either version 8 or 7, but found {major}. Accept={accept}")
    else:
        assert body["status"] == "green"
        assert response.headers["Content-Type"] == (
            f"application/vnd.elasticsearch+json;compatible-with={major}")


@pytest.mark.parametrize(("method", "path", "status", "error"), [
    pytest.param("GET", "/_cluster/health?foo=bar&level=cluster", 400,
                 {"type": "illegal_argument_exception",
                  "reason": "request [/_cluster/health] contains unrecognized parameter: [foo]"},
                 id="unknown-parameter"),
    pytest.param("POST", "/_cluster/health", 405,
                 "Incorrect HTTP method for uri [/_cluster/health] and method [POST], allowed: "
                 "[GET]", id="wrong-method"),
    pytest.param("GET", "/_nodes/stats?level=node", 400,
                 "no handler found for uri [/_nodes/stats?level=node] and method [GET]",
                 id="an-api-it-does-not-serve"),
    pytest.param("GET", "/tracardi-events", 404,
                 {"type": "index_not_found_exception", "reason": "no such index "
                  "[tracardi-events]", "resource.type": "index_or_alias",
                  "resource.id": "tracardi-events", "index_uuid": "_na_",
                  "index": "tracardi-events"}, id="an-index-it-has-not"),
])
async def test_what_the_node_does_not_serve_is_its_own_error(
        elasticsearch: tuple[ElasticsearchState, ServedApp], method: str, path: str, status: int,
        error: object) -> None:
    _, server = elasticsearch
    async with aiohttp.ClientSession() as http, http.request(
            method, f"{server.url}{path}") as response:
        body = await response.json()
    assert (response.status, response.headers["X-Elastic-Product"]) == (status, "Elasticsearch")
    if isinstance(error, str):  # the REST layer's own, a string
        assert body == {"error": error, "status": status}
    else:
        assert body == {"error": {"root_cause": [error], **error}, "status": status}
    async with AsyncElasticsearch(server.url, max_retries=0) as es:  # the client reads it
        assert (await es.cluster.health(level="cluster"))["status"] == "green"
