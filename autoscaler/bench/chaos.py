"""The chaos soak (`bench --scenario chaos`): the real daemon through a day of random faults.

Two replicas of the real `Daemon`, each with its own `LeaderElector` on one Lease
(`sim.leases.SimLeaseStore` over an in-memory `KubeState`), its own config watcher
(`runtime.watch_config` on a real file) and its own in-memory adapters over one `ClusterModel`,
replay a trace (looped to `--hours`) in virtual time, once with faults and once without. The
faults come from a seeded schedule: Poisson arrivals (one every `MEAN_GAP_SECONDS` on average)
after `WARMUP_SECONDS`, none in the last `QUIET_SECONDS`; the kinds are dealt from a shuffled
deck (every kind once per round), each with a random duration:

- Kubernetes API (`ModelCluster`'s fault hook, and the lease calls): 409 on scale writes and
  lease updates, 429 with Retry-After, 500, 503, a timeout (the client's 10 s, then 504) on
  reads, scale writes and lease calls, 403 on scale writes, each for its window and also on the
  first scale write from its start (scale writes are minutes apart: so every one meets a
  write); the Deployment deleted (404 on reads and writes; its pods orphaned) and re-created
  with a new resourceVersion.
- Sources (`sim.adapters.SourceFaults`, answered through the live sources' checks): HTTP 500,
  a hanging read, a truncated body, a missing subscription, missing partitions (Pulsar's 404),
  an empty result (Prometheus), a negative, absurd (1e18), NaN or +Inf value, and stale values
  (the last answer again, with its own read time).
- Dependencies (outage windows in the model, read by `ModelProbe`): one down, one flapping
  faster than the hysteresis (down and up phases of 1-4 s), all down at once.
- Leadership: the lease stolen (the other replica forced into the record), the leader's lease
  calls failing or hanging (a partition), a jump of one replica's wall clock.
- Config: an invalid file (truncated, an unknown key, a wrong type) written over the watched
  config, the good one written back later (a real reload).
- Process: a replica killed (its task cancelled, no lease release) and started again after a
  delay, as the same pod (same identity) or a new one; it rebuilds its state from the cluster.

The invariants are checked from outside the daemon, on what the adapters served and saw (every
scale and eviction request with its writer, every read, every lease read and write), by `check`
(history) and during the run (the rest):

- `bounds`: every replica count the Deployment takes, and every scale request, is in [min, max].
- `frozen`: no scale or eviction request while a dependency the workload requires is down in the
  model, after a grace of one probe period plus 1 s from the outage's start (the daemon cannot
  know before its next probe; a request sent within the grace may land later: it is in flight).
- `partial`: no scale-down decided on a failed or stale read: the last read the replica's source
  completed before the evaluation that led to the request must be valid for every signal the
  policies use, and no older than the signal's staleness limit at that evaluation.
- `one-writer`: every request comes from a replica whose last lease renew (as served by the
  lease store) was sent less than the renew deadline ago, and which has not read since a record
  naming another holder; two replicas never write within one lease duration of each other
  unless the lease passed to the second in between. Writes of a replica displaced by a stolen
  lease before its next read of the lease are exempt from the last rule: no lease can tell a
  holder it was overruled before it reads the record (the Deployment's resourceVersion still
  fences them: a write on a read older than the other's write gets a 409).
- `no-duplicate`: every scale write that succeeds changes the replica count.
- `alive`: no replica's `run()` raises or returns before it is stopped.
- `reports`: a dependency down long enough for the hysteresis shows `dependency_up 0`, a source
  failing for a poll and a timeout raises `signal_errors`, an invalid config sets
  `config_last_reload_success 0`, on every replica that lived through the fault.
- `bad-input`: no signal with a negative, non-finite or absurd value is accepted as valid.
- `recovers`: from `RECOVERY_SECONDS` after the last fault cleared to the end, the replica count
  stays within `RECOVERY_TOLERANCE` of the fault-free run's at the same second, and at the end
  one replica leads, sees every dependency up and is not frozen.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import dataclasses
import itertools
import math
import random
import re
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping, MutableMapping, Sequence
from concurrent.futures import (
    FIRST_COMPLETED,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from dataclasses import dataclass, field
from multiprocessing import Manager
from pathlib import Path
from typing import Any, TypeVar

import structlog

from autoscaler.bench.runner import scores, trace_for
from autoscaler.bench.scenario import Setup, build_setup
from autoscaler.config import LoadedConfig, PulsarSource, load_config
from autoscaler.daemon import Adapters, Daemon
from autoscaler.kube.errors import KubeError, outcome_for
from autoscaler.leader import LeaderElector
from autoscaler.model import Signal, WorkloadStatus
from autoscaler.ports import LeaseRecord, Probe, Source, WriteOutcome, WriteResult
from autoscaler.sim.adapters import (
    PROMETHEUS_READ_FAULTS,
    PULSAR_READ_FAULTS,
    ModelCluster,
    ModelPodProber,
    ModelProbe,
    ModelPulsarSource,
    ModelRateSource,
    ReadFault,
    SourceFaults,
    sim_wall,
)
from autoscaler.sim.clock import VirtualClock, run_virtual
from autoscaler.sim.clock import now as _now
from autoscaler.sim.kubestate import ApiError, Fault, KubeState, LeaseSpec
from autoscaler.sim.leases import SimLeaseStore
from autoscaler.sim.model import ClusterModel, Outage
from autoscaler.sim.traces import Trace
from autoscaler.sources.values import ABSURD_LIMIT
from autoscaler.telemetry import Telemetry

T = TypeVar("T")

CHAOS = "chaos"
KINDS = ("worker", "api")
MEAN_GAP_SECONDS = 110.0
WARMUP_SECONDS = 300.0
#: No fault starts or lasts into the last 15 minutes: the time to recover and to show it.
QUIET_SECONDS = 900.0
RECOVERY_SECONDS = 600.0
#: Replicas within this fraction (and at least RECOVERY_SLACK pods) of the fault-free run's.
RECOVERY_TOLERANCE = 0.25
RECOVERY_SLACK = 2
#: What the driver adds to a probe period before a request during an outage is a violation.
FROZEN_GRACE_SECONDS = 1.0
#: Kubernetes' client request timeout (`KubeCluster`'s): what a hung API call costs.
KUBE_TIMEOUT_SECONDS = 10.0
PROGRESS_SECONDS = 600.0
SLOTS = ("a", "b")

KUBE_FAULTS = ("kube-conflict", "kube-throttled", "kube-500", "kube-503", "kube-timeout",
               "kube-forbidden", "kube-deleted")
DEPENDENCY_FAULTS = ("dependency-down", "dependency-flap", "dependencies-all-down")
LEASE_FAULTS = ("lease-stolen", "lease-partition", "clock-jump")
OTHER_FAULTS = ("config-invalid", "daemon-restart")
#: Faults that never overlap one of their own kind (one config file; one replica down at most).
EXCLUSIVE = frozenset(OTHER_FAULTS)
#: (min, max) seconds per kind; a source fault's kind is "source-<ReadFault>".
DURATIONS: Mapping[str, tuple[float, float]] = {
    "kube-conflict": (5, 60), "kube-throttled": (10, 60), "kube-500": (5, 60),
    "kube-503": (5, 60), "kube-timeout": (10, 60), "kube-forbidden": (30, 300),
    "kube-deleted": (10, 120), "dependency-down": (10, 600), "dependency-flap": (30, 180),
    "dependencies-all-down": (10, 300), "lease-stolen": (0, 0), "lease-partition": (5, 40),
    "clock-jump": (60, 600), "config-invalid": (10, 300), "daemon-restart": (2, 30),
}
SOURCE_DURATION = (5.0, 120.0)
SCALE = ("update", "deployments/scale")
READ = ("get", "deployments")
LEASE_CALLS = (("get", "leases"), ("update", "leases"), ("create", "leases"))
INVALID_CONFIGS = ("truncated", "unknown-key", "wrong-type")


def source_fault_kinds(source_kind: str) -> tuple[str, ...]:
    faults = PULSAR_READ_FAULTS if source_kind == "pulsar" else PROMETHEUS_READ_FAULTS
    return tuple(f"source-{f.value}" for f in faults)


def fault_kinds(source_kind: str) -> tuple[str, ...]:
    return (*KUBE_FAULTS, *source_fault_kinds(source_kind), *DEPENDENCY_FAULTS, *LEASE_FAULTS,
            *OTHER_FAULTS)


# ---------------------------------------------------------------------------------------------
# The schedule


@dataclass(frozen=True, slots=True)
class ChaosFault:
    """One fault: `kind` from `fault_kinds`, active in [start, end)."""

    kind: str
    start: float
    end: float
    target: str = ""  # the dependency or source it hits
    value: float = 0.0  # Retry-After, clock offset, or which invalid config
    phases: tuple[tuple[float, float], ...] = ()  # a flapping dependency's down windows


def schedule(*, seed: int, duration: float, source: str, source_kind: str,
             dependencies: Sequence[str]) -> tuple[ChaosFault, ...]:
    """The seeded faults of one soak, by start time."""
    rng = random.Random(f"chaos-{seed}-{source_kind}")
    kinds = fault_kinds(source_kind)
    deck: list[str] = []
    faults: list[ChaosFault] = []
    last_end: dict[str, float] = {}
    t = WARMUP_SECONDS
    latest_end = duration - QUIET_SECONDS
    while True:
        t += rng.expovariate(1.0 / MEAN_GAP_SECONDS)
        if not deck:
            deck = list(kinds)
            rng.shuffle(deck)
        if t >= latest_end:
            break
        kind = deck.pop()
        lo, hi = DURATIONS.get(kind, SOURCE_DURATION)
        start = max(t, last_end.get(kind, 0.0) + 1.0) if kind in EXCLUSIVE else t
        end = min(start + rng.uniform(lo, hi), latest_end)
        if start >= latest_end:
            continue
        fault = _fault(rng, kind, start, end, source=source, dependencies=dependencies)
        last_end[kind] = fault.end
        faults.append(fault)
    return tuple(sorted(faults, key=lambda f: (f.start, f.kind)))


def _fault(rng: random.Random, kind: str, start: float, end: float, *, source: str,
           dependencies: Sequence[str]) -> ChaosFault:
    if kind.startswith("source-"):
        return ChaosFault(kind, start, end, target=source)
    if kind == "kube-throttled":
        return ChaosFault(kind, start, end, value=float(rng.randint(1, 10)))
    if kind == "dependency-down":
        return ChaosFault(kind, start, end, target=rng.choice(sorted(dependencies)))
    if kind == "dependency-flap":
        phases: list[tuple[float, float]] = []
        t = start
        while t < end:
            down = min(end, t + rng.uniform(1.0, 4.0))
            phases.append((t, down))
            t = down + rng.uniform(1.0, 4.0)
        return ChaosFault(kind, start, end, target=rng.choice(sorted(dependencies)),
                          phases=tuple(phases))
    if kind == "clock-jump":
        return ChaosFault(kind, start, end, value=rng.choice((-1, 1)) * rng.uniform(30, 7200))
    if kind == "config-invalid":
        return ChaosFault(kind, start, end, value=float(rng.randrange(len(INVALID_CONFIGS))))
    if kind == "lease-partition":
        return ChaosFault(kind, start, end, value=float(rng.randrange(2)))  # 0 fail, 1 hang
    return ChaosFault(kind, start, end)


# ---------------------------------------------------------------------------------------------
# What the adapters saw, and the checker


@dataclass(frozen=True, slots=True)
class Violation:
    t: float
    invariant: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"t": round(self.t, 3), "invariant": self.invariant, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Write:
    """A scale or eviction request: sent at `t`, answered at `done`; `old` is the replica count
    when it was sent. `seq` orders it among all recorded events."""

    seq: int
    t: float
    identity: str
    kind: str  # "scale" | "evict"
    old: int
    new: int
    outcome: str
    done: float = 0.0
    pod: str = ""


@dataclass(frozen=True, slots=True)
class Mark:
    """A replica's read of the workload: its evaluation follows at once."""

    seq: int
    t: float


