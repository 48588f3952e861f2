"""A scale write waits for a fresh check of the workload's required dependencies.

The periodic check may be up to a period older than the signals a decision reads; an outage
that began in between shows first in those signals. So the daemon checks again just before it
writes, and a failed check holds the write.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon_support import bench_daemon, wanting_more

from autoscaler.daemon import Daemon
from autoscaler.model import Action, Signal, WorkloadStatus
from autoscaler.ports import CheckResult, Clock, WriteOutcome, WriteResult

WORKLOAD = "tracardi/wk-0000"


class _Cluster:
    """One worker Deployment at one replica; scale writes are recorded and succeed."""

    def __init__(self) -> None:
        self.writes: list[int] = []

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        return WorkloadStatus(deployment, namespace, replicas=1, ready_replicas=1,
                              resource_version="1")

    async def scale(self, namespace: str, deployment: str, *, replicas: int,
                    resource_version: str = "") -> WriteResult:
        self.writes.append(replicas)
        return WriteResult(WriteOutcome.DONE)

    async def conflicting_autoscaler(self, namespace: str, deployment: str) -> str | None:
        return None

    async def emit_event(self, namespace: str, deployment: str, *, reason: str, message: str,
                         warning: bool = False) -> None:
        return None


class _Pulsar:
    """The broker's health as the test sets it; counts the checks."""

    name = "pulsar"

    def __init__(self) -> None:
        self.ok = True
        self.checks = 0

    async def check(self) -> CheckResult:
        self.checks += 1
        return CheckResult(ok=self.ok, reason="" if self.ok else "connection refused")

    async def close(self) -> None:
        return None


async def _ready(tmp_path: Path, workloads: int = 1,
                 clock: Clock | None = None) -> tuple[Daemon, _Cluster, _Pulsar]:
    """A daemon whose workers want more replicas: Pulsar checked up, then a backlog read."""
    cluster, pulsar = _Cluster(), _Pulsar()
    daemon = bench_daemon(tmp_path, cluster, probes={"pulsar": pulsar}, workloads=workloads,
                          clock=clock)
    await wanting_more(daemon, pulsar, workloads)
    return daemon, cluster, pulsar


async def test_a_write_follows_a_fresh_good_check(tmp_path: Path) -> None:
    daemon, cluster, pulsar = await _ready(tmp_path)
    checked = pulsar.checks
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.action is Action.SCALE
    assert pulsar.checks == checked + 1
    assert cluster.writes == [decision.desired] and decision.desired > 1


async def test_an_outage_since_the_last_check_holds_the_write(tmp_path: Path) -> None:
    daemon, cluster, pulsar = await _ready(tmp_path)
    pulsar.ok = False  # down since its last periodic check, which still said up
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.action is Action.FREEZE
    assert "DependencySuspect:pulsar" in decision.reasons
    assert cluster.writes == []
    assert daemon.store.dependencies["pulsar"].failures == 1
    # Evaluated again (the failed check woke it), the gate now freezes before any policy.
    again = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert again is not None and again.action is Action.FREEZE and cluster.writes == []


async def test_no_check_when_nothing_is_written(tmp_path: Path) -> None:
    daemon, cluster, pulsar = await _ready(tmp_path)
    daemon._take_signals([Signal("wk-0000.backlog", 0.0, daemon.a.clock.now()),
                          Signal("wk-0000.in_rate", 1.0, daemon.a.clock.now())])
    checked = pulsar.checks
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and not decision.changes
    assert pulsar.checks == checked and cluster.writes == []


class _Clock:
    """Time as the test sets it."""

    def __init__(self) -> None:
        self.t = 100.0

    def now(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


async def test_a_check_begun_before_the_decision_does_not_serve(tmp_path: Path) -> None:
    clock = _Clock()
    daemon, cluster, pulsar = await _ready(tmp_path, clock=clock)
    clock.t += 0.5
    await daemon._check_since(pulsar, clock.now())  # an earlier write's check, after the read
    clock.t += 0.5
    checked = pulsar.checks
    decision = await daemon.evaluate_workload(daemon.workloads[WORKLOAD])
    assert decision is not None and decision.action is Action.SCALE
    assert pulsar.checks == checked + 1 and len(cluster.writes) == 1


async def test_workloads_decided_together_share_one_check(tmp_path: Path) -> None:
    # The clock stands still: the three are decided at the same moment.
    daemon, cluster, pulsar = await _ready(tmp_path, workloads=3, clock=_Clock())
    checked = pulsar.checks
    decisions = await asyncio.gather(*(daemon.evaluate_workload(s)
                                       for s in daemon.workloads.values()))
    assert [d.action for d in decisions if d is not None] == [Action.SCALE] * 3
    assert pulsar.checks == checked + 1 and len(cluster.writes) == 3
