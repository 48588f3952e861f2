"""LeaderElector in virtual time (the simulator's loop) over the in-memory SimLeaseStore.

client-go's defaults throughout: 15 s lease, 10 s renew deadline, 2 s retry period. A follower
retries every 2 s * (1 + up to 1.2 jitter), so it notices a change within 4.4 s; after a killed
leader's last renew it acquires once a full lease has passed since it saw that renew, so the
hand-over takes the lease duration plus at most two follower polls.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import structlog

from autoscaler.config import LeaseSettings
from autoscaler.kube.errors import KubeError
from autoscaler.leader import LeaderElector
from autoscaler.ports import LeaseRecord, LeaseStore, WriteOutcome, WriteResult
from autoscaler.sim.clock import run_virtual
from autoscaler.sim.kubestate import KubeState
from autoscaler.sim.leases import SimLeaseStore

NS = "tracardi"
LEASE = "tracardi-autoscaler"
DURATION, DEADLINE, RETRY = 15.0, 10.0, 2.0
MAX_FOLLOWER_WAIT = RETRY * (1 + 1.2)
EPOCH = 1_700_000_000.0


class LoopClock:
    """`ports.Clock` on the running loop's time (virtual on the simulator's loop)."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class BreakableStore:
    """A LeaseStore in front of another that can start failing, and remembers when the last
    successful update was sent."""

    def __init__(self, inner: LeaseStore, clock: LoopClock) -> None:
        self.inner = inner
        self.clock = clock
        self.mode = "ok"
        self.last_done_sent = -1.0

    async def get(self, namespace: str, name: str) -> LeaseRecord | None:
        if self.mode == "get-raises":
            raise KubeError(503, "ServiceUnavailable", "etcd is down")
        return await self.inner.get(namespace, name)

    async def create(self, namespace: str, name: str, record: LeaseRecord) -> WriteResult:
        return await self.inner.create(namespace, name, record)

    async def update(self, namespace: str, name: str, record: LeaseRecord) -> WriteResult:
        sent = self.clock.now()
        if self.mode == "update-fails":
            return WriteResult(WriteOutcome.FAILED, "injected")
        if self.mode == "update-hangs":
            await asyncio.Event().wait()
        result = await self.inner.update(namespace, name, record)
        if result.outcome is WriteOutcome.DONE:
            self.last_done_sent = sent
        return result


