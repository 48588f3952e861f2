"""The healer's choice: which pods of a workload are sick, and whether one may be restarted now.

Pure, like `evaluate`: the daemon passes in a workload's pods, the HTTP probe tallies it keeps,
the Pulsar consumer stats of the workload's subscription, the dependency states, both clocks and
the healer's memory; `plan` gives back the verdicts, at most one `Restart` and the new memory.
The daemon performs the eviction (`kube/`) and reports how it went with `record_outcome`.
Neighbours: `config.Healing` (the settings), `gate.dependency_reasons` (rule 1: never restart
during an outage), the daemon (feeds, acts, emits Events and metrics).

Clocks: `now` is the daemon's monotonic clock and every time kept in `HealingMemory` uses it;
`wall_now` is epoch seconds and is only compared with `PodInfo.started_at`, which comes from the
apiserver's clock. A pod without a start time has not started and is never judged.

Rules, in the order `plan` applies them (each blocking reason is an operator-greppable word):
- a required dependency down or unknown: `DependencyDown:<name>` / `DependencyUnknown:<name>`;
- `HealingDisabled`; `BreakerOpen` (see below); `NoUnhealthyPods`;
- `OutageRecovery`: for `startup_grace_seconds` after an outage the pods get their start-up grace
  again (their symptoms are the outage's), and the NotReady and StuckConsumer clocks restart;
- `RestartInFlight`: the last restart's replacement is not ready yet and `restart_timeout` has
  not passed;
- `BreakerHalfOpen`: after an automatic reset one trial restart must settle before the next;
- `EvictionThrottled`: a 429 (PodDisruptionBudget) asked to wait; the eviction is retried after
  the apiserver's Retry-After or `THROTTLE_RETRY_SECONDS`. It never becomes a delete unless the
  workload sets `allow_delete`, and then only after `DELETE_AFTER_THROTTLES` consecutive 429s for
  the same pod; every other budget still holds for that delete;
- `RestartBudget`: `max_restarts` restarts already happened within `window_seconds`;
- `Backoff`: after n consecutive restarts the next waits `backoff_seconds * 2**(n-1)` after the
  last. Restarts are consecutive while less than `window_seconds` separate them, so a workload
  quiet for a whole window starts over (the wait never usefully exceeds the window);
- `MinAvailable`: restarting would leave fewer than `min_available` ready pods (restarting a pod
  that is not ready does not lower the count).
Among the allowed sick pods the healer restarts a not-ready one first, then by symptom in the
order of `Symptom`, then by name.

The breaker: a restart settles FAILED when its replacement gets a verdict or is not ready within
`restart_timeout`, and HEALTHY when the replacement is ready, out of its grace and free of
verdicts once `restart_timeout` has passed. `breaker_threshold` FAILED in a row open the breaker:
no restart until `reset_breaker` (a person) or `breaker_reset_seconds`. The timed reset is
half-open: one trial restart, whose failure opens the breaker again at once and whose success
closes it. A HEALTHY replacement resets the count. A restart still being followed when an outage
is seen is excused if its replacement fails: the outage, not the pod, is to blame.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from functools import lru_cache
from types import MappingProxyType

from autoscaler.config import Healing
from autoscaler.engine.gate import dependency_reasons
from autoscaler.model import ConsumerStat, DependencyState, PodInfo
from autoscaler.ports import WriteOutcome

#: Wait before retrying an eviction refused with 429 when the apiserver names no Retry-After
#: (kubectl drain retries every 5 s).
THROTTLE_RETRY_SECONDS = 5.0
#: With `allow_delete`, consecutive 429s for the same pod after which the plan says delete.
DELETE_AFTER_THROTTLES = 3
CRASH_LOOP_BACK_OFF = "CrashLoopBackOff"


class Symptom(StrEnum):
    """Why a pod is judged unhealthy; the order is the restart priority."""

    PROBE_FAILED = "ProbeFailed"
    STUCK_CONSUMER = "StuckConsumer"
    NOT_READY = "NotReady"
    CRASH_LOOP = "CrashLoop"


@dataclass(frozen=True, slots=True)
class ProbeRecord:
    """The daemon's tally of one pod's app-level HTTP probe: consecutive failures, last error."""

    failures: int
    last_error: str = ""


@dataclass(frozen=True, slots=True)
class PodVerdict:
    """One symptom of one pod, with the evidence an operator reads in the Event and the log."""

    pod: str
    reason: Symptom
    evidence: str


class RestartKind(StrEnum):
    EVICT = "evict"
    DELETE = "delete"


@dataclass(frozen=True, slots=True)
class Restart:
    """The action: evict (or, opted in, delete) one pod, and why.

    `siblings` are the workload's pod names when it was chosen: its replacement is a pod that is
    not among them.
    """

    workload: str
    pod: str
    kind: RestartKind
    reason: Symptom
    evidence: str
    siblings: frozenset[str]


class Settled(StrEnum):
    PENDING = "pending"
    HEALTHY = "healthy"
    FAILED = "failed"
    EXCUSED = "excused"


#: Restarts that grew longer ago than this are not a crash loop: the kubelet's longest back-off
#: between two restarts of a crashing container is 5 min.
CRASH_RECENT = 330.0


@dataclass(frozen=True, slots=True)
class RestartRecord:
    """One restart that happened, followed until its replacement proves healthy or fails."""

    pod: str
    at: float
    siblings: frozenset[str]
    replacement: str = ""
    ready: bool = False
    excused: bool = False
    settled: Settled = Settled.PENDING


@dataclass(frozen=True, slots=True)
class PodTrack:
    """What the healer remembers of one pod between evaluations."""

    name: str
    restarts: int
    restarts_base: int
    restarts_grew_at: float
    not_ready_since: float | None = None
    idle_since: float | None = None


@dataclass(frozen=True, slots=True)
class Throttle:
    """Consecutive 429s for one pod and when the eviction may be tried again."""

    pod: str
    count: int
    retry_at: float


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class Breaker:
    state: BreakerState = BreakerState.CLOSED
    failures: int = 0
    opened_at: float = 0.0


@dataclass(frozen=True, slots=True)
class HealingMemory:
    """The healer's memory for one workload; the daemon keeps the latest `plan` returned.

    `restarts` are the restarts still followed or inside the budget window; `streak` counts the
    consecutive ones for the backoff; `frozen_at` is the last evaluation during an outage.
    """

    pods: tuple[PodTrack, ...] = ()
    restarts: tuple[RestartRecord, ...] = ()
    streak: int = 0
    throttles: tuple[Throttle, ...] = ()
    breaker: Breaker = Breaker()
    frozen_at: float | None = None


@dataclass(frozen=True, slots=True)
class HealingPlan:
    """The outcome of one evaluation: verdicts, the restart (if any), why, and the new memory."""

    workload: str
    verdicts: tuple[PodVerdict, ...]
    restart: Restart | None
    reasons: tuple[str, ...]
    breaker: BreakerState
    memory: HealingMemory


NO_PROBES: Mapping[str, ProbeRecord] = MappingProxyType({})
NO_DEPENDENCIES: Mapping[str, DependencyState] = MappingProxyType({})


def restart_timeout(settings: Healing) -> float:
    """How long a replacement may take to become ready, and how long it stays on probation.

    A pod not ready by then would be judged NotReady anyway: start-up grace plus the NotReady limit.
    """
    return settings.startup_grace_seconds + settings.not_ready_seconds


@lru_cache(maxsize=8192)
def consumer_ip(address: str) -> str:
    """The IP in a Pulsar consumer `address`: "/10.1.2.3:41234" -> "10.1.2.3" (IPv6 too).
    Remembered: every evaluation matches every pod against every consumer."""
    host = address.rsplit("/", 1)[-1]
    if host.startswith("["):
        host = host[1:].split("]", 1)[0]
    elif host.count(":") == 1 or (host.count(":") > 1 and not _is_ip(host)):
        host = host.rsplit(":", 1)[0]
    return _normal_ip(host)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


@lru_cache(maxsize=8192)
def _normal_ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return text


def _secs(value: float) -> str:
    return f"{value:.0f}s"


def _age(pod: PodInfo, wall_now: float) -> float | None:
    """Seconds since the pod started, or None if it has not started."""
    if pod.started_at <= 0 or not math.isfinite(pod.started_at):
        return None
    return max(0.0, wall_now - pod.started_at)


def _stuck_evidence(pod: PodInfo, consumers: Sequence[ConsumerStat], backlog: float | None) -> str:
    """Evidence that the pod's consumers drain nothing while others progress, or ""."""
    if backlog is None or not backlog > 0 or not pod.ip:
        return ""
    ip = _normal_ip(pod.ip)
    mine = [c for c in consumers if consumer_ip(c.address) == ip]
    moving = [c for c in consumers if consumer_ip(c.address) != ip and c.msg_rate_out > 0]
    if not mine or not moving or any(c.msg_rate_out != 0 for c in mine):
        return ""
    names = ", ".join(c.name for c in mine)
    return (f"consumer {names} at {ip} drains 0 msg/s while the backlog is {backlog:g} and "
            f"{len(moving)} other consumer(s) progress")


