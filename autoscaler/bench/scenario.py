"""Scenarios: which workload of the shipped config is under test, on what traffic, with what
outages; and the simulated cluster built for one run.

`api` scales the track API (`request-rate` policy) on the trace; `worker` scales the background
worker (`backlog` policy) on the trace turned into Pulsar messages; `worker-outage` adds a
10-minute Elasticsearch outage starting 5 minutes before the busiest hour; `healing` injects
sick pods into the worker (see `bench/healing.py`, which builds on the worker set-up here).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.config import LoadedConfig, PrometheusSource, PulsarSource, WorkloadSpec
from autoscaler.policies.hpa import ExternalMetric, HpaParams, HpaPolicy, ResourceMetric
from autoscaler.sim.model import ClusterModel, Outage
from autoscaler.sim.traces import Trace

SCENARIOS = ("api", "worker", "worker-outage", "healing")
OUTAGE_SECONDS = 600
#: Requests/s one API pod serves when it is scaled by `hpa` on CPU (no policy says it). It sets
#: only the unit: the trace is scaled so that its peak needs `--peak-replicas` pods, and the
#: pods' CPU use is the share of their capacity in use. An `hpa` policy on an External metric
#: has a target in the metric's own unit, so what a pod serves must be given (`--capacity-rps`).
HPA_CAPACITY_RPS = 100.0


class ScenarioError(ValueError):
    """The config has no workload this scenario can run."""


class ReplayError(RuntimeError):
    """A replayed daemon stopped on a failed task: its run has no scores."""


@dataclass(frozen=True, slots=True)
class Setup:
    scenario: str
    kind: str  # api | worker
    spec: WorkloadSpec
    capacity: float  # per ready pod: requests/s or msgs/s
    trace: Trace  # already normalized to the scenario's unit (requests/s or msgs/s)
    outages: tuple[Outage, ...]
    startup_seconds: float
    #: The capacity the policy states (`capacity_rps`, `msgs_per_second`) when the pods serve
    #: another (`--capacity-factor`); None: they serve what it states.
    stated_capacity: float | None = None

    @property
    def policy_capacity(self) -> float:
        """What the scaler believes one pod serves: keda's targets are shares of it."""
        return self.capacity if self.stated_capacity is None else self.stated_capacity

    def model(self, *, seed: int, record_timeline: bool = False) -> ClusterModel:
        w = self.spec.settings
        initial = min(w.max, max(w.min, math.ceil(self.trace.rates[0] / self.capacity * 1.25)))
        return ClusterModel(trace=self.trace, kind=self.kind, workload=self.spec.deployment,
                            namespace=self.spec.namespace, replicas=initial,
                            capacity=self.capacity, startup_seconds=self.startup_seconds,
                            min_replicas=w.min, outages=self.outages, seed=seed,
                            record_timeline=record_timeline)


def _policy_of(loaded: LoadedConfig, spec: WorkloadSpec,
               kind: str) -> tuple[str, Mapping[str, Any]] | None:
    """The policy of `spec` a `kind` scenario replays, with its params: for `worker`, a backlog
    policy on a Pulsar source; for `api`, a request-rate policy on a Prometheus source, else an
    `hpa` policy on the pods' CPU (the simulated pods report CPU use, see `model.cpu_milli`) or
    on an External metric of a Prometheus source (the replay serves it the request rate)."""
    sources = loaded.config.sources
    on_hpa: tuple[str, Mapping[str, Any]] | None = None
    for ref, p in zip(spec.settings.policies, spec.policies, strict=True):
        source = sources.get(str(ref.params.get("source")))
        if kind == "worker":
            if p.name == "backlog" and isinstance(source, PulsarSource):
                return p.name, ref.params
        elif p.name == "request-rate" and isinstance(source, PrometheusSource):
            return p.name, ref.params
        elif on_hpa is None and isinstance(p, HpaPolicy) and (
                isinstance(p.params.metric, ResourceMetric)
                or isinstance(sources.get(p.params.metric.source), PrometheusSource)):
            on_hpa = p.name, ref.params
    return on_hpa if kind == "api" else None


#: What the workload of each kind of scenario is scaled by, to name it in an error.
_SCALED_BY = {"api": "a 'request-rate' policy on a PrometheusSource source or an 'hpa' policy "
                     "on CPU or on an External metric of a PrometheusSource source",
              "worker": "a 'backlog' policy on a PulsarSource source"}


def _workload(loaded: LoadedConfig, kind: str,
              name: str | None = None) -> tuple[WorkloadSpec, str, Mapping[str, Any]]:
    """The workload a `kind` scenario replays, with the policy it is scaled by and its params:
    the one named, or the first with a request-rate policy (`api`) or a backlog policy
    (`worker`), or for `api` without one the first with an `hpa` policy on CPU."""
    fits = [(spec, *found) for spec in loaded.workloads
            if (found := _policy_of(loaded, spec, kind)) is not None]
    what = _SCALED_BY[kind]
    if name is None:
        preferred = [fit for fit in fits if fit[1] != "hpa"] or fits
        if preferred:
            return preferred[0]
        raise ScenarioError(f"{loaded.path}: no workload with {what}")
    for spec, policy, params in fits:
        if spec.name == name:
            return spec, policy, params
    if name not in {spec.name for spec in loaded.workloads}:
        known = ", ".join(spec.name for spec in loaded.workloads)
        raise ScenarioError(f"{loaded.path}: no workload {name!r}; its workloads: {known}")
    others = ", ".join(spec.name for spec, _, _ in fits) or "none"
    raise ScenarioError(f"{loaded.path}: workload {name!r} has no {what.removeprefix('a ')}, "
                        f"which this scenario replays; the workloads that have one: {others}")


