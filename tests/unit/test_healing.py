"""Table-driven unit tests of the healer's choice (`engine.healing`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import pytest

from autoscaler.config import Healing, HttpProbeSettings
from autoscaler.engine.healing import (
    DELETE_AFTER_THROTTLES,
    SUSPICION_MARGIN_SECONDS,
    THROTTLE_RETRY_SECONDS,
    Breaker,
    BreakerState,
    HealingMemory,
    HealingPlan,
    PodTrack,
    ProbeRecord,
    Restart,
    RestartKind,
    RestartRecord,
    Settled,
    SubscriptionRead,
    Suspicion,
    Symptom,
    Throttle,
    consumer_ip,
    plan,
    record_outcome,
    reset_breaker,
    restart_timeout,
    scale_down_hold,
)
from autoscaler.model import ConsumerStat, DependencyState, Health, PodInfo
from autoscaler.ports import WriteOutcome

NOW = 10_000.0            # the daemon's monotonic clock
WALL = 1_700_000_000.0    # epoch seconds at NOW; both clocks advance together in these tests
UP = {"es": DependencyState("es", Health.UP)}
PROBE = HttpProbeSettings()


def healing(**overrides: Any) -> Healing:
    values: dict[str, Any] = {"http_probe": PROBE, "min_available": 0, "backoff_seconds": 30.0}
    values.update(overrides)
    return Healing(**values)


def pod(name: str, *, age: float = 600.0, at: float = NOW, **fields: Any) -> PodInfo:
    """A pod that had been running for `age` seconds at monotonic time `at`."""
    return PodInfo(name=name, started_at=WALL + (at - NOW) - age, **fields)


def run(pods: Sequence[PodInfo], *, settings: Healing | None = None,
        memory: HealingMemory | None = None, now: float = NOW,
        probes: Mapping[str, ProbeRecord] | None = None,
        consumers: Sequence[ConsumerStat] = (), backlog: float | None = None,
        read_at: float | None = None, deps: Mapping[str, DependencyState] = UP,
        requires: tuple[str, ...] = ("es",)) -> HealingPlan:
    """One evaluation; with a `backlog` it sees a subscription read made at `read_at` (`now`
    unless given: a new read)."""
    subscription = None if backlog is None else SubscriptionRead(
        now if read_at is None else read_at, backlog, tuple(consumers))
    return plan(workload="ns/wk", settings=settings or healing(), pods=tuple(pods), now=now,
                wall_now=WALL + (now - NOW), memory=memory or HealingMemory(),
                probes=probes or {}, subscription=subscription, requires=requires,
                dependencies=deps)


def replay(steps: Sequence[tuple[float, Sequence[PodInfo]]], **kwargs: Any) -> HealingPlan:
    """Evaluate at each (time, pods), threading the memory; return the last plan."""
    memory = kwargs.pop("memory", None) or HealingMemory()
    result: HealingPlan | None = None
    for now, pods in steps:
        result = run(pods, now=now, memory=memory, **kwargs)
        memory = result.memory
    assert result is not None
    return result


def symptoms(result: HealingPlan) -> set[tuple[str, Symptom]]:
    return {(v.pod, v.reason) for v in result.verdicts}


FAILING = {"a": ProbeRecord(3, "timeout after 1.0s")}


# ------------------------------------------------------------------------- consumer matching

@pytest.mark.parametrize(("address", "ip"), [
    pytest.param("/10.1.2.3:41234", "10.1.2.3", id="pulsar-ipv4"),
    pytest.param("10.1.2.3:41234", "10.1.2.3", id="no-slash"),
    pytest.param("pod-a.ns.svc/10.1.2.3:41234", "10.1.2.3", id="hostname-slash-ip"),
    pytest.param("/[fd00::1]:41234", "fd00::1", id="ipv6-brackets"),
    pytest.param("/fd00:0:0:0:0:0:0:1:41234", "fd00::1", id="ipv6-legacy-java"),
    pytest.param("/10.1.2.3", "10.1.2.3", id="no-port"),
    pytest.param("/fd00::1", "fd00::1", id="ipv6-no-port"),
])
def test_consumer_ip(address: str, ip: str) -> None:
    assert consumer_ip(address) == ip


# ---------------------------------------------------------------------- single-look verdicts

VERDICT_CASES = [
    pytest.param([pod("a")], {"probes": FAILING}, {("a", Symptom.PROBE_FAILED)},
                 id="probe-failed-at-threshold"),
    pytest.param([pod("a")], {"probes": {"a": ProbeRecord(2, "timeout")}}, set(),
                 id="probe-below-threshold"),
    pytest.param([pod("a")], {"probes": FAILING, "settings": healing(http_probe=None)}, set(),
                 id="probe-ignored-without-http-probe-settings"),
    pytest.param([pod("a", age=59.0)], {"probes": FAILING}, set(),
                 id="probe-failed-inside-grace-not-judged"),
    pytest.param([pod("a", age=60.0)], {"probes": FAILING}, {("a", Symptom.PROBE_FAILED)},
                 id="grace-ends-exactly"),
    pytest.param([PodInfo("a", started_at=0.0, waiting_reason="CrashLoopBackOff")],
                 {"probes": FAILING}, set(), id="not-started-not-judged"),
    pytest.param([pod("a", deleting=True)], {"probes": FAILING}, set(),
                 id="terminating-not-judged"),
    pytest.param([pod("a", waiting_reason="CrashLoopBackOff", restarts=4)], {},
                 {("a", Symptom.CRASH_LOOP)}, id="crash-loop-back-off"),
    pytest.param([pod("a", age=10.0, waiting_reason="CrashLoopBackOff", ready=False)], {},
                 set(), id="crash-loop-inside-grace-not-judged"),
    pytest.param([pod("a", restarts=50)], {}, set(), id="old-restarts-are-the-baseline"),
    pytest.param([pod("a", ready=False)], {}, set(), id="not-ready-first-seen-not-judged"),
    pytest.param([pod("a"), pod("b", restarts=1)], {}, set(), id="healthy-pods"),
]


@pytest.mark.parametrize(("pods", "kwargs", "expected"), VERDICT_CASES)
def test_verdicts(pods: list[PodInfo], kwargs: dict[str, Any],
                  expected: set[tuple[str, Symptom]]) -> None:
    assert symptoms(run(pods, **kwargs)) == expected


def test_probe_evidence_names_path_tally_and_error() -> None:
    [verdict] = run([pod("a")], probes=FAILING).verdicts
    assert verdict.evidence == "probe /healthcheck failed 3/3, last error timeout after 1.0s"


# ------------------------------------------------------------------- verdicts over time

def steady(*, ready: bool = True, **fields: Any) -> Callable[[float], list[PodInfo]]:
    """Pod `a` (started 600 s before NOW) as seen at any time."""
    return lambda t: [pod("a", age=600.0 + t - NOW, at=t, ready=ready, **fields)]


@pytest.mark.parametrize(("offsets", "pods_at", "expected"), [
    pytest.param((0, 120), steady(ready=False), set(), id="not-ready-at-limit"),
    pytest.param((0, 121), steady(ready=False), {("a", Symptom.NOT_READY)},
                 id="not-ready-past-limit"),
    # started 30 s before NOW: the NotReady clock starts when the 60 s grace ends (NOW + 30).
    pytest.param((0, 150), lambda t: [pod("a", age=30.0 + t - NOW, at=t, ready=False)], set(),
                 id="not-ready-counts-after-grace"),
    pytest.param((0, 151), lambda t: [pod("a", age=30.0 + t - NOW, at=t, ready=False)],
                 {("a", Symptom.NOT_READY)}, id="not-ready-past-limit-after-grace"),
    pytest.param((0, 60, 121), lambda t: [pod("a", age=600.0 + t - NOW, at=t,
                                              ready=t != NOW + 60)], set(),
                 id="ready-in-between-resets-clock"),
    pytest.param((0, 10), lambda t: [pod("a", at=t, restarts=2 if t == NOW else 5)],
                 {("a", Symptom.CRASH_LOOP)}, id="restarts-grew-by-limit"),
    pytest.param((0, 10), lambda t: [pod("a", at=t, restarts=2 if t == NOW else 4)], set(),
                 id="restarts-grew-below-limit"),
    pytest.param((0, 100, 500),
                 lambda t: [pod("a", at=t, restarts={NOW: 0, NOW + 100: 2}.get(t, 3))],
                 {("a", Symptom.CRASH_LOOP)}, id="restarts-keep-growing"),
    pytest.param((0, 100, 701, 800),
                 lambda t: [pod("a", at=t, restarts={NOW: 0, NOW + 800: 3}.get(t, 2))],
                 set(), id="restart-baseline-moves-after-a-quiet-window"),
])
def test_verdicts_over_time(offsets: tuple[float, ...],
                            pods_at: Callable[[float], list[PodInfo]],
                            expected: set[tuple[str, Symptom]]) -> None:
    result = replay([(NOW + o, pods_at(NOW + o)) for o in offsets])
    assert symptoms(result) == expected


def done(pod_name: str, at: float, siblings: Sequence[str], **fields: Any) -> RestartRecord:
    return RestartRecord(pod=pod_name, at=at, siblings=frozenset(siblings), **fields)


# --------------------------------------------------------------------------- stuck consumers

def consumers(a_rate: float, b_rate: float, *, a_address: str = "/10.0.0.1:40001",
              ) -> tuple[ConsumerStat, ...]:
    return (ConsumerStat("c-a", a_address, a_rate), ConsumerStat("c-b", "/10.0.0.2:40002",
                                                                 b_rate))


TWO = [pod("a", ip="10.0.0.1"), pod("b", ip="10.0.0.2")]


@pytest.mark.parametrize(("offsets", "stats", "backlog", "expected"), [
    pytest.param((0, 10, 21), consumers(0, 50), 1000.0, {("a", Symptom.STUCK_CONSUMER)},
                 id="stuck-past-limit-in-three-reads"),
    pytest.param((0, 10, 20), consumers(0, 50), 1000.0, set(), id="stuck-at-limit"),
    pytest.param((0, 21), consumers(0, 50), 1000.0, set(), id="two-reads-are-too-few"),
    pytest.param((0, 10, 21), consumers(0, 50), 0.0, set(), id="no-backlog-idle-is-fine"),
    pytest.param((0, 10, 21), consumers(0, 50), None, set(), id="backlog-unknown"),
    pytest.param((0, 10, 21), consumers(0, 0), 1000.0, set(), id="nobody-progresses"),
    pytest.param((0, 10, 21), consumers(3, 50), 1000.0, set(), id="draining"),
    pytest.param((0, 10, 21), consumers(0, 50, a_address="/10.0.0.9:40001"), 1000.0, set(),
                 id="consumer-of-no-pod"),
    pytest.param((0, 10, 21), consumers(0, 50, a_address="10.0.0.1:1"), 1000.0,
                 {("a", Symptom.STUCK_CONSUMER)}, id="address-without-slash"),
    pytest.param((0, 10, 21), (ConsumerStat("c-a1", "/10.0.0.1:1", 0.0),
                               ConsumerStat("c-a2", "/10.0.0.1:2", 4.0),
                               ConsumerStat("c-b", "/10.0.0.2:3", 5.0)), 1000.0, set(),
                 id="one-of-the-pods-consumers-drains"),
])
def test_stuck_consumer(offsets: tuple[float, ...], stats: tuple[ConsumerStat, ...],
                        backlog: float | None, expected: set[tuple[str, Symptom]]) -> None:
    steps = [(NOW + o, [pod(p.name, at=NOW + o, ip=p.ip, age=600 + o) for p in TWO])
             for o in offsets]
    assert symptoms(replay(steps, consumers=stats, backlog=backlog)) == expected


@dataclass(frozen=True)
class Look:
    """One evaluation at NOW + `at` of pods a and b, seeing a subscription read made at
    NOW + `read` (by default a new read at `at`): c-a drains `a`, c-b drains `b` msg/s."""

    at: float
    a: float = 0.0
    b: float = 50.0
    backlog: float | None = 1000.0
    read: float | None = None
    down: bool = False


def look(steps: Sequence[Look], *, settings: Healing | None = None) -> HealingPlan:
    memory = HealingMemory()
    result: HealingPlan | None = None
    for s in steps:
        now = NOW + s.at
        result = run([pod(p.name, at=now, ip=p.ip, age=600 + s.at) for p in TWO], now=now,
                     memory=memory, consumers=consumers(s.a, s.b), backlog=s.backlog,
                     read_at=None if s.read is None else NOW + s.read, settings=settings,
                     deps={"es": DependencyState("es", Health.DOWN)} if s.down else UP)
        memory = result.memory
    assert result is not None
    return result


STUCK_A = {("a", Symptom.STUCK_CONSUMER)}


@pytest.mark.parametrize(("steps", "expected"), [
    pytest.param([Look(at=0), Look(at=10), Look(at=21)], STUCK_A, id="three-reads-past-limit"),
    pytest.param([Look(at=0), Look(at=10, read=0), Look(at=21, read=0)], set(),
                 id="one-read-evaluated-again-counts-once"),
    pytest.param([Look(at=0), Look(at=5), Look(at=10, b=0), Look(at=15), Look(at=21, b=0)],
                 STUCK_A, id="reads-where-nobody-drains-keep-the-clock"),
    pytest.param([Look(at=0), Look(at=10, b=0), Look(at=21, b=0)], set(),
                 id="reads-where-nobody-drains-count-nothing"),
    pytest.param([Look(at=t, b=0) for t in (0, 5, 10, 15, 21)], set(),
                 id="nobody-draining-never-starts-the-clock"),
    pytest.param([Look(at=0), Look(at=5), Look(at=10, a=2), Look(at=15), Look(at=21)], set(),
                 id="draining-starts-over"),
    pytest.param([Look(at=0), Look(at=5), Look(at=10, backlog=None), Look(at=15),
                  Look(at=21)], set(), id="a-missing-read-starts-over"),
    pytest.param([Look(at=0), Look(at=5), Look(at=10, backlog=0), Look(at=15), Look(at=21)],
                 set(), id="an-empty-backlog-starts-over"),
    pytest.param([Look(at=0), Look(at=5), Look(at=10, down=True), Look(at=15), Look(at=21)],
                 set(), id="an-outage-starts-over"),
    pytest.param([Look(at=0), Look(at=5), Look(at=10, down=True), Look(at=15), Look(at=25),
                  Look(at=36)], STUCK_A, id="judged-again-after-the-outage"),
])
def test_stuck_consumer_counts_reads(steps: list[Look], expected: set[tuple[str, Symptom]]
                                     ) -> None:
    assert symptoms(look(steps)) == expected


def test_stuck_consumer_reads_setting() -> None:
    steps = [Look(at=0), Look(at=25)]
    assert symptoms(look(steps, settings=healing(stuck_consumer_reads=2))) == STUCK_A
    assert symptoms(look(steps, settings=healing(stuck_consumer_reads=3))) == set()


def test_stuck_consumer_not_counted_inside_the_grace() -> None:
    """Reads while the pod is starting count nothing: its consumer may not be connected yet."""
    memory = HealingMemory()
    for offset in (0, 10, 20, 30, 40, 41):  # a started at NOW - 40: out of its grace at NOW + 20
        now = NOW + offset
        result = run([pod("a", at=now, ip="10.0.0.1", age=40 + offset),
                      pod("b", at=now, ip="10.0.0.2", age=600 + offset)], now=now,
                     memory=memory, consumers=consumers(0, 50), backlog=1000.0)
        memory = result.memory
        assert symptoms(result) == (STUCK_A if offset == 41 else set()), offset
    [track] = [t for t in memory.pods if t.name == "a"]
    assert (track.idle_since, track.idle_reads) == (NOW + 20, 4)


def test_stuck_consumer_clock_restarts_when_it_drains() -> None:
    memory = HealingMemory()
    for offset, a_rate in ((0, 0.0), (10, 0.0), (20, 2.0), (25, 0.0), (35, 0.0)):
        result = run(TWO, now=NOW + offset, memory=memory, consumers=consumers(a_rate, 5),
                     backlog=10.0)
        memory = result.memory
    assert result.verdicts == ()
    result = run(TWO, now=NOW + 46, memory=memory, consumers=consumers(0, 5), backlog=10.0)
    assert symptoms(result) == STUCK_A
    assert result.restart is not None
    assert result.restart.evidence == (
        "consumer c-a at 10.0.0.1 drains 0 msg/s while the backlog is 10; idle for 21s "
        "(limit 20s) over 3 reads in which other consumers drained (needed 3)")


# ------------------------------------------------------------------------------ suspicions

def suspected(result: HealingPlan) -> set[tuple[str, Symptom, float, float]]:
    return {(s.pod, s.reason, s.since - NOW, s.until - NOW) for s in result.suspicions}


ONE_FAILURE = {"a": ProbeRecord(1, "timeout after 1.0s")}
PROBE_HOLD = 10.0 * 3 + SUSPICION_MARGIN_SECONDS
FIRST_IDLE = {"consumers": consumers(0, 50), "backlog": 1000.0}


@pytest.mark.parametrize(("pods", "kwargs", "expected"), [
    pytest.param(TWO, {"probes": ONE_FAILURE},
                 {("a", Symptom.PROBE_FAILED, 0.0, PROBE_HOLD)}, id="probe-started-failing"),
    pytest.param(TWO, FIRST_IDLE,
                 {("a", Symptom.STUCK_CONSUMER, 0.0, 20.0 + SUSPICION_MARGIN_SECONDS)},
                 id="consumer-first-idle-read"),
    pytest.param(TWO, {"probes": ONE_FAILURE, **FIRST_IDLE},
                 {("a", Symptom.PROBE_FAILED, 0.0, PROBE_HOLD)}, id="both-longer-limit"),
    pytest.param(TWO, {"probes": FAILING}, {("a", Symptom.PROBE_FAILED, 0.0, PROBE_HOLD)},
                 id="judged-still-suspected"),
    pytest.param(TWO, {"probes": {"a": ProbeRecord(0)}}, set(), id="probe-passing"),
    pytest.param([pod("a", ready=False), pod("b")], {"probes": ONE_FAILURE}, set(),
                 id="not-ready-goes-first-anyway"),
    pytest.param([pod("a", age=30), pod("b")], {"probes": ONE_FAILURE}, set(),
                 id="inside-grace"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "settings": healing(http_probe=None)}, set(),
                 id="no-http-probe"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "deps": {"es": DependencyState(
        "es", Health.DOWN)}}, set(), id="outage"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "deps": {"es": DependencyState(
        "es", Health.UP, failures=1)}}, set(), id="dependency-suspect"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "memory": HealingMemory(frozen_at=NOW - 10)},
                 set(), id="outage-recovery-past-the-hold"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "memory": HealingMemory(frozen_at=NOW - 30)},
                 {("a", Symptom.PROBE_FAILED, 0.0, PROBE_HOLD)},
                 id="outage-recovery-ends-in-time"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "settings": healing(enabled=False)}, set(),
                 id="healing-disabled"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "memory": HealingMemory(
        breaker=Breaker(BreakerState.OPEN, 3, NOW - 100))}, set(), id="breaker-open"),
    pytest.param([*TWO, pod("c", age=40)], {"probes": ONE_FAILURE, "memory": HealingMemory(
        restarts=(done("x", NOW - 40, ["x", "a", "b"], ready=True),), streak=1,
        breaker=Breaker(BreakerState.HALF_OPEN, 2, NOW - 2000))}, set(),
                 id="breaker-half-open-trial-pending"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "settings": healing(min_available=2)}, set(),
                 id="min-available-forbids"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "memory": HealingMemory(
        restarts=tuple(done("x", NOW - t, "x", settled=Settled.HEALTHY)
                       for t in (500, 400, 300)), streak=3)}, set(),
                 id="budget-spent-past-the-hold"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "memory": HealingMemory(
        restarts=tuple(done("x", NOW - t, "x", settled=Settled.HEALTHY)
                       for t in (590, 400, 300)), streak=3)},
                 {("a", Symptom.PROBE_FAILED, 0.0, PROBE_HOLD)}, id="budget-frees-in-time"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "memory": HealingMemory(
        restarts=(done("x", NOW - 20, "x", replacement="r", ready=True,
                       settled=Settled.HEALTHY),), streak=1)},
                 {("a", Symptom.PROBE_FAILED, 0.0, PROBE_HOLD)}, id="backoff-ends-in-time"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "memory": HealingMemory(
        restarts=(done("x", NOW - 20, "x", replacement="r", ready=True,
                       settled=Settled.HEALTHY),), streak=3)}, set(),
                 id="backoff-ends-too-late"),
    pytest.param(TWO, {"probes": ONE_FAILURE, "memory": HealingMemory(
        throttles=(Throttle("b", 1, NOW + 60),))}, set(), id="throttled-too-long"),
])
def test_suspicions(pods: list[PodInfo], kwargs: dict[str, Any],
                    expected: set[tuple[str, Symptom, float, float]]) -> None:
    assert suspected(run(pods, **kwargs)) == expected


def test_a_flaky_probe_holds_scale_downs_once() -> None:
    """Failures that follow each other within a hold's length are one suspicion; a pod that
    stayed clear for that long may be suspected again."""
    memory = HealingMemory()
    seen: list[set[tuple[str, Symptom, float, float]]] = []
    for offset, failures in ((0, 1), (10, 0), (20, 1), (30, 0), (40, 1), (80, 0), (120, 1)):
        result = run(TWO, now=NOW + offset, memory=memory,
                     probes={"a": ProbeRecord(failures, "timeout")})
        memory = result.memory
        seen.append(suspected(result))
    first = {("a", Symptom.PROBE_FAILED, 0.0, PROBE_HOLD)}
    again = {("a", Symptom.PROBE_FAILED, 120.0, 120.0 + PROBE_HOLD)}
    assert seen == [first, set(), first, set(), set(), set(), again]


def test_an_episode_is_forgotten_once_over() -> None:
    """A pod clear for a hold's length keeps no suspicion in memory."""
    memory = run(TWO, probes=ONE_FAILURE).memory
    clear = {"a": ProbeRecord(0)}
    during = run(TWO, now=NOW + PROBE_HOLD - 1, memory=memory, probes=clear).memory
    after = run(TWO, now=NOW + PROBE_HOLD, memory=memory, probes=clear).memory
    [a_during] = [t for t in during.pods if t.name == "a"]
    [a_after] = [t for t in after.pods if t.name == "a"]
    assert (a_during.suspect_since, a_during.suspect_seen) == (NOW, NOW)
    assert (a_after.suspect_since, a_after.suspect_seen) == (None, None)