@dataclass(frozen=True, slots=True)
class Read:
    """A source read as the replica got it: the signals the policies use that were not valid,
    and the oldest read time among them."""

    seq: int
    t: float
    bad: tuple[str, ...]
    data_at: float


@dataclass(frozen=True, slots=True)
class LeaseChange:
    """A successful lease write: by a replica's elector, or by the chaos (`identity` "chaos")."""

    seq: int
    t: float
    sent: float
    identity: str
    holder: str | None


@dataclass(frozen=True, slots=True)
class LeaseRead:
    seq: int
    t: float
    holder: str | None


@dataclass
class History:
    """Everything the checker looks at; the limits come from the config under test."""

    min_replicas: int
    max_replicas: int
    requires: tuple[str, ...]
    grace: Mapping[str, float]  # per dependency: how long after an outage starts writes may land
    staleness: float  # of the policies' signals (the smallest limit)
    lease_duration: float
    renew_deadline: float
    writes: list[Write] = field(default_factory=list)
    marks: dict[str, list[Mark]] = field(default_factory=dict)
    reads: dict[str, list[Read]] = field(default_factory=dict)
    lease_changes: list[LeaseChange] = field(default_factory=list)
    lease_reads: dict[str, list[LeaseRead]] = field(default_factory=dict)
    outages: list[Outage] = field(default_factory=list)
    replicas: Sequence[int] = ()  # the Deployment's count at every second


def check(h: History) -> list[Violation]:
    """The history's violations of `bounds`, `frozen`, `partial`, `one-writer` and
    `no-duplicate`, by time."""
    out = [*_bounds(h), *_frozen(h), *_partial(h), *_one_writer(h), *_no_duplicate(h)]
    return sorted(out, key=lambda v: (v.t, v.invariant))


def _describe(w: Write) -> str:
    what = f"scale {w.old}->{w.new}" if w.kind == "scale" else f"eviction of {w.pod}"
    return f"{what} by {w.identity} ({w.outcome})"


