"""`backlog`: Pulsar workers sized to keep up with the in-rate and drain the backlog in time.

needed capacity = in_rate + backlog / drain_seconds, divided by what one replica drains at the
target utilization. One replica's throughput is learned from the recent reads in which consumers
were saturated (backlog above `saturation_seconds` of their output), as were as many consumers
on the read before (the out-rate covers the time between: consumers that joined within it, or
a backlog that began in it, would make each look slow), as the median of out_rate / consumers;
until there are `learn_min_samples` such reads the configured `msgs_per_second` is used.

With `smooth_seconds`, the in-rate in that formula is its mean over the last `smooth_seconds`:
the backlog is a buffer, and a rise it can absorb is not worth pods that start after it has
passed. What it cannot absorb is sized for at once: when the newest in-rate, above the mean,
would build a backlog of more than `absorb_seconds` of the workers' work before a worker asked
for now starts (`startup_seconds`), the newest in-rate is used instead. With
`absorb_window_seconds` that in-rate is the mean of the reads of that long: an in-rate read over
a short window (the source's `rate_seconds`) shows a burst of a few seconds whole, and a few
seconds are no reason to expect it to last a worker's start-up. With
`persist_seconds`, a rise that every in-rate read of that long shows is sized for at once too
(for the lowest of those reads): it is no passing burst, and the mean would take a minute to
follow it. Otherwise a rise that lasts is followed by the mean, and the backlog it leaves raises
the count through the drain term. With `follow_falls`, the mean smooths rises only: a newest
in-rate below the mean is sized for at once (the scale-down stabilization window still filters
a dip), instead of holding workers for the minutes the mean takes to come down.

With `trust_seconds`, one read's rise is sized for at once, without waiting for
`persist_seconds`, when the in-rate's rises have lasted: when at least half of the jumps of a
replica's worth or more over the last `trust_seconds` held for `persist_seconds` (or there was no
such jump). Where the in-rate moves in steps (per-minute traffic, a level that shifts) a rise on
one read is a rise; where it bursts for a few seconds (the jumps pass), it is not, and waits.
"""

from __future__ import annotations

import math
import statistics
from typing import ClassVar

from pydantic import Field, model_validator

from autoscaler.model import Capacity, Recommendation
from autoscaler.policies.base import PolicyContext, PolicyParams

#: How many recent saturated reads the learned throughput is the median of.
LEARN_WINDOW = 30
#: The share of the in-rate's recent jumps that must have lasted for one read's rise to count.
TRUST_SHARE = 0.5


