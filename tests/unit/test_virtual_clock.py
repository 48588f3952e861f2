"""The virtual-time loop lands its wake-ups on the times they were asked for."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from autoscaler.sim import clock
from autoscaler.sim.clock import run_virtual


async def poll(rounds: int) -> list[float]:
    """A source's poll as the daemon runs it: every 2 s, less the time the read took; the times
    each read starts at."""
    loop = asyncio.get_running_loop()
    starts: list[float] = []
    for _ in range(rounds):
        started = loop.time()
        starts.append(started)
        await asyncio.sleep(max(0.0, 2.0 - (loop.time() - started)))
    return starts


async def tick_by_tenths(rounds: int) -> None:
    """Another task, waking every 0.1 s: its sums of 0.1 fall just short of whole seconds."""
    for _ in range(rounds):
        await asyncio.sleep(0.1)


def test_wake_ups_do_not_drift_off_whole_seconds() -> None:
    # The loop wakes within its clock resolution of a timer: when the other task's wake-up at
    # 73.99999999999994 came first, the poll due at 74 ran then, and every later poll started
    # from there. The model counts a second's arrivals once the second is over, so each read
    # then showed one second less of traffic.
    async def main() -> list[float]:
        ticker = asyncio.create_task(tick_by_tenths(100_000))
        try:
            return await poll(5000)
        finally:
            ticker.cancel()

    assert run_virtual(main()) == [2.0 * i for i in range(5000)]


def test_a_timer_between_microseconds_still_comes_due() -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(1.0000004)
        return loop.time()

    assert run_virtual(main()) >= 1.0000004


def _wake_order(sleep: Callable[[float], Awaitable[None]]) -> list[tuple[str, float]]:
    """Which task woke when, for tasks whose wake-ups tie, some cancelled on the way: the order
    of timers due at the same time depends on every timer the loop has held."""
    woke: list[tuple[str, float]] = []

    async def task(name: str, period: float, rounds: int) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(rounds):
            await sleep(period)
            woke.append((name, loop.time()))

    async def main() -> None:
        tasks = [asyncio.create_task(task(f"t{i}", p, 60))
                 for i, p in enumerate((1.0, 2.0, 0.5, 2.0, 1.0, 0.0))]
        # Enough sleepers cancelled at once that the loop sweeps the cancelled timers out of
        # its heap, which reorders what is left in it.
        idle = [asyncio.create_task(task(f"idle{i}", 1000.0 + i, 1)) for i in range(150)]
        await sleep(7.25)
        tasks[3].cancel()
        for t in idle[:120]:
            t.cancel()
        await asyncio.gather(*tasks, *idle, return_exceptions=True)

    run_virtual(main())
    return woke


def test_the_virtual_sleep_wakes_tasks_in_the_order_asyncio_sleep_does() -> None:
    # VirtualClock stands in for LoopClock in every replay: any other order of ties would
    # change the bench's numbers.
    assert _wake_order(clock.sleep) == _wake_order(asyncio.sleep)


def test_the_virtual_clock_reads_the_running_loops_time() -> None:
    virtual = clock.VirtualClock()

    async def main(step: float) -> list[tuple[float, float, float]]:
        loop = asyncio.get_running_loop()
        seen = []
        for _ in range(3):
            await virtual.sleep(step)
            seen.append((loop.time(), virtual.now(), loop.time()))
        return seen

    assert run_virtual(main(1.5), start=10.0) == [(t, t, t) for t in (11.5, 13.0, 14.5)]
    # On a plain loop (no virtual one running in this thread) it is that loop's clock.
    for before, now, after in asyncio.run(main(0.01)):
        assert before <= now <= after


def test_the_virtual_loop_is_forgotten_once_it_stops() -> None:
    async def inner() -> float:
        return clock.now()

    run_virtual(inner(), start=100.0)
    # The loop that ran is gone: a plain loop's time (monotonic, far from 100) is read now.
    assert asyncio.run(inner()) != 100.0
