"""The signal store: the latest value of every signal, a short history, and who depends on what.

Sources and probes write here; the evaluator reads. A write returns the workloads whose inputs
changed, so the daemon wakes exactly those. No I/O, no locks: everything runs on one event loop.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Mapping, Sequence

from autoscaler.model import DependencyState, Signal


class SignalStore:
    """`history_seconds` bounds every signal's history; `keep_history` narrows it per signal to
    what its readers look back on (a signal nobody looks back on keeps its latest read only)."""

    def __init__(self, *, history_seconds: float) -> None:
        self.history_seconds = history_seconds
        #: Seconds of history kept per signal, and for signals not named there.
        self.keep: dict[str, float] = {}
        self.keep_default = history_seconds
        self.latest: dict[str, Signal] = {}
        #: A count of the signal changes (value or error, a first read included) so far, and
        #: that count as of each signal's last change: "unchanged since" without clock ties.
        self.version = 0
        self.changed: dict[str, int] = {}
        self.history: dict[str, deque[Signal]] = defaultdict(deque)
        self.dependencies: dict[str, DependencyState] = {}
        self._readers: dict[str, set[str]] = defaultdict(set)
        self._requirers: dict[str, set[str]] = defaultdict(set)

    def subscribe(self, workload: str, *, signals: Iterable[str], requires: Iterable[str]) -> None:
        for s in signals:
            self._readers[s].add(workload)
        for d in requires:
            self._requirers[d].add(workload)

    def clear_subscriptions(self) -> None:
        self._readers.clear()
        self._requirers.clear()

    def keep_history(self, seconds: Mapping[str, float] | None) -> None:
        """Keep `seconds[name]` of each signal's history (at most `history_seconds`) and the
        latest read of the others; None keeps `history_seconds` of every signal."""
        if seconds is None:
            self.keep, self.keep_default = {}, self.history_seconds
        else:
            self.keep = {name: min(s, self.history_seconds) for name, s in seconds.items()}
            self.keep_default = 0.0

    def readers(self, signal: str) -> set[str]:
        return self._readers.get(signal, set())

    def put_signals(self, signals: Sequence[Signal], *, now: float) -> set[str]:
        """Store a read; return the workloads to wake (value, error or validity changed)."""
        woken: set[str] = set()
        for sig in signals:
            old = self.latest.get(sig.name)
            self.latest[sig.name] = sig
            ring = self.history[sig.name]
            ring.append(sig)
            keep = self.keep.get(sig.name, self.keep_default)
            while len(ring) > 1 and now - ring[0].read_at > keep:
                ring.popleft()
            if old is None or old.value != sig.value or old.error != sig.error:
                self.version += 1
                self.changed[sig.name] = self.version
                woken |= self._readers.get(sig.name, set())
        return woken

    def put_dependency(self, state: DependencyState) -> set[str]:
        old = self.dependencies.get(state.name)
        self.dependencies[state.name] = state
        if old is None or old.health != state.health:
            return set(self._requirers.get(state.name, set()))
        return set()

    def history_view(self) -> Mapping[str, Sequence[Signal]]:
        return self.history
