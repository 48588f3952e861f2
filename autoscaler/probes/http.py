"""Generic HTTP probe: a GET that must answer with the expected status.

`http_check` is the reusable core: the healer calls it with its own session for per-pod
app-level checks, and `HttpProbe` wraps it for a configured dependency. Connection, TLS and
deadline failures are described by `autoscaler.sources.http.describe_error`, like every other
HTTP reader of the daemon.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import aiohttp

from autoscaler.config import HttpDependency, HttpProbeSettings, TlsSettings
from autoscaler.model import PodInfo
from autoscaler.ports import CheckResult
from autoscaler.secrets import SecretError, redact, resolve_credentials
from autoscaler.sources.http import FetchError, SessionPool, auth_headers, describe_error


async def http_check(
    session: aiohttp.ClientSession,
    url: str,
    timeout_seconds: float,
    *,
    expect_status: int = 200,
    headers: Mapping[str, str] | None = None,
) -> CheckResult:
    """GET `url` within `timeout_seconds`; up when the status is `expect_status`. Never raises.

    The body is not read: health endpoints answer in the status, and a large body must not
    slow the check down. Redirects are not followed, so a 3xx is compared like any status.
    """
    try:
        async with (
            asyncio.timeout(timeout_seconds),
            session.get(url, headers=headers, allow_redirects=False) as resp,
        ):
            status = resp.status
    except (aiohttp.ClientError, OSError) as exc:
        return CheckResult(ok=False, reason=describe_error(exc, timeout=timeout_seconds))
    if status != expect_status:
        return CheckResult(ok=False, reason=f"HTTP {status}, expected {expect_status}")
    return CheckResult(ok=True)


class HttpProbe:
    """A configured HTTP dependency; owns its session pool."""

    def __init__(self, name: str, cfg: HttpDependency) -> None:
        self.name = name
        self._cfg = cfg
        self._pool = SessionPool(limit_per_host=1)

    async def check(self) -> CheckResult:
        secrets: tuple[str, ...] = ()
        try:
            creds = resolve_credentials(self._cfg.auth)
            secrets = creds.redactable()
            session = self._pool.session(self._cfg.url, self._cfg.tls)
            result = await http_check(session, self._cfg.url, self._cfg.timeout_seconds,
                                      expect_status=self._cfg.expect_status,
                                      headers=auth_headers(creds))
        except (SecretError, FetchError) as exc:
            return CheckResult(ok=False, reason=redact(str(exc), secrets))
        except Exception as exc:  # a check must never raise into the daemon
            return CheckResult(ok=False, reason=redact(f"unexpected {type(exc).__name__}: {exc}",
                                                       secrets))
        return CheckResult(ok=result.ok, reason=redact(result.reason, secrets))

    async def close(self) -> None:
        await self._pool.close()


class PodHttpProber:
    """The healer's per-pod app-level check: `GET http://<pod ip>:<port><path>`.

    Pods serve plain HTTP inside the cluster network; a pod without an IP yet fails the check
    (the healer never judges a pod inside its start-up grace anyway).
    """

    def __init__(self) -> None:
        self._pool = SessionPool(limit_per_host=1)

    async def check(self, pod: PodInfo, settings: HttpProbeSettings) -> CheckResult:
        if not pod.ip:
            return CheckResult(ok=False, reason="pod has no IP")
        url = f"http://{pod.ip}:{settings.port}{settings.path}"
        session = self._pool.session(url, TlsSettings())
        return await http_check(session, url, settings.timeout_seconds)

    async def close(self) -> None:
        await self._pool.close()