class BacklogParams(PolicyParams):
    source: str = Field(min_length=1, description="a pulsar or tracardi-queue source")
    msgs_per_second: float = Field(strict=True, gt=0, le=1e9,
                                   description="one replica's throughput until learned")
    drain_seconds: float = Field(60.0, strict=True, gt=0)
    target_utilization: float = Field(0.8, strict=True, gt=0, le=1)
    learn: bool = True
    saturation_seconds: float = Field(5.0, strict=True, gt=0)
    learn_min_samples: int = Field(5, strict=True, ge=1)
    learn_seconds: float = Field(120.0, strict=True, gt=0,
                                 description="how far back saturated reads count")
    use_in_rate: bool = True
    smooth_seconds: float = Field(0.0, strict=True, ge=0, le=3600,
                                  description="size for the mean in-rate over this long; 0: "
                                              "the newest")
    startup_seconds: float = Field(20.0, strict=True, ge=0,
                                   description="until a new worker consumes")
    absorb_seconds: float = Field(5.0, strict=True, gt=0,
                                  description="backlog, in seconds of the workers' work, a rise "
                                              "may build before it is sized for at once")
    absorb_window_seconds: float = Field(0.0, strict=True, ge=0, le=3600,
                                         description="the absorb rule judges the mean in-rate "
                                                     "of this long; 0: the newest")
    persist_seconds: float = Field(0.0, strict=True, ge=0,
                                   description="a rise above the mean that every in-rate read "
                                               "of this long shows is sized for; 0: off")
    follow_falls: bool = Field(False, description="size for the newest in-rate when it is "
                                                  "below the mean: the mean smooths rises only")
    trust_seconds: float = Field(0.0, strict=True, ge=0, le=3600,
                                 description="size for one read's rise at once when the jumps "
                                             "of the in-rate over this long mostly lasted "
                                             "persist_seconds; 0: off")

    @model_validator(mode="after")
    def _trust_judges_jumps_by_persist(self) -> BacklogParams:
        if self.trust_seconds and not (self.smooth_seconds and self.persist_seconds
                                       and self.use_in_rate):
            raise ValueError("trust_seconds needs smooth_seconds and persist_seconds (and "
                             "use_in_rate): it trusts one read's rise over the mean when the "
                             "in-rate's jumps lasted persist_seconds")
        return self


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
        """The reads `per_replica` learns from, and the in-rates `smooth_seconds` averages, the
        absorb rule judges, `persist_seconds` looks for a lasting rise in and `trust_seconds` judges
        the jumps of."""
        src = self.params.source
        seen: dict[str, float] = {}
        if self.params.learn:
            seen = {f"{src}.{f}": self.params.learn_seconds
                    for f in ("consumers", "backlog", "out_rate")}
        if self.params.smooth_seconds and self.params.use_in_rate:
            seen[f"{src}.in_rate"] = max(self.params.smooth_seconds, self.params.persist_seconds,
                                         self.params.absorb_window_seconds,
                                         self.params.trust_seconds)
        return seen

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
        newer: tuple[float, float] | None = None  # the newer saturated read: (n, out / n)
        for consumers, backlog, out in rows:
            if consumers.read_at < oldest or not (
                    consumers.read_at == backlog.read_at == out.read_at):
                break
            n, b, o = consumers.value, backlog.value, out.value
            # Cheap test first: most reads are not saturated.
            if not n or not o or b is None or b <= o * p.saturation_seconds or not (
                    consumers.ok and backlog.ok and out.ok):
                newer = None
                continue
            if newer is not None and newer[0] == n:
                rates.append(newer[1])
                if len(rates) == LEARN_WINDOW:
                    break
            newer = (n, o / n)
        if len(rates) < p.learn_min_samples:
            return p.msgs_per_second, False, len(rates)
        return statistics.median(rates), True, len(rates)

    def recommend(self, ctx: PolicyContext) -> Recommendation:
        p = self.params
        backlog = float(ctx.signals[f"{p.source}.backlog"].value or 0.0)
        in_rate = (float(ctx.signals[f"{p.source}.in_rate"].value or 0.0)
                   if p.use_in_rate else 0.0)
        rate, learned, saturated = self._learn(ctx)
        mean, flat = self._mean_in_rate(ctx, in_rate)
        sized, what = mean, f"in-rate {in_rate:.1f}/s"
        if mean != in_rate:
            what = f"mean in-rate {mean:.1f}/s over {p.smooth_seconds:g}s"
            at_mean = self._replicas(mean + backlog / p.drain_seconds, rate)
            # What the workers would hold by the time a worker asked for now consumes.
            capacity = max(at_mean, ctx.status.ready_replicas) * rate
            rising, over = self._rising_in_rate(ctx, in_rate)
            building = backlog + max(0.0, rising - capacity) * p.startup_seconds
            if rising > mean and building > capacity * p.absorb_seconds:
                sized = rising
                what = (f"in-rate {rising:.1f}/s{over} (a rise the backlog cannot absorb; mean "
                        f"{mean:.1f}/s)")
            elif (held := self._held_in_rate(ctx, in_rate)) > mean:
                sized = held
                what = (f"in-rate at least {held:.1f}/s for {p.persist_seconds:g}s (a rise "
                        f"that lasts; mean {mean:.1f}/s)")
            elif p.follow_falls and in_rate < mean:
                sized = in_rate
                what = f"in-rate {in_rate:.1f}/s (a fall, followed at once; mean {mean:.1f}/s)"
        drain = backlog / p.drain_seconds
        # The cheap tests first: the jumps are judged only when the newest read needs more.
        if p.trust_seconds and in_rate > sized and self._replicas(
                in_rate + drain, rate) > self._replicas(sized + drain, rate) and self._rises_last(
                ctx, rate):
            sized = in_rate
            what = (f"in-rate {in_rate:.1f}/s (a rise, trusted at once: the in-rate's jumps "
                    f"of the last {p.trust_seconds:g}s lasted; mean {mean:.1f}/s)")
        needed = sized + drain
        replicas = self._replicas(needed, rate)
        how = "learned" if learned else "configured"
        return Recommendation(
            replicas,
            f"backlog {backlog:.0f} + {what} needs {needed:.1f}/s at "
            f"{rate:.1f}/s per replica ({how})",
            self.name,
            # Nothing learned from, and the newest values are not saturated: reads with the
            # same values stay unsaturated, so the same throughput holds.
            settled=flat and (not p.learn or (saturated == 0 and not self._saturated(ctx))),
            capacity=Capacity(p.msgs_per_second, rate, learned),
        )

    def _replicas(self, needed: float, per_replica: float) -> int:
        return math.ceil(round(needed / (per_replica * self.params.target_utilization), 6))

    def _mean_in_rate(self, ctx: PolicyContext, in_rate: float) -> tuple[float, bool]:
        """The mean of the valid in-rate reads of the last `smooth_seconds` (the newest one
        without smoothing), and whether they all equal the newest: then the mean keeps its
        value while the in-rate keeps its own."""
        p = self.params
        if not p.smooth_seconds or not p.use_in_rate:
            return in_rate, True
        values = self._in_rates(ctx, p.smooth_seconds)
        if not values or all(v == in_rate for v in values):
            # exactly the newest: a sum's rounding must not make a flat window look like a rise
            return in_rate, True
        return sum(values) / len(values), False

    def _rising_in_rate(self, ctx: PolicyContext, in_rate: float) -> tuple[float, str]:
        """The in-rate the absorb rule judges, and how it says so: the mean of the valid reads of
        the last `absorb_window_seconds`, or the newest alone."""
        p = self.params
        if not p.absorb_window_seconds:
            return in_rate, ""
        values = self._in_rates(ctx, p.absorb_window_seconds)
        if not values:
            return in_rate, ""
        return sum(values) / len(values), f" over {p.absorb_window_seconds:g}s"

    def _held_in_rate(self, ctx: PolicyContext, in_rate: float) -> float:
        """The lowest valid in-rate read of the last `persist_seconds`, the newest included: a
        rise every one of them shows has lasted that long. 0 when off or with one read only."""
        p = self.params
        if not p.persist_seconds:
            return 0.0
        values = self._in_rates(ctx, p.persist_seconds)
        return min(in_rate, *values) if len(values) >= 2 else 0.0

    def _in_rates(self, ctx: PolicyContext, seconds: float) -> list[float]:
        """The valid in-rate reads of the last `seconds`, newest first: the window of the mean,
        of the absorb rule and of a lasting rise."""
        return [v for _, v in ctx.recent(f"{self.params.source}.in_rate", seconds)]

    def _rises_last(self, ctx: PolicyContext, rate: float) -> bool:
        """Whether the in-rate's jumps of a replica's worth or more, read to read over the last
        `trust_seconds`, held for `persist_seconds` (the reads within it all that much above
        the read before the jump) at least `TRUST_SHARE` of the time. Jumps newer than
        `persist_seconds` are not judged yet; with no jump at all, a rise is a drift: trusted."""
        p = self.params
        reads = ctx.recent(f"{p.source}.in_rate", p.trust_seconds)[::-1]  # oldest first
        step = rate * p.target_utilization
        judged_until = ctx.now - p.persist_seconds
        jumps = lasted = 0
        for i in range(1, len(reads)):
            at, value = reads[i]
            floor = reads[i - 1][1] + step
            if value < floor or at > judged_until:
                continue
            jumps += 1
            j = i
            while j < len(reads) and reads[j][0] - at <= p.persist_seconds:
                if reads[j][1] < floor:
                    break  # it fell back within persist_seconds: it passed
                j += 1
            else:
                lasted += 1
        return lasted >= TRUST_SHARE * jumps

    def _saturated(self, ctx: PolicyContext) -> bool:
        """Whether the newest values, read together, would count as a saturated read."""
        src, sat = self.params.source, self.params.saturation_seconds
        n, b, o = (getattr(ctx.signals.get(f"{src}.{f}"), "value", None)
                   for f in ("consumers", "backlog", "out_rate"))
        return bool(n and o and b is not None and b > o * sat)
