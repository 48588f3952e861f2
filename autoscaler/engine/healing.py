"""The healer's choice: which pods of a workload are sick, and whether one may be restarted now.

Pure, like `evaluate`: the daemon passes in a workload's pods, the HTTP probe tallies it keeps,
the latest read of the workload's Pulsar subscription (`SubscriptionRead`), the dependency
states, both clocks and the healer's memory; `plan` gives back the verdicts, at most one
`Restart`, the suspicions a scale-down should wait for, and the new memory. The daemon performs
the eviction (`kube/`), reports how it went with `record_outcome`, and asks `scale_down_hold`
before it removes pods.
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

A stuck consumer is judged like a failing probe: by reads in a row, not by one look. Each new
read of the subscription (a later `read_at`; the daemon evaluates the same read many times) that
shows every consumer of the pod at `msgRateOut` 0 while the backlog is above 0 and another
consumer drains counts one; a read in which the pod's consumer drains, the backlog is 0 or
unknown, or the read is missing or stale starts over. A read in which nobody drains although
there is a backlog proves nothing either way (a burst has passed, or the only work left is what
the stuck consumer holds unacknowledged): it keeps the clock running and counts nothing. The pod
is judged once `stuck_consumer_reads` reads counted and `stuck_consumer_seconds` passed since
the first. Pulsar's `msgRateOut` is an average over the broker's stats interval, so a consumer
that is busy reads above 0 and a stuck one reads 0 at most one interval after it stopped.

Scale-downs wait for suspicions (`scale_down_hold`): a scale-down may remove a sick pod before
the healer could restart it (a stuck consumer looks ready). A ready pod whose probe has started
failing, or whose consumer is counting idle reads, is a `Suspicion` until its suspicion began
plus its detection limit (`period_seconds * failure_threshold`, or `stuck_consumer_seconds`)
plus `SUSPICION_MARGIN_SECONDS`. Only while a restart could follow by then: never during an
outage or its recovery grace, with healing disabled, with the breaker open or a half-open trial
pending, when a restart in flight, a 429, the budget or the backoff would still block it then,
or when `min_available` forbids restarting the pod. A pod's suspicions that follow each other
within that length count as one, so a flaky probe holds scale-downs once, not for ever.

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
from typing import Any

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
#: How long past a suspicion's detection limit a scale-down still waits for the restart (the
#: daemon looks again within a second, and a read of the subscription comes every poll).
SUSPICION_MARGIN_SECONDS = 5.0


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


@dataclass(frozen=True, slots=True)
class SubscriptionRead:
    """One read of the workload's Pulsar subscription: when (the daemon's clock), the backlog and
    the consumers. A read is counted once however often the daemon evaluates it."""

    read_at: float
    backlog: float
    consumers: tuple[ConsumerStat, ...]


@dataclass(frozen=True, slots=True)
class Suspicion:
    """A ready pod that may soon be judged sick: a scale-down waits for it until `until`."""

    pod: str
    reason: Symptom
    since: float
    until: float


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
    #: The pod's version the eviction must find (its precondition; empty: none). Only for a
    #: pod judged not ready, by its status: one that has changed since (ready again) is a 409.
    #: A ready pod is judged by what it does (its probe, its consumer), which no new version
    #: undoes, and the apiserver counts its eviction against its PodDisruptionBudget before it
    #: checks the precondition: a 409 would hold a disruption for two minutes.
    resource_version: str = ""


class Settled(StrEnum):
    PENDING = "pending"
    HEALTHY = "healthy"
    FAILED = "failed"
    EXCUSED = "excused"


#: The backoff doubles at most this often (30 s x 2^20 is a year: no restart again).
MAX_BACKOFF_DOUBLINGS = 20

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
    #: The first read that showed the pod's consumer idle while others drained, and how many
    #: such reads came since.
    idle_since: float | None = None
    idle_reads: int = 0
    #: The pod's suspicion episode (for `scale_down_hold`): when it began, when last seen.
    suspect_since: float | None = None
    suspect_seen: float | None = None


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
    consecutive ones for the backoff; `frozen_at` is the last evaluation during an outage;
    `read_at` the last subscription read counted.
    """

    pods: tuple[PodTrack, ...] = ()
    restarts: tuple[RestartRecord, ...] = ()
    streak: int = 0
    throttles: tuple[Throttle, ...] = ()
    breaker: Breaker = Breaker()
    frozen_at: float | None = None
    read_at: float | None = None


