"""The Pulsar admin, Elasticsearch and Prometheus fakes answer a plain aiohttp client with
bodies shaped like the captured samples in ../shared/samples/."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from wire_k8s import sample_json

from autoscaler.sim import prometheus_api, pulsar_admin
from autoscaler.sim.elasticsearch_api import ElasticsearchState
from autoscaler.sim.kubeapi import ServedApp, serve
from autoscaler.sim.prometheus_api import PrometheusState
from autoscaler.sim.pulsar_admin import Consumer, PulsarState

TOPIC = "persistent://tracardi/system/functions"
SUB = "tracardi-function-subscription"


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _served(app: web.Application) -> ServedApp:
    return await serve(app)


async def _get(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, Any]:
    async with http.get(url, params=params) as response:
        text = await response.text()
        try:
            return response.status, json.loads(text)
        except ValueError:
            return response.status, text


def _keys(obj: Any) -> set[str]:
    return set(obj) if isinstance(obj, dict) else set()


# -- Pulsar ------------------------------------------------------------------------------------


@pytest.fixture
async def pulsar() -> AsyncIterator[tuple[PulsarState, str]]:
    state = PulsarState(wall=lambda: 1_700_000_000.0)
    state.add_topic(TOPIC, partitions=3, subscriptions=(SUB,))
    state.add_topic("persistent://tracardi/system/single")
    server = await serve(pulsar_admin.create_app(state))
    try:
        yield state, f"{server.url}/admin/v2"
    finally:
        await server.stop()


async def test_partitioned_stats_are_shaped_like_the_sample(
        pulsar: tuple[PulsarState, str], http: aiohttp.ClientSession) -> None:
    state, base = pulsar
    state.set_rate_in(TOPIC, 90.0)
    state.set_subscription(TOPIC, SUB, backlog=12_001, msg_rate_out=60.0, consumers=[
        Consumer.on_pod("wk-1", "10.244.0.7", 40.0), Consumer.on_pod("wk-2", "10.244.0.8", 20.0)])

    status, body = await _get(http, f"{base}/persistent/tracardi/system/functions/"
                                    "partitioned-stats", perPartition="true")

    sample = sample_json("pulsar/partitioned-stats.json")
    assert status == 200
    assert _keys(sample) <= _keys(body)
    sample_sub = next(iter(sample["subscriptions"].values()))
    assert _keys(sample_sub) <= _keys(body["subscriptions"][SUB])
    assert body["metadata"] == {"partitions": 3}
    assert body["msgRateIn"] == pytest.approx(90.0)
    sub = body["subscriptions"][SUB]
    assert (sub["msgBacklog"], sub["msgRateOut"]) == (12_001, 60.0)
    assert [(c["consumerName"], c["address"], c["msgRateOut"]) for c in sub["consumers"]] == [
        ("wk-1", "/10.244.0.7:40000", 40.0), ("wk-2", "/10.244.0.8:40000", 20.0)]
    partitions = body["partitions"]
    assert sorted(partitions) == [f"{TOPIC}-partition-{i}" for i in range(3)]
    assert [p["subscriptions"][SUB]["msgBacklog"] for p in partitions.values()] == [
        4001, 4000, 4000]
    stats_sample = sample_json("pulsar/topic-stats.json")
    for partition in partitions.values():
        assert _keys(stats_sample) <= _keys(partition)
        consumer = partition["subscriptions"][SUB]["consumers"][0]
        sample_consumer = stats_sample["subscriptions"]["sub-demo"]["consumers"][0]
        assert _keys(sample_consumer) <= _keys(consumer)


async def test_stats_of_a_partition_and_of_a_plain_topic(
        pulsar: tuple[PulsarState, str], http: aiohttp.ClientSession) -> None:
    state, base = pulsar
    state.set_subscription(TOPIC, SUB, backlog=9)
    status, body = await _get(http, f"{base}/persistent/tracardi/system/"
                                    "functions-partition-2/stats")
    assert status == 200 and body["subscriptions"][SUB]["msgBacklog"] == 3
    status, body = await _get(http, f"{base}/persistent/tracardi/system/single/stats")
    assert status == 200
    assert _keys(sample_json("pulsar/topic-stats.json")) <= _keys(body)


@pytest.fixture
async def counting() -> AsyncIterator[tuple[PulsarState, list[float], str]]:
    """A 3-partition topic on a wall clock the test moves, and its partitioned-stats URL."""
    wall = [1_700_000_000.0]
    state = PulsarState(wall=lambda: wall[0])
    state.add_topic(TOPIC, partitions=3, subscriptions=(SUB,))
    server = await serve(pulsar_admin.create_app(state))
    try:
        yield state, wall, (f"{server.url}/admin/v2/persistent/tracardi/system/functions/"
                            "partitioned-stats")
    finally:
        await server.stop()


async def test_msg_in_counter_counts_what_arrives_at_the_rate_in(
        http: aiohttp.ClientSession, counting: tuple[PulsarState, list[float], str]) -> None:
    """Like a broker's counter it grows between rate updates, and the partitions' counters add
    up to the topic's."""
    state, wall, url = counting
    state.set_rate_in(TOPIC, 90.0)
    wall[0] += 10.0
    _, body = await _get(http, url, perPartition="true")
    assert body["msgInCounter"] == 900
    assert [p["msgInCounter"] for p in body["partitions"].values()] == [300, 300, 300]
    state.set_rate_in(TOPIC, 0.0)
    wall[0] += 5.0
    state.set_rate_in(TOPIC, 12.5)
    wall[0] += 2.0
    _, body = await _get(http, url, perPartition="false")
    assert body["msgInCounter"] == 925