def _kind(scenario: str) -> str:
    return "api" if scenario == "api" else "worker"


def _hpa_capacity(loaded: LoadedConfig, spec: WorkloadSpec, params: Mapping[str, Any],
                  capacity_rps: float | None) -> float:
    """What one pod of a workload scaled by `hpa` serves: `capacity_rps` when given; on CPU
    `HPA_CAPACITY_RPS` (a unit only); on an External metric it must be given."""
    if capacity_rps is not None:
        return capacity_rps
    if isinstance(HpaParams.model_validate(params).metric, ExternalMetric):
        raise ScenarioError(f"{loaded.path}: workload {spec.name!r} is scaled by an 'hpa' policy "
                            f"on an External metric, whose target says nothing of what one pod "
                            f"serves: give it with --capacity-rps (requests/s per pod)")
    return HPA_CAPACITY_RPS


def check_scenario(loaded: LoadedConfig, scenario: str, workload: str | None = None, *,
                   capacity_rps: float | None = None) -> WorkloadSpec:
    """The workload `scenario` replays (the one named, if one is); ScenarioError unless the
    scenario is known and the config has it, and says what one pod serves: before a bench
    starts its runs, not in one of them."""
    if scenario not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    spec, policy, params = _workload(loaded, _kind(scenario), workload)
    if policy == "hpa":
        _hpa_capacity(loaded, spec, params, capacity_rps)
    elif capacity_rps is not None:
        raise ScenarioError(f"--capacity-rps is for a workload scaled by an 'hpa' policy, whose "
                            f"metric does not say what one pod serves; {spec.name!r} (scenario "
                            f"{scenario}) is scaled by {policy!r}, which does")
    healing = spec.settings.healing
    if scenario == "healing" and workload is not None and not (
            healing.enabled and healing.consumer_source):
        raise ScenarioError(f"{loaded.path}: the healing scenario needs workload {workload!r} "
                            f"to heal and to read its consumers: set healing.consumer_source")
    return spec


def build_setup(loaded: LoadedConfig, trace: Trace, scenario: str, *,
                peak_replicas: int, workload: str | None = None,
                capacity_factor: float = 1.0, capacity_rps: float | None = None) -> Setup:
    """The simulated cluster of one run: the trace scaled so that its peak needs
    `peak_replicas` pods, whose pods serve `capacity_factor` times what the policy states."""
    if scenario not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    peak = max(trace.rates) or 1.0
    kind = _kind(scenario)
    spec, policy, params = _workload(loaded, kind, workload)
    if policy == "backlog":
        capacity = float(params["msgs_per_second"])
        startup = 20.0
    elif policy == "request-rate":
        capacity = float(params["capacity_rps"])
        startup = float(params.get("startup_seconds", 30.0))
    else:  # hpa: on CPU a pod's whole CPU request serves its capacity, whatever that is
        capacity, startup = _hpa_capacity(loaded, spec, params, capacity_rps), 30.0
    stated = capacity if capacity_factor != 1.0 else None
    capacity *= capacity_factor
    normalized = trace.scaled(peak_replicas * capacity / peak)
    outages = (outage_window(trace),) if scenario == "worker-outage" else ()
    return Setup(scenario, kind, spec, capacity, normalized, outages, startup, stated)


def outage_window(trace: Trace) -> Outage:
    """`worker-outage`'s Elasticsearch outage: 10 minutes from 5 minutes before the busiest
    hour, and not in the first 120 s, while the replayed daemon settles."""
    start = max(120, trace.busiest_hour_start() - 300)
    return Outage("elasticsearch", float(start), float(start + OUTAGE_SECONDS))


def outage_note(trace: Trace) -> str | None:
    """What an operator should know when `trace` ends before its `worker-outage` outage does:
    nothing otherwise."""
    outage, end = outage_window(trace), trace.duration
    window = f"{outage.start:.0f}-{outage.end:.0f} s"
    if outage.start >= end:
        return (f"{trace.name}: worker-outage has no outage: the trace ends at {end} s, before "
                f"the outage ({window}); its rows are worker's")
    if outage.end > end:
        return (f"{trace.name}: worker-outage's outage ({window}) is cut short by the end of "
                f"the trace at {end} s")
    return None


def peak_note(spec: WorkloadSpec, scenario: str, peak_replicas: int) -> str | None:
    """What an operator should know when the scenario's workload (`spec`) may not have the pods
    the trace's peak needs (the trace is scaled to `peak_replicas` pods' worth): nothing
    otherwise."""
    most = spec.settings.max
    if most >= peak_replicas:
        return None
    return (f"{scenario}: workload {spec.name!r} may have at most {most} pods, and the trace's "
            f"peak needs {peak_replicas} (--peak-replicas): it cannot keep up there; replay it "
            f"with --peak-replicas {most} or less")
