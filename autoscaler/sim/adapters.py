"""In-memory adapters over `ClusterModel`: the daemon's ports, served from the simulation.

`ModelCluster` is the `Cluster` port, `ModelPulsarSource` and `ModelRateSource` are `Source`s,
`ModelProbe` is a `Probe`. Each advances the model to the loop's (virtual) time before it looks,
so the daemon sees exactly what a live one would see at that moment.

Fault hooks (the chaos soak, `bench/chaos.py`; without them nothing changes):
- `ModelCluster(faults=...)`: Kubernetes API faults per (verb, resource), as `SimCluster` takes
  them from `state.faults` (a `kubestate.FaultPlan`, or anything with its `take`): a delay, then
  the error. Its Deployment read is ("get", "deployments"), its scale write
  ("update", "deployments/scale").
- `SourceFaults`: read faults of the model sources by source name. While one is set, every read
  of that source answers it, through the checks the live sources apply (`sources.values` for
  Pulsar, the live Prometheus reply parser), so a bad body or value gives the live error.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import AsyncIterator, Sequence
from enum import StrEnum
from typing import Protocol

from autoscaler.config import SOURCE_FIELDS, HttpProbeSettings, PulsarSource
from autoscaler.kube.errors import KubeError, outcome_for
from autoscaler.model import CPU_SIGNAL, ConsumerStat, PodInfo, PodSample, Signal, WorkloadStatus
from autoscaler.ports import CheckResult, PodEvent, WriteOutcome, WriteResult
from autoscaler.sim.clock import now as _now
from autoscaler.sim.clock import sleep as _sleep
from autoscaler.sim.kubestate import ApiError, Fault, FaultPlan
from autoscaler.sim.model import POD_CPU_REQUEST_MILLI, ClusterModel, cpu_milli
from autoscaler.sources.http import FetchError, Reply
from autoscaler.sources.prometheus import parse_query_reply
from autoscaler.sources.pulsar import counter_rate
from autoscaler.sources.values import Reading, RejectedValueError, failed, reading, to_signals

#: How often the simulated pod watch looks for readiness changes.
WATCH_SECONDS = 2.0
#: The simulated cluster's epoch: wall time = SIM_EPOCH + virtual seconds, so that pod start
#: times are real-looking timestamps (0.0 means "not started" to the healer).
SIM_EPOCH = 1_700_000_000.0


def sim_wall() -> float:
    return SIM_EPOCH + _now()


class KubeFaults(Protocol):
    """Where `ModelCluster` takes its injected faults from (`kubestate.FaultPlan` is one)."""

    def take(self, verb: str, resource: str) -> Fault | None: ...


class ModelCluster:
    def __init__(self, model: ClusterModel, *, faults: KubeFaults | None = None) -> None:
        self.model = model
        self.writes = 0
        self.faults: KubeFaults = faults if faults is not None else FaultPlan()
        #: Each pod's last PodInfo and what it was made from: a pod that did not change is
        #: served the same value (a new one per pod per read is most of a read's cost).
        self._pod_infos: dict[str, tuple[tuple[bool, str, float, int, bool], PodInfo]] = {}

    async def _fault(self, verb: str, resource: str) -> ApiError | None:
        fault = self.faults.take(verb, resource)
        if fault is None:
            return None
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        return fault.error()

    def cached_workload(self, namespace: str, deployment: str) -> WorkloadStatus | None:
        return None  # every evaluation reads, so injected read faults hit it

    def watches_synced(self, namespace: str) -> bool:
        return False  # no cache: every status is read

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        err = await self._fault("get", "deployments")
        if err is not None:
            raise KubeError(err.code, err.reason, err.message, retry_after=err.retry_after)
        self.model.advance(_now())
        dep = self.model.deployment
        if deployment != dep.name:
            raise LookupError(f"deployment {namespace}/{deployment} not found")
        known = self._pod_infos
        infos: dict[str, tuple[tuple[bool, str, float, int, bool], PodInfo]] = {}
        listed: list[PodInfo] = []
        for p in dep.pods:
            key = (p.ready, p.ip, p.created_at, p.restarts, p.crashing)
            seen = known.get(p.name)
            if seen is None or seen[0] != key:
                seen = key, PodInfo(
                    name=p.name, ready=p.ready, phase="Running" if p.ready else "Pending",
                    ip=p.ip, started_at=SIM_EPOCH + p.created_at, restarts=p.restarts,
                    waiting_reason="CrashLoopBackOff" if p.crashing else "",
                    cpu_request_milli=POD_CPU_REQUEST_MILLI)
            infos[p.name] = seen
            listed.append(seen[1])
        self._pod_infos = infos
        pods = tuple(listed)
        return WorkloadStatus(name=dep.name, namespace=namespace, replicas=dep.replicas,
                              ready_replicas=sum(p.ready for p in dep.pods), paused=dep.paused,
                              resource_version=str(dep.resource_version), pods=pods)

    async def scale(self, namespace: str, deployment: str, *, replicas: int,
                    resource_version: str) -> WriteResult:
        self.writes += 1
        err = await self._fault("update", "deployments/scale")
        if err is not None:
            return WriteResult(outcome_for(err.code), err.message, err.retry_after)
        dep = self.model.deployment
        if resource_version != str(dep.resource_version):
            return WriteResult(WriteOutcome.CONFLICT, "the object has been modified")
        self.model.scale(replicas, at=_now())
        return WriteResult(WriteOutcome.DONE)

    async def evict(self, namespace: str, pod: str, *,
                    resource_version: str = "") -> WriteResult:
        # The model's pods have no versions (`PodInfo.resource_version` is empty).
        ok = self.model.restart(pod, at=_now())
        return WriteResult(WriteOutcome.DONE if ok else WriteOutcome.NOT_FOUND)

    async def delete_pod(self, namespace: str, pod: str, *,
                         resource_version: str = "") -> WriteResult:
        return await self.evict(namespace, pod)

    async def emit_event(self, namespace: str, deployment: str, *, reason: str, message: str,
                         warning: bool = False) -> None:
        return None

    async def conflicting_autoscaler(self, namespace: str, deployment: str) -> str | None:
        return None

    async def pod_cpu(self, namespace: str, deployment: str) -> Signal:
        """What metrics.k8s.io reports for the ready pods (`model.cpu_milli`; a pod that is
        still starting has no metrics yet), as `KubeCluster.pod_cpu` returns it."""
        err = await self._fault("list", "podmetrics")
        if err is not None:
            return Signal(CPU_SIGNAL, None, _now(), error=str(KubeError(err.code, err.reason,
                                                                        err.message)))
        self.model.advance(_now())
        dep = self.model.deployment
        usage = cpu_milli(POD_CPU_REQUEST_MILLI, self.model.busy_share())
        samples = tuple(PodSample(p.name, usage) for p in dep.pods if p.ready)
        if deployment != dep.name or not samples:
            return Signal(CPU_SIGNAL, None, _now(), error=f"no pod metrics for {deployment}")
        return Signal(CPU_SIGNAL, float(usage * len(samples)), _now(), samples=samples)

    async def watch_pods(self, namespace: str) -> AsyncIterator[PodEvent]:
        last = -1
        while True:
            self.model.advance(_now())
            ready = sum(p.ready for p in self.model.deployment.pods)
            if ready != last:
                last = ready
                yield PodEvent("MODIFIED", namespace, self.model.deployment.name)
            await _sleep(WATCH_SECONDS)

    async def close(self) -> None:
        return None


class ReadFault(StrEnum):
    """What a faulty source answers instead of the model's values."""

    HTTP_500 = "http-500"
    TIMEOUT = "timeout"  # the read hangs (the daemon's read timeout ends it)
    BAD_JSON = "bad-json"  # a truncated body
    NO_SUBSCRIPTION = "no-subscription"  # Pulsar: the subscription is gone
    PARTITIONS_GONE = "partitions-gone"  # Pulsar: partitions of the topic are missing
    EMPTY_RESULT = "empty-result"  # Prometheus: the series disappeared
    NEGATIVE = "negative"
    ABSURD = "absurd"  # 1e18
    NAN = "nan"
    INF = "inf"
    STALE = "stale"  # the last answer again, with its own read time: a cache stopped refreshing