def _bounds(h: History) -> list[Violation]:
    lo, hi = h.min_replicas, h.max_replicas
    out = [Violation(w.t, "bounds", f"{_describe(w)} outside [{lo}, {hi}]")
           for w in h.writes if w.kind == "scale" and not lo <= w.new <= hi]
    inside = True
    for t, n in enumerate(h.replicas):
        if not lo <= n <= hi and inside:
            out.append(Violation(float(t), "bounds", f"the Deployment has {n} replicas, outside "
                                                     f"[{lo}, {hi}]"))
        inside = lo <= n <= hi
    return out


def merged(outages: Iterable[Outage]) -> list[Outage]:
    """Overlapping or touching windows of one dependency as one (the outage as a probe sees it)."""
    out: list[Outage] = []
    for o in sorted(outages, key=lambda o: (o.dependency, o.start)):
        if out and out[-1].dependency == o.dependency and o.start <= out[-1].end:
            last = out[-1]
            out[-1] = Outage(o.dependency, last.start, max(last.end, o.end))
        else:
            out.append(o)
    return out


def _frozen(h: History) -> list[Violation]:
    windows = [o for o in merged(h.outages) if o.dependency in h.requires]
    out: list[Violation] = []
    for w in h.writes:
        for o in windows:
            grace = h.grace.get(o.dependency, FROZEN_GRACE_SECONDS)
            if o.start + grace <= w.t < o.end:
                out.append(Violation(w.t, "frozen", f"{_describe(w)} sent {w.t - o.start:.1f}s "
                                                    f"into an outage of {o.dependency} (grace "
                                                    f"{grace:g}s)"))
                break
    return out


class _Ordered:
    """Events with a `seq`, in order: the last one recorded before a given `seq`."""

    def __init__(self, items: Sequence[Any]) -> None:
        self.items = items
        self.seqs = [x.seq for x in items]

    def before(self, seq: int) -> Any:
        i = bisect.bisect_left(self.seqs, seq)
        return self.items[i - 1] if i else None


def _by_identity(events: Mapping[str, Sequence[Any]]) -> dict[str, _Ordered]:
    return {who: _Ordered(items) for who, items in events.items()}


def _partial(h: History) -> list[Violation]:
    out: list[Violation] = []
    marks, reads = _by_identity(h.marks), _by_identity(h.reads)
    none = _Ordered(())
    for w in h.writes:
        if w.kind != "scale" or w.new >= w.old:
            continue
        mark: Mark | None = marks.get(w.identity, none).before(w.seq)
        if mark is None:
            out.append(Violation(w.t, "partial", f"{_describe(w)} without a read of the "
                                                 "workload before it"))
            continue
        read: Read | None = reads.get(w.identity, none).before(mark.seq)
        if read is None:
            out.append(Violation(w.t, "partial", f"{_describe(w)} before any signal was read"))
        elif read.bad:
            out.append(Violation(w.t, "partial", f"{_describe(w)} decided at {mark.t:.1f} on a "
                                                 f"read at {read.t:.1f} with failed "
                                                 f"{', '.join(read.bad)}"))
        elif mark.t - read.data_at > h.staleness:
            out.append(Violation(w.t, "partial", f"{_describe(w)} decided at {mark.t:.1f} on "
                                                 f"values {mark.t - read.data_at:.1f}s old "
                                                 f"(stale after {h.staleness:g}s)"))
    return out


def _one_writer(h: History) -> list[Violation]:
    out: list[Violation] = []
    changes = sorted(h.lease_changes, key=lambda c: c.seq)
    change_seqs = [c.seq for c in changes]
    mine: dict[str, list[LeaseChange]] = {}
    for c in changes:
        if c.identity == c.holder and c.holder is not None:
            mine.setdefault(c.identity, []).append(c)
    own = _by_identity(mine)
    seen_leases = _by_identity(h.lease_reads)
    none = _Ordered(())
    steals = [c for c in changes if c.identity == "chaos"]

    def exempt(w: Write) -> bool:
        """Displaced by a steal and not yet told: it has not read the lease since."""
        renew: LeaseChange | None = own.get(w.identity, none).before(w.seq)
        seen: LeaseRead | None = seen_leases.get(w.identity, none).before(w.seq)
        return any(s.holder != w.identity and renew is not None and renew.seq < s.seq < w.seq
                   and (seen is None or seen.seq < s.seq) for s in steals)

    for w in h.writes:
        renew = own.get(w.identity, none).before(w.seq)
        if renew is None:
            out.append(Violation(w.t, "one-writer", f"{_describe(w)} without ever holding the "
                                                    "lease"))
            continue
        if w.t >= renew.sent + h.renew_deadline:
            out.append(Violation(w.t, "one-writer", f"{_describe(w)}: its last renew was sent "
                                                    f"{w.t - renew.sent:.1f}s before (renew "
                                                    f"deadline {h.renew_deadline:g}s)"))
            continue
        seen = seen_leases.get(w.identity, none).before(w.seq)
        if seen is not None and seen.seq > renew.seq and seen.holder != w.identity:
            out.append(Violation(w.t, "one-writer", f"{_describe(w)} after reading at "
                                                    f"{seen.t:.1f} that {seen.holder} holds "
                                                    "the lease"))
    ordered = sorted(h.writes, key=lambda w: w.seq)
    for prev, cur in itertools.pairwise(ordered):
        if prev.identity == cur.identity or cur.t - prev.t >= h.lease_duration:
            continue
        between = changes[bisect.bisect_right(change_seqs, prev.seq):
                          bisect.bisect_left(change_seqs, cur.seq)]
        handed = any(c.holder == cur.identity for c in between)
        if not handed and not exempt(prev) and not exempt(cur):
            out.append(Violation(cur.t, "one-writer", f"{_describe(cur)} {cur.t - prev.t:.1f}s "
                                                      f"after {_describe(prev)}, no hand-over "
                                                      "between"))
    return out


def _no_duplicate(h: History) -> list[Violation]:
    return [Violation(w.t, "no-duplicate", f"{_describe(w)}: the count it already had")
            for w in h.writes
            if w.kind == "scale" and w.outcome == WriteOutcome.DONE.value and w.old == w.new]


def recovery(chaos: Sequence[int], baseline: Sequence[int], *, clear_at: float,
             end: int) -> list[Violation]:
    """`recovers` on replicas: from RECOVERY_SECONDS after the faults cleared to `end`, the
    count stays within the tolerance of the fault-free run's (one violation per excursion)."""
    out: list[Violation] = []
    inside = True
    for t in range(math.ceil(clear_at + RECOVERY_SECONDS), min(end, len(chaos), len(baseline))):
        ours, base = chaos[t], baseline[t]
        ok = abs(ours - base) <= max(RECOVERY_SLACK, RECOVERY_TOLERANCE * base)
        if not ok and inside:
            out.append(Violation(float(t), "recovers",
                                 f"{ours} replicas, the fault-free run has {base} "
                                 f"({t - clear_at:.0f}s after the last fault cleared)"))
        inside = ok
    return out


# ---------------------------------------------------------------------------------------------
# Fault hooks the driver sets and clears


