"""The `healing` scenario of the benchmark: injected faults in the simulator, ours against
liveness probes, and the Done-when targets of issue 6 measured on the real daemon."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import logging
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import structlog
from shared_data import require_shared

from autoscaler import daemon as daemon_module
from autoscaler.bench.contenders import model_adapters
from autoscaler.bench.healing import (
    CRASH_PHASE_SECONDS,
    OUTAGE_SECONDS,
    HealingSetup,
    build_healing,
    run_healing,
    steady_segment,
)
from autoscaler.bench.runner import Job, jobs_for, run_job, table, write_json
from autoscaler.config import LoadedConfig, load_config, parse_config
from autoscaler.daemon import Daemon
from autoscaler.engine.healing import SUSPICION_MARGIN_SECONDS, scale_down_hold
from autoscaler.model import Decision
from autoscaler.sim.clock import run_virtual
from autoscaler.sim.model import (
    KUBELET_BACKOFF_SECONDS,
    RECEIVER_QUEUE,
    ClusterModel,
    Fault,
    FaultKind,
    Outage,
)
from autoscaler.sim.traces import Trace, load_trace, shared_traces_dir
from autoscaler.telemetry import Telemetry, configure_logging

CONFIG = str(Path(__file__).resolve().parents[2] / "policies" / "tracardi.yaml")
SEED = 1


@pytest.fixture(scope="module", autouse=True)
def _quiet_logs() -> Iterator[None]:
    saved = structlog.get_config()
    configure_logging(json=True, level=logging.ERROR)
    yield
    structlog.configure(**saved)


@pytest.fixture(scope="module")
def loaded() -> LoadedConfig:
    return load_config(CONFIG)


def constant(rate: float = 100.0, seconds: int = 3600) -> Trace:
    return Trace("constant", (rate,) * seconds, 1)


# ------------------------------------------------------------------ the model's injections
def worker_model(*, faults: tuple[Fault, ...] = (), outages: tuple[Outage, ...] = (),
                 probe_requires: tuple[str, ...] = (), replicas: int = 4) -> ClusterModel:
    return ClusterModel(trace=constant(100.0, 2000), kind="worker", workload="wk",
                        replicas=replicas, capacity=50.0, outages=outages, seed=3, faults=faults,
                        probe_requires=probe_requires)


def test_hung_fault_fails_one_pods_probe_exactly_on_time() -> None:
    model = worker_model(faults=(Fault(FaultKind.HUNG, 300.5),))
    model.advance(300.4)
    assert not any(p.hung for p in model.deployment.pods)
    model.advance(300.5)
    hung = [p for p in model.deployment.pods if p.hung]
    assert len(hung) == 1 and hung[0].fault == FaultKind.HUNG and hung[0].ready
    [inj] = model.scores.injections
    assert (inj.kind, inj.at, inj.pod) == (FaultKind.HUNG, 300.5, hung[0].name)
    model.advance(400)
    assert hung[0].out_rate > 0  # a hung worker's probe fails; it still consumes


def test_stuck_consumer_holds_its_messages_until_it_goes_away() -> None:
    model = worker_model(faults=(Fault(FaultKind.STUCK, 200.0),))
    model.advance(260)
    [stuck] = [p for p in model.deployment.pods if p.stuck]
    others = [p for p in model.deployment.pods if p is not stuck]
    assert stuck.ready and stuck.out_rate == 0.0
    assert all(p.out_rate > 0 for p in others)
    assert stuck.held == pytest.approx(min(RECEIVER_QUEUE, 60 * 100.0 / 4))
    assert model.queue >= stuck.held > 0  # the held messages are backlog
    assert model.restart(stuck.name, at=300.0)
    model.advance(340)
    assert model.queue < 1.0  # redelivered and drained by the others
    [inj] = model.scores.injections
    assert inj.restarted_at == 300.0
    assert [(r.pod, r.fault, r.in_place) for r in model.scores.restart_log] == [
        (stuck.name, "stuck", False)]


def test_a_stuck_consumer_is_seen_from_the_first_message_it_takes() -> None:
    """Stuck while nothing arrives, it cannot be told from an idle consumer until work comes:
    `work_at` is that moment, the injection time when work is flowing."""
    idle_gap = Trace("gap", (100.0,) * 300 + (0.0,) * 100 + (100.0,) * 300, 1)
    model = ClusterModel(trace=idle_gap, kind="worker", workload="wk", replicas=4,
                         capacity=50.0, seed=3, faults=(Fault(FaultKind.STUCK, 310.5),
                                                        Fault(FaultKind.STUCK, 500.5)))
    model.advance(399)
    assert [i.work_at for i in model.scores.injections] == [None]
    model.advance(600)
    first, second = model.scores.injections
    assert first.work_at == 400.0 and second.work_at == second.at


def test_outage_fails_every_probe_while_it_lasts() -> None:
    model = worker_model(outages=(Outage("elasticsearch", 100.0, 200.0),),
                         probe_requires=("elasticsearch",))
    model.advance(150)
    assert all(p.hung for p in model.deployment.pods)
    assert all(p.out_rate == 0 for p in model.deployment.pods)
    assert model.restart(model.deployment.pods[0].name, at=150.0)
    assert model.deployment.pods[-1].hung  # a pod started during the outage fails too
    model.advance(200)
    assert not any(p.hung for p in model.deployment.pods)
    assert model.scores.restarts_during_outage == 1
    assert [r.fault for r in model.scores.restart_log] == [""]  # a false restart


def test_crash_phase_every_replacement_crashes_and_restarts_grow() -> None:
    model = worker_model(faults=(Fault(FaultKind.CRASH, 300.0, 600.0),))
    model.advance(300)
    [victim] = [p for p in model.deployment.pods if p.crashing]
    assert not victim.ready and victim.fault == FaultKind.CRASH
    model.advance(300 + KUBELET_BACKOFF_SECONDS + 21)  # restarts at +10, +30, +70 ...
    assert victim.restarts == 2 and not victim.ready
    assert model.restart(victim.name, at=400.0)
    replacement = model.deployment.pods[-1]
    model.advance(500)
    assert replacement.crashing and not replacement.ready and replacement.restarts >= 1
    model.advance(1300)  # the phase ended at 900: the next kubelet restart starts fine
    assert not replacement.crashing and replacement.ready and replacement.fault == ""
    assert model.scores.kubelet_crash_restarts == victim.restarts + replacement.restarts


def test_kill_restarts_the_container_in_place_with_the_kubelet_backoff() -> None:
    model = worker_model(faults=(Fault(FaultKind.HUNG, 200.0),))
    model.advance(200)
    [pod] = [p for p in model.deployment.pods if p.hung]
    assert model.kill(pod.name, at=210.0)
    assert pod in model.deployment.pods and pod.restarts == 1
    assert not pod.ready and not pod.hung and pod.fault == ""
    assert 210.0 + 16 <= pod.ready_at <= 210.0 + 24  # first restart: no back-off
    model.advance(240)
    assert pod.ready
    assert model.kill(pod.name, at=250.0)
    assert pod.ready_at >= 250.0 + 10 + 16  # second: 10 s back-off
    assert [(r.fault, r.in_place) for r in model.scores.restart_log] == [
        ("hung", True), ("", True)]
    assert model.scores.injections[0].restarted_at == 210.0


def test_a_fault_skips_when_no_healthy_pod_is_old_enough() -> None:
    model = worker_model(faults=(Fault(FaultKind.HUNG, 60.0),))
    model.advance(61)
    assert model.scores.faults_skipped == [Fault(FaultKind.HUNG, 60.0)]
    assert not model.scores.injections


def test_a_model_without_faults_keeps_its_old_behaviour() -> None:
    model = worker_model()
    model.advance(100)
    model.scale(2, at=100.0)
    # without faults the scale-down keeps its old order (oldest ready first) and nothing is
    # marked; the healing scenario uses the ReplicaSet controller's (newest first)
    assert [p.name for p in model.deployment.pods] == ["wk-00003", "wk-00004"]
    assert not model.scores.restart_log and not model.scores.injections


# ------------------------------------------------------------------ the scenario set-up
def test_healing_setup_is_seeded_and_spaced_by_the_budget_window(loaded: LoadedConfig) -> None:
    hs = build_healing(loaded, constant(), peak_replicas=20, seed=SEED)
    assert hs == build_healing(loaded, constant(), peak_replicas=20, seed=SEED)
    assert hs != build_healing(loaded, constant(), peak_replicas=20, seed=SEED + 1)
    spec = hs.setup.spec
    healing = spec.settings.healing
    assert spec.name == "wk-pl-background" and healing.consumer_source == "functions"
    # the shipped worker has no HTTP probe: the scenario's copy uses the defaults
    assert hs.http_probe_added and healing.http_probe is not None
    assert (healing.http_probe.period_seconds, healing.http_probe.failure_threshold) == (10, 3)
    kinds = [f.kind for f in hs.faults]
    assert sorted(kinds) == sorted([FaultKind.HUNG] * 4 + [FaultKind.STUCK] * 4 +
                                   [FaultKind.CRASH])
    times = [f.at for f in hs.faults]
    assert times == sorted(times)
    assert all(b - a > healing.window_seconds + healing.stuck_consumer_seconds
               for a, b in itertools.pairwise(times))
    assert hs.outage.dependency == "elasticsearch"
    assert hs.outage.end - hs.outage.start == OUTAGE_SECONDS
    assert not any(hs.outage.start - 300 <= t <= hs.outage.end + 600 for t in times)
    assert hs.crash.seconds == CRASH_PHASE_SECONDS
    assert hs.setup.trace.duration >= hs.crash.at + hs.crash.seconds + 1200
    # the segment's mean needs 0.4 * peak_replicas pods
    mean = sum(hs.setup.trace.rates) / hs.setup.trace.duration
    assert mean == pytest.approx(0.4 * 20 * hs.setup.capacity)


def test_steady_segment_avoids_idle_seconds_and_repeats_short_traces() -> None:
    rates = (0.0,) * 100 + tuple(10.0 + (i % 7) for i in range(300)) + (50.0, 0.0) * 100
    start, segment = steady_segment(Trace("t", rates, 1), 120)
    assert start in (120, 180, 240) and min(segment) > 0
    start, segment = steady_segment(Trace("t", (1.0, 2.0), 1), 300)
    assert len(segment) == 300 and start == 0


# ------------------------------------------------------------------ ours against liveness
@pytest.fixture(scope="module")
def bench() -> dict[str, dict[str, Any]]:
    """Both contenders through the runner, as `bench --scenario healing` runs them."""
    jobs = [j for j in jobs_for(CONFIG, ["generated"], ["healing"], peak_replicas=20,
                                seed=SEED, plot_dir=None)]
    assert [j.contender for j in jobs] == ["ours", "liveness"]
    return {j.contender: run_job(j) for j in jobs}


@pytest.fixture(scope="module")
def steady(loaded: LoadedConfig) -> tuple[HealingSetup, dict[str, Any]]:
    """ours on a constant demand: nothing but the faults moves the scaler."""
    hs = build_healing(loaded, constant(), peak_replicas=20, seed=SEED)
    _, scores = run_healing(loaded, hs, "ours", seed=SEED)
    return hs, scores


def test_bench_rows_and_table(bench: dict[str, dict[str, Any]]) -> None:
    text = table(list(bench.values()))
    assert "healing: faults injected into the worker" in text
    for key in ("detect_to_restart_p50_s", "detect_to_restart_p99_s", "false_restarts",
                "restarts_during_outage", "breaker_opened", "restarts"):
        assert key in bench["ours"] and key in bench["liveness"]
    assert bench["ours"]["scenario"] == "healing" and bench["ours"]["duration_s"] >= 10_800


def test_ours_restarts_every_sick_pod_in_time(bench: dict[str, dict[str, Any]],
                                              steady: tuple[HealingSetup, dict[str, Any]]
                                              ) -> None:
    hs, steady_scores = steady
    probe = hs.setup.spec.settings.healing.http_probe
    assert probe is not None
    limit = probe.period_seconds * probe.failure_threshold + 2
    for r in (bench["ours"], steady_scores):
        assert r["faults_injected"] == 8 and r["faults_skipped"] == 0
        assert r["faults_restarted"] == 8, r
        assert r["hung_detect_p99_s"] <= limit, r


def test_ours_restarts_stuck_consumers_within_the_probe_bound(
        bench: dict[str, dict[str, Any]], steady: tuple[HealingSetup, dict[str, Any]]) -> None:
    """Issue 6: stuck consumers too within `period * failure_threshold + 2 s` of the probe."""
    hs, steady_scores = steady
    probe = hs.setup.spec.settings.healing.http_probe
    assert probe is not None
    limit = probe.period_seconds * probe.failure_threshold + 2
    for r in (bench["ours"], steady_scores):
        assert r["stuck_detect_p99_s"] <= limit, r
        assert r["faults_scaled_away"] == 0, r


def test_ours_restarts_stuck_consumers_within_the_limit_and_a_poll(
        bench: dict[str, dict[str, Any]], loaded: LoadedConfig) -> None:
    spec = build_healing(loaded, constant(), peak_replicas=20, seed=SEED).setup.spec
    poll = loaded.config.sources["functions"].poll_seconds
    limit = spec.settings.healing.stuck_consumer_seconds + poll + 2
    assert bench["ours"]["stuck_detect_p99_s"] <= limit


def test_stuck_consumers_on_steady_demand_within_the_limit_and_a_poll(
        steady: tuple[HealingSetup, dict[str, Any]], loaded: LoadedConfig) -> None:
    hs, scores = steady
    poll = loaded.config.sources["functions"].poll_seconds
    limit = hs.setup.spec.settings.healing.stuck_consumer_seconds + poll + 2
    assert scores["stuck_detect_p99_s"] <= limit


def test_ours_restarts_nothing_during_the_outage(
        bench: dict[str, dict[str, Any]], steady: tuple[HealingSetup, dict[str, Any]]) -> None:
    for r in (bench["ours"], steady[1]):
        assert r["restarts_during_outage"] == 0
    assert bench["ours"]["actions_during_outage"] == 0  # and no scaling either


def test_ours_never_restarts_healthy_pods(steady: tuple[HealingSetup, dict[str, Any]]) -> None:
    assert steady[1]["false_restarts"] == 0


def test_ours_never_restarts_healthy_pods_in_the_scaled_run(
        bench: dict[str, dict[str, Any]]) -> None:
    assert bench["ours"]["false_restarts"] == 0


def test_ours_opens_the_breaker_after_threshold_attempts_and_stops(
        steady: tuple[HealingSetup, dict[str, Any]]) -> None:
    hs, scores = steady
    threshold = hs.setup.spec.settings.healing.breaker_threshold
    assert scores["breaker_opened"] == 1
    assert scores["crash_attempts_before_breaker"] == threshold
    assert scores["crash_restarts_while_breaker_open"] == 0
    assert scores["kubelet_crash_restarts"] > 0  # the kubelet keeps trying, ours does not


def test_ours_never_restarts_the_crash_while_the_breaker_is_open_in_the_scaled_run(
        bench: dict[str, dict[str, Any]]) -> None:
    # None would mean the breaker never opened, and so proves nothing.
    assert bench["ours"]["breaker_opened"] >= 1
    assert bench["ours"]["crash_restarts_while_breaker_open"] == 0


SURGE = shared_traces_dir() / "nasa_sts70_launch_surge.csv"


def test_scaled_run_opens_the_breaker_after_threshold_attempts(loaded: LoadedConfig) -> None:
    hs = build_healing(loaded, load_trace(require_shared(SURGE)), peak_replicas=20, seed=SEED)
    _, scores = run_healing(loaded, hs, "ours", seed=SEED)
    assert scores["breaker_opened"] >= 1
    assert scores["crash_attempts_before_breaker"] == \
        hs.setup.spec.settings.healing.breaker_threshold


AZURE = shared_traces_dir() / "azure_llm_code_bursty.csv"


def test_bursty_run_heals_before_scaling_away(loaded: LoadedConfig) -> None:
    """On the bursty trace the scaler keeps removing pods: every sick pod is still restarted,
    and a stuck consumer within the probe bound of the first message it took."""
    hs = build_healing(loaded, load_trace(require_shared(AZURE)), peak_replicas=20, seed=SEED)
    _, scores = run_healing(loaded, hs, "ours", seed=SEED)
    assert (scores["faults_restarted"], scores["faults_scaled_away"]) == (8, 0)
    assert scores["false_restarts"] == 0 and scores["restarts_during_outage"] == 0
    assert scores["hung_detect_p99_s"] <= 32 and scores["stuck_from_work_p99_s"] <= 32


def test_liveness_restarts_during_the_outage_and_cannot_see_stuck_consumers(
        bench: dict[str, dict[str, Any]]) -> None:
    live = bench["liveness"]
    assert live["breaker_opened"] == 0
    assert live["restarts_during_outage"] > 0
    assert live["false_restarts"] > 0
    # hung pods: same probe, same period and threshold
    assert live["hung_detect_p99_s"] <= 32
    # stuck consumers: only restarted by accident (the outage's restarts) or never
    assert live["faults_missed"] >= 1
    assert live["stuck_detect_p50_s"] is None or live["stuck_detect_p50_s"] > 600
    # a crash-looping container is restarted by the kubelet for the whole phase
    assert live["crash_restarts"] >= math.floor(CRASH_PHASE_SECONDS / 300)


def test_healing_runs_are_deterministic(bench: dict[str, dict[str, Any]]) -> None:
    job = Job(config=CONFIG, trace="generated", scenario="healing", contender="liveness",
              target=None, peak_replicas=20, seed=SEED)
    again = run_job(dataclasses.replace(job))
    strip = {k: v for k, v in again.items() if k != "wall_s"}
    assert strip == {k: v for k, v in bench["liveness"].items() if k != "wall_s"}


# ------------------------------------------------------------------ scale-down held for a suspicion
DROP_CONFIG = """
daemon: {namespace: tracardi}
sources:
  functions: {kind: pulsar, admin_url: "http://pulsar:8080", tenant: t, namespace: system,
              topic: functions, subscription: s, poll_seconds: 2}
