"""Config values that reach URLs or PromQL cannot add a path, a query or another expression.

Names that become URL path segments (Pulsar tenant, namespace, topic and subscription, the
Tracardi queue's namespace and topic, the healer's probe path, Kubernetes namespaces and object
names) refuse separators, dot segments, percent-escapes, whitespace and control characters with
an error naming file, line and field; base URLs refuse blanks and control characters. On the
wire, the PromQL expression is one URL-encoded `query` parameter, sent verbatim (nothing is
templated into it), and path segments arrive exactly as configured.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from aiohttp import web
from security_support import Recorder, serving

from autoscaler.config import (
    ConfigError,
    PrometheusSource,
    PulsarSource,
    TracardiQueueSource,
    parse_config,
)
from autoscaler.sources import build_source
from autoscaler.sources.http import SessionPool

#: Every value a test may swap in; the defaults make a valid config.
DEFAULTS = {
    "daemon_namespace": "tracardi",
    "lease_name": "tracardi-autoscaler",
    "lease_namespace": "tracardi",
    "es_url": "http://es:9200",
    "token_env": "PULSAR_TOKEN",
    "tenant": "tracardi",
    "pulsar_namespace": "system",
    "topic": "functions",
    "subscription": "tracardi-function-subscription",
    "queue_namespace": "system",
    "queue_topic": "functions",
    "workload_namespace": "tracardi",
    "deployment": "wk-pl-background",
    "probe_path": "/healthcheck",
}
TEMPLATE = """\
daemon:
  namespace: {daemon_namespace}
  lease:
    name: {lease_name}
    namespace: {lease_namespace}
dependencies:
  es:
    kind: elasticsearch
    url: {es_url}
sources:
  functions:
    kind: pulsar
    admin_url: http://pulsar:8080
    auth: {{token_env: {token_env}}}
    tenant: {tenant}
    namespace: {pulsar_namespace}
    topic: {topic}
    subscription: {subscription}
  queue:
    kind: tracardi-queue
    api_url: http://tracardi-api:8686
    namespace: {queue_namespace}
    topic: {queue_topic}
workloads:
  wk-pl-background:
    namespace: {workload_namespace}
    deployment: {deployment}
    min: 1
    max: 4
    requires: [es]
    policies: [{{name: backlog, source: functions, msgs_per_second: 10}}]
    healing:
      http_probe:
        path: {probe_path}