def _track(prev: PodTrack | None, pod: PodInfo, *, now: float, stuck: bool,
           window: float) -> PodTrack:
    if prev is None or pod.restarts < prev.restarts:
        base, grew_at = pod.restarts, now
    elif pod.restarts > prev.restarts:
        base, grew_at = prev.restarts_base, now
    elif now - prev.restarts_grew_at >= window:
        base, grew_at = pod.restarts, prev.restarts_grew_at
    else:
        base, grew_at = prev.restarts_base, prev.restarts_grew_at
    not_ready_since = None if pod.ready else (
        prev.not_ready_since if prev and prev.not_ready_since is not None else now)
    idle_since = (prev.idle_since if prev and prev.idle_since is not None else now) if stuck \
        else None
    return PodTrack(name=pod.name, restarts=pod.restarts, restarts_base=base,
                    restarts_grew_at=grew_at, not_ready_since=not_ready_since,
                    idle_since=idle_since)


def _diagnose(
    *, settings: Healing, pods: Sequence[PodInfo], now: float, wall_now: float,
    probes: Mapping[str, ProbeRecord], consumers: Sequence[ConsumerStat],
    backlog: float | None, memory: HealingMemory,
) -> tuple[tuple[PodVerdict, ...], tuple[PodTrack, ...]]:
    """Verdicts for the pods out of their grace, and the updated per-pod memory."""
    known = {t.name: t for t in memory.pods}
    verdicts: list[PodVerdict] = []
    tracks: list[PodTrack] = []
    for pod in pods:
        stuck = _stuck_evidence(pod, consumers, backlog)
        track = _track(known.get(pod.name), pod, now=now, stuck=bool(stuck),
                       window=settings.window_seconds)
        tracks.append(track)
        age = _age(pod, wall_now)
        if pod.deleting or age is None or age < settings.startup_grace_seconds:
            continue
        # Time-based symptoms count only after the grace and after the last outage.
        judged_from = max(now - (age - settings.startup_grace_seconds),
                          memory.frozen_at if memory.frozen_at is not None else -math.inf)
        verdicts.extend(_judge(pod, track, settings=settings, now=now, judged_from=judged_from,
                               probe=probes.get(pod.name), stuck=stuck))
    return tuple(verdicts), tuple(tracks)


