"""The signal store keeps as much history as the policies read, counts changes, and wakes the
readers of a changed signal."""

from __future__ import annotations

from pathlib import Path

from daemon_support import bench_daemon

from autoscaler.model import Signal
from autoscaler.store import SignalStore


def _feed(store: SignalStore, name: str, *, every: float, until: float,
          value: float = 1.0) -> None:
    t = 0.0
    while t <= until:
        store.put_signals([Signal(name, value, t)], now=t)
        t += every


def test_history_is_kept_per_signal_and_bounded_by_history_seconds() -> None:
    store = SignalStore(history_seconds=100.0)
    store.keep_history({"a.backlog": 30.0, "a.value": 500.0})
    for name in ("a.backlog", "a.value", "a.in_rate"):
        _feed(store, name, every=2.0, until=400.0)
    times = {n: [s.read_at for s in store.history[n]] for n in store.history}
    assert times["a.backlog"] == [370.0 + 2 * i for i in range(16)]  # 30 s back
    assert times["a.value"][0] == 300.0  # capped at history_seconds
    assert times["a.in_rate"] == [400.0]  # nobody looks back: the latest read only


def test_without_declarations_every_signal_keeps_history_seconds() -> None:
    store = SignalStore(history_seconds=100.0)
    store.keep_history(None)
    _feed(store, "a.in_rate", every=10.0, until=400.0)
    assert store.history["a.in_rate"][0].read_at == 300.0


def test_changes_are_counted_per_signal_and_wake_its_readers() -> None:
    store = SignalStore(history_seconds=100.0)
    store.subscribe("ns/w", signals=["a.backlog"], requires=[])
    assert store.put_signals([Signal("a.backlog", 5.0, 1.0)], now=1.0) == {"ns/w"}
    first = store.changed["a.backlog"]
    assert store.put_signals([Signal("a.backlog", 5.0, 3.0)], now=3.0) == set()
    assert store.changed["a.backlog"] == first  # the same value again is no change
    assert store.put_signals([Signal("a.backlog", None, 5.0, error="timeout")], now=5.0) \
        == {"ns/w"}
    assert store.changed["a.backlog"] > first


def test_the_daemon_keeps_what_the_policies_read(tmp_path: Path) -> None:
    """Backlog workers keep `learn_seconds` of their learning signals; the rest keep one read."""
    daemon = bench_daemon(tmp_path, None, workloads=4, clock=_Clock())
    keep = daemon.store.keep
    assert keep["wk-0000.backlog"] == keep["wk-0000.out_rate"] == keep["wk-0000.consumers"] \
        == 120.0
    assert "wk-0000.in_rate" not in keep and daemon.store.keep_default == 0.0
    assert keep["api-0003.value"] == 10.0  # the bench's API: trend 10 s, no burst memory


class _Clock:
    def now(self) -> float:
        return 0.0

    async def sleep(self, seconds: float) -> None:
        return None
