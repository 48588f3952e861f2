"""Reads that can share a request do: sources of one topic make one call, and the queries of one
Prometheus are asked together, each still judged on its own series.

Served by the simulated Pulsar admin API and Prometheus over loopback HTTP, with every request
recorded as (method, path); the session pool is conftest.py's fixture.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from autoscaler.config import PrometheusSource as PrometheusSettings
from autoscaler.config import PulsarSource
from autoscaler.model import Signal
from autoscaler.sim.prometheus_api import PrometheusState
from autoscaler.sim.prometheus_api import create_app as prometheus_app
from autoscaler.sim.pulsar_admin import PulsarState
from autoscaler.sim.pulsar_admin import create_app as pulsar_app
from autoscaler.sources.http import SessionPool
from autoscaler.sources.prometheus import PrometheusBatches, PrometheusSource
from autoscaler.sources.pulsar import PulsarBacklogSource

TOPIC = "persistent://tracardi/workers/events"
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Served:
    url: str
    seen: list[tuple[str, str]] = field(default_factory=list)

    def take(self) -> list[tuple[str, str]]:
        seen, self.seen = self.seen, []
        return seen


async def _serve(app: web.Application) -> AsyncIterator[Served]:
    served = Served("")

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        served.seen.append((request.method, request.path))
        return await handler(request)

    app.middlewares.insert(0, record)  # before the fault middleware: faulted requests count
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    served.url = str(server.make_url("")).rstrip("/")
    yield served
    await server.close()


# --------------------------------------------------------------------------- one topic

@pytest.fixture
def pulsar() -> PulsarState:
    state = PulsarState()
    state.add_topic(TOPIC, partitions=3, subscriptions=("workers", "audit"))
    state.set_subscription(TOPIC, "workers", backlog=900, msg_rate_out=0.0)
    state.set_subscription(TOPIC, "audit", backlog=12, msg_rate_out=0.0)
    return state


@pytest.fixture
async def pulsar_server(pulsar: PulsarState) -> AsyncIterator[Served]:
    async for served in _serve(pulsar_app(pulsar)):
        yield served


def pulsar_source(name: str, url: str, subscription: str, pool: SessionPool,
                  ) -> PulsarBacklogSource:
    cfg = PulsarSource(kind="pulsar", admin_url=url, tenant="tracardi", namespace="workers",
                       topic="events", subscription=subscription, partitioned=True)
    return PulsarBacklogSource(name, cfg, now=lambda: 1.0, session_pool=pool)


def value(signals: list[Signal] | tuple[Signal, ...], name: str) -> float | None:
    [found] = [s for s in signals if s.name == name]
    return found.value


async def test_sources_of_one_topic_read_together_make_one_call(
        pulsar_server: Served, pool: SessionPool) -> None:
    workers = pulsar_source("workers", pulsar_server.url, "workers", pool)
    audit = pulsar_source("audit", pulsar_server.url, "audit", pool)

    read_w, read_a = await asyncio.gather(workers.read(), audit.read())

    assert pulsar_server.take() == [
        ("GET", "/admin/v2/persistent/tracardi/workers/events/partitioned-stats")]
    assert (value(read_w, "workers.backlog"), value(read_a, "audit.backlog")) == (900, 12)


async def test_a_read_that_joined_one_that_is_cancelled_asks_again(
        pulsar_server: Served, pool: SessionPool, pulsar: PulsarState) -> None:
    workers = pulsar_source("workers", pulsar_server.url, "workers", pool)
    audit = pulsar_source("audit", pulsar_server.url, "audit", pool)
    pulsar.faults.next(delay=0.5, path="/admin/v2/persistent")
    first = asyncio.create_task(workers.read())
    await asyncio.sleep(0.1)
    joined = asyncio.create_task(audit.read())
    await asyncio.sleep(0.1)

    first.cancel()
    read_a = await joined

    assert first.cancelled()
    assert value(read_a, "audit.backlog") == 12
    assert len(pulsar_server.take()) == 2


async def test_reads_one_after_the_other_each_make_their_call(
        pulsar_server: Served, pool: SessionPool, pulsar: PulsarState) -> None:
    source = pulsar_source("workers", pulsar_server.url, "workers", pool)

    first = await source.read()
    pulsar.set_subscription(TOPIC, "workers", backlog=40, msg_rate_out=0.0)
    second = await source.read()

    assert len(pulsar_server.take()) == 2
    assert (value(first, "workers.backlog"), value(second, "workers.backlog")) == (900, 40)


# --------------------------------------------------------------------------- one Prometheus

QUERIES = {
    "track": 'sum(rate(nginx_ingress_controller_requests{ingress="track"}[1m]))',
    "gui": 'sum(rate(nginx_ingress_controller_requests{ingress="gui"}[1m]))',
    "bridge": 'sum(rate(nginx_ingress_controller_requests{ingress="bridge"}[1m]))  # per s\n',
}


@pytest.fixture
def prometheus() -> PrometheusState:
    state = PrometheusState()
    for i, query in enumerate(QUERIES.values()):
        state.set(query, 10.0 * (i + 1))
    return state


@pytest.fixture
async def prometheus_server(prometheus: PrometheusState) -> AsyncIterator[Served]:
    async for served in _serve(prometheus_app(prometheus)):
        yield served


def prometheus_sources(url: str, pool: SessionPool,
                       queries: dict[str, str] | None = None) -> list[PrometheusSource]:
    batches = PrometheusBatches(pool)
    return [PrometheusSource(name, PrometheusSettings(kind="prometheus", url=url, query=query),
                             now=lambda: 1.0, session_pool=pool, batches=batches)
            for name, query in (queries or QUERIES).items()]


async def read_all(sources: list[PrometheusSource]) -> dict[str, Signal]:
    rounds = await asyncio.gather(*(s.read() for s in sources))
    return {signal.name: signal for signals in rounds for signal in signals}


def methods(served: Served) -> list[str]:
    return sorted(method for method, _ in served.take())


async def test_queries_join_one_request_once_each_has_read_alone(
        prometheus_server: Served, pool: SessionPool) -> None:
    sources = prometheus_sources(prometheus_server.url, pool)

    first = await read_all(sources)
    assert methods(prometheus_server) == ["GET", "GET", "GET"]
    second = await read_all(sources)
    assert methods(prometheus_server) == ["POST"]

    expected = {"track.value": 10.0, "gui.value": 20.0, "bridge.value": 30.0}
    for signals in (first, second):
        assert {name: (s.value, s.error) for name, s in signals.items()} == {
            name: (v, None) for name, v in expected.items()}


async def test_each_member_is_judged_on_its_own_series(
        prometheus_server: Served, pool: SessionPool, prometheus: PrometheusState) -> None:
    sources = prometheus_sources(prometheus_server.url, pool)
    await read_all(sources)
    prometheus_server.take()
    prometheus.set(QUERIES["gui"], None)  # no series: an empty result

    signals = await read_all(sources)

    assert methods(prometheus_server) == ["POST"]
    assert (signals["gui.value"].value, signals["gui.value"].error) == (
        None, "prometheus: empty result")
    assert (signals["track.value"].value, signals["bridge.value"].value) == (10.0, 30.0)


async def test_a_refused_batch_is_read_alone_and_the_failing_query_leaves_it(
        prometheus_server: Served, pool: SessionPool, prometheus: PrometheusState) -> None:
    sources = prometheus_sources(prometheus_server.url, pool)
    await read_all(sources)
    prometheus_server.take()
    del prometheus.queries[QUERIES["bridge"]]  # the simulator now refuses it, and any batch of it

    refused = await read_all(sources)
    assert methods(prometheus_server) == ["GET", "GET", "GET", "POST"]
    after = await read_all(sources)
    assert methods(prometheus_server) == ["GET", "POST"]

    for signals in (refused, after):
        assert (signals["track.value"].value, signals["gui.value"].value) == (10.0, 20.0)
        bridge = signals["bridge.value"]
        assert bridge.value is None
        assert bridge.error is not None and bridge.error.startswith("prometheus 400 bad_data")


async def test_a_batch_refused_while_every_query_reads_alone_turns_batching_off(
        prometheus_server: Served, pool: SessionPool, prometheus: PrometheusState) -> None:
    sources = prometheus_sources(prometheus_server.url, pool)
    await read_all(sources)
    prometheus_server.take()
    prometheus.faults.next(status=422, path="/api/v1/query",
                           body='{"status":"error","errorType":"execution",'
                                '"error":"query processing would load too many samples"}')

    refused = await read_all(sources)
    assert methods(prometheus_server) == ["GET", "GET", "GET", "POST"]
    after = await read_all(sources)
    assert methods(prometheus_server) == ["GET", "GET", "GET"]

    for signals in (refused, after):
        assert {s.value for s in signals.values()} == {10.0, 20.0, 30.0}


async def test_an_unreachable_prometheus_fails_every_member_with_one_request(
        prometheus_server: Served, pool: SessionPool, prometheus: PrometheusState) -> None:
    sources = prometheus_sources(prometheus_server.url, pool)
    await read_all(sources)
    prometheus_server.take()
    prometheus.faults.next(status=502, path="/api/v1/query", body="<html>Bad Gateway</html>")

    signals = await read_all(sources)

    assert methods(prometheus_server) == ["POST"]
    assert {(s.value, s.error) for s in signals.values()} == {(None, "HTTP 502")}


async def test_a_lone_source_reads_by_get(prometheus_server: Served, pool: SessionPool) -> None:
    [source] = prometheus_sources(prometheus_server.url, pool, {"track": QUERIES["track"]})

    for _ in range(3):
        [signal] = await source.read()
        assert signal.value == 10.0

    assert methods(prometheus_server) == ["GET", "GET", "GET"]
