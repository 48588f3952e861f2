"""A decision is written only if it still holds when the write goes out.

Between a decision and its write the daemon awaits: a restart, the conflict check, a fresh check
of the required dependencies. In that time the lease can pass to another replica, a signal can
fail, and the daemon can begin to stop or reload. Each of those withholds the write; so does a
restart whose fresh dependency check fails, and a paused workload has no pod restarted.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, cast

from daemon_support import bench_daemon, wanting_more
from test_daemon_confirm import _Cluster as _ConfirmCluster

from autoscaler.config import parse_config
from autoscaler.daemon import Adapters, Daemon, LoopClock
from autoscaler.model import (
    Action,
    Health,
    PodInfo,
    ScalingHistory,
    Signal,
    TimedValue,
    WorkloadStatus,
)
from autoscaler.ports import CheckResult, WriteOutcome, WriteResult
from autoscaler.telemetry import Telemetry

WORKLOAD = "tracardi/wk-0000"


class _Cluster(_ConfirmCluster):
    """The confirm tests' cluster, with the count, `pods` and `paused` as set and evictions."""

    def __init__(self, replicas: int = 1) -> None:
        super().__init__()
        self.replicas = replicas
        self.pods: tuple[PodInfo, ...] = ()
        self.paused = False
        self.evictions: list[str] = []
        self.during_evict: Callable[[], None] | None = None

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        ready = sum(1 for p in self.pods if p.ready) if self.pods else self.replicas
        return WorkloadStatus(deployment, namespace, replicas=self.replicas,
                              ready_replicas=ready, resource_version="1", pods=self.pods,
                              paused=self.paused)

    async def evict(self, namespace: str, pod: str, *,
                    resource_version: str = "") -> WriteResult:
        self.evictions.append(pod)
        if self.during_evict is not None:
            self.during_evict()
        return WriteResult(WriteOutcome.DONE)


class _Pulsar:
    """A broker check that runs `during` (what happens while the daemon awaits it) first."""

    name = "pulsar"

    def __init__(self) -> None:
        self.ok = True
        self.during: Callable[[], None] | None = None

    async def check(self) -> CheckResult:
        if self.during is not None:
            self.during()
        await asyncio.sleep(0)
        return CheckResult(ok=self.ok, reason="" if self.ok else "connection refused")

    async def close(self) -> None:
        return None


class _Lease:
    def __init__(self) -> None:
        self.held = True

    def is_leader(self) -> bool:
        return self.held


async def _ready(tmp_path: Path, cluster: _Cluster | None = None,
                 ) -> tuple[Daemon, _Cluster, _Pulsar, _Lease]:
    """A daemon whose worker wants more replicas: Pulsar checked up, then a backlog read."""
    cluster, pulsar, lease = cluster or _Cluster(), _Pulsar(), _Lease()
    daemon = bench_daemon(tmp_path, cluster, probes={"pulsar": pulsar})
    daemon.a.leadership = lease
    await wanting_more(daemon, pulsar)
    return daemon, cluster, pulsar, lease


async def test_the_decision_is_written_when_nothing_changed_meanwhile(tmp_path: Path) -> None:
    daemon, cluster, _, _ = await _ready(tmp_path)
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.action is Action.SCALE
    assert cluster.writes == [decision.desired]


async def test_a_lease_lost_during_the_check_withholds_the_write(tmp_path: Path) -> None:
    daemon, cluster, pulsar, lease = await _ready(tmp_path)

    def lose() -> None:
        lease.held = False

    pulsar.during = lose
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.action is Action.SCALE
    assert cluster.writes == []


def _withheld(daemon: Daemon, reason: str) -> float:
    value = daemon.telemetry.registry.get_sample_value(
        "tracardi_autoscaler_writes_withheld_total",
        {"namespace": "tracardi", "workload": "wk-0000", "reason": reason})
    return value or 0.0


async def test_a_signal_failing_during_the_check_withholds_the_write(tmp_path: Path) -> None:
    daemon, cluster, pulsar, _ = await _ready(tmp_path)

    def fail() -> None:
        now = daemon.a.clock.now()
        daemon._take_signals([Signal("wk-0000.backlog", None, now, error="HTTP 503"),
                              Signal("wk-0000.in_rate", None, now, error="HTTP 503")])

    pulsar.during = fail
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.action is Action.SCALE
    assert cluster.writes == []
    assert _withheld(daemon, "decision_changed") == 1
    # Woken to decide again, it now freezes on the failed reads.
    assert WORKLOAD in daemon._pending
    pulsar.during = None
    again = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert again is not None and again.action is Action.FREEZE and cluster.writes == []


