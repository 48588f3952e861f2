"""Faults of the daemon's own process: SIGTERM and SIGKILL in the middle of a write.

The daemons are real processes (`tracardi-autoscaler run`); the apiserver holds their scale
write for a while so the signal lands while it is in flight.
"""

from __future__ import annotations

import asyncio
import signal

import pytest
from harness import LEASE, LEASE_SECONDS, NS, World, eventually, holds

pytestmark = pytest.mark.real


def holder(w: World) -> str | None:
    leases = [le for le in w.kube.leases(NS) if le.name == LEASE]
    return leases[0].spec.holder if leases else None


async def write_in_flight(w: World, target: int) -> None:
    w.kube.faults.inject("update", "deployments/scale", delay=1.5)
    w.backlog(target * 100)
    await eventually(lambda: w.kube.faults.pending() == 0, what="the write in flight")


@pytest.mark.fault("Process", "SIGTERM mid-write")
async def test_sigterm_finishes_the_write_and_releases_the_lease(w: World) -> None:
    """The write in flight completes, the process exits 0 and releases the lease; the next
    replica takes over at once, finds the count already written and does not write it
    again."""
    a = await w.spawn("a")
    await eventually(lambda: holder(w) == "a", what="a holds the lease")
    await write_in_flight(w, 5)
    a.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(a.proc.wait(), 15) == 0
    assert w.replicas() == 5
    assert [x.new for x in w.scale_writes()] == [5]
    assert holder(w) in (None, "")
    await w.spawn("b")
    await eventually(lambda: holder(w) == "b", what="b holds the lease", within=LEASE_SECONDS)
    # At least 1.5 s, and until a lease duration has passed since a's write: the one-writer
    # check counts any two writers' writes closer than that, a clean handover included, and b
    # can now hold the lease ~1.3 s after a's write (CI saw b's write land 2.9 s after it).
    await asyncio.sleep(max(1.5, w.scale_writes()[-1].t + LEASE_SECONDS - w.now()))
    assert [x.new for x in w.scale_writes()] == [5]  # nothing written twice
    w.backlog(700)
    await eventually(lambda: w.replicas() == 7, what="b scales on")
    holds(w)


@pytest.mark.fault("Process", "SIGKILL mid-write and restart")
async def test_sigkill_and_restart_picks_up_from_the_cluster(w: World) -> None:
    """The write the apiserver accepted lands; the restarted replica waits out the dead
    one's lease, reads the count from the cluster, does not repeat the write, and acts on
    the next change."""
    a = await w.spawn("a")
    await eventually(lambda: holder(w) == "a", what="a holds the lease")
    await write_in_flight(w, 5)
    a.proc.kill()
    await a.proc.wait()
    await eventually(lambda: w.replicas() == 5, what="the accepted write landed")
    await w.spawn("a2")
    await eventually(lambda: holder(w) == "a2", what="a2 takes the expired lease",
                     within=4 * LEASE_SECONDS)
    await asyncio.sleep(1.5)
    assert [x.new for x in w.scale_writes()] == [5]
    w.backlog(300)
    await eventually(lambda: w.replicas() == 3, what="a2 scales on")
    holds(w)
