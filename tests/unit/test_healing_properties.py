"""Property tests of the healer: never during an outage, never a healthy or young pod, never below
min_available, one restart in flight, budget and backoff, an open breaker restarts nothing."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from autoscaler.config import Healing, HttpProbeSettings
from autoscaler.engine.healing import (
    SUSPICION_MARGIN_SECONDS,
    Breaker,
    BreakerState,
    HealingMemory,
    HealingPlan,
    PodTrack,
    ProbeRecord,
    RestartRecord,
    Settled,
    SubscriptionRead,
    Throttle,
    plan,
    record_outcome,
    restart_timeout,
    scale_down_hold,
)
from autoscaler.model import ConsumerStat, DependencyState, Health, PodInfo
from autoscaler.ports import WriteOutcome

NOW = 100_000.0
WALL = 1_700_000_000.0
PROPS = settings(max_examples=200, deadline=None)
NAMES = [f"p{i}" for i in range(6)]

healings = st.builds(
    Healing,
    startup_grace_seconds=st.sampled_from([0.0, 10.0, 60.0]),
    not_ready_seconds=st.sampled_from([5.0, 30.0, 120.0]),
    crashloop_restarts=st.integers(1, 4),
    http_probe=st.one_of(st.none(), st.builds(HttpProbeSettings,
                                              failure_threshold=st.integers(1, 4))),
    stuck_consumer_seconds=st.sampled_from([5.0, 60.0]),
    stuck_consumer_reads=st.integers(1, 4),
    min_available=st.integers(0, 4),
    max_restarts=st.integers(1, 4),
    window_seconds=st.sampled_from([60.0, 300.0, 600.0]),
    backoff_seconds=st.sampled_from([0.0, 10.0, 30.0]),
    allow_delete=st.booleans(),
    breaker_threshold=st.integers(1, 4),
    breaker_reset_seconds=st.sampled_from([100.0, 1800.0]),
)


@st.composite
def pod_lists(draw: st.DrawFn, *, wall: float = WALL) -> tuple[PodInfo, ...]:
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=len(NAMES)))
    return tuple(PodInfo(
        name=name,
        ready=draw(st.booleans()),
        ip=f"10.0.0.{NAMES.index(name)}",
        started_at=draw(st.one_of(st.just(0.0), st.floats(0, 3000).map(lambda a: wall - a))),
        deleting=draw(st.booleans()),
        restarts=draw(st.integers(0, 20)),
        waiting_reason=draw(st.sampled_from(["", "", "CrashLoopBackOff", "ContainerCreating"])),
    ) for name in names)


times = st.floats(NOW - 3000, NOW)
memories = st.builds(
    HealingMemory,
    pods=st.lists(st.builds(PodTrack, name=st.sampled_from(NAMES), restarts=st.integers(0, 20),
                            restarts_base=st.integers(0, 20), restarts_grew_at=times,
                            not_ready_since=st.none() | times, idle_since=st.none() | times,
                            idle_reads=st.integers(0, 5), suspect_since=st.none() | times,
                            suspect_seen=st.none() | times),
                  max_size=6).map(tuple),
    restarts=st.lists(st.builds(RestartRecord, pod=st.sampled_from(NAMES), at=times,
                                siblings=st.frozensets(st.sampled_from(NAMES)),
                                replacement=st.sampled_from(["", *NAMES]),
                                ready=st.booleans(), excused=st.booleans(),
                                settled=st.sampled_from(list(Settled))),
                      max_size=5).map(tuple),
    streak=st.integers(0, 6),
    throttles=st.lists(st.builds(Throttle, pod=st.sampled_from(NAMES), count=st.integers(1, 5),
                                 retry_at=st.floats(NOW - 100, NOW + 100)),
                       max_size=3).map(tuple),
    breaker=st.builds(Breaker, state=st.sampled_from(list(BreakerState)),
                      failures=st.integers(0, 5), opened_at=times),
    frozen_at=st.none() | times,
    read_at=st.none() | times,
)
probe_maps = st.dictionaries(st.sampled_from(NAMES), st.builds(
    ProbeRecord, failures=st.integers(0, 6), last_error=st.just("timeout")))
consumer_lists = st.lists(st.builds(
    ConsumerStat, name=st.sampled_from(["c0", "c1", "c2"]),
    address=st.sampled_from([f"/10.0.0.{i}:4000{i}" for i in range(7)]),
    msg_rate_out=st.sampled_from([0.0, 0.0, 3.5, 100.0])), max_size=6).map(tuple)
backlogs = st.none() | st.sampled_from([0.0, 10.0, 5000.0])


def subscription(consumers: tuple[ConsumerStat, ...], backlog: float | None,
                 read_at: float = NOW) -> SubscriptionRead | None:
    return None if backlog is None else SubscriptionRead(read_at, backlog, consumers)
outages = st.sampled_from([
    {"es": DependencyState("es", Health.DOWN)},
    {"es": DependencyState("es", Health.UNKNOWN)},
    {},
    {"es": DependencyState("es", Health.UP), "redis": DependencyState("redis", Health.DOWN)},
])


def ready_count(pods: tuple[PodInfo, ...]) -> int:
    return sum(1 for p in pods if p.ready and not p.deleting)


@PROPS
@given(healing=healings, pods=pod_lists(), memory=memories, probes=probe_maps,
       consumers=consumer_lists, backlog=backlogs, deps=outages)
def test_nothing_restarts_during_an_outage(
        *, healing: Healing, pods: tuple[PodInfo, ...], memory: HealingMemory,
        probes: dict[str, ProbeRecord], consumers: tuple[ConsumerStat, ...],
        backlog: float | None, deps: dict[str, DependencyState]) -> None:
    result = plan(workload="w", settings=healing, pods=pods, now=NOW, wall_now=WALL,
                  memory=memory, probes=probes, subscription=subscription(consumers, backlog),
                  requires=("es", "redis"), dependencies=deps)
    assert result.restart is None
    assert result.reasons[0].startswith(("DependencyDown:", "DependencyUnknown:"))
    assert result.memory.frozen_at == NOW
    # no scale-down waits for a pod's symptoms during an outage, and no stuck clock runs
    assert result.suspicions == ()
    assert all(t.idle_since is None and t.idle_reads == 0 for t in result.memory.pods)


@PROPS
@given(healing=healings, pods=pod_lists(), memory=memories, probes=probe_maps,
       consumers=consumer_lists, backlog=backlogs)
def test_any_single_plan_keeps_the_rules(
        *, healing: Healing, pods: tuple[PodInfo, ...], memory: HealingMemory,
        probes: dict[str, ProbeRecord], consumers: tuple[ConsumerStat, ...],
        backlog: float | None) -> None:
    kwargs: dict[str, Any] = {
        "workload": "w", "settings": healing, "pods": pods, "now": NOW, "wall_now": WALL,
        "memory": memory, "probes": probes,
        "subscription": subscription(consumers, backlog),
        "requires": ("es",), "dependencies": {"es": DependencyState("es", Health.UP)}}
    result = plan(**kwargs)
    assert plan(**kwargs) == result
    by_name = {p.name: p for p in pods}
    for verdict in result.verdicts:
        judged = by_name[verdict.pod]
        assert judged.started_at > 0 and not judged.deleting
        assert WALL - judged.started_at >= healing.startup_grace_seconds
    if result.breaker is BreakerState.OPEN:
        assert result.restart is None
    if result.restart is not None:
        chosen = by_name[result.restart.pod]
        assert chosen.name in {v.pod for v in result.verdicts}
        assert not chosen.deleting
        if chosen.ready:
            assert ready_count(pods) - 1 >= healing.min_available
    assert_suspicions_bounded(result, pods, healing, now=NOW)


def hold_limit(healing: Healing) -> float:
    """The longest a suspicion may hold a scale-down: the longest detection limit + margin."""
    probe = healing.http_probe
    probe_limit = probe.period_seconds * probe.failure_threshold if probe else 0.0
    return max(probe_limit, healing.stuck_consumer_seconds) + SUSPICION_MARGIN_SECONDS


def assert_suspicions_bounded(result: HealingPlan, pods: tuple[PodInfo, ...],
                              healing: Healing, *, now: float) -> None:
    """A scale-down waits only for a ready pod that could be restarted, never past the limit."""
    by_name = {p.name: p for p in pods}
    if result.suspicions:
        assert healing.enabled and result.breaker is not BreakerState.OPEN
        assert ready_count(pods) - 1 >= healing.min_available
    for s in result.suspicions:
        assert by_name[s.pod].ready and not by_name[s.pod].deleting
        assert s.since <= now < s.until <= s.since + hold_limit(healing)


# ------------------------------------------------------------------ runs over time

@dataclass
class SimPod:
    started: float
    ready: bool = False
    restarts: int = 0
    crashing: bool = False
    failures: int = 0
    rate: float = 5.0
    deleting: bool = False


@dataclass
class Cluster:
    """A workload whose pods fall ill at random; evicted pods are replaced like a ReplicaSet's."""

    pods: dict[str, SimPod] = field(default_factory=dict)
    serial: int = 0

    def add(self, wall: float, *, ready: bool) -> None:
        self.serial += 1
        self.pods[f"w{self.serial}"] = SimPod(started=wall, ready=ready)

    def infos(self) -> tuple[PodInfo, ...]:
        return tuple(PodInfo(name, ready=p.ready and not p.deleting, ip=f"10.1.0.{name[1:]}",
                             started_at=p.started, deleting=p.deleting, restarts=p.restarts,
                             waiting_reason="CrashLoopBackOff" if p.crashing else "")
                     for name, p in self.pods.items())

    def consumers(self) -> tuple[ConsumerStat, ...]:
        return tuple(ConsumerStat(f"c-{name}", f"/10.1.0.{name[1:]}:5000{i}", p.rate)
                     for i, (name, p) in enumerate(self.pods.items()) if not p.deleting)