async def test_a_changed_signal_is_written_only_as_decided_again(tmp_path: Path) -> None:
    daemon, cluster, pulsar, _ = await _ready(tmp_path)

    def calm() -> None:
        now = daemon.a.clock.now() + 0.001
        daemon._take_signals([Signal("wk-0000.backlog", 0.0, now),
                              Signal("wk-0000.in_rate", 0.0, now)])

    pulsar.during = calm
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.desired > 1
    assert cluster.writes == []  # on the reads of now it would hold at one replica


async def test_no_write_starts_while_the_daemon_stops(tmp_path: Path) -> None:
    daemon, cluster, pulsar, _ = await _ready(tmp_path)

    def stopping() -> None:
        daemon._closing = True  # what the end of a generation sets before it drains the writes

    pulsar.during = stopping
    await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert cluster.writes == []
    assert _withheld(daemon, "stopping") == 1


TWO = """
daemon: {namespace: tracardi, tick_seconds: 3600, debounce_seconds: 0}
dependencies:
  pulsar: {kind: pulsar, admin_url: "http://127.0.0.1:1", period_seconds: 3600}
  es: {kind: elasticsearch, url: "http://127.0.0.1:1", period_seconds: 3600}
sources:
  a: {kind: pulsar, admin_url: "http://127.0.0.1:1", tenant: t, namespace: n, topic: a,
      subscription: s}
  b: {kind: pulsar, admin_url: "http://127.0.0.1:1", tenant: t, namespace: n, topic: b,
      subscription: s}
workloads:
  wa: {min: 1, max: 20, requires: [pulsar], healing: {enabled: false},
       policies: [{name: backlog, source: a, msgs_per_second: 10, learn: false}]}
  wb: {min: 1, max: 20, requires: [es], healing: {enabled: false},
       policies: [{name: backlog, source: b, msgs_per_second: 10, learn: false}]}
"""


class _SlowCluster(_Cluster):
    """Scale writes take half a second; the pod watch waits for ever."""

    async def scale(self, namespace: str, deployment: str, *, replicas: int,
                    resource_version: str = "") -> WriteResult:
        self.writes.append(replicas)
        await asyncio.sleep(0.5)
        return WriteResult(WriteOutcome.DONE)

    def cached_workload(self, namespace: str, deployment: str) -> WorkloadStatus | None:
        return None

    async def watch_pods(self, namespace: str) -> AsyncIterator[object]:
        await asyncio.Event().wait()
        yield None


class _SlowCheck(_Pulsar):
    name = "es"

    async def check(self) -> CheckResult:
        await asyncio.sleep(0.3)
        return CheckResult(ok=True)


async def test_a_stop_while_a_write_drains_starts_no_other_write(tmp_path: Path) -> None:
    # wa's write is in flight when the daemon is told to stop; wb, decided in the same pass,
    # is still waiting for its dependency check. The stop waits for wa's write and lets no
    # other one start: wb's would go out after the stop, and the lease is released after it.
    cluster, pulsar, es = _SlowCluster(replicas=3), _Pulsar(), _SlowCheck()
    adapters = Adapters(clock=LoopClock(), cluster=cast(Any, cluster), sources={},
                        probes={"pulsar": pulsar, "es": es})
    daemon = Daemon(parse_config(TWO), adapters, telemetry=Telemetry())
    for probe in (pulsar, es):
        while daemon.store.dependencies.get(probe.name) is None \
                or daemon.store.dependencies[probe.name].health is not Health.UP:
            await daemon._check(probe)
    runner = asyncio.create_task(daemon.run())
    now = daemon.a.clock.now()
    daemon._take_signals([Signal("a.backlog", 5000.0, now), Signal("a.in_rate", 100.0, now),
                          Signal("b.backlog", 5000.0, now), Signal("b.in_rate", 100.0, now)])
    await asyncio.sleep(0.1)
    assert len(cluster.writes) == 1  # wa's, in flight
    daemon.stop()
    await asyncio.wait_for(runner, 15)
    assert len(cluster.writes) == 1
    assert not any(not w.done() for w in daemon._writes)


