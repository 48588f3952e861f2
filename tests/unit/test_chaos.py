"""The chaos soak of issue 9: short soaks hold every invariant with faults of every kind, the
same seed gives the same run, and the checker fails on bad histories and on a broken daemon."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from autoscaler.bench import chaos
from autoscaler.bench.chaos import (
    QUIET_SECONDS,
    WARMUP_SECONDS,
    ChaosFault,
    ChaosJob,
    History,
    LeaseChange,
    LeaseRead,
    Mark,
    Read,
    Write,
    check,
    fault_kinds,
    invalid_config,
    recovery,
    run_chaos_job,
    run_soak,
    schedule,
)
from autoscaler.config import ConfigError, load_config
from autoscaler.daemon import LoopClock
from autoscaler.leader import LeaderElector
from autoscaler.sim.clock import run_virtual
from autoscaler.sim.kubestate import KubeState, LeaseSpec
from autoscaler.sim.leases import SimLeaseStore
from autoscaler.sim.model import Outage

CONFIG = str(Path(__file__).resolve().parents[2] / "policies" / "tracardi.yaml")
HOURS = 1.5  # enough for ~38 faults: the shuffled deck deals every kind at least once
PEAK = 6  # few pods keep the soaks fast; the 24 h soak runs with the bench's 20
DEPENDENCIES = ("elasticsearch", "mysql", "pulsar", "redis")


# ------------------------------------------------------------------ short soaks
@pytest.fixture(scope="module")
def soaks() -> dict[str, list[dict[str, Any]]]:
    """The worker at seed 1 and the API at seed 2: the chaos run and the fault-free run each."""
    return {kind: run_chaos_job(job(kind, seed)) for kind, seed in (("worker", 1), ("api", 2))}


def job(kind: str, seed: int, hours: float = HOURS) -> ChaosJob:
    return ChaosJob(config=CONFIG, trace="generated", kind=kind, seed=seed, hours=hours,
                    peak_replicas=PEAK)


@pytest.mark.parametrize("kind", ["worker", "api"])
def test_a_short_soak_holds_every_invariant_under_faults_of_every_kind(
        soaks: dict[str, list[dict[str, Any]]], kind: str) -> None:
    faulty, clean = soaks[kind]
    assert (faulty["faults"], clean["faults"]) == (True, False)
    assert faulty["invariant_violations"] == []
    assert clean["invariant_violations"] == []
    source_kind = "pulsar" if kind == "worker" else "prometheus"
    assert set(faulty["faults_injected"]) == set(fault_kinds(source_kind))
    assert clean["faults_injected"] == {}
    assert faulty["scale_actions"] > 0 and clean["scale_actions"] > 0
    # the Kubernetes faults met scale writes; without faults every write went through
    assert set(faulty["scale_requests"]) - {"done"}
    assert set(clean["scale_requests"]) == {"done"}


def test_the_same_seed_gives_the_same_faults_and_scores(
        soaks: dict[str, list[dict[str, Any]]]) -> None:
    api = job("api", 2)
    again = chaos.record(api, run_soak(api, with_faults=True), with_faults=True)
    first = soaks["api"][0]
    for key in ("faults_injected", "invariant_violations", "replica_seconds",
                "slo_violation_seconds", "scale_actions", "direction_changes"):
        assert again[key] == first[key], key


def test_the_schedule_is_seeded_and_deals_every_kind_between_warmup_and_quiet() -> None:
    def faults(seed: int) -> tuple[ChaosFault, ...]:
        return schedule(seed=seed, duration=24 * 3600, source="functions",
                        source_kind="pulsar", dependencies=DEPENDENCIES)

    day = faults(1)
    assert day == faults(1)
    assert day != faults(2)
    assert len(day) >= 500
    assert {f.kind for f in day} == set(fault_kinds("pulsar"))
    assert min(f.start for f in day) >= WARMUP_SECONDS
    assert max(f.end for f in day) <= 24 * 3600 - QUIET_SECONDS
    for kind in chaos.EXCLUSIVE:
        mine = [f for f in day if f.kind == kind]
        assert all(a.end < b.start for a, b in itertools.pairwise(mine)), kind


@pytest.mark.parametrize("variant", chaos.INVALID_CONFIGS)
def test_every_invalid_config_of_the_soak_is_rejected(variant: str, tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(invalid_config(Path(CONFIG).read_text(), variant))
    with pytest.raises(ConfigError):
        load_config(path)


# ------------------------------------------------------------------ the checker on histories
class Story:
    """A history told in order: every event gets the next sequence number."""

    def __init__(self) -> None:
        self.h = History(min_replicas=1, max_replicas=10, requires=("elasticsearch",),
                         grace={"elasticsearch": 3.0}, staleness=8.0, lease_duration=15.0,
                         renew_deadline=10.0)
        self.n = 0

    def _seq(self) -> int:
        self.n += 1
        return self.n

    def renew(self, who: str, t: float, holder: str | None = None) -> Story:
        holder = who if holder is None else holder
        self.h.lease_changes.append(LeaseChange(self._seq(), t, t, who, holder))
        return self

    def lease_read(self, who: str, t: float, holder: str) -> Story:
        self.h.lease_reads.setdefault(who, []).append(LeaseRead(self._seq(), t, holder))
        return self

    def read(self, who: str, t: float, *, bad: tuple[str, ...] = (),
             data_at: float | None = None) -> Story:
        self.h.reads.setdefault(who, []).append(
            Read(self._seq(), t, bad, t if data_at is None else data_at))
        return self

    def scale(self, who: str, t: float, old: int, new: int, outcome: str = "done") -> Story:
        self.h.marks.setdefault(who, []).append(Mark(self._seq(), t))
        self.h.writes.append(Write(self._seq(), t, who, "scale", old, new, outcome, done=t))
        return self

    def outage(self, start: float, end: float, dependency: str = "elasticsearch") -> Story:
        self.h.outages.append(Outage(dependency, start, end))
        return self

    def evict(self, who: str, t: float) -> Story:
        self.h.marks.setdefault(who, []).append(Mark(self._seq(), t))
        self.h.writes.append(Write(self._seq(), t, who, "evict", 3, 3, "done", done=t,
                                   pod="wk-00001"))
        return self


def good() -> Story:
    """A leads and scales up and down on fresh reads; B follows and never writes."""
    return (Story().renew("a", 0.0).read("a", 1.0).scale("a", 2.0, 3, 5)
            .renew("a", 2.0).read("a", 3.0).scale("a", 4.0, 5, 4))


def test_a_good_history_has_no_violation() -> None:
    story = good().outage(3.5, 60.0).outage(0.0, 60.0, "redis")  # 4.0 is within the grace
    story.h.replicas = (3, 3, 5, 5, 4)
    assert check(story.h) == []


def test_a_lease_handed_over_lets_the_next_holder_write() -> None:
    story = good().renew("b", 20.0).read("b", 21.0).scale("b", 22.0, 4, 6)
    assert check(story.h) == []


def test_a_displaced_holder_that_has_not_read_the_stolen_lease_is_not_flagged() -> None:
    story = (Story().renew("a", 0.0).renew("chaos", 1.0, holder="b").renew("b", 1.5)
             .read("a", 1.6).scale("a", 2.0, 3, 5).read("b", 2.5).scale("b", 3.0, 5, 6))
    assert check(story.h) == []


BAD: list[Any] = [
    pytest.param(lambda: good().scale("a", 5.0, 4, 11), "bounds", id="scale-above-max"),
    pytest.param(lambda: good().scale("a", 5.0, 4, 0), "bounds", id="scale-below-min"),
    pytest.param(lambda: dataclasses.replace(good().h, replicas=(3, 0, 0, 3)), "bounds",
                 id="replicas-leave-the-range"),
    pytest.param(lambda: good().outage(3.5, 60.0).scale("a", 8.0, 4, 6), "frozen",
                 id="scale-during-an-outage"),
    pytest.param(lambda: good().outage(3.5, 5.0).outage(5.0, 60.0).scale("a", 8.0, 4, 6),
                 "frozen", id="scale-during-back-to-back-outages"),
    pytest.param(lambda: good().outage(3.5, 60.0).evict("a", 8.0), "frozen",
                 id="restart-during-an-outage"),
    pytest.param(lambda: good().read("a", 5.0).scale("a", 5.5, 4, 4), "no-duplicate",
                 id="duplicate-write"),
    pytest.param(lambda: good().read("a", 5.0, bad=("functions.backlog",))
                 .scale("a", 5.5, 4, 3), "partial", id="scale-down-on-a-failed-read"),
    pytest.param(lambda: good().read("a", 5.0, data_at=-5.0).scale("a", 5.5, 4, 3),
                 "partial", id="scale-down-on-stale-values"),
    pytest.param(lambda: good().read("b", 5.0).scale("b", 5.5, 4, 5), "one-writer",
                 id="a-writer-without-the-lease"),
    pytest.param(lambda: good().read("a", 12.0).scale("a", 12.5, 4, 5), "one-writer",
                 id="a-writer-past-its-renew-deadline"),
    pytest.param(lambda: good().lease_read("a", 5.0, "b").scale("a", 5.5, 4, 5),
                 "one-writer", id="a-writer-that-saw-another-holder"),
    pytest.param(lambda: good().renew("b", 5.0).renew("a", 5.5)
                 .scale("b", 6.0, 4, 5).scale("a", 6.5, 5, 6), "one-writer",
                 id="two-writers-within-one-lease"),
]


@pytest.mark.parametrize(("story", "invariant"), BAD)
def test_the_checker_catches_a_bad_history(story: Any, invariant: str) -> None:
    built = story()
    found = check(built if isinstance(built, History) else built.h)
    assert {v.invariant for v in found} == {invariant}, found


def test_recovery_holds_within_the_tolerance_and_fails_outside() -> None:
    base = [10] * 2000
    near = [10] * 700 + [12] * 1300
    assert recovery(near, base, clear_at=0.0, end=2000) == []
    away = [10] * 700 + [20] * 600 + [10] * 700
    found = recovery(away, base, clear_at=0.0, end=2000)
    assert [(v.invariant, v.t) for v in found] == [("recovers", 700.0)]
    late = [20] * 650 + [10] * 1350  # off only within RECOVERY_SECONDS after the faults
    assert recovery(late, base, clear_at=100.0, end=2000) == []


# ------------------------------------------------------------------ the checker on a broken daemon
@pytest.fixture
def broken(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[None]:
    def ignore(*args: object, **kwargs: object) -> tuple[str, ...] | None:
        return () if request.param == "dependency_reasons" else None

    monkeypatch.setattr(f"autoscaler.engine.evaluate.{request.param}", ignore)
    if request.param == "dependency_reasons":  # the check just before a write asks it too
        monkeypatch.setattr("autoscaler.daemon.dependency_reasons", ignore)
    yield


@pytest.mark.parametrize(("broken", "fault", "invariant"), [
    pytest.param("dependency_reasons", ChaosFault("dependency-down", 600, 900,
                                                  target="elasticsearch"),
                 "frozen", id="gate-ignores-dependencies"),
    pytest.param("signal_reason", ChaosFault("source-http-500", 600, 900, target="functions"),
                 "partial", id="gate-ignores-failed-signals"),
], indirect=["broken"])
def test_the_soak_catches_a_daemon_that_breaks_the_rules(broken: None, fault: ChaosFault,
                                                        invariant: str) -> None:
    result = run_soak(job("worker", 3, hours=0.3), with_faults=True, faults=(fault,))
    assert invariant in {v.invariant for v in result.violations}, result.violations


# ------------------------------------------------------------------ the bug the soak found
def test_a_leader_that_reads_the_lease_stolen_stops_leading_at_once() -> None:
    """Seed 1's 24 h soak: a leader kept writing for up to its renew deadline after reading a
    lease record that named the other replica. Like client-go's IsLeader, it stops at that read."""

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        state = KubeState(clock=loop.time, wall=lambda: 1e9 + loop.time())
        store = SimLeaseStore(state, clock=LoopClock())
        a = LeaderElector(store, clock=LoopClock(), identity="a", namespace="ns", name="lease",
                          rng=random.Random(1))
        task = asyncio.create_task(a.run())
        try:
            await asyncio.sleep(1.0)
            assert a.is_leader()
            lease = state.get_lease("ns", "lease")
            state.update_lease("ns", "lease", LeaseSpec(holder="b", duration_seconds=15,
                                                        acquire_time=1e9, renew_time=1e9,
                                                        transitions=1),
                               resource_version=lease.resource_version)
            # Its next renew attempt reads the record within one retry period; its renew
            # deadline (10 s after its last renew) is still far.
            await asyncio.sleep(a.retry_period + 0.1)
            assert a.holder == "b"
            assert not a.is_leader()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    run_virtual(scenario())