def test_scale_down_hold_waits_for_a_suspicion_until_it_expires() -> None:
    settings = healing()
    last = run(TWO, probes=ONE_FAILURE)
    assert scale_down_hold(last, last.memory, now=NOW + 10, settings=settings) == (
        "ScaleDownHeld: a may need a restart (ProbeFailed suspected 10s ago, waiting at most "
        "25s more)")
    assert scale_down_hold(last, last.memory, now=NOW + PROBE_HOLD - 0.5,
                           settings=settings) is not None
    assert scale_down_hold(last, last.memory, now=NOW + PROBE_HOLD, settings=settings) is None
    assert scale_down_hold(last, last.memory, now=NOW + 10,
                           settings=healing(enabled=False)) is None
    assert scale_down_hold(None, HealingMemory(), now=NOW, settings=settings) is None
    assert scale_down_hold(run(TWO), HealingMemory(), now=NOW, settings=settings) is None


def test_scale_down_hold_while_a_replacement_starts() -> None:
    settings = healing()
    memory = HealingMemory(restarts=(done("x", NOW - 10, ["x", "a", "b"]),), streak=1)
    assert scale_down_hold(None, memory, now=NOW, settings=settings) == \
        "ScaleDownHeld: a restarted pod's replacement is starting"
    assert scale_down_hold(None, memory, now=NOW - 10 + restart_timeout(settings),
                           settings=settings) is None


