"""A tick pass skips a settled workload from the cluster adapter's cached status, without a read;
a workload whose status changed, or that the adapter does not hold, is read and evaluated."""

from __future__ import annotations

import asyncio
from pathlib import Path

from daemon_support import bench_daemon

from autoscaler.config import SOURCE_FIELDS
from autoscaler.daemon import Daemon
from autoscaler.model import (
    ConsumerStat,
    DependencyState,
    Health,
    PodInfo,
    Signal,
    WorkloadStatus,
)


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
        self.looked: list[str] = []
        self.synced = False

    def cached_workload(self, namespace: str, deployment: str) -> WorkloadStatus | None:
        self.looked.append(deployment)
        return None if deployment in self.not_held else self.statuses[deployment]

    def watches_synced(self, namespace: str) -> bool:
        return self.synced

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


def _read_all(daemon: Daemon, clock: _Clock, *, skip: str = "") -> None:
    """Every source but `skip` read again, with the values unchanged."""
    signals = [Signal(f"{name}.{field}", 0.0, clock.now())
               for name, source in daemon.loaded.config.sources.items() if name != skip
               for field in SOURCE_FIELDS[source.kind]]
    daemon._take_signals(signals)


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


async def _settled_daemon(tmp_path: Path, cluster: _Cluster, clock: _Clock) -> Daemon:
    daemon = bench_daemon(tmp_path, cluster, workloads=4, clock=clock)
    daemon.dry_run, daemon.check_conflicts = True, False
    for state in daemon.workloads.values():
        cluster.statuses[state.spec.deployment] = _status(state.spec.deployment,
                                                          state.spec.settings.min)
    daemon.store.put_dependency(DependencyState("pulsar", Health.UP, "ok", 0.0))
    _read_all(daemon, clock)
    await daemon._evaluate_all(list(daemon.workloads))
    assert all(s.settled is not None for s in daemon.workloads.values())
    cluster.reads.clear()
    cluster.looked.clear()
    return daemon


async def test_a_tick_skips_quiet_workloads_unlooked_and_checks_what_changed(
        tmp_path: Path) -> None:
    """With the watches in sync, a workload skipped on a tick is quiet: later ticks do not
    look at it, yet count its skips. A field it watches (one no policy reads), a new state of
    a dependency it requires, an event and a source that stops answering each send it through
    the full check."""
    clock, cluster = _Clock(), _Cluster()
    cluster.synced = True
    daemon = await _settled_daemon(tmp_path, cluster, clock)
    states = list(daemon.workloads.values())
    names = [s.spec.deployment for s in states]

    async def tick(*, woken: tuple[str, ...] = (), skip: str = "") -> list[str]:
        cluster.looked.clear()
        clock.t += 5.0
        _read_all(daemon, clock, skip=skip)
        await daemon._evaluate_all(list(woken), tick=True)
        return sorted(cluster.looked)

    assert await tick() == sorted(names)  # checked in the cache, skipped: quiet from now on
    assert await tick() == [] and cluster.reads == []
    assert [_skips(daemon, n) for n in names] == [2.0] * 4
    daemon.apply_config(daemon.loaded)  # a reload records the quiet skips, as at the tick
    assert [s.catch_up().recommendations[-1].at for s in states] == [clock.t] * 4
    assert [_skips(daemon, n) for n in names] == [2.0] * 4
    cluster.reads.clear()
    await tick()  # a reload forgets what was settled: every workload is evaluated again
    assert sorted(cluster.reads) == sorted(names)
    assert await tick() == sorted(names)  # then checked in the cache, and quiet
    assert await tick() == []
    await daemon._evaluate_all([states[0].spec.key])  # an event: checked

    # A field that no policy reads but the workload watches: its consumers, say.
    worker = next(s for s in states if s.watched and any("consumers" in f for f in s.watched))
    field = next(f for f in worker.watched or () if f.endswith(".consumers"))
    assert await tick() == [names[0]]  # woken by the event, not skipped on a tick: checked
    daemon.store.put_signals([Signal(field, 0.0, clock.now(), consumers=(
        ConsumerStat("c-1", "10.0.0.1", 1.0),))], now=clock.now())
    watchers = sorted(s.spec.deployment for s in states if field in (s.watched or ()))
    assert await tick() == watchers
    assert await tick() == []

    # A dependency's new state, the same health: every workload that requires it.
    daemon.store.put_dependency(DependencyState("pulsar", Health.UP, "ok", clock.t))
    requirers = sorted(s.spec.deployment for s in states if "pulsar" in s.spec.settings.requires)
    assert requirers and await tick() == requirers
    await tick()  # evaluated again (a new dependency state): checked once more, then quiet
    assert await tick() == []

    # An event (a pod changed): that workload.
    assert await tick(woken=(states[2].spec.key,)) == [names[2]]

    # A source that stops answering: its readers once it is stale, and then not settled.
    source = next(f.rpartition(".")[0] for f in worker.watched or ())
    cluster.reads.clear()
    for _ in range(4):
        await tick(skip=source)
    assert worker.spec.deployment in cluster.reads
    assert worker.settled is None
    counted = [_skips(daemon, n) for n in names]
    assert all(n >= 5.0 for n in counted)


async def test_a_tick_checks_every_settled_workload_while_the_watches_are_not_in_sync(
        tmp_path: Path) -> None:
    clock, cluster = _Clock(), _Cluster()
    daemon = await _settled_daemon(tmp_path, cluster, clock)
    names = sorted(s.spec.deployment for s in daemon.workloads.values())
    for _ in range(2):
        cluster.looked.clear()
        clock.t += 5.0
        _read_all(daemon, clock)
        await daemon._evaluate_all([], tick=True)
        assert sorted(cluster.looked) == names
    assert cluster.reads == []  # looked at in the cache, unchanged, skipped
    cluster.synced = True
    for looked in (names, []):  # in sync: checked once more, then quiet
        cluster.looked.clear()
        clock.t += 5.0
        _read_all(daemon, clock)
        await daemon._evaluate_all([], tick=True)
        assert sorted(cluster.looked) == looked
    cluster.synced = False  # out of sync again: every workload is checked on the next tick
    cluster.looked.clear()
    clock.t += 5.0
    _read_all(daemon, clock)
    await daemon._evaluate_all([], tick=True)
    assert sorted(cluster.looked) == names