"""
FIELDS = {
    "daemon_namespace": "daemon.namespace",
    "lease_name": "daemon.lease.name",
    "lease_namespace": "daemon.lease.namespace",
    "es_url": "dependencies.es.url",
    "token_env": "sources.functions.auth.token_env",
    "tenant": "sources.functions.tenant",
    "pulsar_namespace": "sources.functions.namespace",
    "topic": "sources.functions.topic",
    "subscription": "sources.functions.subscription",
    "queue_namespace": "sources.queue.namespace",
    "queue_topic": "sources.queue.topic",
    "workload_namespace": "workloads.wk-pl-background.namespace",
    "deployment": "workloads.wk-pl-background.deployment",
    "probe_path": "workloads.wk-pl-background.healing.http_probe.path",
}
PATH = "injection.yaml"


def render(**values: str) -> str:
    """The template with `values` swapped in, each as a YAML double-quoted (JSON) string."""
    return TEMPLATE.format(**{k: json.dumps(v) for k, v in {**DEFAULTS, **values}.items()})


def line_of(key: str) -> int:
    return next(i for i, line in enumerate(TEMPLATE.splitlines(), 1) if f"{{{key}}}" in line)


#: Hostile values for a name that becomes one URL path segment.
SEGMENT_ATTACKS = {
    "slash": "tracardi/../admin",
    "dot-dot": "..",
    "dot": ".",
    "query": "functions?perPartition=true",
    "fragment": "functions#x",
    "percent-slash": "a%2Fb",
    "percent-dot": "%2e%2e",
    "space": "a b",
    "tab": "a\tb",
    "newline": "a\nGET /admin",
    "nul": "a\x00b",
    "escape": "a\x1b[31m",
    "backslash": "a\\..\\b",
    "empty": "",
}
#: Hostile values for the healer's probe path (it must start with "/").
PATH_ATTACKS = {
    "dot-dot": "/../admin",
    "dot-dot-end": "/health/..",
    "dot": "/./healthcheck",
    "query": "/healthcheck?x=1",
    "fragment": "/healthcheck#x",
    "percent-slash": "/a%2F..%2Fadmin",
    "space": "/health check",
    "newline": "/health\r\nHost: evil",
    "nul": "/health\x00",
    "backslash": "/..\\admin",
    "relative": "healthcheck",
    "absolute-url": "http://evil/x",
}
URL_ATTACKS = {
    "newline": "http://es:9200/\nx",
    "tab": "http://es:9200/\t",
    "space": "http://es:9200/ a",
    "nul": "http://es:9200/\x00",
    "query": "http://es:9200/?q=1",
    "fragment": "http://es:9200/#x",
    "userinfo": "http://elastic:pw@es:9200",
}
NAME_ATTACKS = {  # Kubernetes namespaces and object names
    "slash": "tracardi/../kube-system",
    "dot-dot": "..",
    "upper": "Tracardi",
    "percent": "a%2Fb",
    "space": "a b",
    "newline": "a\nb",
    "empty": "",
}
SEGMENTS = ("tenant", "pulsar_namespace", "topic", "subscription", "queue_namespace",
            "queue_topic")
NAMES = ("daemon_namespace", "lease_name", "lease_namespace", "workload_namespace",
         "deployment")

CASES = [
    *(pytest.param(key, value, id=f"{key}-{name}") for key in SEGMENTS
      for name, value in SEGMENT_ATTACKS.items()),
    *(pytest.param("probe_path", value, id=f"probe_path-{name}")
      for name, value in PATH_ATTACKS.items()),
    *(pytest.param("es_url", value, id=f"es_url-{name}") for name, value in URL_ATTACKS.items()),
    *(pytest.param(key, value, id=f"{key}-{name}") for key in NAMES
      for name, value in NAME_ATTACKS.items()),
    pytest.param("token_env", "s3cr3t-pasted-token.Zq81", id="token_env-a-pasted-secret"),
]


def test_the_template_with_its_defaults_is_valid() -> None:
    assert parse_config(render(), path=PATH).workloads


@pytest.mark.parametrize(("key", "value"), CASES)
def test_a_hostile_value_is_refused_with_file_line_and_field(key: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(render(**{key: value}), path=PATH)

    (issue,) = caught.value.issues
    assert (issue.path, issue.line, issue.field) == (PATH, line_of(key), FIELDS[key])
    assert str(issue).startswith(f"{PATH}:{line_of(key)}: {FIELDS[key]}: ")
    if len(value) > 2:
        assert value not in issue.message, "the message repeats the value"


@pytest.mark.parametrize(("key", "value"), [
    pytest.param("tenant", "public", id="tenant"),
    pytest.param("pulsar_namespace", "tracardi.system=v2", id="pulsar-namespace-dot-equals"),
    pytest.param("topic", "functions-partition_0", id="topic"),
    pytest.param("subscription", "..sub..", id="subscription-dots-inside"),
    pytest.param("probe_path", "/api/v1/health;full=1", id="probe-path-params"),
    pytest.param("probe_path", "/", id="probe-path-root"),
    pytest.param("probe_path", "/.well-known/health", id="probe-path-dot-name"),
    pytest.param("deployment", "be-fa-public.v2", id="deployment-dotted"),
    pytest.param("es_url", "https://es.example:9243/prefix", id="url-with-prefix-path"),
])
def test_legitimate_values_are_accepted_as_written(key: str, value: str) -> None:
    at: Any = parse_config(render(**{key: value}), path=PATH).config
    for part in FIELDS[key].split("."):  # a mapping's key, a workload's name or an attribute
        if isinstance(at, dict):
            at = at[part]
        elif isinstance(at, (list, tuple)):
            at = next(item for item in at if item.name == part)
        else:
            at = getattr(at, part)
    assert str(at) == value


HOSTILE_QUERY = 'sum(rate(x{job="a&b"}[1m])) + 1 &time=0&query=up #{namespace} $workload %2F'


async def test_the_promql_query_is_one_url_encoded_parameter_sent_verbatim() -> None:
    async def vector(_: web.Request) -> web.Response:
        return web.json_response({"status": "success", "data": {
            "resultType": "vector", "result": [{"metric": {}, "value": [1.0, "4"]}]}})

    prometheus = Recorder(vector)
    pool = SessionPool()
    try:
        async with serving(prometheus):
            cfg = PrometheusSource(kind="prometheus", url=prometheus.url, query=HOSTILE_QUERY,
                                   timeout_seconds=2)
            signals = await build_source("requests", cfg, now=time.monotonic,
                                         pool=pool).read()
    finally:
        await pool.close()

    assert [(s.name, s.value, s.error) for s in signals] == [("requests.value", 4.0, None)]
    (seen,) = prometheus.seen
    assert (seen.method, seen.path) == ("GET", "/api/v1/query")
    assert seen.query == (("query", HOSTILE_QUERY), ("timeout", "2000ms"))
    # Encoded so that no server reads '+' as a space or '&' as a new parameter.
    assert "&time=" not in seen.raw_query and "+" not in seen.raw_query
    assert seen.raw_query.count("&") == 1


async def test_path_segments_arrive_exactly_as_configured() -> None:
    async def stats(request: web.Request) -> web.Response:
        if request.path.startswith("/queue/"):
            return web.json_response({"total": 3, "backlog": []})
        return web.json_response({"msgRateIn": 0.0, "subscriptions": {
            "s=1.x": {"msgBacklog": 5, "msgRateOut": 0.0, "consumers": []}}})

    server = Recorder(stats)
    pool = SessionPool()
    try:
        async with serving(server):
            pulsar = PulsarSource(kind="pulsar", admin_url=server.url, tenant="t.e_n-a=nt",
                                  namespace="n.s", topic="to-pic_1", subscription="s=1.x")
            queue = TracardiQueueSource(kind="tracardi-queue", api_url=server.url,
                                        namespace="n.s", topic="to-pic_1")
            read = [*await build_source("p", pulsar, now=time.monotonic, pool=pool).read(),
                    *await build_source("q", queue, now=time.monotonic, pool=pool).read()]
    finally:
        await pool.close()

    assert {s.name: s.error for s in read if s.error} == {}
    assert [s.path for s in server.seen] == [
        "/admin/v2/persistent/t.e_n-a=nt/n.s/to-pic_1/partitioned-stats",
        "/queue/n.s/to-pic_1/backlog"]