PULSAR_READ_FAULTS = tuple(f for f in ReadFault if f is not ReadFault.EMPTY_RESULT)
PROMETHEUS_READ_FAULTS = tuple(f for f in ReadFault if f not in (
    ReadFault.NO_SUBSCRIPTION, ReadFault.PARTITIONS_GONE))
#: How long a hanging read hangs: far past any read timeout.
HANG_SECONDS = 3600.0
ABSURD_VALUE = 1e18


class SourceFaults:
    """Read faults of the model sources, by source name; set and cleared by the caller."""

    def __init__(self) -> None:
        self.active: dict[str, ReadFault] = {}


class ModelPulsarSource:
    """The worker topic's subscription stats, as the Pulsar admin API would report them, and
    `in_rate` and `out_rate` as `sources.pulsar.PulsarBacklogSource` makes them: the increase
    of the messages published (msgInCounter) and taken (msgOutCounter) over the source's
    `rate_seconds`, msgRateIn and msgRateOut until then."""

    def __init__(self, name: str, model: ClusterModel, settings: PulsarSource, *,
                 faults: SourceFaults | None = None) -> None:
        self.name = name
        self.model = model
        self.faults = faults
        self._cached: Sequence[Signal] | None = None
        self._in_rate = counter_rate(settings)
        self._out_rate = counter_rate(settings)

    def _fresh_in_rate(self, now: float) -> float:
        rate = self._in_rate.update(now, self.model.published)
        return self.model.in_rate() if rate is None else rate

    def _fresh_out_rate(self, now: float) -> float:
        rate = self._out_rate.update(now, self.model.delivered)
        return self.model.out_rate() if rate is None else rate

    async def read(self) -> Sequence[Signal]:
        now = _now()
        m = self.model
        m.advance(now)
        n = self.name
        if m.down("pulsar", now):
            return [Signal(f"{n}.{f}", None, now, error="connection refused")
                    for f in ("backlog", "in_rate", "out_rate", "consumers")]
        fault = self.faults.active.get(n) if self.faults is not None else None
        if fault is ReadFault.STALE:
            if self._cached is None:
                self._cached = self._signals(now)
            return self._cached
        self._cached = None
        if fault is not None:
            return await self._faulty(fault, now)
        return self._signals(now)

    def _consumers(self) -> tuple[ConsumerStat, ...]:
        return tuple(ConsumerStat(p.name, f"/{p.ip}:41234", p.out_rate)
                     for p in self.model.deployment.pods if p.ready)

    def _signals(self, now: float) -> list[Signal]:
        m = self.model
        n = self.name
        consumers = self._consumers()
        return [
            Signal(f"{n}.backlog", m.queue, now),
            Signal(f"{n}.in_rate", self._fresh_in_rate(now), now),
            Signal(f"{n}.out_rate", self._fresh_out_rate(now), now),
            Signal(f"{n}.consumers", float(len(consumers)), now, consumers=consumers),
        ]

    async def _faulty(self, fault: ReadFault, now: float) -> Sequence[Signal]:
        """What `sources.pulsar.PulsarBacklogSource` makes of the faulty answer."""
        n = self.name
        fields = SOURCE_FIELDS["pulsar"]
        if fault is ReadFault.TIMEOUT:
            await asyncio.sleep(HANG_SECONDS)
        if fault is ReadFault.HTTP_500:
            return failed(n, fields, now, "HTTP 500: Internal Server Error")
        if fault is ReadFault.BAD_JSON:
            return failed(n, fields, now, "invalid JSON")
        if fault is ReadFault.PARTITIONS_GONE:
            return failed(n, fields, now, f"topic not found: {n} (Internal topics have not "
                                          "been generated yet)")
        m = self.model
        # Without the subscription there is no msgOutCounter to read, as in the live source.
        out = (m.out_rate() if fault is ReadFault.NO_SUBSCRIPTION
               else self._fresh_out_rate(now))
        raw: dict[str, float] = {"backlog": m.queue, "out_rate": out}
        if fault is ReadFault.NAN:
            raw["in_rate"] = math.nan  # a rejected msgRateIn: its error stands
        elif fault is ReadFault.INF:
            raw["in_rate"] = math.inf
        else:
            raw["in_rate"] = self._fresh_in_rate(now)
        if fault is ReadFault.NEGATIVE:
            raw["backlog"] = -(m.queue + 1000.0)
        elif fault is ReadFault.ABSURD:
            raw["backlog"] = ABSURD_VALUE
        consumers = self._consumers()
        readings = {f: reading(raw[f], f) for f in ("backlog", "in_rate", "out_rate")}
        readings["consumers"] = Reading(value=float(len(consumers)), consumers=consumers)
        if fault is ReadFault.NO_SUBSCRIPTION:
            gone = Reading(error=f"subscription of {n!r} not found (topic has: none)")
            readings.update(backlog=gone, out_rate=gone, consumers=gone)
        return to_signals(n, now, readings)

    async def close(self) -> None:
        return None


