"""MysqlProbe against a private `mariadbd` that the test installs, kills and restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from wire_fakes import require_binary, wait_for_port

from autoscaler.config import MysqlDependency, SecretRefs
from autoscaler.engine.hysteresis import Hysteresis
from autoscaler.localport import free_port
from autoscaler.model import Health
from autoscaler.ports import CheckResult
from autoscaler.probes.mysql import MysqlProbe

pytestmark = pytest.mark.real

USER, PASSWORD = "probe", "maria-test-pw-9"


class MariaDb:
    """A throwaway MariaDB with its own datadir, socket and loopback port."""

    def __init__(self, workdir: Path) -> None:
        self.server = require_binary("mariadbd")
        self.client = require_binary("mariadb")
        self.workdir = workdir
        self.datadir = workdir / "data"
        self.socket = workdir / "mysqld.sock"
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    async def install(self) -> None:
        await _run(require_binary("mariadb-install-db"), "--no-defaults",
                   "--auth-root-authentication-method=normal", f"--datadir={self.datadir}",
                   "--user=root", "--skip-test-db")

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            self.server, "--no-defaults", f"--datadir={self.datadir}", f"--socket={self.socket}",
            f"--port={self.port}", "--bind-address=127.0.0.1", "--user=root",
            f"--pid-file={self.workdir / 'mysqld.pid'}", "--skip-log-bin",
            "--innodb-buffer-pool-size=16M", f"--log-error={self.workdir / 'error.log'}",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await wait_for_port(self.port, seconds=30)
        # The server listens on its port a moment before it creates its socket, which `sql`
        # connects through (a CI run's client came in between: ERROR 2002, no such file).
        for _ in range(1500):  # 30 s
            if await asyncio.to_thread(self.socket.exists):
                break
            await asyncio.sleep(0.02)
        else:
            raise AssertionError(f"MariaDB created no socket at {self.socket} within 30 s")

    async def sql(self, statement: str) -> None:
        await _run(self.client, "--no-defaults", f"--socket={self.socket}", "-u", "root",
                   "-e", statement)

    async def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await self.proc.wait()
            self.proc = None


async def _run(*command: str) -> None:
    proc = await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    output, _ = await proc.communicate()
    assert proc.returncode == 0, f"{command[0]} failed: {output.decode(errors='replace')}"


@pytest.fixture
async def mariadb(tmp_path: Path) -> AsyncIterator[MariaDb]:
    server = MariaDb(tmp_path)
    await server.install()
    yield server
    await server.kill()


def make_probe(port: int, password_env: str = "TEST_MYSQL_PASSWORD",
               **timing: float) -> tuple[MysqlProbe, MysqlDependency]:
    cfg = MysqlDependency(kind="mysql", host="127.0.0.1", port=port,
                          auth=SecretRefs(username=USER, password_env=password_env), **timing)
    return MysqlProbe("mysql", cfg), cfg


async def test_up_down_and_recovery(mariadb: MariaDb,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MYSQL_PASSWORD", PASSWORD)
    await mariadb.start()
    await mariadb.sql(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'")
    probe, cfg = make_probe(mariadb.port, failure_threshold=2, success_threshold=2,
                            timeout_seconds=2.0)
    state = Hysteresis()

    async def observe() -> CheckResult:
        nonlocal state
        result = await probe.check()
        state = state.observe(result, now=asyncio.get_running_loop().time(),
                              failure_threshold=cfg.failure_threshold,
                              success_threshold=cfg.success_threshold)
        return result

    healthy = [await observe() for _ in range(2)]
    up = state.health
    await mariadb.kill()
    down = [await observe() for _ in range(2)]
    gone = state.health
    await mariadb.start()
    back = [await observe() for _ in range(2)]

    assert healthy == [CheckResult(ok=True)] * 2 and up is Health.UP
    assert gone is Health.DOWN
    assert all(r.reason.startswith("cannot connect (2003): Can't connect to MySQL server on "
                                   "'127.0.0.1'") for r in down)
    assert back == [CheckResult(ok=True)] * 2 and state.health is Health.UP


async def test_wrong_password_is_access_denied(mariadb: MariaDb,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MYSQL_PASSWORD", "not-the-password")
    await mariadb.start()
    await mariadb.sql(f"CREATE USER '{USER}'@'%' IDENTIFIED BY '{PASSWORD}'")
    probe, _ = make_probe(mariadb.port)

    result = await probe.check()

    assert result == CheckResult(ok=False, reason=(
        f"access denied (1045): Access denied for user '{USER}'@'localhost' "
        "(using password: YES)"))


async def test_nothing_listening_is_cannot_connect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_MYSQL_PASSWORD", PASSWORD)
    probe, _ = make_probe(free_port(), timeout_seconds=1.0)

    result = await probe.check()

    assert not result.ok
    assert result.reason.startswith("cannot connect (2003): ")
    assert "Connect call failed" in result.reason