def test_scale_down_hold_picks_the_oldest_suspicion() -> None:
    last = replace(run(TWO), suspicions=(
        Suspicion("b", Symptom.STUCK_CONSUMER, NOW - 5, NOW + 20),
        Suspicion("a", Symptom.PROBE_FAILED, NOW - 8, NOW + 27)))
    held = scale_down_hold(last, last.memory, now=NOW, settings=healing())
    assert held is not None and held.startswith("ScaleDownHeld: a may need a restart")


# ------------------------------------------------------------------------- the restart choice

SICK_A = {"probes": FAILING}
HEALTHY_LAST = (done("x", NOW - 500, "x", replacement="a", ready=True,
                     settled=Settled.HEALTHY),)


PLAN_CASES = [
    pytest.param([pod("a"), pod("b")], {**SICK_A, "deps": {"es": DependencyState(
        "es", Health.DOWN)}}, None, "DependencyDown:es", id="outage-down"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "deps": {"es": DependencyState(
        "es", Health.UNKNOWN)}}, None, "DependencyUnknown:es", id="outage-unknown"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "deps": {}}, None, "DependencyUnknown:es",
                 id="outage-state-missing"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "requires": ()}, "a", "ProbeFailed: a",
                 id="no-requires-heals"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "settings": healing(enabled=False)}, None,
                 "HealingDisabled", id="disabled"),
    pytest.param([pod("a"), pod("b")], {}, None, "NoUnhealthyPods", id="all-healthy"),
    pytest.param([pod("a"), pod("b")], SICK_A, "a", "ProbeFailed: a: probe /healthcheck",
                 id="restart-the-sick-pod"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "settings": healing(min_available=2)},
                 None, "MinAvailable", id="min-available-holds"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "settings": healing(min_available=1)},
                 "a", "ProbeFailed", id="min-available-just-enough"),
    pytest.param([pod("a", ready=False, waiting_reason="CrashLoopBackOff"), pod("b")],
                 {"settings": healing(min_available=1)}, "a", "CrashLoop",
                 id="not-ready-pod-does-not-lower-ready-count"),
    pytest.param([pod("a", ready=False, waiting_reason="CrashLoopBackOff")],
                 {"settings": healing(min_available=1)}, "a", "CrashLoop",
                 id="sole-broken-pod-below-min-available"),
    pytest.param([pod("a"), pod("b", ready=False, waiting_reason="CrashLoopBackOff"),
                  pod("c")], SICK_A, "b", "CrashLoop", id="not-ready-pod-first"),
    pytest.param([pod("a"), pod("b", waiting_reason="CrashLoopBackOff")], SICK_A, "a",
                 "ProbeFailed", id="symptom-order-breaks-ties"),
    pytest.param([pod("b", waiting_reason="CrashLoopBackOff"),
                  pod("a", waiting_reason="CrashLoopBackOff")], {}, "a", "CrashLoop",
                 id="name-breaks-ties"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        restarts=(done("x", NOW - 10, ["x", "a", "b"]),), streak=1)}, None,
                 "RestartInFlight: x restarted 10s ago, no replacement yet",
                 id="in-flight-no-replacement"),
    pytest.param([pod("a"), pod("b"), pod("c", age=5, ready=False)], {**SICK_A, "memory":
        HealingMemory(restarts=(done("x", NOW - 10, ["x", "a", "b"]),), streak=1)}, None,
                 "RestartInFlight: x restarted 10s ago, replacement c not ready",
                 id="in-flight-replacement-not-ready"),
    pytest.param([pod("a"), pod("b"), pod("c", age=5)], {**SICK_A, "memory": HealingMemory(
        restarts=(done("x", NOW - 40, ["x", "a", "b"]),), streak=1)}, "a", "ProbeFailed",
                 id="replacement-ready-ends-in-flight"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        restarts=(done("x", NOW - 180, ["x", "a", "b"]),), streak=1)}, "a", "ProbeFailed",
                 id="in-flight-timed-out"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        restarts=tuple(done("x", NOW - t, "x", settled=Settled.HEALTHY)
                       for t in (500, 400, 300)), streak=3)}, None,
                 "RestartBudget: 3 restarts in the last 600s (max 3)", id="budget-spent"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        restarts=tuple(done("x", NOW - t, "x", settled=Settled.HEALTHY)
                       for t in (600, 400, 300)), streak=3)}, "a", "ProbeFailed",
                 id="budget-window-slides"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        restarts=HEALTHY_LAST, streak=1), "now": NOW - 500 + 29}, None,
                 "Backoff: 1 restart(s) in a row, next 30s after the last (in 1s)",
                 id="backoff-first"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        restarts=HEALTHY_LAST, streak=1), "now": NOW - 500 + 30}, "a", "ProbeFailed",
                 id="backoff-first-passed"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        restarts=HEALTHY_LAST, streak=3), "now": NOW - 500 + 119}, None,
                 "Backoff: 3 restart(s) in a row, next 120s", id="backoff-doubles"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        restarts=HEALTHY_LAST, streak=3), "now": NOW - 500 + 120}, "a", "ProbeFailed",
                 id="backoff-doubled-passed"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        restarts=(done("x", NOW - 600, "x", settled=Settled.HEALTHY),), streak=9)}, "a",
                 "ProbeFailed", id="quiet-window-resets-backoff"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        throttles=(Throttle("a", 1, NOW + 4),))}, None,
                 "EvictionThrottled: eviction of a refused 1x (429), retry in 4s",
                 id="throttled-waits"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        breaker=Breaker(BreakerState.OPEN, 3, NOW - 100))}, None,
                 "BreakerOpen: 3 replacements failed in a row; resets in 1700s",
                 id="breaker-open"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        breaker=Breaker(BreakerState.OPEN, 3, NOW - 1800))}, "a", "ProbeFailed",
                 id="breaker-half-open-after-reset-time"),
    pytest.param([pod("a"), pod("b"), pod("c", age=40)], {**SICK_A, "memory": HealingMemory(
        restarts=(done("x", NOW - 40, ["x", "a", "b"]),), streak=1,
        breaker=Breaker(BreakerState.HALF_OPEN, 2, NOW - 2000))}, None,
                 "BreakerHalfOpen: waiting for the replacement of x", id="half-open-one-trial"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        frozen_at=NOW - 30)}, None, "OutageRecovery: dependencies back for 30s, grace 60s",
                 id="outage-recovery-grace"),
    pytest.param([pod("a"), pod("b")], {**SICK_A, "memory": HealingMemory(
        frozen_at=NOW - 60)}, "a", "ProbeFailed", id="outage-recovery-over"),
]


