"""`request-rate`: the track API sized by request rate, looking ahead by the pod start-up time.

replicas = ceil(max(max(rate, trend) / (capacity_rps * target_utilization),
                   burst / (capacity_rps * burst_utilization))).
A pod asked for now serves only after `startup_seconds`, so it is sized for the rate at that
time:
- `trend` extends the recent slope (least squares over `trend_seconds`) by the start-up time;
  only a rising trend looks ahead, a falling one never scales down early;
- `burst` is the rate plus the rise this traffic has shown within one start-up time: over the
  last `burst_seconds`, the `burst_quantile` of max(rate in the next start-up time) - rate, in
  requests/s. Smooth traffic earns little headroom and bursty traffic more, measured rather than
  guessed. The rise is absolute, not a ratio: a ratio from a near-idle rate is unbounded, so
  on/off traffic would hold the maximum between its bursts. Being measured, it is sized at
  `burst_utilization` (by default `target_utilization`): the margin that the target keeps
  for the rises a read cannot see yet would count the measured ones twice.

With `learn_from_cpu`, what a pod serves is learned from the pods' CPU (metrics.k8s.io): the
requests/s at which a pod would use its whole CPU request, the point an HPA on CPU utilization
also takes as full. Each CPU read of pods that are loaded (`learn_min_share`) but not saturated,
with a steady rate around it, pairs their CPU share of the request with the requests/s each
served; the line through those reads (share = idle + cost * rate) reaches 1 at the capacity.
By default a learned capacity only lowers `capacity_rps`: a pod that waits on Elasticsearch is
full with its CPU half idle. `learn_above_capacity_rps` trusts it above too, for pods bound by
CPU. While the pods are saturated their CPU cannot say how far short they fall, so the policy
asks, as the HPA would, for `share / target_utilization` times the pods that are.
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Sequence
from typing import ClassVar

from pydantic import Field, model_validator

from autoscaler.model import CPU_SIGNAL, Capacity, PodInfo, Recommendation, Signal
from autoscaler.policies.base import PolicyContext, PolicyParams


class RequestRateParams(PolicyParams):
    source: str = Field(min_length=1, description="a prometheus source giving requests/s")
    field: str = "value"
    capacity_rps: float = Field(strict=True, gt=0, le=1e9,
                                description="requests/s one ready replica serves")
    target_utilization: float = Field(0.8, strict=True, gt=0, le=1)
    startup_seconds: float = Field(30.0, strict=True, ge=0)
    trend_seconds: float = Field(60.0, strict=True, gt=0)
    trend_min_samples: int = Field(3, strict=True, ge=2)
    burst_seconds: float = Field(900.0, strict=True, ge=0,
                                 description="0 turns the burst headroom off")
    burst_quantile: float = Field(0.95, strict=True, gt=0, le=1)
    burst_utilization: float | None = Field(
        None, strict=True, gt=0, le=1,
        description="size the burst forecast for this share of capacity (default: "
        "target_utilization): the rise is measured, so it needs less margin than the rate")
    learn_from_cpu: bool = Field(False, description="learn capacity_rps from the pods' CPU: "
                                 "the requests/s at which a pod uses its whole CPU request")
    learn_seconds: float = Field(900.0, strict=True, gt=0,
                                 description="learn from the CPU reads of this many seconds")
    learn_min_samples: int = Field(5, strict=True, ge=2,
                                   description="CPU reads needed to learn from (of pods "
                                   "loaded but not saturated, the rate steady around each)")
    learn_above_capacity_rps: bool = Field(False, description="trust a learned capacity above "
                                           "capacity_rps too: only for pods bound by CPU, not "
                                           "by waits on Elasticsearch")
    learn_min_share: float = Field(0.5, strict=True, ge=0, lt=1,
                                   description="learn only from reads of pods at this share "
                                   "of their CPU request or more: an idle pod's CPU says "
                                   "little of what a request costs")
    saturated_share: float = Field(0.95, strict=True, gt=0, le=1,
                                   description="a pod at this share of its CPU request or "
                                   "more is saturated: it serves all it can")

    @model_validator(mode="after")
    def _learns_from_some_share(self) -> RequestRateParams:
        if self.learn_min_share >= self.saturated_share:
            raise ValueError(f"learn_min_share ({self.learn_min_share:g}) must be under "
                             f"saturated_share ({self.saturated_share:g}): between the two "
                             f"are the CPU reads capacity is learned from")
        return self


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


#: How much the rate may change between the reads around a CPU read for it to be learned from.
STEADY = 0.02

#: How much of the reads' spread (R squared) a line must explain for a capacity above
#: `capacity_rps` to be learned from it (`learn_above_capacity_rps`).
MIN_FIT = 0.9


def learned_capacity(reads: Sequence[tuple[float, float]], *,
                     min_fit: float = 0.0) -> float | None:
    """What one pod serves at its whole CPU request, from (requests/s per pod, CPU share of the
    request) reads of unsaturated pods: where the line through them (share = idle + cost *
    rate) reaches a share of 1. The line through the origin instead, which counts the idle share
    as cost and so errs low (more pods), when that line has no idle share in [0, 1) or explains
    less of the reads' spread than `min_fit` (R squared). Noisy reads tilt the line either way,
    but with an idle share in [0, 1) it never says less than the mean rate over the mean share,
    which errs low as the origin's line does: capped at the configured capacity, any such line
    will do. None when nothing can be learned."""
    n = len(reads)
    if n == 0:
        return None
    mx = sum(x for x, _ in reads) / n
    my = sum(y for _, y in reads) / n
    sxx = sum((x - mx) ** 2 for x, _ in reads)
    syy = sum((y - my) ** 2 for _, y in reads)
    sxy = sum((x - mx) * (y - my) for x, y in reads)
    if sxx > 0 and syy > 0 and sxy > 0 and sxy * sxy >= min_fit * sxx * syy:
        cost = sxy / sxx
        idle = my - cost * mx
        if 0 <= idle < 1:
            return (1 - idle) / cost
    through_origin = sum(x * y for x, y in reads)
    if through_origin <= 0:
        return None
    return sum(x * x for x, _ in reads) / through_origin


def cpu_request(pods: tuple[PodInfo, ...]) -> int:
    """A pod's CPU request in millicores, as the pods state it (the largest; 0 if none does)."""
    return max((p.cpu_request_milli for p in pods), default=0)


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

    def optional_signals(self) -> tuple[str, ...]:
        """The pods' CPU, with `learn_from_cpu`: without it, the capacity is `capacity_rps`."""
        return (CPU_SIGNAL,) if self.params.learn_from_cpu else ()

    def history_seconds(self) -> dict[str, float]:
        """The trend's and the burst's windows, and the reads capacity is learned from."""
        p = self.params
        rate = self.signals()[0]
        if not p.learn_from_cpu:
            return {rate: max(p.trend_seconds, p.burst_seconds)}
        return {rate: max(p.trend_seconds, p.burst_seconds, p.learn_seconds),
                CPU_SIGNAL: p.learn_seconds}

    def capacity(self, ctx: PolicyContext) -> tuple[float, bool]:
        """What one ready pod serves, and whether it was learned from the pods' CPU: the
        configured `capacity_rps` until `learn_min_samples` CPU reads of the last
        `learn_seconds`, of pods loaded but not saturated and each with a steady rate around
        it, show it; at most `capacity_rps` unless `learn_above_capacity_rps`."""
        p = self.params
        request = cpu_request(ctx.status.pods)
        if not p.learn_from_cpu or request <= 0:
            return p.capacity_rps, False
        rates = [(s.read_at, float(s.value)) for s in ctx.history.get(self.signals()[0], ())
                 if s.ok and s.value is not None]
        times = [t for t, _ in rates]
        reads: list[tuple[float, float]] = []
        for cpu in ctx.history.get(CPU_SIGNAL, ()):
            if ctx.now - cpu.read_at > p.learn_seconds or not cpu.ok or not cpu.samples:
                continue
            pods = len(cpu.samples)
            share = float(cpu.value or 0.0) / (pods * request)
            after = bisect.bisect_right(times, cpu.read_at)  # the first rate read after it
            if not p.learn_min_share <= share < p.saturated_share or after in (0, len(rates)):
                continue
            # The rate and the CPU are measured over different windows: learn only where the
            # rate held steady around the CPU read, so that both saw the same traffic.
            before, next_ = rates[after - 1][1], rates[after][1]
            if abs(next_ - before) > STEADY * max(before, next_):
                continue
            reads.append(((before + next_) / 2 / pods, share))
        learned = None
        if len(reads) >= p.learn_min_samples:
            above = p.learn_above_capacity_rps
            learned = learned_capacity(reads, min_fit=MIN_FIT if above else 0.0)
        if learned is None:
            return p.capacity_rps, False
        return (learned if p.learn_above_capacity_rps else min(learned, p.capacity_rps)), True

    def saturated(self, ctx: PolicyContext) -> tuple[int, float] | None:
        """(pods, CPU share) of the newest CPU read when its pods are saturated; None when they
        are not, or that read is missing, failed or stale."""
        if not self.params.learn_from_cpu or CPU_SIGNAL in ctx.unusable:
            return None
        cpu = ctx.signals.get(CPU_SIGNAL)
        request = cpu_request(ctx.status.pods)
        if cpu is None or not cpu.ok or not cpu.samples or request <= 0:
            return None
        share = float(cpu.value or 0.0) / (len(cpu.samples) * request)
        return (len(cpu.samples), share) if share >= self.params.saturated_share else None

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
        capacity, learned = self.capacity(ctx)
        per_replica = capacity * p.target_utilization
        burst_utilization = p.burst_utilization or p.target_utilization
        replicas = math.ceil(round(max(max(rate, trend) / per_replica,
                                       burst / (capacity * burst_utilization)), 6))
        why = f"request rate {rate:.1f}/s"
        if trend > rate:
            why += f", trend {trend:.1f}/s in {p.startup_seconds:g}s"
        if burst > rate:
            why += f", bursts to {burst:.1f}/s"
            if burst_utilization != p.target_utilization:
                why += f" (sized at {burst_utilization:.0%})"
        why += f", {per_replica:g}/s per replica" if not learned else (
            f", {per_replica:.1f}/s per replica (capacity {capacity:.1f}/s learned from CPU)")
        saturated = self.saturated(ctx)
        if saturated is not None:
            pods, share = saturated
            floor = math.ceil(round(pods * share / p.target_utilization, 6))
            if floor > replicas:
                replicas = floor
                why += (f"; {pods} pods saturated at {share:.0%} of their CPU request: "
                        f"{floor} pods for {p.target_utilization:.0%}")
        # A flat window stays flat while the rate keeps its value: no trend, no burst to come.
        return Recommendation(replicas, why, self.name, settled=flat,
                              capacity=Capacity(p.capacity_rps, capacity, learned))
