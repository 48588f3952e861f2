"""Known secrets never come out of the daemon: not in logs, metrics, events, `explain` or errors.

The real daemon runs as a process (`tracardi-autoscaler run`) against the simulated Kubernetes
API (which demands the kubeconfig's token), Pulsar admin and Prometheus, plus servers that fail
on purpose: one answers 401/403 with our Authorization header (and the password it decodes)
echoed in the error body, one redirects to a third server, and some dependencies are refused
(MySQL and Redis with a wrong password, an HTTP dependency on a closed port). Every credential
the config allows comes from an environment variable or a file, each with a distinctive value.
Once it has scaled and seen every failure, everything it said is scanned for any form of them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from security_support import Recorder, forms, leaks, require_binary, serving

from autoscaler.localport import free_port
from autoscaler.sim.kubeapi import ServedApp, serve, write_kubeconfig
from autoscaler.sim.kubeapi import create_app as kube_app
from autoscaler.sim.kubestate import KubeState
from autoscaler.sim.prometheus_api import PrometheusState
from autoscaler.sim.prometheus_api import create_app as prometheus_app
from autoscaler.sim.pulsar_admin import PulsarState
from autoscaler.sim.pulsar_admin import create_app as pulsar_app

pytestmark = pytest.mark.real

NS = "tracardi"
TOPIC = "persistent://tracardi/system/functions"
SUB = "tracardi-function-subscription"
RATE_QUERY = 'sum(rate(nginx_ingress_controller_requests{service="be-fa-public"}[1m]))'

# Every secret starts with "s3cr3t-", which appears nowhere else: a piece of one is a leak too.
PULSAR_TOKEN = "s3cr3t-pulsar-Zq81"
PULSAR_DR_TOKEN = "s3cr3t-pulsar-dr-Dr05"
ES_PASSWORD = "s3cr3t-elastic-Pw42"
PROM_TOKEN = "s3cr3t-prom-bearer-Pb93"
PROM_PASSWORD = "s3cr3t-prom-basic-Pp27"
TRACARDI_TOKEN = "s3cr3t-tracardi-Tq63"
TRACARDI_ECHO_TOKEN = "s3cr3t-tracardi-echo-Te48"
GUI_PASSWORD = "s3cr3t-gui-Gp70"
MYSQL_PASSWORD = "s3cr3t-mysql-My77"
REDIS_PASSWORD = "s3cr3t-redis-Rd19"
KUBE_TOKEN = "s3cr3t-kube-Kt36"
LOCATION_PASSWORD = "s3cr3t-location-Lc55"  # a credential in a redirect's Location

SECRET_FORMS = [
    *forms(PULSAR_TOKEN), *forms(PULSAR_DR_TOKEN), *forms(ES_PASSWORD, username="elastic"),
    *forms(PROM_TOKEN), *forms(PROM_PASSWORD, username="prom"), *forms(TRACARDI_TOKEN),
    *forms(TRACARDI_ECHO_TOKEN), *forms(GUI_PASSWORD, username="admin"),
    *forms(MYSQL_PASSWORD), *forms(REDIS_PASSWORD), *forms(KUBE_TOKEN),
    *forms(LOCATION_PASSWORD, username="intruder"),
]

ENV = {
    "SEC_PULSAR_TOKEN": PULSAR_TOKEN,
    "SEC_PROM_PASSWORD": PROM_PASSWORD,
    "SEC_TRACARDI_TOKEN": TRACARDI_TOKEN,
    "SEC_GUI_PASSWORD": GUI_PASSWORD,
    "SEC_MYSQL_PASSWORD": MYSQL_PASSWORD,
}
FILES = {
    "pulsar-dr-token": PULSAR_DR_TOKEN,
    "es-password": ES_PASSWORD,
    "prom-token": PROM_TOKEN,
    "tracardi-echo-token": TRACARDI_ECHO_TOKEN,
    "redis-password": REDIS_PASSWORD,
}

CONFIG = """
daemon:
  namespace: tracardi
  tick_seconds: 1
  lease: {{duration_seconds: 4, renew_deadline_seconds: 3, retry_period_seconds: 0.5}}