async def test_msg_out_counter_counts_what_leaves_at_the_subscriptions_rate_out(
        http: aiohttp.ClientSession, counting: tuple[PulsarState, list[float], str]) -> None:
    """The subscription's counter, per partition and in the aggregate, and the topic's."""
    state, wall, url = counting
    state.set_subscription(TOPIC, SUB, msg_rate_out=60.0)
    wall[0] += 10.0
    state.set_subscription(TOPIC, SUB, msg_rate_out=0.0)  # what left until now counts
    wall[0] += 5.0
    _, body = await _get(http, url, perPartition="true")
    assert body["subscriptions"][SUB]["msgOutCounter"] == 600
    assert body["msgOutCounter"] == 600
    assert [p["subscriptions"][SUB]["msgOutCounter"]
            for p in body["partitions"].values()] == [200, 200, 200]


@pytest.mark.parametrize(("path", "reason"), [
    pytest.param("persistent/tracardi/system/nope/partitioned-stats",
                 "Partitioned Topic not found", id="unknown-topic-partitioned"),
    pytest.param("persistent/tracardi/system/nope/stats", "Topic not found",
                 id="unknown-topic-stats"),
    pytest.param("persistent/tracardi/system/functions-partition-3/stats", "Topic not found",
                 id="partition-out-of-range"),
    pytest.param("persistent/tracardi/system/single/partitioned-stats",
                 "Partitioned Topic not found", id="not-partitioned"),
])
async def test_missing_topics_are_404_with_a_reason(pulsar: tuple[PulsarState, str],
                                                    http: aiohttp.ClientSession, path: str,
                                                    reason: str) -> None:
    status, body = await _get(http, f"{pulsar[1]}/{path}")
    assert (status, body) == (404, {"reason": reason})
    assert set(body) == set(sample_json("pulsar/topic-not-found-404.json"))


async def test_broker_health(pulsar: tuple[PulsarState, str],
                             http: aiohttp.ClientSession) -> None:
    state, base = pulsar
    assert await _get(http, f"{base}/brokers/health") == (200, "ok")
    state.healthy = False
    status, _ = await _get(http, f"{base}/brokers/health")
    assert status == 500


@pytest.mark.parametrize(("fault", "expected_status", "parses"), [
    pytest.param({"status": 503, "body": "{\"reason\": \"busy\"}"}, 503, True,
                 id="next-status"),
    pytest.param({"truncate": 20}, 200, False, id="truncated-body"),
    pytest.param({"delay": 0.2}, 200, True, id="delayed"),
])
async def test_pulsar_faults(pulsar: tuple[PulsarState, str], http: aiohttp.ClientSession, *,
                             fault: dict[str, Any], expected_status: int, parses: bool) -> None:
    state, base = pulsar
    state.faults.next(**fault)
    url = f"{base}/persistent/tracardi/system/functions/partitioned-stats"
    async with http.get(url) as response:
        text = await response.text()
        assert response.status == expected_status
    try:
        json.loads(text)
        parsed = True
    except ValueError:
        parsed = False
    assert parsed is parses
    status, _ = await _get(http, url)
    assert status == 200  # one fault, one request


# -- Elasticsearch -----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "timed_out", "http_status", "sample"), [
    pytest.param("green", False, 200, "cluster-health-green.json", id="green"),
    pytest.param("yellow", False, 200, "cluster-health-yellow.json", id="yellow"),
    pytest.param("red", False, 200, "cluster-health-red.json", id="red"),
    pytest.param("red", True, 408, "cluster-health-red-timed-out.json", id="red-timed-out-408"),
])
async def test_cluster_health_is_shaped_like_the_sample(
        elasticsearch: tuple[ElasticsearchState, ServedApp], http: aiohttp.ClientSession, *,
        status: str, timed_out: bool, http_status: int, sample: str) -> None:
    state, server = elasticsearch
    state.set_status(status, timed_out=timed_out)
    async with http.get(f"{server.url}/_cluster/health") as response:
        body = await response.json()
        assert response.status == http_status
        assert response.headers["X-Elastic-Product"] == "Elasticsearch"
    expected = sample_json(f"elasticsearch/{sample}")
    assert _keys(expected) - {"indices"} == _keys(body)
    assert (body["status"], body["timed_out"]) == (expected["status"], expected["timed_out"])
    if not timed_out:  # the captured timeout waited on an index, its shard counts are moot
        assert (body["unassigned_shards"] > 0) == (expected["unassigned_shards"] > 0)


