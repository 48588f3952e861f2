"""Faults of leadership: a stolen lease, a partitioned leader, a jumping wall clock."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import replace

import pytest
from harness import LEASE, LEASE_SECONDS, NS, World, eventually, holds, logged

from autoscaler.engine.healing import RestartRecord, Settled
from autoscaler.ports import LEASE_MEMO_ANNOTATION
from autoscaler.sim.kubestate import LeaseSpec

pytestmark = pytest.mark.real


def holder(w: World) -> str | None:
    leases = [le for le in w.kube.leases(NS) if le.name == LEASE]
    return leases[0].spec.holder if leases else None


@contextlib.asynccontextmanager
async def intruder(w: World, name: str = "intruder") -> AsyncIterator[None]:
    """Another party takes the lease and keeps renewing it until the block ends."""

    def take() -> None:
        lease = w.kube.get_lease(NS, LEASE)
        now = time.time()
        mine = lease.spec.holder == name
        w.kube.update_lease(NS, LEASE, LeaseSpec(
            holder=name, duration_seconds=int(LEASE_SECONDS),
            acquire_time=lease.spec.acquire_time if mine else now, renew_time=now,
            transitions=(lease.spec.transitions or 0) + (0 if mine else 1)),
            resource_version=lease.resource_version)

    async def renew() -> None:
        while True:
            await asyncio.sleep(0.5)
            take()

    take()
    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()


@pytest.mark.fault("Leadership", "lease stolen mid-write")
async def test_stolen_lease_stops_the_writer(w: World) -> None:
    """The write already sent lands; after it the replica sees the lease gone and writes
    nothing more until it holds the lease again, then acts on the current state."""
    d = await w.start()
    w.backlog(300)
    await eventually(lambda: w.replicas() == 3, what="scaled to 3")
    w.kube.faults.inject("update", "deployments/scale", delay=1.0)
    w.backlog(500)
    await eventually(lambda: w.kube.faults.pending() == 0, what="the write in flight")
    async with intruder(w):
        await eventually(lambda: w.replicas() == 5, what="the write in flight landed")
        stolen_at = w.now()
        await eventually(lambda: d.metric("leader") == 0, what="the replica knows it lost",
                         within=LEASE_SECONDS)
        w.backlog(700)
        await asyncio.sleep(2.0)
        assert not [x for x in w.writes if x.t > stolen_at]
        assert w.replicas() == 5
    await eventually(lambda: holder(w) == "a", what="a takes the lease back",
                     within=3 * LEASE_SECONDS)
    await eventually(lambda: w.replicas() == 7, what="scaled to 7 once leading again")
    assert logged(w, "leader_lost")
    holds(w)


@pytest.mark.fault("Leadership", "API partitioned away from the leader")
async def test_partitioned_leader_hands_over_without_two_writers(w: World) -> None:
    """The cut-off leader stops acting at its renew deadline; the other replica takes the
    lease after it expires and acts; when the route is back the old leader follows."""
    a = await w.start("a")
    b = await w.start("b", leader=False)
    w.backlog(300)
    await eventually(lambda: w.replicas() == 3, what="scaled to 3 by a")
    w.fronts["a"].partitioned = True
    cut_at = w.now()
    # It stops before its lease could expire: `eventually` fails past LEASE_SECONDS.
    await eventually(lambda: a.metric("leader") == 0, what="a stops leading",
                     within=LEASE_SECONDS)
    await eventually(lambda: holder(w) == "b", what="b takes the lease",
                     within=4 * LEASE_SECONDS)
    w.backlog(600)
    await eventually(lambda: w.replicas() == 6, what="scaled to 6 by b")
    assert {x.writer for x in w.writes if x.t > cut_at} == {"b"}
    w.fronts["a"].partitioned = False
    await asyncio.sleep(1.0)
    w.backlog(400)
    await eventually(lambda: w.replicas() == 4, what="scaled to 4 by b")
    assert {x.writer for x in w.writes if x.t > cut_at} == {"b"}
    assert b.metric("leader") == 1 and a.metric("leader") == 0
    holds(w)


@pytest.mark.parametrize("jump", [3600.0, -3600.0])
@pytest.mark.fault("Leadership", "wall clock jumps (+1 h, -1 h)")
async def test_clock_jump_keeps_one_leader(w: World, jump: float) -> None:
    """A jump of the leader's or the follower's wall clock changes nothing: expiry is judged
    on each replica's own monotonic clock, so there is no hand-over and no second writer."""
    a = await w.start("a")
    b = await w.start("b", leader=False)
    w.backlog(300)
    await eventually(lambda: w.replicas() == 3, what="scaled to 3")
    a.daemon.a.wall = lambda: time.time() + jump
    b.daemon.a.wall = lambda: time.time() - jump
    await asyncio.sleep(2 * LEASE_SECONDS)
    assert holder(w) == "a"
    assert a.metric("leader") == 1 and b.metric("leader") == 0
    w.backlog(500)
    await eventually(lambda: w.replicas() == 5, what="scaled to 5 by a")
    assert {x.writer for x in w.writes} == {"a"}
    holds(w)


async def test_the_healers_memory_goes_with_the_lease_to_the_next_leader(w: World) -> None:
    """`run` wires the daemon to its elector: the leader writes its restarts into the Lease
    with each renew, and the replica that takes the Lease over starts from them."""
    a = await w.start("a")
    b = await w.start("b", leader=False)
    key = next(iter(a.daemon.workloads))
    restart = RestartRecord(pod="crashing-pod", at=a.daemon.a.clock.now(), siblings=frozenset(),
                            ready=True, settled=Settled.FAILED)
    state = a.daemon.workloads[key]
    state.healing = replace(state.healing, restarts=(restart,), streak=1)

    def memo() -> str:
        return w.kube.get_lease(NS, LEASE).annotations.get(LEASE_MEMO_ANNOTATION, "")

    await eventually(lambda: "crashing-pod" in memo(), what="a's restart in the Lease",
                     within=LEASE_SECONDS)
    assert json.loads(memo())["healing"][key]["streak"] == 1
    await a.stop()  # releases the Lease
    await eventually(lambda: holder(w) == "b", what="b takes the lease")
    taken = b.daemon.workloads[key].healing
    assert [(r.pod, r.settled) for r in taken.restarts] == [("crashing-pod", Settled.FAILED)]
    assert taken.streak == 1
