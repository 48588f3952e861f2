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
