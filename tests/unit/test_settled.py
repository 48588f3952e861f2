"""A settled evaluation is skipped only while nothing it read has changed, and skipping never
changes what the daemon does: the same replays with and without skipping scale identically."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import autoscaler.daemon as daemon_module
from autoscaler.bench.contenders import run_ours
from autoscaler.bench.scenario import build_setup
from autoscaler.config import load_config
from autoscaler.engine.healing import (
    BreakerState,
    HealingMemory,
    HealingPlan,
    ProbeRecord,
    healing_quiet,
)
from autoscaler.engine.settled import Settled, settle, unchanged
from autoscaler.model import (
    Action,
    ConsumerStat,
    Decision,
    DependencyState,
    Health,
    PodInfo,
    Recommendation,
    Signal,
    WorkloadStatus,
)
from autoscaler.sim.traces import Trace, generated_trace

NOW = 1000.0
PODS = (PodInfo("w-1", ip="10.0.0.1"), PodInfo("w-2", ip="10.0.0.2"))
STATUS = WorkloadStatus("w", "ns", replicas=2, ready_replicas=2, resource_version="7", pods=PODS)
UP = DependencyState("pulsar", Health.UP, "ok")
WATCHED = ("src.backlog", "src.in_rate")
SUBSCRIPTION = ((ConsumerStat("c-1", "10.0.0.1:1", 5.0),), 0.0)


def _decision(action: Action = Action.HOLD, desired: int = 2, *recs: Recommendation) -> Decision:
    recs = recs or (Recommendation(2, "backlog", "backlog", settled=True),)
    return Decision("w", "ns", action, 2, desired, ("why",), recs)


def _settle(decision: Decision | None = None, **overrides: Any) -> Settled | None:
    args: dict[str, Any] = {
        "policies": 1, "min_replicas": 1, "max_replicas": 10, "status": STATUS, "version": 5,
        "dependencies": (UP,),
        "watched": WATCHED, "needed": ("src.backlog",), "healing_quiet": True,
        "consumers": SUBSCRIPTION}
    return settle(decision or _decision(), **(args | overrides))


def _unchanged(settled: Settled | None, **overrides: Any) -> bool:
    args: dict[str, Any] = {
        "status": STATUS, "dependencies": (UP,), "changed": {"src.backlog": 3, "src.in_rate": 5},
        "latest": {"src.backlog": Signal("src.backlog", 10.0, NOW - 1)},
        "staleness": {"src.backlog": 10.0}, "default_stale": 90.0, "now": NOW,
        "probes": {}, "consumers": SUBSCRIPTION}
    return unchanged(settled, **(args | overrides))


def test_a_settled_evaluation_with_nothing_changed_is_skipped() -> None:
    assert _unchanged(_settle())


@pytest.mark.parametrize("proposal, minimum, maximum", [
    pytest.param(0, 2, 10, id="below-min-held-at-min"),
    pytest.param(12, 1, 2, id="above-max-held-at-max"),
])
def test_a_proposal_beyond_the_bounds_held_at_the_bound_is_settled(
        proposal: int, minimum: int, maximum: int) -> None:
    decision = _decision(Action.HOLD, 2, Recommendation(proposal, "x", "backlog", settled=True))
    settled = _settle(decision, min_replicas=minimum, max_replicas=maximum)
    assert settled is not None and settled.recommended == proposal


@pytest.mark.parametrize("decision, overrides", [
    pytest.param(_decision(Action.SCALE, 3), {}, id="it-scaled"),
    pytest.param(_decision(Action.HOLD, 2, Recommendation(1, "down", "backlog", settled=True)),
                 {}, id="stabilized-above-the-proposal"),
    pytest.param(_decision(Action.HOLD, 2, Recommendation(2, "trend", "request-rate")), {},
                 id="proposal-depends-on-history"),
    pytest.param(_decision(), {"policies": 2}, id="a-policy-proposed-nothing"),
    pytest.param(_decision(), {"healing_quiet": False}, id="the-healer-watches-something"),
    pytest.param(_decision(), {"watched": None}, id="a-signal-without-a-source"),
    pytest.param(_decision(Action.FREEZE), {}, id="frozen"),
])
def test_evaluations_that_time_could_change_are_not_settled(decision: Decision,
                                                           overrides: dict[str, Any]) -> None:
    assert _settle(decision, **overrides) is None


@pytest.mark.parametrize("overrides", [
    pytest.param({"status": dataclasses.replace(STATUS, resource_version="8")}, id="deployment"),
    pytest.param({"status": dataclasses.replace(
        STATUS, pods=(PODS[0], dataclasses.replace(PODS[1], ready=False)))}, id="a-pod"),
    pytest.param({"dependencies": (dataclasses.replace(UP, failures=1),)}, id="dependency"),
    pytest.param({"changed": {"src.backlog": 3, "src.in_rate": 6}}, id="a-watched-field"),
    pytest.param({"changed": {"src.backlog": 3}}, id="a-field-never-read"),
    pytest.param({"latest": {"src.backlog": Signal("src.backlog", 10.0, NOW - 11)}},
                 id="a-needed-signal-grew-stale"),
    pytest.param({"latest": {}}, id="a-needed-signal-is-gone"),
    pytest.param({"probes": {"w-1": ProbeRecord(1, "timeout")}}, id="an-app-probe-failed"),
    pytest.param({"consumers": ((ConsumerStat("c-1", "10.0.0.1:1", 0.0),), 0.0)},
                 id="a-consumer-stopped"),
])
def test_any_change_of_an_input_means_a_new_evaluation(overrides: dict[str, Any]) -> None:
    assert not _unchanged(_settle(), **overrides)


def test_nothing_settled_is_never_skipped() -> None:
    assert not _unchanged(None)


def _plan(**fields: Any) -> HealingPlan:
    base: dict[str, Any] = {"workload": "ns/w", "verdicts": (), "restart": None, "reasons": (),
                            "breaker": BreakerState.CLOSED, "memory": HealingMemory()}
    return HealingPlan(**(base | fields))


@pytest.mark.parametrize("plan, pods, probes, quiet", [
    pytest.param(_plan(), PODS, {}, True, id="all-well"),
    pytest.param(None, PODS, {}, False, id="never-planned"),
    pytest.param(_plan(breaker=BreakerState.OPEN), PODS, {}, False, id="breaker-open"),
    pytest.param(_plan(), (dataclasses.replace(PODS[0], ready=False),), {}, False,
                 id="a-pod-not-ready"),
    pytest.param(_plan(), (dataclasses.replace(PODS[0], waiting_reason="CrashLoopBackOff"),),
                 {}, False, id="a-pod-crash-looping"),
    pytest.param(_plan(), PODS, {"w-1": ProbeRecord(1, "timeout")}, False,
                 id="a-probe-failed-once"),
])
def test_healing_quiet(plan: HealingPlan | None, pods: tuple[PodInfo, ...],
                       probes: dict[str, ProbeRecord], quiet: bool) -> None:
    memory = plan.memory if plan else HealingMemory()
    assert healing_quiet(plan, memory, pods=pods, probes=probes) is quiet


# --------------------------------------------------------------------- the daemon, replayed
SCALE = daemon_module.Daemon._scale

#: Steps of steady traffic: a noisy trace's request rate never holds still, these do.
STEPS = Trace("steps", (200.0,) * 1800 + (600.0,) * 1800 + (100.0,) * 3600, 1)


def _replay(scenario: str, trace: Trace, monkeypatch: pytest.MonkeyPatch, *,
            skip: bool, config: str) -> tuple[list[tuple[float, int, int]], int]:
    """The scale requests (time, from, to) of ours on `trace`, and how many evaluations were
    skipped."""
    loaded = load_config(config)
    setup = build_setup(loaded, trace, scenario, peak_replicas=20)
    model = setup.model(seed=3)
    writes: list[tuple[float, int, int]] = []
    skipped = [0]

    async def recording(self: daemon_module.Daemon, state: Any, status: Any,
                        decision: Decision, **kw: Any) -> None:
        writes.append((self.a.clock.now(), decision.current, decision.desired))
        await SCALE(self, state, status, decision, **kw)

    def counting(*args: Any, **kwargs: Any) -> bool:
        hit = unchanged(*args, **kwargs)
        skipped[0] += hit
        return hit

    never: Callable[..., bool] = lambda *_a, **_k: False  # noqa: E731
    monkeypatch.setattr(daemon_module.Daemon, "_scale", recording)
    monkeypatch.setattr(daemon_module, "unchanged", counting if skip else never)
    run_ours(loaded, setup, model)
    return writes, skipped[0]


@pytest.fixture
def two_second_reads(tmp_path: Path) -> str:
    """The shipped policies with the Pulsar sources read every 2 s: the workers size for the
    newest in-rate, so their evaluations settle between two reads (a pod that became ready, the
    tick; on the throughput learned from saturated reads). Read every second, as shipped, each
    evaluation of a noisy trace follows a new read of its in-rate, and nothing is left to skip."""
    text = Path("policies/tracardi.yaml").read_text()
    path = tmp_path / "two-second-reads.yaml"
    path.write_text(re.sub(r"(poll|rate)_seconds: 1 ", r"\1_seconds: 2 ", text))
    return str(path)


@pytest.fixture
def without_cpu(tmp_path: Path) -> str:
    """The shipped policies with the API's capacity as stated: an evaluation that reads the
    pods' CPU (`learn_from_cpu`) reads a signal of no configured source, and never settles."""
    text = Path("policies/tracardi.yaml").read_text()
    path = tmp_path / "without-cpu.yaml"
    path.write_text(re.sub(r"learn_from_cpu: true", "learn_from_cpu: false", text))
    return str(path)


