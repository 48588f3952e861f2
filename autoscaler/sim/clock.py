"""Virtual time for asyncio: an event loop whose clock jumps to the next timer when idle.

The daemon's tasks sleep with `asyncio.sleep` and read `loop.time()` through `LoopClock`; on this
loop both are virtual, so a simulated day runs as fast as the CPU allows with the daemon's code
unchanged. Only in-memory adapters may be used on it: real sockets would wait in real time.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _VirtualSelector(selectors.BaseSelector):
    """Wraps the loop's selector: instead of blocking for `timeout`, advance virtual time."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None and timeout > 0:
            # Idle until the next timer: jump to it without asking the inner selector, which
            # holds only the loop's self-pipe (no sockets on this loop). A callback from another
            # thread is queued where this iteration runs it anyway, and the pipe is drained by
            # the next select(0); one system call per idle iteration was a few % of a run.
            self._loop.advance(timeout)
            return []
        ready = self._inner.select(0)
        if ready:
            return ready
        if timeout is None:
            raise RuntimeError("virtual-time loop would block forever: no timer and no ready "
                               "task (a task awaits something that never happens)")
        return []

    def register(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.register(fileobj, events, data)

    def unregister(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.unregister(fileobj)

    def modify(self, fileobj: Any, events: int, data: Any = None) -> selectors.SelectorKey:
        return self._inner.modify(fileobj, events, data)

    def close(self) -> None:
        self._inner.close()

    def get_key(self, fileobj: Any) -> selectors.SelectorKey:
        return self._inner.get_key(fileobj)

    def get_map(self) -> Any:
        return self._inner.get_map()


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 0.0) -> None:
        super().__init__()
        self._now = start
        self._selector = _VirtualSelector(self._selector, self)  # type: ignore[has-type]

    def time(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Jump `seconds` ahead, to the next timer. Sums of inexact sleeps (the daemon's 0.1 s
        debounce) land a hair short of a whole second, and the loop then runs every timer due
        within its clock resolution: a poll meant for the whole second ran early, read that
        time and carried the error into its next sleep, so errors added up over a simulated
        week. A landing just short of a microsecond is moved onto it (never back: a timer
        between the two would otherwise never come due)."""
        target = self._now + seconds
        snapped = round(target, 6)
        self._now = snapped if snapped >= target else target


def run_virtual(main: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run `main` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
