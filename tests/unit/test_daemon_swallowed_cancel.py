"""A client library that swallows the CancelledError of a check (aiomysql and redis-py do, at
some points) must not keep a probe's task alive past a stop: it would sleep a whole period and
the daemon would wait for it, then log it as not ending."""

from __future__ import annotations

import asyncio
from pathlib import Path

import structlog
from daemon_support import bench_daemon

from autoscaler.ports import CheckResult


class _SwallowingProbe:
    """A check that, cancelled, answers anyway (as the libraries do)."""

    name = "pulsar"

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.swallowed = 0

    async def check(self) -> CheckResult:
        self.started.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            self.swallowed += 1
        return CheckResult(ok=True)

    async def close(self) -> None:
        return None


class _Cluster:
    async def watch_pods(self, namespace: str):  # type: ignore[no-untyped-def]
        await asyncio.Event().wait()
        yield None


async def test_a_probe_whose_library_swallows_the_cancel_ends_with_the_run(
        tmp_path: Path) -> None:
    probe = _SwallowingProbe()
    daemon = bench_daemon(tmp_path, _Cluster(), probes={"pulsar": probe})
    runner = asyncio.create_task(daemon.run())
    await asyncio.wait_for(probe.started.wait(), 5)
    with structlog.testing.capture_logs() as logs:
        daemon.stop()
        await asyncio.wait_for(runner, 15)
    assert probe.swallowed == 1  # the check did swallow the cancel
    # Ended with the run, not abandoned after the 5 s wait for tasks that do not end.
    assert not [e for e in logs if e["event"] == "tasks_not_ending"]
