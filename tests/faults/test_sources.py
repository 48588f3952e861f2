"""Faults of the signal sources: the Pulsar admin API and Prometheus, at the wire."""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Callable
from typing import Any

import pytest
from harness import API, SUB, TOPIC, WORKER, World, eventually, holds, logged

pytestmark = pytest.mark.real

STATS = "/admin/v2/persistent/tracardi/system/functions/partitioned-stats"
PROM = "/api/v1/query"
MANY = 100_000


async def worker_at(w: World, replicas: int = 3) -> None:
    w.backlog(replicas * 100)  # 100 messages / 10 s drain / 10 msg/s = one replica each
    await eventually(lambda: w.replicas() == replicas, what=f"worker scaled to {replicas}")


async def api_at(w: World, replicas: int = 3) -> None:
    w.rate(replicas * 100.0)
    await eventually(lambda: w.replicas(API) == replicas, what=f"API scaled to {replicas}")


async def pulsar_fault(w: World, label: str, inject: Callable[[], None],
                       clear: Callable[[], None]) -> None:
    """Worker at 3; the fault hides a backlog that would scale it down to 1; nothing
    scales down while it lasts; once it clears the worker follows the true backlog."""
    d = await w.start()
    await worker_at(w)
    errors = d.metric("signal_errors", signal="functions.backlog")
    with w.window("partial", label, WORKER):
        inject()
        w.backlog(100)
        await asyncio.sleep(2.0)
        assert w.replicas() == 3
        assert d.metric("signal_errors", signal="functions.backlog") > errors
        assert logged(w, "signal_failed", signal="functions.backlog")
        clear()
    await eventually(lambda: w.replicas() == 1, what="scaled down to 1 after the fault")
    assert logged(w, "signal_recovered", signal="functions.backlog")
    holds(w)


def stats_body(w: World, **changes: Any) -> str:
    """The real partitioned-stats body with `changes` applied to the subscription of every
    partition and of the aggregate."""
    body = w.pulsar.partitioned_stats(TOPIC, per_partition=True)
    for stats in [body, *body["partitions"].values()]:
        stats["subscriptions"][SUB].update(changes)
    return json.dumps(body)


@pytest.mark.fault("Pulsar admin", "500")
async def test_pulsar_500(w: World) -> None:
    """The backlog counts as missing: no scale-down while it lasts, the error is counted;
    the worker follows the backlog again once Pulsar answers."""
    await pulsar_fault(w, "pulsar 500", lambda: w.pulsar.faults.next(
        status=500, body='{"reason":"Internal Server Error"}', path=STATS, times=MANY),
        w.pulsar.faults.clear)


@pytest.mark.fault("Pulsar admin", "timeout")
async def test_pulsar_timeout(w: World) -> None:
    """A stats call slower than the source timeout is a failed read: no scale-down."""
    await pulsar_fault(w, "pulsar timeout", lambda: w.pulsar.faults.next(
        delay=1.5, path=STATS, times=MANY), w.pulsar.faults.clear)


@pytest.mark.fault("Pulsar admin", "truncated body")
async def test_pulsar_truncated(w: World) -> None:
    """A body cut short is malformed JSON, a failed read: no scale-down."""
    await pulsar_fault(w, "pulsar truncated", lambda: w.pulsar.faults.next(
        truncate=40, path=STATS, times=MANY), w.pulsar.faults.clear)


@pytest.mark.fault("Pulsar admin", "non-JSON body")
async def test_pulsar_not_json(w: World) -> None:
    """An HTML page with 200 OK (a proxy's error page) is a failed read: no scale-down."""
    await pulsar_fault(w, "pulsar html", lambda: w.pulsar.faults.next(
        status=200, body="<html><body>502 Bad Gateway</body></html>", path=STATS,
        times=MANY), w.pulsar.faults.clear)


@pytest.mark.fault("Pulsar admin", "missing subscription")
async def test_pulsar_missing_subscription(w: World) -> None:
    """A subscription that is gone (renamed, deleted) is a failed read, not a backlog of 0:
    no scale-down, the reason names the subscriptions the topic has."""
    d = await w.start()
    await worker_at(w)
    topic = w.pulsar.topics[TOPIC]
    with w.window("partial", "subscription missing", WORKER):
        sub = topic.subscriptions.pop(SUB)
        sub.backlog = 100
        await asyncio.sleep(2.0)
        assert w.replicas() == 3
        assert d.metric("signal_errors", signal="functions.backlog") >= 1
        failed = logged(w, "signal_failed", signal="functions.backlog")
        assert failed and "not found" in failed[0]["error"]
        topic.subscriptions[SUB] = sub
    await eventually(lambda: w.replicas() == 1, what="scaled down to 1 after the fault")
    holds(w)


