"""The simulated Tracardi cluster in virtual time, and the scores of whatever scales it.

One `ClusterModel` holds Deployments whose pods start after a seeded, jittered delay, the track
API's demand against its ready capacity (requests beyond capacity queue up), one partitioned
Pulsar topic per worker (backlog, in- and out-rates, per-consumer stats), dependency outages as
time windows, and injected sick pods. It advances in 1 s steps, lazily, whenever an adapter looks
at it, and meanwhile accumulates the scores defined in the README.

Injected faults (the `healing` scenario; a model without `faults` and `probe_requires` behaves
exactly as before): each `Fault` hits one healthy, ready pod chosen by a seeded draw at its time.
- `hung`: the pod's app-level probe fails (`SimPod.hung`); it keeps consuming.
- `stuck`: the pod stays ready, but its Pulsar consumer acknowledges nothing: its `out_rate` is 0
  and it holds up to `RECEIVER_QUEUE` dispatched messages unacknowledged (they stay in the backlog
  and are redelivered when the pod goes away), while the other consumers progress.
- `crash`: a crash-looping phase (a bad config, an expired licence): the victim and every pod or
  container started before the phase ends crash at start, never become ready, and the kubelet
  restarts them in place with CrashLoopBackOff (10 s doubling to 5 min), so their restarts grow.
  A crashing container restarted after the phase starts normally.
- `probe_requires`: dependencies whose outage fails every pod's app probe (`hung` while it lasts;
  a worker's health depends on Elasticsearch): the outage's symptoms, not a sick pod.
Every restart (an eviction via `restart`, or a container restart in place via `kill`) is logged
with the fault the pod had, so a restart of a pod without one is a false restart.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from autoscaler.sim.traces import Trace

API_SLO_SECONDS = 2.0
WORKER_SLO_SECONDS = 60.0
#: Messages a Pulsar consumer takes before acknowledging (the client's receiverQueueSize default):
#: what a stuck consumer holds back from the others.
RECEIVER_QUEUE = 1000.0
#: The kubelet's container restart back-off: 10 s, doubling, at most 5 min; forgotten after a
#: container ran 10 min without a restart.
KUBELET_BACKOFF_SECONDS = 10.0
KUBELET_BACKOFF_MAX_SECONDS = 300.0
KUBELET_BACKOFF_RESET_SECONDS = 600.0
#: A fault only hits a pod that has been up this long (out of any start-up grace).
FAULT_MIN_AGE_SECONDS = 120.0
#: The CPU each simulated pod requests (millicores), as the simulated Kubernetes API shows it.
POD_CPU_REQUEST_MILLI = 500
#: A pod's CPU use while it serves nothing, as a share of its request.
IDLE_CPU_SHARE = 0.1


def cpu_milli(request_milli: int, busy: float) -> int:
    """A pod's CPU use as metrics-server reports it: a tenth of its request idle, the rest in
    proportion to `busy`, the share of its capacity in use; its whole request at capacity."""
    return round(request_milli * (IDLE_CPU_SHARE + (1.0 - IDLE_CPU_SHARE) * busy))


def _sum(values: Iterable[float]) -> float:
    """The sum from left to right, as Python 3.11's `sum()` adds floats. Python 3.12 made
    `sum()` of floats compensated, and the simulated rates then rounded differently: a replay's
    numbers depended on the Python version that ran it."""
    total = 0.0
    for value in values:
        total += value
    return total


@dataclass(frozen=True, slots=True)
class Outage:
    dependency: str
    start: float
    end: float

    def covers(self, t: float) -> bool:
        return self.start <= t < self.end


class FaultKind(StrEnum):
    HUNG = "hung"
    STUCK = "stuck"
    CRASH = "crash"


@dataclass(frozen=True, slots=True)
class Fault:
    """A fault to inject at `at`; a `crash` phase lasts `seconds`."""

    kind: FaultKind
    at: float
    seconds: float = 0.0


@dataclass
class Injection:
    """A fault as it happened: which pod it hit, and how that pod went away."""

    kind: FaultKind
    at: float
    pod: str
    restarted_at: float | None = None  # restarted by whoever heals (evicted or killed in place)
    work_at: float | None = None  # stuck: when it first took a message it never acknowledged
    removed_at: float | None = None  # removed by a scale-down first
    recovered_at: float | None = None  # a crash-looping container started fine after the phase


@dataclass(frozen=True, slots=True)
class RestartEvent:
    """One restart by the contender: the pod, the fault it had ("" if healthy), how, when."""

    at: float
    pod: str
    fault: str
    in_place: bool
    during_outage: bool


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
    fault: str = ""  # the injected fault it has (FaultKind value), "" if healthy
    held: float = 0.0  # messages a stuck consumer holds unacknowledged
    next_crash_restart: float = math.inf  # when the kubelet restarts the crashing container
    backoff_streak: int = 0  # kubelet restarts in a row, for the back-off
    last_kubelet_restart: float = -math.inf


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
    # healing: the faults injected, those that found no victim, every restart, and the kubelet's
    # own CrashLoopBackOff restarts of crash-looping containers
    injections: list[Injection] = field(default_factory=list)
    faults_skipped: list[Fault] = field(default_factory=list)
    restart_log: list[RestartEvent] = field(default_factory=list)
    kubelet_crash_restarts: int = 0


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
        faults: tuple[Fault, ...] = (),
        probe_requires: tuple[str, ...] = (),
    ) -> None:
        self.trace = trace
        self.kind = kind
        self.namespace = namespace
        self.rng = random.Random(seed)
        self.outages = outages
        self.min_replicas = min_replicas
        self.rate_window = rate_window
        self.t = 0  # seconds simulated so far
        self.probe_requires = probe_requires
        self._faults = sorted(faults, key=lambda f: f.at)
        self._healing = bool(faults or probe_requires)
        self._fault_rng = random.Random(f"faults-{seed}")
        self.crash_until: float | None = None
        startup = startup_seconds if startup_seconds is not None else (
            30.0 if kind == "api" else 20.0)
        self.deployment = SimDeployment(workload, kind, 0, startup, capacity)
        self._pod_seq = 0
        self._scale(replicas, at=0.0, started=True)
        self.queue = 0.0  # api: requests waiting; worker: topic backlog (messages)
        self.published = 0.0  # worker: messages published to the topic so far (msgInCounter)
        self.delivered = 0.0  # worker: messages its consumers took so far (msgOutCounter)
        # The trace starts in a running cluster, sized for its first rate (`replicas`): the
        # rates read at the start are that rate's, as Prometheus and Pulsar would report them,
        # not a rise from nothing.
        first = self.demand(0)
        self._in_window: deque[float] = deque([first] * rate_window, maxlen=rate_window)
        self._out_window: deque[float] = deque([first] * rate_window, maxlen=rate_window)
        self.scores = Scores()
        self.timeline = Timeline() if record_timeline else None
        self.scale_log: list[tuple[float, int, int]] = []
        self._needs: list[int] | None = None

    # ------------------------------------------------------------------ inputs
    def demand(self, t: int) -> float:
        rates = self.trace.rates
        return rates[t] if 0 <= t < len(rates) else 0.0

    def need(self, t: int) -> int:
        """Pods needed at t: demand over one pod's capacity (the oracle's need). Worked out for
        the whole trace at the first call: every second of a run asks for it."""
        needs = self._needs
        if needs is None:
            capacity = self.deployment.capacity
            needs = self._needs = [max(self.min_replicas, math.ceil(round(r / capacity, 9)))
                                   for r in self.trace.rates]
        return needs[t] if 0 <= t < len(needs) else self.min_replicas

    def down(self, dependency: str, t: float) -> bool:
        return any(o.dependency == dependency and o.covers(t) for o in self.outages)

    @property
    def finished(self) -> bool:
        return self.t >= self.trace.duration

    # ------------------------------------------------------------------ time
    def advance(self, now: float) -> None:
        """Simulate every whole second up to `now` (virtual seconds since the trace start).

        Faults due by `now` are injected exactly at `now` when the caller looks then (the bench
        wakes the model at each fault's time), else at the first step after their time.
        """
        end = min(int(now), self.trace.duration)
        while self.t < end:
            if self._healing:
                self._apply_faults(float(self.t))
            self._step(self.t)
            self.t += 1
        if self._healing:
            self._apply_faults(now)

    def _step(self, t: int) -> None:
        dep = self.deployment
        ready = 0
        for pod in dep.pods:
            if pod.crashing and t >= pod.next_crash_restart:
                self._crash_restart(pod, float(t))
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
        self.published += arrivals
        es_down = self.down("elasticsearch", t)
        working = 0 if es_down else sum(1 for p in dep.pods if p.ready and not p.stuck)
        capacity = working * dep.capacity
        held = self._hold(t, arrivals) if self._healing else 0.0
        served = min(self.queue - held if held else self.queue, capacity)
        self.queue -= served
        self.delivered += served
        per_pod = served / working if working else 0.0
        for pod in dep.pods:
            pod.out_rate = per_pod if pod.ready and not pod.stuck and not es_down else 0.0
        self._in_window.append(arrivals)
        self._out_window.append(served)
        full = ready * dep.capacity
        wait = math.inf if full == 0 and self.queue > 0 else (self.queue / full if full else 0.0)
        if wait > WORKER_SLO_SECONDS:
            self.scores.slo_violation_seconds += 1

    def _hold(self, t: int, arrivals: float) -> float:
        """Stuck consumers take their share of the arrivals and never acknowledge it. The first
        message one takes is the first moment anything can tell it from an idle consumer."""
        pods = self.deployment.pods
        consumers = sum(1 for p in pods if p.ready)
        share = arrivals / consumers if consumers else 0.0
        for pod in pods:
            if pod.stuck and pod.ready:
                if not pod.held and share > 0:
                    for inj in self.scores.injections:
                        if inj.pod == pod.name and inj.kind == FaultKind.STUCK \
                                and inj.work_at is None:
                            inj.work_at = max(float(t), inj.at)  # its second may have begun first
                pod.held = min(RECEIVER_QUEUE, pod.held + share)
        return min(self.queue, _sum(p.held for p in pods))

    def _track_reaction(self, t: int) -> None:
        """A rise starts when the need first exceeds the requested replicas and ends at the
        next scale-up request; a rise that passes before any request is not counted."""
        s = self.scores
        if self.need(t) > self.deployment.replicas:
            if s.pending_rise_at is None:
                s.pending_rise_at = float(t)
        else:
            s.pending_rise_at = None

    # ------------------------------------------------------------------ signals
    def in_rate(self) -> float:
        return _sum(self._in_window) / len(self._in_window) if self._in_window else 0.0

    def out_rate(self) -> float:
        return _sum(self._out_window) / len(self._out_window) if self._out_window else 0.0

    def busy_share(self) -> float:
        """The share of the ready pods' capacity in use: the output rate (over the last
        `rate_window` s, as metrics-server averages a window) over their capacity."""
        ready = sum(p.ready for p in self.deployment.pods)
        return (min(1.0, self.out_rate() / (ready * self.deployment.capacity))
                if ready else 0.0)

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
            if pod.crashing:
                # it crashes as it would have started; the kubelet restarts it after 10 s
                pod.fault = FaultKind.CRASH
                pod.next_crash_restart = pod.ready_at + KUBELET_BACKOFF_SECONDS
            if self._healing:
                pod.hung = self._probe_down(at)
            dep.pods.append(pod)
        if len(dep.pods) > replicas:
            # Like the ReplicaSet controller: not-ready pods go first, then the newest.
            order = sorted(dep.pods, key=lambda p: (p.ready, -p.created_at))
            doomed = {id(p) for p in order[: len(dep.pods) - replicas]}
            if self._healing:
                for pod in dep.pods:
                    if id(pod) in doomed:
                        self._gone(pod, at, removed=True)
            dep.pods = [p for p in dep.pods if id(p) not in doomed]

    def restart(self, pod_name: str, *, at: float) -> bool:
        """Evict one pod; the controller replaces it with a fresh one."""
        self.advance(at)
        dep = self.deployment
        victim = next((p for p in dep.pods if p.name == pod_name), None)
        if victim is None:
            return False
        dep.pods = [p for p in dep.pods if p is not victim]
        self.scores.restarts += 1
        if any(o.covers(at) for o in self.outages):
            self.scores.restarts_during_outage += 1
        self._log_restart(victim, at, in_place=False)
        self._scale(dep.replicas, at=at, started=False)
        return True

    def kill(self, pod_name: str, *, at: float) -> bool:
        """The kubelet restarts one pod's container in place (a failed liveness probe).

        The pod keeps its name and IP; the fresh container is neither hung nor stuck, comes back
        after the kubelet's back-off and the start-up time, and crash-loops if started during a
        crash phase. Unacknowledged messages of a stuck consumer are redelivered.
        """
        self.advance(at)
        pod = next((p for p in self.deployment.pods if p.name == pod_name), None)
        if pod is None:
            return False
        self.scores.restarts += 1
        if any(o.covers(at) for o in self.outages):
            self.scores.restarts_during_outage += 1
        self._log_restart(pod, at, in_place=True)
        delay = self._kubelet_delay(pod, at)
        pod.restarts += 1
        pod.ready = False
        pod.out_rate = 0.0
        pod.held = 0.0
        pod.stuck = False
        pod.fault = ""
        pod.hung = self._probe_down(at)
        pod.ready_at = at + delay + self.deployment.startup_seconds * self.rng.uniform(0.8, 1.2)
        if self.deployment.crash_new_pods:
            pod.crashing = True
            pod.fault = FaultKind.CRASH
            pod.next_crash_restart = pod.ready_at + KUBELET_BACKOFF_SECONDS
        return True

    # ------------------------------------------------------------------ faults
    def _probe_down(self, t: float) -> bool:
        return any(self.down(d, t) for d in self.probe_requires)

    def _kubelet_delay(self, pod: SimPod, at: float) -> float:
        """The kubelet's back-off before restarting the container: 0, 10, 20, 40 ... 300 s."""
        if at - pod.last_kubelet_restart >= KUBELET_BACKOFF_RESET_SECONDS:
            pod.backoff_streak = 0
        delay = 0.0 if pod.backoff_streak == 0 else min(
            KUBELET_BACKOFF_MAX_SECONDS, KUBELET_BACKOFF_SECONDS * 2 ** (pod.backoff_streak - 1))
        pod.backoff_streak += 1
        pod.last_kubelet_restart = at + delay
        return delay

    def _crash_restart(self, pod: SimPod, t: float) -> None:
        """CrashLoopBackOff: the kubelet starts the crashed container again."""
        pod.restarts += 1
        self.scores.kubelet_crash_restarts += 1
        pod.last_kubelet_restart = t
        if self.deployment.crash_new_pods:
            pod.backoff_streak += 1
            pod.next_crash_restart = t + min(
                KUBELET_BACKOFF_MAX_SECONDS, KUBELET_BACKOFF_SECONDS * 2 ** pod.backoff_streak)
            return
        pod.crashing = False
        pod.fault = ""
        pod.next_crash_restart = math.inf
        pod.ready_at = t + self.deployment.startup_seconds * self.rng.uniform(0.8, 1.2)
        for inj in self.scores.injections:
            if inj.pod == pod.name and inj.kind == FaultKind.CRASH and inj.recovered_at is None \
                    and inj.restarted_at is None and inj.removed_at is None:
                inj.recovered_at = t

    def _log_restart(self, pod: SimPod, at: float, *, in_place: bool) -> None:
        self.scores.restart_log.append(RestartEvent(
            at=at, pod=pod.name, fault=str(pod.fault), in_place=in_place,
            during_outage=any(o.covers(at) for o in self.outages)))
        if self._healing:
            self._gone(pod, at, removed=False)

    def _gone(self, pod: SimPod, at: float, *, removed: bool) -> None:
        """The pod (or its container) went away: close its open injection."""
        for inj in self.scores.injections:
            if (inj.pod == pod.name and inj.restarted_at is None and inj.removed_at is None
                    and inj.recovered_at is None):
                if removed:
                    inj.removed_at = at
                else:
                    inj.restarted_at = at

    def _apply_faults(self, now: float) -> None:
        dep = self.deployment
        if self.crash_until is not None and now >= self.crash_until:
            dep.crash_new_pods = False
            self.crash_until = None
        while self._faults and self._faults[0].at <= now:
            self._inject(self._faults.pop(0), now)
        if self.probe_requires:
            down = self._probe_down(now)
            for pod in dep.pods:
                pod.hung = pod.fault == FaultKind.HUNG or down

    def _inject(self, fault: Fault, now: float) -> None:
        dep = self.deployment
        ready = [p for p in dep.pods if p.ready]
        healthy = [p for p in ready if not p.fault and not p.hung
                   and now - p.created_at >= FAULT_MIN_AGE_SECONDS]
        if fault.kind == FaultKind.CRASH:
            dep.crash_new_pods = True
            self.crash_until = now + fault.seconds
        if len(ready) < 2 or not healthy:
            self.scores.faults_skipped.append(fault)
            return
        pod = healthy[self._fault_rng.randrange(len(healthy))]
        pod.fault = fault.kind
        if fault.kind == FaultKind.HUNG:
            pod.hung = True
        elif fault.kind == FaultKind.STUCK:
            pod.stuck = True
        else:
            pod.crashing = True
            pod.ready = False
            pod.out_rate = 0.0
            pod.backoff_streak = 0
            pod.next_crash_restart = now + KUBELET_BACKOFF_SECONDS
        self.scores.injections.append(Injection(fault.kind, now, pod.name))

    def finish(self) -> None:
        self.advance(self.trace.duration)
