"""The virtual-time loop lands its wake-ups on the times they were asked for."""

from __future__ import annotations

import asyncio

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