@dataclass(frozen=True, slots=True)
class HealingPlan:
    """The outcome of one evaluation: verdicts, the restart (if any), why, the suspicions a
    scale-down should wait for, and the new memory."""

    workload: str
    verdicts: tuple[PodVerdict, ...]
    restart: Restart | None
    reasons: tuple[str, ...]
    breaker: BreakerState
    memory: HealingMemory
    suspicions: tuple[Suspicion, ...] = ()


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


def without_consumer(pods: Sequence[PodInfo], consumers: Sequence[ConsumerStat]) -> int:
    """How many ready pods (not being deleted, with an IP) run no consumer of the subscription
    (matched by IP): started, but taking nothing from it yet."""
    ips = {consumer_ip(c.address) for c in consumers}
    return sum(1 for p in pods
               if p.ready and not p.deleting and p.ip and _normal_ip(p.ip) not in ips)


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


class _Seen(StrEnum):
    """What one read of the subscription says about one pod's consumer."""

    IDLE = "idle"  # 0 msg/s with a backlog while another consumer drains: one read counted
    STALLED = "stalled"  # 0 msg/s with a backlog and nobody drains: proves nothing either way
    CLEAR = "clear"  # it drains, no backlog, no consumer of the pod, or no usable read


@dataclass(frozen=True, slots=True)
class _Consumers:
    """A read's consumers grouped by IP, and how many of them drain: an evaluation matches every
    pod against them, and grouped once that is one lookup per pod."""

    by_ip: Mapping[str, tuple[ConsumerStat, ...]]
    moving: int


def _group(read: SubscriptionRead) -> _Consumers:
    by_ip: dict[str, list[ConsumerStat]] = {}
    for c in read.consumers:
        by_ip.setdefault(consumer_ip(c.address), []).append(c)
    return _Consumers({ip: tuple(cs) for ip, cs in by_ip.items()},
                      sum(1 for c in read.consumers if c.msg_rate_out > 0))


def _consumers_of(pod: PodInfo, consumers: _Consumers) -> tuple[tuple[ConsumerStat, ...], int]:
    """The pod's consumers (matched by IP), and how many other consumers drain."""
    mine = consumers.by_ip.get(_normal_ip(pod.ip), ())
    return mine, consumers.moving - sum(1 for c in mine if c.msg_rate_out > 0)


def _seen(pod: PodInfo, read: SubscriptionRead | None, consumers: _Consumers | None) -> _Seen:
    if read is None or consumers is None or not read.backlog > 0 or not pod.ip:
        return _Seen.CLEAR
    mine, moving = _consumers_of(pod, consumers)
    if not mine or any(c.msg_rate_out != 0 for c in mine):
        return _Seen.CLEAR
    return _Seen.IDLE if moving else _Seen.STALLED


def _stuck_evidence(pod: PodInfo, track: PodTrack, read: SubscriptionRead, *,
                    settings: Healing, idle: float) -> str:
    mine, _ = _consumers_of(pod, _group(read))
    names = ", ".join(c.name for c in mine)
    return (f"consumer {names} at {_normal_ip(pod.ip)} drains 0 msg/s while the backlog is "
            f"{read.backlog:g}; idle for {_secs(idle)} "
            f"(limit {_secs(settings.stuck_consumer_seconds)}) over {track.idle_reads} reads "
            f"in which other consumers drained (needed {settings.stuck_consumer_reads})")


