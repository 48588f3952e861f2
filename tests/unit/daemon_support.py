"""A daemon over the scale bench's generated config, with the cluster and probes a test gives
it and no sources: for tests of the daemon's own machinery (passes, reloads, events, metrics)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import yaml

from autoscaler.bench.scale import bench_config, generate
from autoscaler.config import load_config
from autoscaler.daemon import Adapters, Daemon, LoopClock
from autoscaler.model import Health, Signal
from autoscaler.ports import Clock, Probe
from autoscaler.telemetry import Telemetry


def bench_daemon(tmp_path: Path, cluster: object, *, workloads: int = 1,
                 clock: Clock | None = None, probes: Mapping[str, Probe] | None = None) -> Daemon:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(bench_config(generate(workloads), pulsar="http://127.0.0.1:1",
                                                prometheus="http://127.0.0.1:2")))
    adapters = Adapters(clock=clock or LoopClock(), cluster=cast(Any, cluster), sources={},
                        probes=dict(probes or {}))
    return Daemon(load_config(path), adapters, telemetry=Telemetry())


async def wanting_more(daemon: Daemon, pulsar: Probe, workloads: int = 1) -> None:
    """Make the workers of `daemon` want more replicas: Pulsar checked up (as often as its
    success threshold asks), then a backlog read for each."""
    while daemon.store.dependencies.get("pulsar") is None \
            or daemon.store.dependencies["pulsar"].health is not Health.UP:
        await daemon._check(pulsar)
    now = daemon.a.clock.now()
    for i in range(workloads):
        daemon._take_signals([Signal(f"wk-{i:04d}.backlog", 5000.0, now),
                              Signal(f"wk-{i:04d}.in_rate", 100.0, now)])
