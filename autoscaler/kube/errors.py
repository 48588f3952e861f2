"""What a failed Kubernetes call means to the daemon, shared by `kube/` and `sim/`.

Reads raise `KubeError` (with the apiserver's Status message); writes return a
`ports.WriteResult` whose outcome comes from `outcome_for`. No client library here, so the
in-memory `SimCluster` raises and returns exactly what `KubeCluster` does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from autoscaler.ports import WriteOutcome

#: `code` of a `KubeError` when no HTTP answer came back (refused, reset, timed out).
UNREACHABLE = 0


class KubeError(Exception):
    """A read from the Kubernetes API failed: `code` is the HTTP status (0: unreachable),
    `reason` the Status reason (`NotFound`, `Forbidden`, ...), `message` the Status message."""

    def __init__(self, code: int, reason: str, message: str, *,
                 retry_after: float | None = None) -> None:
        super().__init__(f"{code} {reason}: {message}" if code else f"{reason}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.retry_after = retry_after

    @property
    def not_found(self) -> bool:
        return self.code == 404


def outcome_for(code: int) -> WriteOutcome:
    """The write outcome for an HTTP status: 409 re-read, 429 wait, 401/403 RBAC, 404 gone."""
    if 200 <= code < 300:
        return WriteOutcome.DONE
    return {
        401: WriteOutcome.FORBIDDEN,
        403: WriteOutcome.FORBIDDEN,
        404: WriteOutcome.NOT_FOUND,
        409: WriteOutcome.CONFLICT,
        429: WriteOutcome.THROTTLED,
    }.get(code, WriteOutcome.FAILED)


def retry_after(header: str | None, status: Mapping[str, Any] | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` header (delta-seconds) or a Status's
    `details.retryAfterSeconds`; None when neither says."""
    if header:
        try:
            seconds = float(header)
        except ValueError:
            seconds = math.nan
        if math.isfinite(seconds) and seconds >= 0:
            return seconds
    details = (status or {}).get("details") or {}
    value = details.get("retryAfterSeconds") if isinstance(details, Mapping) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None
