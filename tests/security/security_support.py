"""Helpers of the security tests: a recording HTTP server, a throwaway PKI, secret scanning.

`Recorder` answers every method on every path through a handler the test chooses and keeps what
it was sent (method, path, every query parameter, headers), so a test can assert what reached the
wire and what never did. `make_pki` issues a CA and a server certificate for 127.0.0.1 with the
openssl CLI. `leaks` says where any form of a known secret (raw, base64 basic credential, or a
piece of either) shows up in collected output.
"""

from __future__ import annotations

import base64
import shutil
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: tuple[tuple[str, str], ...]
    raw_query: str
    headers: Mapping[str, str]


@dataclass
class Recorder:
    """An HTTP server that answers through `handler` and records every request."""

    handler: Handler
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def app(self) -> web.Application:
        async def record(request: web.Request) -> web.StreamResponse:
            self.seen.append(Seen(method=request.method, path=request.path,
                                  query=tuple(request.query.items()),
                                  raw_query=request.query_string,
                                  headers=dict(request.headers)))
            return await self.handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        return app

    def authorizations(self) -> list[str]:
        return [s.headers["Authorization"] for s in self.seen if "Authorization" in s.headers]


@asynccontextmanager
async def serving(recorder: Recorder, *,
                  tls: ssl.SSLContext | None = None) -> AsyncIterator[Recorder]:
    """Run `recorder` on a free loopback port (HTTPS with `tls`) for the block's duration."""
    server = TestServer(recorder.app(), host="127.0.0.1")
    await server.start_server(ssl=tls)
    recorder.url = str(server.make_url("")).rstrip("/")
    try:
        yield recorder
    finally:
        await server.close()


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.fail(f"{name} is not installed; the security tests need it")
    return path


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


def make_pki(directory: Path) -> Pki:
    """A private CA and a certificate for 127.0.0.1 / localhost that it signed."""
    openssl = require_binary("openssl")

    def run(*args: str | Path) -> None:
        subprocess.run([openssl, *map(str, args)], check=True, capture_output=True)

    run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", directory / "ca.key", "-out", directory / "ca.crt", "-days", "2",
        "-subj", "/CN=security-test-ca")
    (directory / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", directory / "server.key", "-out", directory / "server.csr",
        "-subj", "/CN=127.0.0.1")
    run("x509", "-req", "-in", directory / "server.csr", "-CA", directory / "ca.crt",
        "-CAkey", directory / "ca.key", "-CAcreateserial", "-days", "2",
        "-out", directory / "server.crt", "-extfile", directory / "server.ext")
    return Pki(ca=directory / "ca.crt", cert=directory / "server.crt",
               key=directory / "server.key")


def basic(username: str, password: str) -> str:
    return base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def forms(secret: str, *, username: str | None = None) -> list[str]:
    """What must never be seen of `secret`: the value, its first 7 characters (a reason cut to
    length must not keep half of it), and with a username the basic credential and its
    prefix that already encodes part of the password."""
    out = [secret, secret[:7]]
    if username is not None:
        encoded = basic(username, secret)
        # Whole 3-byte groups of "user:" plus at least a few password characters.
        groups = (len(username) + 1 + 4) // 3 + 1
        out += [encoded, encoded[: groups * 4]]
    return out


def leaks(texts: Mapping[str, str], secrets: Iterable[str]) -> list[str]:
    """`where: form` for every secret form found in any of `texts`."""
    return [f"{where}: {form!r}" for where, text in texts.items() for form in secrets
            if form in text]