@pytest.mark.fault("Pulsar admin", "partitions disappear")
async def test_pulsar_partitions_disappear(w: World) -> None:
    """A partitioned topic that turns up without partitions (404 from partitioned-stats) is
    a failed read: no scale-down."""
    topic = w.pulsar.topics[TOPIC]
    await pulsar_fault(w, "partitions gone", lambda: setattr(topic, "partitions", 0),
                       lambda: setattr(topic, "partitions", 2))


@pytest.mark.parametrize("backlog", [-500, 10**18])
@pytest.mark.fault("Pulsar admin", "negative or absurd backlog (-500, 1e18)")
async def test_pulsar_impossible_backlog(w: World, backlog: int) -> None:
    """A negative or absurd backlog is rejected as a value: no scale at all (not to max, not
    down); the rejection is counted and logged with the value."""
    d = await w.start()
    await worker_at(w)
    with w.window("partial", f"backlog {backlog}", WORKER):
        w.pulsar.faults.next(status=200, path=STATS, times=MANY, body=stats_body(
            w, msgBacklog=backlog, msgBacklogNoDelayed=backlog))
        await asyncio.sleep(2.0)
        assert [x.new for x in w.scale_writes()] == [3]
        assert d.metric("signal_errors", signal="functions.backlog") >= 1
        failed = logged(w, "signal_failed", signal="functions.backlog")
        assert failed and "backlog" in failed[0]["error"]
        w.pulsar.faults.clear()
    w.backlog(500)
    await eventually(lambda: w.replicas() == 5, what="scaled to 5 on a sane backlog")
    holds(w)


async def prometheus_fault(w: World, label: str, inject: Callable[[], None],
                           clear: Callable[[], None]) -> None:
    """API at 3; the fault hides a rate that would scale it down to 1; nothing scales down
    while it lasts; once it clears the API follows the true rate."""
    d = await w.start()
    await api_at(w)
    errors = d.metric("signal_errors", signal="track-requests.value")
    with w.window("partial", label, API):
        inject()
        await asyncio.sleep(2.0)
        assert w.replicas(API) == 3
        assert d.metric("signal_errors", signal="track-requests.value") > errors
        assert logged(w, "signal_failed", signal="track-requests.value")
        clear()
        w.rate(100.0)
    await eventually(lambda: w.replicas(API) == 1, what="API scaled down to 1 after the fault")
    holds(w)


def series(*values: str) -> str:
    result = [{"metric": {"ingress": "tracardi-track", "pod": f"nginx-{i}"},
               "value": [1764316800.0, v]} for i, v in enumerate(values)]
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": result}})


@pytest.mark.parametrize(("label", "value"), [("empty result", None), ("NaN", math.nan),
                                              ("+Inf", math.inf)])
@pytest.mark.fault("Prometheus", "empty result, NaN, +Inf")
async def test_prometheus_bad_values(w: World, label: str, value: float | None) -> None:
    """An empty vector, NaN or +Inf is no usable rate: no scale-down, the error is counted."""
    await prometheus_fault(w, label, lambda: w.rate(value), lambda: None)


@pytest.mark.fault("Prometheus", "several series")
async def test_prometheus_several_series(w: World) -> None:
    """A query that returns several series (a missing sum()) is ambiguous: rejected, no
    scale-down."""
    await prometheus_fault(w, "two series", lambda: w.prom.faults.next(
        status=200, body=series("40", "60"), path=PROM, times=MANY), w.prom.faults.clear)


@pytest.mark.parametrize("status", [422, 503])
@pytest.mark.fault("Prometheus", "422 / 503")
async def test_prometheus_errors(w: World, status: int) -> None:
    """An execution error (422) or an unavailable server (503) is a failed read: no
    scale-down, the error is counted and logged."""
    body = json.dumps({"status": "error", "errorType": "execution",
                       "error": "query timed out in expression evaluation"})
    await prometheus_fault(w, f"prometheus {status}", lambda: w.prom.faults.next(
        status=status, body=body, path=PROM, times=MANY), w.prom.faults.clear)


@pytest.mark.fault("Prometheus", "slow answers")
async def test_prometheus_slow(w: World) -> None:
    """Answers slower than the source timeout count as failed reads (no scale-down); answers
    slow but within it are used."""
    await prometheus_fault(w, "prometheus slow", lambda: w.prom.faults.next(
        delay=1.0, path=PROM, times=MANY), w.prom.faults.clear)
    w.prom.faults.next(delay=0.3, path=PROM, times=MANY)
    w.rate(400.0)
    await eventually(lambda: w.replicas(API) == 4, what="scaled on slow but timely answers")
    w.prom.faults.clear()
    holds(w)
