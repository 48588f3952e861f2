"""Another writer's replica count is seen and reported, once per change: a manual scale or a
GitOps sync that sets `replicas` is otherwise fought without a word. A read that predates the
daemon's own write (a lagging watch) is no such change."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import structlog
from daemon_support import bench_daemon, wanting_more
from test_daemon_confirm import _Clock
from test_daemon_confirm import _Cluster as _ConfirmCluster

from autoscaler.daemon import CONFLICT_CHECK_SECONDS, Daemon
from autoscaler.model import Action, Signal, WorkloadStatus
from autoscaler.ports import CheckResult
from autoscaler.runtime import explain_report, format_explain

WORKLOAD = "tracardi/wk-0000"


class _Cluster(_ConfirmCluster):
    """The confirm tests' cluster, with the count, `generation` and `paused` as set and the
    Events recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.replicas, self.generation, self.paused = 1, 1, False
        self.events: list[tuple[str, str, bool]] = []
        self.hpa: str | None = None
        self.set_by = ""

    async def conflicting_autoscaler(self, namespace: str, deployment: str) -> str | None:
        return self.hpa

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        return WorkloadStatus(deployment, namespace, replicas=self.replicas,
                              ready_replicas=self.replicas, paused=self.paused,
                              resource_version=str(self.generation), generation=self.generation,
                              replicas_set_by=self.set_by)

    async def emit_event(self, namespace: str, deployment: str, *, reason: str, message: str,
                         warning: bool = False) -> None:
        self.events.append((reason, message, warning))


class _Pulsar:
    name = "pulsar"

    async def check(self) -> CheckResult:
        return CheckResult(ok=True)

    async def close(self) -> None:
        return None


async def _daemon(tmp_path: Path) -> tuple[Daemon, _Cluster]:
    """A daemon whose worker wants more than one replica (a backlog it must drain)."""
    cluster, pulsar = _Cluster(), _Pulsar()
    daemon = bench_daemon(tmp_path, cluster, probes={"pulsar": pulsar})
    await wanting_more(daemon, pulsar)
    return daemon, cluster


def _reported(daemon: Daemon, cluster: _Cluster) -> tuple[int, list[str]]:
    counted = daemon.telemetry.registry.get_sample_value(
        "tracardi_autoscaler_replicas_changed_elsewhere_total",
        {"namespace": "tracardi", "workload": "wk-0000"}) or 0
    return int(counted), [m for r, m, _ in cluster.events if r == "ReplicasChangedElsewhere"]


async def test_a_count_another_writer_set_is_reported_once(tmp_path: Path) -> None:
    daemon, cluster = await _daemon(tmp_path)
    state = daemon.workloads[WORKLOAD]
    await daemon.evaluate_workload(state)
    [wanted] = cluster.writes
    assert wanted > 1
    await daemon.evaluate_workload(state)  # the write not seen yet: the read predates it
    cluster.replicas, cluster.generation = wanted, 2  # now it is
    await daemon.evaluate_workload(state)
    assert _reported(daemon, cluster) == (0, [])

    cluster.replicas, cluster.generation = 3, 3  # a GitOps sync sets its manifest's count
    with structlog.testing.capture_logs() as logs:
        await daemon.evaluate_workload(state)
        await daemon.evaluate_workload(state)  # the same read again: one report
        await asyncio.sleep(0)  # the Event is posted in the background
    assert [(e["kept"], e["found"]) for e in logs
            if e["event"] == "replicas_changed_elsewhere"] == [(wanted, 3)]
    counted, messages = _reported(daemon, cluster)
    assert counted == 1
    assert messages == [f"spec.replicas is 3, not the {wanted} this autoscaler left it at: "
                        "another writer changed it (a manual scale, a GitOps sync of a manifest "
                        "with replicas, another controller). Its policies scale it as before; "
                        "to keep the count, pause it (autoscaler.tracardi.com/paused=true) or "
                        "leave replicas out of the manifests"]
    cluster.generation = 4  # another change of the spec (its image), not of the count
    await daemon.evaluate_workload(state)
    assert _reported(daemon, cluster)[0] == 1