def _judge(pod: PodInfo, track: PodTrack, *, settings: Healing, now: float, judged_from: float,
           probe: ProbeRecord | None, stuck: str) -> list[PodVerdict]:
    """Every symptom of one pod that is out of its grace."""
    found: list[PodVerdict] = []
    http = settings.http_probe
    if http and probe and probe.failures >= http.failure_threshold:
        found.append(PodVerdict(pod.name, Symptom.PROBE_FAILED,
                                f"probe {http.path} failed {probe.failures}/"
                                f"{http.failure_threshold}, last error "
                                f"{probe.last_error or 'unknown'}"))
    if track.idle_since is not None:
        idle = now - max(track.idle_since, judged_from)
        if idle > settings.stuck_consumer_seconds:
            found.append(PodVerdict(pod.name, Symptom.STUCK_CONSUMER,
                                    f"{stuck} for {_secs(idle)} "
                                    f"(limit {_secs(settings.stuck_consumer_seconds)})"))
    if track.not_ready_since is not None:
        waited = now - max(track.not_ready_since, judged_from)
        if waited > settings.not_ready_seconds:
            found.append(PodVerdict(pod.name, Symptom.NOT_READY,
                                    f"not ready for {_secs(waited)} "
                                    f"(limit {_secs(settings.not_ready_seconds)})"))
    grown = pod.restarts - track.restarts_base
    if pod.waiting_reason == CRASH_LOOP_BACK_OFF:
        found.append(PodVerdict(pod.name, Symptom.CRASH_LOOP,
                                f"waiting in {CRASH_LOOP_BACK_OFF}, {pod.restarts} restarts"))
    elif grown >= settings.crashloop_restarts and now - track.restarts_grew_at <= CRASH_RECENT:
        # "Keeps growing": a crash loop restarts at least every 5 min (the kubelet's longest
        # back-off); growth older than that is history of a pod that has since recovered.
        found.append(PodVerdict(pod.name, Symptom.CRASH_LOOP,
                                f"restarts grew {track.restarts_base} -> {pod.restarts} "
                                f"(limit +{settings.crashloop_restarts})"))
    return found


