"""The demo's view shows each workload's signals as the daemon read them, the pods' CPU (kept per
workload) included."""

from __future__ import annotations

from typing import Any, cast

import pytest

from autoscaler.cli import default_config_path
from autoscaler.config import load_config
from autoscaler.daemon import Adapters, Daemon, LoopClock
from autoscaler.demo import _rows, plain_view
from autoscaler.model import CPU_SIGNAL, PodSample, Signal
from autoscaler.telemetry import Telemetry


def test_the_view_shows_the_api_pods_cpu() -> None:
    loaded = load_config(default_config_path())
    adapters = Adapters(clock=LoopClock(), cluster=cast(Any, None), sources={}, probes={})
    daemon = Daemon(loaded, adapters, telemetry=Telemetry())
    api = next(w for w in loaded.workloads if w.name == "be-fa-public")
    daemon.store.put_signals([
        Signal("track-requests.value", 1234.4, 10.0),
        Signal(f"{CPU_SIGNAL}@{api.key}", 2600.0, 10.0,
               samples=(PodSample("a", 1300), PodSample("b", 1300))),
        Signal("functions.backlog", None, 10.0, error="timed out"),
    ], now=10.0)
    rows = {row[0]: row for row in _rows(cast(Any, None), daemon)}
    assert rows["be-fa-public"][4] == "value=1234, cpu=2600m"
    assert rows["wk-pl-background"][4] == "backlog=?, in_rate=?"  # failed, and never read


def test_the_plain_view_names_the_simulated_servers_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    loaded = load_config(default_config_path())
    adapters = Adapters(clock=LoopClock(), cluster=cast(Any, None), sources={}, probes={})
    daemon = Daemon(loaded, adapters, telemetry=Telemetry())

    class _Cluster:
        def trace_time(self) -> float:
            return 0.0

    info = {"kubeconfig": "/tmp/k", "redis": "simulated", "mysql": "simulated",
            "account": "system:serviceaccount:tracardi:tracardi-autoscaler",
            "servers": "pulsar http://127.0.0.1:1   elasticsearch http://127.0.0.1:2   "
                       "prometheus http://127.0.0.1:3"}
    show = plain_view()
    show(cast(Any, _Cluster()), daemon, info)
    lines = capsys.readouterr().out.splitlines()
    assert lines[1] == info["servers"]
    assert lines[0].startswith("kubeconfig /tmp/k")
