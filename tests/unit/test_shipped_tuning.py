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
    # Each 2 s read moves the absorb rule's 8 s in-rate further up; no scale-up period makes
    # the count wait for the HPA's doubling (1 -> 5 -> 10 -> 20 took 32.5 s).
    reached = next(at for at, _, new in ups if new >= need)
    assert reached - STEP_AT < 10, f"the count reached {need} only at {reached}: {ups}"


def without_trust(tmp_path: Path) -> str:
    """The shipped config, with the background worker's `trust_seconds` taken out."""
    config = yaml.safe_load(Path(CONFIG).read_text())
    del config["workloads"]["wk-pl-background"]["policies"][0]["trust_seconds"]
    path = tmp_path / "without-trust.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def replay_worker(config: str, trace: Trace) -> tuple[list[float], list[tuple[float, int, int]]]:
    """The worker's reactions (s) and its scale-ups, (at, old, new)."""
    _, model = run(config, trace, "worker")
    return model.scores.reactions, [(at, old, new) for at, old, new in model.scale_log
                                    if new > old]


def test_the_worker_follows_steps_that_last_at_the_first_read_that_shows_them(
        tmp_path: Path) -> None:
    # 15 minutes flat, then a step up of 1.5 workers' worth every minute for 10 minutes:
    # traffic counted per minute moves like this.
    steps = Trace("steps", (100.0,) * STEP_AT + tuple(
        100.0 + 30.0 * k for k in range(1, 11) for _ in range(60)) + (400.0,) * 300, 1)
    reactions, _ = replay_worker(CONFIG, steps)
    assert len(reactions) >= 10
    # At the first read after a step (1 s apart, each over the last 1 s): within poll + 1 s.
    assert max(reactions) <= 2.0, sorted(reactions)
    # Without trust, each step waits for the reads of persist_seconds (4 s) to show it.
    slower, _ = replay_worker(without_trust(tmp_path), steps)
    assert max(slower) > 4.0


def test_the_worker_waits_out_bursts_of_a_few_seconds_once_it_has_seen_them_pass(
        tmp_path: Path) -> None:
    # 10 minutes flat, then 2 s bursts of 1.6 times the base every 37 s for 20 minutes
    bursts = Trace("bursts", tuple(160.0 if t > 600 and t % 37 < 2 else 100.0
                                   for t in range(1800)), 1)
    _, ups = replay_worker(CONFIG, bursts)
    _, untrusting = replay_worker(without_trust(tmp_path), bursts)
    # The first burst has no jump before it to judge by: it is trusted (a drift), and sized for.
    first = 37 * (600 // 37 + 1)  # 629
    assert ups[0][0] < first + 2 and ups[0][2] > untrusting[0][2]
    # Every burst after it is judged by the ones before, which passed: sized as without trust.
    assert ups[1:] == untrusting[1:] and len(ups) > 10