async def test_the_report_names_the_writer_the_cluster_records(tmp_path: Path) -> None:
    daemon, cluster = await _daemon(tmp_path)
    state = daemon.workloads[WORKLOAD]
    await daemon.evaluate_workload(state)
    [wanted] = cluster.writes
    cluster.replicas, cluster.generation, cluster.set_by = wanted, 2, "tracardi-autoscaler"
    await daemon.evaluate_workload(state)
    cluster.replicas, cluster.generation, cluster.set_by = 3, 3, "argocd-controller"
    with structlog.testing.capture_logs() as logs:
        await daemon.evaluate_workload(state)
        await asyncio.sleep(0)
    assert [e["set_by"] for e in logs
            if e["event"] == "replicas_changed_elsewhere"] == ["argocd-controller"]
    [message] = _reported(daemon, cluster)[1]
    assert message.startswith(f"spec.replicas is 3, not the {wanted} this autoscaler left it "
                              'at: field manager "argocd-controller" set it (a manual scale, ')


@pytest.mark.parametrize("why", ["paused", "dry_run", "standby", "hpa"])
async def test_a_daemon_that_does_not_write_follows_the_count(tmp_path: Path, why: str) -> None:
    daemon, cluster = await _daemon(tmp_path)
    state = daemon.workloads[WORKLOAD]
    await daemon.evaluate_workload(state)
    cluster.replicas, cluster.generation = cluster.writes[-1], 2
    await daemon.evaluate_workload(state)
    if why == "paused":
        cluster.paused = True
    elif why == "dry_run":
        daemon.dry_run = True
    elif why == "hpa":  # found by the conflict check, which then holds the workload
        cluster.hpa = "HorizontalPodAutoscaler/tracardi-api"
        state.conflict_checked_at = float("-inf")
        assert await daemon._conflict(state, daemon.a.clock.now()) == cluster.hpa
    else:
        daemon.a.leadership.is_leader = lambda: False  # type: ignore[method-assign]
    cluster.replicas, cluster.generation = 2, 3  # an operator's count, which it follows
    await daemon.evaluate_workload(state)
    assert _reported(daemon, cluster) == (0, [])
    cluster.paused, daemon.dry_run = False, False
    daemon.a.leadership.is_leader = lambda: True  # type: ignore[method-assign]
    await daemon.evaluate_workload(state)  # the same count: nothing changed since
    assert _reported(daemon, cluster) == (0, [])


async def test_a_new_leader_takes_the_old_leaders_last_write_as_its_own(tmp_path: Path) -> None:
    daemon, cluster = await _daemon(tmp_path)
    state = daemon.workloads[WORKLOAD]
    daemon.a.leadership.is_leader = lambda: False  # type: ignore[method-assign]
    cluster.replicas, cluster.generation = 7, 5  # what the policy wants
    await daemon.evaluate_workload(state)  # a standby follows the leader's count
    daemon.a.leadership.is_leader = lambda: True  # type: ignore[method-assign]
    await daemon.evaluate_workload(state)
    cluster.replicas, cluster.generation = 8, 6  # the old leader's last write, seen late
    await daemon.evaluate_workload(state)
    assert _reported(daemon, cluster) == (0, [])
    cluster.replicas, cluster.generation = 1, 7  # then someone else's
    await daemon.evaluate_workload(state)
    assert _reported(daemon, cluster)[0] == 1


@pytest.mark.parametrize(("writer", "reported"), [("tracardi-autoscaler", 0),
                                                  ("argocd-controller", 1)])
