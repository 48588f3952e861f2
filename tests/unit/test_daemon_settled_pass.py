"""A tick pass skips a settled workload from the cluster adapter's cached status, without a read;
a workload whose status changed, or that the adapter does not hold, is read and evaluated."""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon_support import bench_daemon

from autoscaler.config import SOURCE_FIELDS
from autoscaler.daemon import Daemon
from autoscaler.model import DependencyState, Health, PodInfo, Signal, WorkloadStatus


class _Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def wall(self) -> float:
        return 1.7e9 + self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


class _Cluster:
    """Holds every workload's status; counts the reads the daemon makes."""

    def __init__(self) -> None:
        self.statuses: dict[str, WorkloadStatus] = {}
        self.not_held: set[str] = set()
        self.reads: list[str] = []

    def cached_workload(self, namespace: str, deployment: str) -> WorkloadStatus | None:
        return None if deployment in self.not_held else self.statuses[deployment]

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        self.reads.append(deployment)
        return self.statuses[deployment]


def _status(name: str, replicas: int, version: str = "1") -> WorkloadStatus:
    pods = tuple(PodInfo(f"{name}-{i}", ip=f"10.0.0.{i + 1}") for i in range(replicas))
    return WorkloadStatus(name, "tracardi", replicas=replicas, ready_replicas=replicas,
                          resource_version=version, pods=pods)


def _skips(daemon: Daemon, name: str) -> float:
    value = daemon.telemetry.registry.get_sample_value(
        "tracardi_autoscaler_evaluations_skipped_total",
        {"namespace": "tracardi", "workload": name})
    return value or 0.0


def _read_all(daemon: Daemon, clock: _Clock) -> None:
    """Every source read again, with the values unchanged (no signal grows stale)."""
    signals = [Signal(f"{name}.{field}", 0.0, clock.now())
               for name, source in daemon.loaded.config.sources.items()
               for field in SOURCE_FIELDS[source.kind]]
    daemon.store.put_signals(signals, now=clock.now())


async def test_settled_workloads_are_skipped_from_the_cache_and_changed_ones_read(
        tmp_path: Path) -> None:
    clock = _Clock()
    cluster = _Cluster()
    daemon = bench_daemon(tmp_path, cluster, workloads=4, clock=clock)
    daemon.dry_run, daemon.check_conflicts = True, False  # decisions only, no writes
    names = [s.spec.deployment for s in daemon.workloads.values()]
    for state in daemon.workloads.values():
        cluster.statuses[state.spec.deployment] = _status(state.spec.deployment,
                                                          state.spec.settings.min)
    daemon.store.put_dependency(DependencyState("pulsar", Health.UP, "ok", 0.0))
    _read_all(daemon, clock)
    keys = list(daemon.workloads)

    await daemon._evaluate_all(keys)  # the first evaluations read every workload
    assert sorted(cluster.reads) == sorted(names)
    assert all(s.settled is not None for s in daemon.workloads.values())

    cluster.reads.clear()
    clock.t += 5.0
    _read_all(daemon, clock)
    await daemon._evaluate_all(keys)  # the tick: nothing changed, nothing read
    assert cluster.reads == []
    assert [_skips(daemon, n) for n in names] == [1.0] * 4
    history = daemon.workloads[keys[0]].catch_up()
    assert history.recommendations[-1].at == clock.t  # remembered as the evaluation would

    moved, unheld = names[0], names[1]
    cluster.statuses[moved] = _status(moved, 3, version="2")  # someone scaled it by hand
    cluster.not_held.add(unheld)
    clock.t += 5.0
    _read_all(daemon, clock)
    await daemon._evaluate_all(keys)
    # The changed one is read and evaluated again; the one not held is read, then skipped.
    assert sorted(cluster.reads) == sorted([moved, unheld])
    assert [_skips(daemon, n) for n in names] == [1.0, 2.0, 2.0, 2.0]
    state = next(s for s in daemon.workloads.values() if s.spec.deployment == moved)
    assert state.decision is not None and state.decision.current == 3
