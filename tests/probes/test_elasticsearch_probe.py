"""ElasticsearchProbe against a loopback fake that answers with the real captures."""

from __future__ import annotations

import json
from typing import Any

import pytest
from wire_fakes import Canned, FakeHttp, sample

from autoscaler.config import ElasticsearchDependency, SecretRefs
from autoscaler.localport import free_port
from autoscaler.ports import CheckResult
from autoscaler.probes.elasticsearch import ElasticsearchProbe

HEALTH = "/_cluster/health"


def make_probe(url: str, **overrides: Any) -> ElasticsearchProbe:
    settings: dict[str, Any] = {"kind": "elasticsearch", "url": url, "timeout_seconds": 2.0}
    settings.update(overrides)
    return ElasticsearchProbe("elasticsearch", ElasticsearchDependency(**settings))


async def check(url: str, **overrides: Any) -> CheckResult:
    probe = make_probe(url, **overrides)
    try:
        return await probe.check()
    finally:
        await probe.close()


@pytest.mark.parametrize(
    ("canned", "yellow_is_up", "expected"),
    [
        pytest.param(Canned(body=sample("elasticsearch/cluster-health-green.json")), True,
                     CheckResult(ok=True), id="sample-green"),
        pytest.param(Canned(body=sample("elasticsearch/cluster-health-yellow.json")), True,
                     CheckResult(ok=True, reason="yellow: 1 unassigned shards"),
                     id="sample-yellow-up-by-default"),
        pytest.param(Canned(body=sample("elasticsearch/cluster-health-yellow.json")), False,
                     CheckResult(ok=False, reason="yellow: 1 unassigned shards"),
                     id="sample-yellow-down-when-configured"),
        pytest.param(Canned(body=sample("elasticsearch/cluster-health-red.json")), True,
                     CheckResult(ok=False, reason="red: 8220 unassigned shards"),
                     id="sample-red"),
        pytest.param(Canned(status=408,
                            body=sample("elasticsearch/cluster-health-red-timed-out.json")),
                     True, CheckResult(ok=False, reason="timed out (status red)"),
                     id="sample-red-timed-out-408"),
        pytest.param(Canned(status=401, body=sample("elasticsearch/unauthorized-401.json"),
                            headers={"WWW-Authenticate": 'Basic realm="security"'}),
                     True, CheckResult(ok=False, reason=(
                         "unauthorized: missing authentication credentials for REST request "
                         "[/_cluster/health?pretty]")),
                     id="sample-unauthorized-401"),
        pytest.param(Canned(status=403, body=json.dumps({"error": {
            "type": "security_exception",
            "reason": "action [cluster:monitor/health] is unauthorized for user [tracardi]"},
            "status": 403}).encode()), True,
            CheckResult(ok=False, reason=("forbidden: action [cluster:monitor/health] is "
                                          "unauthorized for user [tracardi]")),
            id="forbidden-403"),
        pytest.param(Canned(status=401, body=b"", content_type="text/plain"), True,
                     CheckResult(ok=False, reason="unauthorized (HTTP 401)"),
                     id="401-without-body"),
        pytest.param(Canned(status=503, body=json.dumps({"error": {
            "type": "master_not_discovered_exception", "reason": None}, "status": 503}).encode()),
            True, CheckResult(ok=False, reason="HTTP 503"), id="503-no-master"),
        pytest.param(Canned(body=b'{"status": "purple", "timed_out": false}'), True,
                     CheckResult(ok=False, reason="unknown cluster status 'purple'"),
                     id="unknown-status"),
        pytest.param(Canned(body=b'{"status": "gre'), True,
                     CheckResult(ok=False, reason="invalid JSON"), id="truncated-json"),
    ],
)
async def test_health_replies(fake_http: FakeHttp, canned: Canned, yellow_is_up: bool,
                              expected: CheckResult) -> None:
    fake_http.route(HEALTH, canned)

    assert await check(fake_http.url, yellow_is_up=yellow_is_up) == expected


async def test_connection_refused_is_down() -> None:
    port = free_port()

    result = await check(f"http://127.0.0.1:{port}")

    assert result == CheckResult(ok=False, reason=f"connection refused (127.0.0.1:{port})")


async def test_timeout_is_down(fake_http: FakeHttp) -> None:
    fake_http.route(HEALTH, Canned(hang=True))

    result = await check(fake_http.url, timeout_seconds=0.2)

    assert result == CheckResult(ok=False, reason="timeout after 0.2s")


async def test_basic_auth_is_sent_and_the_password_never_shows(
        fake_http: FakeHttp, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ES_PASSWORD", "es-pass-42")
    fake_http.route(HEALTH, Canned(status=401, body=json.dumps({
        "error": {"reason": "unable to authenticate user [elastic] with es-pass-42"}}).encode()))

    result = await check(fake_http.url, auth=SecretRefs(username="elastic",
                                                        password_env="ES_PASSWORD"))

    assert result == CheckResult(
        ok=False, reason="unauthorized: unable to authenticate user [elastic] with ***")
    assert fake_http.seen[0].headers["Authorization"].startswith("Basic ")
