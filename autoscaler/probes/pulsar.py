"""Pulsar probe: `GET {admin_url}/admin/v2/brokers/health`, up when the broker answers `ok`.

The broker's health check writes and reads a message on an internal topic, so `ok` means the
broker, its metadata store and BookKeeper work. HTTP plumbing (TLS, auth, deadline, no
redirects) is `autoscaler.sources.http`, shared with the Pulsar backlog source.
"""

from __future__ import annotations

from autoscaler.config import PulsarDependency
from autoscaler.ports import CheckResult
from autoscaler.secrets import SecretError, redact, resolve_credentials
from autoscaler.sources.http import FetchError, SessionPool, auth_headers, shorten

MAX_HEALTH_BYTES = 4 * 1024


class PulsarProbe:
    """One Pulsar cluster's admin endpoint; owns its session pool."""

    def __init__(self, name: str, cfg: PulsarDependency) -> None:
        self.name = name
        self._cfg = cfg
        self._pool = SessionPool(limit_per_host=1)
        self._url = f"{cfg.admin_url}/admin/v2/brokers/health"

    async def check(self) -> CheckResult:
        secrets: tuple[str, ...] = ()
        try:
            creds = resolve_credentials(self._cfg.auth)
            secrets = creds.secrets()
            reply = await self._pool.get(
                self._url, tls=self._cfg.tls, timeout_seconds=self._cfg.timeout_seconds,
                headers=auth_headers(creds), max_bytes=MAX_HEALTH_BYTES, secrets=secrets)
        except (SecretError, FetchError) as exc:
            return CheckResult(ok=False, reason=redact(str(exc), secrets))
        except Exception as exc:  # a check must never raise into the daemon
            return CheckResult(ok=False, reason=redact(f"unexpected {type(exc).__name__}: {exc}",
                                                       secrets))
        if reply.status != 200:
            return CheckResult(ok=False, reason=redact(reply.error_detail(), secrets))
        text = reply.body.decode("utf-8", "replace").strip()
        # The body is the bare word; some proxies re-encode it as a JSON string.
        if text in ("ok", '"ok"'):
            return CheckResult(ok=True)
        reason = f"unexpected health answer {shorten(text, 60)!r}"
        return CheckResult(ok=False, reason=redact(reason, secrets))

    async def close(self) -> None:
        await self._pool.close()
