"""Redis probe: `PING` through `redis.asyncio` on a fresh connection, with optional AUTH and TLS.

A fresh connection per check tests what a Tracardi pod does on start: connect, authenticate
(password from `auth.password_*`, ACL user from `auth.username`) and talk. Retries are off so a
dead server fails the check at once instead of backing off into the deadline. TLS applies to
`rediss://` URLs, with the same `TlsSettings` as the HTTP probes.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from autoscaler.config import RedisDependency
from autoscaler.ports import CheckResult
from autoscaler.secrets import SecretError, redact, resolve_credentials
from autoscaler.sources.http import shorten

#: How long closing the connection may take. Cancelled in the middle of a command (a config
#: reload replaces the probes), redis-py's clean-up could wait on that connection forever.
CLOSE_SECONDS = 1.0


def _abort(conn: Any) -> None:
    """Drop the connection's socket: this ends any wait for it to close."""
    writer = getattr(conn, "_writer", None)
    if writer is not None:
        writer.transport.abort()


class RedisProbe:
    def __init__(self, name: str, cfg: RedisDependency) -> None:
        self.name = name
        self._cfg = cfg
        parts = urlsplit(cfg.url)
        self._where = f"{parts.hostname}:{parts.port or 6379}"

    async def check(self) -> CheckResult:
        secrets: tuple[str, ...] = ()
        timeout = self._cfg.timeout_seconds
        try:
            creds = resolve_credentials(self._cfg.auth)
            secrets = creds.secrets()
            async with asyncio.timeout(timeout):
                pong = await self._ping(creds.username, creds.password)
        except SecretError as exc:
            return CheckResult(ok=False, reason=str(exc))
        except (TimeoutError, RedisTimeoutError):
            return CheckResult(ok=False, reason=f"timeout after {timeout}s")
        except RedisError as exc:
            reason = _describe(exc, where=self._where, password_set=bool(creds.password))
            return CheckResult(ok=False, reason=redact(reason, secrets))
        except Exception as exc:  # a check must never raise into the daemon
            return CheckResult(ok=False, reason=redact(f"unexpected {type(exc).__name__}: {exc}",
                                                       secrets))
        if pong is not True:
            return CheckResult(ok=False, reason=f"unexpected PING answer {shorten(repr(pong), 60)}")
        return CheckResult(ok=True)

    async def _ping(self, username: str | None, password: str | None) -> Any:
        tls = self._cfg.tls
        options: dict[str, Any] = {}
        if self._cfg.url.startswith("rediss://"):
            options = {
                "ssl_cert_reqs": "required" if tls.verify else "none",
                "ssl_check_hostname": tls.verify,
                "ssl_ca_certs": str(tls.ca_file) if tls.ca_file else None,
                "ssl_certfile": str(tls.cert_file) if tls.cert_file else None,
                "ssl_keyfile": str(tls.key_file) if tls.key_file else None,
            }
        client = aioredis.Redis.from_url(
            self._cfg.url, username=username, password=password,
            socket_timeout=self._cfg.timeout_seconds,
            socket_connect_timeout=self._cfg.timeout_seconds,
            retry=Retry(NoBackoff(), 0), single_connection_client=True, **options,
        )
        try:
            return await client.ping()
        finally:
            conn = client.connection
            closing = asyncio.ensure_future(client.aclose())
            # The PING's answer is the verdict; a failure to close is only retrieved.
            closing.add_done_callback(lambda done: done.cancelled() or done.exception())
            try:
                await asyncio.wait({closing}, timeout=CLOSE_SECONDS)
            finally:
                if not closing.done():
                    _abort(conn)

    async def close(self) -> None:
        """Nothing to release: every check opens and closes its own connection."""


def _describe(exc: RedisError, *, where: str, password_set: bool) -> str:
    message = shorten(str(exc))
    if isinstance(exc, AuthenticationError) or (
        isinstance(exc, ResponseError) and message.startswith(("NOAUTH", "WRONGPASS", "AUTH"))
    ):
        if not password_set:
            # Redis' own words here are about HELLO/AUTH protocol details, not the cause.
            return "auth failed: the server requires a password and none is configured"
        return f"auth failed: {message}"
    if isinstance(exc, RedisConnectionError):
        if isinstance(exc.__context__, ConnectionRefusedError):
            return f"connection refused ({where})"
        return f"cannot connect: {message}"
    return f"redis error: {message}"