dependencies:
  pulsar: {{kind: pulsar, admin_url: "{pulsar}", period_seconds: 0.5, failure_threshold: 2,
           success_threshold: 1, auth: {{token_env: SEC_PULSAR_TOKEN}}}}
  pulsar-dr: {{kind: pulsar, admin_url: "{echo}", period_seconds: 0.5, failure_threshold: 1,
              auth: {{token_file: "{secrets}/pulsar-dr-token"}}}}
  elasticsearch: {{kind: elasticsearch, url: "{echo}/es", period_seconds: 0.5,
                  failure_threshold: 1,
                  auth: {{username: elastic, password_file: "{secrets}/es-password"}}}}
  mysql: {{kind: mysql, host: 127.0.0.1, port: 3306, period_seconds: 0.5, failure_threshold: 1,
          auth: {{username: root, password_env: SEC_MYSQL_PASSWORD}}}}
  redis: {{kind: redis, url: "redis://127.0.0.1:{redis}/0", period_seconds: 0.5,
          failure_threshold: 1, auth: {{password_file: "{secrets}/redis-password"}}}}
  tracardi-api: {{kind: http, url: "{redirect}/healthcheck", period_seconds: 0.5,
                 failure_threshold: 1, auth: {{token_env: SEC_TRACARDI_TOKEN}}}}
  gui-api: {{kind: http, url: "http://127.0.0.1:{closed}/healthcheck", period_seconds: 0.5,
            failure_threshold: 1, auth: {{username: admin, password_env: SEC_GUI_PASSWORD}}}}
sources:
  functions: {{kind: pulsar, admin_url: "{pulsar}", tenant: tracardi, namespace: system,
              topic: functions, subscription: {sub}, poll_seconds: 0.5,
              auth: {{token_env: SEC_PULSAR_TOKEN}}}}
  queue: {{kind: tracardi-queue, api_url: "{redirect}", namespace: system, topic: functions,
          poll_seconds: 0.5, auth: {{token_env: SEC_TRACARDI_TOKEN}}}}
  queue-echo: {{kind: tracardi-queue, api_url: "{echo}", namespace: system, topic: functions,
               poll_seconds: 0.5, auth: {{token_file: "{secrets}/tracardi-echo-token"}}}}
  requests: {{kind: prometheus, url: "{prometheus}", query: '{query}', poll_seconds: 0.5,
             auth: {{token_file: "{secrets}/prom-token"}}}}
  echoed: {{kind: prometheus, url: "{echo}/prom", query: up, poll_seconds: 0.5,
           auth: {{username: prom, password_env: SEC_PROM_PASSWORD}}}}
workloads:
  wk-pl-background:
    min: 1
    max: 8
    requires: [pulsar]
    policies:
      - {{name: backlog, source: functions, msgs_per_second: 10, drain_seconds: 10, learn: false,
         target_utilization: 1.0}}
      - {{name: backlog, source: queue, msgs_per_second: 10, drain_seconds: 10, learn: false,
         use_in_rate: false,
         target_utilization: 1.0}}
    behavior: {{scale_up: {{policies: [{{type: Pods, value: 10, period_seconds: 15}}]}}}}
  be-fa-public:
    min: 1
    max: 8
    requires: [pulsar]
    policies: [{{name: request-rate, source: requests, capacity_rps: 10, target_utilization: 1.0,
                startup_seconds: 0, burst_seconds: 0}}]
    behavior: {{scale_up: {{policies: [{{type: Pods, value: 10, period_seconds: 15}}]}}}}
  wk-pl-collector:
    min: 1
    max: 8
    requires: [elasticsearch, mysql, redis, tracardi-api, gui-api, pulsar-dr]
    policies:
      - {{name: backlog, source: queue-echo, msgs_per_second: 10, use_in_rate: false}}
      - {{name: request-rate, source: echoed, capacity_rps: 10}}