@dataclass
class Oracle:
    """What the rules allow, computed from the run itself and not from the healer's memory."""

    done: list[tuple[float, frozenset[str]]] = field(default_factory=list)
    replacement_seen_ready: bool = True

    def observe(self, pods: tuple[PodInfo, ...]) -> None:
        if self.done:
            siblings = self.done[-1][1]
            if any(p.ready and not p.deleting and p.name not in siblings for p in pods):
                self.replacement_seen_ready = True

    def check(self, now: float, healing: Healing) -> None:
        if not self.done:
            return
        last_at = self.done[-1][0]
        assert self.replacement_seen_ready or now - last_at >= restart_timeout(healing), \
            "second restart while one is in flight"
        window = healing.window_seconds
        recent = sum(1 for at, _ in self.done if now - at < window)
        assert recent < healing.max_restarts, "restart budget exceeded"
        if now - last_at < window:
            streak = 1
            for (earlier, _), (later, _) in zip(self.done[-2::-1], self.done[:0:-1],
                                                 strict=True):
                if later - earlier >= window:
                    break
                streak += 1
            assert now - last_at >= healing.backoff_seconds * 2 ** (streak - 1), "backoff"


step_kinds = st.sampled_from(["tick", "tick", "sicken", "probe", "crash", "stall", "heal",
                              "ready", "scale-up", "outage"])


