"""The informer of a watched namespace: while the pod and Deployment watches are in sync,
`get_workload` answers from them, and the Deployment watch keeps the cache current.

The simulated API runs behind a middleware that counts the Deployment GETs and the lists of
HPAs, so each test asserts what reached the apiserver, not only what came back.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest
from aiohttp import web
from kube_fixtures import NS, TOKEN, RealClock
from kubernetes_asyncio.client import ApiClient

from autoscaler.kube import cluster as cluster_module
from autoscaler.kube.cluster import DEPLOYMENT_CACHE_SECONDS, KubeCluster
from autoscaler.kube.connect import connect
from autoscaler.kube.errors import KubeError
from autoscaler.model import WorkloadStatus
from autoscaler.ports import PodEvent
from autoscaler.sim.kubeapi import ServedApp, create_app, serve, write_kubeconfig
from autoscaler.sim.kubestate import KubeState

API = "be-fa-public"
DEPLOYMENT_PATH = f"/apis/apps/v1/namespaces/{NS}/deployments/{API}"
HPA_LIST_PATH = f"/apis/autoscaling/v2/namespaces/{NS}/horizontalpodautoscalers"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class JumpClock(RealClock):
    """The loop's time plus an offset the test moves forward (the cache's age)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return super().now() + self.offset


@dataclass
class Watched:
    state: KubeState
    cluster: KubeCluster
    clock: JumpClock
    events: list[PodEvent]
    deployment_gets: list[str] = field(default_factory=list)
    hpa_lists: list[str] = field(default_factory=list)


@pytest.fixture
async def watched(tmp_path: Path) -> AsyncIterator[Watched]:
    state = KubeState(clock=time.monotonic, wall=time.time)
    state.add_deployment(NS, API, replicas=2, cpu_request_milli=250)
    gets: list[str] = []
    hpa_lists: list[str] = []

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET" and request.path == DEPLOYMENT_PATH:
            gets.append(request.path)
        if request.method == "GET" and request.path == HPA_LIST_PATH:
            hpa_lists.append(request.path)
        return await handler(request)

    server = await serve(create_app(state, token=TOKEN, middlewares=[count]))
    client: ApiClient = await connect(write_kubeconfig(tmp_path / "kubeconfig", server.url,
                                                       TOKEN))
    clock = JumpClock()
    cluster = KubeCluster(client, clock=clock, identity="test-daemon", request_timeout=5.0,
                          watch_timeout_seconds=1, backoff_seconds=(0.05, 0.2))
    watch = cast(AsyncGenerator[PodEvent, None], cluster.watch_pods(NS))
    events: list[PodEvent] = []
    listed, watching = asyncio.Event(), asyncio.Event()
    announced = {PodEvent("ADDED", NS, API), PodEvent("ADDED", NS, API, "deployments")}

    async def pump() -> None:  # the daemon consumes the watch the same way, all the time
        async for event in watch:
            events.append(event)
            if announced <= set(events):
                listed.set()
            if event == PodEvent("MODIFIED", NS, API, "deployments"):
                watching.set()

    pumping = asyncio.create_task(pump())
    try:
        async with asyncio.timeout(10):
            await listed.wait()  # both lists announced the workload
            # A change only the Deployment watch reports: once it has, that watch is open.
            state.set_paused(NS, API, False)
            await watching.wait()
        yield Watched(state, cluster, clock, events, gets, hpa_lists)
    finally:
        await _close(pumping, watch, cluster, client, server)


async def _close(pumping: asyncio.Task[None], watch: AsyncGenerator[PodEvent, None],
                 cluster: KubeCluster, client: ApiClient, server: ServedApp) -> None:
    """Stop consuming the watch, then close it, the cluster, its client and the server."""
    pumping.cancel()
    await asyncio.gather(pumping, return_exceptions=True)
    await watch.aclose()
    await cluster.close()
    await client.close()
    await server.stop()


async def _until(w: Watched, done: Callable[[WorkloadStatus], bool]) -> WorkloadStatus:
    """`get_workload` until `done` holds for its answer."""
    async with asyncio.timeout(10):
        while True:
            status = await w.cluster.get_workload(NS, API)
            if done(status):
                return status
            await asyncio.sleep(0.05)