def _settle(
    records: Sequence[RestartRecord], *, pods: Sequence[PodInfo], sick: frozenset[str],
    now: float, wall_now: float, settings: Healing, frozen: bool,
) -> tuple[RestartRecord, ...]:
    """Follow each pending restart's replacement: ready (no longer in flight), healthy, failed."""
    by_name = {p.name: p for p in pods}
    claimed = {r.replacement for r in records if r.replacement}
    timeout = restart_timeout(settings)
    out: list[RestartRecord] = []
    for record in records:
        if record.settled is not Settled.PENDING:
            out.append(record)
            continue
        replacement = record.replacement
        if not replacement:
            fresh = sorted((p for p in pods if p.name not in record.siblings
                            and p.name not in claimed and not p.deleting),
                           key=lambda p: (p.started_at <= 0, p.started_at, p.name))
            if fresh:
                replacement = fresh[0].name
                claimed.add(replacement)
        pod = by_name.get(replacement) if replacement else None
        ready = record.ready or (pod is not None and pod.ready and not pod.deleting)
        excused = record.excused or frozen
        age = _age(pod, wall_now) if pod else None
        if replacement and pod is None:
            # Gone before it proved itself: a replacement that never became ready failed (a
            # scale-down removes not-ready pods first, so it would otherwise hide a crash loop).
            settled = Settled.EXCUSED if ready or excused else Settled.FAILED
        elif replacement in sick or (not ready and now - record.at >= timeout):
            settled = Settled.EXCUSED if excused else Settled.FAILED
        elif (ready and now - record.at >= timeout and age is not None
              and age >= settings.startup_grace_seconds):
            settled = Settled.HEALTHY
        else:
            settled = Settled.PENDING
        out.append(replace(record, replacement=replacement, ready=ready, excused=excused,
                           settled=settled))
    return tuple(out)


def restart_in_flight(memory: HealingMemory, *, now: float, settings: Healing) -> bool:
    """A restart whose replacement is not ready yet, within `restart_timeout`: the scaler must
    not remove that replacement (a scale-down takes not-ready pods first)."""
    timeout = restart_timeout(settings)
    return any(not r.ready and r.settled is Settled.PENDING and now - r.at < timeout
               for r in memory.restarts)


