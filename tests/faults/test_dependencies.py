"""Faults of Tracardi's dependencies, injected while the daemon runs: Elasticsearch (the
simulated server: red, 503, stopped), the Pulsar broker's health (the simulated admin API), a
private real Redis (hung with SIGSTOP, killed) and the real MariaDB behind a cut proxy.

Every outage runs the same script: the worker settles at 3 replicas; the fault is injected;
once the workload reports the freeze, the test tempts it with a scale-down (backlog 100), a
NotReady pod (a restart) and a scale-up (backlog 700); nothing may happen inside the window;
the fault clears; the daemon must then scale to 7 and restart the sick pod by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import (
    API,
    NS,
    REQUIRES,
    WORKER,
    RedisServer,
    RunningDaemon,
    Window,
    World,
    eventually,
    holds,
    logged,
    world,
)

pytestmark = pytest.mark.real

HEALTH = "/admin/v2/brokers/health"
Step = Callable[[], Awaitable[None]]


@pytest.fixture
async def redis() -> AsyncIterator[RedisServer]:
    """A private redis-server the test may hang or kill (never the machine's own)."""
    server = RedisServer()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest.fixture
async def rw(tmp_path: Path, logs: list[dict[str, Any]],
             redis: RedisServer) -> AsyncIterator[World]:
    """The world with the private Redis as the `redis` dependency."""
    async with world(tmp_path, redis_url=redis.url) as wd:
        wd.logs = logs
        yield wd


# ---------------------------------------------------------------------------------------------
# What the daemon says about a workload and a dependency.


def reasons(d: RunningDaemon, workload: str) -> tuple[str, ...]:
    decision = d.daemon.workloads[f"{NS}/{workload}"].decision
    return decision.reasons if decision is not None else ()


def frozen_by(d: RunningDaemon, workload: str, dependency: str) -> bool:
    """The workload's last decision is a freeze naming the dependency as down."""
    decision = d.daemon.workloads[f"{NS}/{workload}"].decision
    return (decision is not None and decision.action.value == "freeze"
            and f"DependencyDown:{dependency}" in decision.reasons)


def sick_pod(w: World) -> str:
    """Make one worker pod NotReady and keep it so (the test's kubelet leaves it alone)."""
    pod = w.kube.workload_pods(NS, WORKER)[0].name
    w.sick.add(pod)
    w.kube.mark_ready(NS, pod, False)
    return pod


def pods(w: World) -> set[str]:
    return {p.name for p in w.kube.workload_pods(NS, WORKER)}


async def settled(w: World, replicas: int = 3) -> None:
    w.backlog(replicas * 100)  # 100 messages / 10 s drain / 10 msg/s = one replica each
    await eventually(lambda: w.replicas() == replicas, what=f"scaled to {replicas}")


# ---------------------------------------------------------------------------------------------
# The outage script every dependency fault runs.


async def outage(w: World, d: RunningDaemon, dependencies: tuple[str, ...], *, label: str,
                 inject: Step, clear: Step) -> None:
    """Settle, inject, tempt, check that nothing happened, clear, check the recovery.

    The frozen workloads are those that require one of `dependencies`; any other (the API
    when Elasticsearch is up) must keep scaling through the outage, a positive control that
    the gate is per workload.
    """
    frozen = tuple(n for n in (WORKER, API) if set(REQUIRES[n]) & set(dependencies))
    free = tuple(n for n in (WORKER, API) if n not in frozen)
    assert WORKER in frozen  # the worker requires every dependency
    await settled(w)
    assert all(d.metric("dependency_up", dependency=dep) == 1 for dep in dependencies)
    assert w.replicas(API) == 1
    restarts_before = len(w.restarts())

    await inject()
    with w.window("frozen", label, *frozen) as win:
        await eventually(lambda: all(frozen_by(d, n, dep) for n in frozen for dep in dependencies
                                     if dep in REQUIRES[n]),
                         what=f"{', '.join(frozen)} frozen by {label}")
        pod = sick_pod(w)            # tempts a restart once NotReady for 1 s
        w.backlog(100)               # tempts a scale-down to 1
        w.rate(400)                  # tempts the API to 4 (and must move it when not frozen)
        await asyncio.sleep(1.3)
        w.backlog(700)               # tempts a scale-up to 7
        await asyncio.sleep(1.2)

        # Nothing happened to the frozen workloads, and the freeze is reported.
        assert w.replicas() == 3
        assert pod in pods(w) and len(w.restarts()) == restarts_before, "restarted in an outage"
        for name in frozen:
            assert d.metric("frozen", workload=name) == 1
            assert d.metric("decisions", workload=name, action="freeze",
                            reason="DependencyDown") >= 1
            assert all(f"DependencyDown:{dep}" in reasons(d, name)
                       for dep in dependencies if dep in REQUIRES[name]), reasons(d, name)
        for dep in dependencies:
            assert d.metric("dependency_up", dependency=dep) == 0
            down = logged(w, "dependency_changed", dependency=dep, health="down")
            assert down and down[-1]["reason"], f"no log line says {dep} is down"
        if API in frozen:
            assert w.replicas(API) == 1
        # The gate is per workload: the API, when it does not need the dependency, scaled.
        if API in free:
            assert d.metric("frozen", workload=API) == 0
            await eventually(lambda: w.replicas(API) == 4,
                             what="the API scaled on its rate during the outage")

    await clear()
    # Recovers by itself: the backlog's count, the sick pod restarted, the API on its rate.
    await eventually(lambda: w.replicas() == 7, what="the worker scaled to 7 after the outage")
    await eventually(lambda: pod not in pods(w), what="the NotReady pod restarted")
    await eventually(lambda: w.replicas(API) == 4, what="the API at 4")
    assert [x for x in w.restarts() if x.t > (win.end or 0)], "no restart after the outage"
    # Counted once the eviction's answer is back, which may be a moment after the pod is gone.
    await eventually(lambda: d.metric("restarts", workload=WORKER) >= 1,
                     what="the restart counted in the metrics")
    for name in (WORKER, API):
        assert d.metric("frozen", workload=name) == 0
    for dep in dependencies:
        assert d.metric("dependency_up", dependency=dep) == 1
        changes = [e["health"] for e in logged(w, "dependency_changed", dependency=dep)]
        assert changes[-2:] == ["down", "up"], f"{dep}: {changes}"
    holds(w)


def once(fn: Callable[[], Any]) -> Step:
    async def step() -> None:
        result = fn()
        if asyncio.iscoroutine(result):
            await result
    return step


# ---------------------------------------------------------------------------------------------
# One dependency down.


ES_FAULTS: dict[str, tuple[Callable[[World], Any], Callable[[World], Any]]] = {
    "red": (lambda w: w.es.set_status("red"), lambda w: w.es.set_status("green")),
    "503": (lambda w: setattr(w.es, "unavailable", True),
            lambda w: setattr(w.es, "unavailable", False)),
    "stopped": (lambda w: w.servers["es"].stop(), lambda w: w.servers["es"].start()),
}


@pytest.mark.parametrize("how", list(ES_FAULTS))
@pytest.mark.fault("Dependencies", "Elasticsearch down (red, 503, server stopped)")
async def test_elasticsearch_down_freezes_both_workloads(w: World, how: str) -> None:
    """Both workloads frozen as soon as ES is seen down: no scale and no restart until it is
    back, reported in `frozen`, `dependency_up` and a log line; then scales and heals."""
    d = await w.start()
    inject, clear = ES_FAULTS[how]
    await outage(w, d, ("elasticsearch",), label=f"elasticsearch {how}",
                 inject=once(lambda: inject(w)), clear=once(lambda: clear(w)))


PULSAR_FAULTS: dict[str, tuple[Callable[[World], Any], Callable[[World], Any]]] = {
    "unhealthy": (lambda w: w.pulsar.faults.next(
        status=503, body='{"reason": "Broker is not healthy"}', path=HEALTH, times=100_000),
                  lambda w: w.pulsar.faults.clear()),
    "stopped": (lambda w: w.servers["pulsar"].stop(), lambda w: w.servers["pulsar"].start()),
}


@pytest.mark.parametrize("how", list(PULSAR_FAULTS))
@pytest.mark.fault("Dependencies", "Pulsar broker down (health 503, admin stopped)")
async def test_pulsar_down_freezes_the_worker_only(w: World, how: str) -> None:
    """The worker frozen (no scale, no restart) while the broker is down, the API still scales
    on its rate; the worker scales and heals by itself once the broker is back."""
    d = await w.start()
    inject, clear = PULSAR_FAULTS[how]
    await outage(w, d, ("pulsar",), label=f"pulsar {how}",
                 inject=once(lambda: inject(w)), clear=once(lambda: clear(w)))


@pytest.mark.parametrize("how", ["hung", "refused"])
@pytest.mark.fault("Dependencies", "Redis down (hung, refused)")
async def test_redis_down_freezes_the_worker_only(rw: World, redis: RedisServer,
                                                  how: str) -> None:
    """A hung (SIGSTOP) or killed Redis freezes the worker (no scale, no restart) but not the
    API, which keeps scaling; when Redis is back the worker scales and heals by itself."""
    w = rw
    d = await w.start()

    async def inject() -> None:
        if how == "hung":
            redis.pause(True)
        else:
            await redis.stop()

    async def clear() -> None:
        if how == "hung":
            redis.pause(False)
        else:
            await redis.start()

    await outage(w, d, ("redis",), label=f"redis {how}", inject=inject, clear=clear)


@pytest.mark.fault("Dependencies", "MySQL down (connections reset and refused)")
async def test_mysql_down_freezes_the_worker_only(w: World) -> None:
    """Cutting MariaDB freezes the worker (no scale, no restart) but not the API; once the
    connection is restored the worker scales and heals by itself."""
    d = await w.start()
    await outage(w, d, ("mysql",), label="mysql cut", inject=once(w.mysql.cut),
                 clear=once(w.mysql.restore))


# ---------------------------------------------------------------------------------------------
# Flapping and everything at once.


@contextlib.contextmanager
def flapping(w: World, every: float) -> Iterator[None]:
    """Toggle Elasticsearch between red and green every `every` seconds; green on exit."""

    async def toggle() -> None:
        while True:
            w.es.set_status("red" if w.es.status == "green" else "green")
            await asyncio.sleep(every)

    task = asyncio.get_running_loop().create_task(toggle())
    try:
        yield
    finally:
        task.cancel()
        w.es.set_status("green")


def acted(w: World, since: float) -> list[str]:
    """The writes since `since`, as a failure message shows them."""
    return [f"t={x.t:.2f} {x.kind} {x.name} {x.old}->{x.new}" for x in w.writes if x.t > since]


def health_log(w: World) -> list[str]:
    return [f"{e['dependency']} {e['health']} ({e['reason']})"
            for e in logged(w, "dependency_changed") if e["dependency"] == "elasticsearch"]


async def through_flapping(w: World, d: RunningDaemon, win: Window) -> str:
    """Tempt both workloads while Elasticsearch flaps; nothing may happen. The sick pod."""
    await eventually(lambda: d.metric("frozen", workload=WORKER) == 1,
                     what="frozen at the first failed check")
    pod = sick_pod(w)
    w.backlog(100)
    w.rate(400)
    await asyncio.sleep(1.5)
    w.backlog(700)
    await asyncio.sleep(2.0)
    moved = acted(w, win.start)
    assert not moved, f"acted while Elasticsearch flapped: {moved}; ES: {health_log(w)}"
    assert w.replicas() == 3 and w.replicas(API) == 1 and pod in pods(w)
    assert d.metric("decisions", workload=WORKER, action="freeze") >= 1
    assert d.metric("decisions", workload=API, action="freeze") >= 1
    return pod


async def after_flapping(w: World, d: RunningDaemon, win: Window, pod: str) -> None:
    await eventually(lambda: w.replicas() == 7, what="the worker scaled to 7 after the flapping")
    await eventually(lambda: w.replicas(API) == 4, what="the API scaled to 4 after the flapping")
    await eventually(lambda: pod not in pods(w), what="the NotReady pod restarted")
    assert all(x.t > (win.end or 0) for x in w.restarts())
    assert d.metric("dependency_up", dependency="elasticsearch") == 1
    assert d.metric("frozen", workload=WORKER) == 0 and d.metric("frozen", workload=API) == 0
    holds(w)


@pytest.mark.fault("Dependencies", "Elasticsearch flapping faster than the hysteresis")
async def test_flapping_elasticsearch_keeps_the_gate_closed(w: World) -> None:
    """Elasticsearch toggling red/green every 0.2 s (faster than 2 checks of 0.3 s) keeps both
    workloads frozen the whole time: no scale, no restart; they act once it stays green."""
    d = await w.start()
    await settled(w)
    with flapping(w, 0.2), w.window("frozen", "elasticsearch flapping", WORKER, API) as win:
        pod = await through_flapping(w, d, win)
    await after_flapping(w, d, win, pod)


@pytest.mark.fault("Dependencies", "Elasticsearch failing every other check")
async def test_every_other_check_failing_keeps_the_gate_closed(w: World) -> None:
    """Health checks alternating 503 / green (never two alike in a row) keep both workloads
    frozen: a single success does not clear a suspect dependency; they act once it is steady."""
    d = await w.start()
    await settled(w)
    for _ in range(100):  # the probe's own checks alternate, whatever their timing
        w.es.faults.next(status=503, path="/_cluster/health")
        w.es.faults.next(status=None, path="/_cluster/health")
    with w.window("frozen", "elasticsearch every other check", WORKER, API) as win:
        pod = await through_flapping(w, d, win)
    w.es.faults.clear()
    await after_flapping(w, d, win, pod)


@pytest.mark.fault("Dependencies", "All dependencies down at once")
async def test_everything_down_at_once_then_everything_back(rw: World,
                                                            redis: RedisServer) -> None:
    """With ES, Pulsar, Redis and MySQL down together nothing is scaled or restarted and each
    is reported down; when all are back the daemon scales and heals by itself."""
    w = rw
    d = await w.start()

    async def inject() -> None:
        w.es.set_status("red")
        w.pulsar.faults.next(status=503, path=HEALTH, times=100_000)
        w.mysql.cut()
        await redis.stop()

    async def clear() -> None:
        w.es.set_status("green")
        w.pulsar.faults.clear()
        w.mysql.restore()
        await redis.start()

    await outage(w, d, ("elasticsearch", "pulsar", "redis", "mysql"), label="all down",
                 inject=inject, clear=clear)