@pytest.mark.parametrize(("ready", "version"), [
    pytest.param(False, "41", id="judged-by-its-status-precondition"),
    pytest.param(True, "", id="judged-by-its-probe-none"),
])
def test_the_restart_names_the_version_only_of_a_pod_judged_not_ready(ready: bool,
                                                                     version: str) -> None:
    sick = pod("a", ready=ready, resource_version="41",
               waiting_reason="" if ready else "CrashLoopBackOff")
    result = run([sick, pod("b")], probes=FAILING if ready else None)
    assert result.restart is not None and result.restart.pod == "a", result.reasons
    assert result.restart.resource_version == version


@pytest.mark.parametrize(("pods", "kwargs", "chosen", "reason"), PLAN_CASES)
def test_plan(pods: list[PodInfo], kwargs: dict[str, Any], chosen: str | None,
              reason: str) -> None:
    now = kwargs.get("now", NOW)
    pods = [replace(p, started_at=p.started_at + (now - NOW)) for p in pods]
    result = run(pods, **kwargs)
    assert (result.restart.pod if result.restart else None) == chosen, result.reasons
    assert result.reasons[0].startswith(reason), result.reasons
    if result.restart:
        assert result.restart.pod in {v.pod for v in result.verdicts}
        assert result.restart.kind is RestartKind.EVICT
        assert result.restart.siblings == frozenset(p.name for p in pods)


