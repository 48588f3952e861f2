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
        #: The workloads whose watched inputs changed since the daemon last checked them in
        #: full: a field they watch (value, error or consumers), or a dependency they require
        #: (any new state). The daemon discards a workload when it checks it.
        self.dirty: set[str] = set()
        self._readers: dict[str, set[str]] = defaultdict(set)
        self._requirers: dict[str, set[str]] = defaultdict(set)
        self._watchers: dict[str, set[str]] = defaultdict(set)

    def subscribe(self, workload: str, *, signals: Iterable[str], requires: Iterable[str],
                  watched: Iterable[str] = ()) -> None:
        """`signals` wake the workload when they change; `watched` (its signals and every other
        field it looks at) and `requires` only mark it dirty."""
        for s in signals:
            self._readers[s].add(workload)
        for d in requires:
            self._requirers[d].add(workload)
        for w in watched:
            self._watchers[w].add(workload)

    def clear_subscriptions(self) -> None:
        self._readers.clear()
        self._requirers.clear()
        self._watchers.clear()

    def mark_dirty(self, field: str) -> None:
        """The workloads watching `field` must be checked in full (it has grown stale, say)."""
        self.dirty |= self._watchers.get(field, set())

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
                self.dirty |= self._watchers.get(sig.name, set())
            elif old.consumers != sig.consumers:
                self.dirty |= self._watchers.get(sig.name, set())
        return woken

    def put_dependency(self, state: DependencyState) -> set[str]:
        old = self.dependencies.get(state.name)
        self.dependencies[state.name] = state
        if old is not state:
            self.dirty |= self._requirers.get(state.name, set())
        if old is None or old.health != state.health:
            return set(self._requirers.get(state.name, set()))
        return set()

    def forget(self, *, sources: Iterable[str] = (), dependencies: Iterable[str] = ()) -> None:
        """Drop what was read from these sources and checked of these dependencies: a source or
        probe redefined by a reload reads another system, whose first read starts afresh."""
        prefixes = tuple(f"{name}." for name in sources)
        if prefixes:
            for name in [n for n in self.latest if n.startswith(prefixes)]:
                del self.latest[name]
                self.changed.pop(name, None)
                self.history.pop(name, None)
        for name in dependencies:
            self.dependencies.pop(name, None)

    def history_view(self) -> Mapping[str, Sequence[Signal]]:
        return self.history
