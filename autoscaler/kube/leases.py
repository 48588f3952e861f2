"""`KubeLeaseStore`: the `LeaseStore` port over `coordination.k8s.io/v1` Leases.

`leader.LeaderElector` runs on it in the cluster; `sim/leases.py` (`SimLeaseStore`) is the
in-memory twin. Updates are PUTs carrying the resourceVersion that was read, so two candidates
can never both win: the loser gets 409 -> CONFLICT. Times travel as `MicroTime` (RFC 3339 with
exactly six fractional digits, UTC), the format the apiserver parses.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from kubernetes_asyncio.client import ApiClient, CoordinationV1Api, V1Lease
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.kube.cluster import (
    CALL_ERRORS,
    MalformedObjectError,
    count_of,
    epoch_of,
    kube_error,
)
from autoscaler.kube.errors import UNREACHABLE, KubeError, outcome_for
from autoscaler.ports import (
    FIELD_MANAGER,
    LEASE_MEMO_ANNOTATION,
    LeaseRecord,
    WriteOutcome,
    WriteResult,
)

log = structlog.get_logger(__name__)


def micro_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_record(lease: V1Lease) -> LeaseRecord:
    """What the elector needs of a Lease read from the apiserver; `MalformedObjectError` when
    it has no resourceVersion or impossible values."""
    meta, spec = lease.metadata, lease.spec
    if meta is None or not meta.resource_version:
        # Without it the next update would be unconditional and two candidates could both win.
        raise MalformedObjectError("Lease without metadata.resourceVersion")
    return LeaseRecord(
        holder=(spec.holder_identity if spec else None) or None,
        acquired_at=epoch_of(spec.acquire_time if spec else None, "spec.acquireTime"),
        renewed_at=epoch_of(spec.renew_time if spec else None, "spec.renewTime"),
        duration_seconds=float(count_of(spec.lease_duration_seconds if spec else None,
                                        "spec.leaseDurationSeconds")),
        transitions=count_of(spec.lease_transitions if spec else None, "spec.leaseTransitions"),
        resource_version=str(meta.resource_version),
        memo=(meta.annotations or {}).get(LEASE_MEMO_ANNOTATION, ""),
    )


class KubeLeaseStore:
    """Reads and writes one namespace's Leases. It does not own `api`."""

    def __init__(self, api: ApiClient, *, request_timeout: float = 5.0) -> None:
        self._api = CoordinationV1Api(api)
        self._timeout = request_timeout

    async def get(self, namespace: str, name: str) -> LeaseRecord | None:
        """The Lease, or None if there is none; other failures raise `KubeError`."""
        try:
            lease = await self._api.read_namespaced_lease(name, namespace,
                                                          _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise kube_error(exc) from exc
        except CALL_ERRORS as exc:
            raise kube_error(exc) from exc
        try:
            return lease_record(lease)
        except MalformedObjectError as exc:
            raise KubeError(UNREACHABLE, "MalformedLease", str(exc)) from exc

    async def create(self, namespace: str, name: str, record: LeaseRecord) -> WriteResult:
        return await self._write("create", namespace, name, record)

    async def update(self, namespace: str, name: str, record: LeaseRecord) -> WriteResult:
        """Replace the Lease if it still has `record.resource_version`, else CONFLICT."""
        return await self._write("update", namespace, name, record)

    async def _write(self, op: str, namespace: str, name: str,
                     record: LeaseRecord) -> WriteResult:
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if op == "update":
            metadata["resourceVersion"] = record.resource_version
        if record.memo:
            metadata["annotations"] = {LEASE_MEMO_ANNOTATION: record.memo}
        spec: dict[str, Any] = {
            "leaseDurationSeconds": max(1, math.ceil(record.duration_seconds)),
            "acquireTime": micro_time(record.acquired_at),
            "renewTime": micro_time(record.renewed_at),
            "leaseTransitions": record.transitions,
        }
        if record.holder:
            spec["holderIdentity"] = record.holder
        # A plain dict, not a V1Lease: the model serializer writes datetimes with isoformat(),
        # which drops a zero fraction, and the apiserver's MicroTime parser rejects that.
        body = cast(V1Lease, {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                              "metadata": metadata, "spec": spec})
        try:
            if op == "create":
                await self._api.create_namespaced_lease(namespace, body,
                                                        field_manager=FIELD_MANAGER,
                                                        _request_timeout=self._timeout)
            else:
                await self._api.replace_namespaced_lease(name, namespace, body,
                                                         field_manager=FIELD_MANAGER,
                                                         _request_timeout=self._timeout)
        except (ApiException, *CALL_ERRORS) as exc:
            err = kube_error(exc)
            outcome = outcome_for(err.code) if err.code else WriteOutcome.FAILED
            if outcome is not WriteOutcome.CONFLICT:
                log.warning("lease_write_failed", op=op, namespace=namespace, name=name,
                            code=err.code, message=err.message)
            return WriteResult(outcome, err.message, err.retry_after)
        return WriteResult(WriteOutcome.DONE)