def _crashing_pods() -> tuple[PodInfo, ...]:
    hour_ago = time.time() - 3600
    return (PodInfo("wk-a", ready=False, started_at=hour_ago, restarts=9,
                    waiting_reason="CrashLoopBackOff", ip="10.0.0.1"),
            PodInfo("wk-b", ready=True, started_at=hour_ago, ip="10.0.0.2"),
            PodInfo("wk-c", ready=True, started_at=hour_ago, ip="10.0.0.3"))


async def _healing(tmp_path: Path) -> tuple[Daemon, _Cluster, _Pulsar]:
    cluster = _Cluster(replicas=3)
    cluster.pods = _crashing_pods()
    daemon, _, pulsar, _ = await _ready(tmp_path, cluster)
    assert daemon.workloads[WORKLOAD].spec.settings.healing.enabled  # the default
    return daemon, cluster, pulsar


async def test_a_lease_lost_during_a_restart_withholds_the_scale_write(tmp_path: Path) -> None:
    daemon, cluster, _ = await _healing(tmp_path)
    lease = daemon.a.leadership
    assert isinstance(lease, _Lease)

    def lose() -> None:
        lease.held = False

    cluster.during_evict = lose
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert cluster.evictions == ["wk-a"]
    assert decision is not None and decision.desired > 3
    assert cluster.writes == []  # the lease is read after the restart, before the write


async def test_a_crash_loop_is_restarted_after_a_fresh_good_check(tmp_path: Path) -> None:
    daemon, cluster, _ = await _healing(tmp_path)
    await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert cluster.evictions == ["wk-a"]


async def test_a_restart_waits_for_a_fresh_check_of_the_dependencies(tmp_path: Path) -> None:
    daemon, cluster, pulsar = await _healing(tmp_path)
    cluster.replicas = 20  # at its max and wanting more: a hold, which checks nothing itself
    daemon._take_signals([Signal("wk-0000.backlog", 1e6, daemon.a.clock.now())])
    pulsar.ok = False  # down since the last periodic check, which still said up
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.action is Action.HOLD
    assert cluster.evictions == [] and cluster.writes == []


async def test_a_paused_workload_has_no_pod_restarted(tmp_path: Path) -> None:
    daemon, cluster, _ = await _healing(tmp_path)
    cluster.paused = True
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.action is Action.PAUSE
    assert cluster.evictions == []


async def test_a_scale_down_waits_for_the_replacement_of_a_restart(tmp_path: Path) -> None:
    daemon, cluster, _ = await _healing(tmp_path)
    now = daemon.a.clock.now()
    daemon._take_signals([Signal("wk-0000.backlog", 0.0, now),
                          Signal("wk-0000.in_rate", 0.0, now)])
    # Running for a while: its memory holds a recommendation from long ago, no first-look hold.
    daemon.workloads[WORKLOAD].history = ScalingHistory(
        recommendations=(TimedValue(now - 3600, 3),))
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert cluster.evictions == ["wk-a"]
    assert decision is not None and decision.action is Action.HOLD
    assert any(r.startswith("ScaleDownHeld") for r in decision.reasons)
    assert cluster.writes == []


async def test_a_reload_that_redefines_a_source_drops_its_old_reads(tmp_path: Path) -> None:
    daemon, cluster, _, _ = await _ready(tmp_path)
    text = (tmp_path / "config.yaml").read_text()
    assert "topic: wk-0000" in text
    moved = parse_config(text.replace("topic: wk-0000", "topic: elsewhere", 1),
                         path=daemon.loaded.path)
    daemon.reload(moved, sources=daemon.a.sources, probes=daemon.a.probes)
    assert "wk-0000.backlog" not in daemon.store.latest
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.action is Action.FREEZE
    assert cluster.writes == []


async def test_a_reload_that_keeps_a_source_keeps_its_reads(tmp_path: Path) -> None:
    daemon, _, _, _ = await _ready(tmp_path)
    same = parse_config((tmp_path / "config.yaml").read_text(), path=daemon.loaded.path)
    daemon.reload(same, sources=daemon.a.sources, probes=daemon.a.probes)
    assert daemon.store.latest["wk-0000.backlog"].value == 5000.0
    assert daemon.store.dependencies["pulsar"].health is Health.UP