async def test_unavailable_then_down_then_back(
        elasticsearch: tuple[ElasticsearchState, ServedApp],
        http: aiohttp.ClientSession) -> None:
    state, server = elasticsearch
    state.unavailable = True
    status, body = await _get(http, f"{server.url}/_cluster/health")
    assert status == 503 and body["error"]["type"] == "master_not_discovered_exception"
    state.unavailable = False
    await server.stop()
    with pytest.raises(aiohttp.ClientConnectionError):
        await _get(http, f"{server.url}/_cluster/health")
    await server.start()
    status, body = await _get(http, f"{server.url}/_cluster/health")
    assert (status, body["status"]) == (200, "green")


# -- Prometheus --------------------------------------------------------------------------------


@pytest.fixture
async def prometheus() -> AsyncIterator[tuple[PrometheusState, str]]:
    state = PrometheusState(wall=lambda: 1435781451.781)
    server = await serve(prometheus_api.create_app(state))
    try:
        yield state, f"{server.url}/api/v1/query"
    finally:
        await server.stop()


async def test_vector_result_is_shaped_like_the_sample(
        prometheus: tuple[PrometheusState, str], http: aiohttp.ClientSession) -> None:
    state, url = prometheus
    rate = [12.5]
    state.set("sum(rate(nginx_ingress_controller_requests[1m]))", lambda: rate[0],
              labels={"ingress": "tracardi"})
    status, body = await _get(http, url, query="sum(rate(nginx_ingress_controller_requests[1m]))")
    sample = sample_json("prometheus/query-vector-success.json")
    assert status == 200
    assert _keys(body) == _keys(sample) and _keys(body["data"]) == _keys(sample["data"])
    assert body["data"]["result"] == [{"metric": {"ingress": "tracardi"},
                                       "value": [1435781451.781, "12.5"]}]
    rate[0] = 3
    async with http.post(url, data={"query": "sum(rate(nginx_ingress_controller_requests[1m]))"}
                         ) as response:
        assert (await response.json())["data"]["result"][0]["value"][1] == "3"


async def test_empty_result_and_bad_data(prometheus: tuple[PrometheusState, str],
                                         http: aiohttp.ClientSession) -> None:
    state, url = prometheus
    state.set("absent_metric", None)
    assert await _get(http, url, query="absent_metric") == (
        200, sample_json("prometheus/query-empty-result.json"))
    status, body = await _get(http, url, query="unknown")
    assert status == 400
    assert _keys(body) == _keys(sample_json("prometheus/query-error-bad-data.json"))
    assert (body["status"], body["errorType"]) == ("error", "bad_data")


async def test_prometheus_fault_then_recovery(prometheus: tuple[PrometheusState, str],
                                              http: aiohttp.ClientSession) -> None:
    state, url = prometheus
    state.set("up", 1.0)
    state.faults.next(status=503, body='{"status":"error","errorType":"timeout","error":"x"}')
    status, body = await _get(http, url, query="up")
    assert (status, body["errorType"]) == (503, "timeout")
    status, body = await _get(http, url, query="up")
    assert (status, body["data"]["result"][0]["value"][1]) == (200, "1")


@pytest.mark.parametrize(("value", "written"), [
    (12.5, "12.5"), (3.0, "3"), (0.0, "0"), (0.00005, "0.00005"), (1e15, "1000000000000000"),
    (1e16, "10000000000000000"), (1e-7, "1e-07"), (1.5e21, "1.5e+21"),
    (float("nan"), "NaN"), (float("-inf"), "-Inf"),
])
async def test_sample_values_are_written_as_prometheus_writes_them(
        prometheus: tuple[PrometheusState, str], http: aiohttp.ClientSession,
        value: float, written: str) -> None:
    state, url = prometheus
    state.set("up", value)
    _, body = await _get(http, url, query="up")
    assert body["data"]["result"][0]["value"][1] == written


@pytest.mark.parametrize(("time", "at"), [
    pytest.param("1435781451", 1435781451, id="unix-whole: no fraction written"),
    pytest.param("2015-07-01T20:10:51.781Z", 1435781451.781, id="rfc3339"),
    pytest.param("", 1435781451.781, id="empty-is-now"),
])
async def test_the_time_parameter_is_read_as_prometheus_reads_it(
        prometheus: tuple[PrometheusState, str], http: aiohttp.ClientSession,
        time: str, at: float) -> None:
    state, url = prometheus
    state.set("up", 1.0)
    async with http.get(url, params={"query": "up", "time": time}) as response:
        text = await response.text()
    assert json.loads(text)["data"]["result"][0]["value"] == [at, "1"]
    assert f"[{at}," in text


async def test_a_bad_time_is_bad_data_quoted_as_prometheus_quotes_it(
        prometheus: tuple[PrometheusState, str], http: aiohttp.ClientSession) -> None:
    state, url = prometheus
    state.set("up", 1.0)
    for bad in ("yesterday", "nan", "2015-07-01T20:10:51"):  # the last without its zone
        status, body = await _get(http, url, query="up", time=bad)
        assert status == 400
        assert body == {"status": "error", "errorType": "bad_data",
                        "error": f'invalid parameter "time": cannot parse "{bad}" to a valid '
                                 "timestamp"}