"""

LONG = "A" * 262  # puts the echoed token across the 300-character cut of a reason


def _decoded(authorization: str) -> str:
    """What a careless server shows of a credential: the header and the password in clear."""
    scheme, _, value = authorization.partition(" ")
    if scheme == "Basic":
        return f"{authorization} (password {base64.b64decode(value).decode().split(':', 1)[1]})"
    return authorization


async def echo(request: web.Request) -> web.Response:
    """Refuses every request and tells the caller exactly what it sent."""
    sent = _decoded(request.headers.get("Authorization", "(none)"))
    if request.path.startswith("/es/"):
        cause = {"type": "security_exception",
                 "reason": f"unable to authenticate user [elastic] for REST request "
                           f"[{request.path}] with {sent}"}
        return web.json_response({"error": {"root_cause": [cause], **cause}, "status": 401},
                                 status=401, headers={"WWW-Authenticate": sent})
    if request.path.startswith("/prom/"):
        return web.json_response({"status": "error", "errorType": "unauthorized",
                                  "error": f"bad credentials {sent}"}, status=401)
    if request.path.startswith("/queue/"):
        return web.json_response({"detail": f"{LONG} token rejected: {sent}"}, status=403)
    return web.json_response({"reason": f"Authentication required; got {sent}"}, status=401)


@dataclass
class World:
    kube: KubeState
    pulsar: PulsarState
    echo: Recorder
    redirect: Recorder
    catcher: Recorder
    config: Path
    kubeconfig: Path
    env: dict[str, str]

    def events(self) -> list[str]:
        return [json.dumps(asdict(e)) for e in self.kube.events(NS)]

    def rescaled(self, workload: str) -> bool:
        return any(e.reason == "SuccessfulRescale" and e.involved.get("name") == workload
                   for e in self.kube.events(NS))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    kube = KubeState(clock=time.monotonic, wall=time.time)
    for name in ("wk-pl-background", "be-fa-public", "wk-pl-collector"):
        kube.add_deployment(NS, name, replicas=1)
    pulsar = PulsarState()
    pulsar.add_topic(TOPIC, partitions=2, subscriptions=(SUB,))
    prometheus = PrometheusState()
    prometheus.set(RATE_QUERY, 45.0)
    servers: list[ServedApp] = [await serve(kube_app(kube, token=KUBE_TOKEN)),
                                await serve(pulsar_app(pulsar)),
                                await serve(prometheus_app(prometheus))]
    # The machine's shared Redis has no password, and redis-py shrugs off the error it gives
    # to an AUTH: a private server that wants another password refuses ours.
    redis_port = free_port()
    redis = await asyncio.create_subprocess_exec(
        require_binary("redis-server"), "--port", str(redis_port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
        "--requirepass", "not-what-the-daemon-has",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    for name, value in FILES.items():
        (secrets / name).write_text(value + "\n")

    async def caught(_: web.Request) -> web.Response:
        return web.json_response({"total": 1})

    catcher = Recorder(caught)
    async with serving(catcher), serving(Recorder(echo)) as echoing:

        async def to_catcher(request: web.Request) -> web.Response:
            if request.path.startswith("/queue/"):
                target = f"{catcher.url}{request.path}"
            else:
                target = catcher.url.replace("://", f"://intruder:{LOCATION_PASSWORD}@") + "/x"
            return web.Response(status=307 if "queue" in request.path else 302,
                                headers={"Location": target})

        async with serving(Recorder(to_catcher)) as redirecting:
            config = tmp_path / "config.yaml"
            config.write_text(CONFIG.format(
                pulsar=servers[1].url, prometheus=servers[2].url, echo=echoing.url,
                redirect=redirecting.url, closed=free_port(), secrets=secrets, sub=SUB,
                query=RATE_QUERY, redis=redis_port))
            world = World(kube=kube, pulsar=pulsar, echo=echoing, redirect=redirecting,
                          catcher=catcher, config=config,
                          kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", servers[0].url,
                                                      token=KUBE_TOKEN),
                          env={**os.environ, **ENV, "PYTHONUNBUFFERED": "1"})

            async def kubelet() -> None:
                while True:
                    for pod in kube.pods(NS):
                        if not pod.ready:
                            kube.mark_ready(NS, pod.name, True)
                    await asyncio.sleep(0.1)

            task = asyncio.create_task(kubelet())
            try:
                yield world
            finally:
                task.cancel()
                redis.kill()
                await redis.wait()
                for server in servers:
                    await server.stop()


async def eventually(check: Callable[[], object], *, what: str | Callable[[], str],
                     within: float = 25.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within}s: {what if isinstance(what, str) else what()}")


async def get(url: str) -> tuple[int, str]:
    try:
        async with aiohttp.ClientSession() as session, session.get(url) as resp:
            return resp.status, await resp.text()
    except aiohttp.ClientError:
        return 0, ""


@dataclass(frozen=True)
class Ran:
    code: int
    out: str
    err: str

    @property
    def text(self) -> str:
        return self.out + self.err


async def cli(env: dict[str, str], *args: str) -> Ran:
    """A `tracardi-autoscaler` command in its own process, with the secrets in its env."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler.cli", *args, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Ran(proc.returncode, out.decode(), err.decode())


