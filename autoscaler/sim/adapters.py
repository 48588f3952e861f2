"""In-memory adapters over `ClusterModel`: the daemon's ports, served from the simulation.

`ModelCluster` is the `Cluster` port, `ModelPulsarSource` and `ModelRateSource` are `Source`s,
`ModelProbe` is a `Probe`. Each advances the model to the loop's (virtual) time before it looks,
so the daemon sees exactly what a live one would see at that moment.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

from autoscaler.config import HttpProbeSettings
from autoscaler.model import ConsumerStat, PodInfo, Signal, WorkloadStatus
from autoscaler.ports import CheckResult, PodEvent, WriteOutcome, WriteResult
from autoscaler.sim.model import ClusterModel

#: How often the simulated pod watch looks for readiness changes.
WATCH_SECONDS = 2.0
#: The simulated cluster's epoch: wall time = SIM_EPOCH + virtual seconds, so that pod start
#: times are real-looking timestamps (0.0 means "not started" to the healer).
SIM_EPOCH = 1_700_000_000.0


def sim_wall() -> float:
    return SIM_EPOCH + _now()


def _now() -> float:
    return asyncio.get_running_loop().time()


class ModelCluster:
    def __init__(self, model: ClusterModel) -> None:
        self.model = model
        self.writes = 0

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        self.model.advance(_now())
        dep = self.model.deployment
        if deployment != dep.name:
            raise LookupError(f"deployment {namespace}/{deployment} not found")
        pods = tuple(
            PodInfo(name=p.name, ready=p.ready, phase="Running" if p.ready else "Pending",
                    ip=p.ip, started_at=SIM_EPOCH + p.created_at, restarts=p.restarts,
                    waiting_reason="CrashLoopBackOff" if p.crashing else "")
            for p in dep.pods)
        return WorkloadStatus(name=dep.name, namespace=namespace, replicas=dep.replicas,
                              ready_replicas=sum(p.ready for p in dep.pods), paused=dep.paused,
                              resource_version=str(dep.resource_version), pods=pods)

    async def scale(self, namespace: str, deployment: str, *, replicas: int,
                    resource_version: str) -> WriteResult:
        self.writes += 1
        dep = self.model.deployment
        if resource_version != str(dep.resource_version):
            return WriteResult(WriteOutcome.CONFLICT, "the object has been modified")
        self.model.scale(replicas, at=_now())
        return WriteResult(WriteOutcome.DONE)

    async def evict(self, namespace: str, pod: str) -> WriteResult:
        ok = self.model.restart(pod, at=_now())
        return WriteResult(WriteOutcome.DONE if ok else WriteOutcome.NOT_FOUND)

    async def delete_pod(self, namespace: str, pod: str) -> WriteResult:
        return await self.evict(namespace, pod)

    async def emit_event(self, namespace: str, deployment: str, *, reason: str, message: str,
                         warning: bool = False) -> None:
        return None

    async def conflicting_autoscaler(self, namespace: str, deployment: str) -> str | None:
        return None

    async def pod_cpu(self, namespace: str, deployment: str) -> Signal:
        return Signal("resources.cpu", None, _now(), error="no metrics in the simulator")

    async def watch_pods(self, namespace: str) -> AsyncIterator[PodEvent]:
        last = -1
        while True:
            self.model.advance(_now())
            ready = sum(p.ready for p in self.model.deployment.pods)
            if ready != last:
                last = ready
                yield PodEvent("MODIFIED", namespace, self.model.deployment.name)
            await asyncio.sleep(WATCH_SECONDS)

    async def close(self) -> None:
        return None


class ModelPulsarSource:
    """The worker topic's subscription stats, as the Pulsar admin API would report them."""

    def __init__(self, name: str, model: ClusterModel) -> None:
        self.name = name
        self.model = model

    async def read(self) -> Sequence[Signal]:
        now = _now()
        m = self.model
        m.advance(now)
        n = self.name
        if m.down("pulsar", now):
            return [Signal(f"{n}.{f}", None, now, error="connection refused")
                    for f in ("backlog", "in_rate", "out_rate", "consumers")]
        consumers = tuple(ConsumerStat(p.name, f"/{p.ip}:41234", p.out_rate)
                          for p in m.deployment.pods if p.ready)
        return [
            Signal(f"{n}.backlog", m.queue, now),
            Signal(f"{n}.in_rate", m.in_rate(), now),
            Signal(f"{n}.out_rate", m.out_rate(), now),
            Signal(f"{n}.consumers", float(len(consumers)), now, consumers=consumers),
        ]

    async def close(self) -> None:
        return None


class ModelRateSource:
    """The request rate reaching the track API, as a Prometheus `rate(...)` would return it."""

    def __init__(self, name: str, model: ClusterModel) -> None:
        self.name = name
        self.model = model

    async def read(self) -> Sequence[Signal]:
        now = _now()
        self.model.advance(now)
        return [Signal(f"{self.name}.value", self.model.in_rate(), now)]

    async def close(self) -> None:
        return None


class ModelPodProber:
    """The healer's app-level check of a simulated pod: fails while the pod is hung."""

    def __init__(self, model: ClusterModel) -> None:
        self.model = model

    async def check(self, pod: PodInfo, settings: HttpProbeSettings) -> CheckResult:
        self.model.advance(_now())
        sim = next((p for p in self.model.deployment.pods if p.name == pod.name), None)
        if sim is not None and sim.hung:
            return CheckResult(ok=False, reason=f"timeout after {settings.timeout_seconds:g}s")
        return CheckResult(ok=True)

    async def close(self) -> None:
        return None


class ModelProbe:
    """Up unless the model has an outage window for this dependency now."""

    def __init__(self, name: str, model: ClusterModel) -> None:
        self.name = name
        self.model = model

    async def check(self) -> CheckResult:
        if self.model.down(self.name, _now()):
            return CheckResult(ok=False, reason="connection refused (simulated outage)")
        return CheckResult(ok=True)

    async def close(self) -> None:
        return None
