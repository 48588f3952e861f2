"""Faults of the Kubernetes API, injected in the simulated apiserver while the daemon runs."""

from __future__ import annotations

import asyncio

import pytest
from harness import NS, WORKER, World, eventually, holds, logged, steadily

from autoscaler.sim.kubeapi import drop_watches

pytestmark = pytest.mark.real


async def settled(w: World, replicas: int = 3) -> None:
    w.backlog(replicas * 100)  # 100 messages / 10 s drain / 10 msg/s = one replica each
    await eventually(lambda: w.replicas() == replicas, what=f"scaled to {replicas}")


@pytest.mark.fault("Kubernetes API", "409 Conflict on scale")
async def test_conflict_rereads_and_lands_the_right_count(w: World) -> None:
    """Re-reads and re-decides: one conflict, then the right count in one write."""
    d = await w.start()
    await settled(w)
    w.kube.faults.inject("update", "deployments/scale", code=409)
    w.backlog(500)
    await eventually(lambda: w.replicas() == 5, what="scaled to 5")
    assert d.metric("scale_writes", outcome="conflict") == 1
    assert logged(w, "scale_conflict_reread")
    assert [x.new for x in w.scale_writes()] == [3, 5]
    holds(w)


@pytest.mark.fault("Kubernetes API", "429 with Retry-After on scale")
async def test_throttled_write_waits_for_retry_after(w: World) -> None:
    """Waits as long as Retry-After says, then writes once; the throttle is counted."""
    d = await w.start()
    await settled(w)
    w.kube.faults.inject("update", "deployments/scale", code=429, retry_after=2, times=1)
    w.backlog(500)
    await eventually(lambda: w.replicas() == 5, what="scaled to 5")
    throttled = [a for a in w.attempts if a.status == 429]
    done = [x for x in w.scale_writes() if x.new == 5]
    assert len(throttled) == 1 and len(done) == 1
    assert done[0].t - throttled[0].t >= 1.9
    assert d.metric("scale_writes", outcome="throttled") == 1
    assert logged(w, "scale_failed", outcome="throttled")
    holds(w)


@pytest.mark.parametrize("code", [500, 503])
@pytest.mark.fault("Kubernetes API", "500 / 503 on every call")
async def test_server_errors_change_nothing_and_recover(w: World, code: int) -> None:
    """Nothing changes while every call fails; the scale lands once the API answers again."""
    d = await w.start()
    await settled(w)
    for verb, resource in (("update", "deployments/scale"), ("get", "deployments"),
                           ("get", "deployments/scale"), ("list", "pods"),
                           ("create", "events")):
        w.kube.faults.inject(verb, resource, code=code, times=10_000)
    w.backlog(600)
    await asyncio.sleep(2.0)
    assert w.replicas() == 3
    assert d.metric("workload_read_errors", workload=WORKER) >= 1
    assert logged(w, "workload_read_failed")
    w.kube.faults.clear()
    await eventually(lambda: w.replicas() == 6, what="scaled to 6 after the API recovered")
    holds(w)


@pytest.mark.fault("Kubernetes API", "timeout on scale (the write lands late)")
async def test_timed_out_write_is_reread_not_repeated(w: World) -> None:
    """A write whose answer never came is treated as unknown: re-read, and no second
    change of the same size."""
    d = await w.start()
    await settled(w)
    # The apiserver takes 12 s (the client gives up at 10 s), then applies the write.
    w.kube.faults.inject("update", "deployments/scale", delay=12.0)
    w.backlog(500)
    await eventually(lambda: w.replicas() == 5, what="scaled to 5", within=25)
    await asyncio.sleep(1.5)
    assert w.replicas() == 5
    assert d.metric("scale_writes", outcome="failed") + d.metric(
        "scale_writes", outcome="conflict") >= 1
    holds(w)


@pytest.mark.fault("Kubernetes API", "pod watch dropped")
async def test_dropped_watch_resumes(w: World) -> None:
    """The pod watch resumes from its last resourceVersion; pod changes still arrive."""
    d = await w.start()
    await settled(w)
    for front in w.fronts.values():
        assert front.served is not None
        await drop_watches(front.served.app)
    pod = w.kube.workload_pods(NS, WORKER)[0].name
    w.sick.add(pod)
    w.kube.mark_ready(NS, pod, False)
    # The healer sees the NotReady pod through the resumed watch and restarts it.
    await eventually(lambda: any(x.kind == "evict" for x in w.writes),
                     what="the NotReady pod restarted")
    assert d.alive()
    holds(w)


@pytest.mark.fault("Kubernetes API", "pod watch 410 Gone")
async def test_gone_watch_relists(w: World) -> None:
    """410 Gone makes the watch list again; pod changes still arrive."""
    await w.start()
    await settled(w)
    w.kube.compact()
    w.kube.faults.inject("watch", "pods", code=410, times=1)
    for front in w.fronts.values():
        assert front.served is not None
        await drop_watches(front.served.app)
    await eventually(lambda: logged(w, "kube_watch_expired"), what="the 410 seen")
    pod = w.kube.workload_pods(NS, WORKER)[0].name
    w.sick.add(pod)
    w.kube.mark_ready(NS, pod, False)
    await eventually(lambda: any(x.kind == "evict" for x in w.writes),
                     what="the NotReady pod restarted after the re-list")
    holds(w)


@pytest.mark.fault("Kubernetes API", "403 after an RBAC change")
async def test_forbidden_backs_off_and_recovers(w: World) -> None:
    """Reported as forbidden, retried with back-off (no storm), and acted on once RBAC is
    back."""
    d = await w.start()
    await settled(w)
    w.kube.faults.inject("update", "deployments/scale", code=403, times=10_000)
    w.backlog(600)
    await asyncio.sleep(3.0)
    forbidden = [a for a in w.attempts if a.status == 403]
    assert 1 <= len(forbidden) <= 4  # backed off, not retried at every tick
    assert d.metric("scale_writes", outcome="forbidden") == len(forbidden)
    assert w.events("FailedRescale")
    w.kube.faults.clear()
    await eventually(lambda: w.replicas() == 6, what="scaled to 6 after RBAC came back")
    holds(w)


@pytest.mark.fault("Kubernetes API", "Deployment deleted underneath")
async def test_deleted_deployment_is_reported_and_picked_up_again(w: World) -> None:
    """Reported as missing, nothing written; when it is created again it is managed again."""
    d = await w.start()
    await settled(w)
    w.kube.delete_deployment(NS, WORKER)
    deleted_at = w.now()
    await eventually(lambda: logged(w, "workload_read_failed"), what="the loss reported")
    assert d.metric("workload_read_errors", workload=WORKER, reason="NotFound") >= 1
    assert d.metric("workload_read_failing", workload=WORKER) == 1
    await steadily(lambda: not [a for a in w.attempts if a.t > deleted_at],
                   what="no write to a missing Deployment", during=1.5)
    w.kube.add_deployment(NS, WORKER, replicas=1)
    await eventually(lambda: w.replicas() == 3, what="the new Deployment scaled to 3")
    assert d.metric("workload_read_failing", workload=WORKER) == 0
    holds(w)
