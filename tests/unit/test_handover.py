"""The healer's restart budget, backoff and breaker pass from one leader to the next through the
Lease (`Daemon.leader_memo` -> `LeaseRecord.memo` -> `Daemon.take_over`): a new leader, or the
daemon restarted, does not start them afresh while the pods it inherits keep failing."""

from __future__ import annotations

import asyncio
import json
from dataclasses import replace
from pathlib import Path

import pytest
import structlog
from daemon_support import bench_daemon
from test_daemon_after_outage import WALL0, WORKLOAD, _Clock, _Cluster, _Pulsar, _pulsar_is

from autoscaler.config import Healing
from autoscaler.daemon import Daemon, WorkloadState
from autoscaler.engine.healing import (
    Breaker,
    BreakerState,
    HealingMemory,
    RestartRecord,
    Settled,
    handover,
    plan,
    taken_over,
)
from autoscaler.model import PodInfo, Signal
from autoscaler.ports import WriteOutcome, WriteResult

MEMORY = HealingMemory(
    restarts=(RestartRecord(pod="p1", at=900.0, siblings=frozenset({"p1", "p2"}),
                            replacement="p3", ready=True, settled=Settled.FAILED),
              RestartRecord(pod="p2", at=990.0, siblings=frozenset({"p2", "p3"}))),
    streak=2, breaker=Breaker(BreakerState.CLOSED, 1, 0.0))


def test_a_memory_handed_over_is_taken_over_whole_on_another_clock() -> None:
    handed = handover(MEMORY, now=1000.0, wall_now=WALL0)
    # Another process, 5 s later: its monotonic clock reads 55. The restarts were 100 s and
    # 10 s old; now they are 105 s and 15 s old on its clock.
    taken = taken_over(HealingMemory(), handed, now=55.0, wall_now=WALL0 + 5.0)
    assert taken.restarts == (
        RestartRecord(pod="p1", at=-50.0, siblings=frozenset({"p1", "p2"}), replacement="p3",
                      ready=True, settled=Settled.FAILED),
        RestartRecord(pod="p2", at=40.0, siblings=frozenset({"p2", "p3"})))
    assert (taken.streak, taken.breaker.state, taken.breaker.failures) == (
        2, BreakerState.CLOSED, 1)


def test_nothing_to_hand_over_is_none_and_takes_everything_away() -> None:
    assert handover(HealingMemory(), now=1.0, wall_now=WALL0) is None
    assert taken_over(MEMORY, None, now=1.0, wall_now=WALL0) == HealingMemory()


def test_a_time_from_a_clock_ahead_counts_as_now() -> None:
    # The predecessor's clock was 60 s ahead: its restarts 100 s and 10 s before its now are
    # 40 s ago and 50 s ahead of this clock; the one ahead is taken as now.
    handed = handover(MEMORY, now=1000.0, wall_now=WALL0 + 60.0)
    taken = taken_over(HealingMemory(), handed, now=1000.0, wall_now=WALL0)
    assert [r.at for r in taken.restarts] == [960.0, 1000.0]


