"""`backlog`: Pulsar workers sized to keep up with the in-rate and drain the backlog in time.

needed capacity = in_rate + backlog / drain_seconds, divided by what one replica drains at the
target utilization. One replica's throughput is learned from the recent reads in which consumers
were saturated (backlog above `saturation_seconds` of their output), as the median of
out_rate / consumers; until there are `learn_min_samples` such reads the configured
`msgs_per_second` is used.
"""

from __future__ import annotations

import math
import statistics
from typing import ClassVar

from pydantic import Field

from autoscaler.model import Recommendation
from autoscaler.policies.base import PolicyContext, PolicyParams

#: How many recent saturated reads the learned throughput is the median of.
LEARN_WINDOW = 30


class BacklogParams(PolicyParams):
    source: str = Field(min_length=1, description="a pulsar or tracardi-queue source")
    msgs_per_second: float = Field(gt=0, description="one replica's throughput until learned")
    drain_seconds: float = Field(60.0, gt=0)
    target_utilization: float = Field(0.8, gt=0, le=1)
    learn: bool = True
    saturation_seconds: float = Field(5.0, gt=0)
    learn_min_samples: int = Field(5, ge=1)
    learn_seconds: float = Field(120.0, gt=0, description="how far back saturated reads count")
    use_in_rate: bool = True


class BacklogPolicy:
    name: ClassVar[str] = "backlog"
    Params: ClassVar[type[PolicyParams]] = BacklogParams

    def __init__(self, params: BacklogParams) -> None:
        self.params = params

    def signals(self) -> tuple[str, ...]:
        src = self.params.source
        if self.params.use_in_rate:
            return (f"{src}.backlog", f"{src}.in_rate")
        return (f"{src}.backlog",)

    def history_seconds(self) -> dict[str, float]:
        """The reads `per_replica` learns from (none when learning is off)."""
        if not self.params.learn:
            return {}
        src = self.params.source
        return {f"{src}.{f}": self.params.learn_seconds
                for f in ("consumers", "backlog", "out_rate")}

    def per_replica(self, ctx: PolicyContext) -> tuple[float, bool]:
        """One replica's throughput and whether it was learned.

        The source writes all its fields on every read, so the histories line up from the
        newest end; only the most recent `LEARN_WINDOW` saturated reads count.
        """
        rate, learned, _ = self._learn(ctx)
        return rate, learned

    def _learn(self, ctx: PolicyContext) -> tuple[float, bool, int]:
        """`per_replica`, and how many saturated reads it saw."""
        p = self.params
        if not p.learn:
            return p.msgs_per_second, False, 0
        src = p.source
        rates: list[float] = []
        rows = zip(reversed(ctx.history.get(f"{src}.consumers", ())),
                   reversed(ctx.history.get(f"{src}.backlog", ())),
                   reversed(ctx.history.get(f"{src}.out_rate", ())), strict=False)
        oldest = ctx.now - p.learn_seconds
        for consumers, backlog, out in rows:
            if consumers.read_at < oldest or not (
                    consumers.read_at == backlog.read_at == out.read_at):
                break
            n, b, o = consumers.value, backlog.value, out.value
            # Cheap test first: most reads are not saturated.
            if not n or not o or b is None or b <= o * p.saturation_seconds:
                continue
            if consumers.ok and backlog.ok and out.ok:
                rates.append(o / n)
                if len(rates) == LEARN_WINDOW:
                    break
        if len(rates) < p.learn_min_samples:
            return p.msgs_per_second, False, len(rates)
        return statistics.median(rates), True, len(rates)

    def recommend(self, ctx: PolicyContext) -> Recommendation:
        p = self.params
        backlog = float(ctx.signals[f"{p.source}.backlog"].value or 0.0)
        in_rate = (float(ctx.signals[f"{p.source}.in_rate"].value or 0.0)
                   if p.use_in_rate else 0.0)
        rate, learned, saturated = self._learn(ctx)
        needed = in_rate + backlog / p.drain_seconds
        replicas = math.ceil(round(needed / (rate * p.target_utilization), 6))
        how = "learned" if learned else "configured"
        return Recommendation(
            replicas,
            f"backlog {backlog:.0f} + in-rate {in_rate:.1f}/s needs {needed:.1f}/s at "
            f"{rate:.1f}/s per replica ({how})",
            self.name,
            # Nothing learned from, and the newest values are not saturated: reads with the
            # same values stay unsaturated, so the same throughput holds.
            settled=not p.learn or (saturated == 0 and not self._saturated(ctx)),
        )

    def _saturated(self, ctx: PolicyContext) -> bool:
        """Whether the newest values, read together, would count as a saturated read."""
        src, sat = self.params.source, self.params.saturation_seconds
        n, b, o = (getattr(ctx.signals.get(f"{src}.{f}"), "value", None)
                   for f in ("consumers", "backlog", "out_rate"))
        return bool(n and o and b is not None and b > o * sat)