async def test_a_new_leader_reports_a_first_change_the_cluster_says_another_made(
        tmp_path: Path, writer: str, reported: int) -> None:
    daemon, cluster = await _daemon(tmp_path)
    state = daemon.workloads[WORKLOAD]
    daemon.a.leadership.is_leader = lambda: False  # type: ignore[method-assign]
    cluster.replicas, cluster.generation = 7, 5
    await daemon.evaluate_workload(state)  # a standby follows the leader's count
    daemon.a.leadership.is_leader = lambda: True  # type: ignore[method-assign]
    await daemon.evaluate_workload(state)
    cluster.replicas, cluster.generation, cluster.set_by = 3, 6, writer  # at the handover
    await daemon.evaluate_workload(state)
    assert _reported(daemon, cluster)[0] == reported


async def test_a_count_of_0_set_elsewhere_is_reported_as_held(tmp_path: Path) -> None:
    daemon, cluster = await _daemon(tmp_path)
    state = daemon.workloads[WORKLOAD]
    await daemon.evaluate_workload(state)
    cluster.replicas, cluster.generation = 0, 5  # scaled to 0 by hand: the HPA's "disabled"
    decision = await daemon.evaluate_workload(state)
    await asyncio.sleep(0)
    assert decision is not None and decision.desired == 0
    assert _reported(daemon, cluster)[1][0].endswith(
        "At 0 it stays at 0 until someone scales it up (as with the HPA)")


@pytest.mark.parametrize(("writer", "line"), [
    ("argocd-controller", "  replicas    set by argocd-controller: if it sets them again (a chart "
                          "upgrade, a GitOps sync), it resets the count; leave replicas out of "
                          "its manifests (deploy/README.md)"),
    ("tracardi-autoscaler", "  replicas    set by tracardi-autoscaler (this autoscaler)"),
    ("", None)])
async def test_explain_says_who_set_the_replicas(tmp_path: Path, writer: str,
                                                 line: str | None) -> None:
    daemon, cluster = await _daemon(tmp_path)
    cluster.set_by = writer
    await daemon.explain()
    [workload] = explain_report(daemon)["workloads"]
    assert workload["replicas_set_by"] == (writer or None)
    shown = [s for s in format_explain({"workloads": [workload]}).splitlines()
             if s.startswith("  replicas ")]
    assert shown == ([line] if line else [])


async def test_a_conflict_that_is_gone_is_cleared_while_no_change_is_wanted(
        tmp_path: Path) -> None:
    clock = _Clock()
    cluster, pulsar = _Cluster(), _Pulsar()
    daemon = bench_daemon(tmp_path, cluster, probes={"pulsar": pulsar}, clock=clock)
    await wanting_more(daemon, pulsar)
    state = daemon.workloads[WORKLOAD]

    def conflicting() -> float | None:
        return daemon.telemetry.registry.get_sample_value(
            "tracardi_autoscaler_conflicting_autoscaler",
            {"namespace": "tracardi", "workload": "wk-0000"})

    cluster.hpa = "HorizontalPodAutoscaler/tracardi-api"
    held = await daemon.evaluate_workload(state)
    assert held is not None and held.action is Action.HOLD
    assert "ConflictingAutoscaler:HorizontalPodAutoscaler/tracardi-api" in held.reasons
    assert cluster.writes == [] and conflicting() == 1
    # The HPA is deleted, and the backlog drained: one replica is what the daemon wants now.
    cluster.hpa = None
    for _ in range(2):
        # Every field it watches read, unchanged the second time: a settled workload's
        # evaluation would be skipped.
        daemon._take_signals([Signal(f"wk-0000.{field}", value, clock.now()) for field, value
                              in (("backlog", 0.0), ("in_rate", 1.0), ("out_rate", 1.0),
                                  ("consumers", 1.0))])
        decision = await daemon.evaluate_workload(state)
        assert decision is not None and not decision.changes
        assert conflicting() == (1 if clock.now() == 100.0 else 0)  # looked at once a minute
        clock.t += CONFLICT_CHECK_SECONDS
    assert state.conflict is None and cluster.writes == []
