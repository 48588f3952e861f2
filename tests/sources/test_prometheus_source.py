"""PrometheusSource against a loopback fake that answers with the real captures and variants."""

from __future__ import annotations

import json
from typing import Any

import pytest
from wire_fakes import Canned, FakeHttp, sample

from autoscaler.config import PrometheusSource as PrometheusSettings
from autoscaler.sources.http import SessionPool
from autoscaler.sources.prometheus import PrometheusSource

READ_AT = 77.0
QUERY = 'sum(rate(nginx_ingress_controller_requests{ingress="tracardi-track"}[1m]))'


def make_source(url: str, pool: SessionPool, **overrides: Any) -> PrometheusSource:
    settings: dict[str, Any] = {"kind": "prometheus", "url": url, "query": QUERY}
    settings.update(overrides)
    return PrometheusSource("ingress", PrometheusSettings(**settings), now=lambda: READ_AT,
                            session_pool=pool)


def vector(*values: str) -> bytes:
    result = [{"metric": {"pod": f"p{i}"}, "value": [1435781451.781, v]}
              for i, v in enumerate(values)]
    return json.dumps({"status": "success",
                       "data": {"resultType": "vector", "result": result}}).encode()


def scalar(value: str) -> bytes:
    return json.dumps({"status": "success",
                       "data": {"resultType": "scalar", "result": [1435781451.781, value]}}
                      ).encode()


def prometheus_error(kind: str, message: str) -> bytes:
    return json.dumps({"status": "error", "errorType": kind, "error": message}).encode()


@pytest.mark.parametrize(
    ("canned", "value"),
    [
        pytest.param(Canned(body=vector("1")), 1.0, id="single-sample-vector"),
        pytest.param(Canned(body=vector("12.75")), 12.75, id="fractional"),
        pytest.param(Canned(body=vector("0")), 0.0, id="zero"),
        pytest.param(Canned(body=scalar("3.5")), 3.5, id="scalar"),
    ],
)
async def test_reads_a_single_value(fake_http: FakeHttp, pool: SessionPool, canned: Canned,
                                    value: float) -> None:
    fake_http.route("/api/v1/query", canned)

    [signal] = await make_source(fake_http.url, pool).read()

    assert (signal.name, signal.value, signal.error, signal.read_at) == (
        "ingress.value", value, None, READ_AT)


@pytest.mark.parametrize(
    ("canned", "reason"),
    [
        pytest.param(Canned(body=sample("prometheus/query-vector-success.json")),
                     "prometheus: 2 series, expected 1", id="sample-query-vector-success"),
        pytest.param(Canned(body=sample("prometheus/query-empty-result.json")),
                     "prometheus: empty result", id="sample-query-empty-result"),
        pytest.param(Canned(body=sample("prometheus/query-empty-result-null-legacy-2.0.json")),
                     "prometheus: empty result", id="sample-query-empty-result-null-legacy"),
        pytest.param(Canned(status=400, body=sample("prometheus/query-error-bad-data.json")),
                     "prometheus 400 bad_data: invalid parameter 'query': parse error at char "
                     "54: duration must be greater than 0", id="sample-query-error-bad-data"),
        pytest.param(Canned(status=400,
                            body=sample("prometheus/query-range-error-bad-data-v2.4.3.json")),
                     'prometheus 400 bad_data: cannot parse "" to a valid timestamp',
                     id="sample-query-range-error-bad-data-v2.4.3"),
        pytest.param(Canned(body=vector("NaN")), "prometheus: NaN", id="nan"),
        pytest.param(Canned(body=vector("+Inf")), "prometheus: +Inf", id="plus-inf"),
        pytest.param(Canned(body=scalar("-Inf")), "prometheus: -Inf", id="minus-inf"),
        pytest.param(Canned(body=vector("-3")), "prometheus: negative value -3",
                     id="negative"),
        pytest.param(Canned(body=vector("1", "2", "3")), "prometheus: 3 series, expected 1",
                     id="three-series"),
        pytest.param(Canned(status=422, body=prometheus_error(
            "execution", "found duplicate series for the match group")),
            "prometheus 422 execution: found duplicate series for the match group",
            id="422-execution"),
        pytest.param(Canned(status=503, body=prometheus_error(
            "timeout", "query timed out in expression evaluation")),
            "prometheus 503 timeout: query timed out in expression evaluation",
            id="503-timeout"),
        pytest.param(Canned(status=502, body=b"<html>Bad Gateway</html>",
                            content_type="text/html"), "HTTP 502", id="proxy-502-html"),
        pytest.param(Canned(body=b'{"status":"success","data":{"resultType":"vector","res'),
                     "invalid JSON", id="truncated-json"),
        pytest.param(Canned(body=json.dumps({"status": "success", "data": {
            "resultType": "matrix", "result": []}}).encode()),
            "prometheus: matrix result, expected a scalar or a vector", id="range-vector"),
        pytest.param(Canned(body=json.dumps({"status": "success", "data": {
            "resultType": "vector", "result": [{"metric": {}, "histogram": [1, {}]}]}}).encode()),
            "prometheus: native histogram sample, expected a float", id="native-histogram"),
        pytest.param(Canned(body=vector("lots")), "prometheus: unparsable value 'lots'",
                     id="unparsable"),
    ],
)
async def test_rejects_with_a_distinct_reason(fake_http: FakeHttp, pool: SessionPool,
                                              canned: Canned, reason: str) -> None:
    fake_http.route("/api/v1/query", canned)

    [signal] = await make_source(fake_http.url, pool).read()

    assert (signal.value, signal.error, signal.ok) == (None, reason, False)


async def test_sends_the_query_and_its_deadline(fake_http: FakeHttp, pool: SessionPool) -> None:
    fake_http.route("/api/v1/query", Canned(body=vector("1")))

    await make_source(fake_http.url, pool, timeout_seconds=1.5).read()

    assert fake_http.seen[0].query == {"query": QUERY, "timeout": "1500ms"}


async def test_timeout(fake_http: FakeHttp, pool: SessionPool) -> None:
    fake_http.route("/api/v1/query", Canned(hang=True))

    [signal] = await make_source(fake_http.url, pool, timeout_seconds=0.1).read()

    assert signal.error == "timeout after 0.1s"