def test_sick_replacement_counts_against_breaker_but_stays_in_flight_until_timeout() -> None:
    pods = [pod("a"), pod("b"), pod("c", age=65, ready=False, waiting_reason="CrashLoopBackOff")]
    memory = HealingMemory(restarts=(done("x", NOW - 70, ["x", "a", "b"]),), streak=1)
    result = run(pods, probes=FAILING, memory=memory)
    assert result.restart is None
    assert result.reasons[0].startswith("RestartInFlight: x restarted 70s ago, replacement c")
    assert result.memory.breaker.failures == 1
    assert [r.settled for r in result.memory.restarts] == [Settled.FAILED]
    later = run([replace(p, started_at=p.started_at + 110) for p in pods], probes=FAILING,
                memory=result.memory, now=NOW + 110)
    assert later.restart is not None
    assert (later.restart.pod, later.memory.breaker.failures) == ("c", 1)


def test_outage_reports_every_dependency_and_keeps_verdicts() -> None:
    result = run([pod("a"), pod("b")], probes=FAILING, requires=("es", "redis"),
                 deps={"es": DependencyState("es", Health.DOWN)})
    assert result.restart is None
    assert result.reasons == ("DependencyDown:es", "DependencyUnknown:redis")
    assert symptoms(result) == {("a", Symptom.PROBE_FAILED)}
    assert result.memory.frozen_at == NOW


