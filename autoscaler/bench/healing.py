"""The `healing` scenario: sick pods injected into a worker, healed by ours or by liveness probes.

The workload under test is the shipped config's backlog-scaled Pulsar worker whose healing reads
stuck consumers (`healing.consumer_source`, `wk-pl-background` in `policies/tracardi.yaml`). It
runs on the trace's steadiest segment (as long as the schedule needs, at least `SEGMENT_SECONDS`;
the lowest coefficient of variation among windows without an idle second; shorter traces are
repeated), scaled so that its mean needs `MEAN_PEAK_FRACTION * peak_replicas` pods. The seeded
schedule, derived from the workload's healing settings (faults are
`window_seconds + stuck_consumer_seconds + 2 * FAULT_JITTER_SECONDS` apart, so one restart's
budget and backoff never delay the next):
- after `WARMUP_SECONDS`, six faults (three hung pods, three stuck consumers, seeded order; a
  stuck consumer starts in the first second from its slot in which messages arrive);
- a 10-minute Elasticsearch outage in which every worker's app probe fails (hung-like symptoms
  that must not be restarted: the dependency is down, not the pods);
- two more faults (one of each) once the backlog of the outage has drained;
- a crash-looping phase (`CRASH_PHASE_SECONDS`): one pod crashes and every pod or container
  started during the phase crashes too, as a bad config or an expired licence would.
The shipped workers have no HTTP port; when the workload configures no `healing.http_probe` the
scenario gives its copy the `HttpProbeSettings` defaults (/healthcheck, 10 s, 3 failures) and
models it as the worker's app-level probe (`http_probe_added` in the scores says so).

Contenders:
- `ours`: the real `Daemon` (scaling and healing as configured) in virtual time, with
  `ModelPodProber` for the app probe and in-memory adapters, like `contenders.run_ours`.
- `liveness`: no autoscaler, a static allocation (the segment's peak need) and Kubernetes
  liveness probes with the defaults (period 10 s, failureThreshold 3) on the same probe: the
  kubelet restarts a container in place after 3 failed probes in a row (with its restart
  back-off), also during an outage when every probe fails; it cannot see a stuck consumer (it
  restarts one only by accident, during the outage); a
  crash-looping container is restarted by the kubelet forever (CrashLoopBackOff), there is no
  breaker. Starting containers are not probed (as if `initialDelaySeconds` covered start-up).

Scores (besides the usual ones): `detect_to_restart_s` p50/p99 (fault injected -> that pod
restarted), also per kind; for stuck consumers also from the first message the stuck consumer
took (`stuck_from_work`): on a bursty trace a consumer may get stuck while there is nothing to
consume, and nothing can tell it from an idle one until work arrives; `false_restarts` (restarts
of pods without a fault);
`restarts_during_outage`; `breaker_opened` (times ours' breaker opened; liveness has none);
`faults_missed` (hung or stuck pods never restarted), `faults_scaled_away` (removed by a
scale-down first); `crash_restarts` (the contender's restarts of crash-looping pods: ours'
evictions, the kubelet's CrashLoopBackOff restarts for liveness), and for ours how many came
before the breaker opened and while it was open during the phase. The kubelet restarts
crash-looping containers under ours too (`kubelet_crash_restarts`).

The healer's wall clock and the pods' start times share `sim.adapters.SIM_EPOCH`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import random
import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.bench.contenders import model_adapters, only, stopped_on_failure
from autoscaler.bench.scenario import ScenarioError, Setup, build_setup
from autoscaler.config import HttpProbeSettings, LoadedConfig, PulsarSource, WorkloadSpec
from autoscaler.daemon import Daemon
from autoscaler.sim.adapters import (
    ModelCluster,
)
from autoscaler.sim.clock import run_virtual
from autoscaler.sim.model import ClusterModel, Fault, FaultKind, Outage
from autoscaler.sim.traces import Trace
from autoscaler.telemetry import Telemetry

CONTENDERS = ("ours", "liveness")
SEGMENT_SECONDS = 10_800
WARMUP_SECONDS = 600.0
#: The segment's mean demand, as a fraction of `peak_replicas` pods (8 of 20).
MEAN_PEAK_FRACTION = 0.4
#: Faults land at a seeded moment within this many seconds after their slot.
FAULT_JITTER_SECONDS = 120.0
OUTAGE_SECONDS = 600.0
#: After the outage, time for its backlog to drain before the next fault.
OUTAGE_SETTLE_SECONDS = 900.0
CRASH_PHASE_SECONDS = 1500.0
LIVENESS_PERIOD_SECONDS = 10.0
LIVENESS_FAILURE_THRESHOLD = 3
BREAKER_EVENT = "HealingBreakerOpen"


@dataclass(frozen=True, slots=True)
class HealingSetup:
    """The worker under test on its segment, the ES outage, and the faults to inject."""

    setup: Setup
    faults: tuple[Fault, ...]
    segment_start: int
    http_probe_added: bool

    @property
    def outage(self) -> Outage:
        return self.setup.outages[0]

    @property
    def crash(self) -> Fault:
        return next(f for f in self.faults if f.kind == FaultKind.CRASH)

    @property
    def probe_dependency(self) -> str:
        return self.outage.dependency

    def model(self, *, seed: int, replicas: int | None = None,
              record_timeline: bool = False) -> ClusterModel:
        s = self.setup
        w = s.spec.settings
        initial = replicas if replicas is not None else min(
            w.max, max(w.min, math.ceil(s.trace.rates[0] / s.capacity * 1.25)))
        return ClusterModel(trace=s.trace, kind=s.kind, workload=s.spec.deployment,
                            namespace=s.spec.namespace, replicas=initial, capacity=s.capacity,
                            startup_seconds=s.startup_seconds, min_replicas=w.min,
                            outages=s.outages, seed=seed, record_timeline=record_timeline,
                            faults=self.faults, probe_requires=(self.probe_dependency,))


def steady_segment(trace: Trace, seconds: int) -> tuple[int, tuple[float, ...]]:
    """The start and rates of the steadiest `seconds` of the trace (repeated if shorter)."""
    rates = list(trace.rates)
    while len(rates) < seconds:
        rates.extend(trace.rates)
    n = len(rates)
    total, squares, idle = [0.0], [0.0], [0]
    for r in rates:
        total.append(total[-1] + r)
        squares.append(squares[-1] + r * r)
        idle.append(idle[-1] + (r <= 0))
    step = max(60, trace.interval)
    best: tuple[bool, float, int] | None = None
    for start in range(0, n - seconds + 1, step):
        end = start + seconds
        mean = (total[end] - total[start]) / seconds
        if mean <= 0:
            continue
        var = max(0.0, (squares[end] - squares[start]) / seconds - mean * mean)
        key = (idle[end] - idle[start] > 0, math.sqrt(var) / mean, start)
        if best is None or key < best:
            best = key
    start = best[2] if best is not None else 0
    return start, tuple(rates[start:start + seconds])


def _worker(loaded: LoadedConfig, base: Setup, *, named: bool = False) -> WorkloadSpec:
    """The backlog-scaled Pulsar worker that reads stuck consumers: the scenario's default, or
    the named one (`named`) only."""
    candidates = [base.spec] if named else [base.spec, *loaded.workloads]
    for spec in candidates:
        healing = spec.settings.healing
        if not healing.enabled or healing.consumer_source is None:
            continue
        for ref, policy in zip(spec.settings.policies, spec.policies, strict=True):
            if policy.name == "backlog" and isinstance(
                    loaded.config.sources.get(str(ref.params.get("source"))), PulsarSource):
                return spec
    which = f"workload {base.spec.name!r}" if named else "a workload"
    raise ScenarioError(f"{loaded.path}: the healing scenario needs {which} with a backlog "
                        f"policy on a Pulsar source and healing.consumer_source set")


def _schedule(spec: WorkloadSpec, rng: random.Random) -> tuple[tuple[Fault, ...], Outage,
                                                                   int]:
    """The faults, the outage, and the segment length they need."""
    healing = spec.settings.healing
    spacing = healing.window_seconds + healing.stuck_consumer_seconds + 2 * FAULT_JITTER_SECONDS
    requires = spec.settings.requires
    dependency = "elasticsearch" if "elasticsearch" in requires or not requires else requires[0]

    def at(slot: float) -> float:
        return round(slot + rng.uniform(0.0, FAULT_JITTER_SECONDS), 3)

    before = [FaultKind.HUNG] * 3 + [FaultKind.STUCK] * 3
    after = [FaultKind.HUNG, FaultKind.STUCK]
    rng.shuffle(before)
    rng.shuffle(after)
    faults = [Fault(kind, at(WARMUP_SECONDS + k * spacing)) for k, kind in enumerate(before)]
    outage_start = WARMUP_SECONDS + len(before) * spacing + FAULT_JITTER_SECONDS / 2
    outage = Outage(dependency, outage_start, outage_start + OUTAGE_SECONDS)
    resume = outage.end + OUTAGE_SETTLE_SECONDS
    faults += [Fault(kind, at(resume + k * spacing)) for k, kind in enumerate(after)]
    crash = Fault(FaultKind.CRASH, at(resume + len(after) * spacing), CRASH_PHASE_SECONDS)
    faults.append(crash)
    end = crash.at + crash.seconds + 1200.0
    length = max(SEGMENT_SECONDS, math.ceil(end / 60.0) * 60)
    return tuple(faults), outage, length


def _with_work(fault: Fault, rates: Sequence[float]) -> Fault:
    """A consumer gets stuck on a message it took: a stuck fault starts in the first second
    from its slot in which messages arrive (in an idle second it would be an idle consumer,
    which nothing can, or needs to, tell from a stuck one)."""
    if fault.kind != FaultKind.STUCK:
        return fault
    t = int(fault.at)
    while t < len(rates) and rates[t] <= 0:
        t += 1
    return dataclasses.replace(fault, at=max(fault.at, float(t))) if t > fault.at else fault


def build_healing(loaded: LoadedConfig, trace: Trace, *, peak_replicas: int,
                  seed: int, workload: str | None = None) -> HealingSetup:
    base = build_setup(loaded, trace, "healing", peak_replicas=peak_replicas,
                       workload=workload)
    spec = _worker(loaded, base, named=workload is not None)
    params = next(ref.params for ref, p in zip(spec.settings.policies, spec.policies,
                                                 strict=True) if p.name == "backlog")
    capacity = float(params["msgs_per_second"])
    healing = spec.settings.healing
    added = healing.http_probe is None
    if added:
        healing = healing.model_copy(update={"http_probe": HttpProbeSettings()})
        spec = dataclasses.replace(
            spec, settings=spec.settings.model_copy(update={"healing": healing}))
    faults, outage, length = _schedule(spec, random.Random(f"healing-{seed}"))
    start, rates = steady_segment(trace, length)
    faults = tuple(_with_work(f, rates) for f in faults)
    mean = statistics.fmean(rates) or 1.0
    factor = MEAN_PEAK_FRACTION * peak_replicas * capacity / mean
    segment = Trace(trace.name, tuple(r * factor for r in rates), trace.interval)
    setup = Setup("healing", "worker", spec, capacity, segment, (outage,), base.startup_seconds)
    return HealingSetup(setup, faults, start, added)


# ---------------------------------------------------------------------------- contenders
class HealingCluster(ModelCluster):
    """`ModelCluster` that keeps the Events the daemon emits (restarts, the breaker)."""

    def __init__(self, model: ClusterModel) -> None:
        super().__init__(model)
        self.events: list[tuple[float, str, str]] = []

    async def emit_event(self, namespace: str, deployment: str, *, reason: str, message: str,
                         warning: bool = False) -> None:
        self.events.append((asyncio.get_running_loop().time(), reason, message))


def _wake_times(hs: HealingSetup) -> list[float]:
    """When the model must be looked at so each fault starts exactly on time."""
    times = [f.at for f in hs.faults] + [hs.crash.at + hs.crash.seconds, hs.outage.start,
                                          hs.outage.end]
    return sorted(times)


async def _injector(model: ClusterModel, times: Iterable[float]) -> None:
    loop = asyncio.get_running_loop()
    for at in times:
        await asyncio.sleep(max(0.0, at - loop.time()))
        model.advance(loop.time())


def run_ours_healing(loaded: LoadedConfig, hs: HealingSetup,
                     model: ClusterModel) -> tuple[Daemon, HealingCluster]:
    """The real daemon, with the app probe of pods, on a virtual clock."""
    config = only(loaded, hs.setup)
    cluster = HealingCluster(model)
    daemon = Daemon(config, model_adapters(config, model, cluster=cluster),
                    telemetry=Telemetry(), check_conflicts=False)

    async def main() -> None:
        injector = asyncio.create_task(_injector(model, _wake_times(hs)))
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(model.trace.duration)
        daemon.stop()
        await task
        injector.cancel()
        await asyncio.gather(injector, return_exceptions=True)

    run_virtual(main())
    model.finish()
    stopped_on_failure(daemon, hs.setup)
    return daemon, cluster


def liveness_replicas(hs: HealingSetup) -> int:
    """The static allocation beside liveness probes: the segment's peak need."""
    s = hs.setup
    w = s.spec.settings
    return min(w.max, max(w.min, math.ceil(round(max(s.trace.rates) / s.capacity, 9))))


