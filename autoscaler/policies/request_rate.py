"""`request-rate`: the track API sized by request rate, looking ahead by the pod start-up time.

replicas = ceil(max(rate, trend, burst) / (capacity_rps * target_utilization)). A pod asked for
now serves only after `startup_seconds`, so it is sized for the rate at that time:
- `trend` extends the recent slope (least squares over `trend_seconds`) by the start-up time;
  only a rising trend looks ahead, a falling one never scales down early;
- `burst` is the rate plus the rise this traffic has shown within one start-up time: over the
  last `burst_seconds`, the `burst_quantile` of max(rate in the next start-up time) - rate, in
  requests/s. Smooth traffic earns little headroom and bursty traffic more, measured rather than
  guessed. The rise is absolute, not a ratio: a ratio from a near-idle rate is unbounded, so
  on/off traffic would hold the maximum between its bursts.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from typing import ClassVar

from pydantic import Field

from autoscaler.model import Recommendation, Signal
from autoscaler.policies.base import PolicyContext, PolicyParams


class RequestRateParams(PolicyParams):
    source: str = Field(min_length=1, description="a prometheus source giving requests/s")
    field: str = "value"
    capacity_rps: float = Field(strict=True, gt=0,
                                description="requests/s one ready replica serves")
    target_utilization: float = Field(0.8, strict=True, gt=0, le=1)
    startup_seconds: float = Field(30.0, strict=True, ge=0)
    trend_seconds: float = Field(60.0, strict=True, gt=0)
    trend_min_samples: int = Field(3, strict=True, ge=2)
    burst_seconds: float = Field(900.0, strict=True, ge=0,
                                 description="0 turns the burst headroom off")
    burst_quantile: float = Field(0.95, strict=True, gt=0, le=1)


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


def burst_rise(points: list[tuple[float, float]], *, horizon: float, quantile: float) -> float:
    """The `quantile` of the rise within `horizon` seen over `points` (oldest first).

    For each point, the largest later value within `horizon` minus its own value (0 if none is
    larger); points with no later value in reach say nothing. One pass: the window of
    later values keeps its candidates for the maximum in a deque, largest first.
    """
    times = [t for t, _ in points]
    values = [v for _, v in points]
    n = len(values)
    rises: list[float] = []
    ahead: deque[int] = deque()  # indices in [i, end), their values decreasing
    end = 0
    for i in range(n):
        if ahead and ahead[0] == i:
            ahead.popleft()
        if end <= i:
            end = i + 1
        t = times[i]
        while end < n and times[end] - t <= horizon:
            v = values[end]
            while ahead and values[ahead[-1]] <= v:
                ahead.pop()
            ahead.append(end)
            end += 1
        if ahead:
            rise = values[ahead[0]] - values[i]
            rises.append(rise if rise > 0.0 else 0.0)
    if not rises:
        return 0.0
    rises.sort()
    return rises[min(len(rises) - 1, int(quantile * len(rises)))]


def _within(points: list[tuple[float, float]], now: float, seconds: float) -> list[
        tuple[float, float]]:
    """The points (oldest first) of the last `seconds`: a bisection, since times only grow."""
    start = bisect.bisect_left(points, -seconds, key=lambda pt: -(now - pt[0]))
    return points[start:] if start else points


class RequestRatePolicy:
    name: ClassVar[str] = "request-rate"
    Params: ClassVar[type[PolicyParams]] = RequestRateParams

    def __init__(self, params: RequestRateParams) -> None:
        self.params = params

    def signals(self) -> tuple[str, ...]:
        return (f"{self.params.source}.{self.params.field}",)

    def history_seconds(self) -> dict[str, float]:
        """The trend's and the burst's windows."""
        p = self.params
        return {self.signals()[0]: max(p.trend_seconds, p.burst_seconds)}

    def forecast(self, signal: Signal, ctx: PolicyContext) -> tuple[float, float]:
        """(trend, burst): the two looks ahead by one start-up time."""
        trend, burst, _ = self._forecast(signal, ctx)
        return trend, burst

    def _forecast(self, signal: Signal, ctx: PolicyContext) -> tuple[float, float, bool]:
        """`forecast`, and whether every read in its window has today's rate."""
        p = self.params
        rate = float(signal.value or 0.0)
        window = ctx.recent(signal.name, max(p.trend_seconds, p.burst_seconds))
        window.reverse()  # oldest first
        trend_points = _within(window, ctx.now, p.trend_seconds)
        trend = rate
        if len(trend_points) >= p.trend_min_samples:
            trend = rate + max(0.0, slope(trend_points)) * p.startup_seconds
        burst = rate
        if p.burst_seconds > 0 and p.startup_seconds > 0:
            burst_points = _within(window, ctx.now, p.burst_seconds)
            burst = rate + burst_rise(burst_points, horizon=p.startup_seconds,
                                      quantile=p.burst_quantile)
        return trend, burst, all(v == rate for _, v in window)

    def recommend(self, ctx: PolicyContext) -> Recommendation:
        p = self.params
        signal = ctx.signals[self.signals()[0]]
        rate = float(signal.value or 0.0)
        trend, burst, flat = self._forecast(signal, ctx)
        per_replica = p.capacity_rps * p.target_utilization
        replicas = math.ceil(round(max(rate, trend, burst) / per_replica, 6))
        why = f"request rate {rate:.1f}/s"
        if trend > rate:
            why += f", trend {trend:.1f}/s in {p.startup_seconds:g}s"
        if burst > rate:
            why += f", bursts to {burst:.1f}/s"
        # A flat window stays flat while the rate keeps its value: no trend, no burst to come.
        return Recommendation(replicas, f"{why}, {per_replica:g}/s per replica", self.name,
                              settled=flat)
