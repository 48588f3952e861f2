"""PulsarProbe against a loopback fake of `/admin/v2/brokers/health`."""

from __future__ import annotations

import pytest
from wire_fakes import Canned, FakeHttp, sample

from autoscaler.config import PulsarDependency
from autoscaler.localport import free_port
from autoscaler.ports import CheckResult
from autoscaler.probes.pulsar import PulsarProbe

HEALTH = "/admin/v2/brokers/health"


async def check(url: str, timeout_seconds: float = 2.0) -> CheckResult:
    probe = PulsarProbe("pulsar", PulsarDependency(kind="pulsar", admin_url=url,
                                                   timeout_seconds=timeout_seconds))
    try:
        return await probe.check()
    finally:
        await probe.close()


@pytest.mark.parametrize(
    ("canned", "expected"),
    [
        pytest.param(Canned(body=sample("pulsar/brokers-health-ok.txt"),
                            content_type="text/plain"), CheckResult(ok=True),
                     id="sample-brokers-health-ok"),
        pytest.param(Canned(body=b'"ok"'), CheckResult(ok=True), id="json-string-ok"),
        pytest.param(Canned(status=500, body=b'{"reason": "Timeout waiting for health check"}'),
                     CheckResult(ok=False, reason="HTTP 500: Timeout waiting for health check"),
                     id="500-with-reason"),
        pytest.param(Canned(status=401, body=b"", content_type="text/plain"),
                     CheckResult(ok=False, reason="HTTP 401"), id="401"),
        pytest.param(Canned(body=b"not ready", content_type="text/plain"),
                     CheckResult(ok=False, reason="unexpected health answer 'not ready'"),
                     id="unexpected-body"),
        pytest.param(Canned(status=307, headers={"Location": "http://broker-1:8080/x"}),
                     CheckResult(ok=False, reason="HTTP 307 redirect to broker-1:8080 refused"),
                     id="redirect"),
    ],
)
async def test_health_replies(fake_http: FakeHttp, canned: Canned,
                              expected: CheckResult) -> None:
    fake_http.route(HEALTH, canned)

    assert await check(fake_http.url) == expected


async def test_connection_refused_is_down() -> None:
    port = free_port()

    assert await check(f"http://127.0.0.1:{port}") == CheckResult(
        ok=False, reason=f"connection refused (127.0.0.1:{port})")


async def test_timeout_is_down(fake_http: FakeHttp) -> None:
    fake_http.route(HEALTH, Canned(hang=True))

    assert await check(fake_http.url, 0.2) == CheckResult(ok=False, reason="timeout after 0.2s")