@settings(max_examples=150, deadline=None)
@given(healing=healings, data=st.data(), size=st.integers(1, 5))
def test_runs_keep_every_budget(healing: Healing, data: st.DataObject, size: int) -> None:
    cluster = Cluster()
    for _ in range(size):
        cluster.add(WALL - 1000, ready=True)
    memory = HealingMemory()
    oracle = Oracle()
    reads: set[float] = set()
    now = NOW
    for _ in range(data.draw(st.integers(5, 40))):
        now += data.draw(st.sampled_from([1.0, 5.0, 20.0, 60.0]))
        wall = WALL + (now - NOW)
        cluster.pods = {n: p for n, p in cluster.pods.items() if not p.deleting}
        kind = data.draw(step_kinds)
        names = sorted(cluster.pods)
        target = cluster.pods[data.draw(st.sampled_from(names))] if names else None
        if target is not None:
            if kind == "sicken":
                target.ready = False
            elif kind == "probe":
                target.failures = data.draw(st.integers(1, 5))
            elif kind == "crash":
                target.crashing, target.ready = True, False
                target.restarts += data.draw(st.integers(1, 3))
            elif kind == "stall":
                target.rate = 0.0
            elif kind in {"heal", "ready"}:
                target.ready, target.crashing, target.failures, target.rate = True, False, 0, 5.0
        if kind == "scale-up":
            cluster.add(wall, ready=False)
        deps = {"es": DependencyState("es", Health.DOWN if kind == "outage" else Health.UP)}
        pods = cluster.infos()
        oracle.observe(pods)
        # a new read of the subscription, or the last one evaluated again
        read_at = now if memory.read_at is None or data.draw(st.booleans()) else memory.read_at
        read = subscription(cluster.consumers(), data.draw(backlogs), read_at)
        if read is not None:
            reads.add(read.read_at)
        result: HealingPlan = plan(
            workload="w", settings=healing, pods=pods, now=now, wall_now=wall, memory=memory,
            probes={n: ProbeRecord(p.failures, "timeout") for n, p in cluster.pods.items()},
            subscription=read, requires=("es",), dependencies=deps)
        assert_suspicions_bounded(result, pods, healing, now=now)
        for track in result.memory.pods:  # a read evaluated again is not counted again
            assert track.idle_reads <= len(reads)
        memory = result.memory
        if kind == "outage":  # only a starting replacement may hold a scale-down then
            assert scale_down_hold(result, memory, now=now, settings=healing) in (
                None, "ScaleDownHeld: a restarted pod's replacement is starting")
        restart = result.restart
        if restart is None:
            continue
        assert kind != "outage"
        assert result.breaker is not BreakerState.OPEN
        chosen = next(p for p in pods if p.name == restart.pod)
        if chosen.ready:
            assert ready_count(pods) - 1 >= healing.min_available
        oracle.check(now, healing)
        outcome = data.draw(st.sampled_from([WriteOutcome.DONE, WriteOutcome.DONE,
                                             WriteOutcome.THROTTLED, WriteOutcome.NOT_FOUND]))
        memory = record_outcome(memory, restart=restart, outcome=outcome, now=now)
        if outcome is WriteOutcome.DONE:
            oracle.done.append((now, restart.siblings))
            oracle.replacement_seen_ready = False
            cluster.pods[restart.pod] = replace(cluster.pods[restart.pod], deleting=True)
            cluster.add(wall + 1, ready=data.draw(st.booleans()))


