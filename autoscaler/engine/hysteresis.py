"""Hysteresis: raw probe results -> a dependency's up / down / unknown verdict. Pure.

The daemon keeps one `Hysteresis` per dependency and replaces it with `observe(...)` after each
check from `autoscaler.probes`; `state()` is what the gate reads. A dependency goes down after
`failure_threshold` consecutive failures and up after `success_threshold` consecutive successes;
it starts unknown, which freezes its workloads, and the first verdict needs the same streaks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from autoscaler.model import DependencyState, Health
from autoscaler.ports import CheckResult

NO_CHECK_YET = "no check yet"


@dataclass(frozen=True, slots=True)
class Hysteresis:
    """The verdict so far, the current streaks and the reasons behind them."""

    health: Health = Health.UNKNOWN
    failures: int = 0
    successes: int = 0
    reason: str = NO_CHECK_YET
    last_failure: str = ""
    since: float = 0.0

    def observe(self, result: CheckResult, *, now: float, failure_threshold: int,
                success_threshold: int) -> Hysteresis:
        if result.ok:
            successes, failures = self.successes + 1, 0
            health = Health.UP if successes >= success_threshold else self.health
            last_failure = self.last_failure
        else:
            successes, failures = 0, self.failures + 1
            health = Health.DOWN if failures >= failure_threshold else self.health
            last_failure = result.reason or "check failed"
        return replace(
            self, health=health, failures=failures, successes=successes,
            reason=result.reason if result.ok else last_failure, last_failure=last_failure,
            since=now if health is not self.health else self.since,
        )

    def state(self, name: str) -> DependencyState:
        """The verdict for the gate; while down, the reason is the failure that put it there."""
        reason = self.last_failure if self.health is Health.DOWN else self.reason
        return DependencyState(name=name, health=self.health, reason=reason, since=self.since,
                               failures=self.failures)
