"""`http_check` (reused by the healer) and `HttpProbe`, plus `build_probe`."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from wire_fakes import Canned, FakeHttp

from autoscaler import config
from autoscaler.localport import free_port
from autoscaler.ports import CheckResult
from autoscaler.probes import (
    ElasticsearchProbe,
    HttpProbe,
    MysqlProbe,
    PulsarProbe,
    RedisProbe,
    build_probe,
    http_check,
)


@pytest.mark.parametrize(
    ("canned", "expect_status", "expected"),
    [
        pytest.param(Canned(body=b'{"hello": "world"}'), 200, CheckResult(ok=True), id="200"),
        pytest.param(Canned(status=204, body=b""), 204, CheckResult(ok=True),
                     id="expected-204"),
        pytest.param(Canned(status=503), 200,
                     CheckResult(ok=False, reason="HTTP 503, expected 200"), id="503"),
        pytest.param(Canned(status=302, headers={"Location": "/login"}), 200,
                     CheckResult(ok=False, reason="HTTP 302, expected 200"),
                     id="redirect-not-followed"),
        pytest.param(Canned(body=b"x" * 1_000_000), 200, CheckResult(ok=True),
                     id="large-body-not-read"),
    ],
)
async def test_http_check(fake_http: FakeHttp, canned: Canned, expect_status: int,
                          expected: CheckResult) -> None:
    fake_http.route("/healthcheck", canned)
    async with aiohttp.ClientSession() as session:
        result = await http_check(session, f"{fake_http.url}/healthcheck", 2.0,
                                  expect_status=expect_status)

    assert result == expected
    assert [s.path for s in fake_http.seen] == ["/healthcheck"]


async def test_http_check_timeout_and_refused(fake_http: FakeHttp) -> None:
    fake_http.route("/slow", Canned(hang=True))
    port = free_port()
    async with aiohttp.ClientSession() as session:
        slow = await http_check(session, f"{fake_http.url}/slow", 0.2)
        refused = await http_check(session, f"http://127.0.0.1:{port}/", 0.2)

    assert slow == CheckResult(ok=False, reason="timeout after 0.2s")
    assert refused == CheckResult(ok=False, reason=f"connection refused (127.0.0.1:{port})")


async def test_http_probe_sends_its_token(fake_http: FakeHttp, tmp_path: Path) -> None:
    (tmp_path / "token").write_text("abc\n")
    fake_http.route("/ready", Canned(status=204, body=b""))
    probe = HttpProbe("gui", config.HttpDependency(
        kind="http", url=f"{fake_http.url}/ready", expect_status=204,
        auth=config.SecretRefs(token_file=tmp_path / "token")))
    try:
        result = await probe.check()
    finally:
        await probe.close()

    assert result == CheckResult(ok=True)
    assert fake_http.seen[0].headers["Authorization"] == "Bearer abc"


@pytest.mark.parametrize(
    ("cfg", "kind"),
    [
        pytest.param(config.ElasticsearchDependency(kind="elasticsearch", url="http://es:9200"),
                     ElasticsearchProbe, id="elasticsearch"),
        pytest.param(config.MysqlDependency(kind="mysql", host="mysql"), MysqlProbe, id="mysql"),
        pytest.param(config.RedisDependency(kind="redis", url="redis://redis:6379"), RedisProbe,
                     id="redis"),
        pytest.param(config.PulsarDependency(kind="pulsar", admin_url="http://pulsar:8080"),
                     PulsarProbe, id="pulsar"),
        pytest.param(config.HttpDependency(kind="http", url="http://api/healthcheck"),
                     HttpProbe, id="http"),
    ],
)
async def test_build_probe(cfg: config.Dependency, kind: type) -> None:
    probe = build_probe("dep", cfg)

    assert isinstance(probe, kind)
    assert probe.name == "dep"
    await probe.close()