@settings(max_examples=100, deadline=None)
@given(healing=healings, data=st.data())
def test_crash_looping_workload_restarts_at_most_threshold_times_until_reset(
        healing: Healing, data: st.DataObject) -> None:
    """Every replacement crash-loops: at most `breaker_threshold` restarts before the breaker
    opens, and then none while it stays open."""
    healing = healing.model_copy(update={"min_available": 0})
    cluster = Cluster()
    cluster.add(WALL - 1000, ready=False)
    memory = HealingMemory()
    now = NOW
    restarts = 0
    while now < NOW + min(healing.breaker_reset_seconds, 3000):
        now += data.draw(st.sampled_from([1.0, 5.0, 15.0]))
        if (memory.breaker.state is BreakerState.OPEN
                and now >= memory.breaker.opened_at + healing.breaker_reset_seconds):
            break  # the timed reset allows a trial restart: "until reset" ends here
        wall = WALL + (now - NOW)
        cluster.pods = {n: p for n, p in cluster.pods.items() if not p.deleting}
        for p in cluster.pods.values():
            p.crashing = wall - p.started > 5
        result = plan(workload="w", settings=healing, pods=cluster.infos(), now=now,
                      wall_now=wall, memory=memory, requires=())
        memory = result.memory
        if result.restart is not None:
            restarts += 1
            assert restarts <= healing.breaker_threshold
            memory = record_outcome(memory, restart=result.restart, outcome=WriteOutcome.DONE,
                                    now=now)
            cluster.pods[result.restart.pod].deleting = True
            cluster.add(wall + 1, ready=False)
        if memory.breaker.state is BreakerState.OPEN:
            assert restarts == healing.breaker_threshold
