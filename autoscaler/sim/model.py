"""The simulated Tracardi cluster in virtual time, and the scores of whatever scales it.

One `ClusterModel` holds Deployments whose pods start after a seeded, jittered delay, the track
API's demand against its ready capacity (requests beyond capacity queue up), one partitioned
Pulsar topic per worker (backlog, in- and out-rates, per-consumer stats), dependency outages as
time windows, and injected sick pods. It advances in 1 s steps, lazily, whenever an adapter looks
at it, and meanwhile accumulates the scores defined in the README.
"""

from __future__ import annotations

import math
import random
from collections import deque
from dataclasses import dataclass, field

from autoscaler.sim.traces import Trace

API_SLO_SECONDS = 2.0
WORKER_SLO_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Outage:
    dependency: str
    start: float
    end: float

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


@dataclass
class SimPod:
    name: str
    created_at: float
    ready_at: float
    ip: str
    ready: bool = False
    hung: bool = False  # its HTTP probe fails
    stuck: bool = False  # its consumer stops consuming
    crashing: bool = False  # never becomes ready, restarts keep growing
    restarts: int = 0
    out_rate: float = 0.0


@dataclass
class SimDeployment:
    name: str
    kind: str  # "api" or "worker"
    replicas: int
    startup_seconds: float
    capacity: float  # requests/s (api) or msgs/s (worker) per ready pod
    pods: list[SimPod] = field(default_factory=list)
    paused: bool = False
    resource_version: int = 1
    crash_new_pods: bool = False

    @property
    def ready_pods(self) -> list[SimPod]:
        return [p for p in self.pods if p.ready]


@dataclass
class Scores:
    replica_seconds: float = 0.0
    slo_violation_seconds: int = 0
    requests_total: float = 0.0
    requests_late: float = 0.0
    scale_actions: int = 0
    direction_changes: int = 0
    actions_during_outage: int = 0
    restarts_during_outage: int = 0
    restarts: int = 0
    reactions: list[float] = field(default_factory=list)
    last_direction: int = 0
    pending_rise_at: float | None = None


@dataclass
class Timeline:
    """Per-second samples for plots (kept only when asked for)."""

    t: list[int] = field(default_factory=list)
    demand: list[float] = field(default_factory=list)
    need: list[int] = field(default_factory=list)
    replicas: list[int] = field(default_factory=list)
    ready: list[int] = field(default_factory=list)
    backlog: list[float] = field(default_factory=list)