workloads:
  wk:
    min: 1
    max: 10
    policies: [{name: backlog, source: functions, msgs_per_second: 50, drain_seconds: 30}]
    behavior:
      scale_down:
        stabilization_window_seconds: 0
        policies: [{type: Percent, value: 100, period_seconds: 15}]
    healing: {consumer_source: functions, min_available: 1}
"""
STUCK_AT = 595.0


def demand_drop_with_a_stuck_consumer() -> tuple[ClusterModel, list[tuple[float, Decision]]]:
    """A consumer gets stuck 5 s before the demand falls from 8 pods' worth to one: the scaler
    wants to remove 9 of 10 pods at once while the healer is still counting reads."""
    loaded = parse_config(DROP_CONFIG)
    spec = loaded.workloads[0]
    trace = Trace("drop", (400.0,) * 600 + (30.0,) * 400, 1)
    model = ClusterModel(trace=trace, kind="worker", workload=spec.deployment,
                         namespace=spec.namespace, replicas=10, capacity=50.0, seed=1,
                         faults=(Fault(FaultKind.STUCK, STUCK_AT),))
    daemon = Daemon(loaded, model_adapters(loaded, model), telemetry=Telemetry(),
                    check_conflicts=False)
    decisions: list[tuple[float, Decision]] = []
    daemon.on_decision = lambda decision, _status: decisions.append(
        (asyncio.get_running_loop().time(), decision))

    async def main() -> None:
        task = asyncio.create_task(daemon.run())
        await asyncio.sleep(STUCK_AT)
        model.advance(STUCK_AT)
        await asyncio.sleep(trace.duration - STUCK_AT)
        daemon.stop()
        await task

    run_virtual(main())
    model.finish()
    return model, decisions


def test_scale_down_waits_for_a_maturing_stuck_consumer() -> None:
    model, decisions = demand_drop_with_a_stuck_consumer()
    [injection] = model.scores.injections
    assert injection.removed_at is None
    assert injection.restarted_at is not None and injection.restarted_at - STUCK_AT <= 32
    held = [at for at, d in decisions if d.reasons[0].startswith(
        f"ScaleDownHeld: {injection.pod} may need a restart (StuckConsumer")]
    assert held
    # from the first read after the fault, never past the stuck limit and the margin
    poll = 2.0
    assert all(STUCK_AT < at < STUCK_AT + poll + 20 + SUSPICION_MARGIN_SECONDS for at in held)
    # then the replacement starts (held too), and the scale-down goes ahead
    assert model.deployment.replicas == 1
    assert [r.fault for r in model.scores.restart_log] == ["stuck"]


def test_without_the_hold_the_stuck_consumer_is_scaled_away(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The control for the test above: only the restart-in-flight hold, as before."""
    monkeypatch.setattr(daemon_module, "scale_down_hold",
                        lambda last, memory, **kw: scale_down_hold(None, memory, **kw))
    model, _ = demand_drop_with_a_stuck_consumer()
    [injection] = model.scores.injections
    assert injection.restarted_at is None and injection.removed_at is not None


def test_the_bench_json_goes_into_a_folder_not_made_yet(tmp_path: Path) -> None:
    out = tmp_path / "out" / "chaos.json"
    write_json([{"trace": "t", "scenario": "s", "violations": math.inf}], str(out))
    assert json.loads(out.read_text()) == {
        "runs": [{"trace": "t", "scenario": "s", "violations": "inf"}]}