class KubeFaultWindows:
    """`ModelCluster`'s (and the lease stores') faults: while a window is open, the newest one
    covering a (verb, resource) answers; a fault armed for a (verb, resource) answers its next
    request outside any window, however late (`FaultPlan`'s one-shot kind): scale writes are
    rare, and a fault that never meets one would test nothing."""

    def __init__(self) -> None:
        self._open: list[tuple[int, frozenset[tuple[str, str]], Fault]] = []
        self._armed: dict[tuple[str, str], list[Fault]] = {}

    def open(self, key: int, targets: Iterable[tuple[str, str]], fault: Fault) -> None:
        self._open.append((key, frozenset(targets), fault))

    def close(self, key: int) -> None:
        self._open = [w for w in self._open if w[0] != key]

    def arm(self, target: tuple[str, str], fault: Fault) -> None:
        self._armed.setdefault(target, []).append(fault)

    def take(self, verb: str, resource: str) -> Fault | None:
        for _, targets, fault in reversed(self._open):
            if (verb, resource) in targets:
                return fault
        armed = self._armed.get((verb, resource))
        return armed.pop(0) if armed else None


class _Stack:
    """Per key, the faults set on it; the newest wins, clearing one uncovers the one below."""

    def __init__(self, apply: Callable[[str, ReadFault | None], None]) -> None:
        self._items: dict[str, list[tuple[int, ReadFault]]] = {}
        self._apply = apply

    def push(self, key: str, fid: int, value: ReadFault) -> None:
        self._items.setdefault(key, []).append((fid, value))
        self._apply(key, value)

    def pop(self, key: str, fid: int) -> None:
        items = [i for i in self._items.get(key, []) if i[0] != fid]
        self._items[key] = items
        self._apply(key, items[-1][1] if items else None)


# ---------------------------------------------------------------------------------------------
# The replicas' adapters, recording what they see


class _Seq:
    def __init__(self) -> None:
        self._next = itertools.count()

    def __call__(self) -> int:
        return next(self._next)


class ChaosCluster(ModelCluster):
    """One replica's `ModelCluster`: records its reads of the workload and its requests."""

    def __init__(self, model: ClusterModel, *, faults: KubeFaultWindows, identity: str,
                 history: History, seq: _Seq) -> None:
        super().__init__(model, faults=faults)
        self.identity = identity
        self.history = history
        self.seq = seq
        self.marks = history.marks.setdefault(identity, [])

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        status = await super().get_workload(namespace, deployment)
        self.marks.append(Mark(self.seq(), _now()))
        return status

    async def scale(self, namespace: str, deployment: str, *, replicas: int,
                    resource_version: str) -> WriteResult:
        seq, sent, old = self.seq(), _now(), self.model.deployment.replicas
        result = await super().scale(namespace, deployment, replicas=replicas,
                                     resource_version=resource_version)
        self.history.writes.append(Write(seq, sent, self.identity, "scale", old, replicas,
                                         result.outcome.value, done=_now()))
        return result

    async def evict(self, namespace: str, pod: str, *,
                    resource_version: str = "") -> WriteResult:
        seq, sent, old = self.seq(), _now(), self.model.deployment.replicas
        result = await super().evict(namespace, pod, resource_version=resource_version)
        self.history.writes.append(Write(seq, sent, self.identity, "evict", old, old,
                                         result.outcome.value, done=_now(), pod=pod))
        return result


class RecordingSource:
    """A replica's source: records each read it completes, and any signal accepted with a value
    no Tracardi cluster has (`bad-input`)."""

    def __init__(self, inner: ModelPulsarSource | ModelRateSource, *, needed: Sequence[str],
                 log: list[Read], seq: _Seq, problems: list[Violation]) -> None:
        self.name = inner.name
        self.inner = inner
        self.needed = tuple(needed)
        self.log = log
        self.seq = seq
        self.problems = problems
        self.accepted: set[str] = set()

    async def read(self) -> Sequence[Signal]:
        signals = await self.inner.read()
        now = _now()
        by_name = {s.name: s for s in signals}
        used = [by_name[n] for n in self.needed if n in by_name]
        bad = tuple(n for n in self.needed if n not in by_name or not by_name[n].ok)
        self.log.append(Read(self.seq(), now, bad, min((s.read_at for s in used), default=now)))
        for s in signals:
            wrong = s.ok and s.value is not None and not 0 <= s.value <= ABSURD_LIMIT
            if wrong and s.name not in self.accepted:  # once per run of such reads
                self.problems.append(Violation(now, "bad-input", f"{s.name} = {s.value:g} "
                                                                 "accepted as a valid value"))
                self.accepted.add(s.name)
            elif not wrong:
                self.accepted.discard(s.name)
        return signals

    async def close(self) -> None:
        await self.inner.close()


class ChaosLeaseStore:
    """One replica's way to the Lease: the shared Kubernetes faults, its own partition, and a
    record of what it read and wrote."""

    def __init__(self, inner: SimLeaseStore, *, identity: str, soak: Soak) -> None:
        self.inner = inner
        self.identity = identity
        self.soak = soak
        self.reads = soak.history.lease_reads.setdefault(identity, [])

    async def _fault(self, verb: str) -> ApiError | None:
        mode = self.soak.partitioned.get(self.identity)
        if mode == "hang":
            await asyncio.sleep(3600.0)
        if mode == "fail":
            return ApiError("dial tcp 10.96.0.1:443: connect: connection refused")
        fault = self.soak.kube_faults.take(verb, "leases")
        if fault is None:
            return None
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        return fault.error()

    async def get(self, namespace: str, name: str) -> LeaseRecord | None:
        err = await self._fault("get")
        if err is not None:
            raise KubeError(err.code, err.reason, err.message, retry_after=err.retry_after)
        record = await self.inner.get(namespace, name)
        self.reads.append(LeaseRead(self.soak.seq(), _now(), record.holder if record else None))
        return record

    async def create(self, namespace: str, name: str, record: LeaseRecord) -> WriteResult:
        return await self._write("create", namespace, name, record)

    async def update(self, namespace: str, name: str, record: LeaseRecord) -> WriteResult:
        return await self._write("update", namespace, name, record)

    async def _write(self, verb: str, namespace: str, name: str,
                     record: LeaseRecord) -> WriteResult:
        sent = _now()
        err = await self._fault(verb)
        if err is not None:
            return WriteResult(outcome_for(err.code), err.message, err.retry_after)
        call = self.inner.create if verb == "create" else self.inner.update
        result = await call(namespace, name, record)
        if result.outcome is WriteOutcome.DONE:
            self.soak.history.lease_changes.append(LeaseChange(
                self.soak.seq(), _now(), sent, self.identity, record.holder))
        return result


# ---------------------------------------------------------------------------------------------
# The soak


@dataclass
class Replica:
    """One running daemon replica."""

    slot: str
    identity: str
    daemon: Daemon
    elector: LeaderElector
    telemetry: Telemetry
    started_at: float
    offset: list[float]  # its wall clock's offset (a clock jump), shared with its `wall`
    task: asyncio.Task[None] | None = None
    stopping: bool = False


def narrow(loaded: LoadedConfig, key: str) -> LoadedConfig:
    """The config narrowed to the workload under test (the other ones get no traffic here)."""
    return dataclasses.replace(loaded, workloads=tuple(w for w in loaded.workloads
                                                       if w.key == key))