def _track(prev: PodTrack | None, pod: PodInfo, *, now: float, seen: _Seen,
           read_at: float | None, window: float, frozen: bool) -> PodTrack:
    """The pod's memory after this evaluation; `read_at` is set when the read is a new one.
    Restarts while frozen are the outage's (a worker that exits when Pulsar is gone), not the
    pod's: they move the count its growth is measured from; the growth before stays counted."""
    if prev is None or pod.restarts < prev.restarts:
        base, grew_at = pod.restarts, now
    elif frozen:  # only the growth seen while frozen is discounted
        base, grew_at = prev.restarts_base + pod.restarts - prev.restarts, prev.restarts_grew_at
    elif pod.restarts > prev.restarts:
        base, grew_at = prev.restarts_base, now
    elif now - prev.restarts_grew_at >= window:
        base, grew_at = pod.restarts, prev.restarts_grew_at
    else:
        base, grew_at = prev.restarts_base, prev.restarts_grew_at
    not_ready_since = None if pod.ready else (
        prev.not_ready_since if prev and prev.not_ready_since is not None else now)
    idle_since, idle_reads = (prev.idle_since, prev.idle_reads) if prev else (None, 0)
    if seen is _Seen.CLEAR:
        idle_since, idle_reads = None, 0
    elif seen is _Seen.IDLE and read_at is not None:
        idle_since = read_at if idle_since is None else idle_since
        idle_reads += 1
    if prev is not None and (prev.restarts, prev.restarts_base, prev.restarts_grew_at,
                             prev.not_ready_since, prev.idle_since, prev.idle_reads) == (
            pod.restarts, base, grew_at, not_ready_since, idle_since, idle_reads):
        return prev  # most evaluations change nothing; a new one costs more than this check
    return PodTrack(name=pod.name, restarts=pod.restarts, restarts_base=base,
                    restarts_grew_at=grew_at, not_ready_since=not_ready_since,
                    idle_since=idle_since, idle_reads=idle_reads,
                    suspect_since=prev.suspect_since if prev else None,
                    suspect_seen=prev.suspect_seen if prev else None)


def _longest_hold(settings: Healing) -> float:
    http = settings.http_probe
    probe = http.period_seconds * http.failure_threshold if http else 0.0
    return max(probe, settings.stuck_consumer_seconds) + SUSPICION_MARGIN_SECONDS


def _suspect(pod: PodInfo, track: PodTrack, *, settings: Healing, probe: ProbeRecord | None,
             now: float) -> tuple[PodTrack, Suspicion | None]:
    """A ready pod's suspicion (a probe that started failing, a consumer counting idle reads)
    and its episode: suspicions that follow each other within the hold's length are one."""
    http = settings.http_probe
    found: list[tuple[float, Symptom]] = []
    if http and probe and probe.failures > 0:
        found.append((http.period_seconds * http.failure_threshold, Symptom.PROBE_FAILED))
    if track.idle_since is not None:
        found.append((settings.stuck_consumer_seconds, Symptom.STUCK_CONSUMER))
    if not found or not pod.ready:
        if track.suspect_seen is not None and now - track.suspect_seen >= _longest_hold(settings):
            track = replace(track, suspect_since=None, suspect_seen=None)  # the episode is over
        return track, None
    limit, reason = max(found)
    length = limit + SUSPICION_MARGIN_SECONDS
    since = now
    if (track.suspect_since is not None and track.suspect_seen is not None
            and now - track.suspect_seen < length):
        since = track.suspect_since
    return (replace(track, suspect_since=since, suspect_seen=now),
            Suspicion(pod.name, reason, since, since + length))


