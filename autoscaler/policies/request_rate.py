"""`request-rate`: the track API sized by request rate, looking ahead by the pod start-up time.

replicas = ceil(max(rate, forecast) / (capacity_rps * target_utilization)), where the forecast
extends the recent trend (least squares over `trend_seconds`) by `startup_seconds`: a pod asked
for now serves only after it has started, so it must be sized for the rate at that time. Only a
rising trend looks ahead; a falling one never scales down early.
"""

from __future__ import annotations

import math
from typing import ClassVar

from pydantic import Field

from autoscaler.model import Recommendation, Signal
from autoscaler.policies.base import PolicyContext, PolicyParams


class RequestRateParams(PolicyParams):
    source: str = Field(min_length=1, description="a prometheus source giving requests/s")
    field: str = "value"
    capacity_rps: float = Field(gt=0, description="requests/s one ready replica serves")
    target_utilization: float = Field(0.8, gt=0, le=1)
    startup_seconds: float = Field(30.0, ge=0)
    trend_seconds: float = Field(60.0, gt=0)
    trend_min_samples: int = Field(3, ge=2)


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (t, v) points; 0 for fewer than two distinct times."""
    n = len(points)
    if n < 2:
        return 0.0
    mt = sum(t for t, _ in points) / n
    mv = sum(v for _, v in points) / n
    den = sum((t - mt) ** 2 for t, _ in points)
    if den == 0:
        return 0.0
    return sum((t - mt) * (v - mv) for t, v in points) / den


class RequestRatePolicy:
    name: ClassVar[str] = "request-rate"
    Params: ClassVar[type[PolicyParams]] = RequestRateParams

    def __init__(self, params: RequestRateParams) -> None:
        self.params = params

    def signals(self) -> tuple[str, ...]:
        return (f"{self.params.source}.{self.params.field}",)

    def forecast(self, signal: Signal, ctx: PolicyContext) -> float:
        p = self.params
        recent: list[tuple[float, float]] = []
        for s in reversed(ctx.history.get(signal.name, ())):
            if ctx.now - s.read_at > p.trend_seconds:
                break
            if s.ok and s.value is not None:
                recent.append((s.read_at, float(s.value)))
        if len(recent) < p.trend_min_samples:
            return float(signal.value or 0.0)
        rising = max(0.0, slope(recent))
        return float(signal.value or 0.0) + rising * p.startup_seconds

    def recommend(self, ctx: PolicyContext) -> Recommendation:
        p = self.params
        signal = ctx.signals[self.signals()[0]]
        rate = float(signal.value or 0.0)
        ahead = self.forecast(signal, ctx)
        per_replica = p.capacity_rps * p.target_utilization
        replicas = math.ceil(round(max(rate, ahead) / per_replica, 6))
        why = f"request rate {rate:.1f}/s"
        if ahead > rate:
            why += f", {ahead:.1f}/s expected in {p.startup_seconds:g}s"
        return Recommendation(replicas, f"{why}, {per_replica:g}/s per replica", self.name)
