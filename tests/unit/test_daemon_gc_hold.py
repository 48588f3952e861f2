"""An evaluation pass holds off the cyclic garbage collector, but only for a bounded time."""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path
from typing import Any

import pytest
from daemon_support import bench_daemon

from autoscaler import daemon as daemon_module


class _SlowReads:
    """A cluster whose workload reads wait until the test lets them through."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.asked = asyncio.Event()

    def cached_workload(self, namespace: str, deployment: str) -> Any:
        return None

    async def get_workload(self, namespace: str, deployment: str) -> Any:
        self.asked.set()
        await self.gate.wait()
        raise RuntimeError("no such workload")  # the pass holds the workload and ends


async def test_a_pass_holds_the_collector_off_only_for_a_while(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(daemon_module, "GC_HOLD_SECONDS", 0.2)
    cluster = _SlowReads()
    daemon = bench_daemon(tmp_path, cluster)
    evaluator = asyncio.create_task(daemon._evaluator())
    assert gc.isenabled()
    try:
        daemon.wake(list(daemon.workloads))
        await asyncio.wait_for(cluster.asked.wait(), 5)
        held = not gc.isenabled()
        await asyncio.sleep(0.4)  # the pass is still waiting, past the hold
        after_hold = gc.isenabled()
        gc.disable()  # as the hold would be, had it no bound: the pass's end enables it
        cluster.gate.set()
        await asyncio.sleep(0.05)
        ended = gc.isenabled()
    finally:
        evaluator.cancel()
        gc.enable()
    assert (held, after_hold, ended) == (True, True, True)