def run_liveness(hs: HealingSetup, model: ClusterModel) -> None:
    """Kubernetes liveness probes (period 10 s, failureThreshold 3) on the same app probe."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        injector = asyncio.create_task(_injector(model, _wake_times(hs)))
        failures: dict[str, int] = {}
        while not model.finished:
            now = loop.time()
            model.advance(now)
            for pod in list(model.deployment.pods):
                if pod.crashing or not pod.ready:  # crash loop: the kubelet; start-up: not probed
                    failures.pop(pod.name, None)
                elif pod.hung:
                    failures[pod.name] = failures.get(pod.name, 0) + 1
                    if failures[pod.name] >= LIVENESS_FAILURE_THRESHOLD:
                        model.kill(pod.name, at=now)
                        failures.pop(pod.name)
                else:
                    failures.pop(pod.name, None)
            await asyncio.sleep(LIVENESS_PERIOD_SECONDS)
        injector.cancel()
        await asyncio.gather(injector, return_exceptions=True)

    run_virtual(main())
    model.finish()


# ---------------------------------------------------------------------------- scores
def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 3)


def healing_scores(hs: HealingSetup, model: ClusterModel, *, contender: str,
                   breaker_opened_at: list[float]) -> dict[str, Any]:
    from autoscaler.bench.runner import percentile  # noqa: PLC0415 (runner imports this module)

    s = model.scores
    sick = [i for i in s.injections if i.kind in (FaultKind.HUNG, FaultKind.STUCK)]

    def delays(*kinds: FaultKind) -> list[float]:
        return [i.restarted_at - i.at for i in sick
                if i.kind in kinds and i.restarted_at is not None]

    both = delays(FaultKind.HUNG, FaultKind.STUCK)
    hung, stuck = delays(FaultKind.HUNG), delays(FaultKind.STUCK)
    from_work = [i.restarted_at - i.work_at for i in sick
                 if i.restarted_at is not None and i.work_at is not None]
    crash = hs.crash
    crash_end = crash.at + crash.seconds
    opened = breaker_opened_at[0] if breaker_opened_at else math.inf
    evictions = [r for r in s.restart_log if r.fault == FaultKind.CRASH and not r.in_place]
    # liveness: the kubelet is the restarter; ours: its evictions (the kubelet's are extra)
    crash_restarts = s.kubelet_crash_restarts if contender == "liveness" else len(evictions)
    return {
        "restarts": s.restarts,
        "false_restarts": sum(1 for r in s.restart_log if not r.fault),
        "restarts_during_outage": s.restarts_during_outage,
        "breaker_opened": len(breaker_opened_at),
        "detect_to_restart_p50_s": _round(percentile(both, 0.5)),
        "detect_to_restart_p99_s": _round(percentile(both, 0.99)),
        "hung_detect_p50_s": _round(percentile(hung, 0.5)),
        "hung_detect_p99_s": _round(percentile(hung, 0.99)),
        "stuck_detect_p50_s": _round(percentile(stuck, 0.5)),
        "stuck_detect_p99_s": _round(percentile(stuck, 0.99)),
        "stuck_from_work_p50_s": _round(percentile(from_work, 0.5)),
        "stuck_from_work_p99_s": _round(percentile(from_work, 0.99)),
        "faults_injected": len(sick),
        "faults_restarted": sum(1 for i in sick if i.restarted_at is not None),
        "faults_missed": sum(1 for i in sick if i.restarted_at is None and i.removed_at is None),
        "faults_scaled_away": sum(1 for i in sick if i.removed_at is not None),
        "faults_skipped": len(s.faults_skipped),
        "crash_restarts": crash_restarts,
        "crash_attempts_before_breaker": (
            sum(1 for r in evictions if crash.at <= r.at < opened) if breaker_opened_at
            else None),
        "crash_restarts_while_breaker_open": (
            sum(1 for r in evictions if opened <= r.at < crash_end) if breaker_opened_at
            else None),
        "kubelet_crash_restarts": s.kubelet_crash_restarts,
        "http_probe_added": hs.http_probe_added,
        "segment_start_s": hs.segment_start,
        "outage_start_s": hs.outage.start,
        "crash_start_s": crash.at,
    }


def run_healing(loaded: LoadedConfig, hs: HealingSetup, contender: str, *, seed: int,
                record_timeline: bool = False,
                on_model: Callable[[ClusterModel], None] | None = None,
                ) -> tuple[ClusterModel, dict[str, Any]]:
    """One contender on the healing scenario: the model it ran on and its healing scores.
    `on_model` is handed the model before the run (`simulate` shows its progress)."""
    if contender == "ours":
        model = hs.model(seed=seed, record_timeline=record_timeline)
        if on_model is not None:
            on_model(model)
        _, cluster = run_ours_healing(loaded, hs, model)
        opened = [at for at, reason, _ in cluster.events if reason == BREAKER_EVENT]
    elif contender == "liveness":
        model = hs.model(seed=seed, replicas=liveness_replicas(hs),
                         record_timeline=record_timeline)
        if on_model is not None:
            on_model(model)
        run_liveness(hs, model)
        opened = []
    else:
        raise ScenarioError(f"unknown healing contender {contender!r}; known: "
                            f"{', '.join(CONTENDERS)}")
    return model, healing_scores(hs, model, contender=contender, breaker_opened_at=opened)


def healing_table(results: list[dict[str, Any]]) -> str:
    """ours against liveness on the healing scenario, one row per trace and contender."""
    head = (f"{'trace':<26} {'contender':<9} {'faults':>6} {'healed':>6} {'missed':>6} "
            f"{'away':>4} {'d2r_p50':>7} {'d2r_p99':>7} {'hung_p99':>8} {'stuck_p99':>9} "
            f"{'work_p99':>8} {'false':>5} {'out_rst':>7} {'breaker':>7} {'crash_rst':>9} "
            f"{'restarts':>8}")
    lines = [head, "-" * len(head)]

    def fmt(v: Any, spec: str) -> str:
        return "-" if v is None else format(v, spec)

    for r in results:
        lines.append(
            f"{r['trace']:<26.26} {r['contender']:<9} {r['faults_injected']:>6d} "
            f"{r['faults_restarted']:>6d} {r['faults_missed']:>6d} "
            f"{r['faults_scaled_away']:>4d} {fmt(r['detect_to_restart_p50_s'], '.1f'):>7} "
            f"{fmt(r['detect_to_restart_p99_s'], '.1f'):>7} "
            f"{fmt(r['hung_detect_p99_s'], '.1f'):>8} {fmt(r['stuck_detect_p99_s'], '.1f'):>9} "
            f"{fmt(r['stuck_from_work_p99_s'], '.1f'):>8} {r['false_restarts']:>5d} "
            f"{r['restarts_during_outage']:>7d} "
            f"{r['breaker_opened']:>7d} {r['crash_restarts']:>9d} {r['restarts']:>8d}")
    return "\n".join(lines)
