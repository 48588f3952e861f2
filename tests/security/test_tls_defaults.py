"""TLS is verified by default by every client the daemon builds, and `tls.ca_file` trusts a CA.

Each reader talks to a server whose certificate is signed by a private CA: with the default
settings the read fails and says the certificate was rejected; with `ca_file` pointing at the CA
it succeeds. Covered: the three HTTP sources (shared `SessionPool`), the Elasticsearch, Pulsar
and HTTP probes, the Redis probe over `rediss://` (a real `redis-server` with TLS) and the
Kubernetes client (a kubeconfig without the cluster's CA). The healer's pod prober speaks plain
HTTP to pod IPs only, so it has no certificate to check (asserted too).
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestServer
from security_support import Pki, Recorder, require_binary, serving

from autoscaler import config
from autoscaler.config import SecretRefs, TlsSettings
from autoscaler.daemon import LoopClock
from autoscaler.kube.cluster import KubeCluster
from autoscaler.kube.connect import connect, disconnect
from autoscaler.localport import free_port
from autoscaler.model import PodInfo
from autoscaler.ports import CheckResult
from autoscaler.probes import build_probe
from autoscaler.probes.http import PodHttpProber
from autoscaler.sim.elasticsearch_api import ElasticsearchState
from autoscaler.sim.elasticsearch_api import create_app as es_app
from autoscaler.sim.kubeapi import create_app as kube_app
from autoscaler.sim.kubestate import KubeState
from autoscaler.sim.prometheus_api import PrometheusState
from autoscaler.sim.prometheus_api import create_app as prometheus_app
from autoscaler.sim.pulsar_admin import PulsarState
from autoscaler.sim.pulsar_admin import create_app as pulsar_app
from autoscaler.sources import build_source
from autoscaler.sources.http import SessionPool, ssl_context

TOPIC = "persistent://tracardi/system/functions"
SUB = "tracardi-function-subscription"


async def _tracardi(request: web.Request) -> web.StreamResponse:
    if request.path == "/queue/system/functions/backlog":
        return web.json_response({"total": 7, "backlog": []})
    return web.json_response({"ok": True})


@dataclass
class Https:
    """The simulated servers, each over HTTPS with a certificate from the test's CA."""

    pulsar: str
    prometheus: str
    elasticsearch: str
    tracardi: str


@pytest.fixture
async def https(pki: Pki) -> AsyncIterator[Https]:
    pulsar = PulsarState()
    pulsar.add_topic(TOPIC, partitions=2, subscriptions=(SUB,))
    prometheus = PrometheusState()
    prometheus.set("up", 1.0)
    servers = [TestServer(app, host="127.0.0.1") for app in
               (pulsar_app(pulsar), prometheus_app(prometheus), es_app(ElasticsearchState()))]
    for server in servers:
        await server.start_server(ssl=pki.server_context())
    try:
        async with serving(Recorder(_tracardi), tls=pki.server_context()) as tracardi:
            urls = [str(s.make_url("")).rstrip("/") for s in servers]
            assert all(u.startswith("https://") for u in [*urls, tracardi.url])
            yield Https(pulsar=urls[0], prometheus=urls[1], elasticsearch=urls[2],
                        tracardi=tracardi.url)
    finally:
        for server in servers:
            await server.close()


Read = Callable[[Https, TlsSettings, SessionPool], Awaitable[CheckResult]]


async def _source(cfg: config.PulsarSource | config.PrometheusSource |
                  config.TracardiQueueSource, pool: SessionPool) -> CheckResult:
    signals = await build_source("s", cfg, now=time.monotonic, pool=pool).read()
    errors = [s.error for s in signals if s.error]
    return CheckResult(ok=not errors, reason=errors[0] if errors else "")


async def _probe(cfg: config.ElasticsearchDependency | config.PulsarDependency |
                 config.HttpDependency) -> CheckResult:
    probe = build_probe("d", cfg)
    try:
        return await probe.check()
    finally:
        await probe.close()


READERS: dict[str, Read] = {
    "pulsar-source": lambda h, tls, pool: _source(config.PulsarSource(
        kind="pulsar", admin_url=h.pulsar, tenant="tracardi", namespace="system",
        topic="functions", subscription=SUB, tls=tls), pool),
    "prometheus-source": lambda h, tls, pool: _source(config.PrometheusSource(
        kind="prometheus", url=h.prometheus, query="up", tls=tls), pool),
    "tracardi-queue-source": lambda h, tls, pool: _source(config.TracardiQueueSource(
        kind="tracardi-queue", api_url=h.tracardi, namespace="system", topic="functions",
        tls=tls), pool),
    "elasticsearch-probe": lambda h, tls, _: _probe(config.ElasticsearchDependency(
        kind="elasticsearch", url=h.elasticsearch, tls=tls)),
    "pulsar-probe": lambda h, tls, _: _probe(config.PulsarDependency(
        kind="pulsar", admin_url=h.pulsar, tls=tls)),
    "http-probe": lambda h, tls, _: _probe(config.HttpDependency(
        kind="http", url=f"{h.tracardi}/healthcheck", tls=tls)),
}


