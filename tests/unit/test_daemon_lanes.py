"""A pass evaluates in lanes: the evaluator's own task first, in order, so a pass in which no
evaluation waits never hands the loop to other tasks; while one waits, the other lanes go on,
at most `EVALUATION_LANES` at once."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from daemon_support import bench_daemon

from autoscaler.daemon import EVALUATION_LANES, Daemon, WorkloadState
from autoscaler.model import Decision, DependencyState, Health, PodInfo, WorkloadStatus


class _Cluster:
    """Every workload's status; a read of a workload in `blocked` waits for `release`."""

    def __init__(self) -> None:
        self.statuses: dict[str, WorkloadStatus] = {}
        self.blocked: set[str] = set()
        self.release = asyncio.Event()
        self.reads: list[str] = []
        self.waiting = 0
        self.most_waiting = 0

    def cached_workload(self, namespace: str, deployment: str) -> WorkloadStatus | None:
        return None

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        self.reads.append(deployment)
        if deployment in self.blocked:
            self.waiting += 1
            self.most_waiting = max(self.most_waiting, self.waiting)
            await self.release.wait()
            self.waiting -= 1
        return self.statuses[deployment]


def _daemon(tmp_path: Path, cluster: _Cluster, workloads: int) -> tuple[Daemon, list[str]]:
    daemon = bench_daemon(tmp_path, cluster, workloads=workloads)
    daemon.dry_run, daemon.check_conflicts = True, False
    for state in daemon.workloads.values():
        name, replicas = state.spec.deployment, state.spec.settings.min
        pods = tuple(PodInfo(f"{name}-{i}", ip=f"10.0.0.{i + 1}") for i in range(replicas))
        cluster.statuses[name] = WorkloadStatus(name, "tracardi", replicas=replicas,
                                                ready_replicas=replicas, resource_version="1",
                                                pods=pods)
    daemon.store.put_dependency(DependencyState("pulsar", Health.UP, "ok", 0.0))
    return daemon, [s.spec.deployment for s in daemon.workloads.values()]


async def test_a_pass_in_which_nothing_waits_runs_in_order_without_a_switch(
        tmp_path: Path) -> None:
    cluster = _Cluster()
    daemon, names = _daemon(tmp_path, cluster, workloads=8)
    others_ran: list[str] = []
    asyncio.get_running_loop().call_soon(others_ran.append, "another task")

    await daemon._evaluate_all(list(daemon.workloads))

    assert cluster.reads == names  # every workload, in order
    assert all(s.decision is not None for s in daemon.workloads.values())
    assert others_ran == []  # the loop was never handed over
    await asyncio.sleep(0)  # the lanes that were never needed end without evaluating
    assert cluster.reads == names


async def test_while_one_evaluation_waits_the_other_lanes_go_on(tmp_path: Path) -> None:
    cluster = _Cluster()
    daemon, names = _daemon(tmp_path, cluster, workloads=8)
    cluster.blocked = {names[0]}

    passing = asyncio.create_task(daemon._evaluate_all(list(daemon.workloads)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert sorted(cluster.reads) == sorted(names)  # the rest were read while the first waits
    assert not passing.done()  # the pass ends with its last evaluation

    cluster.release.set()
    await passing
    assert all(s.decision is not None for s in daemon.workloads.values())


async def test_at_most_the_lanes_wait_at_once(tmp_path: Path) -> None:
    cluster = _Cluster()
    daemon, names = _daemon(tmp_path, cluster, workloads=2 * EVALUATION_LANES)
    cluster.blocked = set(names)

    passing = asyncio.create_task(daemon._evaluate_all(list(daemon.workloads)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert len(cluster.reads) == EVALUATION_LANES
    cluster.release.set()
    await passing
    assert cluster.most_waiting == EVALUATION_LANES
    assert sorted(cluster.reads) == sorted(names)


async def test_an_evaluation_that_fails_in_another_lane_fails_the_pass(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cluster = _Cluster()
    daemon, names = _daemon(tmp_path, cluster, workloads=8)
    cluster.blocked = {names[0]}  # the pass's own lane waits here; the next go to other lanes
    evaluate = daemon.evaluate_workload

    async def failing(state: WorkloadState, *, retries: int = 1) -> Decision | None:
        if state.spec.deployment == names[1]:
            raise RuntimeError("a bug in one evaluation")
        return await evaluate(state, retries=retries)

    monkeypatch.setattr(daemon, "evaluate_workload", failing)
    passing = asyncio.create_task(daemon._evaluate_all(list(daemon.workloads)))
    for _ in range(20):
        await asyncio.sleep(0)
    assert sorted(cluster.reads) == sorted(n for n in names if n != names[1])
    cluster.release.set()
    with pytest.raises(RuntimeError, match="a bug in one evaluation"):
        await passing
