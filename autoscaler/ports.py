"""The seams between the daemon and the outside world (see DESIGN.md, "Seams").

Live adapters (HTTP sources and probes, `kube/`) and simulated ones (`sim/`) implement the same
protocols, so the daemon runs unchanged against either.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from autoscaler.config import HttpProbeSettings
from autoscaler.model import PodInfo, Signal, WorkloadStatus

#: The field manager a `Cluster` records this autoscaler's writes under (in the objects'
#: `metadata.managedFields`), whichever instance made them; `WorkloadStatus.replicas_set_by`
#: names it after they set the replicas.
FIELD_MANAGER = "tracardi-autoscaler"


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds (virtual in the simulator)."""
        ...

    async def sleep(self, seconds: float) -> None: ...


class Source(Protocol):
    """An async reader of signals. Readers never act."""

    name: str

    async def read(self) -> Sequence[Signal]:
        """One read. Failures come back as signals with `error` set, never as exceptions."""
        ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class CheckResult:
    """One raw probe check, before hysteresis."""

    ok: bool
    reason: str = ""


class Probe(Protocol):
    name: str

    async def check(self) -> CheckResult:
        """One check within the probe's own timeout. Never raises."""
        ...

    async def close(self) -> None: ...


class PodProber(Protocol):
    """The app-level check of one pod (the healer's HTTP probe); never raises."""

    async def check(self, pod: PodInfo, settings: HttpProbeSettings) -> CheckResult: ...

    async def close(self) -> None: ...


class WriteOutcome(StrEnum):
    DONE = "done"
    CONFLICT = "conflict"  # 409: re-read and re-decide, never retry blind
    NOT_FOUND = "not_found"
    FORBIDDEN = "forbidden"
    THROTTLED = "throttled"  # 429: wait and retry later (PDB for evictions)
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class WriteResult:
    outcome: WriteOutcome
    message: str = ""
    retry_after: float | None = None


@dataclass(frozen=True, slots=True)
class PodEvent:
    """A change seen by the namespace's watches: ADDED, MODIFIED or DELETED, with the workload
    it concerns (a pod's, or the Deployment itself when `resource` is "deployments")."""

    kind: str
    namespace: str
    workload: str
    resource: str = "pods"


class Cluster(Protocol):
    """Everything the daemon reads from and writes to Kubernetes. Only `kube/` (live) and
    `sim/` implement it."""

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus: ...

    def cached_workload(self, namespace: str, deployment: str) -> WorkloadStatus | None:
        """What `get_workload` would return, when the adapter holds it without a request (a
        watch keeps it current); else None, and the daemon calls `get_workload`."""
        ...

    def watches_synced(self, namespace: str) -> bool:
        """Whether the namespace's watches are in sync: while they are, every change of its
        Deployments and pods comes from `watch_pods`, and a workload that no event named since
        it was last read is as it was."""
        ...

    async def scale(self, namespace: str, deployment: str, *, replicas: int,
                    resource_version: str) -> WriteResult: ...

    async def evict(self, namespace: str, pod: str, *,
                    resource_version: str = "") -> WriteResult:
        """An Eviction of `pod` as of `resource_version` (none when empty): CONFLICT when the
        pod has changed since."""

    async def delete_pod(self, namespace: str, pod: str, *,
                         resource_version: str = "") -> WriteResult:
        """A delete of `pod` with the same precondition as `evict`."""

    async def emit_event(self, namespace: str, deployment: str, *, reason: str, message: str,
                         warning: bool = False) -> None: ...

    async def conflicting_autoscaler(self, namespace: str, deployment: str) -> str | None:
        """The name of an HPA or KEDA ScaledObject that also targets this Deployment."""
        ...

    async def pod_cpu(self, namespace: str, deployment: str) -> Signal: ...

    def watch_pods(self, namespace: str) -> AsyncIterator[PodEvent]: ...

    async def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class LeaseRecord:
    holder: str | None
    acquired_at: float
    renewed_at: float
    duration_seconds: float
    transitions: int
    resource_version: str
    #: What the holder hands over to its successor (`Handover`), kept in the Lease's
    #: `LEASE_MEMO_ANNOTATION`; empty when it has nothing.
    memo: str = ""


#: The Lease annotation that carries `LeaseRecord.memo`.
LEASE_MEMO_ANNOTATION = "autoscaler.tracardi.com/handover"


class Handover(Protocol):
    """What a leader hands over through the Lease: the healer's restart budget, backoff and
    breaker, which a successor must not start afresh (`Daemon` implements it)."""

    def leader_memo(self) -> str:
        """The memo to write with each renew (empty: nothing to hand over)."""

    def take_over(self, memo: str) -> None:
        """Called as this replica becomes the leader, with the memo of the Lease it took."""


class LeaseStore(Protocol):
    async def get(self, namespace: str, name: str) -> LeaseRecord | None: ...

    async def create(self, namespace: str, name: str, record: LeaseRecord) -> WriteResult: ...

    async def update(self, namespace: str, name: str, record: LeaseRecord) -> WriteResult: ...
