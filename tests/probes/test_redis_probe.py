"""RedisProbe and hysteresis against a private `redis-server` that the test kills and restarts."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from wire_fakes import require_binary, wait_for_port

from autoscaler.config import RedisDependency, SecretRefs
from autoscaler.engine.hysteresis import Hysteresis
from autoscaler.localport import free_port
from autoscaler.model import Health
from autoscaler.ports import CheckResult
from autoscaler.probes.redis import RedisProbe

pytestmark = pytest.mark.real

PASSWORD = "redis-test-pw-7"


class RedisServer:
    """A `redis-server` on a free loopback port with a password, no persistence."""

    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.workdir), "--requirepass", PASSWORD,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
        await wait_for_port(self.port)

    async def kill(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await self.proc.wait()
            self.proc = None


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    server = RedisServer(require_binary("redis-server"), tmp_path)
    yield server
    await server.kill()


def make_probe(port: int, password_env: str | None = "TEST_REDIS_PASSWORD", **timing: float
               ) -> tuple[RedisProbe, RedisDependency]:
    cfg = RedisDependency(kind="redis", url=f"redis://127.0.0.1:{port}/0",
                          auth=SecretRefs(password_env=password_env), **timing)
    return RedisProbe("redis", cfg), cfg


class Driver:
    """Runs a probe at a fixed rate, as the daemon does, feeding the hysteresis."""

    def __init__(self, probe: RedisProbe, cfg: RedisDependency) -> None:
        self.probe = probe
        self.cfg = cfg
        self.state = Hysteresis()
        self.results: list[CheckResult] = []

    async def until(self, health: Health, *, max_checks: int = 20) -> tuple[int, float]:
        """Checks made until `health`, and the seconds that took."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for checks in range(1, max_checks + 1):
            tick = loop.time()
            result = await self.probe.check()
            self.results.append(result)
            self.state = self.state.observe(
                result, now=loop.time(), failure_threshold=self.cfg.failure_threshold,
                success_threshold=self.cfg.success_threshold)
            if self.state.health is health:
                return checks, loop.time() - start
            await asyncio.sleep(max(0.0, tick + self.cfg.period_seconds - loop.time()))
        pytest.fail(f"not {health} after {max_checks} checks; last: {self.results[-1]}")


async def test_down_when_killed_and_up_when_restarted(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch,
        request: pytest.FixtureRequest) -> None:
    monkeypatch.setenv("TEST_REDIS_PASSWORD", PASSWORD)
    probe, cfg = make_probe(redis_server.port, period_seconds=0.2, timeout_seconds=0.5,
                            failure_threshold=3, success_threshold=2)
    driver = Driver(probe, cfg)
    await redis_server.start()

    first_up, _ = await driver.until(Health.UP)
    await redis_server.kill()
    to_down, down_seconds = await driver.until(Health.DOWN)
    down_reason = driver.state.state("redis").reason
    await redis_server.start()
    to_up, up_seconds = await driver.until(Health.UP)

    # Measured times go to the report (junit XML properties); the assertions count checks.
    request.node.user_properties += [("redis_down_seconds", round(down_seconds, 3)),
                                     ("redis_up_seconds", round(up_seconds, 3))]
    assert (first_up, to_down, to_up) == (2, 3, 2)
    assert down_reason == f"connection refused (127.0.0.1:{redis_server.port})"
    assert all(r.ok for r in driver.results[-2:])


@pytest.mark.parametrize(
    ("password_env", "password", "reason"),
    [
        pytest.param("TEST_REDIS_PASSWORD", "wrong-pw", "auth failed: invalid username-password",
                     id="wrong-password"),
        pytest.param(None, None,
                     "auth failed: the server requires a password and none is configured",
                     id="no-password"),
    ],
)
async def test_auth_failures_are_down_with_an_auth_reason(
        redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch, password_env: str | None,
        password: str | None, reason: str) -> None:
    if password is not None:
        monkeypatch.setenv("TEST_REDIS_PASSWORD", password)
    probe, cfg = make_probe(redis_server.port, password_env, period_seconds=0.1,
                            failure_threshold=2)
    await redis_server.start()

    checks, _ = await Driver(probe, cfg).until(Health.DOWN)
    result = await probe.check()

    assert checks == 2
    assert result.reason.startswith(reason)
    assert "wrong-pw" not in result.reason


async def test_no_server_at_all_is_down_not_an_exception() -> None:
    port = free_port()
    probe, _ = make_probe(port, password_env=None, timeout_seconds=0.5)

    result = await probe.check()

    assert result == CheckResult(ok=False, reason=f"connection refused (127.0.0.1:{port})")


async def test_a_check_cancelled_mid_command_ends_and_closes_its_connection() -> None:
    """A config reload cancels the probe's task in the middle of a check: the check ends at
    once and its connection is closed, whatever redis-py's clean-up does."""
    accepted = asyncio.Event()
    closed = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.set()
        await reader.read()  # never answers; returns when the client drops the connection
        closed.set()
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    probe, _ = make_probe(port, password_env=None, timeout_seconds=30)
    check = asyncio.create_task(probe.check())
    try:
        async with asyncio.timeout(5):
            await accepted.wait()
            await asyncio.sleep(0.1)  # the PING is on the wire, its answer awaited
            check.cancel()
            with pytest.raises(asyncio.CancelledError):
                await check
            await closed.wait()
    finally:
        server.close()
        await server.wait_closed()