def _virtual(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    run_virtual(test(), start=1000.0)


def _state() -> tuple[KubeState, SimLeaseStore, LoopClock]:
    clock = LoopClock()
    loop = asyncio.get_running_loop()
    state = KubeState(clock=loop.time, wall=lambda: EPOCH + loop.time())
    return state, SimLeaseStore(state, clock=clock), clock


def _elector(store: LeaseStore, clock: LoopClock, identity: str, **kwargs: Any) -> LeaderElector:
    loop = asyncio.get_running_loop()
    return LeaderElector(store, clock=clock, identity=identity, namespace=NS, name=LEASE,
                         lease_duration=DURATION, renew_deadline=DEADLINE, retry_period=RETRY,
                         wall=lambda: EPOCH + loop.time(), rng=random.Random(identity),
                         **kwargs)


async def _until(predicate: Callable[[], bool], limit: float, step: float = 0.05) -> float:
    """Virtual seconds until `predicate` holds; fails after `limit`."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not predicate():
        if loop.time() - start > limit:
            raise AssertionError(f"not within {limit} s")
        await asyncio.sleep(step)
    return loop.time() - start


async def _stop(*tasks: asyncio.Task[None]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def test_two_electors_exactly_one_leads_and_it_stays() -> None:
    async def scenario() -> None:
        _, store, clock = _state()
        a, b = _elector(store, clock, "a"), _elector(store, clock, "b")
        tasks = [asyncio.create_task(e.run()) for e in (a, b)]
        await _until(lambda: a.is_leader() or b.is_leader(), 1.0)
        first = a if a.is_leader() else b
        for _ in range(240):  # two virtual minutes
            await asyncio.sleep(0.5)
            assert [e.is_leader() for e in (a, b)].count(True) == 1
            assert first.is_leader()
        record = await store.get(NS, LEASE)
        assert record is not None
        assert (record.holder, record.transitions, record.duration_seconds) == (
            first.identity, 0, DURATION)
        assert {a.holder, b.holder} == {first.identity}
        await _stop(*tasks)

    _virtual(scenario)


def test_killed_leader_hands_over_within_the_lease_duration() -> None:
    async def scenario() -> None:
        _, store, clock = _state()
        a = _elector(store, clock, "a", release_on_cancel=False)
        task_a = asyncio.create_task(a.run())
        await _until(a.is_leader, 1.0)
        b = _elector(store, clock, "b")
        task_b = asyncio.create_task(b.run())
        await asyncio.sleep(7.3)
        before = await store.get(NS, LEASE)
        await _stop(task_a)  # killed: no release
        assert not a.is_leader()
        assert before is not None and before.holder == "a"

        handover = await _until(b.is_leader, DURATION + 2 * MAX_FOLLOWER_WAIT + 1)

        # B waits out a full lease from the poll that first saw A's last renew (up to one
        # follower wait after it), then acquires on its next poll (up to one more).
        assert DURATION - RETRY <= handover <= DURATION + 2 * MAX_FOLLOWER_WAIT
        record = await store.get(NS, LEASE)
        assert record is not None and (record.holder, record.transitions) == ("b", 1)
        await _stop(task_b)

    _virtual(scenario)


def test_graceful_stop_releases_the_lease_at_once() -> None:
    async def scenario() -> None:
        _, store, clock = _state()
        stopped: list[str] = []
        a = _elector(store, clock, "a", on_stopped_leading=lambda: stopped.append("a"))
        task_a = asyncio.create_task(a.run())
        await _until(a.is_leader, 1.0)
        b = _elector(store, clock, "b")
        task_b = asyncio.create_task(b.run())
        await asyncio.sleep(5)

        await _stop(task_a)

        assert stopped == ["a"] and not a.is_leader()
        released = await store.get(NS, LEASE)
        assert released is not None
        assert (released.holder, released.duration_seconds) == (None, 1.0)
        handover = await _until(b.is_leader, DURATION)
        assert handover <= MAX_FOLLOWER_WAIT
        await _stop(task_b)

    _virtual(scenario)


class Memory:
    """A `Handover`: the memo it writes, and the memos it was handed on taking the lease."""

    def __init__(self, memo: str) -> None:
        self.memo = memo
        self.taken: list[str] = []

    def leader_memo(self) -> str:
        return self.memo

    def take_over(self, memo: str) -> None:
        self.taken.append(memo)


@pytest.mark.parametrize("graceful", [pytest.param(True, id="released"),
                                      pytest.param(False, id="killed")])
def test_the_leaders_memo_passes_to_its_successor_with_the_lease(graceful: bool) -> None:
    async def scenario() -> None:
        _, store, clock = _state()
        a = _elector(store, clock, "a", release_on_cancel=graceful)
        a.handover = memory_a = Memory("a-1")
        task_a = asyncio.create_task(a.run())
        await _until(a.is_leader, 1.0)
        assert memory_a.taken == []  # a new Lease: no one to take anything over from
        b = _elector(store, clock, "b")
        b.handover = memory_b = Memory("b-1")
        task_b = asyncio.create_task(b.run())
        memory_a.memo = "a-2"  # written with the next renew
        await asyncio.sleep(5)
        record = await store.get(NS, LEASE)
        assert record is not None and record.memo == "a-2"
        assert memory_b.taken == []  # a standby takes nothing over

        await _stop(task_a)
        await _until(b.is_leader, DURATION + 2 * MAX_FOLLOWER_WAIT + 1)

        assert memory_b.taken == ["a-2"]
        taken = await store.get(NS, LEASE)
        # b's own memo from its first renew on; until then a's, so none is lost between
        assert taken is not None and taken.holder == "b" and taken.memo in ("a-2", "b-1")
        await asyncio.sleep(RETRY + 0.5)
        renewed = await store.get(NS, LEASE)
        assert renewed is not None and renewed.memo == "b-1"
        assert memory_b.taken == ["a-2"]  # taken over once, not at each renew
        await _stop(task_b)

    _virtual(scenario)


def test_a_leader_that_lapses_and_takes_its_lease_back_keeps_its_own_memory() -> None:
    """Its renews fail past the deadline (a restart it made since is in its memory, not in
    the Lease); it takes the Lease back, still in its name: nothing to take over."""
    async def scenario() -> None:
        _, inner, clock = _state()
        store = BreakableStore(inner, clock)
        a = _elector(store, clock, "a")
        a.handover = memory = Memory("a-1")
        task = asyncio.create_task(a.run())
        await _until(a.is_leader, 1.0)
        store.mode = "update-fails"
        memory.memo = "a-2"
        await _until(lambda: not a.is_leader(), DEADLINE + RETRY)
        store.mode = "ok"
        await _until(a.is_leader, DURATION + 2 * MAX_FOLLOWER_WAIT)
        assert memory.taken == []
        record = await store.get(NS, LEASE)
        assert record is not None and record.memo == "a-2"
        await _stop(task)

    _virtual(scenario)


def test_a_handover_that_fails_does_not_keep_the_replica_from_leading() -> None:
    class Broken(Memory):
        def take_over(self, memo: str) -> None:
            raise RuntimeError("cannot")

    async def scenario() -> None:
        _, store, clock = _state()
        await store.create(NS, LEASE, LeaseRecord(
            holder="gone", acquired_at=EPOCH, renewed_at=EPOCH, duration_seconds=1.0,
            transitions=0, resource_version="", memo="theirs"))
        a = _elector(store, clock, "a")
        a.handover = Broken("")
        task = asyncio.create_task(a.run())
        with structlog.testing.capture_logs() as logs:
            await _until(a.is_leader, 2 * DURATION)
        assert [e["error"] for e in logs if e["event"] == "handover_failed"] == [
            "RuntimeError: cannot"]
        await _stop(task)

    _virtual(scenario)


@pytest.mark.parametrize("mode", [
    pytest.param("update-fails", id="renew-refused"),
    pytest.param("update-hangs", id="renew-hangs"),
    pytest.param("get-raises", id="lease-unreadable"),
])
def test_failed_renewals_end_leadership_before_the_lease_can_expire(mode: str) -> None:
    async def scenario() -> None:
        _, shared, clock = _state()
        store_a = BreakableStore(shared, clock)
        events: list[tuple[str, float]] = []
        loop = asyncio.get_running_loop()
        a = _elector(store_a, clock, "a",
                     on_started_leading=lambda: events.append(("a-start", loop.time())),
                     on_stopped_leading=lambda: events.append(("a-stop", loop.time())))
        task_a = asyncio.create_task(a.run())
        await _until(a.is_leader, 1.0)
        b = _elector(shared, clock, "b")
        task_b = asyncio.create_task(b.run())
        await asyncio.sleep(6.1)
        assert store_a.last_done_sent > 0  # A has renewed at least once

        store_a.mode = mode
        renewed = store_a.last_done_sent
        await asyncio.sleep(renewed + DEADLINE - 0.1 - loop.time())
        assert a.is_leader()
        await asyncio.sleep(0.15)
        assert not a.is_leader()  # the instant the renew deadline passed
        assert ("a-stop", pytest.approx(renewed + DEADLINE, abs=0.01)) in events
        assert not b.is_leader()

        await _until(b.is_leader, DURATION)
        assert loop.time() >= renewed + DURATION  # B only after A's lease could expire
        assert not a.is_leader()
        await _stop(task_a, task_b)

    _virtual(scenario)


def test_a_leader_that_recovers_before_anyone_takes_over_leads_again() -> None:
    async def scenario() -> None:
        _, shared, clock = _state()
        store_a = BreakableStore(shared, clock)
        a = _elector(store_a, clock, "a")
        task_a = asyncio.create_task(a.run())
        await _until(a.is_leader, 1.0)
        store_a.mode = "update-fails"
        await _until(lambda: not a.is_leader(), DEADLINE + 1)
        store_a.mode = "ok"
        await _until(a.is_leader, 2 * MAX_FOLLOWER_WAIT)
        record = await shared.get(NS, LEASE)
        assert record is not None and (record.holder, record.transitions) == ("a", 0)
        await _stop(task_a)

    _virtual(scenario)


@pytest.mark.parametrize(("durations", "valid"), [
    pytest.param((15.0, 10.0, 2.0), True, id="client-go-defaults"),
    pytest.param((10.0, 10.0, 2.0), False, id="deadline-not-before-expiry"),
    pytest.param((15.0, 10.0, 10.0), False, id="retry-not-before-deadline"),
    pytest.param((15.0, 10.0, 0.0), False, id="zero-retry"),
])
def test_durations_are_checked(durations: tuple[float, float, float], valid: bool) -> None:
    async def scenario() -> None:
        _, store, clock = _state()
        duration, deadline, retry = durations

        def build() -> LeaderElector:
            return LeaderElector(store, clock=clock, identity="a", namespace=NS, name=LEASE,
                                 lease_duration=duration, renew_deadline=deadline,
                                 retry_period=retry)

        if valid:
            assert build().lease_duration == duration
        else:
            with pytest.raises(ValueError, match="retry_period < renew_deadline"):
                build()

    _virtual(scenario)


def test_from_settings_takes_client_go_defaults_and_the_daemon_namespace() -> None:
    async def scenario() -> None:
        _, store, clock = _state()
        elector = LeaderElector.from_settings(store, LeaseSettings(), clock=clock,
                                              identity="pod-1", namespace="tracardi")
        assert (elector.lease_duration, elector.renew_deadline, elector.retry_period) == (
            15.0, 10.0, 2.0)
        assert (elector.namespace, elector.name) == ("tracardi", "tracardi-autoscaler")

    _virtual(scenario)


def test_run_twice_is_refused() -> None:
    async def scenario() -> None:
        _, store, clock = _state()
        elector = _elector(store, clock, "a")
        task = asyncio.create_task(elector.run())
        await asyncio.sleep(0.1)
        with pytest.raises(RuntimeError, match="already running"):
            await elector.run()
        await _stop(task)

    _virtual(scenario)

