"""The daemon's own HTTP endpoints (`/metrics`, `/healthz`, `/readyz`) change nothing.

A daemon wired to the live adapters (simulated Kubernetes and Pulsar over HTTP) evaluates once,
then its endpoints are hammered with every writing method and with paths that do not exist.
Every such request is 405 or 404, and the daemon's metrics, decisions, signals and readiness, and
the cluster it manages, are exactly as before.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from autoscaler.config import load_config
from autoscaler.daemon import Daemon
from autoscaler.runtime import endpoints, live_adapters
from autoscaler.sim.kubeapi import ServedApp, serve, write_kubeconfig
from autoscaler.sim.kubeapi import create_app as kube_app
from autoscaler.sim.kubestate import KubeState
from autoscaler.sim.pulsar_admin import PulsarState
from autoscaler.sim.pulsar_admin import create_app as pulsar_app
from autoscaler.telemetry import Telemetry

NS = "tracardi"
TOPIC = "persistent://tracardi/system/functions"
SUB = "tracardi-function-subscription"
CONFIG = """
daemon: {{namespace: tracardi}}
dependencies:
  pulsar: {{kind: pulsar, admin_url: "{pulsar}"}}
sources:
  functions: {{kind: pulsar, admin_url: "{pulsar}", tenant: tracardi, namespace: system,
              topic: functions, subscription: {sub}}}
workloads:
  wk-pl-background:
    min: 1
    max: 8
    requires: [pulsar]
    policies: [{{name: backlog, source: functions, msgs_per_second: 10, drain_seconds: 10,
                learn: false, target_utilization: 1.0}}]
"""

ENDPOINTS = ("/metrics", "/healthz", "/readyz")
WRITES = ("POST", "PUT", "DELETE", "PATCH")
UNKNOWN = ("/", "/admin", "/config", "/scale", "/pause", "/shutdown", "/debug/pprof",
           "/metrics/", "/metrics/reset", "/healthz/../admin", "/%2e%2e/config", "/readyz;x")


@dataclass
class Running:
    daemon: Daemon
    kube: KubeState
    url: str


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    kube = KubeState(clock=time.monotonic, wall=time.time)
    kube.add_deployment(NS, "wk-pl-background", replicas=1)
    pulsar = PulsarState()
    pulsar.add_topic(TOPIC, partitions=2, subscriptions=(SUB,))
    pulsar.set_subscription(TOPIC, SUB, backlog=300, msg_rate_out=0.0)
    servers: list[ServedApp] = [await serve(kube_app(kube)), await serve(pulsar_app(pulsar))]
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(pulsar=servers[1].url, sub=SUB))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", servers[0].url)
    loaded = load_config(path)
    telemetry = Telemetry()
    try:
        async with live_adapters(loaded, kubeconfig=str(kubeconfig), identity="readonly",
                                 telemetry=telemetry, leader_election=False) as (adapters, _, _):
            daemon = Daemon(loaded, adapters, telemetry=telemetry)
            await daemon.explain()
            server = TestServer(endpoints(daemon), host="127.0.0.1")
            await server.start_server()
            try:
                yield Running(daemon, kube, str(server.make_url("")).rstrip("/"))
            finally:
                await server.close()
    finally:
        for s in servers:
            await s.stop()


def snapshot(r: Running) -> tuple[object, ...]:
    d = r.daemon
    return (
        d.telemetry.render(),
        {key: state.decision for key, state in d.workloads.items()},
        {key: state.status for key, state in d.workloads.items()},
        dict(d.store.dependencies),
        dict(d.store.latest),
        {name: list(ring) for name, ring in d.store.history.items()},
        d.ready,
        d.dry_run,
        r.kube.deployment(NS, "wk-pl-background").replicas,
        [e.message for e in r.kube.events(NS)],
    )


async def test_writing_methods_and_unknown_paths_change_nothing(running: Running) -> None:
    decision = running.daemon.workloads[f"{NS}/wk-pl-background"].decision
    assert decision is not None and decision.desired == 3, "the daemon has decided something"
    before = snapshot(running)
    answers: dict[tuple[str, str], tuple[int, str]] = {}
    async with aiohttp.ClientSession() as session:
        for path in ENDPOINTS:
            for method in (*WRITES, "OPTIONS", "TRACE"):
                async with session.request(method, f"{running.url}{path}",
                                           data=b"replicas=30&paused=true",
                                           allow_redirects=False) as resp:
                    answers[(method, path)] = (resp.status, resp.headers.get("Allow", ""))
        for path in UNKNOWN:
            for method in ("GET", *WRITES):
                async with session.request(method, f"{running.url}{path}", data=b"{}",
                                           allow_redirects=False) as resp:
                    answers[(method, path)] = (resp.status, "")
        async with session.get(f"{running.url}/metrics?reset=true&name[]=x") as resp:
            metrics_with_query = resp.status

    assert {key: a for key, a in answers.items() if key[1] in ENDPOINTS} == {
        (method, path): (405, "GET,HEAD") for path in ENDPOINTS
        for method in (*WRITES, "OPTIONS", "TRACE")}
    assert {key: a for key, a in answers.items() if key[1] not in ENDPOINTS} == {
        (method, path): (404, "") for path in UNKNOWN for method in ("GET", *WRITES)}
    assert metrics_with_query == 200
    assert snapshot(running) == before


async def test_reads_answer_and_are_idempotent(running: Running) -> None:
    before = snapshot(running)
    async with aiohttp.ClientSession() as session:
        statuses = {}
        for path in ENDPOINTS:
            async with session.get(f"{running.url}{path}") as resp:
                statuses[path] = resp.status
            async with session.head(f"{running.url}{path}") as resp:
                statuses[f"HEAD {path}"] = resp.status
        async with session.get(f"{running.url}/metrics") as resp:
            first = await resp.text()
        async with session.get(f"{running.url}/metrics") as resp:
            second = await resp.text()

    # Not ready: the daemon evaluated once but is not running its loops.
    assert statuses == {"/metrics": 200, "/healthz": 200, "/readyz": 503,
                        "HEAD /metrics": 200, "HEAD /healthz": 200, "HEAD /readyz": 503}
    assert first == second
    assert 'tracardi_autoscaler_desired_replicas{namespace="tracardi",' \
           'workload="wk-pl-background"} 3.0' in first
    assert snapshot(running) == before