def _update_breaker(breaker: Breaker, *, before: Sequence[RestartRecord],
                    after: Sequence[RestartRecord], now: float, settings: Healing) -> Breaker:
    if (breaker.state is BreakerState.OPEN
            and now - breaker.opened_at >= settings.breaker_reset_seconds):
        breaker = Breaker(BreakerState.HALF_OPEN, settings.breaker_threshold - 1,
                          breaker.opened_at)
    for old, new in zip(before, after, strict=True):
        if old.settled is not Settled.PENDING or breaker.state is BreakerState.OPEN:
            continue
        if new.settled is Settled.FAILED:
            failures = breaker.failures + 1
            if failures >= settings.breaker_threshold:
                breaker = Breaker(BreakerState.OPEN, failures, now)
            else:
                breaker = replace(breaker, failures=failures)
        elif new.settled is Settled.HEALTHY:
            breaker = Breaker()
    return breaker


def reset_breaker(memory: HealingMemory) -> HealingMemory:
    """A person closes the breaker: healing resumes at once, the failure count starts over."""
    return replace(memory, breaker=Breaker())


def record_outcome(memory: HealingMemory, *, restart: Restart, outcome: WriteOutcome,
                   now: float, retry_after: float | None = None) -> HealingMemory:
    """Remember how the eviction (or delete) of `plan`'s restart went.

    DONE: the restart is in flight and counts against the budget and the backoff. THROTTLED
    (429, a PodDisruptionBudget): retry after `retry_after` or `THROTTLE_RETRY_SECONDS`; nothing
    happened, so no budget is spent. Anything else (NOT_FOUND, CONFLICT, FORBIDDEN, FAILED):
    forgotten, the next evaluation decides afresh.
    """
    others = tuple(t for t in memory.throttles if t.pod != restart.pod)
    if outcome is WriteOutcome.DONE:
        record = RestartRecord(pod=restart.pod, at=now, siblings=restart.siblings)
        return replace(memory, restarts=(*memory.restarts, record), streak=memory.streak + 1,
                       throttles=others)
    if outcome is WriteOutcome.THROTTLED:
        count = next((t.count for t in memory.throttles if t.pod == restart.pod), 0) + 1
        wait = retry_after if retry_after is not None and retry_after > 0 \
            else THROTTLE_RETRY_SECONDS
        return replace(memory, throttles=(*others, Throttle(restart.pod, count, now + wait)))
    return replace(memory, throttles=others)


def _primary(verdicts: Sequence[PodVerdict]) -> PodVerdict:
    order = list(Symptom)
    return min(verdicts, key=lambda v: order.index(v.reason))


