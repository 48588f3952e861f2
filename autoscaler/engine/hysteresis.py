"""Hysteresis: raw probe results -> a dependency's up / down / unknown verdict. Pure.

The daemon keeps one `Hysteresis` per dependency and replaces it with `observe(...)` after each
check from `autoscaler.probes`; `state()` is what the gate reads. A dependency goes down after
`failure_threshold` consecutive failures and up after `success_threshold` consecutive successes;
it starts unknown, which freezes its workloads, and the first verdict needs the same streaks.

Trust takes longer than "up". Every success -> failure edge is a flap; after one, the
dependency is *settling* (the gate freezes its workloads, though it may already count as up)
until it has passed `success_threshold * 2^flaps` checks in a row, counting the flaps of the
last `FLAP_WINDOW_SECONDS` and doubling at most `MAX_DOUBLINGS` times. So a first outage (or a
single failed check) costs twice the success streak before anything acts, and a dependency that
fails every other check, or comes up for a moment between outages, keeps its workloads frozen
until it has held still for a while: the first "up" of a flapping dependency looks exactly like
a recovery, so only a longer streak tells them apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from autoscaler.model import DependencyState, Health
from autoscaler.ports import CheckResult

NO_CHECK_YET = "no check yet"
#: Flaps older than this no longer lengthen the settling.
FLAP_WINDOW_SECONDS = 600.0
#: At most 2^4 = 16 times `success_threshold` checks in a row to trust a flapping dependency.
MAX_DOUBLINGS = 4


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """The verdict so far, the current streaks and the reasons behind them."""

    health: Health = Health.UNKNOWN
    failures: int = 0
    successes: int = 0
    reason: str = NO_CHECK_YET
    last_failure: str = ""
    since: float = 0.0
    #: Times of the recent success -> failure edges, newest last (at most MAX_DOUBLINGS + 1).
    flaps: tuple[float, ...] = ()
    #: Successes in a row needed before the dependency is trusted again.
    required: int = 0

    def observe(self, result: CheckResult, *, now: float, failure_threshold: int,
                success_threshold: int) -> Hysteresis:
        """The state after one more check; `self` itself when it teaches nothing new (a good
        check of a trusted dependency with no flap to forget), so callers can skip the rest."""
        if (result.ok and self.health is Health.UP and not self.failures and not self.flaps
                and self.successes >= self.required >= success_threshold
                and result.reason == self.reason):
            return self
        flaps = tuple(t for t in self.flaps if now - t < FLAP_WINDOW_SECONDS)
        if result.ok:
            successes, failures = self.successes + 1, 0
            health = Health.UP if successes >= success_threshold else self.health
            last_failure = self.last_failure
        else:
            successes, failures = 0, self.failures + 1
            health = Health.DOWN if failures >= failure_threshold else self.health
            last_failure = result.reason or "check failed"
            if self.successes > 0:
                flaps = (*flaps, now)[-(MAX_DOUBLINGS + 1):]
        required = success_threshold * 2 ** min(len(flaps), MAX_DOUBLINGS)
        return replace(
            self, health=health, failures=failures, successes=successes,
            reason=result.reason if result.ok else last_failure, last_failure=last_failure,
            since=now if health is not self.health else self.since, flaps=flaps,
            required=required,
        )

    @property
    def settling(self) -> bool:
        """Up, but not yet trusted: too few successes in a row since the last flap."""
        return self.health is Health.UP and self.successes < self.required

    def state(self, name: str) -> DependencyState:
        """The verdict for the gate; while down, the reason is the failure that put it there."""
        reason = self.last_failure if self.health is Health.DOWN else self.reason
        if self.settling and self.failures == 0:
            reason = (f"up again after {len(self.flaps)} recent flap(s); trusted after "
                      f"{self.required} good checks in a row")
        return DependencyState(name=name, health=self.health, reason=reason, since=self.since,
                               failures=self.failures, settling=self.settling)
