"""The backlog policy learns a worker's throughput from saturated reads: replayed, bursts from
idle must not teach it a throughput the workers do not have."""

from __future__ import annotations

import json
import random
from pathlib import Path

import yaml

from autoscaler.cli import main

REPO = Path(__file__).resolve().parents[2]


def bursts_from_idle(path: Path) -> Path:
    """An hour of nothing but bursts of 5 to 30 s, each 1 to 4 minutes after the last."""
    rng = random.Random(3)
    rates = [0.0] * 3600
    t = 30
    while t < 3500:
        length, height = rng.randint(5, 30), rng.uniform(5, 20)
        rates[t:t + length] = [height] * length
        t += length + rng.randint(60, 240)
    path.write_text("t_seconds,requests\n" + "".join(f"{i},{v:.2f}\n"
                                                     for i, v in enumerate(rates)))
    return path


def replay(folder: Path, trace: Path, *, learn: bool) -> dict[str, float]:
    config = yaml.safe_load((REPO / "policies" / "tracardi.yaml").read_text())
    config["workloads"]["wk-pl-background"]["policies"][0]["learn"] = learn
    path = folder / f"learn-{learn}.yaml"
    path.write_text(yaml.safe_dump(config))
    out = folder / f"learn-{learn}.json"
    assert main(["simulate", "--config", str(path), "--trace", str(trace), "--scenario",
                 "worker", "--no-progress", "--json", str(out)]) == 0
    run: dict[str, float] = json.loads(out.read_text())["runs"][0]
    return run


def test_bursts_from_idle_teach_no_lower_throughput_than_the_workers_have(
        tmp_path: Path) -> None:
    # The simulated workers drain what the config states (50 msg/s). The first saturated read
    # of a burst has an out-rate that began before its backlog, and a read after a scale-up
    # one with fewer consumers than it counts: learned from, each made the workers look slow
    # (15 msg/s on the Azure trace) and the policy asked for several times the workers needed.
    trace = bursts_from_idle(tmp_path / "bursts.csv")
    learning = replay(tmp_path, trace, learn=True)
    told = replay(tmp_path, trace, learn=False)
    assert learning["replica_seconds"] <= 1.02 * told["replica_seconds"]
    assert learning["slo_violation_seconds"] <= told["slo_violation_seconds"]