def dependency_down(metrics: str, name: str) -> bool:
    return f'tracardi_autoscaler_dependency_up{{dependency="{name}"}} 0.0' in metrics


def signal_failed(metrics: str, signal_name: str) -> bool:
    return re.search(r'tracardi_autoscaler_signal_errors_total\{[^}]*signal="'
                     + re.escape(signal_name) + r'"', metrics) is not None


DOWN = ("elasticsearch", "mysql", "redis", "tracardi-api", "gui-api", "pulsar-dr")
FAILED_SIGNALS = ("queue.backlog", "queue-echo.backlog", "echoed.value")


async def test_no_secret_in_logs_metrics_events_or_explain(world: World,
                                                           tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "daemon.log"
    with log_path.open("wb") as log_file:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "autoscaler.cli", "run", "--config", str(world.config),
            "--kubeconfig", str(world.kubeconfig), "--metrics-host", "127.0.0.1",
            "--metrics-port", str(port), "--identity", "sec", "--log-level", "DEBUG",
            stdout=log_file, stderr=asyncio.subprocess.STDOUT, env=world.env)
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    try:
        await eventually(lambda: _ready(port, proc, log_path), what="the daemon is ready")
        world.pulsar.set_subscription(TOPIC, SUB, backlog=600, msg_rate_out=0.0)
        await eventually(lambda: world.rescaled("wk-pl-background"),
                         what="wk-pl-background rescaled on the backlog")
        await eventually(lambda: world.rescaled("be-fa-public"),
                         what="be-fa-public rescaled on the request rate")

        missing: list[str] = []

        async def every_failure_seen() -> bool:
            _, text = await get(metrics_url)
            missing[:] = [*(d for d in DOWN if not dependency_down(text, d)),
                          *(s for s in FAILED_SIGNALS if not signal_failed(text, s))]
            return not missing

        await eventually(every_failure_seen,
                         what=lambda: f"every failure reported; missing {missing}")
        explain = ("explain", "--config", str(world.config), "--kubeconfig",
                   str(world.kubeconfig))
        explained, explained_json = await asyncio.gather(cli(world.env, *explain),
                                                         cli(world.env, *explain, "--json"))
        _, metrics = await get(metrics_url)
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 20)
        except TimeoutError:
            proc.kill()
            await proc.wait()
    logs = log_path.read_text()

    # The failures happened, with the secrets really sent, and the servers echoed them back.
    assert proc.returncode == 0, tail(log_path)
    assert world.kube.deployment(NS, "wk-pl-collector").replicas == 1, "frozen throughout"
    echoed = set(world.echo.authorizations())
    assert {f"Bearer {PULSAR_DR_TOKEN}", f"Bearer {TRACARDI_ECHO_TOKEN}"} <= echoed
    assert {f"Basic {base64.b64encode(f'elastic:{ES_PASSWORD}'.encode()).decode()}",
            f"Basic {base64.b64encode(f'prom:{PROM_PASSWORD}'.encode()).decode()}"} <= echoed
    assert world.redirect.seen, "the redirecting server was asked"
    assert world.catcher.seen == [], "a redirect was followed"
    assert explained.code == 0 and explained_json.code == 0, explained.err + explained_json.err
    report = json.loads(explained_json.out)
    collector = next(w for w in report["workloads"] if w["name"] == "wk-pl-collector")
    reasons = {name: dep["reason"] for name, dep in collector["dependencies"].items()}
    assert "Basic *** (password ***)" in reasons["elasticsearch"]
    assert "Bearer ***" in reasons["pulsar-dr"]
    assert "Access denied for user 'root'" in reasons["mysql"]
    assert reasons["redis"].startswith("auth failed: ")
    assert reasons["tracardi-api"] == "HTTP 302, expected 200"
    assert reasons["gui-api"].startswith("connection refused")
    background = next(w for w in report["workloads"] if w["name"] == "wk-pl-background")
    assert background["signals"]["queue.backlog"]["error"] == (
        f"HTTP 307 redirect to 127.0.0.1:{world.catcher.url.rsplit(':', 1)[1]} refused")

    # ... and nothing that came out of the daemon shows any form of any secret.
    outputs = {"logs": logs, "metrics": metrics, "events": "\n".join(world.events()),
               "explain": explained.text, "explain --json": explained_json.text}
    assert all(outputs.values())
    assert leaks(outputs, SECRET_FORMS) == []


