"""MySQL/MariaDB probe: connect and `SELECT 1` with aiomysql, a fresh connection per check.

A fresh connection is the honest check: it exercises the listener, authentication (so a rotated
password shows as `access denied`, error 1045) and the executor, where a pooled connection would
hide all three. Server down (2003) and access denied are distinct reasons. The connection is
closed with COM_QUIT so the server does not log an aborted connection every period.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiomysql

from autoscaler.config import MysqlDependency
from autoscaler.ports import CheckResult
from autoscaler.secrets import SecretError, redact, resolve_credentials
from autoscaler.sources.http import shorten

#: Tracardi's charts connect as root unless told otherwise.
DEFAULT_USER = "root"
ACCESS_DENIED = 1045
CANNOT_CONNECT = 2003


class MysqlProbe:
    def __init__(self, name: str, cfg: MysqlDependency) -> None:
        self.name = name
        self._cfg = cfg

    async def check(self) -> CheckResult:
        secrets: tuple[str, ...] = ()
        timeout = self._cfg.timeout_seconds
        try:
            creds = resolve_credentials(self._cfg.auth)
            secrets = creds.secrets()
            async with asyncio.timeout(timeout):
                await self._select_one(creds.username or DEFAULT_USER, creds.password or "")
        except SecretError as exc:
            return CheckResult(ok=False, reason=str(exc))
        except TimeoutError:
            return CheckResult(ok=False, reason=f"timeout after {timeout}s")
        except aiomysql.Error as exc:
            return CheckResult(ok=False, reason=redact(_describe(exc), secrets))
        except Exception as exc:  # a check must never raise into the daemon
            return CheckResult(ok=False, reason=redact(f"unexpected {type(exc).__name__}: {exc}",
                                                       secrets))
        return CheckResult(ok=True)

    async def _select_one(self, user: str, password: str) -> None:
        conn: Any = await aiomysql.connect(
            host=self._cfg.host, port=self._cfg.port, user=user, password=password,
            db=self._cfg.database, connect_timeout=self._cfg.timeout_seconds,
        )
        try:
            async with conn.cursor() as cursor:
                await cursor.execute("SELECT 1")
                row = await cursor.fetchone()
            if row != (1,):
                raise aiomysql.Error(0, f"SELECT 1 returned {row!r}")
        finally:
            try:
                await conn.ensure_closed()
            except (aiomysql.Error, OSError):
                conn.close()

    async def close(self) -> None:
        """Nothing to release: every check opens and closes its own connection."""


def _describe(exc: BaseException) -> str:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else None
    message = shorten(str(exc.args[1])) if len(exc.args) > 1 else shorten(str(exc))
    if code == ACCESS_DENIED:
        return f"access denied (1045): {message}"
    if code == CANNOT_CONNECT:
        # aiomysql's 2003 text names the host only; the OS error says why.
        cause = f" ({exc.__cause__})" if exc.__cause__ else ""
        return f"cannot connect (2003): {message}{shorten(cause)}"
    return f"mysql error {code}: {message}" if code else f"mysql error: {message}"
