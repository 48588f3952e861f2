"""No reader follows a redirect with our credentials: a 3xx is a failed read that names it.

The configured server answers every request with 301/302/307/308 to another origin (another
loopback port) or to another path on the same host; a third server records whether anything
arrived there. The HTTP sources and probes must not follow at all, and say so; the Kubernetes
client (kubernetes_asyncio over aiohttp) is checked never to carry its token to another origin.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import yaml
from aiohttp import web
from security_support import Recorder, serving

from autoscaler import config
from autoscaler.config import SecretRefs
from autoscaler.daemon import LoopClock
from autoscaler.kube.cluster import KubeCluster
from autoscaler.kube.connect import connect, disconnect
from autoscaler.model import PodInfo
from autoscaler.ports import CheckResult
from autoscaler.probes import build_probe
from autoscaler.probes.http import PodHttpProber
from autoscaler.sources import build_source
from autoscaler.sources.http import SessionPool

TOKEN = "redirect-test-token-4411"
AUTH = SecretRefs(token_env="REDIRECT_TEST_TOKEN")

Read = Callable[[str], Awaitable[CheckResult]]


async def _source(cfg: config.PulsarSource | config.PrometheusSource |
                  config.TracardiQueueSource) -> CheckResult:
    pool = SessionPool()
    try:
        signals = await build_source("s", cfg, now=time.monotonic, pool=pool).read()
    finally:
        await pool.close()
    errors = {s.error for s in signals if s.error}
    assert len(errors) <= 1, errors
    return CheckResult(ok=not errors, reason=errors.pop() if errors else "")


async def _probe(cfg: config.ElasticsearchDependency | config.PulsarDependency |
                 config.HttpDependency) -> CheckResult:
    probe = build_probe("d", cfg)
    try:
        return await probe.check()
    finally:
        await probe.close()


async def _pod(url: str) -> CheckResult:
    prober = PodHttpProber()
    port = int(url.rsplit(":", 1)[1])
    try:
        return await prober.check(PodInfo(name="p", ip="127.0.0.1"),
                                  config.HttpProbeSettings(port=port))
    finally:
        await prober.close()


#: Every HTTP reader of the daemon, and whether it sends credentials (the pod prober does not).
READERS: dict[str, tuple[Read, bool]] = {
    "pulsar-source": (lambda url: _source(config.PulsarSource(
        kind="pulsar", admin_url=url, tenant="tracardi", namespace="system", topic="functions",
        subscription="sub", auth=AUTH)), True),
    "prometheus-source": (lambda url: _source(config.PrometheusSource(
        kind="prometheus", url=url, query="up", auth=AUTH)), True),
    "tracardi-queue-source": (lambda url: _source(config.TracardiQueueSource(
        kind="tracardi-queue", api_url=url, namespace="system", topic="functions",
        auth=AUTH)), True),
    "elasticsearch-probe": (lambda url: _probe(config.ElasticsearchDependency(
        kind="elasticsearch", url=url, auth=SecretRefs(username="elastic",
                                                        password_env="REDIRECT_TEST_TOKEN"))),
        True),
    "pulsar-probe": (lambda url: _probe(config.PulsarDependency(
        kind="pulsar", admin_url=url, auth=AUTH)), True),
    "http-probe": (lambda url: _probe(config.HttpDependency(
        kind="http", url=f"{url}/healthcheck", auth=AUTH)), True),
    "pod-prober": (_pod, False),
}
#: Readers built on `SessionPool.fetch`, which refuse a redirect in so many words. The HTTP
#: probes compare the status (a 3xx is never the expected 200) and read no Location.
REFUSING = {"pulsar-source", "prometheus-source", "tracardi-queue-source",
            "elasticsearch-probe", "pulsar-probe"}


@pytest.mark.parametrize("status", [301, 302, 307, 308])
@pytest.mark.parametrize("where", ["other-origin", "same-host", "relative",
                                   "other-origin-with-userinfo"])
@pytest.mark.parametrize("reader", list(READERS))
async def test_a_redirect_is_never_followed(reader: str, where: str, status: int,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIRECT_TEST_TOKEN", TOKEN)
    read, sends_credentials = READERS[reader]

    async def landed(_: web.Request) -> web.Response:
        return web.json_response({"total": 1})

    elsewhere = Recorder(landed)
    async with serving(elsewhere):
        other_port = elsewhere.url.rsplit(":", 1)[1]

        async def redirect(request: web.Request) -> web.Response:
            if request.path.startswith("/moved"):
                return web.json_response({"total": 1})
            location = {
                "other-origin": f"{elsewhere.url}/stolen",
                "same-host": f"{request.scheme}://{request.host}/moved",
                "relative": "/moved",
                "other-origin-with-userinfo":
                    f"http://intruder:pw-in-location@127.0.0.1:{other_port}/stolen",
            }[where]
            return web.Response(status=status, headers={"Location": location})

        async with serving(Recorder(redirect)) as origin:
            result = await read(origin.url)
            own_port = origin.url.rsplit(":", 1)[1]

    assert not result.ok
    assert elsewhere.seen == [], "the other origin was contacted"
    assert [s.path.startswith("/moved") for s in origin.seen] == [False], \
        "the redirect was followed on the same host"
    if sends_credentials:
        assert origin.authorizations() and all(TOKEN in a or a.startswith("Basic ")
                                               for a in origin.authorizations())
    target = {"other-origin": f"127.0.0.1:{other_port}", "same-host": f"127.0.0.1:{own_port}",
              "relative": "elsewhere",
              "other-origin-with-userinfo": f"127.0.0.1:{other_port}"}[where]
    if reader in REFUSING:
        assert result.reason == f"HTTP {status} redirect to {target} refused"
    else:
        assert result.reason == f"HTTP {status}, expected 200"
    assert "intruder" not in result.reason and "pw-in-location" not in result.reason


async def test_kubernetes_client_never_carries_its_token_to_another_origin(
        tmp_path: Path) -> None:
    async def not_found(_: web.Request) -> web.Response:
        return web.json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                                  "reason": "NotFound", "code": 404}, status=404)

    elsewhere = Recorder(not_found)
    async with serving(elsewhere):

        async def moved(request: web.Request) -> web.Response:
            return web.Response(status=307, headers={
                "Location": f"{elsewhere.url}{request.path_qs}"})

        async with serving(Recorder(moved)) as apiserver:
            path = tmp_path / "kubeconfig"
            path.write_text(yaml.safe_dump({
                "apiVersion": "v1", "kind": "Config", "current-context": "c",
                "clusters": [{"name": "c", "cluster": {"server": apiserver.url}}],
                "users": [{"name": "u", "user": {"token": TOKEN}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}))
            api = await connect(path)
            cluster = KubeCluster(api, clock=LoopClock(), request_timeout=5)
            try:
                # Whatever the read gives, what matters is what reached the wire.
                with contextlib.suppress(Exception):
                    await cluster.get_workload("tracardi", "wk-pl-background")
            finally:
                await cluster.close()
                await disconnect(api)

    assert apiserver.authorizations() == [f"Bearer {TOKEN}"] * len(apiserver.seen)
    assert apiserver.seen, "the client asked the configured server"
    assert elsewhere.authorizations() == [], "the token went to another origin"
