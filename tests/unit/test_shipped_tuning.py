"""The shipped policies, replayed on the simulated cluster: what their tuning does with a shape
of traffic, asserted on the scale requests the daemon makes."""

from __future__ import annotations

import math
from pathlib import Path

from autoscaler.bench.contenders import run_ours
from autoscaler.bench.scenario import build_setup
from autoscaler.config import load_config
from autoscaler.sim.traces import Trace

CONFIG = str(Path(__file__).resolve().parents[2] / "policies" / "tracardi.yaml")
STEP_AT = 900


def replay(trace: Trace, scenario: str) -> tuple[int, list[tuple[float, int, int]]]:
    """The count the trace's peak needs, and the scale-ups from `STEP_AT` on, (at, old, new)."""
    loaded = load_config(CONFIG)
    setup = build_setup(loaded, trace, scenario, peak_replicas=20)
    model = setup.model(seed=1)
    run_ours(loaded, setup, model)
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
    # Each 2 s read moves the absorb rule's 8 s in-rate further up; no scale-up period makes
    # the count wait for the HPA's doubling (1 -> 5 -> 10 -> 20 took 32.5 s).
    reached = next(at for at, _, new in ups if new >= need)
    assert reached - STEP_AT < 10, f"the count reached {need} only at {reached}: {ups}"
