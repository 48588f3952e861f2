"""`evaluate`: one workload's decision = gate(behavior(policies(signals))).

Pure: no I/O, the clock is passed in, the behavior's memory goes in and comes back out. The same
function runs in the daemon, the simulator, `explain` and the tests. The pipeline reads like the
HPA's `reconcileAutoscaler`: pause and dependency gate -> clamp an out-of-range count -> one
proposal per policy (largest wins) -> never scale down on partial signals -> stabilize ->
rate-limit -> (with `scale_down.retract_seconds`) retract pods still starting -> scale only if
changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from autoscaler.config import WorkloadSpec
from autoscaler.engine.behavior import apply_behavior, frozen, thawed
from autoscaler.engine.gate import dependency_reasons, signal_reason
from autoscaler.engine.healing import without_consumer
from autoscaler.model import (
    Action,
    ConsumerStat,
    Decision,
    DependencyState,
    Recommendation,
    ScalingHistory,
    Signal,
    Step,
    WorkloadStatus,
)
from autoscaler.policies.base import PolicyContext, PolicyError, optional_signals

#: Staleness limit for signals whose source sets none (resources.cpu: metrics-server's cadence).
DEFAULT_STALE_SECONDS = 90.0


@dataclass(frozen=True, slots=True)
class Evaluation:
    decision: Decision
    history: ScalingHistory


def evaluate(
    spec: WorkloadSpec,
    *,
    status: WorkloadStatus,
    signals: Mapping[str, Signal],
    dependencies: Mapping[str, DependencyState],
    history: ScalingHistory,
    now: float,
    staleness: Mapping[str, float],
    signal_history: Mapping[str, Sequence[Signal]] | None = None,
    consumers: Sequence[ConsumerStat] | None = None,
) -> Evaluation:
    """One decision. `consumers`, the last read of the subscription the workload's pods consume
    (`healing.consumer_source`; None when not known): a ready pod among none of them has not
    started taking work, and counts as starting for `scale_down.retract_seconds`."""
    w = spec.settings
    current = status.replicas

    def decide(action: Action, desired: int, reasons: tuple[str, ...],
               recs: tuple[Recommendation, ...] = (), steps: tuple[Step, ...] = ()) -> Decision:
        return Decision(workload=spec.name, namespace=spec.namespace, action=action,
                        current=current, desired=desired, reasons=reasons,
                        recommendations=recs, steps=steps)

    if status.paused:
        return Evaluation(decide(Action.PAUSE, current, ("Paused",)), history)
    freeze = dependency_reasons(w.requires, dependencies)
    if freeze:
        return Evaluation(decide(Action.FREEZE, current, freeze), frozen(history, now=now))
    history = thawed(history, now=now)
    if current == 0 and w.min > 0:
        # As the HPA: a workload scaled to zero by hand is switched off, not brought back.
        return Evaluation(decide(Action.HOLD, 0, ("ScalingDisabled: scaled to 0 replicas",)),
                          history)
    if current > w.max:
        return Evaluation(decide(Action.SCALE, w.max, ("TooManyReplicas: current above max",)),
                          history)
    if current < w.min:
        return Evaluation(decide(Action.SCALE, w.min, ("TooFewReplicas: current below min",)),
                          history)

    unusable = frozenset(
        name for policy in spec.policies for name in optional_signals(policy)
        if signal_reason(name, signals.get(name), now=now,
                         stale_after=staleness.get(name, DEFAULT_STALE_SECONDS)))
    ctx = PolicyContext(
        status=status, signals=signals, now=now, min_replicas=w.min, max_replicas=w.max,
        tolerance_up=w.behavior.tolerance.scale_up,
        tolerance_down=w.behavior.tolerance.scale_down,
        history=signal_history or {}, unusable=unusable,
    )
    proposals: list[Recommendation] = []
    invalid: list[str] = []
    for policy in spec.policies:
        missing = [r for name in policy.signals()
                   if (r := signal_reason(name, signals.get(name), now=now,
                                          stale_after=staleness.get(name,
                                                                    DEFAULT_STALE_SECONDS)))]
        if missing:
            invalid.extend(missing)
            continue
        try:
            proposals.append(policy.recommend(ctx))
        except PolicyError as exc:
            invalid.append(f"PolicyError:{policy.name}: {exc}")
    recs = tuple(proposals)
    if not proposals:
        return Evaluation(decide(Action.FREEZE, current, tuple(invalid)), history)
    best = max(proposals, key=lambda r: r.replicas)
    steps: list[Step] = [Step("policy", best.replicas, best.reason)]
    if invalid and best.replicas < current:
        return Evaluation(decide(Action.HOLD, current,
                                 ("ScaleDownBlocked: partial signals", *invalid), recs,
                                 tuple(steps)), history)

    starting = 0  # only retracting asks: a thousand workloads are evaluated in a pass
    if w.behavior.down.retract_seconds:
        starting = max(0, current - status.ready_replicas) + (
            0 if consumers is None else without_consumer(status.pods, consumers))
    result = apply_behavior(
        current=current, desired=best.replicas, min_replicas=w.min, max_replicas=w.max,
        up=w.behavior.up, down=w.behavior.down, history=history, now=now, starting=starting,
    )
    steps.extend(result.steps)
    reasons = tuple(r for r in (best.reason, result.reason, *invalid) if r)
    action = Action.SCALE if result.replicas != current else Action.HOLD
    return Evaluation(decide(action, result.replicas, reasons, recs, tuple(steps)),
                      result.history)
