"""`SimCluster`: the `Cluster` port directly over the in-memory `KubeState`, for the
virtual-time simulator, `bench` and tests.

It answers exactly as `kube/cluster.py` (`KubeCluster`) does over HTTP: a stale resourceVersion
gives CONFLICT, a PodDisruptionBudget gives THROTTLED, reads raise `KubeError`, a missing KEDA
means no ScaledObject, no pod metrics is an error signal. Faults injected into `state.faults`
(per verb and resource, e.g. ("update", "deployments/scale")) apply here too, their delays in
the clock's (virtual) time. Leases live in `sim/leases.py` (`SimLeaseStore`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import structlog

from autoscaler.kube.errors import KubeError, outcome_for
from autoscaler.model import CPU_SIGNAL, PodInfo, PodSample, Signal, WorkloadStatus
from autoscaler.ports import FIELD_MANAGER, Clock, PodEvent, WriteOutcome, WriteResult
from autoscaler.sim.kubestate import (
    COMPONENT_LABEL,
    ApiError,
    KubeState,
    LabelSelector,
    Pod,
    WatchEvent,
)
from autoscaler.sim.managed import REPLICAS, owners

log = structlog.get_logger(__name__)

EVENT_SOURCE = "tracardi-autoscaler"


def _kube_error(err: ApiError) -> KubeError:
    return KubeError(err.code, err.reason, err.message, retry_after=err.retry_after)


def pod_info(pod: Pod) -> PodInfo:
    """Like `kube.cluster.pod_info`: `started_at` is the pod's `status.startTime` in epoch
    seconds of the state's `wall` clock, whole seconds as on the wire."""
    return PodInfo(name=pod.name, ready=pod.ready, phase=pod.phase, ip=pod.ip,
                   started_at=float(int(pod.created_wall)), deleting=pod.deleting,
                   restarts=pod.restarts,
                   waiting_reason=pod.waiting_reason, cpu_request_milli=pod.cpu_request_milli,
                   resource_version=str(pod.resource_version))


class SimCluster:
    def __init__(self, state: KubeState, *, clock: Clock) -> None:
        self._state = state
        self._clock = clock

    async def _fault(self, verb: str, resource: str) -> ApiError | None:
        fault = self._state.faults.take(verb, resource)
        if fault is None:
            return None
        if fault.delay > 0:
            await self._clock.sleep(fault.delay)
        return fault.error()

    async def _read_fault(self, verb: str, resource: str) -> None:
        err = await self._fault(verb, resource)
        if err is not None:
            raise _kube_error(err)

    def cached_workload(self, namespace: str, deployment: str) -> WorkloadStatus | None:
        return None  # every evaluation reads, so injected read faults hit it

    def watches_synced(self, namespace: str) -> bool:
        return False  # no cache: every status is read

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        # The same three reads KubeCluster makes, so the same injected faults hit them.
        await self._read_fault("get", "deployments")
        await self._read_fault("get", "deployments/scale")
        await self._read_fault("list", "pods")
        try:
            d = self._state.deployment(namespace, deployment)
        except ApiError as err:
            raise _kube_error(err) from err
        pods = self._state.pods(namespace, selector=d.selector)
        return WorkloadStatus(
            name=deployment, namespace=namespace, replicas=d.replicas,
            ready_replicas=sum(p.ready for p in pods), paused=d.paused,
            resource_version=str(d.resource_version),
            pods=tuple(sorted((pod_info(p) for p in pods), key=lambda p: p.name)),
            generation=d.generation,
            replicas_set_by=(owners(d.managed, REPLICAS) or [""])[-1],
        )

    async def scale(self, namespace: str, deployment: str, *, replicas: int,
                    resource_version: str) -> WriteResult:
        if not resource_version:
            return WriteResult(WriteOutcome.FAILED,
                               "refusing an unconditional scale: read the workload first")
        return await self._write("update", "deployments/scale", lambda: self._state.set_replicas(
            namespace, deployment, replicas, resource_version=resource_version,
            manager=FIELD_MANAGER))

    async def evict(self, namespace: str, pod: str, *,
                    resource_version: str = "") -> WriteResult:
        return await self._write("create", "pods/eviction", lambda: self._state.evict(
            namespace, pod, resource_version=resource_version))

    async def delete_pod(self, namespace: str, pod: str, *,
                         resource_version: str = "") -> WriteResult:
        return await self._write("delete", "pods", lambda: self._state.delete_pod(
            namespace, pod, resource_version=resource_version))

    async def _write(self, verb: str, resource: str,
                     action: Callable[[], object]) -> WriteResult:
        err = await self._fault(verb, resource)
        try:
            if err is not None:
                raise err
            action()
        except ApiError as exc:
            return WriteResult(outcome_for(exc.code), exc.message, exc.retry_after)
        return WriteResult(WriteOutcome.DONE)

    async def emit_event(self, namespace: str, deployment: str, *, reason: str, message: str,
                         warning: bool = False) -> None:
        err = await self._fault("create", "events")
        try:
            if err is not None:
                raise err
            self._state.record_event(namespace, kind="Deployment", name=deployment,
                                     reason=reason, message=message,
                                     type_="Warning" if warning else "Normal",
                                     component=EVENT_SOURCE)
        except ApiError as exc:
            log.warning("kube_event_failed", namespace=namespace, name=deployment,
                        reason=reason, code=exc.code, message=exc.message)

    async def conflicting_autoscaler(self, namespace: str, deployment: str) -> str | None:
        await self._read_fault("list", "horizontalpodautoscalers")
        for hpa in self._state.hpas(namespace):
            if hpa.target_kind == "Deployment" and hpa.target_name == deployment:
                return f"HorizontalPodAutoscaler/{hpa.name}"
        await self._read_fault("list", "scaledobjects")
        if not self._state.keda_installed:
            return None
        for so in self._state.scaled_objects(namespace):
            if so.target_kind == "Deployment" and so.target_name == deployment:
                return f"ScaledObject/{so.name}"
        return None

    async def pod_cpu(self, namespace: str, deployment: str) -> Signal:
        err = await self._fault("list", "podmetrics")
        try:
            if err is not None:
                raise err
            selector = LabelSelector.of(self._state.deployment(namespace, deployment).selector)
        except ApiError as exc:
            return Signal(CPU_SIGNAL, None, self._clock.now(), error=str(_kube_error(exc)))
        samples = tuple(PodSample(p.name, p.cpu_usage_milli or 0)
                        for p in self._state.pod_metrics(namespace, selector))
        now = self._clock.now()
        if not samples:
            return Signal(CPU_SIGNAL, None, now, error=f"no pod metrics for {deployment}")
        return Signal(CPU_SIGNAL, float(sum(s.usage_milli for s in samples)), now,
                      samples=samples)

    async def watch_pods(self, namespace: str) -> AsyncIterator[PodEvent]:
        """One ADDED per workload with pods, then every pod change, as `KubeCluster` does."""
        queue: asyncio.Queue[WatchEvent] = asyncio.Queue()
        unsubscribe = self._state.subscribe("pods", namespace, queue.put_nowait)
        try:
            workloads = sorted({p.labels.get(COMPONENT_LABEL, "")
                                for p in self._state.pods(namespace)} - {""})
            for workload in workloads:
                yield PodEvent("ADDED", namespace, workload)
            while True:
                event = await queue.get()
                labels = event.object["metadata"].get("labels") or {}
                component = labels.get(COMPONENT_LABEL)
                if component:
                    yield PodEvent(event.type, namespace, str(component))
        finally:
            unsubscribe()

    async def close(self) -> None:
        """Nothing to release: the state belongs to the simulator."""
