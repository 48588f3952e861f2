"""The daemon: named, guarded tasks around the pure engine.

Sources, probes, the resource poller and the pod watch feed the signal store; a change wakes the
evaluator for exactly the workloads that depend on it (debounced); a periodic tick re-evaluates
everything as a safety net. Decisions go to the actuator (the `Cluster` port) only when this
replica leads and is not in dry-run. The same code runs live (aiohttp, kubernetes_asyncio) and in
the simulator (in-memory adapters on a virtual clock): only the adapters differ.

Shutdown follows one rule: the first root task to end stops the others; `stop()` ends the run
after the write in flight (no half-done write), and the leader elector releases its lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import time
from collections import ChainMap
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import structlog

from autoscaler.config import (
    PAUSE_ANNOTATION,
    RESOURCE_SIGNALS,
    SOURCE_FIELDS,
    LoadedConfig,
    WorkloadSpec,
)
from autoscaler.engine.behavior import first_recommendation, record_scale, remember
from autoscaler.engine.evaluate import DEFAULT_STALE_SECONDS, evaluate
from autoscaler.engine.gate import dependency_reasons
from autoscaler.engine.healing import (
    BreakerState,
    HealingMemory,
    HealingPlan,
    ProbeRecord,
    RestartKind,
    SubscriptionRead,
    handover,
    healing_quiet,
    plan,
    record_outcome,
    scale_down_hold,
    taken_over,
)
from autoscaler.engine.hysteresis import Hysteresis
from autoscaler.engine.settled import Settled, settle, source_fields, unchanged
from autoscaler.model import (
    CPU_SIGNAL,
    Action,
    Decision,
    DependencyState,
    Health,
    ScalingHistory,
    Signal,
    WorkloadStatus,
)
from autoscaler.policies.base import LooksBack
from autoscaler.ports import (
    FIELD_MANAGER,
    LEASE_MEMO_ANNOTATION,
    CheckResult,
    Clock,
    Cluster,
    PodProber,
    Probe,
    Source,
    WriteOutcome,
    WriteResult,
)
from autoscaler.store import SignalStore
from autoscaler.telemetry import Telemetry

log = structlog.get_logger("tracardi_autoscaler")

#: How often per-workload CPU is read from metrics.k8s.io (metrics-server resolution is ~15 s).
RESOURCE_POLL_SECONDS = 15.0
#: After a failed write (403, 5xx) a workload is left alone this long before the next attempt.
WRITE_BACKOFF_SECONDS = 10.0
#: How often a workload is checked for another HPA or ScaledObject targeting it.
CONFLICT_CHECK_SECONDS = 60.0
#: How soon a workload with a maturing healing suspicion is looked at again.
HEAL_RECHECK_SECONDS = 1.0
#: How long shutdown waits for the scale requests in flight to be answered.
WRITE_DRAIN_SECONDS = 10.0
#: How long the cancelled tasks of a generation (and the retired readers' `close`) get to end
#: before the next generation starts without them.
CANCEL_WAIT_SECONDS = 5.0
#: How many workloads of one pass are evaluated at once (the HPA controller's default for
#: --concurrent-horizontal-pod-autoscaler-syncs). Evaluation itself does not wait on anything;
#: this lets a pass go on while a few workloads wait for their scale write, and bounds the
#: writes in flight, so a slow API server slows the pass instead of piling up requests.
EVALUATION_LANES = 5
#: The longest an evaluation pass holds off Python's cyclic garbage collector.
GC_HOLD_SECONDS = 0.5
#: Events are best effort, as with client-go's recorder: posted in the background, never waited
#: for by an evaluation. Beyond this many waiting to be posted, new ones are dropped and logged.
EVENTS_IN_FLIGHT = 100
#: The handover memo (`Daemon.leader_memo`): its format, and the most it may take of the
#: Lease's annotations (256 KiB for all of an object's).
MEMO_VERSION = 1
MEMO_MAX_CHARS = 200_000


def _cancel_if_asked() -> None:
    """End the running task if it was cancelled and a client library swallowed the
    CancelledError: aiomysql and redis-py, cancelled at some points of a check, return its
    result instead, and the task would sleep a whole period past a stop or reload."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


def _instead(decision: Decision, action: Action, *reasons: str) -> Decision:
    """`decision` turned into a hold or freeze at its current count, with `reasons` first."""
    return replace(decision, action=action, desired=decision.current,
                   reasons=(*reasons, *decision.reasons))


class _WithOwn(Mapping[str, Sequence[Signal]]):
    """The store's signal history, with some names served from `own` instead (a workload's own
    pod CPU under its plain name): a view, not a copy, and it adds no key to either."""

    __slots__ = ("_base", "_own")

    def __init__(self, base: Mapping[str, Sequence[Signal]],
                 own: Mapping[str, Sequence[Signal]]) -> None:
        self._base, self._own = base, own

    def __getitem__(self, name: str) -> Sequence[Signal]:
        if name in self._own:
            return self._own[name]
        if name in self._base:  # the store's history is a defaultdict: never index it blind
            return self._base[name]
        raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        return name in self._own or name in self._base

    def __iter__(self) -> Iterator[str]:
        yield from self._own
        yield from (name for name in self._base if name not in self._own)

    def __len__(self) -> int:
        return sum(1 for _ in self)


class Leadership(Protocol):
    def is_leader(self) -> bool: ...


class AlwaysLeader:
    """For the simulator and single-replica set-ups without a lease."""

    def is_leader(self) -> bool:
        return True


