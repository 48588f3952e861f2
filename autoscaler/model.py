"""Value types that cross module borders: signals, dependency states, workload status, decisions.

Everything here is frozen and free of I/O. Sources and probes produce these values, the engine
consumes them, and the daemon, simulator and `explain` print them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum


class Health(StrEnum):
    """A dependency's state as the gate sees it."""

    UP = "up"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class PodSample:
    """One pod's resource usage from metrics.k8s.io (millicores)."""

    pod: str
    usage_milli: int


@dataclass(frozen=True, slots=True)
class ConsumerStat:
    """One Pulsar consumer of a subscription: who it is and how fast it drains."""

    name: str
    address: str
    msg_rate_out: float


@dataclass(frozen=True, slots=True)
class Signal:
    """A number read from outside at a time, or the error that prevented reading it.

    `read_at` is the clock time of the read (the daemon's monotonic clock). A signal with an
    error has no usable value, whatever `value` holds.
    """

    name: str
    value: float | None
    read_at: float
    error: str | None = None
    samples: tuple[PodSample, ...] = ()
    consumers: tuple[ConsumerStat, ...] = ()
    #: Whether the value is usable: no error, and a finite number. Worked out once, because
    #: policies ask it of every read in their windows at every evaluation.
    ok: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ok", self.error is None and self.value is not None
                           and math.isfinite(self.value))

    def age(self, now: float) -> float:
        return max(0.0, now - self.read_at)


@dataclass(frozen=True, slots=True)
class DependencyState:
    """A probe's verdict after hysteresis."""

    name: str
    health: Health
    reason: str = ""
    since: float = 0.0
    #: Consecutive failed checks so far: an up dependency that just failed is suspect.
    failures: int = 0
    #: Up, but flapping lately and not yet trusted again (see engine/hysteresis.py).
    settling: bool = False


@dataclass(frozen=True, slots=True)
class PodInfo:
    """What the engine needs to know about one pod of a workload."""

    name: str
    ready: bool = True
    phase: str = "Running"
    ip: str = ""
    started_at: float = 0.0
    deleting: bool = False
    restarts: int = 0
    waiting_reason: str = ""
    cpu_request_milli: int = 0
    #: metadata.resourceVersion: a restart evicts this version of the pod and no other (a pod
    #: that changed since, say became ready, is judged again); empty when not known. Left out
    #: of equality: a change of only the version (a label, an annotation) changes nothing the
    #: engine reads, and must not wake a settled workload (`engine/settled.py`).
    resource_version: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class WorkloadStatus:
    """A Deployment as read from the cluster at one moment."""

    name: str
    namespace: str
    replicas: int
    ready_replicas: int
    paused: bool = False
    resource_version: str = ""
    pods: tuple[PodInfo, ...] = ()
    #: metadata.generation: it grows with every change of the spec, replicas included; 0 when
    #: not known (the replayed cluster's in-memory adapter does not keep it).
    generation: int = 0
    #: The field manager that last set spec.replicas (metadata.managedFields): `kubectl` for
    #: `kubectl scale`, this autoscaler's own name after its writes; empty when not known.
    replicas_set_by: str = ""


#: The pods' CPU use, per pod, from metrics.k8s.io: the one signal no configured source reads.
CPU_SIGNAL = "resources.cpu"


@dataclass(frozen=True, slots=True)
class Capacity:
    """What one replica serves per second as a policy sized for it (`used`: learned, or the
    configured value) and what the config says (`configured`): requests/s, messages/s."""

    configured: float
    used: float
    learned: bool = False


@dataclass(frozen=True, slots=True)
class Recommendation:
    """What one policy proposes for one workload, and why.

    `settled`: the policy would propose the same at any later time as long as its signals keep
    the values they have now (it did not depend on a history that could still change). The
    daemon skips re-evaluating a workload whose proposals are all settled at its replica count
    until an input changes; a policy that cannot tell leaves it False.
    """

    replicas: int
    reason: str
    policy: str = ""
    settled: bool = False
    #: What one replica serves as this proposal sized for it, for a policy that sizes by one.
    capacity: Capacity | None = None


class Action(StrEnum):
    SCALE = "scale"
    HOLD = "hold"
    FREEZE = "freeze"
    PAUSE = "pause"


@dataclass(frozen=True, slots=True)
class Step:
    """One stage of the pipeline with the replica count it produced (for `explain`)."""

    stage: str
    replicas: int
    reason: str = ""


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one evaluation of one workload."""

    workload: str
    namespace: str
    action: Action
    current: int
    desired: int
    reasons: tuple[str, ...]
    recommendations: tuple[Recommendation, ...] = ()
    steps: tuple[Step, ...] = ()

    @property
    def changes(self) -> bool:
        return self.action is Action.SCALE and self.desired != self.current


@dataclass(frozen=True, slots=True)
class TimedValue:
    """A value remembered with the time it was recorded (stabilization and rate memory)."""

    at: float
    value: int


@dataclass(frozen=True, slots=True)
class ScalingHistory:
    """The behavior's memory: past raw recommendations and past scale events.

    The pure engine takes it and returns a new one; the daemon keeps the latest per workload.
    """

    recommendations: tuple[TimedValue, ...] = ()
    scale_up_events: tuple[TimedValue, ...] = ()
    scale_down_events: tuple[TimedValue, ...] = ()
    #: When the workload froze on a dependency, while it stays frozen (`engine.behavior.thawed`).
    frozen_since: float | None = None