def looped(trace: Trace, seconds: int) -> Trace:
    """The trace repeated (or cut) to `seconds`."""
    rates = trace.rates
    return Trace(trace.name, tuple(rates[t % len(rates)] for t in range(seconds)),
                 trace.interval)


def invalid_config(text: str, variant: str) -> str:
    """The config made invalid: cut inside a flow mapping (a write that stopped half-way), an
    unknown key, or a workload's `min` that is not a number."""
    if variant == "truncated":
        cut = text.find("{", len(text) // 2)
        return text[: cut + 1] if cut >= 0 else text[: len(text) // 2] + "{"
    if variant == "unknown-key":
        return text + "\nautoscale_everything: true\n"
    return re.sub(r"\bmin:\s*\d+", 'min: "several"', text, count=1)


class _TaskLog:
    """A structlog processor for the soak: keeps the daemon's task failures, drops the rest."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def __call__(self, _: Any, __: str, event: MutableMapping[str, Any]) -> Any:
        if event.get("event") in ("task_failed", "task_ended"):
            self.failures.append(f"{event.get('event')} {event.get('task')}")
        raise structlog.DropEvent


class InlineExecutor(ThreadPoolExecutor):
    """The virtual loop's default executor: runs each job at once, in the loop's thread.

    The config watcher parses in a thread (`asyncio.to_thread`); on `sim.clock`'s loop, which
    jumps to its next timer whenever nothing is ready, a thread's real milliseconds would become
    an arbitrary stretch of virtual time (the watcher would see an invalid file a minute late,
    and two runs of one seed would differ). Inline, a parse takes no virtual time.
    """

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        future: Future[T] = Future()
        try:
            future.set_result(fn(*args, **kwargs))
        except BaseException as exc:  # handed over to the awaiting task, as a thread would
            future.set_exception(exc)
        return future


class Soak:
    """One run: two replicas over one model, the faults applied at their times."""

    def __init__(self, loaded: LoadedConfig, setup: Setup, *, seed: int, duration: int,
                 faults: Sequence[ChaosFault], config_file: Path,
                 on_progress: Callable[[float], None] | None = None) -> None:
        self.setup = setup
        self.key = setup.spec.key
        self.config = narrow(loaded, self.key)
        self.duration = duration
        self.faults = tuple(faults)
        self.config_file = config_file
        self.config_text = config_file.read_text()
        self.config_valid = asyncio.Event()
        self.config_valid.set()
        self.on_progress = on_progress
        self.model = setup.model(seed=seed, record_timeline=True)
        self.rng = random.Random(f"chaos-run-{seed}")
        self.seq = _Seq()
        self.kube_faults = KubeFaultWindows()
        self.source_faults = SourceFaults()
        self._sources = _Stack(self._set_source_fault)
        self.partitioned: dict[str, str] = {}
        self.replicas: dict[str, Replica] = {}
        self.problems: list[Violation] = []
        self.restarts = 0
        self.tasks = _TaskLog()
        cfg = self.config.config
        spec = setup.spec
        needed = [s for s in spec.signal_names() if s.split(".", 1)[0] in cfg.sources]
        self.needed = needed
        self.staleness = min(cfg.sources[s.split(".", 1)[0]].staleness_limit() for s in needed)
        lease = cfg.daemon.lease
        self.lease = lease
        self.lease_namespace = lease.namespace or cfg.daemon.namespace
        self.history = History(
            min_replicas=spec.settings.min, max_replicas=spec.settings.max,
            requires=tuple(spec.settings.requires),
            grace={name: dep.period_seconds + FROZEN_GRACE_SECONDS
                   for name, dep in cfg.dependencies.items()},
            staleness=self.staleness, lease_duration=lease.duration_seconds,
            renew_deadline=lease.renew_deadline_seconds)
        self._kube_state: KubeState | None = None
        self._lease_store: SimLeaseStore | None = None
        self._snapshots: dict[int, dict[str, float]] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._dying: set[asyncio.Task[None]] = set()  # killed replicas finishing their write
        self._hit: dict[int, Replica] = {}  # the replica a partition or clock jump hit

    # -- replicas ----------------------------------------------------------------------------

    def _set_source_fault(self, name: str, fault: ReadFault | None) -> None:
        if fault is None:
            self.source_faults.active.pop(name, None)
        else:
            self.source_faults.active[name] = fault

    def _readers(self, config: LoadedConfig,
                 identity: str) -> tuple[dict[str, Source], dict[str, Probe]]:
        wanted: set[str] = set()
        for spec in config.workloads:
            wanted |= {s.split(".", 1)[0] for s in spec.signal_names()}
            if spec.settings.healing.consumer_source:
                wanted.add(spec.settings.healing.consumer_source)
        log = self.history.reads.setdefault(identity, [])
        sources: dict[str, Source] = {}
        for name, src in config.config.sources.items():
            if name not in wanted:
                continue
            inner: ModelPulsarSource | ModelRateSource = (
                ModelPulsarSource(name, self.model, src, faults=self.source_faults)
                if isinstance(src, PulsarSource) else
                ModelRateSource(name, self.model, faults=self.source_faults))
            needed = [s for s in self.needed if s.split(".", 1)[0] == name]
            sources[name] = (RecordingSource(inner, needed=needed, log=log, seq=self.seq,
                                             problems=self.problems) if needed else inner)
        probes: dict[str, Probe] = {name: ModelProbe(name, self.model)
                                    for name in config.config.dependencies}
        return sources, probes

    def start_replica(self, slot: str, identity: str) -> Replica:
        from autoscaler.runtime import watch_config  # noqa: PLC0415 (imports the live stack)

        assert self._lease_store is not None
        offset = [0.0]

        def wall() -> float:
            return sim_wall() + offset[0]

        clock = VirtualClock()
        lease = self.lease
        elector = LeaderElector(
            ChaosLeaseStore(self._lease_store, identity=identity, soak=self), clock=clock,
            identity=identity, namespace=self.lease_namespace, name=lease.name,
            lease_duration=lease.duration_seconds, renew_deadline=lease.renew_deadline_seconds,
            retry_period=lease.retry_period_seconds, wall=wall,
            rng=random.Random(f"{identity}-{self.restarts}"), release_on_cancel=False)
        sources, probes = self._readers(self.config, identity)
        telemetry = Telemetry()
        cluster = ChaosCluster(self.model, faults=self.kube_faults, identity=identity,
                               history=self.history, seq=self.seq)
        adapters = Adapters(clock=clock, cluster=cluster, sources=sources, probes=probes,
                            leadership=elector, wall=wall, pod_prober=ModelPodProber(self.model))
        daemon = Daemon(self.config, adapters, telemetry=telemetry, check_conflicts=False)
        elector.handover = daemon

        def on_change(new: LoadedConfig) -> None:
            narrowed = narrow(new, self.key)
            srcs, prbs = self._readers(narrowed, identity)
            daemon.reload(narrowed, sources=srcs, probes=prbs)

        adapters.extra_tasks = {
            "leader-elector": elector.run,
            "config-watch": lambda: watch_config(self.config_file, on_change=on_change,
                                                 telemetry=telemetry),
        }
        replica = Replica(slot, identity, daemon, elector, telemetry, _now(), offset)
        replica.task = asyncio.create_task(daemon.run(), name=f"daemon:{identity}")
        replica.task.add_done_callback(lambda task: self._ended(replica, task))
        self.replicas[slot] = replica
        return replica

    def _ended(self, replica: Replica, task: asyncio.Task[None]) -> None:
        if replica.stopping:
            return
        exc = None if task.cancelled() else task.exception()
        how = f"raised {exc!r}" if exc is not None else "returned"
        seen = "; ".join(self.tasks.failures[-3:]) or "no task failure logged"
        self.problems.append(Violation(_now(), "alive", f"{replica.identity}: run() {how} before "
                                                        f"it was stopped ({seen})"))
        # Kubernetes would restart the container: so does the soak, to go on.
        if self.replicas.get(replica.slot) is replica:
            del self.replicas[replica.slot]
            self._spawn(self._restart(same_pod=True))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def kill(self, replica: Replica) -> None:
        """Cancel the replica's run (its write in flight still lands); its slot is free now."""
        replica.stopping = True
        assert replica.task is not None
        replica.task.cancel()
        self._dying.add(replica.task)
        replica.task.add_done_callback(self._dying.discard)
        if self.replicas.get(replica.slot) is replica:
            del self.replicas[replica.slot]

    async def stop_all(self) -> None:
        for replica in list(self.replicas.values()):
            replica.stopping = True
            replica.daemon.stop()
        for replica in list(self.replicas.values()):
            assert replica.task is not None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60.0):
                    await asyncio.gather(replica.task, return_exceptions=True)
            if not replica.task.done():
                self.kill(replica)
        await asyncio.gather(*self._dying, *self._background, return_exceptions=True)

    # -- the run -----------------------------------------------------------------------------

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        loop.set_default_executor(InlineExecutor())
        self._kube_state = KubeState(clock=loop.time, wall=sim_wall)
        self._lease_store = SimLeaseStore(self._kube_state, clock=VirtualClock())
        for slot in SLOTS:
            self.start_replica(slot, f"autoscaler-{slot}")
        driver = asyncio.create_task(self._drive(), name="chaos-driver")
        progress = asyncio.create_task(self._progress(), name="chaos-progress")
        await asyncio.sleep(self.duration)
        driver.cancel()
        progress.cancel()
        await asyncio.gather(driver, progress, return_exceptions=True)
        self._final_checks()
        await self.stop_all()
        self.model.finish()
        timeline = self.model.timeline
        self.history.replicas = tuple(timeline.replicas) if timeline else ()

    async def _progress(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_SECONDS)
            if self.on_progress is not None:
                self.on_progress(_now())

    async def _drive(self) -> None:
        events: list[tuple[float, int, bool, int, ChaosFault]] = []
        for i, f in enumerate(self.faults):
            events.append((f.start, 2 * i, True, i, f))
            events.append((f.end, 2 * i + 1, False, i, f))
        events.sort(key=lambda e: (e[0], e[1]))
        for at, _, starting, fid, fault in events:
            await asyncio.sleep(max(0.0, at - _now()))
            self.model.advance(_now())
            # Applied at once, never awaited: the model's windows and the history's must agree.
            if starting:
                self._start(fid, fault)
            else:
                self._end(fid, fault)

    def _start(self, fid: int, f: ChaosFault) -> None:
        kind = f.kind
        name = self.setup.spec.deployment
        kube: dict[str, tuple[tuple[tuple[str, str], ...], Fault]] = {
            "kube-conflict": ((SCALE, ("update", "leases")), Fault(409, message=(
                f'Operation cannot be fulfilled on deployments.apps "{name}": the object has '
                "been modified; please apply your changes to the latest version and try "
                "again"))),
            "kube-throttled": ((SCALE, READ, *LEASE_CALLS),
                               Fault(429, retry_after=f.value, message="Too many requests")),
            "kube-500": ((SCALE, READ, *LEASE_CALLS), Fault(500, message="etcdserver: leader "
                                                                        "changed")),
            "kube-503": ((SCALE, READ, *LEASE_CALLS), Fault(503, message="the server is "
                                                                        "currently unable to "
                                                                        "handle the request")),
            "kube-timeout": ((SCALE, READ, *LEASE_CALLS),
                             Fault(504, delay=KUBE_TIMEOUT_SECONDS, message="request timed "
                                                                            "out")),
            "kube-forbidden": ((SCALE,), Fault(403, message=(
                f'deployments.apps "{name}" is forbidden: User "system:serviceaccount:tracardi:'
                'tracardi-autoscaler" cannot update resource "deployments/scale"'))),
            "kube-deleted": ((SCALE, READ), Fault(404, message=f'deployments.apps "{name}" not '
                                                               "found")),
        }
        if kind in kube:
            targets, fault = kube[kind]
            self.kube_faults.open(fid, targets, fault)
            if kind != "kube-deleted":  # a deleted Deployment is back when its window closes
                self.kube_faults.arm(SCALE, fault)
        elif kind.startswith("source-"):
            self._snapshots[fid] = self._errors(f.target)
            self._sources.push(f.target, fid, ReadFault(kind.removeprefix("source-")))
        elif kind in DEPENDENCY_FAULTS:
            self._set_outages(self._outages(f), add=True)
        elif kind == "lease-stolen":
            self._steal()
        elif kind == "lease-partition":
            target = self._leader() or self._any_replica()
            if target is not None:
                self._hit[fid] = target
                self.partitioned[target.identity] = "hang" if f.value else "fail"
        elif kind == "clock-jump":
            target = self._leader() or self._any_replica()
            if target is not None:
                self._hit[fid] = target
                target.offset[0] = f.value
        elif kind == "config-invalid":
            self._write_config(invalid_config(self.config_text,
                                              INVALID_CONFIGS[int(f.value)]))
            self.config_valid.clear()
        elif kind == "daemon-restart":
            victim = self._any_replica()
            if victim is not None:
                self.kill(victim)

    def _end(self, fid: int, f: ChaosFault) -> None:
        kind = f.kind
        if kind.startswith("kube-"):
            self.kube_faults.close(fid)
            if kind == "kube-deleted":  # re-created: a new object, a new resourceVersion
                self.model.deployment.resource_version += 1
        elif kind.startswith("source-"):
            self._report_source(fid, f)
            self._sources.pop(f.target, fid)
        elif kind in DEPENDENCY_FAULTS:
            self._report_dependency(f)
            self._set_outages(self._outages(f), add=False)
        elif kind == "lease-partition" and fid in self._hit:
            self.partitioned.pop(self._hit.pop(fid).identity, None)
        elif kind == "clock-jump" and fid in self._hit:
            self._hit.pop(fid).offset[0] = 0.0
        elif kind == "config-invalid":
            self._report_config(f)
            self._write_config(self.config_text)
            self.config_valid.set()
        elif kind == "daemon-restart":
            self._spawn(self._restart(same_pod=self.rng.random() < 0.5))

    async def _restart(self, *, same_pod: bool) -> None:
        await self.config_valid.wait()  # the new process would exit on a bad file: CrashLoop
        free = [s for s in SLOTS if s not in self.replicas]
        if not free:
            return
        slot = free[0]
        self.restarts += 1
        self.start_replica(slot, f"autoscaler-{slot}" if same_pod else
                           f"autoscaler-{slot}-{self.restarts}")

    def _outages(self, f: ChaosFault) -> list[Outage]:
        if f.kind == "dependency-flap":
            return [Outage(f.target, s, e) for s, e in f.phases]
        deps = sorted(self.config.config.dependencies) if f.kind == "dependencies-all-down" \
            else [f.target]
        return [Outage(d, f.start, f.end) for d in deps]

    def _set_outages(self, outages: list[Outage], *, add: bool) -> None:
        if add:
            self.model.outages = (*self.model.outages, *outages)
            self.history.outages.extend(outages)
        else:
            self.model.outages = tuple(o for o in self.model.outages if o not in outages)

    def _leader(self) -> Replica | None:
        return next((r for r in self.replicas.values() if r.elector.is_leader()), None)

    def _any_replica(self) -> Replica | None:
        live = sorted(self.replicas)
        return self.replicas[self.rng.choice(live)] if live else None

    def _steal(self) -> None:
        state = self._kube_state
        assert state is not None
        try:
            lease = state.get_lease(self.lease_namespace, self.lease.name)
        except ApiError:
            return
        holder = lease.spec.holder
        others = sorted(r.identity for r in self.replicas.values() if r.identity != holder)
        thief = others[0] if others else "autoscaler-intruder"
        wall = sim_wall()
        spec = LeaseSpec(holder=thief, duration_seconds=lease.spec.duration_seconds,
                         acquire_time=wall, renew_time=wall,
                         transitions=(lease.spec.transitions or 0) + 1)
        state.update_lease(self.lease_namespace, self.lease.name, spec,
                           resource_version=lease.resource_version)
        self.history.lease_changes.append(LeaseChange(self.seq(), _now(), _now(), "chaos",
                                                      thief))

    def _write_config(self, text: str) -> None:
        tmp = self.config_file.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.config_file)  # a new inode, as a ConfigMap's symlink swap

    # -- reports -----------------------------------------------------------------------------

    def _lived_through(self, f: ChaosFault) -> list[Replica]:
        return [r for r in self.replicas.values() if r.started_at <= f.start]

    def _errors(self, source: str) -> dict[str, float]:
        """Per replica, its `signal_errors` count so far for the source's signals."""
        out: dict[str, float] = {}
        for r in self.replicas.values():
            total = 0.0
            for metric in r.telemetry.signal_errors.collect():
                total += sum(s.value for s in metric.samples if s.name.endswith("_total")
                             and s.labels.get("signal", "").startswith(f"{source}."))
            out[r.identity] = total
        return out

    def _report_source(self, fid: int, f: ChaosFault) -> None:
        before = self._snapshots.pop(fid, {})
        cfg = self.config.config.sources[f.target]
        if (f.kind == f"source-{ReadFault.STALE.value}"
                or f.end - f.start < cfg.poll_seconds + cfg.timeout_seconds + 2.0
                or any(g is not f and g.target == f.target and g.kind.startswith("source-")
                       and g.start < f.end and f.start < g.end for g in self.faults)):
            return  # too short to be read, or another fault on the source answered in between
        after = self._errors(f.target)
        for r in self._lived_through(f):
            if r.identity in before and after.get(r.identity, 0.0) <= before[r.identity]:
                self.problems.append(Violation(_now(), "reports", f"{r.identity}: no signal "
                                                                  f"error counted for {f.kind} "
                                                                  f"on {f.target}"))

    def _report_dependency(self, f: ChaosFault) -> None:
        if f.kind == "dependency-flap":
            return
        deps = self.config.config.dependencies
        for name in sorted(deps) if f.kind == "dependencies-all-down" else [f.target]:
            needed = deps[name].failure_threshold * deps[name].period_seconds \
                + deps[name].period_seconds + 1.0
            if f.end - f.start < needed:
                continue
            for r in self._lived_through(f):
                up = r.telemetry.registry.get_sample_value(
                    "tracardi_autoscaler_dependency_up", {"dependency": name})
                if up != 0:
                    self.problems.append(Violation(_now(), "reports", f"{r.identity}: "
                                                                      f"dependency_up{{{name}}} "
                                                                      f"is {up} after "
                                                                      f"{f.end - f.start:.0f}s "
                                                                      "down"))

    def _report_config(self, f: ChaosFault) -> None:
        if f.end - f.start < 5.0:
            return
        for r in self._lived_through(f):
            ok = r.telemetry.registry.get_sample_value(
                "tracardi_autoscaler_config_last_reload_success")
            if ok != 0:
                self.problems.append(Violation(_now(), "reports", f"{r.identity}: "
                                                                  "config_last_reload_success "
                                                                  f"is {ok} with an invalid "
                                                                  "config"))

    def _final_checks(self) -> None:
        now = _now()
        leaders = [r for r in self.replicas.values() if r.elector.is_leader()]
        if len(leaders) != 1:
            self.problems.append(Violation(now, "recovers", f"{len(leaders)} replicas lead at "
                                                            "the end"))
            return
        leader = leaders[0]
        reg = leader.telemetry.registry
        for name in sorted(self.config.config.dependencies):
            if reg.get_sample_value("tracardi_autoscaler_dependency_up",
                                    {"dependency": name}) != 1:
                self.problems.append(Violation(now, "recovers", f"{leader.identity} does not "
                                                                f"see {name} up at the end"))
        spec = self.setup.spec
        if reg.get_sample_value("tracardi_autoscaler_frozen",
                                {"namespace": spec.namespace, "workload": spec.name}) != 0:
            self.problems.append(Violation(now, "recovers", f"{leader.identity} has "
                                                            f"{spec.name} frozen at the end"))