@pytest.mark.parametrize("reader", list(READERS))
async def test_http_readers_reject_an_unknown_ca_by_default_and_trust_ca_file(
        reader: str, https: Https, pki: Pki, monkeypatch: pytest.MonkeyPatch) -> None:
    # The default trusts the system store, which OpenSSL lets these variables replace.
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    read = READERS[reader]
    pool = SessionPool()
    try:
        default = await read(https, TlsSettings(), pool)
        trusted = await read(https, TlsSettings(ca_file=pki.ca), pool)
    finally:
        await pool.close()

    assert not default.ok
    assert default.reason.startswith("TLS certificate rejected: "), default.reason
    assert "certificate verify failed" in default.reason
    assert trusted == CheckResult(ok=True)


def test_default_tls_settings_verify_the_chain_and_the_host_name(pki: Pki) -> None:
    for settings in (TlsSettings(), TlsSettings(ca_file=pki.ca)):
        context = ssl_context(settings)
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname is True
    assert TlsSettings().verify is True


@pytest.fixture
async def redis_tls(pki: Pki, tmp_path: Path) -> AsyncIterator[int]:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        require_binary("redis-server"), "--port", "0", "--tls-port", str(port),
        "--bind", "127.0.0.1", "--tls-cert-file", str(pki.cert), "--tls-key-file",
        str(pki.key), "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "no",
        "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        async with asyncio.timeout(10):
            while True:
                try:
                    _, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError:
                    await asyncio.sleep(0.05)
                    continue
                writer.close()
                await writer.wait_closed()
                break
        yield port
    finally:
        proc.kill()
        await proc.wait()


@pytest.mark.real
async def test_redis_over_tls_verifies_by_default_and_trusts_ca_file(redis_tls: int,
                                                                     pki: Pki) -> None:
    url = f"rediss://127.0.0.1:{redis_tls}/0"
    default = build_probe("redis", config.RedisDependency(kind="redis", url=url))
    trusted = build_probe("redis", config.RedisDependency(
        kind="redis", url=url, tls=TlsSettings(ca_file=pki.ca), auth=SecretRefs()))

    rejected, accepted = await default.check(), await trusted.check()

    assert not rejected.ok
    assert "certificate verify failed" in rejected.reason, rejected.reason
    assert accepted == CheckResult(ok=True)


async def test_kubernetes_client_verifies_the_apiserver_certificate(pki: Pki,
                                                                    tmp_path: Path) -> None:
    kube = KubeState(clock=time.monotonic, wall=time.time)
    kube.add_deployment("tracardi", "wk-pl-background", replicas=2)
    server = TestServer(kube_app(kube), host="127.0.0.1")
    await server.start_server(ssl=pki.server_context())
    url = str(server.make_url("")).rstrip("/")

    async def replicas(cluster_entry: dict[str, str]) -> int:
        path = tmp_path / "kubeconfig"
        path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "current-context": "c",
            "clusters": [{"name": "c", "cluster": cluster_entry}],
            "users": [{"name": "u", "user": {"token": "t"}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
        api = await connect(path)
        cluster = KubeCluster(api, clock=LoopClock(), request_timeout=5)
        try:
            return (await cluster.get_workload("tracardi", "wk-pl-background")).replicas
        finally:
            await cluster.close()
            await disconnect(api)

    try:
        with pytest.raises(Exception, match=r"(?i)certificate verify failed"):
            await replicas({"server": url})
        assert await replicas({"server": url, "certificate-authority": str(pki.ca)}) == 2
    finally:
        await server.close()


async def test_pod_prober_only_speaks_plain_http_to_pod_ips() -> None:
    seen: list[str] = []

    async def health(request: web.Request) -> web.Response:
        seen.append(f"{request.scheme}://{request.host}{request.path}")
        return web.Response(text="ok")

    async with serving(Recorder(health)) as server:
        port = int(server.url.rsplit(":", 1)[1])
        prober = PodHttpProber()
        try:
            result = await prober.check(
                PodInfo(name="p", ready=True, phase="Running", ip="127.0.0.1", started_at=1.0,
                        restarts=0, waiting_reason=""),
                config.HttpProbeSettings(path="/healthcheck", port=port))
        finally:
            await prober.close()

    assert result == CheckResult(ok=True)
    assert seen == [f"http://127.0.0.1:{port}/healthcheck"]
