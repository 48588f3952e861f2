"""Elasticsearch probe: `GET /_cluster/health` turned into up or down with a reason.

Plain aiohttp through `autoscaler.sources.http`, not the official `elasticsearch` client. The
probe needs one GET and one small JSON object, and the plumbing for TLS, auth headers, deadlines,
size caps and secret-free error reasons already exists there. The official client would add its
own transport (node pool, sniffing, retries that fight our per-check deadline) and two checks
that break a health probe: from 8.x it refuses servers that do not send `X-Elastic-Product`
(proxies, OpenSearch-compatible gateways, our simulator), and each major sends a
`compatible-with=<major>` Accept header that an older cluster rejects, so a 9.x client cannot
probe the ES 7/8 clusters Tracardi runs on. Green is up; yellow is up unless `yellow_is_up` is
false; red, `timed_out` (HTTP 408), 401/403 and connection failures are down with their reason.
"""

from __future__ import annotations

from typing import Any

from autoscaler.config import ElasticsearchDependency
from autoscaler.ports import CheckResult
from autoscaler.sources.http import FetchError, ReadFailedError, Reply, SessionPool, shorten

MAX_HEALTH_BYTES = 64 * 1024


class ElasticsearchProbe:
    """One Elasticsearch cluster; owns its session pool."""

    def __init__(self, name: str, cfg: ElasticsearchDependency) -> None:
        self.name = name
        self._cfg = cfg
        self._pool = SessionPool(limit_per_host=1)
        self._url = f"{cfg.url}/_cluster/health"

    async def check(self) -> CheckResult:
        cfg = self._cfg
        try:
            fetched = await self._pool.fetch(
                self._url, auth=cfg.auth, tls=cfg.tls, timeout_seconds=cfg.timeout_seconds,
                max_bytes=MAX_HEALTH_BYTES,
                parse=lambda reply: verdict(reply, yellow_is_up=cfg.yellow_is_up))
        except ReadFailedError as exc:
            return CheckResult(ok=False, reason=str(exc))
        return CheckResult(ok=fetched.value.ok, reason=fetched.redact(fetched.value.reason))

    async def close(self) -> None:
        await self._pool.close()


def verdict(reply: Reply, *, yellow_is_up: bool) -> CheckResult:
    """Up or down from a `_cluster/health` reply; raises `FetchError` for unreadable JSON."""
    if reply.status in (401, 403):
        word = "unauthorized" if reply.status == 401 else "forbidden"
        reason = _es_reason(reply)
        return CheckResult(ok=False, reason=f"{word}: {reason}" if reason
                           else f"{word} (HTTP {reply.status})")
    if reply.status not in (200, 408):
        reason = _es_reason(reply)
        return CheckResult(ok=False, reason=f"HTTP {reply.status}: {reason}" if reason
                           else f"HTTP {reply.status}")
    body: Any = reply.json()
    if not isinstance(body, dict):
        raise FetchError("cluster health: expected a JSON object")
    status = body.get("status")
    # ES answers 408 exactly when `timed_out` is true (ClusterHealthResponse.status()).
    if body.get("timed_out") is True or reply.status == 408:
        return CheckResult(ok=False, reason=f"timed out (status {status})")
    unassigned = body.get("unassigned_shards")
    shards = f"{unassigned} unassigned shards" if isinstance(unassigned, int) else "no shard count"
    if status == "green":
        return CheckResult(ok=True)
    if status == "yellow":
        return CheckResult(ok=yellow_is_up, reason=f"yellow: {shards}")
    if status == "red":
        return CheckResult(ok=False, reason=f"red: {shards}")
    return CheckResult(ok=False, reason=f"unknown cluster status {shorten(str(status), 40)!r}")


def _es_reason(reply: Reply) -> str:
    """ES error bodies: `{"error": {"type", "reason"}, "status"}`, or a bare string (old ES)."""
    try:
        body = reply.json()
    except FetchError:
        return ""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("reason"), str):
        return shorten(error["reason"])
    if isinstance(error, str):
        return shorten(error)
    return ""