# ---------------------------------------------------------------------------------------------
# Jobs, records and the report


@dataclass(frozen=True, slots=True)
class ChaosJob:
    config: str
    trace: str  # a CSV path, or "generated"
    kind: str  # worker | api
    seed: int
    hours: float
    peak_replicas: int = 20


@dataclass
class SoakResult:
    model: ClusterModel
    setup: Setup
    faults: tuple[ChaosFault, ...]
    violations: list[Violation]
    replicas: Sequence[int]
    requests: dict[str, int]  # scale requests by outcome
    wall_s: float


def prepare(job: ChaosJob) -> tuple[LoadedConfig, Setup, int]:
    loaded = load_config(job.config)
    duration = int(job.hours * 3600)
    trace = looped(trace_for(job.trace), duration)
    return loaded, build_setup(loaded, trace, job.kind, peak_replicas=job.peak_replicas), duration


def faults_for(job: ChaosJob, loaded: LoadedConfig, setup: Setup,
               duration: int) -> tuple[ChaosFault, ...]:
    cfg = loaded.config
    source = setup.spec.signal_names()[0].split(".", 1)[0]
    return schedule(seed=job.seed, duration=duration, source=source,
                    source_kind=cfg.sources[source].kind, dependencies=sorted(cfg.dependencies))


