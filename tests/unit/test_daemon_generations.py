"""A config reload replaces the daemon's tasks; one that ignores its cancellation must not stall
the daemon (a client library hung in its own clean-up once kept a reload from ever finishing)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import structlog
from daemon_support import bench_daemon

from autoscaler import daemon as daemon_module
from autoscaler.ports import CheckResult, PodEvent


class _QuietCluster:
    async def watch_pods(self, namespace: str) -> AsyncIterator[PodEvent]:
        await asyncio.Event().wait()
        yield PodEvent("ADDED", namespace, "never")


class _Probe:
    name = "pulsar"

    def __init__(self, *, deaf: bool) -> None:
        self.deaf = deaf
        self.checks = 0
        self.checked = asyncio.Event()
        self.stop_ignoring = asyncio.Event()

    async def check(self) -> CheckResult:
        self.checks += 1
        self.checked.set()
        if self.deaf:
            while not self.stop_ignoring.is_set():
                try:
                    await self.stop_ignoring.wait()
                except asyncio.CancelledError:  # what a misbehaving client library does
                    continue
        return CheckResult(ok=True)

    async def close(self) -> None:
        await asyncio.Event().wait()  # never returns either


async def test_a_reload_goes_on_without_a_task_that_ignores_cancellation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_module, "CANCEL_WAIT_SECONDS", 0.2)
    deaf, fresh = _Probe(deaf=True), _Probe(deaf=False)
    daemon = bench_daemon(tmp_path, _QuietCluster(), probes={"pulsar": deaf})
    loaded = daemon.loaded
    with structlog.testing.capture_logs() as logs:
        running = asyncio.create_task(daemon.run())
        async with asyncio.timeout(5):
            await deaf.checked.wait()
            daemon.reload(loaded, sources={}, probes={"pulsar": fresh})
            await fresh.checked.wait()  # the new generation runs
            assert daemon.ready
        daemon.stop()
        async with asyncio.timeout(5):
            await running
    stuck = [e for e in logs if e["event"] == "tasks_not_ending"]
    assert stuck and stuck[0]["tasks"] == ["probe:pulsar"]
    deaf.stop_ignoring.set()  # let it end before the loop closes
    await asyncio.sleep(0.05)