def tail(path: Path) -> str:
    return path.read_text()[-2000:]


async def _ready(port: int, proc: asyncio.subprocess.Process, log_path: Path) -> bool:
    if proc.returncode is not None:
        raise AssertionError(f"the daemon exited with {proc.returncode}: {tail(log_path)}")
    status, _ = await get(f"http://127.0.0.1:{port}/readyz")
    return status == 200


INLINE = """
dependencies:
  elasticsearch:
    kind: elasticsearch
    url: "http://elastic:s3cr3t-url-password-Up31@es:9200"
    auth: {username: elastic, password: s3cr3t-inline-Il08}
  redis: {kind: redis, url: "redis://:s3cr3t-redis-url-Ru62@redis:6379/0"}
sources:
  functions:
    kind: pulsar
    admin_url: http://pulsar:8080
    tenant: tracardi
    namespace: system
    topic: functions
    subscription: sub
    token: s3cr3t-pulsar-inline-Pi40
    auth: {token_env: "s3cr3t-pasted-into-env-Pe93"}
workloads:
  wk-pl-background:
    min: 1
    max: 4
    requires: [elasticsearch]
    policies: [{name: backlog, source: functions, msgs_per_second: 10}]
"""
INLINE_SECRETS = ["s3cr3t-", "s3cr3t-url-password-Up31", "s3cr3t-inline-Il08",
                  "s3cr3t-redis-url-Ru62", "s3cr3t-pulsar-inline-Pi40",
                  "s3cr3t-pasted-into-env-Pe93",
                  base64.b64encode(b"elastic:s3cr3t-url-password-Up31").decode()]


async def test_check_and_run_refuse_inline_secrets_without_repeating_them(
        tmp_path: Path) -> None:
    path = tmp_path / "inline.yaml"
    path.write_text(INLINE)
    env = dict(os.environ)

    checked, ran = await asyncio.gather(
        cli(env, "check", str(path)),
        cli(env, "run", "--config", str(path), "--kubeconfig", str(tmp_path / "none"),
            "--metrics-port", "0"))

    assert (checked.code, ran.code) == (1, 2)
    for output in (checked.text, ran.text):
        lines = set(output.splitlines())
        assert {
            f"{path}:5: dependencies.elasticsearch.url: must not carry credentials; use the "
            "*_env or *_file settings",
            f"{path}:6: dependencies.elasticsearch.auth.password: inline secret is not allowed;"
            " use password_env (an environment variable) or password_file (a mounted file)",
            f"{path}:7: dependencies.redis.url: must not carry credentials; use the *_env or "
            "*_file settings",
            f"{path}:16: sources.functions.token: inline secret is not allowed; use token_env "
            "(an environment variable) or token_file (a mounted file)",
        } <= lines, output
        assert any(line.startswith(f"{path}:17: sources.functions.auth.token_env: must be an "
                                   "environment variable name") for line in lines), output
    assert leaks({"check": checked.text, "run": ran.text}, INLINE_SECRETS) == []
