"""HPA behavior after the policy: stabilization windows, rate limits per period, min/max.

A pure transcription of the autoscaling/v2 normalization in the HPA controller
(`stabilizeRecommendationWithBehaviors` and `convertDesiredReplicasWithBehaviorRate`), with its
memory kept in a `ScalingHistory` value that callers pass in and get back. The clock is passed in.
Reasons use the HPA's words so operators can grep them.

One addition, off unless `scale_down.retract_seconds` is set: a scale-up the policy no longer
asks for is taken back at once while its pods are still starting (`retract`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from autoscaler.config import RatePolicy, ScalingRules
from autoscaler.model import ScalingHistory, Step, TimedValue

#: Memory older than this is never needed: the longest window or period the config allows.
MAX_MEMORY_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class BehaviorResult:
    replicas: int
    reason: str
    steps: tuple[Step, ...]
    history: ScalingHistory


def stabilize(
    *,
    current: int,
    desired: int,
    recommendations: Sequence[TimedValue],
    now: float,
    up_window: float,
    down_window: float,
) -> tuple[int, str]:
    """Clamp `current` into [min of up-window recs, max of down-window recs].

    `recommendations` are the past raw recommendations; `desired` is today's, counted in both.
    """
    up_limit = desired
    down_limit = desired
    for rec in recommendations:
        age = now - rec.at
        if age < up_window:
            up_limit = min(up_limit, rec.value)
        if age < down_window:
            down_limit = max(down_limit, rec.value)
    result = min(max(current, up_limit), down_limit)
    if result == desired:
        return result, ""
    return result, "ScaleUpStabilized" if desired >= current else "ScaleDownStabilized"


def _changed_in_period(events: Sequence[TimedValue], *, now: float, period: float) -> int:
    return sum(e.value for e in events if now - e.at < period)


def scale_up_limit(
    *, current: int, rules: ScalingRules, up_events: Sequence[TimedValue],
    down_events: Sequence[TimedValue], now: float,
) -> int:
    """The most replicas the scale-up policies allow now.

    HPA `calculateScaleUpLimitWithScalingRules`.
    """
    if rules.select_policy == "Disabled":
        return current
    limits: list[int] = []
    for policy in rules.policies:
        start = (current - _changed_in_period(up_events, now=now, period=policy.period_seconds)
                 + _changed_in_period(down_events, now=now, period=policy.period_seconds))
        limits.append(_up_by(policy, start))
    return max(limits) if rules.select_policy == "Max" else min(limits)


def scale_down_limit(
    *, current: int, rules: ScalingRules, up_events: Sequence[TimedValue],
    down_events: Sequence[TimedValue], now: float,
) -> int:
    """The fewest replicas the scale-down policies allow now."""
    if rules.select_policy == "Disabled":
        return current
    limits: list[int] = []
    for policy in rules.policies:
        start = (current - _changed_in_period(up_events, now=now, period=policy.period_seconds)
                 + _changed_in_period(down_events, now=now, period=policy.period_seconds))
        limits.append(_down_by(policy, start))
    return min(limits) if rules.select_policy == "Max" else max(limits)


def _up_by(policy: RatePolicy, start: int) -> int:
    if policy.type == "Pods":
        return start + policy.value
    return math.ceil(start * (1 + policy.value / 100))


def _down_by(policy: RatePolicy, start: int) -> int:
    if policy.type == "Pods":
        return start - policy.value
    return math.floor(start * (1 - policy.value / 100))


def limit_rate(
    *, current: int, desired: int, min_replicas: int, max_replicas: int,
    up: ScalingRules, down: ScalingRules, up_events: Sequence[TimedValue],
    down_events: Sequence[TimedValue], now: float,
) -> tuple[int, str]:
    """Apply the rate policies and min/max (HPA `convertDesiredReplicasWithBehaviorRate`)."""
    if desired > current:
        limit = max(current, scale_up_limit(current=current, rules=up, up_events=up_events,
                                            down_events=down_events, now=now))
        if max_replicas > limit:
            allowed, reason = limit, "ScaleUpLimit"
        else:
            allowed, reason = max_replicas, "TooManyReplicas"
        if desired > allowed:
            return allowed, reason
    elif desired < current:
        limit = min(current, scale_down_limit(current=current, rules=down, up_events=up_events,
                                              down_events=down_events, now=now))
        if min_replicas < limit:
            allowed, reason = limit, "ScaleDownLimit"
        else:
            allowed, reason = min_replicas, "TooFewReplicas"
        if desired < allowed:
            return allowed, reason
    return desired, "DesiredWithinRange"


def retract(*, current: int, desired: int, allowed: int, min_replicas: int, starting: int,
            rules: ScalingRules, up_events: Sequence[TimedValue], now: float) -> tuple[int, str]:
    """Take back, past the scale-down window and rate limits, the pods that scale-ups of the last
    `rules.retract_seconds` added and that are still starting (`starting` of the current pods:
    not ready, or taking no work yet), down to `desired` (never below `min_replicas`). `allowed`
    is what stabilization and the rate limits gave.

    A pod still starting has served nothing, so removing it loses nothing a window protects; the
    ReplicaSet controller removes not-ready pods first, then the most recently ready. A count the
    policy asked for on one read of a rise is then cheap where the rise passes, and none is held
    for a window. A count within `rules.retract_slack` of `desired` is left to the window: on a
    steady rate, one read in a few crosses a pod's boundary, and taking each such pod back would
    start and stop a pod every few seconds.
    """
    if not rules.retract_seconds or allowed - desired <= rules.retract_slack or allowed > current:
        return allowed, ""
    added = sum(e.value for e in up_events if now - e.at < rules.retract_seconds)
    floor = max(desired, min_replicas, current - min(added, starting))
    if floor >= allowed:
        return allowed, ""
    return floor, "ScaleUpRetracted"


def apply_behavior(
    *,
    current: int,
    desired: int,
    min_replicas: int,
    max_replicas: int,
    up: ScalingRules,
    down: ScalingRules,
    history: ScalingHistory,
    now: float,
    starting: int = 0,
) -> BehaviorResult:
    """Stabilize, then rate-limit and clamp, then retract (`down.retract_seconds`, with
    `starting` of the current pods still starting); record the raw recommendation in the
    history."""
    stabilized, why_stable = stabilize(
        current=current, desired=desired, recommendations=history.recommendations, now=now,
        up_window=up.stabilization_window_seconds, down_window=down.stabilization_window_seconds,
    )
    final, why_limited = limit_rate(
        current=current, desired=stabilized, min_replicas=min_replicas, max_replicas=max_replicas,
        up=up, down=down, up_events=history.scale_up_events,
        down_events=history.scale_down_events, now=now,
    )
    steps: tuple[Step, ...] = (
        Step("stabilize", stabilized, why_stable),
        Step("rate-limit", final, why_limited),
    )
    reason = why_stable if why_stable and why_limited == "DesiredWithinRange" else why_limited
    retracted, why_retracted = retract(
        current=current, desired=desired, allowed=final, min_replicas=min_replicas,
        starting=starting, rules=down, up_events=history.scale_up_events, now=now)
    if why_retracted:
        final, reason = retracted, why_retracted
        steps = (*steps, Step("retract", final, why_retracted))
    new_history = remember(history, desired=desired, now=now, up=up, down=down)
    return BehaviorResult(replicas=final, reason=reason, steps=steps, history=new_history)


def first_recommendation(history: ScalingHistory, *, current: int,
                         now: float) -> ScalingHistory:
    """HPA `recordInitialRecommendation`: the memory of a workload seen for the first time
    starts with its current count, so a controller that has just (re)started holds it for a
    scale-down stabilization window instead of scaling down on its first look."""
    if history.recommendations:
        return history
    return replace(history, recommendations=(TimedValue(now, current),))


def frozen(history: ScalingHistory, *, now: float) -> ScalingHistory:
    """The memory of a workload frozen on a dependency: when the freeze began."""
    return history if history.frozen_since is not None else replace(history, frozen_since=now)


def thawed(history: ScalingHistory, *, now: float) -> ScalingHistory:
    """The memory of a workload no longer frozen: its recommendations are as old as when the
    freeze began. No recommendation is made while frozen, so without this a freeze longer than
    the scale-down window would leave none in it, and the first reads after an outage (a
    backlog the broker lost, a rate that has not come back yet) would set the count at once;
    now the count the window held before the outage is held for the rest of that window, as a
    controller's first look holds the current count (`first_recommendation`). As after a first
    look, a scale-up window (none shipped, 0 s by the HPA's default) counts from before the
    outage too: it paces the return to a dependency that has just come back."""
    if history.frozen_since is None:
        return history
    by = now - history.frozen_since
    return replace(history, frozen_since=None, recommendations=tuple(
        TimedValue(r.at + by, r.value) for r in history.recommendations))


def remember(history: ScalingHistory, *, desired: int, now: float, up: ScalingRules,
             down: ScalingRules) -> ScalingHistory:
    """The history after an evaluation whose raw recommendation was `desired`."""
    keep = max(up.stabilization_window_seconds, down.stabilization_window_seconds)
    # An older recommendation equal to today's can never bound a window that today's does not
    # (a window holding it holds today's too), so the memory keeps one entry per value: a
    # steady workload remembers one recommendation, not one per evaluation.
    # A list and the constructor rather than a generator and replace(): a settled workload
    # runs this on every tick, a thousand of them in a pass.
    recs = [r for r in history.recommendations if now - r.at < keep and r.value != desired]
    recs.append(TimedValue(now, desired))
    history = ScalingHistory(tuple(recs), history.scale_up_events, history.scale_down_events)
    if not history.scale_up_events and not history.scale_down_events:
        return history  # nothing to prune
    return prune(history, now=now, up=up, down=down)


def prune(history: ScalingHistory, *, now: float, up: ScalingRules,
          down: ScalingRules) -> ScalingHistory:
    """Forget scale events older than the longest rate period (they no longer limit anything)
    and than the retract window (it no longer takes them back)."""
    longest = max([down.retract_seconds, *(p.period_seconds for p in (*up.policies,
                                                                     *down.policies))])
    return replace(
        history,
        scale_up_events=tuple(e for e in history.scale_up_events if now - e.at < longest),
        scale_down_events=tuple(e for e in history.scale_down_events if now - e.at < longest),
    )


def record_scale(history: ScalingHistory, *, now: float, old: int, new: int) -> ScalingHistory:
    """Remember a scale that really happened (after the write succeeded)."""
    if new > old:
        return replace(history,
                       scale_up_events=(*history.scale_up_events, TimedValue(now, new - old)))
    if new < old:
        return replace(history,
                       scale_down_events=(*history.scale_down_events, TimedValue(now, old - new)))
    return history