def _diagnose(
    *, settings: Healing, pods: Sequence[PodInfo], now: float, wall_now: float,
    probes: Mapping[str, ProbeRecord], subscription: SubscriptionRead | None, new_read: bool,
    frozen: bool, memory: HealingMemory,
) -> tuple[tuple[PodVerdict, ...], tuple[PodTrack, ...], tuple[Suspicion, ...]]:
    """Verdicts for the pods out of their grace, the updated per-pod memory, and the
    suspicions (while no dependency is down: an outage's symptoms are no pod's)."""
    known = {t.name: t for t in memory.pods}
    read_at = subscription.read_at if subscription is not None and new_read else None
    consumers = _group(subscription) if subscription is not None and not frozen else None
    verdicts: list[PodVerdict] = []
    tracks: list[PodTrack] = []
    suspicions: list[Suspicion] = []
    for pod in pods:
        age = _age(pod, wall_now)
        judged = not pod.deleting and age is not None and age >= settings.startup_grace_seconds
        seen = _seen(pod, subscription, consumers) if judged and not frozen else _Seen.CLEAR
        track = _track(known.get(pod.name), pod, now=now, seen=seen, read_at=read_at,
                       window=settings.window_seconds, frozen=frozen)
        if judged and age is not None:
            # Time-based symptoms count only after the grace and after the last outage.
            judged_from = max(now - (age - settings.startup_grace_seconds),
                              memory.frozen_at if memory.frozen_at is not None else -math.inf)
            probe = probes.get(pod.name)
            verdicts.extend(_judge(pod, track, settings=settings, now=now,
                                   judged_from=judged_from, probe=probe,
                                   subscription=subscription))
            if not frozen:
                track, suspicion = _suspect(pod, track, settings=settings, probe=probe, now=now)
                if suspicion is not None:
                    suspicions.append(suspicion)
        tracks.append(track)
    return tuple(verdicts), tuple(tracks), tuple(suspicions)


def _judge(pod: PodInfo, track: PodTrack, *, settings: Healing, now: float, judged_from: float,
           probe: ProbeRecord | None, subscription: SubscriptionRead | None) -> list[PodVerdict]:
    """Every symptom of one pod that is out of its grace."""
    found: list[PodVerdict] = []
    http = settings.http_probe
    if http and probe and probe.failures >= http.failure_threshold:
        found.append(PodVerdict(pod.name, Symptom.PROBE_FAILED,
                                f"probe {http.path} failed {probe.failures}/"
                                f"{http.failure_threshold}, last error "
                                f"{probe.last_error or 'unknown'}"))
    if track.idle_since is not None and subscription is not None:
        idle = now - track.idle_since
        if (idle > settings.stuck_consumer_seconds
                and track.idle_reads >= settings.stuck_consumer_reads):
            found.append(PodVerdict(pod.name, Symptom.STUCK_CONSUMER, _stuck_evidence(
                pod, track, subscription, settings=settings, idle=idle)))
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


def scale_down_hold(last: HealingPlan | None, memory: HealingMemory, *, now: float,
                    settings: Healing) -> str | None:
    """Why a scale-down must wait for the healer now, or None.

    `last` is the healer's last plan and `memory` its memory since (after `record_outcome`): a
    restarted pod's replacement that is not ready yet would be the first pod a scale-down
    removes; a suspected pod could be removed before its restart. A suspicion holds only until
    its `until`, which `plan` set only where a restart could follow by then.
    """
    if restart_in_flight(memory, now=now, settings=settings):
        return "ScaleDownHeld: a restarted pod's replacement is starting"
    if not settings.enabled or last is None:
        return None
    waiting = [s for s in last.suspicions if now < s.until]
    if not waiting:
        return None
    first = min(waiting, key=lambda s: (s.since, s.pod))
    return (f"ScaleDownHeld: {first.pod} may need a restart ({first.reason} suspected "
            f"{_secs(now - first.since)} ago, waiting at most {_secs(first.until - now)} more)")


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


#: The largest streak or breaker failure count a handed-over memory may carry.
MAX_HANDED_COUNT = 10_000


def handover(memory: HealingMemory, *, now: float, wall_now: float) -> dict[str, Any] | None:
    """What a successor needs of `memory` to keep its budgets: the restarts still followed or
    inside the budget window, the backoff streak and the breaker, with times as epoch seconds
    (its clock is not this process's `now`); None when there is nothing to hand over.
    `taken_over` reads it back."""
    breaker = memory.breaker
    if not memory.restarts and not memory.streak and breaker == Breaker():
        return None

    def wall(at: float) -> float:
        return round(wall_now - (now - at), 3)

    return {
        "restarts": [{"pod": r.pod, "at": wall(r.at), "siblings": sorted(r.siblings),
                      "replacement": r.replacement, "ready": r.ready, "excused": r.excused,
                      "settled": r.settled.value} for r in memory.restarts],
        "streak": memory.streak,
        "breaker": {"state": breaker.state.value, "failures": breaker.failures,
                    "opened_at": wall(breaker.opened_at)},
    }