@pytest.mark.parametrize("broken", [
    pytest.param({"restarts": "p1", "streak": 0, "breaker": {}}, id="restarts-not-a-list"),
    pytest.param({"restarts": [{"pod": 3}], "streak": 0, "breaker": {}}, id="pod-not-a-name"),
    pytest.param({"restarts": [], "streak": -1, "breaker": {"state": "closed", "failures": 0,
                                                           "opened_at": 0}}, id="negative"),
    pytest.param({"restarts": [], "streak": True, "breaker": {}}, id="bool-for-a-count"),
    pytest.param({"restarts": [], "streak": 0, "breaker": {"state": "ajar", "failures": 0,
                                                          "opened_at": 0}}, id="unknown-state"),
    pytest.param({"restarts": [], "streak": 0, "breaker": {"state": "open", "failures": 3,
                                                          "opened_at": "yesterday"}},
                 id="time-not-a-number"),
    pytest.param({"restarts": [], "streak": 0, "breaker": {"state": "open", "failures": 3,
                                                          "opened_at": 10**400}},
                 id="time-past-a-float"),
])
def test_a_memo_not_shaped_as_handed_over_is_refused(broken: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        taken_over(MEMORY, broken, now=1.0, wall_now=WALL0)


class _CrashingPods(_Cluster):
    """Every pod crash-loops, and so does each replacement of an evicted one."""

    def __init__(self, clock: _Clock) -> None:
        super().__init__(clock, 2)
        self.made = 0
        self.restarted: list[tuple[float, str]] = []
        self.events: list[str] = []
        self.pods = (self._pod(WALL0 - 3600), self._pod(WALL0 - 3600))

    async def emit_event(self, namespace: str, deployment: str, *, reason: str, message: str,
                         warning: bool = False) -> None:
        self.events.append(reason)

    def _pod(self, started: float) -> PodInfo:
        self.made += 1
        return PodInfo(f"p{self.made}", ready=False, started_at=started,
                       waiting_reason="CrashLoopBackOff", restarts=5)

    async def evict(self, namespace: str, pod: str, *,
                    resource_version: str = "") -> WriteResult:
        self.restarted.append((self.clock.t, pod))
        self.pods = (*(p for p in self.pods if p.name != pod),
                     self._pod(WALL0 + self.clock.t))
        return WriteResult(WriteOutcome.DONE)


def _folder(path: Path) -> Path:
    path.mkdir()
    return path


async def _replica(path: Path, cluster: _Cluster, clock: _Clock) -> Daemon:
    pulsar = _Pulsar()
    daemon = bench_daemon(_folder(path), cluster, probes={"pulsar": pulsar}, clock=clock)
    daemon.a.wall = lambda: WALL0 + clock.t
    await _pulsar_is(daemon, pulsar, up=True)
    return daemon


async def _run(daemon: Daemon, clock: _Clock, start: float, until: float) -> None:
    for t in range(int(start), int(until), 5):
        clock.t = t
        daemon._take_signals([Signal("wk-0000.backlog", 2400.0, clock.t),
                              Signal("wk-0000.in_rate", 0.0, clock.t)])
        await daemon.evaluate_workload(daemon.workloads[WORKLOAD])


@pytest.mark.parametrize("handed_over", [True, False])
async def test_a_new_leader_keeps_the_breaker_its_predecessor_opened(
        tmp_path: Path, handed_over: bool) -> None:
    clock = _Clock()
    cluster = _CrashingPods(clock)
    first = await _replica(tmp_path / "first", cluster, clock)
    await _run(first, clock, 1000, 1900)
    assert first.workloads[WORKLOAD].heal_plan.breaker is BreakerState.OPEN
    restarts = len(cluster.restarted)
    assert restarts >= 3  # the breaker opened on the third failed replacement

    # The first leader goes; a second process, which restarted nothing, takes the Lease.
    second = await _replica(tmp_path / "second", cluster, clock)
    if handed_over:
        second.take_over(first.leader_memo())
    await _run(second, clock, 1900, 2500)

    await asyncio.sleep(0)  # the Events are posted in the background
    if handed_over:
        assert cluster.restarted[restarts:] == []
        assert second.workloads[WORKLOAD].heal_plan.breaker is BreakerState.OPEN
        # the first leader announced the open breaker; the second does not again
        assert cluster.events.count("HealingBreakerOpen") == 1
    else:  # what a fresh memory does: it restarts at once
        assert cluster.restarted[restarts][0] == 1900


async def _remembering(tmp_path: Path) -> tuple[Daemon, WorkloadState]:
    """A daemon whose workload remembers `MEMORY`."""
    clock = _Clock()
    daemon = await _replica(tmp_path / "d", _CrashingPods(clock), clock)
    state = daemon.workloads[WORKLOAD]
    state.healing = MEMORY
    return daemon, state


async def test_a_memo_that_cannot_be_read_changes_nothing_and_is_logged(
        tmp_path: Path) -> None:
    daemon, state = await _remembering(tmp_path)
    for memo in ("{not json", '{"version": 9, "healing": {}}', "[" * 100_000 + "]" * 100_000,
                 '{"version": 1, "healing": {"tracardi/wk-0000": {"streak": "x"}}}'):
        with structlog.testing.capture_logs() as logs:
            daemon.take_over(memo)
        assert state.healing is MEMORY
        assert [e["event"] for e in logs if e["log_level"] == "error"] == [
            "handover_unreadable"], memo


def test_a_streak_of_any_handed_count_backs_off_without_overflow() -> None:
    handed = handover(replace(MEMORY, restarts=MEMORY.restarts[:1], streak=5000), now=1000.0,
                      wall_now=WALL0)
    memory = taken_over(HealingMemory(), handed, now=1000.0, wall_now=WALL0)
    result = plan(workload="tracardi/w", settings=Healing(), now=1000.0, wall_now=WALL0,
                  memory=memory, pods=(PodInfo("p9", ready=False, started_at=WALL0 - 3600,
                                               waiting_reason="CrashLoopBackOff"),))
    assert result.restart is None
    assert result.reasons[0].startswith("Backoff: 5000 restart(s) in a row")
    with pytest.raises(ValueError, match="not a count"):
        taken_over(HealingMemory(), {**handed, "streak": 10**6}, now=1.0, wall_now=WALL0)


async def test_no_memo_keeps_the_own_memory_and_a_memo_of_nothing_clears_it(
        tmp_path: Path) -> None:
    daemon, state = await _remembering(tmp_path)
    # A holder that wrote no memo (another version, a person's kubectl): this one's is kept.
    with structlog.testing.capture_logs() as logs:
        daemon.take_over("")
    assert state.healing is MEMORY
    assert [e["event"] for e in logs] == ["handover_absent"]
    # A leader with nothing to hand over still writes a memo, and it says "nothing".
    clock = _Clock()
    idle = await _replica(tmp_path / "idle", _CrashingPods(clock), clock)
    nothing = idle.leader_memo()
    assert json.loads(nothing) == {"version": 1, "healing": {}}
    daemon.take_over(nothing)
    assert (state.healing.restarts, state.healing.streak, state.healing.breaker) == (
        (), 0, Breaker())