def test_outage_restarts_not_ready_clock() -> None:
    """Pods not ready through an outage get a fresh NotReady limit once it is over."""
    memory = HealingMemory()
    down = {"es": DependencyState("es", Health.DOWN)}
    for offset, deps in ((0, UP), (10, down), (300, down), (301, UP), (420, UP)):
        result = run([pod("a", ready=False, age=600 + offset, at=NOW + offset)],
                     now=NOW + offset, memory=memory, deps=deps)
        memory = result.memory
    assert result.verdicts == ()
    result = run([pod("a", ready=False, age=1022, at=NOW + 422)], now=NOW + 422, memory=memory)
    assert symptoms(result) == {("a", Symptom.NOT_READY)}
    assert result.restart is not None


# ----------------------------------------------------------------------- eviction outcomes

RESTART = Restart(workload="ns/wk", pod="a", kind=RestartKind.EVICT,
                  reason=Symptom.PROBE_FAILED, evidence="probe", siblings=frozenset({"a", "b"}))


@pytest.mark.parametrize(("memory", "outcome", "retry_after", "expected"), [
    pytest.param(HealingMemory(throttles=(Throttle("a", 2, NOW),)), WriteOutcome.DONE, None,
                 HealingMemory(restarts=(done("a", NOW, ["a", "b"]),), streak=1),
                 id="done-is-in-flight"),
    pytest.param(HealingMemory(streak=2), WriteOutcome.DONE, None,
                 HealingMemory(restarts=(done("a", NOW, ["a", "b"]),), streak=3),
                 id="done-extends-streak"),
    pytest.param(HealingMemory(), WriteOutcome.THROTTLED, None,
                 HealingMemory(throttles=(Throttle("a", 1, NOW + THROTTLE_RETRY_SECONDS),)),
                 id="throttled-default-wait"),
    pytest.param(HealingMemory(throttles=(Throttle("a", 1, NOW - 5), Throttle("b", 1, NOW))),
                 WriteOutcome.THROTTLED, 20.0,
                 HealingMemory(throttles=(Throttle("b", 1, NOW), Throttle("a", 2, NOW + 20))),
                 id="throttled-retry-after-and-count"),
    pytest.param(HealingMemory(throttles=(Throttle("a", 2, NOW),)), WriteOutcome.NOT_FOUND,
                 None, HealingMemory(), id="not-found-forgets"),
    pytest.param(HealingMemory(throttles=(Throttle("a", 2, NOW),)), WriteOutcome.FAILED,
                 None, HealingMemory(), id="failed-forgets"),
    pytest.param(HealingMemory(streak=1), WriteOutcome.CONFLICT, None,
                 HealingMemory(streak=1), id="conflict-forgets"),
])
def test_record_outcome(memory: HealingMemory, outcome: WriteOutcome,
                        retry_after: float | None, expected: HealingMemory) -> None:
    assert record_outcome(memory, restart=RESTART, outcome=outcome, now=NOW,
                          retry_after=retry_after) == expected