def taken_over(memory: HealingMemory, handed: Mapping[str, Any] | None, *, now: float,
               wall_now: float) -> HealingMemory:
    """`memory` with the restarts, streak and breaker of `handed` (what the last leader's
    `handover` wrote; None: it had none) in place of its own: a standby restarts nothing, so
    it would otherwise start with a full budget and a closed breaker. A time ahead of
    `wall_now` (another host's clock) counts as now. `ValueError` when `handed` is not shaped
    as `handover` writes it."""
    if handed is None:
        return replace(memory, restarts=(), streak=0, breaker=Breaker())

    def field(obj: Any, key: str, kind: type | tuple[type, ...]) -> Any:
        value = obj.get(key) if isinstance(obj, Mapping) else None
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise ValueError(f"{key}: expected {getattr(kind, '__name__', kind)}")
        return value

    def names(values: list[Any]) -> list[str]:
        if not all(isinstance(v, str) for v in values):
            raise ValueError("siblings: expected pod names")
        return values

    def count(obj: Any, key: str) -> int:
        value: int = field(obj, key, int)
        if not 0 <= value <= MAX_HANDED_COUNT:
            raise ValueError(f"{key}: {value} is not a count from 0 to {MAX_HANDED_COUNT}")
        return value

    def at(obj: Any, key: str) -> float:
        try:
            epoch = float(field(obj, key, (int, float)))
        except OverflowError:  # an integer past a float's range
            epoch = math.inf
        if not math.isfinite(epoch):
            raise ValueError(f"{key}: not a finite time")
        return now - max(0.0, wall_now - epoch)

    restarts = tuple(
        RestartRecord(pod=field(r, "pod", str), at=at(r, "at"),
                      siblings=frozenset(names(field(r, "siblings", list))),
                      replacement=field(r, "replacement", str), ready=field(r, "ready", bool),
                      excused=field(r, "excused", bool),
                      settled=Settled(field(r, "settled", str)))
        for r in field(handed, "restarts", list))
    breaker = field(handed, "breaker", dict)
    return replace(memory, restarts=restarts, streak=count(handed, "streak"),
                   breaker=Breaker(BreakerState(field(breaker, "state", str)),
                                   count(breaker, "failures"), at(breaker, "opened_at")))


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


def _waits(*, records: Sequence[RestartRecord], memory: HealingMemory,
           throttles: Sequence[Throttle], breaker: Breaker, streak: int, last_at: float | None,
           now: float, settings: Healing) -> list[tuple[float, str]]:
    """The budget rules that delay the next restart now, in the order `plan` reports them: until
    when each holds (`inf`: until something else happens), and why."""
    waits: list[tuple[float, str]] = []
    grace = settings.startup_grace_seconds
    if memory.frozen_at is not None and now - memory.frozen_at < grace:
        waits.append((memory.frozen_at + grace,
                      f"OutageRecovery: dependencies back for {_secs(now - memory.frozen_at)}, "
                      f"grace {_secs(grace)}"))
    timeout = restart_timeout(settings)
    for r in records:
        if not r.ready and now - r.at < timeout:
            waiting = f"replacement {r.replacement}" if r.replacement else "no replacement yet"
            waits.append((r.at + timeout, f"RestartInFlight: {r.pod} restarted "
                                          f"{_secs(now - r.at)} ago, {waiting} not ready"))
    if breaker.state is BreakerState.HALF_OPEN:
        trial = next((r for r in records if r.settled is Settled.PENDING), None)
        if trial is not None:
            waits.append((math.inf, f"BreakerHalfOpen: waiting for the replacement of "
                                    f"{trial.pod} to prove healthy"))
    for t in throttles:
        if t.retry_at > now:
            waits.append((t.retry_at, f"EvictionThrottled: eviction of {t.pod} refused "
                                      f"{t.count}x (429), retry in {_secs(t.retry_at - now)}"))
    window = settings.window_seconds
    recent = sorted(r.at for r in records if now - r.at < window)
    if len(recent) >= settings.max_restarts:
        waits.append((recent[len(recent) - settings.max_restarts] + window,
                      f"RestartBudget: {len(recent)} restarts in the last {_secs(window)} "
                      f"(max {settings.max_restarts})"))
    if streak > 0 and last_at is not None:
        # A float power: a streak handed over by another leader may be any count.
        wait = settings.backoff_seconds * 2.0 ** min(streak - 1, MAX_BACKOFF_DOUBLINGS)
        if now - last_at < wait:
            waits.append((last_at + wait, f"Backoff: {streak} restart(s) in a row, next "
                                          f"{_secs(wait)} after the last "
                                          f"(in {_secs(last_at + wait - now)})"))
    return waits


