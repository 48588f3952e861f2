"""The gate: what freezes a workload before any policy runs.

A required dependency that is down or unknown freezes the workload; so does a needed signal that
is missing, failed, or older than its staleness limit. Reasons are operator-greppable words:
`DependencyDown:elasticsearch`, `SignalStale:functions.backlog`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from autoscaler.model import DependencyState, Health, Signal


def dependency_reasons(requires: Iterable[str],
                       dependencies: Mapping[str, DependencyState]) -> tuple[str, ...]:
    """Reasons to freeze for each required dependency that is not up (unknown counts as down).

    An up dependency whose last check failed is suspect and freezes too: the hysteresis keeps it
    up until `failure_threshold` failures, but acting in those seconds would act on the first
    symptoms of an outage (a backlog that grows because Elasticsearch stopped taking writes).
    So is one that is settling after flapping: up again, but not yet for long enough.
    """
    reasons: list[str] = []
    for name in requires:
        state = dependencies.get(name)
        if state is None or state.health is Health.UNKNOWN:
            reasons.append(f"DependencyUnknown:{name}")
        elif state.health is Health.DOWN:
            reasons.append(f"DependencyDown:{name}")
        elif state.failures > 0 or state.settling:
            reasons.append(f"DependencySuspect:{name}")
    return tuple(reasons)


def signal_reason(name: str, signal: Signal | None, *, now: float,
                  stale_after: float) -> str | None:
    """None when the signal is usable now; otherwise why it is not."""
    if signal is None:
        return f"SignalMissing:{name}"
    if signal.error is not None or not signal.ok:
        return f"SignalError:{name}"
    if signal.age(now) > stale_after:
        return f"SignalStale:{name}"
    return None