@pytest.mark.parametrize("scenario, trace, config", [
    pytest.param("api", STEPS, "without_cpu", id="api-steps"),
    pytest.param("worker", STEPS, "shipped", id="worker-steps"),
    pytest.param("worker", generated_trace(hours=2.0), "two_second_reads", id="worker-generated"),
    pytest.param("worker-outage", generated_trace(hours=2.0), "two_second_reads",
                 id="worker-outage-generated"),
])
def test_skipping_settled_evaluations_changes_no_decision(
        scenario: str, trace: Trace, config: str, request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch) -> None:
    # "shipped", or the name of the fixture that writes the config
    config = ("policies/tracardi.yaml" if config == "shipped"
              else request.getfixturevalue(config))
    with_skips, skipped = _replay(scenario, trace, monkeypatch, skip=True, config=config)
    without, _ = _replay(scenario, trace, monkeypatch, skip=False, config=config)
    assert skipped > 50  # the replay did skip, and often
    assert len(with_skips) > 5
    assert with_skips == without


def test_a_pods_version_alone_is_no_change_of_the_workload() -> None:
    # A label or an annotation written to a pod gives it a new resourceVersion and nothing the
    # engine reads: the settled workload's status is still the same.
    def status(version: str) -> WorkloadStatus:
        return WorkloadStatus("w", "ns", 1, 1, pods=(PodInfo("p", resource_version=version),))

    assert status("1") == status("2")
    assert status("1") != dataclasses.replace(status("1"), pods=(PodInfo("p", ready=False),))
