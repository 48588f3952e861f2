"""The contenders, each run against its own copy of the simulated cluster.

- `ours`: the real daemon (`Daemon`, unchanged) with the shipped config, on a virtual clock with
  in-memory adapters.
- `keda`: what KEDA's Pulsar and Prometheus scalers do: the HPA's AverageValue math on the same
  signal, a fresh value every 15 s, HPA default behavior, no dependency gate.
- `static`: the peak need, fixed.
- `oracle`: the physical lower bound, computed, not simulated.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace

from autoscaler.bench.scenario import ReplayError, Setup
from autoscaler.config import LoadedConfig, PulsarSource, default_scale_down, default_scale_up
from autoscaler.daemon import Adapters, Daemon
from autoscaler.engine.behavior import apply_behavior, record_scale
from autoscaler.model import ScalingHistory
from autoscaler.policies.hpa import Tolerance, average_value_replicas
from autoscaler.ports import Probe, Source
from autoscaler.sim.adapters import (
    ModelCluster,
    ModelPodProber,
    ModelProbe,
    ModelPulsarSource,
    ModelRateSource,
    sim_wall,
)
from autoscaler.sim.clock import VirtualClock, run_virtual
from autoscaler.sim.model import ClusterModel
from autoscaler.telemetry import Telemetry

KEDA_SYNC_SECONDS = 15.0
KEDA_API_TARGETS = (0.5, 0.6, 0.7, 0.8, 0.9)  # fraction of one pod's capacity
KEDA_WORKER_TARGETS = (5, 10, 30, 60, 120)  # seconds of one replica's work as backlog


def only(loaded: LoadedConfig, setup: Setup) -> LoadedConfig:
    """The shipped config narrowed to the workload under test (others have no traffic here)."""
    return replace(loaded, workloads=(setup.spec,))


def model_adapters(config: LoadedConfig, model: ClusterModel, *,
                   cluster: ModelCluster | None = None) -> Adapters:
    """In-memory adapters for the (single) workload under test: the sources of its signals and
    of its healer's consumer stats, every dependency's probe, and the app probe of its pods."""
    spec = config.workloads[0]
    wanted = {s.split(".", 1)[0] for s in spec.signal_names()}
    if spec.settings.healing.consumer_source:
        wanted.add(spec.settings.healing.consumer_source)
    sources: dict[str, Source] = {
        name: (ModelPulsarSource(name, model, src) if isinstance(src, PulsarSource)
               else ModelRateSource(name, model))
        for name, src in config.config.sources.items() if name in wanted}
    probes: dict[str, Probe] = {name: ModelProbe(name, model)
                                for name in config.config.dependencies}
    # The simulated cluster's timestamps (pod start times) run on virtual time: so does "wall".
    return Adapters(clock=VirtualClock(), cluster=cluster or ModelCluster(model), sources=sources,
                    probes=probes, wall=sim_wall, pod_prober=ModelPodProber(model))


def run_ours(loaded: LoadedConfig, setup: Setup, model: ClusterModel) -> Daemon:
    config = only(loaded, setup)
    daemon = Daemon(config, model_adapters(config, model), telemetry=Telemetry(),
                    check_conflicts=False)

    async def main() -> None:
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(model.trace.duration)
        daemon.stop()
        await task

    run_virtual(main())
    model.finish()
    stopped_on_failure(daemon, setup)
    return daemon


def stopped_on_failure(daemon: Daemon, setup: Setup) -> None:
    """`ReplayError` when the replayed daemon stopped on a failed task: the rest of the trace
    ran without it, so its scores would be wrong."""
    if daemon.failure is not None:
        raise ReplayError(f"{setup.trace.name} {setup.scenario}: the replayed daemon stopped "
                           f"early: {daemon.failure}")


def run_keda(setup: Setup, model: ClusterModel, target: float) -> None:
    w = setup.spec.settings
    up, down = default_scale_up(), default_scale_down()
    tolerance = Tolerance()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        history = ScalingHistory()
        while not model.finished:
            now = loop.time()
            model.advance(now)
            value = model.in_rate() if setup.kind == "api" else model.queue
            current = model.deployment.replicas
            desired = average_value_replicas(current=current, value=value, target=target,
                                             tolerance=tolerance)
            result = apply_behavior(current=current, desired=desired, min_replicas=w.min,
                                    max_replicas=w.max, up=up, down=down, history=history,
                                    now=now)
            history = result.history
            if result.replicas != current:
                model.scale(result.replicas, at=now)
                history = record_scale(history, now=now, old=current, new=result.replicas)
            await asyncio.sleep(KEDA_SYNC_SECONDS)

    run_virtual(main())
    model.finish()


def static_replicas(setup: Setup, model: ClusterModel) -> int:
    w = setup.spec.settings
    peak = max(model.need(t) for t in range(model.trace.duration))
    return min(w.max, max(w.min, peak))


def run_static(setup: Setup, model: ClusterModel) -> None:
    model.scale(static_replicas(setup, model), at=0.0)
    model.deployment.pods = [replace(p, ready=True, ready_at=0.0)
                             for p in model.deployment.pods]
    model.finish()


def oracle_replica_seconds(setup: Setup, model: ClusterModel) -> float:
    """API: clairvoyant and paying start-up; workers: work conservation."""
    w = setup.spec.settings
    duration = model.trace.duration
    if setup.kind == "api":
        startup = int(setup.startup_seconds)
        needs = [min(w.max, max(w.min, model.need(t))) for t in range(duration + startup + 1)]
        return float(sum(max(needs[t], needs[min(t + startup, duration - 1)])
                         for t in range(duration)))
    return float(sum(max(w.min, model.demand(t) / setup.capacity) for t in range(duration)))
