"""The shipped policies, replayed on the simulated cluster: what their tuning does with a shape
of traffic, asserted on the scale requests the daemon makes."""

from __future__ import annotations

import math
from pathlib import Path

import yaml

from autoscaler.bench.contenders import run_ours
from autoscaler.bench.scenario import Setup, build_setup
from autoscaler.config import load_config
from autoscaler.sim.model import ClusterModel
from autoscaler.sim.traces import Trace

CONFIG = str(Path(__file__).resolve().parents[2] / "policies" / "tracardi.yaml")
STEP_AT = 900


def run(config: str, trace: Trace, scenario: str) -> tuple[Setup, ClusterModel]:
    """The daemon with `config`, replayed on `trace`."""
    loaded = load_config(config)
    setup = build_setup(loaded, trace, scenario, peak_replicas=20)
    model = setup.model(seed=1)
    run_ours(loaded, setup, model)
    return setup, model


def replay(trace: Trace, scenario: str) -> tuple[int, list[tuple[float, int, int]]]:
    """The count the trace's peak needs, and the scale-ups from `STEP_AT` on, (at, old, new)."""
    setup, model = run(CONFIG, trace, scenario)
    need = math.ceil(max(setup.trace.rates) / setup.capacity)
    return need, [(at, old, new) for at, old, new in model.scale_log
                  if at >= STEP_AT and new > old]


def test_the_api_reaches_a_steps_need_as_soon_as_its_reads_show_it() -> None:
    # 15 min at a quarter of the peak, then the peak (20 pods' worth) for 10 min
    need, ups = replay(Trace("step", (100.0,) * STEP_AT + (400.0,) * 600, 1), "api")
    assert ups and ups[0][1] < need / 2, "sized for the quarter before the step"
    # The first read after the step shows part of it (a 10 s rate, read every 5 s); the next
    # read shows the rest, and nothing makes the pods it needs wait for a scale-up period.
    reached = next(at for at, _, new in ups if new >= need)
    assert reached - STEP_AT < 11, f"the count reached {need} only at {reached}: {ups}"


def test_the_worker_reaches_a_bursts_need_within_a_few_reads() -> None:
    # 15 min at a twentieth of the peak (one worker's worth), then the peak (20 workers' worth)
    # for 5 min: a burst the backlog cannot absorb
    need, ups = replay(Trace("burst", (20.0,) * STEP_AT + (400.0,) * 300 + (20.0,) * 300, 1),
                       "worker")
    assert ups and ups[0][1] <= 2, "sized for the trickle before the burst"
    # The first read (1 s apart, each over the last 1 s) shows the burst whole; no scale-up
    # period makes the count wait for the HPA's doubling (1 -> 5 -> 10 -> 20 took 32.5 s).
    reached = next(at for at, _, new in ups if new >= need)
    assert reached - STEP_AT < 3, f"the count reached {need} only at {reached}: {ups}"


def without_retract(tmp_path: Path) -> str:
    """The shipped config, with the background worker's `retract_seconds` taken out."""
    config = yaml.safe_load(Path(CONFIG).read_text())
    del config["workloads"]["wk-pl-background"]["behavior"]["scale_down"]["retract_seconds"]
    path = tmp_path / "without-retract.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_the_worker_follows_steps_at_the_first_read_that_shows_them() -> None:
    # 15 minutes flat, then a step up of 1.5 workers' worth every minute for 10 minutes:
    # traffic counted per minute moves like this.
    steps = Trace("steps", (100.0,) * STEP_AT + tuple(
        100.0 + 30.0 * k for k in range(1, 11) for _ in range(60)) + (400.0,) * 300, 1)
    _, model = run(CONFIG, steps, "worker")
    assert len(model.scores.reactions) >= 10
    # At the first read after a step (1 s apart, each over the last 1 s): within poll + 1 s.
    assert max(model.scores.reactions) <= 2.0, sorted(model.scores.reactions)


def test_the_worker_takes_back_the_workers_of_a_burst_that_passed(tmp_path: Path) -> None:
    # 10 minutes flat, then 2 s bursts of 3 times the base every 37 s for 20 minutes
    bursts = Trace("bursts", tuple(300.0 if t > 600 and t % 37 < 2 else 100.0
                                   for t in range(1800)), 1)
    _, model = run(CONFIG, bursts, "worker")
    _, held = run(without_retract(tmp_path), bursts, "worker")
    log = [(at, old, new) for at, old, new in model.scale_log if at > 600]
    ups = [i for i, (_, old, new) in enumerate(log) if new > old]
    assert len(ups) >= 30, "each burst is scaled for at its first read"
    for i in ups:
        # The next reads no longer show it: the workers go within a few seconds, long before
        # they would be ready (16 s at the earliest), not after the 15 s window.
        at, _, new = log[i]
        assert i + 1 < len(log) and log[i + 1][2] < new and log[i + 1][0] - at < 4, log[i:i + 2]
    # Held for the window instead, each burst's workers cost far more.
    assert model.scores.replica_seconds < 0.8 * held.scores.replica_seconds, (
        model.scores.replica_seconds, held.scores.replica_seconds)
