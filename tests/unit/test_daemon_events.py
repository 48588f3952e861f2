"""Events are best effort: posted in the background, never waited for, and bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import structlog
from daemon_support import bench_daemon

from autoscaler.daemon import EVENTS_IN_FLIGHT


class _SlowEvents:
    """A cluster whose Event posts wait until the test lets them through."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.posted: list[str] = []
        self.more = asyncio.Event()

    async def emit_event(self, namespace: str, deployment: str, *, reason: str, message: str,
                         warning: bool = False) -> None:
        await self.gate.wait()
        self.posted.append(message)
        self.more.set()

    async def until(self, done: Callable[[list[str]], bool]) -> None:
        async with asyncio.timeout(5):
            while not done(self.posted):
                self.more.clear()
                await self.more.wait()


async def test_events_are_posted_in_the_background_and_bounded(tmp_path: Path) -> None:
    cluster = _SlowEvents()
    daemon = bench_daemon(tmp_path, cluster)
    spec = daemon.workloads["tracardi/wk-0000"].spec
    with structlog.testing.capture_logs() as logs:
        for i in range(EVENTS_IN_FLIGHT + 5):
            daemon._emit(spec, reason="SuccessfulRescale", message=f"New size: {i}")
    dropped = [e for e in logs if e["event"] == "event_dropped"]
    assert len(dropped) == 5 and dropped[0]["waiting"] == EVENTS_IN_FLIGHT
    cluster.gate.set()
    await cluster.until(lambda posted: len(posted) == EVENTS_IN_FLIGHT)
    assert sorted(cluster.posted, key=lambda m: int(m.split()[-1])) == \
        [f"New size: {i}" for i in range(EVENTS_IN_FLIGHT)]
    await asyncio.sleep(0)
    daemon._emit(spec, reason="SuccessfulRescale", message="room again")
    await cluster.until(lambda posted: "room again" in posted)
