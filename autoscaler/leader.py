"""Leader election on a Lease, so that only one daemon replica writes to the cluster.

`LeaderElector` runs over the `LeaseStore` port: `kube/leases.py` (`KubeLeaseStore`, a
`coordination.k8s.io/v1` Lease) in the cluster, `sim/leases.py` (`SimLeaseStore`) in the
simulator and tests. The daemon starts `run()` as a task and asks `is_leader()` before every
write; followers keep evaluating in shadow.

It follows client-go's `leaderelection` package: the same record (holder, acquire and renew
times, duration, transitions), the same defaults (15 s lease, 10 s renew deadline, 2 s retry,
follower retries jittered by a factor of 1.2), expiry judged on the follower's own clock from
the moment it last saw the record change (never by comparing another host's timestamps), and
release on cancel (holder cleared, duration 1 s) so a successor takes over at once.

Why not `kubernetes_asyncio.leaderelection` (read in v36.1): it is not sound for this daemon.
- Its renew deadline does not bound an attempt: a renew call that hangs is awaited with no
  timeout, so the old leader keeps believing it leads while the lease expires for the others.
  Here every attempt races the deadline and `is_leader()` turns False the moment the deadline
  passes, measured from when the last successful renew was *sent*, so it is always
  `lease_duration - renew_deadline` (5 s by default) before anyone else can acquire.
- It exposes no "am I leader now?" answer, only a task it cancels after the renew loop gives up.
- It never releases the lease on shutdown, so a graceful restart waits a full lease duration.
- It reads `time.time()` (wall clock, jumps with NTP) for expiry and cannot take a virtual
  clock, so it cannot run in the simulator or be tested with a fake clock.
- It is tied to its own lock classes, not to our `LeaseStore` port, and it drops
  `leaseTransitions`; its config also rejects retry periods under one second.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import structlog

from autoscaler.config import LeaseSettings
from autoscaler.ports import Clock, Handover, LeaseRecord, LeaseStore, WriteOutcome

log = structlog.get_logger(__name__)

JITTER_FACTOR = 1.2
T = TypeVar("T")


class LeaderElector:
    """Acquires and renews one Lease as `identity`; `is_leader()` says whether to act now."""

    def __init__(self, store: LeaseStore, *, clock: Clock, identity: str, namespace: str,
                 name: str, lease_duration: float = 15.0, renew_deadline: float = 10.0,
                 retry_period: float = 2.0, wall: Callable[[], float] = time.time,
                 rng: random.Random | None = None, release_on_cancel: bool = True,
                 on_started_leading: Callable[[], None] | None = None,
                 on_stopped_leading: Callable[[], None] | None = None) -> None:
        if not identity:
            raise ValueError("identity must not be empty")
        if not 0 < retry_period < renew_deadline < lease_duration:
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")
        self._store = store
        self._clock = clock
        self.identity = identity
        self.namespace = namespace
        self.name = name
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        self._wall = wall
        self._rng = rng or random.Random()
        self._release_on_cancel = release_on_cancel
        self._on_started = on_started_leading
        self._on_stopped = on_stopped_leading
        #: Set while this replica leads; cleared when it stops.
        self.leading = asyncio.Event()
        self._renewed_at = -float("inf")
        self._observed: LeaseRecord | None = None
        self._observed_at = 0.0
        self._running = False
        #: Who hands over through the Lease (the daemon, set once it exists); None: nothing.
        self.handover: Handover | None = None
        #: This process has led: a Lease still in its name holds its own memo, older than its
        #: memory (a renew that failed may have missed a restart), so there is nothing to take.
        self._has_led = False

    @classmethod
    def from_settings(cls, store: LeaseStore, settings: LeaseSettings, *, clock: Clock,
                      identity: str, namespace: str, wall: Callable[[], float] = time.time,
                      on_started_leading: Callable[[], None] | None = None,
                      on_stopped_leading: Callable[[], None] | None = None) -> LeaderElector:
        """An elector for `daemon.lease` (its namespace defaults to the daemon's)."""
        return cls(store, clock=clock, identity=identity,
                   namespace=settings.namespace or namespace, name=settings.name,
                   lease_duration=settings.duration_seconds,
                   renew_deadline=settings.renew_deadline_seconds,
                   retry_period=settings.retry_period_seconds, wall=wall,
                   on_started_leading=on_started_leading,
                   on_stopped_leading=on_stopped_leading)

    def is_leader(self) -> bool:
        """True while this replica holds the lease and its last successful renew was sent less
        than `renew_deadline` ago; False from that instant, even before the loop notices. Also
        False as soon as a read of the lease names another holder (client-go's `IsLeader`): a
        replica that has seen the lease taken stops acting at once, not at its renew deadline."""
        return (self.leading.is_set()
                and self._clock.now() < self._renewed_at + self.renew_deadline
                and (self._observed is None or self._observed.holder == self.identity))

    @property
    def holder(self) -> str | None:
        """The holder in the last lease record seen (None: none seen, or released)."""
        return self._observed.holder if self._observed else None

    async def run(self) -> None:
        """Elect, lead, and elect again after losing the lease, until cancelled. On
        cancellation a leader releases the lease (unless `release_on_cancel` is False)."""
        if self._running:
            raise RuntimeError("LeaderElector.run() is already running")
        self._running = True
        try:
            while True:
                await self._acquire()
                self._set_leading(True)
                await self._renew_until_lost()
                self._set_leading(False)
        finally:
            was_leading = self.leading.is_set()
            self._set_leading(False)
            self._running = False
            if was_leading and self._release_on_cancel:
                await self._bounded(self._release(), self._clock.now() + self.renew_deadline,
                                    default=False)

    # -- the loops ---------------------------------------------------------------------------

    async def _acquire(self) -> None:
        while True:
            deadline = self._clock.now() + self.renew_deadline
            if await self._bounded(self._try_acquire_or_renew(), deadline, default=False):
                return
            jitter = 1 + self._rng.random() * JITTER_FACTOR
            await self._clock.sleep(self.retry_period * jitter)

    async def _renew_until_lost(self) -> None:
        """Renew every `retry_period`; return once `renew_deadline` has passed since the last
        successful renew was sent (each attempt is cut off at that deadline)."""
        while True:
            await self._clock.sleep(self.retry_period)
            while True:
                deadline = self._renewed_at + self.renew_deadline
                if self._clock.now() >= deadline:
                    log.warning("leader_lost", identity=self.identity, lease=self.name,
                                reason="renew deadline passed")
                    return
                if await self._bounded(self._try_acquire_or_renew(), deadline, default=False):
                    break
                await self._clock.sleep(min(self.retry_period,
                                            max(0.0, deadline - self._clock.now())))

    async def _bounded(self, work: Awaitable[T], deadline: float, *, default: T) -> T:
        """`work`'s result, or `default` if the clock reaches `deadline` first (the work is
        then cancelled). Races the passed-in clock, so it is virtual in the simulator."""
        task = asyncio.ensure_future(work)
        timer = asyncio.ensure_future(self._clock.sleep(max(0.0, deadline - self._clock.now())))
        try:
            await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for pending in (task, timer):
                pending.cancel()
            await asyncio.gather(task, timer, return_exceptions=True)
        if task.done() and not task.cancelled() and task.exception() is None:
            return task.result()
        return default

    # -- one attempt -------------------------------------------------------------------------

    async def _try_acquire_or_renew(self) -> bool:
        """client-go's `tryAcquireOrRenew`: read, and write ourselves in if the lease is ours,
        free, or expired as seen on our clock. Any store failure is a failed attempt."""
        try:
            return await self._attempt()
        except Exception as exc:  # a store that fails in any way has simply not renewed
            log.warning("lease_attempt_failed", identity=self.identity, lease=self.name,
                        error=f"{type(exc).__name__}: {exc}")
            return False

    async def _attempt(self) -> bool:
        current = await self._store.get(self.namespace, self.name)
        now_wall = self._wall()
        sent_at = self._clock.now()
        if current is None:
            # A new Lease: no one to take anything over from.
            record = LeaseRecord(holder=self.identity, acquired_at=now_wall, renewed_at=now_wall,
                                 duration_seconds=self.lease_duration, transitions=0,
                                 resource_version="", memo=self._memo())
            result = await self._store.create(self.namespace, self.name, record)
            return self._written(result.outcome, record, sent_at, result.message,
                                 taken_from=None)
        if current != self._observed:
            self._observed = current
            self._observed_at = self._clock.now()
        mine = current.holder == self.identity
        if (current.holder and not mine
                and self._clock.now() < self._observed_at + current.duration_seconds):
            return False
        # Taking the Lease from another holder (or from this identity's previous process): its
        # memo is carried on as it was and taken over; this replica's own is written from the
        # next renew on. Renewing, or taking back what this process held: its own memo.
        taking = not self.leading.is_set() and not (mine and self._has_led)
        record = LeaseRecord(
            holder=self.identity,
            acquired_at=current.acquired_at if mine else now_wall,
            renewed_at=now_wall,
            duration_seconds=self.lease_duration,
            transitions=current.transitions if mine else current.transitions + 1,
            resource_version=current.resource_version,
            memo=current.memo if taking else self._memo(),
        )
        result = await self._store.update(self.namespace, self.name, record)
        return self._written(result.outcome, record, sent_at, result.message,
                             taken_from=current if taking else None)

    def _memo(self) -> str:
        return self.handover.leader_memo() if self.handover is not None else ""

    def _written(self, outcome: WriteOutcome, record: LeaseRecord, sent_at: float,
                 message: str, *, taken_from: LeaseRecord | None) -> bool:
        if outcome is not WriteOutcome.DONE:
            log.debug("lease_write_refused", identity=self.identity, lease=self.name,
                      outcome=outcome.value, message=message)
            return False
        self._renewed_at = sent_at
        self._observed, self._observed_at = record, self._clock.now()
        if taken_from is not None and self.handover is not None:
            # About to lead: the memory of the last holder replaces what a standby has, which
            # restarted nothing. Whatever it does with the memo, this replica leads: a Lease no
            # one can take is worse.
            try:
                self.handover.take_over(taken_from.memo)
            except Exception as exc:
                log.error("handover_failed", identity=self.identity, lease=self.name,
                          error=f"{type(exc).__name__}: {exc}")
        return True

    async def _release(self) -> bool:
        """client-go's ReleaseOnCancel: clear the holder and shorten the duration to 1 s, so the
        next candidate acquires on its next try instead of waiting out the lease."""
        current = await self._store.get(self.namespace, self.name)
        if current is None or current.holder != self.identity:
            return True
        now_wall = self._wall()
        record = LeaseRecord(holder=None, acquired_at=now_wall, renewed_at=now_wall,
                             duration_seconds=1.0, transitions=current.transitions,
                             resource_version=current.resource_version, memo=self._memo())
        result = await self._store.update(self.namespace, self.name, record)
        log.info("leader_released", identity=self.identity, lease=self.name,
                 outcome=result.outcome.value)
        return result.outcome is WriteOutcome.DONE

    def _set_leading(self, leading: bool) -> None:
        if leading == self.leading.is_set():
            return
        if leading:
            self._has_led = True
            self.leading.set()
            log.info("leader_started", identity=self.identity, lease=self.name)
            if self._on_started is not None:
                self._on_started()
        else:
            self.leading.clear()
            log.info("leader_stopped", identity=self.identity, lease=self.name)
            if self._on_stopped is not None:
                self._on_stopped()
