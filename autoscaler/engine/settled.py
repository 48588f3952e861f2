"""When a workload need not be evaluated again: its last evaluation is settled and nothing it
read has changed since.

The periodic tick re-evaluates every workload because time alone can change a decision: a
stabilization window lets an old recommendation go, a signal grows stale, a suspicion matures
into a restart. An evaluation is *settled* when none of that can happen with its inputs as they
are: it held at the replica count every policy proposed, each proposal says it does not depend
on a history that could still change (`Recommendation.settled`), and the healer had nothing to
watch (every pod ready, no suspicion, no restart being followed, the breaker closed). Then a
later evaluation with the same inputs would decide the same, so `unchanged` lets the daemon
skip it until an input changes: the Deployment or its pods, a dependency's state, any field of
a source the workload reads (tracked by the store's change counter), a signal growing stale, a
failing app probe, or the subscription's consumers.

Pure: the daemon passes in what it holds; nothing here reads a clock or does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from autoscaler.config import SOURCE_FIELDS, Source, WorkloadSpec
from autoscaler.engine.healing import ProbeRecord
from autoscaler.model import (
    Action,
    ConsumerStat,
    Decision,
    DependencyState,
    Signal,
    WorkloadStatus,
)

#: The healer's view of the subscription it watches for stuck consumers (its consumers and
#: backlog), or None when the workload watches none.
Subscription = tuple[tuple[ConsumerStat, ...], float | None] | None


@dataclass(frozen=True, slots=True)
class Settled:
    """What a settled evaluation saw."""

    #: The store's change count when the evaluation ran.
    version: int
    #: The largest proposal, which each skipped evaluation records as the engine would.
    recommended: int
    status: WorkloadStatus
    dependencies: tuple[DependencyState | None, ...]
    #: Every field of every source the policies read (history included).
    watched: tuple[str, ...]
    #: The signals the policies need, which must stay fresh.
    needed: tuple[str, ...]
    consumers: Subscription


def source_fields(spec: WorkloadSpec,
                  sources: Mapping[str, Source]) -> tuple[str, ...] | None:
    """Every field of every source behind the workload's signals; None when one of them is not
    a configured source (the pod CPU of `resources.cpu`), which is never settled here."""
    names: dict[str, None] = {}
    for signal in spec.signal_names():
        source = signal.rpartition(".")[0]
        config = sources.get(source)
        if config is None:
            return None
        names.update(dict.fromkeys(f"{source}.{f}" for f in SOURCE_FIELDS[config.kind]))
    return tuple(names)


def settle(decision: Decision, *, policies: int, min_replicas: int, max_replicas: int,
           status: WorkloadStatus, version: int,
           dependencies: tuple[DependencyState | None, ...], watched: tuple[str, ...] | None,
           needed: tuple[str, ...], healing_quiet: bool,
           consumers: Subscription) -> Settled | None:
    """The record of a settled evaluation, or None when time alone could change its outcome.

    `decision` is the engine's own (before any hold the daemon adds); `policies` how many the
    workload has (each must have proposed). The proposal, held within min and max, must be the
    replica count itself: then neither a stabilization window nor a rate limit has a say, and
    only a new proposal can move it.
    """
    recs = decision.recommendations
    if (watched is None or not healing_quiet or decision.action is not Action.HOLD
            or decision.desired != decision.current or len(recs) != policies
            or not all(r.settled for r in recs)):
        return None
    recommended = max(r.replicas for r in recs)
    if min(max(recommended, min_replicas), max_replicas) != decision.current:
        return None
    return Settled(version=version, recommended=recommended, status=status,
                   dependencies=dependencies, watched=watched, needed=needed,
                   consumers=consumers)


def unchanged(settled: Settled | None, *, status: WorkloadStatus,
              dependencies: tuple[DependencyState | None, ...], changed: Mapping[str, int],
              latest: Mapping[str, Signal], staleness: Mapping[str, float], default_stale: float,
              now: float, probes: Mapping[str, ProbeRecord],
              consumers: Subscription) -> bool:
    """Whether an evaluation now would decide what the settled one did."""
    # Loops rather than any(): this runs for every settled workload on every tick, and with
    # a thousand workloads the generators' set-up was most of its cost.
    if settled is None or consumers != settled.consumers or (
            status is not settled.status and status != settled.status):
        return False
    for a, b in zip(dependencies, settled.dependencies, strict=True):
        if a is not b:
            return False
    version = settled.version
    never = version + 1  # a field never read counts as changed
    for name in settled.watched:
        if changed.get(name, never) > version:
            return False
    for name in settled.needed:
        signal = latest.get(name)
        # now - read_at is the signal's age (`Signal.age`), without the call.
        if signal is None or now - signal.read_at > staleness.get(name, default_stale):
            return False
    return not probes or all(not record.failures for record in probes.values())