async def _from_cache(w: Watched) -> WorkloadStatus:
    """The answer once `get_workload` no longer reads the Deployment (both watches in sync)."""
    before = len(w.deployment_gets)
    seen = [before]

    def cached(_: WorkloadStatus) -> bool:
        seen.append(len(w.deployment_gets))
        return seen[-1] == seen[-2]

    return await _until(w, cached)


async def test_synced_watches_answer_without_reads_and_do_not_age(watched: Watched) -> None:
    w = watched
    status = await _from_cache(w)
    assert (status.replicas, len(status.pods)) == (2, 2)
    gets = len(w.deployment_gets)
    w.clock.offset += DEPLOYMENT_CACHE_SECONDS * 10  # far past the unwatched cache's limit
    again = await w.cluster.get_workload(NS, API)
    assert again.resource_version == status.resource_version
    assert len(w.deployment_gets) == gets


async def test_listed_pods_read_as_a_direct_read_reads_them(watched: Watched,
                                                            tmp_path: Path) -> None:
    """The informer's list is read as JSON; a cluster without a watch reads the same pods
    through the client's models: every field of every pod agrees."""
    w = watched
    cached = await _from_cache(w)
    server = await serve(create_app(w.state, token=TOKEN))
    client = await connect(write_kubeconfig(tmp_path / "direct", server.url, TOKEN))
    direct = KubeCluster(client, clock=RealClock(), identity="direct", request_timeout=5.0)
    try:
        read = await direct.get_workload(NS, API)
    finally:
        await direct.close()
        await client.close()
        await server.stop()
    assert cached.pods == read.pods and len(read.pods) == 2
    assert cached.generation == read.generation == w.state.deployment(NS, API).generation > 0
    assert all(p.phase == "Pending" and p.waiting_reason == "ContainerCreating"
               and p.started_at > 0 and p.cpu_request_milli == 250 for p in read.pods)


async def test_deployment_watch_brings_changes_no_pod_shows(watched: Watched) -> None:
    w = watched
    await _from_cache(w)
    gets = len(w.deployment_gets)
    w.state.set_paused(NS, API, True)  # a Deployment change without any pod change
    status = await _until(w, lambda s: s.paused)
    assert status.resource_version == str(w.state.deployment(NS, API).resource_version)
    assert len(w.deployment_gets) == gets


async def test_the_watch_brings_who_set_the_count(watched: Watched) -> None:
    w = watched
    assert (await _from_cache(w)).replicas_set_by == "helm"
    gets = len(w.deployment_gets)
    w.state.set_replicas(NS, API, 3)  # as `kubectl scale` records it
    status = await _until(w, lambda s: s.replicas == 3)
    assert status.replicas_set_by == "kubectl"
    assert len(w.deployment_gets) == gets  # from the watch, not a read


async def test_conflict_checks_asked_together_share_one_list(watched: Watched) -> None:
    w = watched
    w.state.add_hpa(NS, "api-hpa", target=API)
    w.state.keda_installed = True
    w.state.faults.inject("list", "scaledobjects", code=500, message="etcdserver: timeout")
    ours, other = await asyncio.gather(w.cluster.conflicting_autoscaler(NS, API),
                                       w.cluster.conflicting_autoscaler(NS, "other"),
                                       return_exceptions=True)
    assert len(w.hpa_lists) == 1
    # Its own HPA conflicts whatever KEDA would say; without one, unknown is not "none".
    assert ours == "HorizontalPodAutoscaler/api-hpa"
    assert isinstance(other, KubeError)
    assert (other.code, other.message) == (500, "etcdserver: timeout")
    # A list that was not complete is not kept: the next check lists again, and that one is.
    assert await w.cluster.conflicting_autoscaler(NS, "other") is None
    assert await w.cluster.conflicting_autoscaler(NS, "other") is None
    assert len(w.hpa_lists) == 2


async def test_a_deleted_deployment_is_forgotten_and_read_again(watched: Watched) -> None:
    w = watched
    await _from_cache(w)
    w.state.delete_deployment(NS, API)
    async with asyncio.timeout(10):
        while True:
            try:
                await w.cluster.get_workload(NS, API)
            except KubeError as err:
                assert err.code == 404
                break
            await asyncio.sleep(0.05)


