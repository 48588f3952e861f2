"""`SimLeaseStore`: the `LeaseStore` port over the in-memory `KubeState`, without HTTP.

The simulator and the elector's tests run `leader.LeaderElector` on it; `kube/leases.py`
(`KubeLeaseStore`) is the live twin with the same outcomes (409 -> CONFLICT). Faults injected
into `state.faults` for ("get" | "create" | "update", "leases") apply here as they do over HTTP.
"""

from __future__ import annotations

import math

from autoscaler.kube.errors import KubeError, outcome_for
from autoscaler.ports import (
    FIELD_MANAGER,
    LEASE_MEMO_ANNOTATION,
    Clock,
    LeaseRecord,
    WriteResult,
)
from autoscaler.sim.kubestate import ApiError, KubeState, Lease, LeaseSpec


def _spec(record: LeaseRecord) -> LeaseSpec:
    return LeaseSpec(holder=record.holder or None,
                     duration_seconds=max(1, math.ceil(record.duration_seconds)),
                     acquire_time=record.acquired_at, renew_time=record.renewed_at,
                     transitions=record.transitions)


def _record(lease: Lease) -> LeaseRecord:
    spec = lease.spec
    return LeaseRecord(holder=spec.holder, acquired_at=spec.acquire_time or 0.0,
                       renewed_at=spec.renew_time or 0.0,
                       duration_seconds=float(spec.duration_seconds or 0),
                       transitions=spec.transitions or 0,
                       resource_version=str(lease.resource_version),
                       memo=lease.annotations.get(LEASE_MEMO_ANNOTATION, ""))


def _annotations(record: LeaseRecord) -> dict[str, str]:
    return {LEASE_MEMO_ANNOTATION: record.memo} if record.memo else {}


class SimLeaseStore:
    def __init__(self, state: KubeState, *, clock: Clock) -> None:
        self._state = state
        self._clock = clock

    async def _fault(self, verb: str) -> ApiError | None:
        fault = self._state.faults.take(verb, "leases")
        if fault is None:
            return None
        if fault.delay > 0:
            await self._clock.sleep(fault.delay)
        return fault.error()

    async def get(self, namespace: str, name: str) -> LeaseRecord | None:
        err = await self._fault("get")
        if err is not None:
            raise KubeError(err.code, err.reason, err.message, retry_after=err.retry_after)
        try:
            return _record(self._state.get_lease(namespace, name))
        except ApiError as exc:
            if exc.code == 404:
                return None
            raise KubeError(exc.code, exc.reason, exc.message) from exc

    async def create(self, namespace: str, name: str, record: LeaseRecord) -> WriteResult:
        err = await self._fault("create")
        try:
            if err is not None:
                raise err
            self._state.create_lease(namespace, name, _spec(record),
                                     annotations=_annotations(record), manager=FIELD_MANAGER)
        except ApiError as exc:
            return WriteResult(outcome_for(exc.code), exc.message, exc.retry_after)
        return WriteResult(outcome_for(200))

    async def update(self, namespace: str, name: str, record: LeaseRecord) -> WriteResult:
        err = await self._fault("update")
        try:
            if err is not None:
                raise err
            self._state.update_lease(namespace, name, _spec(record), manager=FIELD_MANAGER,
                                     annotations=_annotations(record),
                                     resource_version=record.resource_version)
        except ApiError as exc:
            return WriteResult(outcome_for(exc.code), exc.message, exc.retry_after)
        return WriteResult(outcome_for(200))
