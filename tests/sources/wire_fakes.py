"""Test helpers shared by tests/sources and tests/probes.

A loopback HTTP server that answers with canned replies (mostly the real captures in
`../shared/samples/`) and records what it was asked, plus helpers for tests that run real
servers: free ports, waiting for a port, and finding a binary (skip loudly when it is missing on
a developer's machine, fail when it is missing in CI).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import time
import urllib.request
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from autoscaler.sources.http import SessionPool

REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")) / "samples"


def sample(relative: str) -> bytes:
    return (SAMPLES / relative).read_bytes()


@dataclass(frozen=True)
class Canned:
    """One reply of the fake server."""

    status: int = 200
    body: bytes = b"{}"
    content_type: str = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)
    hang: bool = False  # answer only when the test ends: a server that never replies in time
    truncate: bool = False  # announce more bytes than sent, then drop the connection
    chunked: bool = False  # no Content-Length: the size is known only while reading


@dataclass(frozen=True)
class Seen:
    path: str
    query: Mapping[str, str]
    headers: Mapping[str, str]


class FakeHttp:
    """Serves `routes[path]` for any GET and records every request in `seen`."""

    def __init__(self) -> None:
        self.routes: dict[str, Canned] = {}
        self.seen: list[Seen] = []
        self.url = ""
        self._released = asyncio.Event()
        self.app = web.Application()
        self.app.router.add_get("/{tail:.*}", self._handle)

    def route(self, path: str, canned: Canned) -> None:
        self.routes[path] = canned

    def release(self) -> None:
        self._released.set()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(Seen(path=request.path, query=dict(request.query),
                              headers=dict(request.headers)))
        canned = self.routes.get(request.path)
        if canned is None:
            return web.Response(status=404, text="no such fake route")
        if canned.hang:
            await self._released.wait()
        if canned.truncate:
            resp = web.StreamResponse(status=canned.status, headers=canned.headers)
            resp.content_type = canned.content_type
            resp.content_length = len(canned.body) + 100
            await resp.prepare(request)
            await resp.write(canned.body)
            assert request.transport is not None
            request.transport.close()
            return resp
        if canned.chunked:
            resp = web.StreamResponse(status=canned.status, headers=canned.headers)
            resp.content_type = canned.content_type
            resp.enable_chunked_encoding()
            await resp.prepare(request)
            await resp.write(canned.body)
            await resp.write_eof()
            return resp
        return web.Response(status=canned.status, body=canned.body, headers=canned.headers,
                            content_type=canned.content_type)


@pytest.fixture
async def fake_http() -> AsyncIterator[FakeHttp]:
    fake = FakeHttp()
    server = TestServer(fake.app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    yield fake
    fake.release()
    await server.close()


@pytest.fixture
async def pool() -> AsyncIterator[SessionPool]:
    session_pool = SessionPool()
    yield session_pool
    await session_pool.close()


def require_binary(name: str) -> str:
    """The path of `name`; skip loudly without it, except in CI where it must be installed."""
    path = shutil.which(name)
    if path:
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{name} is not installed; CI must install it (.ci/run)")
    pytest.skip(f"!!! {name} IS NOT INSTALLED: this real-server test is SKIPPED. "
                f"Install it to run it; in CI its absence is a failure.")


async def wait_for_port(port: int, *, seconds: float = 10.0) -> None:
    """Until something accepts TCP connections on 127.0.0.1:`port`."""
    async with asyncio.timeout(seconds):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.02)
                continue
            writer.close()
            await writer.wait_closed()
            return


def wait_for_prometheus(url: str, proc: subprocess.Popen[bytes]) -> None:
    """Until the Prometheus at `url` (run as `proc`) says it is ready; fail if it exits."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"prometheus exited with {proc.returncode}; see its log in the tmp dir")
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.1)
    pytest.fail("prometheus was not ready within 30 s")