@pytest.mark.parametrize("code", [410, 500])
async def test_deployment_watch_resumes_after_gone_and_errors(watched: Watched,
                                                              code: int) -> None:
    w = watched
    await _from_cache(w)
    # The server ends each watch after 1 s; the next watch of Deployments fails once: 410
    # re-lists, 500 backs off and resumes.
    w.state.faults.inject("watch", "deployments", code=code, message="injected")
    for _ in range(200):
        if not w.state.faults.pending():
            break
        await asyncio.sleep(0.05)
    assert not w.state.faults.pending(), "the Deployment watch was never opened again"
    await _from_cache(w)
    gets = len(w.deployment_gets)
    w.state.set_paused(NS, API, True)
    assert (await _until(w, lambda s: s.paused)).paused
    assert len(w.deployment_gets) == gets


async def _drain(watch: AsyncGenerator[PodEvent, None]) -> None:
    async for _ in watch:
        pass


async def test_pods_are_listed_in_pages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pod and Deployment lists come in pages (`limit`, then `continue`): a body holds a
    page of pods, each with its managedFields, not all of a namespace's at once. 6 pods make
    3 pages, 3 Deployments 2."""
    monkeypatch.setattr(cluster_module, "LIST_PAGE", 2)
    state = KubeState(clock=time.monotonic, wall=time.time)
    state.add_deployment(NS, API, replicas=5, cpu_request_milli=250)
    state.add_deployment(NS, "wk-pl-background", replicas=0, cpu_request_milli=250)
    state.add_deployment(NS, "wk-pl-collector", replicas=1, cpu_request_milli=250)
    lists: list[tuple[str, str, str]] = []

    @web.middleware
    async def count(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.method == "GET" and "watch" not in request.query:
            lists.append((request.path.rsplit("/", 1)[-1], request.query.get("limit", ""),
                          request.query.get("continue", "")))
        return await handler(request)

    server = await serve(create_app(state, token=TOKEN, middlewares=[count]))
    client = await connect(write_kubeconfig(tmp_path / "kubeconfig", server.url, TOKEN))
    cluster = KubeCluster(client, clock=RealClock(), identity="test-daemon",
                          request_timeout=5.0, watch_timeout_seconds=1)
    watch = cast(AsyncGenerator[PodEvent, None], cluster.watch_pods(NS))
    pumping = asyncio.create_task(_drain(watch))
    try:
        async with asyncio.timeout(10):
            while True:  # until it answers from the watches
                status = await cluster.get_workload(NS, API)
                if cluster.watches_synced(NS):
                    break
                await asyncio.sleep(0.05)
    finally:
        await _close(pumping, watch, cluster, client, server)
    assert (status.replicas, len(status.pods)) == (5, 5)
    # (a read of one workload before the watches are in sync lists its own pods, unpaged)
    pages = [(what, bool(token)) for what, limit, token in lists if limit]
    assert {limit for _, limit, _ in lists if limit} == {"2"}
    assert [token for what, token in pages if what == "pods"][:3] == [False, True, True]
    assert [token for what, token in pages if what == "deployments"][:2] == [False, True]


async def test_a_list_that_never_ends_is_malformed(tmp_path: Path) -> None:
    """A server that answers a page with the token it was asked with would be listed from
    forever: the list fails instead, and the watch lists again after its backoff."""
    state = KubeState(clock=time.monotonic, wall=time.time)
    state.add_deployment(NS, API, replicas=2, cpu_request_milli=250)
    pages: list[str] = []
    relisted = asyncio.Event()

    @web.middleware
    async def loop(request: web.Request, handler: Handler) -> web.StreamResponse:
        response = await handler(request)
        if request.path.endswith("/pods") and "limit" in request.query:
            pages.append(request.query.get("continue", ""))
            if pages.count("") >= 3:  # three lists, each given up after its second page
                relisted.set()
            body = json.loads(cast(bytes, cast(web.Response, response).body))
            body["metadata"]["continue"] = "again"
            return web.json_response(body)
        return response

    server = await serve(create_app(state, token=TOKEN, middlewares=[loop]))
    client = await connect(write_kubeconfig(tmp_path / "kubeconfig", server.url, TOKEN))
    cluster = KubeCluster(client, clock=RealClock(), identity="test-daemon",
                          request_timeout=5.0, watch_timeout_seconds=1,
                          backoff_seconds=(0.05, 0.1))
    watch = cast(AsyncGenerator[PodEvent, None], cluster.watch_pods(NS))
    pumping = asyncio.create_task(_drain(watch))
    try:
        async with asyncio.timeout(10):
            await relisted.wait()
    finally:
        await _close(pumping, watch, cluster, client, server)
    assert pages.count("again") <= pages.count("") and not cluster.watches_synced(NS)