class ClusterModel:
    """The simulated cluster for one workload under test (`api` or `worker`)."""

    def __init__(
        self,
        *,
        trace: Trace,
        kind: str,
        workload: str,
        namespace: str = "tracardi",
        replicas: int,
        capacity: float,
        startup_seconds: float | None = None,
        min_replicas: int = 1,
        outages: tuple[Outage, ...] = (),
        seed: int = 1,
        rate_window: int = 10,
        record_timeline: bool = False,
    ) -> None:
        self.trace = trace
        self.kind = kind
        self.namespace = namespace
        self.rng = random.Random(seed)
        self.outages = outages
        self.min_replicas = min_replicas
        self.rate_window = rate_window
        self.t = 0  # seconds simulated so far
        startup = startup_seconds if startup_seconds is not None else (
            30.0 if kind == "api" else 20.0)
        self.deployment = SimDeployment(workload, kind, 0, startup, capacity)
        self._pod_seq = 0
        self._scale(replicas, at=0.0, started=True)
        self.queue = 0.0  # api: requests waiting; worker: topic backlog (messages)
        self._in_window: deque[float] = deque(maxlen=rate_window)
        self._out_window: deque[float] = deque(maxlen=rate_window)
        self.scores = Scores()
        self.timeline = Timeline() if record_timeline else None
        self.scale_log: list[tuple[float, int, int]] = []

    # ------------------------------------------------------------------ inputs
    def demand(self, t: int) -> float:
        rates = self.trace.rates
        return rates[t] if 0 <= t < len(rates) else 0.0

    def need(self, t: int) -> int:
        """Pods needed at t: demand over one pod's capacity (the oracle's need)."""
        return max(self.min_replicas,
                   math.ceil(round(self.demand(t) / self.deployment.capacity, 9)))

    def down(self, dependency: str, t: float) -> bool:
        return any(o.dependency == dependency and o.covers(t) for o in self.outages)

    @property
    def finished(self) -> bool:
        return self.t >= self.trace.duration

    # ------------------------------------------------------------------ time
    def advance(self, now: float) -> None:
        """Simulate every whole second up to `now` (virtual seconds since the trace start)."""
        end = min(int(now), self.trace.duration)
        while self.t < end:
            self._step(self.t)
            self.t += 1

    def _step(self, t: int) -> None:
        dep = self.deployment
        ready = 0
        for pod in dep.pods:
            if not pod.ready and not pod.crashing and t >= pod.ready_at:
                pod.ready = True
            ready += pod.ready
        arrivals = self.demand(t)
        self.scores.replica_seconds += len(dep.pods)
        if self.kind == "api":
            self._step_api(arrivals, ready)
        else:
            self._step_worker(t, arrivals, ready)
        self._track_reaction(t)
        if self.timeline is not None:
            tl = self.timeline
            tl.t.append(t)
            tl.demand.append(arrivals)
            tl.need.append(self.need(t))
            tl.replicas.append(dep.replicas)
            tl.ready.append(ready)
            tl.backlog.append(self.queue)

    def _step_api(self, arrivals: float, ready: int) -> None:
        capacity = ready * self.deployment.capacity
        self.queue += arrivals
        served = min(self.queue, capacity)
        self.queue -= served
        self._in_window.append(arrivals)
        self._out_window.append(served)
        s = self.scores
        s.requests_total += arrivals
        wait = math.inf if capacity == 0 and self.queue > 0 else (
            self.queue / capacity if capacity else 0.0)
        if wait > API_SLO_SECONDS:
            s.slo_violation_seconds += 1
            s.requests_late += arrivals

    def _step_worker(self, t: int, arrivals: float, ready: int) -> None:
        dep = self.deployment
        self.queue += arrivals
        es_down = self.down("elasticsearch", t)
        working = 0 if es_down else sum(1 for p in dep.pods if p.ready and not p.stuck)
        capacity = working * dep.capacity
        served = min(self.queue, capacity)
        self.queue -= served
        per_pod = served / working if working else 0.0
        for pod in dep.pods:
            pod.out_rate = per_pod if pod.ready and not pod.stuck and not es_down else 0.0
        self._in_window.append(arrivals)
        self._out_window.append(served)
        full = ready * dep.capacity
        wait = math.inf if full == 0 and self.queue > 0 else (self.queue / full if full else 0.0)
        if wait > WORKER_SLO_SECONDS:
            self.scores.slo_violation_seconds += 1

    def _track_reaction(self, t: int) -> None:
        s = self.scores
        if s.pending_rise_at is None and self.need(t) > self.deployment.replicas:
            s.pending_rise_at = float(t)

    # ------------------------------------------------------------------ signals
    def in_rate(self) -> float:
        return sum(self._in_window) / len(self._in_window) if self._in_window else 0.0

    def out_rate(self) -> float:
        return sum(self._out_window) / len(self._out_window) if self._out_window else 0.0

    # ------------------------------------------------------------------ writes
    def scale(self, replicas: int, *, at: float) -> None:
        """A scale request from a contender, at virtual time `at`."""
        self.advance(at)
        dep = self.deployment
        old = dep.replicas
        if replicas == old:
            return
        s = self.scores
        direction = 1 if replicas > old else -1
        s.scale_actions += 1
        if s.last_direction and direction != s.last_direction:
            s.direction_changes += 1
        s.last_direction = direction
        if any(o.covers(at) for o in self.outages):
            s.actions_during_outage += 1
        if direction > 0 and s.pending_rise_at is not None:
            s.reactions.append(max(0.0, at - s.pending_rise_at))
            s.pending_rise_at = None
        self.scale_log.append((at, old, replicas))
        self._scale(replicas, at=at, started=False)

    def _scale(self, replicas: int, *, at: float, started: bool) -> None:
        dep = self.deployment
        dep.replicas = replicas
        dep.resource_version += 1
        while len(dep.pods) < replicas:
            self._pod_seq += 1
            delay = 0.0 if started else dep.startup_seconds * self.rng.uniform(0.8, 1.2)
            seq = self._pod_seq
            pod = SimPod(name=f"{dep.name}-{seq:05d}", created_at=at, ready_at=at + delay,
                         ip=f"10.1.{seq // 250}.{seq % 250 + 2}",
                         ready=started, crashing=dep.crash_new_pods)
            dep.pods.append(pod)
        if len(dep.pods) > replicas:
            # Like the ReplicaSet controller: not-ready pods go first, then the newest.
            order = sorted(dep.pods, key=lambda p: (p.ready, p.created_at))
            doomed = {id(p) for p in order[: len(dep.pods) - replicas]}
            dep.pods = [p for p in dep.pods if id(p) not in doomed]

    def restart(self, pod_name: str, *, at: float) -> bool:
        """Evict one pod; the controller replaces it with a fresh one."""
        self.advance(at)
        dep = self.deployment
        before = len(dep.pods)
        dep.pods = [p for p in dep.pods if p.name != pod_name]
        if len(dep.pods) == before:
            return False
        self.scores.restarts += 1
        if any(o.covers(at) for o in self.outages):
            self.scores.restarts_during_outage += 1
        self._scale(dep.replicas, at=at, started=False)
        return True

    def finish(self) -> None:
        self.advance(self.trace.duration)
