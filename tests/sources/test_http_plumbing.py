"""The shared HTTP plumbing: session pool, size cap, bounded concurrency, TLS and mTLS."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from wire_fakes import Canned, FakeHttp, require_binary

from autoscaler.config import PrometheusSource, PulsarSource, TlsSettings, TracardiQueueSource
from autoscaler.secrets import Credentials, SecretError
from autoscaler.sources import build_source
from autoscaler.sources.http import FetchError, SessionPool, auth_headers
from autoscaler.sources.prometheus import PrometheusSource as PrometheusReader
from autoscaler.sources.pulsar import PulsarBacklogSource
from autoscaler.sources.tracardi_queue import TracardiQueueSource as TracardiQueueReader

VERIFY = TlsSettings()


async def test_one_session_per_host_and_tls_settings(pool: SessionPool, tmp_path: Path) -> None:
    custom = TlsSettings(verify=False)

    same = pool.session("https://es:9200/a", VERIFY), pool.session("https://es:9200/b", VERIFY)
    other_tls = pool.session("https://es:9200/a", custom)
    other_host = pool.session("https://es-2:9200/a", VERIFY)
    plain = pool.session("http://es:9200", VERIFY), pool.session("http://es:9200", custom)

    assert same[0] is same[1]
    assert other_tls is not same[0] and other_host is not same[0]
    assert plain[0] is plain[1]


async def test_closed_pool_closes_sessions_and_refuses_work(fake_http: FakeHttp) -> None:
    pool = SessionPool()
    session = pool.session(fake_http.url, VERIFY)

    await pool.close()

    assert session.closed
    with pytest.raises(FetchError, match="session pool is closed"):
        await pool.get(fake_http.url, tls=VERIFY, timeout_seconds=1)


@pytest.mark.parametrize(
    "canned",
    [
        pytest.param(Canned(body=b"x" * 100), id="content-length"),
        pytest.param(Canned(body=b"x" * 100, chunked=True), id="chunked"),
    ],
)
async def test_body_size_is_capped(fake_http: FakeHttp, pool: SessionPool,
                                   canned: Canned) -> None:
    fake_http.route("/big", canned)

    with pytest.raises(FetchError, match=r"^response over 10 bytes$"):
        await pool.get(f"{fake_http.url}/big", tls=VERIFY, timeout_seconds=1, max_bytes=10)


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_a_body_within_the_cap_is_read_whole(fake_http: FakeHttp, pool: SessionPool,
                                                   chunked: bool) -> None:
    body = bytes(range(256)) * 400  # over one 64 KiB chunk
    fake_http.route("/whole", Canned(body=body, chunked=chunked))

    reply = await pool.get(f"{fake_http.url}/whole", tls=VERIFY, timeout_seconds=1,
                           max_bytes=len(body))

    assert (reply.status, reply.body) == (200, body)


async def test_waiting_for_a_slot_counts_against_the_deadline(fake_http: FakeHttp) -> None:
    fake_http.route("/slow", Canned(hang=True))
    fake_http.route("/fast", Canned(body=b"{}"))
    pool = SessionPool(max_concurrent=1)
    try:
        slow = asyncio.create_task(pool.get(f"{fake_http.url}/slow", tls=VERIFY,
                                            timeout_seconds=0.5))
        await asyncio.sleep(0)  # the slow read takes the only slot before the fast one asks
        with pytest.raises(FetchError, match=r"^timeout after 0\.2s$"):
            await pool.get(f"{fake_http.url}/fast", tls=VERIFY, timeout_seconds=0.2)
        with pytest.raises(FetchError, match=r"^timeout after 0\.5s$"):
            await slow
    finally:
        await pool.close()
    assert [s.path for s in fake_http.seen] == ["/slow"]


async def test_a_slow_source_does_not_delay_a_fast_one(fake_http: FakeHttp,
                                                       pool: SessionPool) -> None:
    fake_http.route("/slow", Canned(hang=True))
    fake_http.route("/fast", Canned(body=b'{"ok": true}'))
    slow = asyncio.create_task(pool.get(f"{fake_http.url}/slow", tls=VERIFY,
                                        timeout_seconds=0.5))
    fast = asyncio.create_task(pool.get(f"{fake_http.url}/fast", tls=VERIFY,
                                        timeout_seconds=0.5))

    done, _ = await asyncio.wait({slow, fast}, return_when=asyncio.FIRST_COMPLETED)

    assert done == {fast}
    assert fast.result().json() == {"ok": True}
    with pytest.raises(FetchError, match="timeout"):
        await slow


@pytest.mark.parametrize(
    ("creds", "expected"),
    [
        pytest.param(Credentials(token="t0k"), {"Authorization": "Bearer t0k"}, id="bearer"),
        pytest.param(Credentials(username="u", password="p"), {"Authorization": "Basic dTpw"},
                     id="basic"),
        pytest.param(Credentials(username="u"), {"Authorization": "Basic dTo="},
                     id="basic-empty-password"),
        pytest.param(Credentials(), {}, id="none"),
    ],
)
def test_auth_headers(creds: Credentials, expected: dict[str, str]) -> None:
    assert auth_headers(creds) == expected


@pytest.mark.parametrize(
    ("creds", "message"),
    [
        pytest.param(Credentials(username="u", token="t"), "not both", id="token-and-user"),
        pytest.param(Credentials(password="p"), "without a username", id="password-only"),
    ],
)
def test_ambiguous_auth_is_an_error(creds: Credentials, message: str) -> None:
    with pytest.raises(SecretError, match=message):
        auth_headers(creds)


@pytest.mark.parametrize(
    ("cfg", "kind"),
    [
        pytest.param(PulsarSource(kind="pulsar", admin_url="http://p:8080", tenant="t",
                                  namespace="n", topic="x", subscription="s"),
                     PulsarBacklogSource, id="pulsar"),
        pytest.param(PrometheusSource(kind="prometheus", url="http://prom:9090", query="up"),
                     PrometheusReader, id="prometheus"),
        pytest.param(TracardiQueueSource(kind="tracardi-queue", api_url="http://api",
                                         namespace="n", topic="x"),
                     TracardiQueueReader, id="tracardi-queue"),
    ],
)
async def test_build_source(pool: SessionPool, cfg: PulsarSource | PrometheusSource |
                            TracardiQueueSource, kind: type) -> None:
    source = build_source("main", cfg, now=lambda: 0.0, pool=pool)

    assert isinstance(source, kind)
    assert source.name == "main"


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path


def _issue(openssl: str, pki: Path, name: str, extension: str) -> None:
    (pki / f"{name}.ext").write_text(extension + "\n")
    subprocess.run([openssl, "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", pki / f"{name}.key", "-out", pki / f"{name}.csr",
                    "-subj", f"/CN={name}"], check=True, capture_output=True)
    subprocess.run([openssl, "x509", "-req", "-in", pki / f"{name}.csr", "-CA", pki / "ca.crt",
                    "-CAkey", pki / "ca.key", "-CAcreateserial", "-days", "2",
                    "-out", pki / f"{name}.crt", "-extfile", pki / f"{name}.ext"],
                   check=True, capture_output=True)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    openssl = require_binary("openssl")
    pki = tmp_path_factory.mktemp("pki")
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", pki / "ca.key",
                    "-out", pki / "ca.crt", "-days", "2", "-subj", "/CN=test-ca"],
                   check=True, capture_output=True)
    _issue(openssl, pki, "server", "subjectAltName=IP:127.0.0.1")
    _issue(openssl, pki, "client", "extendedKeyUsage=clientAuth")
    return Pki(ca=pki / "ca.crt", server_cert=pki / "server.crt", server_key=pki / "server.key",
               client_cert=pki / "client.crt", client_key=pki / "client.key")


async def _hello(request: web.Request) -> web.Response:
    return web.json_response({"hello": "tls"})


@pytest.fixture(params=[False, True], ids=["tls", "mtls"])
async def tls_server(request: pytest.FixtureRequest, pki: Pki) -> AsyncIterator[tuple[str, bool]]:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_cert, pki.server_key)
    mutual: bool = request.param
    if mutual:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(pki.ca)
    app = web.Application()
    app.router.add_get("/", _hello)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=context)
    yield str(server.make_url("/")), mutual
    await server.close()


async def test_tls_verifies_with_the_ca_file_and_presents_the_client_cert(
        tls_server: tuple[str, bool], pki: Pki, pool: SessionPool) -> None:
    url, _ = tls_server
    tls = TlsSettings(ca_file=pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)

    reply = await pool.get(url, tls=tls, timeout_seconds=5)

    assert reply.json() == {"hello": "tls"}


async def test_tls_rejects_an_unknown_ca_by_default(tls_server: tuple[str, bool],
                                                     pool: SessionPool) -> None:
    url, _ = tls_server

    with pytest.raises(FetchError, match=r"^TLS certificate rejected: "):
        await pool.get(url, tls=TlsSettings(), timeout_seconds=5)


async def test_mtls_without_a_client_cert_fails(tls_server: tuple[str, bool], pki: Pki,
                                                pool: SessionPool) -> None:
    url, mutual = tls_server
    tls = TlsSettings(ca_file=pki.ca)

    if mutual:
        # TLS 1.3 servers refuse a missing client cert after the handshake, so the client sees
        # the connection dropped rather than a handshake error.
        with pytest.raises(FetchError, match=r"^(server disconnected|TLS error|network error)"):
            await pool.get(url, tls=tls, timeout_seconds=5)
    else:
        assert (await pool.get(url, tls=tls, timeout_seconds=5)).status == 200


async def test_verify_off_accepts_any_certificate(tls_server: tuple[str, bool], pki: Pki,
                                                  pool: SessionPool) -> None:
    url, _ = tls_server
    tls = TlsSettings(verify=False, cert_file=pki.client_cert, key_file=pki.client_key)

    assert (await pool.get(url, tls=tls, timeout_seconds=5)).status == 200


async def test_unusable_tls_files_are_an_error(pool: SessionPool, tmp_path: Path) -> None:
    tls = TlsSettings(ca_file=tmp_path / "missing-ca.pem")

    with pytest.raises(FetchError) as refused:
        await pool.get("https://127.0.0.1:1/", tls=tls, timeout_seconds=1)
    assert str(refused.value) == (f"TLS settings unusable: ca_file {tmp_path / 'missing-ca.pem'}: "
                                  "No such file or directory")
