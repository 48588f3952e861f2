"""Virtual time for asyncio: an event loop whose clock jumps to the next timer when idle.

The daemon's tasks sleep and read the time through its `Clock` (live: `LoopClock`, that is
`asyncio.sleep` and `loop.time()`); on this loop both are virtual, so a simulated day runs as fast
as the CPU allows with the daemon's code unchanged. `VirtualClock` gives the same values as
`LoopClock` here, read faster. Only in-memory adapters may be used on this loop: real sockets
would wait in real time.
"""

from __future__ import annotations

import asyncio
import selectors
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

#: The virtual-time loop running in this thread, if one is.
_running = threading.local()


class _VirtualSelector(selectors.BaseSelector):
    """Wraps the loop's selector: instead of blocking for `timeout`, advance virtual time."""

    def __init__(self, inner: selectors.BaseSelector, loop: VirtualTimeLoop) -> None:
        self._inner = inner
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is not None:
            # No socket on this loop: its inner selector holds only the self-pipe, and a
            # callback from another thread is queued where this iteration runs it anyway. So
            # with callbacks ready (timeout 0) there is nothing to poll, and idle the loop jumps
            # to the next timer: no system call either way.
            if timeout > 0:
                self._loop.advance(timeout)
            return []
        ready = self._inner.select(0)
        if ready:
            return ready
        raise RuntimeError("virtual-time loop would block forever: no timer and no ready "
                           "task (a task awaits something that never happens)")

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

    def run_forever(self) -> None:
        outer = getattr(_running, "loop", None)
        _running.loop = self
        try:
            super().run_forever()
        finally:
            _running.loop = outer

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


def now() -> float:
    """The running loop's time, as `asyncio.get_running_loop().time()` gives it.

    On a virtual-time loop it is read without `get_running_loop`, which on Python 3.11 makes a
    getpid() system call each time; a simulated day reads the clock about 800,000 times."""
    loop: VirtualTimeLoop | None = getattr(_running, "loop", None)
    return loop._now if loop is not None else asyncio.get_running_loop().time()


async def sleep(seconds: float) -> None:
    """`asyncio.sleep(seconds)`, step for step (the same timer, set and cancelled the same
    way, so a run's timers fire in the same order), without its `get_running_loop`."""
    loop: VirtualTimeLoop | None = getattr(_running, "loop", None)
    if seconds <= 0 or loop is None:
        await asyncio.sleep(seconds)
        return
    future = loop.create_future()
    handle = loop.call_later(seconds, _wake, future)
    try:
        await future
    finally:
        handle.cancel()


def _wake(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.set_result(None)


class VirtualClock:
    """The daemon's `Clock` for the simulator: `LoopClock`'s values, read faster (see `now`)."""

    def now(self) -> float:
        return now()

    async def sleep(self, seconds: float) -> None:
        await sleep(seconds)


def run_virtual(main: Coroutine[Any, Any, T], *, start: float = 0.0) -> T:
    """Run `main` to completion on a fresh virtual-time loop."""
    loop = VirtualTimeLoop(start)
    try:
        return loop.run_until_complete(main)
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