class LoopClock:
    """The running loop's clock: real time live, virtual time in the simulator."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class Adapters:
    clock: Clock
    cluster: Cluster
    sources: Mapping[str, Source]
    probes: Mapping[str, Probe]
    leadership: Leadership = field(default_factory=AlwaysLeader)
    wall: Callable[[], float] = time.time
    #: The healer's per-pod app-level check; without one, HTTP probes of pods are not run.
    pod_prober: PodProber | None = None
    #: Extra root tasks (the leader elector, the config watcher) run beside the daemon's own.
    extra_tasks: Mapping[str, Callable[[], Coroutine[Any, Any, None]]] = field(
        default_factory=dict)


@dataclass
class WorkloadState:
    spec: WorkloadSpec
    history: ScalingHistory = field(default_factory=ScalingHistory)
    status: WorkloadStatus | None = None
    decision: Decision | None = None
    woken_by_read_at: float | None = None
    backoff_until: float = 0.0
    conflict: str | None = None
    conflict_checked_at: float = float("-inf")
    healing: HealingMemory = field(default_factory=HealingMemory)
    pod_probes: dict[str, ProbeRecord] = field(default_factory=dict)
    heal_plan: HealingPlan | None = None
    heal_recheck: bool = False
    #: Why its Deployment could not be read at the last evaluation, if it could not.
    read_error: str | None = None
    #: The last evaluation, when settled (`engine.settled`): until an input changes, the next
    #: ones are skipped. `watched`: the source fields that count as its inputs.
    settled: Settled | None = None
    watched: tuple[str, ...] | None = None
    #: The proposal and time of the last skipped evaluation, not yet in `history`.
    skipped: tuple[int, float] | None = None
    #: The replica count this daemon set, or last saw (`_check_kept`); the Deployment's
    #: generation then (a read of that generation or older predates it); and whether this
    #: replica led then (a count known only as a standby may be the old leader's last write).
    kept: tuple[int, int, bool] | None = None
    #: While quiet (`Daemon._tick_keys`): the count of ticks when it became so. Each tick
    #: since skipped it without touching it; `Daemon._unquiet` records those skips.
    quiet_since: int | None = None

    def catch_up(self) -> ScalingHistory:
        """`history`, with the last skipped evaluation's proposal remembered. A skip records
        only its proposal and time: remembering the same proposal at each skip leaves what
        remembering it at the last one leaves (`remember` keeps one entry per value and
        forgets by age), and a thousand settled workloads skip on every tick."""
        if self.skipped is not None:
            desired, at = self.skipped
            behavior = self.spec.settings.behavior
            self.history = remember(self.history, desired=desired, now=at, up=behavior.up,
                                    down=behavior.down)
            self.skipped = None
        return self.history


class Daemon:
    def __init__(
        self,
        loaded: LoadedConfig,
        adapters: Adapters,
        *,
        telemetry: Telemetry | None = None,
        dry_run: bool = False,
        on_decision: Callable[[Decision, WorkloadStatus], None] | None = None,
        check_conflicts: bool = True,
    ) -> None:
        self.loaded = loaded
        self.a = adapters
        self.telemetry = telemetry or Telemetry()
        self.telemetry.skips.pending = self._quiet_skips
        self.dry_run = dry_run
        self.on_decision = on_decision
        self.check_conflicts = check_conflicts
        settings = loaded.config.daemon
        self.store = SignalStore(history_seconds=settings.history_seconds)
        self.workloads: dict[str, WorkloadState] = {}
        self.hysteresis: dict[str, Hysteresis] = {}
        #: Per dependency: when its latest check for a write began, and the check.
        self._latest_check: dict[str, tuple[float, asyncio.Future[None]]] = {}
        self.staleness: dict[str, float] = {}
        self._pending: dict[str, None] = {}
        #: The tick asks for a pass over every workload (`_evaluate_all(tick=True)`).
        self._tick_due = False
        #: Per source: when its last read was taken; its staleness limit and its fields.
        self._last_read: dict[str, float] = {}
        self._freshness: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._namespaces: tuple[str, ...] = ()
        self._shortest_limit = DEFAULT_STALE_SECONDS
        #: Ticks so far and the time of the last; the quiet workloads per namespace, the others,
        #: and which namespaces may have quiet ones this tick (`_tick_keys`).
        self._ticks = 0
        self._tick_at = float("-inf")
        self._quiet: dict[str, dict[str, None]] = {}
        self._loud: dict[str, None] = {}
        self._synced: dict[str, bool] = {}
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._retired: list[Source | Probe] = []
        self._writes: set[asyncio.Future[WriteResult]] = set()
        self._events: set[asyncio.Task[None]] = set()
        #: Set while a generation of tasks ends (stop or reload): no new write starts then.
        self._closing = False
        #: Why the run ended other than by `stop()`: the first task that failed.
        self.failure: str | None = None
        self.ready = False
        self.apply_config(loaded)

    # ----------------------------------------------------------------- configuration
    def apply_config(self, loaded: LoadedConfig) -> None:
        """Adopt a (new) config: keep the memory of workloads that stay, subscribe signals."""
        self.loaded = loaded
        old = self.workloads
        for state in old.values():
            self._unquiet(state)
        self._quiet, self._loud = {}, {}
        self.workloads = {}
        self.store.clear_subscriptions()
        self.store.dirty.clear()  # nothing is settled after a reload: every workload is checked
        for spec in loaded.workloads:
            state = old.get(spec.key) or WorkloadState(spec)
            self._loud[spec.key] = None
            state.catch_up()  # under the behavior the skips ran with
            state.spec = spec
            state.settled = None
            state.watched = self._watched(spec, loaded)
            self.workloads[spec.key] = state
            self.store.subscribe(spec.key, signals=self._signal_keys(spec),
                                 requires=spec.settings.requires, watched=state.watched or ())
        self.store.keep_history(self._history_needed(loaded))
        self._freshness = {
            name: (src.staleness_limit(), tuple(f"{name}.{f}" for f in SOURCE_FIELDS[src.kind]))
            for name, src in loaded.config.sources.items()
        }
        self.staleness = {f: limit for limit, fields in self._freshness.values() for f in fields}
        self._last_read = {k: v for k, v in self._last_read.items() if k in self._freshness}
        self._shortest_limit = min((limit for limit, _ in self._freshness.values()),
                                   default=DEFAULT_STALE_SECONDS)
        self._namespaces = tuple({spec.namespace: None for spec in loaded.workloads})
        for spec in loaded.workloads:
            self.telemetry.init_workload(spec.namespace, spec.name, minimum=spec.settings.min,
                                         maximum=spec.settings.max)

    @staticmethod
    def _history_needed(loaded: LoadedConfig) -> dict[str, float] | None:
        """How much history of each signal the policies read; None if one cannot tell."""
        needed: dict[str, float] = {}
        for spec in loaded.workloads:
            for policy in spec.policies:
                if not isinstance(policy, LooksBack):
                    return None
                for name, seconds in policy.history_seconds().items():
                    # The pods' CPU is read, and kept, per workload.
                    key = f"{name}@{spec.key}" if name in RESOURCE_SIGNALS else name
                    needed[key] = max(needed.get(key, 0.0), seconds)
        return needed

    @staticmethod
    def _watched(spec: WorkloadSpec, loaded: LoadedConfig) -> tuple[str, ...] | None:
        fields = source_fields(spec, loaded.config.sources)
        source = spec.settings.healing.consumer_source
        consumer = loaded.config.sources.get(source) if source else None
        if fields is None or consumer is None:
            return fields
        return (*fields, *(f"{source}.{f}" for f in SOURCE_FIELDS[consumer.kind]))

    @staticmethod
    def _signal_keys(spec: WorkloadSpec) -> list[str]:
        return [f"{s}@{spec.key}" if s in RESOURCE_SIGNALS else s for s in spec.signal_names()]

    # ----------------------------------------------------------------- lifecycle
    def stop(self) -> None:
        self._stop.set()

    # ----------------------------------------------------------------- handover (the Lease)
    def leader_memo(self) -> str:
        """The healer's memory of every workload that has one, for the Lease (`Handover`)."""
        now, wall_now = self.a.clock.now(), self.a.wall()
        healing = {key: handed for key, state in self.workloads.items()
                   if (handed := handover(state.healing, now=now, wall_now=wall_now))}
        # Written when there is nothing too: a successor tells "nothing" from "no memo".
        memo = json.dumps({"version": MEMO_VERSION, "healing": healing}, sort_keys=True,
                          separators=(",", ":"))
        if len(memo) > MEMO_MAX_CHARS:
            log.warning("handover_too_large", chars=len(memo), limit=MEMO_MAX_CHARS,
                        hint="a successor starts the restart budgets and breakers afresh")
            return ""
        return memo

    def take_over(self, memo: str) -> None:
        """Becoming the leader: each workload's restarts, backoff and breaker are those the
        last leader handed over in the Lease (`Handover`). No memo (a holder that writes none:
        another version, a person), or one that cannot be read, changes nothing here, and is
        logged."""
        if not memo:
            log.warning("handover_absent", annotation=LEASE_MEMO_ANNOTATION,
                        hint="the last holder left no memo: this replica's own is kept")
            return
        try:
            parsed = json.loads(memo)
            if not isinstance(parsed, dict) or parsed.get("version") != MEMO_VERSION:
                raise ValueError(f"expected an object of version {MEMO_VERSION}")
            healing = parsed.get("healing")
            if not isinstance(healing, dict):
                raise ValueError("healing: expected an object")
        except (ValueError, RecursionError) as exc:  # RecursionError: nested past reason
            log.error("handover_unreadable", annotation=LEASE_MEMO_ANNOTATION, error=str(exc))
            return
        now, wall_now = self.a.clock.now(), self.a.wall()
        for key, state in self.workloads.items():
            try:
                state.healing = taken_over(state.healing, healing.get(key), now=now,
                                           wall_now=wall_now)
            except ValueError as exc:
                log.error("handover_unreadable", annotation=LEASE_MEMO_ANNOTATION,
                          workload=key, error=str(exc))
        log.info("handover_taken", workloads=sorted(k for k in healing if k in self.workloads))

    def reload(self, loaded: LoadedConfig, *, sources: Mapping[str, Source],
               probes: Mapping[str, Probe]) -> None:
        """Adopt a new config and readers; the running generation of tasks is replaced."""
        self._retired.extend([*self.a.sources.values(), *self.a.probes.values()])
        self.a.sources, self.a.probes = sources, probes
        self._latest_check.clear()  # checks of the retired probes serve no write
        # A source or dependency that now names another system (a topic, a query, a URL) keeps
        # nothing of the old one: until its first read or check it is missing (a freeze).
        before = self.loaded.config
        redefined = [n for n, src in before.sources.items()
                     if loaded.config.sources.get(n) != src]
        rechecked = [n for n, dep in before.dependencies.items()
                     if loaded.config.dependencies.get(n) != dep]
        self.store.forget(sources=redefined, dependencies=rechecked)
        for name in redefined:
            self._last_read.pop(name, None)
        for name in rechecked:
            self.hysteresis.pop(name, None)
        self.apply_config(loaded)
        self._reload.set()

    async def run(self) -> None:
        """Run until `stop()` or until a root task ends; then stop the rest.

        The extra tasks (leader elector, config watcher, HTTP endpoints) live for the whole run;
        the daemon's own tasks are rebuilt on every config reload. On the way out the write in
        flight is finished first, then the daemon's tasks end, then the extra tasks (so the
        elector releases the lease only once nothing can write any more).
        """
        extras = {asyncio.create_task(self._guard(name, factory), name=name)
                  for name, factory in self.a.extra_tasks.items()}
        stopper = asyncio.create_task(self._stop.wait(), name="stop")
        try:
            while not self._stop.is_set():
                self._reload.clear()
                ended = await self._run_generation({*extras, stopper})
                await self._close_retired()
                if ended:
                    break
        finally:
            self.ready = False
            stopper.cancel()
            for task in extras:
                task.cancel()
            await asyncio.gather(*extras, stopper, return_exceptions=True)

    async def _run_generation(self, outer: set[asyncio.Task[Any]]) -> bool:
        """Run the daemon's tasks until a reload (False) or the end of the run (True)."""
        tasks: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {
            "evaluator": self._evaluator,
            "ticker": self._ticker,
        }
        for name, source in self.a.sources.items():
            tasks[f"source:{name}"] = self._bind(self._poll_source, source)
        for name, probe in self.a.probes.items():
            tasks[f"probe:{name}"] = self._bind(self._run_probe, probe)
        for key, state in self.workloads.items():
            if any(s in RESOURCE_SIGNALS for s in state.spec.signal_names()):
                tasks[f"resources:{key}"] = self._bind(self._poll_resources, state)
        for ns in sorted({s.spec.namespace for s in self.workloads.values()}):
            tasks[f"pod-watch:{ns}"] = self._bind(self._watch_pods, ns)
        if self.a.pod_prober is not None:
            for key, state in self.workloads.items():
                healing = state.spec.settings.healing
                if healing.enabled and healing.http_probe is not None:
                    tasks[f"pod-probe:{key}"] = self._bind(self._probe_pods, state)
        running = {asyncio.create_task(self._guard(name, factory), name=name)
                   for name, factory in tasks.items()}
        reloader = asyncio.create_task(self._reload.wait(), name="reload")
        self._closing = False
        self.ready = True
        try:
            done, _ = await asyncio.wait({*running, *outer, reloader},
                                         return_when=asyncio.FIRST_COMPLETED)
            return done != {reloader}
        finally:
            self.ready = False
            # Evaluations still running finish without writing (`_withheld`); the writes
            # already sent are waited for, so none is left half-done.
            self._closing = True
            in_flight: set[asyncio.Future[Any]] = {*self._writes, *self._events}
            if pending := {f for f in in_flight if not f.done()}:
                await asyncio.wait(pending, timeout=WRITE_DRAIN_SECONDS)
            reloader.cancel()
            for task in running:
                task.cancel()
            ending: set[asyncio.Task[Any]] = {*running, reloader}
            ended, stuck = await asyncio.wait(ending, timeout=CANCEL_WAIT_SECONDS)
            for task in ended:
                if not task.cancelled():
                    task.exception()  # retrieved here; `_guard` has logged it
            if stuck:
                # A task that ignores its cancellation (a client library hung in its own
                # clean-up) must not stall the daemon: the next generation starts without it.
                log.error("tasks_not_ending", tasks=sorted(t.get_name() for t in stuck),
                          waited_s=CANCEL_WAIT_SECONDS)

    async def _close_retired(self) -> None:
        retired, self._retired = self._retired, []
        for reader in retired:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(CANCEL_WAIT_SECONDS):
                    await reader.close()

    @staticmethod
    def _bind(fn: Callable[[Any], Awaitable[None]],
              arg: Any) -> Callable[[], Coroutine[Any, Any, None]]:
        async def bound() -> None:
            await fn(arg)
        return bound

    async def _guard(self, name: str, factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await factory()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("task_failed", task=name)
            if self.failure is None:
                self.failure = f"task {name} failed: {type(exc).__name__}: {exc}"
            raise
        else:
            if not self._stop.is_set():
                log.warning("task_ended", task=name)

    # ----------------------------------------------------------------- waking
    def wake(self, keys: set[str] | list[str], *, read_at: float | None = None) -> None:
        for key in keys:
            if key not in self.workloads:
                continue
            self._pending[key] = None
            state = self.workloads[key]
            if read_at is not None and state.woken_by_read_at is None:
                state.woken_by_read_at = read_at
        if self._pending:
            self._wake.set()

    async def _ticker(self) -> None:
        while True:
            await self.a.clock.sleep(self.loaded.config.daemon.tick_seconds)
            self._tick_due = True
            self._wake.set()

    # ----------------------------------------------------------------- readers
    async def _poll_source(self, source: Source) -> None:
        cfg = self.loaded.config.sources[source.name]
        timeout = cfg.timeout_seconds + 1.0
        clock = self.a.clock
        while True:
            started = clock.now()
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                # that races with completion, and the task would outlive shutdown.
                async with asyncio.timeout(timeout):
                    signals = await source.read()
            except TimeoutError:
                signals = [Signal(f"{source.name}.{f}", None, clock.now(),
                                  error=f"timeout after {timeout:g}s")
                           for f in SOURCE_FIELDS[cfg.kind]]
            self._take_signals(signals)
            _cancel_if_asked()
            await clock.sleep(max(0.0, cfg.poll_seconds - (clock.now() - started)))

    def _take_signals(self, signals: Sequence[Signal]) -> None:
        now = self.a.clock.now()
        failing = {s.name for s in signals
                   if (old := self.store.latest.get(s.name)) is not None and old.error}
        woken = self.store.put_signals(signals, now=now)
        read: dict[str, float] = {}  # per configured source, when this read of it was taken
        for sig in signals:
            source = sig.name.rpartition(".")[0]
            if source in self._freshness:
                read[source] = min(read.get(source, sig.read_at), sig.read_at)
        self._last_read.update(read)
        wall = self.a.wall()
        for sig in signals:
            self.telemetry.observe_signal(sig, wall=wall)
            # One warning when a signal starts failing and one line when it is back; each
            # failed read in between is counted in signal_errors_total and logged at debug.
            if sig.error and sig.name not in failing:
                log.warning("signal_failed", signal=sig.name, error=sig.error)
            elif sig.error:
                log.debug("signal_error", signal=sig.name, error=sig.error)
            elif sig.name in failing:
                log.info("signal_recovered", signal=sig.name)
        if woken:
            self.wake(woken, read_at=min(s.read_at for s in signals))

    async def _poll_resources(self, state: WorkloadState) -> None:
        spec = state.spec
        while True:
            try:
                sig = await self.a.cluster.pod_cpu(spec.namespace, spec.deployment)
            except Exception as exc:  # the port reports failures; this guards adapter bugs
                sig = Signal(CPU_SIGNAL, None, self.a.clock.now(), error=str(exc))
            self._take_signals([replace(sig, name=f"{CPU_SIGNAL}@{spec.key}")])
            await self.a.clock.sleep(RESOURCE_POLL_SECONDS)

    async def _run_probe(self, probe: Probe) -> None:
        cfg = self.loaded.config.dependencies[probe.name]
        clock = self.a.clock
        initial = (self.hysteresis.get(probe.name) or Hysteresis()).state(probe.name)
        self.telemetry.observe_dependency(initial)
        self.store.put_dependency(initial)
        while True:
            started = clock.now()
            await self._check(probe)
            _cancel_if_asked()
            await clock.sleep(max(0.0, cfg.period_seconds - (clock.now() - started)))

    async def _check_since(self, probe: Probe, since: float) -> None:
        """A check of `probe` for a write, begun at `since` or later: the one under way or done
        if it did, else a new one. It runs on when the evaluation that began it is cancelled,
        and its timeout bounds it."""
        latest = self._latest_check.get(probe.name)
        if latest is None or latest[0] < since:
            latest = (self.a.clock.now(), asyncio.ensure_future(self._check(probe)))
            self._latest_check[probe.name] = latest
        await asyncio.shield(latest[1])

    async def _check(self, probe: Probe) -> None:
        """Check one dependency now and fold the result into its hysteresis and the store."""
        cfg = self.loaded.config.dependencies[probe.name]
        try:
            async with asyncio.timeout(cfg.timeout_seconds + 1.0):
                result = await probe.check()
        except TimeoutError:
            result = CheckResult(ok=False, reason=f"timeout after {cfg.timeout_seconds:g}s")
        except Exception as exc:  # a probe that breaks its contract has failed its check
            result = CheckResult(ok=False, reason=f"{type(exc).__name__}: {exc}")
        # Read after the check: a check that ran at the same time has been folded in by now.
        before = self.hysteresis.get(probe.name) or Hysteresis()
        state = before.observe(result, now=self.a.clock.now(),
                               failure_threshold=cfg.failure_threshold,
                               success_threshold=cfg.success_threshold)
        if state is before and probe.name in self.hysteresis:
            return  # one more good check of a trusted dependency: nothing new
        self.hysteresis[probe.name] = state
        dep = state.state(probe.name)
        if dep != self.store.dependencies.get(probe.name):
            self.telemetry.observe_dependency(dep)
        woken = self.store.put_dependency(dep)
        if state.health != before.health:
            log.info("dependency_changed", dependency=probe.name, health=dep.health.value,
                     reason=dep.reason)
        if woken:
            self.wake(woken)

    async def _confirm(self, spec: WorkloadSpec, since: float) -> tuple[str, ...]:
        """Check the workload's required dependencies again before it is scaled: each needs a
        check begun at `since` (when the decision was taken) or later.

        The periodic check may be up to a period old, older than the signals the decision read:
        an outage that began in between shows first in those signals (a backlog that grows
        because Elasticsearch stopped taking writes), or begins between the read and the write.
        Returns the reasons to hold, as the gate words them; a failed check makes its dependency
        suspect, which also wakes the workload to be evaluated again. Workloads decided at the
        same moment share the check.
        """
        probes = [self.a.probes[n] for n in spec.settings.requires if n in self.a.probes]
        await asyncio.gather(*(self._check_since(p, since) for p in probes))
        return dependency_reasons(spec.settings.requires, self.store.dependencies)

    async def _watch_pods(self, namespace: str) -> None:
        by_deployment = {(s.spec.namespace, s.spec.deployment): k
                         for k, s in self.workloads.items()}
        async for event in self.a.cluster.watch_pods(namespace):
            key = by_deployment.get((event.namespace, event.workload))
            if key is not None:
                self.wake([key])

    # ----------------------------------------------------------------- one-shot
    async def explain(self) -> None:
        """One dry evaluation of every workload: each source read once, each dependency checked
        once (that single check is its verdict), nothing written."""
        self.dry_run = True
        reads = await asyncio.gather(*(s.read() for s in self.a.sources.values()))
        for signals in reads:
            self._take_signals(signals)
        for state in self.workloads.values():
            if any(s in RESOURCE_SIGNALS for s in state.spec.signal_names()):
                sig = await self.a.cluster.pod_cpu(state.spec.namespace, state.spec.deployment)
                self._take_signals([replace(sig, name=f"{CPU_SIGNAL}@{state.spec.key}")])
        names = list(self.a.probes)
        results = await asyncio.gather(*(p.check() for p in self.a.probes.values()))
        for name, result in zip(names, results, strict=True):
            health = Health.UP if result.ok else Health.DOWN
            self.store.put_dependency(DependencyState(name, health, result.reason,
                                                      self.a.clock.now()))
        for state in self.workloads.values():
            # Every dependency was checked after every source was read: nothing to confirm.
            await self.evaluate_workload(state, confirm=False)

    # ----------------------------------------------------------------- evaluation
    async def _evaluator(self) -> None:
        debounce = self.loaded.config.daemon.debounce_seconds
        while True:
            await self._wake.wait()
            if debounce:
                await self.a.clock.sleep(debounce)
            keys = list(self._pending)
            tick, self._tick_due = self._tick_due, False
            self._pending.clear()
            self._wake.clear()
            started = time.perf_counter()
            # The young generation is collected after the pass, not in the middle of it (at
            # N=1000 a collection takes ~7 ms and a pass allocates enough to trigger one), but
            # never held off longer than GC_HOLD_SECONDS: a pass waiting on a slow API must not
            # leave every other task's cyclic garbage uncollected.
            resume = None
            if gc.isenabled():
                gc.disable()
                resume = asyncio.get_running_loop().call_later(GC_HOLD_SECONDS, gc.enable)
            try:
                await self._evaluate_all(keys, tick=tick)
            finally:
                if resume is not None:
                    resume.cancel()
                    gc.enable()
            if tick or len(keys) >= len(self.workloads):  # a pass over all of them
                self.telemetry.evaluation_pass_seconds.observe(time.perf_counter() - started)

    async def _evaluate_all(self, keys: list[str], *, tick: bool = False) -> None:
        """Evaluate `keys` (and, on a `tick`, every other workload after them) in up to
        `EVALUATION_LANES` lanes, each taking the next key when its last one is done; when no
        evaluation waits this is a plain loop, in order.

        First, a settled workload whose Deployment and pods the cluster adapter holds, and
        whose inputs are unchanged, is skipped without a task or an await: on a tick most
        workloads are, and a thousand coroutines cost more than the checks themselves. On a
        tick, a quiet workload is not even looked at (`_tick_keys`): then the tick's cost
        follows what changed, not how many workloads there are.

        The calling task is the first lane, so a pass in which nothing waits (most: no write)
        never hands the loop to other tasks. The other lanes are tasks that join only while it
        waits; those that have not started by the end of the pass are cancelled, not awaited
        (awaiting them would hand over the loop, and a thousand workloads' source reads with
        it, for nothing)."""
        cached = self.a.cluster.cached_workload
        now = self.a.clock.now()
        dirty = self.store.dirty
        if tick:
            keys = self._tick_keys(keys, now)
        rest: list[str] = []
        for key in keys:
            state = self.workloads.get(key)
            if state is None:
                continue
            self._unquiet(state)  # an event woke it
            if state.settled is not None:
                dirty.discard(key)
                status = cached(state.spec.namespace, state.spec.deployment)
                if status is not None and self._skip(state, status, now):
                    if tick:
                        self._enter_quiet(state)
                    continue
            rest.append(key)
        todo = iter(rest)
        joined: list[asyncio.Future[None]] = []

        async def lane() -> None:
            for key in todo:
                state = self.workloads.get(key)  # a reload may have dropped it meanwhile
                if state is not None:
                    await self.evaluate_workload(state)

        async def helper() -> None:
            task = asyncio.current_task()
            assert task is not None
            joined.append(task)
            await lane()

        helpers = [asyncio.create_task(helper())
                   for _ in range(min(EVALUATION_LANES, len(rest)) - 1)]
        try:
            await lane()
            for task in joined:  # one at a time: awaiting one that is done does not switch
                await task
        finally:
            for task in helpers:
                task.cancel()

    def signals_for(self, spec: WorkloadSpec) -> Mapping[str, Signal]:
        own = {s: self.store.latest[f"{s}@{spec.key}"] for s in RESOURCE_SIGNALS
               if f"{s}@{spec.key}" in self.store.latest}
        return ChainMap(own, self.store.latest)

    def history_for(self, spec: WorkloadSpec) -> Mapping[str, Sequence[Signal]]:
        """The signal history `spec`'s policies read: its own pods' CPU under its plain name."""
        history = self.store.history_view()
        own = {s: history[f"{s}@{spec.key}"] for s in RESOURCE_SIGNALS
               if f"{s}@{spec.key}" in history}
        return _WithOwn(history, own) if own else history

    def _requires(self, spec: WorkloadSpec) -> tuple[DependencyState | None, ...]:
        get = self.store.dependencies.get
        return tuple([get(d) for d in spec.settings.requires])

    def _skip(self, state: WorkloadState, status: WorkloadStatus, now: float) -> bool:
        """When the workload's last evaluation is settled and nothing it read has changed
        (engine.settled): one now would decide what it decided, so it is skipped, its proposal
        remembered as that evaluation would (`WorkloadState.catch_up`). Says whether it was
        skipped."""
        settled = state.settled
        if settled is None:
            return False
        spec = state.spec
        subscription = self._subscription(spec, now)
        # What the healer saw of it, its time aside: a new read with the same consumers and
        # backlog changes nothing while the healer has nothing to watch.
        seen = None if subscription is None else (subscription.consumers, subscription.backlog)
        if not unchanged(settled, status=status, dependencies=self._requires(spec),
                         changed=self.store.changed, latest=self.store.latest,
                         staleness=self.staleness, default_stale=DEFAULT_STALE_SECONDS, now=now,
                         probes=state.pod_probes, consumers=seen):
            return False
        state.status = status
        state.skipped = (settled.recommended, now)
        state.woken_by_read_at = None
        self.telemetry.observe_skip(spec.namespace, spec.name)
        if self.on_decision is not None and state.decision is not None:
            self.on_decision(state.decision, status)
        return True

    def _tick_keys(self, woken: list[str], now: float) -> list[str]:
        """For a tick: the workloads to look at, after those an event woke; the quiet ones are
        skipped without being touched, so a tick costs what changed, not how many there are.

        A workload is quiet from a tick on which it was skipped (its inputs unchanged since a
        settled evaluation) while the watches of its namespace were in sync, until an event
        wakes it or something marks it dirty: a field it watches, a dependency it requires, a
        source of it gone stale (marked here first). Until then a check would pass: its
        Deployment and pods are as they were (a change would have come as an event), and
        failing app probes wake it. A namespace whose watches are out of sync has no quiet
        workloads; nor has a daemon whose `on_decision` wants to see every skip."""
        self._mark_stale_sources(now)
        for key in [*woken, *self.store.dirty]:
            state = self.workloads.get(key)
            if state is not None:
                self._unquiet(state)
        self._synced = {ns: self.on_decision is None and self.a.cluster.watches_synced(ns)
                        for ns in self._namespaces}
        for ns, synced in self._synced.items():
            if not synced:
                for key in list(self._quiet.get(ns, ())):
                    self._unquiet(self.workloads[key])
        self._ticks += 1
        self._tick_at = now
        seen = set(woken)
        return [*woken, *(key for key in self._loud if key not in seen)]

    def _enter_quiet(self, state: WorkloadState) -> None:
        """After a tick skipped `state` with a check: quiet from this tick, if it may be."""
        spec = state.spec
        if self._synced.get(spec.namespace, False):
            state.quiet_since = self._ticks
            self._loud.pop(spec.key, None)
            self._quiet.setdefault(spec.namespace, {})[spec.key] = None

    def _unquiet(self, state: WorkloadState) -> None:
        """End `state`'s quiet, recording the ticks that skipped it as `_skip` would have:
        the count, and the proposal at the last of them."""
        since = state.quiet_since
        if since is None:
            return
        spec = state.spec
        skipped = self._ticks - since
        skips = self.telemetry.skips
        with skips.lock:  # a scrape counts these skips as pending or as counted, never both
            state.quiet_since = None
            if skipped:
                skips.count[spec.namespace, spec.name] += skipped
        if skipped and state.settled is not None:
            state.skipped = (state.settled.recommended, self._tick_at)
        self._quiet.get(spec.namespace, {}).pop(spec.key, None)
        self._loud[spec.key] = None

    def _quiet_skips(self) -> list[tuple[tuple[str, str], int]]:
        """The skips of the quiet workloads not yet recorded; read by a scrape's thread under
        the skip counts' lock, from copies (a dict copied whole is one step under the GIL)."""
        out: list[tuple[tuple[str, str], int]] = []
        ticks = self._ticks
        for ns, keys in list(self._quiet.items()):
            for key in list(keys):
                state = self.workloads.get(key)
                since = None if state is None else state.quiet_since
                if state is not None and since is not None and ticks > since:
                    out.append(((ns, state.spec.name), ticks - since))
        return out

    def _mark_stale_sources(self, now: float) -> None:
        """Mark dirty the watchers of every source whose last read is older than its limit."""
        reads = self._last_read
        if not reads or now - min(reads.values()) <= self._shortest_limit:
            return  # none is: a tick pays one C-level min() for it
        for name, at in reads.items():
            limit, fields = self._freshness[name]
            if now - at > limit:
                for field_name in fields:
                    self.store.mark_dirty(field_name)

    async def evaluate_workload(self, state: WorkloadState, *, retries: int = 1,
                                confirm: bool = True) -> Decision | None:
        spec = state.spec
        clock = self.a.clock
        self.store.dirty.discard(spec.key)  # checked in full now: later changes mark it again
        self._unquiet(state)
        try:
            status = await self.a.cluster.get_workload(spec.namespace, spec.deployment)
        except Exception as exc:  # a read failure (403, 404, 5xx) holds the workload this round
            log.warning("workload_read_failed", workload=spec.key, error=str(exc))
            reason = getattr(exc, "reason", "") or type(exc).__name__
            self.telemetry.workload_read_errors.labels(spec.namespace, spec.name, reason).inc()
            self.telemetry.workload_read_failing.labels(spec.namespace, spec.name).set(1)
            text = str(exc)  # a KubeError's text begins with its reason already
            state.read_error = text if text.startswith(reason) else f"{reason}: {text}"
            return None
        if state.read_error is not None:
            self.telemetry.workload_read_failing.labels(spec.namespace, spec.name).set(0)
            state.read_error = None
        self._check_kept(state, status)
        now = clock.now()
        if self._skip(state, status, now):
            return state.decision
        state.status = status
        requires = self._requires(spec)
        subscription = self._subscription(spec, now)
        seen = None if subscription is None else (subscription.consumers, subscription.backlog)
        version = self.store.version
        # The first look starts the memory with the current count (a no-op ever after).
        history = first_recommendation(state.catch_up(), current=status.replicas, now=now)
        started = time.perf_counter()
        result = evaluate(spec, status=status, signals=self.signals_for(spec),
                          dependencies=self.store.dependencies, history=history, now=now,
                          staleness=self.staleness, signal_history=self.history_for(spec),
                          consumers=None if subscription is None else subscription.consumers)
        self.telemetry.evaluation_seconds.observe(time.perf_counter() - started)
        decision = result.decision
        state.history = result.history
        woken_at, state.woken_by_read_at = state.woken_by_read_at, None
        # Restarts come first, so that a scale-down sees the replacement it would remove
        # (`scale_down_hold`); a paused workload is held whole, its pods included.
        if decision.action is not Action.PAUSE:
            await self._heal(state, status, subscription, confirm=confirm)
        held = scale_down_hold(state.heal_plan, state.healing, now=clock.now(),
                               settings=spec.settings.healing) \
            if decision.changes and decision.desired < decision.current else None
        if held is not None:
            decision = _instead(decision, Action.HOLD, held)
        if self.check_conflicts and (decision.changes or state.conflict):
            # A conflict found is looked at again (each CONFLICT_CHECK_SECONDS) until it is
            # gone, a change wanted or not: its gauge, and the hold it puts on the replica
            # check, end with it.
            conflict = await self._conflict(state, now)
            if conflict and decision.changes:
                decision = _instead(decision, Action.HOLD, f"ConflictingAutoscaler:{conflict}")
        if decision.changes and confirm:
            unconfirmed = await self._confirm(spec, now)
            if unconfirmed:
                decision = _instead(decision, Action.FREEZE, *unconfirmed)
        leader = self.a.leadership.is_leader()
        state.decision = decision
        self.telemetry.observe_decision(decision, ready=status.ready_replicas, leader=leader)
        if self.on_decision is not None:
            self.on_decision(decision, status)
        healing = spec.settings.healing
        # Not settled while a conflict is known: time alone brings its next look.
        state.settled = None if state.conflict else settle(
            result.decision, policies=len(spec.policies), min_replicas=spec.settings.min,
            max_replicas=spec.settings.max, status=status, version=version,
            dependencies=requires, watched=state.watched, needed=spec.signal_names(),
            healing_quiet=not healing.enabled or healing_quiet(
                state.heal_plan, state.healing, pods=status.pods, probes=state.pod_probes),
            consumers=seen)
        if not decision.changes:
            return decision
        log.info("decision", workload=spec.key, action=decision.action.value,
                 current=decision.current, desired=decision.desired,
                 reasons=list(decision.reasons), leader=leader, dry_run=self.dry_run)
        if not leader or self.dry_run or now < state.backoff_until:
            return decision
        withheld = self._withheld(state, status, decision, decided_at=now, version=version)
        if withheld:
            log.warning("write_withheld", workload=spec.key, current=decision.current,
                        desired=decision.desired, reasons=list(withheld))
            self.telemetry.writes_withheld.labels(
                spec.namespace, spec.name,
                "stopping" if withheld[0].startswith("Stopping") else "decision_changed").inc()
            if not self._closing:
                self.wake([spec.key])  # decide again on what holds now
            return decision
        await self._scale(state, status, decision, woken_at=woken_at, retries=retries)
        return decision

    def _withheld(self, state: WorkloadState, status: WorkloadStatus, decision: Decision, *,
                  decided_at: float, version: int) -> tuple[str, ...]:
        """Why `decision` must not be written now; empty when it may.

        The awaits since it was taken (the restart, the conflict check, the dependency check)
        can outlast what it rests on: the daemon may be stopping or reloading, and a signal may
        have failed or grown stale. A decision taken on inputs that changed since is taken again
        on the inputs of now, and written only if it is the same. (The lease is read after the
        last of those awaits, just before this.)
        """
        if self._closing:
            return ("Stopping: the daemon is stopping or reloading its config",)
        now = self.a.clock.now()
        if now == decided_at and self.store.version == version:
            return ()
        spec = state.spec
        subscription = self._subscription(spec, now)
        again = evaluate(spec, status=status, signals=self.signals_for(spec),
                         dependencies=self.store.dependencies, history=state.history, now=now,
                         staleness=self.staleness, signal_history=self.history_for(spec),
                         consumers=None if subscription is None else subscription.consumers,
                         ).decision
        if again.action is Action.SCALE and again.desired == decision.desired:
            return ()
        return (f"DecisionChanged: {again.action.value} {again.current} -> {again.desired}",
                *again.reasons)

    # ----------------------------------------------------------------- healing
    async def _probe_pods(self, state: WorkloadState) -> None:
        """Run the workload's app-level HTTP probe on each of its pods, every period."""
        prober = self.a.pod_prober
        settings = state.spec.settings.healing.http_probe
        assert prober is not None and settings is not None
        while True:
            started = self.a.clock.now()
            pods = [p for p in (state.status.pods if state.status else ()) if not p.deleting]
            results = await asyncio.gather(*(prober.check(p, settings) for p in pods))
            records: dict[str, ProbeRecord] = {}
            for pod, result in zip(pods, results, strict=True):
                before = state.pod_probes.get(pod.name, ProbeRecord(0))
                records[pod.name] = (ProbeRecord(0) if result.ok else
                                     ProbeRecord(before.failures + 1, result.reason))
            state.pod_probes = records
            if any(r.failures for r in records.values()):
                self.wake([state.spec.key])
            await self.a.clock.sleep(max(0.0, settings.period_seconds
                                         - (self.a.clock.now() - started)))

    def _subscription(self, spec: WorkloadSpec, now: float) -> SubscriptionRead | None:
        """The last read of the subscription the healer watches for stuck consumers; None when
        it watches none, or the read is failing or stale. Its time tells a new read from one
        evaluated again (the healer counts reads, like probe failures)."""
        source = spec.settings.healing.consumer_source
        if source is None:
            return None
        consumers = self.store.latest.get(f"{source}.consumers")
        backlog = self.store.latest.get(f"{source}.backlog")
        limit = self.staleness.get(f"{source}.backlog", 10.0)
        if (consumers is None or backlog is None or not consumers.ok or not backlog.ok
                or backlog.value is None or backlog.age(now) > limit):
            return None
        return SubscriptionRead(consumers.read_at, backlog.value, consumers.consumers)

    def _recheck(self, key: str) -> None:
        state = self.workloads.get(key)
        if state is not None:
            state.heal_recheck = False
            self.wake([key])

    async def _heal(self, state: WorkloadState, status: WorkloadStatus,
                    subscription: SubscriptionRead | None, *, confirm: bool = True) -> None:
        spec = state.spec
        settings = spec.settings.healing
        if not settings.enabled:
            return
        now = self.a.clock.now()
        # The breaker as remembered, not as last planned: one handed over open is no news.
        previous = state.healing.breaker.state
        result = plan(workload=spec.key, settings=settings, pods=status.pods, now=now,
                      wall_now=self.a.wall(), memory=state.healing, probes=state.pod_probes,
                      subscription=subscription, requires=spec.settings.requires,
                      dependencies=self.store.dependencies)
        state.healing, state.heal_plan = result.memory, result
        self.telemetry.observe_healing(spec.namespace, spec.name, result)
        if not state.heal_recheck and (
                any(t.idle_since is not None or t.not_ready_since is not None
                    for t in result.memory.pods)
                or any(r.failures for r in state.pod_probes.values())):
            # A suspicion is maturing: look again in a second rather than at the next tick, so
            # a stuck consumer is restarted when its limit passes, not up to a tick later.
            state.heal_recheck = True
            asyncio.get_running_loop().call_later(HEAL_RECHECK_SECONDS, self._recheck, spec.key)
        if result.breaker is BreakerState.OPEN and previous is not BreakerState.OPEN:
            log.error("breaker_opened", workload=spec.key, reasons=list(result.reasons))
            self._emit(spec, reason="HealingBreakerOpen", warning=True,
                       message=f"Healing stopped: {'; '.join(result.reasons)}")
        restart = result.restart
        if restart is None:
            return
        leader = self.a.leadership.is_leader()
        log.info("restart_planned", workload=spec.key, pod=restart.pod, kind=restart.kind.value,
                 reason=restart.reason.value, evidence=restart.evidence, leader=leader,
                 dry_run=self.dry_run)
        if not leader or self.dry_run or self._closing:
            return
        # The plan read the periodic checks, which may be a period old: like a scale write, a
        # restart waits for a check of each required dependency begun now.
        if confirm and (unconfirmed := await self._confirm(spec, now)):
            log.warning("restart_withheld", workload=spec.key, pod=restart.pod,
                        reasons=list(unconfirmed))
            return
        if self._closing or not self.a.leadership.is_leader():
            return
        act = (self.a.cluster.evict if restart.kind is RestartKind.EVICT
               else self.a.cluster.delete_pod)
        # A pod judged by its status must still be the version judged: a 409 otherwise, and the
        # next evaluation judges it afresh (`Restart.resource_version`).
        outcome = await act(spec.namespace, restart.pod,
                            resource_version=restart.resource_version)
        state.healing = record_outcome(state.healing, restart=restart, outcome=outcome.outcome,
                                       now=self.a.clock.now(), retry_after=outcome.retry_after)
        if outcome.outcome is not WriteOutcome.DONE:
            log.warning("restart_refused", workload=spec.key, pod=restart.pod,
                        outcome=outcome.outcome.value, message=outcome.message)
            return
        self.telemetry.restarts.labels(spec.namespace, spec.name, restart.reason.value).inc()
        self._emit(spec, reason="PodRestarted",
                   message=f"Restarted pod {restart.pod} ({restart.kind.value}): "
                           f"{restart.reason.value}: {restart.evidence}")

    async def _conflict(self, state: WorkloadState, now: float) -> str | None:
        if now - state.conflict_checked_at >= CONFLICT_CHECK_SECONDS:
            spec = state.spec
            try:
                state.conflict = await self.a.cluster.conflicting_autoscaler(spec.namespace,
                                                                             spec.deployment)
            except Exception as exc:  # unknown is not a conflict; the write path still guards
                log.warning("conflict_check_failed", workload=spec.key, error=str(exc))
            state.conflict_checked_at = now
            self.telemetry.conflicts.labels(spec.namespace, spec.name).set(
                1 if state.conflict else 0)
            if state.conflict:
                log.error("conflicting_autoscaler", workload=spec.key, other=state.conflict)
        return state.conflict

    async def _scale(self, state: WorkloadState, status: WorkloadStatus, decision: Decision, *,
                     woken_at: float | None, retries: int) -> None:
        spec = state.spec
        clock = self.a.clock
        # Shielded and remembered: shutdown waits for it, so no write is left half-done.
        write = asyncio.ensure_future(self.a.cluster.scale(
            spec.namespace, spec.deployment, replicas=decision.desired,
            resource_version=status.resource_version))
        self._writes.add(write)
        write.add_done_callback(self._writes.discard)
        result = await asyncio.shield(write)
        self.telemetry.scale_writes.labels(spec.namespace, spec.name, result.outcome.value).inc()
        now = clock.now()
        if result.outcome is WriteOutcome.DONE:
            state.kept = (decision.desired, status.generation, True)
            state.history = record_scale(state.history, now=now, old=decision.current,
                                         new=decision.desired)
            if woken_at is not None:
                self.telemetry.reaction_seconds.observe(max(0.0, now - woken_at))
            self._emit(spec, reason="SuccessfulRescale",
                       message=f"New size: {decision.desired}; "
                               f"reason: {'; '.join(decision.reasons)}")
            return
        if result.outcome is WriteOutcome.CONFLICT and retries > 0:
            log.info("scale_conflict_reread", workload=spec.key, message=result.message)
            await self.evaluate_workload(state, retries=retries - 1)
            return
        delay = result.retry_after or WRITE_BACKOFF_SECONDS
        state.backoff_until = now + delay
        log.warning("scale_failed", workload=spec.key, outcome=result.outcome.value,
                    message=result.message, retry_in_s=delay)
        self._emit(spec, reason="FailedRescale", warning=True,
                   message=f"New size: {decision.desired}; error: {result.message}")

    def _check_kept(self, state: WorkloadState, status: WorkloadStatus) -> None:
        """Whether the Deployment still has the replica count this daemon set (or last saw).
        When another writer changed it (a manual scale, a GitOps sync of a manifest that sets
        `replicas`, another controller), say so once per change: a warning and a
        `ReplicasChangedElsewhere` Event, which name the writer's field manager when the
        cluster's managedFields do, and `replicas_changed_elsewhere_total`; the policies
        then decide as ever, so a writer that keeps setting it is fought, and now seen. A read
        of the generation the count was set at, or older, predates it (a lagging watch) and
        is passed over. Only a leader that writes reports: a standby, a dry run, a paused
        workload and one that an HPA or ScaledObject also targets (held, and reported as such)
        follow the count. So does a new leader, until a newer generation than it knew
        as a standby: that one may be the old leader's last write, which its watch had not yet
        shown, unless the cluster names another writer of the count than this autoscaler."""
        kept = state.kept
        if not status.generation or (kept is not None and status.generation <= kept[1]):
            return
        leading = self.a.leadership.is_leader()
        state.kept = (status.replicas, status.generation, leading)
        if kept is None:  # exported from 0, so that its first increase shows
            self.telemetry.replicas_changed_elsewhere.labels(state.spec.namespace,
                                                             state.spec.name)
        writer = status.replicas_set_by
        inherited = kept is not None and not kept[2] and writer in ("", FIELD_MANAGER)
        if (kept is None or inherited or kept[0] == status.replicas or status.paused
                or self.dry_run or not leading or state.conflict):
            return
        spec = state.spec
        log.warning("replicas_changed_elsewhere", workload=spec.key, kept=kept[0],
                    found=status.replicas, set_by=writer or "unknown")
        self.telemetry.replicas_changed_elsewhere.labels(spec.namespace, spec.name).inc()
        by = (f'field manager "{writer}" set it' if writer else "another writer changed it")
        self._emit(spec, reason="ReplicasChangedElsewhere", warning=True,
                   message=f"spec.replicas is {status.replicas}, not the {kept[0]} this "
                           f"autoscaler left it at: {by} (a manual scale, a GitOps sync of a "
                           "manifest with replicas, another controller). "
                           + ("At 0 it stays at 0 until someone scales it up (as with the HPA)"
                              if not status.replicas else
                              "Its policies scale it as before; to keep the count, pause it "
                              f"({PAUSE_ANNOTATION}=true) or leave replicas out of the "
                              "manifests"))

    def _emit(self, spec: WorkloadSpec, *, reason: str, message: str,
              warning: bool = False) -> None:
        """Post an Event about the workload in the background (see `EVENTS_IN_FLIGHT`)."""
        if len(self._events) >= EVENTS_IN_FLIGHT:
            log.warning("event_dropped", workload=spec.key, reason=reason,
                        waiting=len(self._events))
            return

        async def post() -> None:
            with contextlib.suppress(Exception):  # the port logs its failures
                await self.a.cluster.emit_event(spec.namespace, spec.deployment, reason=reason,
                                                message=message, warning=warning)

        task = asyncio.create_task(post(), name=f"event:{spec.key}")
        self._events.add(task)
        task.add_done_callback(self._events.discard)