@pytest.mark.parametrize(("allow_delete", "throttles", "kind"), [
    pytest.param(False, DELETE_AFTER_THROTTLES + 5, RestartKind.EVICT, id="never-delete"),
    pytest.param(True, DELETE_AFTER_THROTTLES - 1, RestartKind.EVICT, id="opted-in-too-soon"),
    pytest.param(True, DELETE_AFTER_THROTTLES, RestartKind.DELETE, id="opted-in-delete"),
])
def test_throttled_eviction_becomes_delete_only_when_opted_in(
        allow_delete: bool, throttles: int, kind: RestartKind) -> None:
    memory = HealingMemory(throttles=(Throttle("a", throttles, NOW - 1),))
    result = run([pod("a"), pod("b")], probes=FAILING, memory=memory,
                 settings=healing(allow_delete=allow_delete))
    assert result.restart is not None
    assert (result.restart.pod, result.restart.kind) == ("a", kind)


def test_throttle_forgotten_when_the_pod_is_gone() -> None:
    memory = HealingMemory(throttles=(Throttle("gone", 2, NOW + 60),))
    result = run([pod("a"), pod("b")], probes=FAILING, memory=memory)
    assert result.memory.throttles == ()
    assert result.restart is not None


def test_throttled_retry_then_in_flight() -> None:
    """429, wait, retry, accepted: the restart is in flight, budget spent once."""
    pods = [pod("a"), pod("b")]
    first = run(pods, probes=FAILING)
    assert first.restart is not None
    memory = record_outcome(first.memory, restart=first.restart,
                            outcome=WriteOutcome.THROTTLED, now=NOW)
    assert run(pods, probes=FAILING, memory=memory, now=NOW + 1).restart is None
    retry = run(pods, probes=FAILING, memory=memory, now=NOW + THROTTLE_RETRY_SECONDS)
    assert retry.restart is not None
    assert retry.restart.kind is RestartKind.EVICT
    memory = record_outcome(retry.memory, restart=retry.restart, outcome=WriteOutcome.DONE,
                            now=NOW + THROTTLE_RETRY_SECONDS)
    assert len(memory.restarts) == 1
    assert memory.throttles == ()
    blocked = run(pods, probes=FAILING, memory=memory, now=NOW + 10)
    assert blocked.reasons[0].startswith("RestartInFlight")


# ---------------------------------------------------------------------------------- breaker

class Workload:
    """A tiny Deployment: evicted pods are replaced by a new pod; `bad` replacements crash."""

    def __init__(self, names: Sequence[str], *, bad: bool) -> None:
        self.started = dict.fromkeys(names, WALL - 600)
        self.broken: set[str] = set()
        self.bad = bad
        self.serial = 0

    def pods(self, now: float) -> list[PodInfo]:
        wall = WALL + (now - NOW)
        return [PodInfo(name, ready=name not in self.broken,
                        waiting_reason="CrashLoopBackOff" if name in self.broken else "",
                        restarts=int(wall - start) // 20 if name in self.broken else 0,
                        started_at=start)
                for name, start in self.started.items()]

    def evict(self, name: str, now: float) -> None:
        del self.started[name]
        self.serial += 1
        new = f"r{self.serial}"
        self.started[new] = WALL + (now - NOW) + 2
        if self.bad:
            self.broken.add(new)


