"""`hpa`: exactly the Kubernetes HPA's replica math for Utilization, Value and AverageValue.

A transcription of `replica_calculator.go` (autoscaling/v2): per-direction tolerance, the
missing/unready pod rules for resource metrics, milli-unit arithmetic for external metrics.
Behavior (stabilization, rate limits) is applied afterwards by `engine.behavior`, as the HPA
controller does after the calculator.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from autoscaler.model import CPU_SIGNAL, PodInfo, Recommendation, Signal
from autoscaler.policies.base import PolicyContext, PolicyError, PolicyParams


class HpaMathError(PolicyError):
    """The metric cannot be turned into a replica count (the HPA would report an error)."""


@dataclass(frozen=True, slots=True)
class Tolerance:
    up: float = 0.1
    down: float = 0.1

    def within(self, ratio: float) -> bool:
        return 1.0 - self.down <= ratio <= 1.0 + self.up


#: The largest target a Kubernetes quantity's milli-value (an int64) can hold.
MAX_TARGET = 9e15


def _milli(value: float) -> int:
    """Kubernetes quantities round up to the next milli-unit (`Quantity.MilliValue`)."""
    return math.ceil(round(value * 1000, 6))


def ready_pod_count(pods: Sequence[PodInfo]) -> int:
    """HPA `getReadyPodsCount`: Running and Ready, a pod being deleted included."""
    return sum(1 for p in pods if p.phase == "Running" and p.ready)


def value_replicas(*, current: int, value: float, target: float, ready_pods: int,
                   tolerance: Tolerance) -> int:
    """External metric with a Value target (`GetExternalMetricReplicas`)."""
    target_milli = _milli(target)
    if target_milli <= 0:
        raise HpaMathError("target value must be > 0")
    ratio = _milli(value) / target_milli
    if current == 0:
        return math.ceil(ratio)
    if tolerance.within(ratio):
        return current
    return math.ceil(ratio * ready_pods)


def average_value_replicas(*, current: int, value: float, target: float,
                           tolerance: Tolerance) -> int:
    """External metric with an AverageValue target (`GetExternalPerPodMetricReplicas`)."""
    target_milli = _milli(target)
    if target_milli <= 0:
        raise HpaMathError("target average value must be > 0")
    usage = _milli(value)
    ratio = math.inf if current == 0 else usage / (target_milli * current)
    if current > 0 and tolerance.within(ratio):
        return current
    return math.ceil(usage / target_milli)


def _utilization_ratio(usage: Mapping[str, int], requests: Mapping[str, int],
                       target: int) -> float:
    used = sum(usage[p] for p in usage if p in requests)
    requested = sum(requests[p] for p in usage if p in requests)
    if requested == 0:
        raise HpaMathError("no metrics returned matched known pods")
    return ((used * 100) // requested) / target


def utilization_replicas(*, current: int, pods: Sequence[PodInfo], usage: Mapping[str, int],
                         target: int, tolerance: Tolerance) -> int:
    """Resource metric with a Utilization target (`GetResourceReplicas`).

    `usage` maps pod name to millicores; pods absent from it have no metric.
    """
    if target <= 0:
        raise HpaMathError("target utilization must be > 0")
    metrics: dict[str, int] = {}
    requests: dict[str, int] = {}
    unready: list[str] = []
    missing: list[str] = []
    ready = 0
    for pod in pods:
        if pod.deleting or pod.phase == "Failed":
            continue
        if pod.cpu_request_milli <= 0:
            raise HpaMathError(f"missing cpu request for pod {pod.name}")
        requests[pod.name] = pod.cpu_request_milli
        if pod.phase == "Pending":
            unready.append(pod.name)
        elif pod.name not in usage:
            missing.append(pod.name)
        elif not pod.ready:
            unready.append(pod.name)
        else:
            metrics[pod.name] = usage[pod.name]
            ready += 1
    if not metrics:
        raise HpaMathError("did not receive metrics for targeted pods (pods might be unready)")
    ratio = _utilization_ratio(metrics, requests, target)
    up_with_unready = bool(unready) and ratio > 1.0
    if not up_with_unready and not missing:
        if tolerance.within(ratio):
            return current
        return math.ceil(ratio * ready)
    if missing:
        if ratio < 1.0:
            fallback = max(100, target)
            for name in missing:
                metrics[name] = requests[name] * fallback // 100
        elif ratio > 1.0:
            for name in missing:
                metrics[name] = 0
    if up_with_unready:
        for name in unready:
            metrics[name] = 0
    new_ratio = _utilization_ratio(metrics, requests, target)
    if (tolerance.within(new_ratio) or (ratio < 1.0 < new_ratio)
            or (ratio > 1.0 > new_ratio)):
        return current
    proposal = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and proposal > current) or (new_ratio > 1.0 and proposal < current):
        return current
    return proposal


class UtilizationTarget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    type: Literal["Utilization"]
    average_utilization: int = Field(strict=True, gt=0, le=10_000)


class ValueTarget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    type: Literal["Value"]
    value: float = Field(strict=True, gt=0, le=MAX_TARGET)


class AverageValueTarget(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    type: Literal["AverageValue"]
    average_value: float = Field(strict=True, gt=0, le=MAX_TARGET)


class ResourceMetric(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    type: Literal["Resource"]
    resource: Literal["cpu"] = "cpu"
    target: UtilizationTarget


class ExternalMetric(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)
    type: Literal["External"]
    source: str = Field(min_length=1)
    field: str = "value"
    target: ValueTarget | AverageValueTarget = Field(discriminator="type")


class HpaParams(PolicyParams):
    metric: ResourceMetric | ExternalMetric = Field(discriminator="type")


class HpaPolicy:
    """One HPA metric; list several `hpa` policies on a workload for several metrics."""

    name: ClassVar[str] = "hpa"
    Params: ClassVar[type[PolicyParams]] = HpaParams

    def __init__(self, params: HpaParams) -> None:
        self.params = params

    def signals(self) -> tuple[str, ...]:
        metric = self.params.metric
        if isinstance(metric, ResourceMetric):
            return (CPU_SIGNAL,)
        return (f"{metric.source}.{metric.field}",)

    def history_seconds(self) -> dict[str, float]:
        return {}  # the HPA reads the current value only

    def recommend(self, ctx: PolicyContext) -> Recommendation:
        metric = self.params.metric
        tol = Tolerance(up=ctx.tolerance_up, down=ctx.tolerance_down)
        current = ctx.status.replicas
        signal = ctx.signals[self.signals()[0]]
        value = float(signal.value or 0.0)
        if isinstance(metric, ResourceMetric):
            replicas = utilization_replicas(
                current=current, pods=ctx.status.pods, usage=_usage(signal),
                target=metric.target.average_utilization, tolerance=tol)
            return Recommendation(replicas, f"cpu utilization against target "
                                            f"{metric.target.average_utilization}%", self.name)
        if isinstance(metric.target, ValueTarget):
            if not ctx.status.pods and not ctx.status.ready_replicas:
                # HPA `getReadyPodsCount` fails on an empty pod list: no count to scale from.
                raise HpaMathError("no pods returned by selector while calculating replica "
                                   "count")
            replicas = value_replicas(current=current, value=value, target=metric.target.value,
                                      ready_pods=ready_pod_count(ctx.status.pods)
                                      if ctx.status.pods else ctx.status.ready_replicas,
                                      tolerance=tol)
            target = metric.target.value
        else:
            replicas = average_value_replicas(current=current, value=value,
                                              target=metric.target.average_value, tolerance=tol)
            target = metric.target.average_value
        return Recommendation(replicas, f"{signal.name} {value:g} against target {target:g}",
                              self.name)


def _usage(signal: Signal) -> dict[str, int]:
    return {s.pod: s.usage_milli for s in signal.samples}
