"""Pulsar probe: `GET {admin_url}/admin/v2/brokers/health`, up when the broker answers `ok`.

The broker's health check writes and reads a message on an internal topic, so `ok` means the
broker, its metadata store and BookKeeper work. HTTP plumbing (TLS, auth, deadline, no
redirects) is `autoscaler.sources.http`, shared with the Pulsar backlog source.
"""

from __future__ import annotations

from autoscaler.config import PulsarDependency
from autoscaler.ports import CheckResult
from autoscaler.sources.http import ReadFailedError, Reply, SessionPool, shorten

MAX_HEALTH_BYTES = 4 * 1024


class PulsarProbe:
    """One Pulsar cluster's admin endpoint; owns its session pool."""

    def __init__(self, name: str, cfg: PulsarDependency) -> None:
        self.name = name
        self._cfg = cfg
        self._pool = SessionPool(limit_per_host=1)
        self._url = f"{cfg.admin_url}/admin/v2/brokers/health"

    async def check(self) -> CheckResult:
        cfg = self._cfg
        try:
            fetched = await self._pool.fetch(
                self._url, auth=cfg.auth, tls=cfg.tls, timeout_seconds=cfg.timeout_seconds,
                max_bytes=MAX_HEALTH_BYTES, parse=health_verdict)
        except ReadFailedError as exc:
            return CheckResult(ok=False, reason=str(exc))
        return CheckResult(ok=fetched.value.ok, reason=fetched.redact(fetched.value.reason))

    async def close(self) -> None:
        await self._pool.close()


def health_verdict(reply: Reply) -> CheckResult:
    if reply.status != 200:
        return CheckResult(ok=False, reason=reply.error_detail())
    text = reply.body.decode("utf-8", "replace").strip()
    # The body is the bare word; some proxies re-encode it as a JSON string.
    if text in ("ok", '"ok"'):
        return CheckResult(ok=True)
    return CheckResult(ok=False, reason=f"unexpected health answer {shorten(text, 60)!r}")