def drive(workload: Workload, settings: Healing, *, start: float, end: float,
          memory: HealingMemory, step: float = 5.0) -> tuple[list[float], HealingMemory,
                                                               list[HealingPlan]]:
    restarts: list[float] = []
    plans: list[HealingPlan] = []
    now = start
    while now < end:
        result = plan(workload="ns/wk", settings=settings, pods=workload.pods(now), now=now,
                      wall_now=WALL + (now - NOW), memory=memory, requires=("es",),
                      dependencies=UP)
        memory = result.memory
        plans.append(result)
        if result.restart is not None:
            memory = record_outcome(memory, restart=result.restart, outcome=WriteOutcome.DONE,
                                    now=now)
            workload.evict(result.restart.pod, now)
            restarts.append(now)
        now += step
    return restarts, memory, plans


BREAKER_SETTINGS = healing(max_restarts=50, backoff_seconds=10.0, breaker_threshold=3,
                           breaker_reset_seconds=1800.0)


def test_crash_looping_workload_opens_breaker_after_threshold_restarts() -> None:
    workload = Workload(["a", "b", "c"], bad=True)
    workload.broken.add("a")
    restarts, memory, plans = drive(workload, BREAKER_SETTINGS, start=NOW, end=NOW + 1700,
                                    memory=HealingMemory())
    assert len(restarts) == BREAKER_SETTINGS.breaker_threshold
    assert memory.breaker.state is BreakerState.OPEN
    assert plans[-1].reasons[0].startswith("BreakerOpen: 3 replacements failed in a row")
    assert plans[-1].breaker is BreakerState.OPEN
    assert {v.pod for v in plans[-1].verdicts} == {"r3"}

    # by hand: healing resumes and needs the full threshold again.
    restarts, memory, _ = drive(workload, BREAKER_SETTINGS, start=NOW + 1700, end=NOW + 3000,
                                memory=reset_breaker(memory))
    assert len(restarts) == BREAKER_SETTINGS.breaker_threshold
    assert memory.breaker.state is BreakerState.OPEN


def test_breaker_timed_reset_is_half_open() -> None:
    """After `breaker_reset_seconds` one trial restart; its failing replacement reopens at once."""
    workload = Workload(["a", "b", "c"], bad=True)
    workload.broken.add("a")
    restarts, memory, plans = drive(workload, BREAKER_SETTINGS, start=NOW, end=NOW + 5000,
                                    memory=HealingMemory())
    opened = sorted({p.memory.breaker.opened_at for p in plans
                     if p.breaker is BreakerState.OPEN})
    assert len(opened) == 3
    threshold = BREAKER_SETTINGS.breaker_threshold
    assert restarts[threshold - 1] < opened[0]
    trials = restarts[threshold:]
    assert len(trials) == 2
    for trial, before, after in zip(trials, opened, opened[1:], strict=False):
        assert before + BREAKER_SETTINGS.breaker_reset_seconds <= trial < after
    assert memory.breaker.state is BreakerState.OPEN


def test_healthy_replacement_resets_failure_count() -> None:
    workload = Workload(["a", "b", "c"], bad=True)
    workload.broken.add("a")
    restarts, memory, _ = drive(workload, BREAKER_SETTINGS, start=NOW, end=NOW + 190,
                                memory=HealingMemory())
    assert len(restarts) == 2
    assert memory.breaker.failures == 1
    workload.bad = False
    workload.broken.clear()
    restarts, memory, plans = drive(workload, BREAKER_SETTINGS, start=NOW + 190,
                                    end=NOW + 800, memory=memory)
    assert restarts == []
    assert memory.breaker == Breaker()
    assert plans[-1].reasons == ("NoUnhealthyPods",)


def test_replacement_failing_during_outage_is_excused() -> None:
    workload = Workload(["a", "b"], bad=True)
    workload.broken.add("a")
    restarts, memory, _ = drive(workload, BREAKER_SETTINGS, start=NOW, end=NOW + 10,
                                memory=HealingMemory())
    assert len(restarts) == 1
    down = {"es": DependencyState("es", Health.DOWN)}
    for offset in range(10, 400, 5):
        result = plan(workload="ns/wk", settings=BREAKER_SETTINGS,
                      pods=workload.pods(NOW + offset), now=NOW + offset,
                      wall_now=WALL + offset, memory=memory, requires=("es",),
                      dependencies=down)
        assert result.restart is None
        memory = result.memory
    assert memory.breaker.failures == 0
    assert [r.settled for r in memory.restarts] == [Settled.EXCUSED]


def test_restart_timeout_is_grace_plus_not_ready_limit() -> None:
    assert restart_timeout(healing(startup_grace_seconds=30, not_ready_seconds=90)) == 120


def test_memory_forgets_vanished_pods_and_old_restarts() -> None:
    memory = HealingMemory(
        pods=(PodTrack("gone", 0, 0, NOW),),
        restarts=(done("x", NOW - 601, "x", settled=Settled.HEALTHY),
                  done("y", NOW - 100, "y", settled=Settled.HEALTHY)),
        streak=2)
    result = run([pod("a")], memory=memory)
    assert [t.name for t in result.memory.pods] == ["a"]
    assert [r.pod for r in result.memory.restarts] == ["y"]
    assert result.memory.streak == 2