def run_soak(job: ChaosJob, *, with_faults: bool,
             on_progress: Callable[[float], None] | None = None,
             baseline: Sequence[int] | None = None,
             faults: Sequence[ChaosFault] | None = None) -> SoakResult:
    """One soak (with the job's scheduled faults, `faults` if given, or none) and its
    violations; with a fault-free run's `baseline` replicas, `recovers` too."""
    started = time.perf_counter()
    loaded, setup, duration = prepare(job)
    if faults is None:
        faults = faults_for(job, loaded, setup, duration) if with_faults else ()
    saved = structlog.get_config()
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        config_file = Path(tmp) / "config.yaml"
        config_file.write_text(Path(job.config).read_text())
        soak = Soak(loaded, setup, seed=job.seed, duration=duration, faults=faults,
                    config_file=config_file, on_progress=on_progress)
        structlog.configure(processors=[soak.tasks])
        try:
            run_virtual(soak.run())
        finally:
            structlog.configure(**saved)
    violations = [*check(soak.history), *soak.problems]
    if baseline is not None:
        clear_at = max((f.end for f in faults), default=0.0)
        violations += recovery(soak.history.replicas, baseline, clear_at=clear_at, end=duration)
    requests = counts_of(w.outcome for w in soak.history.writes if w.kind == "scale")
    return SoakResult(soak.model, setup, tuple(faults), sorted(violations, key=lambda v: v.t),
                      soak.history.replicas, requests, time.perf_counter() - started)


