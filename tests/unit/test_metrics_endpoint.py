"""A scrape renders off the event loop: with a thousand workloads rendering takes most of a
second, and reads, probes and the daemon's own probes must go on meanwhile."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer
from daemon_support import bench_daemon
from prometheus_client.core import GaugeMetricFamily, Metric

from autoscaler.runtime import endpoints


class _SlowCollector:
    """A collector that holds the scrape until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        self.entered.set()
        self.release.wait(5)
        yield GaugeMetricFamily("slow_collector_done", "Set once released", value=1)


async def test_the_daemon_answers_while_a_scrape_is_being_rendered(tmp_path: Path) -> None:
    daemon = bench_daemon(tmp_path, None, workloads=4)
    slow = _SlowCollector()
    daemon.telemetry.registry.register(slow)
    server = TestServer(endpoints(daemon), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:

            async def get(path: str) -> tuple[int, str]:
                async with session.get(server.make_url(path)) as reply:
                    return reply.status, await reply.text()

            scrape = asyncio.create_task(get("/metrics"))
            assert await asyncio.to_thread(slow.entered.wait, 5)
            health = await get("/healthz")
            still_rendering = not scrape.done()
            slow.release.set()
            status, text = await scrape
    finally:
        slow.release.set()
        await server.close()
    assert health == (200, "ok\n")
    assert still_rendering
    assert status == 200 and "slow_collector_done 1.0" in text