def plan(
    *,
    workload: str,
    settings: Healing,
    pods: Sequence[PodInfo],
    now: float,
    wall_now: float,
    memory: HealingMemory,
    probes: Mapping[str, ProbeRecord] = NO_PROBES,
    subscription: SubscriptionRead | None = None,
    requires: Sequence[str] = (),
    dependencies: Mapping[str, DependencyState] = NO_DEPENDENCIES,
) -> HealingPlan:
    """Judge the workload's pods and choose at most one to restart, within every budget.

    `subscription` is the latest usable read of `consumer_source` (None when there is none, or
    it is failing or stale).
    """
    frozen = dependency_reasons(requires, dependencies)
    read_at = memory.read_at
    if subscription is not None and (read_at is None or subscription.read_at > read_at):
        read_at = subscription.read_at
    verdicts, tracks, suspected = _diagnose(
        settings=settings, pods=pods, now=now, wall_now=wall_now, probes=probes,
        subscription=subscription, new_read=read_at != memory.read_at, frozen=bool(frozen),
        memory=memory)
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
        read_at=read_at,
    )
    waits = _waits(records=records, memory=memory, throttles=new_memory.throttles,
                   breaker=breaker, streak=streak, last_at=last_at, now=now, settings=settings)
    live = [p for p in pods if not p.deleting]
    ready = sum(1 for p in live if p.ready)
    # A scale-down waits for a suspicion only where a restart could follow before it expires.
    restartable_at = max((until for until, _ in waits), default=now)
    suspicions = () if (not settings.enabled or breaker.state is BreakerState.OPEN
                        or ready - 1 < settings.min_available) else tuple(
        s for s in suspected if now < s.until and restartable_at <= s.until)

    def hold(*reasons: str) -> HealingPlan:
        return HealingPlan(workload=workload, verdicts=verdicts, restart=None, reasons=reasons,
                           breaker=breaker.state, memory=new_memory, suspicions=suspicions)

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
    if waits:
        return hold(waits[0][1])

    by_pod: dict[str, list[PodVerdict]] = {}
    for v in verdicts:
        by_pod.setdefault(v.pod, []).append(v)
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
                      evidence=verdict.evidence, siblings=frozenset(p.name for p in pods),
                      resource_version="" if chosen.ready else chosen.resource_version)
    return HealingPlan(workload=workload, verdicts=verdicts, restart=restart,
                       reasons=(f"{verdict.reason}: {chosen.name}: {verdict.evidence}",),
                       breaker=breaker.state, memory=new_memory, suspicions=suspicions)


def healing_quiet(plan: HealingPlan | None, memory: HealingMemory, *,
                  pods: Sequence[PodInfo], probes: Mapping[str, ProbeRecord]) -> bool:
    """Nothing for the healer to watch: no verdict, suspicion, restart or open breaker, every
    pod ready and running, no failed app probe. Only then may the daemon skip an evaluation
    (engine/settled.py): time alone changes nothing here."""
    if plan is None:
        return False
    return (not plan.verdicts and plan.restart is None and not plan.suspicions
            and plan.breaker is BreakerState.CLOSED and memory.breaker.failures == 0
            and not memory.restarts and not memory.throttles
            and all(t.idle_since is None and t.not_ready_since is None
                    and t.suspect_since is None for t in memory.pods)
            and all(p.ready and not p.waiting_reason and not p.deleting for p in pods)
            and not any(r.failures for r in probes.values()))