def counts_of(items: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for item in items:
        out[item] = out.get(item, 0) + 1
    return dict(sorted(out.items()))


def counts(faults: Iterable[ChaosFault]) -> dict[str, int]:
    return counts_of(f.kind for f in faults)


def record(job: ChaosJob, result: SoakResult, *, with_faults: bool) -> dict[str, Any]:
    return {"trace": result.setup.trace.name, "scenario": CHAOS, "kind": job.kind,
            "contender": "ours", "target": None, "faults": with_faults, "seed": job.seed,
            "hours": job.hours, **scores(result.setup, result.model),
            "scale_requests": result.requests,
            "faults_injected": counts(result.faults),
            "invariant_violations": [v.as_json() for v in result.violations],
            "wall_s": round(result.wall_s, 2)}


def run_chaos_job(job: ChaosJob, progress: MutableMapping[str, float] | None = None
                  ) -> list[dict[str, Any]]:
    """The fault-free run, then the chaos run compared with it: two records."""
    duration = job.hours * 3600

    def report(phase: int) -> Callable[[float], None]:
        def done(t: float) -> None:
            if progress is not None:
                progress[job.kind] = (phase * duration + t) / (2 * duration)
        return done

    base = run_soak(job, with_faults=False, on_progress=report(0))
    chaos = run_soak(job, with_faults=True, on_progress=report(1), baseline=base.replicas)
    if progress is not None:
        progress[job.kind] = 1.0
    return [record(job, chaos, with_faults=True), record(job, base, with_faults=False)]


def run_chaos_jobs(jobs: Sequence[ChaosJob], *, workers: int,
                   progress: bool = True) -> list[dict[str, Any]]:
    """Every job on its own process (up to `workers`), with a progress bar on stderr."""
    started = time.perf_counter()
    results: list[list[dict[str, Any]]] = [[] for _ in jobs]
    if workers <= 1 or len(jobs) == 1:
        shared: dict[str, float] = {}
        for i, job in enumerate(jobs):
            results[i] = run_chaos_job(job, _Bar(shared, len(jobs), started, progress))
    else:
        with Manager() as manager, ProcessPoolExecutor(max_workers=workers) as pool:
            state = manager.dict()
            futures: dict[Future[list[dict[str, Any]]], int] = {
                pool.submit(run_chaos_job, job, state): i for i, job in enumerate(jobs)}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=2.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    results[futures[fut]] = fut.result()
                if progress:
                    _render(dict(state), len(jobs), started)
    if progress:
        sys.stderr.write("\n")
    return [r for rs in results for r in rs]


class _Bar(dict[str, float]):
    """A progress mapping that redraws the bar whenever a job reports (in-process runs)."""

    def __init__(self, shared: dict[str, float], total: int, started: float,
                 enabled: bool) -> None:
        super().__init__()
        self.shared = shared
        self.total = total
        self.started = started
        self.enabled = enabled

    def __setitem__(self, key: str, value: float) -> None:
        self.shared[key] = value
        if self.enabled:
            _render(self.shared, self.total, self.started)


def _render(state: Mapping[str, float], total: int, started: float) -> None:
    width = 30
    fraction = sum(state.values()) / total if total else 1.0
    filled = int(width * fraction)
    parts = " ".join(f"{k} {v:4.0%}" for k, v in sorted(state.items()))
    sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] chaos {fraction:4.0%} "
                     f"{time.perf_counter() - started:5.0f}s {parts:<40.40}")
    sys.stderr.flush()


def chaos_report(results: Sequence[Mapping[str, Any]]) -> str:
    """Faults by kind, the invariant violations, and the scores next to the fault-free run."""
    chaos = [r for r in results if r["faults"]]
    several = len({r["trace"] for r in results}) > 1

    def label(r: Mapping[str, Any]) -> str:
        return f"{r['trace']}/{r['kind']}" if several else str(r["kind"])

    lines = [f"chaos soak: {r['trace']} looped to {r['hours']:g} h, seed {r['seed']}, the "
             f"{r['kind']} workload, two replicas with leader election" for r in chaos]
    width = max([10, *(len(label(r)) + 2 for r in chaos)])
    head = f"{'fault':<28}" + "".join(f"{label(r):>{width}}" for r in chaos)
    lines += ["", head, "-" * len(head)]
    for k in sorted({k for r in chaos for k in r["faults_injected"]}):
        lines.append(f"{k:<28}" + "".join(f"{r['faults_injected'].get(k, 0):>{width}}"
                                          for r in chaos))
    lines += [f"{'total':<28}" + "".join(f"{sum(r['faults_injected'].values()):>{width}}"
                                         for r in chaos), ""]
    for r in chaos:
        outcomes = ", ".join(f"{k} {v}" for k, v in r["scale_requests"].items())
        lines.append(f"{label(r)}: scale requests by outcome: {outcomes}")
    lines.append("")
    for r in results:
        found = r["invariant_violations"]
        run = f"{label(r)} ({'chaos' if r['faults'] else 'fault-free'})"
        lines.append(f"{run}: {len(found)} invariant violation{'' if len(found) == 1 else 's'}")
        lines += [f"  t={v['t']:>9.1f}s {v['invariant']:<12} {v['detail']}" for v in found]
    head = (f"{'workload':<{width}} {'run':<11} {'replica_s':>11} {'slo_viol_s':>10} "
            f"{'actions':>7} {'flips':>5} {'out_act':>7} {'out_rst':>7} {'wall_s':>7}")
    lines += ["", head, "-" * len(head)]
    for r in results:
        lines.append(f"{label(r):<{width}} {'chaos' if r['faults'] else 'fault-free':<11} "
                     f"{r['replica_seconds']:>11.0f} {r['slo_violation_seconds']:>10d} "
                     f"{r['scale_actions']:>7d} {r['direction_changes']:>5d} "
                     f"{r['actions_during_outage']:>7d} {r['restarts_during_outage']:>7d} "
                     f"{r['wall_s']:>7.1f}")
    return "\n".join(lines)
