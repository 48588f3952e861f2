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
from autoscaler.sim.model import ClusterModel, Outage
from autoscaler.sim.traces import Trace

SCENARIOS = ("api", "worker", "worker-outage", "healing")
OUTAGE_SECONDS = 600


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

    def model(self, *, seed: int, record_timeline: bool = False) -> ClusterModel:
        w = self.spec.settings
        initial = min(w.max, max(w.min, math.ceil(self.trace.rates[0] / self.capacity * 1.25)))
        return ClusterModel(trace=self.trace, kind=self.kind, workload=self.spec.deployment,
                            namespace=self.spec.namespace, replicas=initial,
                            capacity=self.capacity, startup_seconds=self.startup_seconds,
                            min_replicas=w.min, outages=self.outages, seed=seed,
                            record_timeline=record_timeline)


def _workload(loaded: LoadedConfig, policy: str, source_kind: type,
              name: str | None = None) -> tuple[WorkloadSpec, Mapping[str, Any]]:
    """The workload the scenario replays, with the params of its `policy`: the one named, or
    the first with that policy on a `source_kind` source."""
    sources = loaded.config.sources
    fits: list[tuple[WorkloadSpec, Mapping[str, Any]]] = []
    for spec in loaded.workloads:
        for ref, p in zip(spec.settings.policies, spec.policies, strict=True):
            src = ref.params.get("source")
            if p.name == policy and isinstance(sources.get(str(src)), source_kind):
                fits.append((spec, ref.params))
                break
    what = f"{policy!r} policy on a {source_kind.__name__} source"
    if name is None:
        if fits:
            return fits[0]
        raise ScenarioError(f"{loaded.path}: no workload with a {what}")
    for spec, params in fits:
        if spec.name == name:
            return spec, params
    if name not in {spec.name for spec in loaded.workloads}:
        known = ", ".join(spec.name for spec in loaded.workloads)
        raise ScenarioError(f"{loaded.path}: no workload {name!r}; its workloads: {known}")
    others = ", ".join(spec.name for spec, _ in fits) or "none"
    raise ScenarioError(f"{loaded.path}: workload {name!r} has no {what}, which this scenario "
                        f"replays; the workloads that have one: {others}")


def check_scenario(loaded: LoadedConfig, scenario: str, workload: str | None = None) -> None:
    """Raise ScenarioError unless `scenario` is known and the config has its workload (the one
    named, if one is): before a bench starts its runs, not in one of them."""
    if scenario not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    if scenario == "api":
        _workload(loaded, "request-rate", PrometheusSource, workload)
        return
    spec, _ = _workload(loaded, "backlog", PulsarSource, workload)
    healing = spec.settings.healing
    if scenario == "healing" and workload is not None and not (
            healing.enabled and healing.consumer_source):
        raise ScenarioError(f"{loaded.path}: the healing scenario needs workload {workload!r} "
                            f"to heal and to read its consumers: set healing.consumer_source")


def build_setup(loaded: LoadedConfig, trace: Trace, scenario: str, *,
                peak_replicas: int, workload: str | None = None) -> Setup:
    if scenario not in SCENARIOS:
        raise ScenarioError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    peak = max(trace.rates) or 1.0
    if scenario == "api":
        spec, params = _workload(loaded, "request-rate", PrometheusSource, workload)
        capacity = float(params["capacity_rps"])
        startup = float(params.get("startup_seconds", 30.0))
        kind = "api"
    else:
        spec, params = _workload(loaded, "backlog", PulsarSource, workload)
        capacity = float(params["msgs_per_second"])
        startup = 20.0
        kind = "worker"
    normalized = trace.scaled(peak_replicas * capacity / peak)
    outages = (outage_window(trace),) if scenario == "worker-outage" else ()
    return Setup(scenario, kind, spec, capacity, normalized, outages, startup)


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


def peak_note(loaded: LoadedConfig, scenario: str, workload: str | None,
              peak_replicas: int) -> str | None:
    """What an operator should know when the scenario's workload may not have the pods the
    trace's peak needs (the trace is scaled to `peak_replicas` pods' worth): nothing
    otherwise."""
    spec, _ = (_workload(loaded, "request-rate", PrometheusSource, workload) if scenario == "api"
               else _workload(loaded, "backlog", PulsarSource, workload))
    most = spec.settings.max
    if most >= peak_replicas:
        return None
    return (f"{scenario}: workload {spec.name!r} may have at most {most} pods, and the trace's "
            f"peak needs {peak_replicas} (--peak-replicas): it cannot keep up there; replay it "
            f"with --peak-replicas {most} or less")