class ModelRateSource:
    """The request rate reaching the track API, as a Prometheus `rate(...)` would return it."""

    def __init__(self, name: str, model: ClusterModel, *,
                 faults: SourceFaults | None = None) -> None:
        self.name = name
        self.model = model
        self.faults = faults
        self._cached: Sequence[Signal] | None = None

    async def read(self) -> Sequence[Signal]:
        now = _now()
        self.model.advance(now)
        fault = self.faults.active.get(self.name) if self.faults is not None else None
        if fault is ReadFault.STALE:
            if self._cached is None:
                self._cached = [Signal(f"{self.name}.value", self.model.in_rate(), now)]
            return self._cached
        self._cached = None
        if fault is not None:
            return await self._faulty(fault, now)
        return [Signal(f"{self.name}.value", self.model.in_rate(), now)]

    async def _faulty(self, fault: ReadFault, now: float) -> Sequence[Signal]:
        """The faulty answer as a Prometheus reply, through the live source's parser."""
        if fault is ReadFault.TIMEOUT:
            await asyncio.sleep(HANG_SECONDS)
        value = self.model.in_rate()
        texts = {ReadFault.NEGATIVE: f"{-(value + 1.0)!r}", ReadFault.ABSURD: f"{ABSURD_VALUE:g}",
                 ReadFault.NAN: "NaN", ReadFault.INF: "+Inf"}
        reply: Reply
        if fault is ReadFault.HTTP_500:
            reply = Reply(500, json.dumps({"status": "error", "errorType": "internal",
                                           "error": "query processing failed"}).encode())
        elif fault is ReadFault.BAD_JSON:
            reply = Reply(200, b'{"status":"success","data":{"resultType":"vec')
        else:
            result = ([] if fault is ReadFault.EMPTY_RESULT else
                      [{"metric": {}, "value": [SIM_EPOCH + now, texts.get(fault, repr(value))]}])
            reply = Reply(200, json.dumps({"status": "success", "data": {
                "resultType": "vector", "result": result}}).encode())
        try:
            parsed = parse_query_reply(reply)
        except (RejectedValueError, FetchError) as exc:
            return failed(self.name, SOURCE_FIELDS["prometheus"], now, str(exc))
        return [Signal(f"{self.name}.value", parsed, now)]

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