def plan(
    *,
    workload: str,
    settings: Healing,
    pods: Sequence[PodInfo],
    now: float,
    wall_now: float,
    memory: HealingMemory,
    probes: Mapping[str, ProbeRecord] = NO_PROBES,
    consumers: Sequence[ConsumerStat] = (),
    backlog: float | None = None,
    requires: Sequence[str] = (),
    dependencies: Mapping[str, DependencyState] = NO_DEPENDENCIES,
) -> HealingPlan:
    """Judge the workload's pods and choose at most one to restart, within every budget."""
    verdicts, tracks = _diagnose(settings=settings, pods=pods, now=now, wall_now=wall_now,
                                 probes=probes, consumers=consumers, backlog=backlog,
                                 memory=memory)
    frozen = dependency_reasons(requires, dependencies)
    sick = frozenset(v.pod for v in verdicts)
    records = _settle(memory.restarts, pods=pods, sick=sick, now=now, wall_now=wall_now,
                      settings=settings, frozen=bool(frozen))
    breaker = _update_breaker(memory.breaker, before=memory.restarts, after=records, now=now,
                              settings=settings)
    window = settings.window_seconds
    timeout = restart_timeout(settings)
    last_at = max((r.at for r in records), default=None)
    streak = memory.streak if last_at is not None and now - last_at < window else 0
    present = {p.name for p in pods}
    new_memory = HealingMemory(
        pods=tracks,
        restarts=tuple(r for r in records if r.settled is Settled.PENDING
                       or now - r.at < max(window, timeout)),
        streak=streak,
        throttles=tuple(t for t in memory.throttles if t.pod in present),
        breaker=breaker,
        frozen_at=now if frozen else memory.frozen_at,
    )

    def hold(*reasons: str) -> HealingPlan:
        return HealingPlan(workload=workload, verdicts=verdicts, restart=None, reasons=reasons,
                           breaker=breaker.state, memory=new_memory)

    if frozen:
        return hold(*frozen)
    if not settings.enabled:
        return hold("HealingDisabled")
    if breaker.state is BreakerState.OPEN:
        return hold(f"BreakerOpen: {breaker.failures} replacements failed in a row; resets in "
                    f"{_secs(breaker.opened_at + settings.breaker_reset_seconds - now)} "
                    f"or by hand")
    if not verdicts:
        return hold("NoUnhealthyPods")
    if memory.frozen_at is not None and now - memory.frozen_at < settings.startup_grace_seconds:
        return hold(f"OutageRecovery: dependencies back for {_secs(now - memory.frozen_at)}, "
                    f"grace {_secs(settings.startup_grace_seconds)}")
    for r in records:
        if not r.ready and now - r.at < timeout:
            waiting = f"replacement {r.replacement}" if r.replacement else "no replacement yet"
            return hold(f"RestartInFlight: {r.pod} restarted {_secs(now - r.at)} ago, "
                        f"{waiting} not ready")
    if breaker.state is BreakerState.HALF_OPEN:
        trial = next((r for r in records if r.settled is Settled.PENDING), None)
        if trial is not None:
            return hold(f"BreakerHalfOpen: waiting for the replacement of {trial.pod} to prove "
                        f"healthy")
    throttled = [t for t in new_memory.throttles if t.retry_at > now]
    if throttled:
        t = throttled[0]
        return hold(f"EvictionThrottled: eviction of {t.pod} refused {t.count}x (429), retry in "
                    f"{_secs(t.retry_at - now)}")
    recent = sum(1 for r in records if now - r.at < window)
    if recent >= settings.max_restarts:
        return hold(f"RestartBudget: {recent} restarts in the last {_secs(window)} "
                    f"(max {settings.max_restarts})")
    if streak > 0 and last_at is not None:
        wait = settings.backoff_seconds * 2 ** (streak - 1)
        if now - last_at < wait:
            return hold(f"Backoff: {streak} restart(s) in a row, next {_secs(wait)} after the "
                        f"last (in {_secs(last_at + wait - now)})")

    by_pod: dict[str, list[PodVerdict]] = {}
    for v in verdicts:
        by_pod.setdefault(v.pod, []).append(v)
    live = [p for p in pods if not p.deleting]
    ready = sum(1 for p in live if p.ready)
    order = list(Symptom)
    candidates = sorted(
        (p for p in live
         if p.name in by_pod and (not p.ready or ready - 1 >= settings.min_available)),
        key=lambda p: (p.ready, order.index(_primary(by_pod[p.name]).reason), p.name))
    if not candidates:
        return hold(f"MinAvailable: restarting would leave fewer than {settings.min_available} "
                    f"ready pods ({ready} ready)")
    chosen = candidates[0]
    verdict = _primary(by_pod[chosen.name])
    throttles = next((t.count for t in new_memory.throttles if t.pod == chosen.name), 0)
    kind = RestartKind.DELETE if settings.allow_delete and throttles >= DELETE_AFTER_THROTTLES \
        else RestartKind.EVICT
    restart = Restart(workload=workload, pod=chosen.name, kind=kind, reason=verdict.reason,
                      evidence=verdict.evidence, siblings=frozenset(p.name for p in pods))
    return HealingPlan(workload=workload, verdicts=verdicts, restart=restart,
                       reasons=(f"{verdict.reason}: {chosen.name}: {verdict.evidence}",),
                       breaker=breaker.state, memory=new_memory)
