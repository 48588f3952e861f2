"""`tracardi-autoscaler demo`: the real daemon against the simulated Tracardi cluster over HTTP.

The simulated cluster's servers (Kubernetes API, Pulsar admin, Elasticsearch, Prometheus) listen
on loopback; a driver plays a trace through one `ClusterModel` per scaled workload, sped up by
`--speed`, and mirrors the model into the servers' state: ready pods, topic backlog and rates,
the request rate. Scale writes that arrive over HTTP (from the daemon, or from kubectl) go back
into the models. The daemon is `runtime.live_daemon`, unchanged: the live adapters, leader
election on a real Lease, its metrics endpoint. Redis and MySQL are probed for real when they
answer on loopback, and simulated otherwise.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import socket
import tempfile
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
import yaml

from autoscaler.config import HttpProbeSettings, LoadedConfig, load_config
from autoscaler.daemon import Daemon
from autoscaler.engine.gate import dependency_reasons
from autoscaler.kube.access import lease_of, needed
from autoscaler.model import CPU_SIGNAL, PodInfo, Signal, WorkloadStatus
from autoscaler.policies.base import Policy, PolicyContext
from autoscaler.ports import CheckResult, Probe
from autoscaler.runtime import live_daemon
from autoscaler.sim.elasticsearch_api import ElasticsearchState
from autoscaler.sim.elasticsearch_api import create_app as es_app
from autoscaler.sim.kubeapi import ServedApp, serve, write_kubeconfig
from autoscaler.sim.kubeapi import create_app as kube_app
from autoscaler.sim.kubestate import KubeState
from autoscaler.sim.model import ClusterModel, Outage, cpu_milli
from autoscaler.sim.prometheus_api import PrometheusState
from autoscaler.sim.prometheus_api import create_app as prometheus_app
from autoscaler.sim.pulsar_admin import Consumer, PulsarState
from autoscaler.sim.pulsar_admin import create_app as pulsar_app
from autoscaler.sim.rbac import Grant, Rule
from autoscaler.sim.traces import Trace

log = structlog.get_logger("tracardi_autoscaler.demo")

DRIVER_SECONDS = 0.2  # real seconds between two driver steps
OUTAGE_AFTER_SECONDS = 60.0  # real seconds into the demo when Elasticsearch goes down
OUTAGE_SECONDS = 45.0  # real seconds it stays down
#: How long a deleted pod terminates, in trace seconds: an API pod finishing its requests, a
#: worker its messages, before the container exits (`kubectl get pods` shows it Terminating).
TERMINATION_TRACE_SECONDS = 20.0
DAEMON_ACCOUNT = "tracardi-autoscaler"  # the ServiceAccount of deploy/, which the daemon runs as


class HealthyPods:
    """The demo's pods have no HTTP server: their app-level check always passes."""

    async def check(self, pod: PodInfo, settings: HttpProbeSettings) -> CheckResult:
        return CheckResult(ok=True)

    async def close(self) -> None:
        return None


class SimulatedProbe:
    """Stands in for Redis or MySQL when none answers on loopback: always up."""

    def __init__(self, name: str) -> None:
        self.name = name

    async def check(self) -> CheckResult:
        return CheckResult(ok=True, reason="simulated")

    async def close(self) -> None:
        return None


def reachable(host: str, port: int, timeout: float = 0.3) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=timeout):
        return True
    return False


@dataclass
class Scaled:
    """One scaled workload: its model, where its signal is published, and its policy.

    The policy, fed the model's true state, tells when the threshold is crossed: the moment
    from which a reaction is timed until the scale request arrives over HTTP. While the daemon
    holds the workload behind its dependency gate (a required dependency down, unknown, or not
    yet trusted again after an outage), a crossing is not a reaction to time: it is timed apart,
    as a scale-up held by the gate, and the reaction is timed from when the gate opens.
    """

    name: str
    model: ClusterModel
    policy: Policy
    minimum: int
    maximum: int
    source: str
    topic: str | None = None
    subscription: str | None = None
    query: str | None = None
    crossed_at: float | None = None
    held_at: float | None = None
    #: When the driver last saw the gate closed (or an outage) while the threshold was crossed.
    closed_at: float | None = None

    def threshold_crossed(self, replicas: int, t: int) -> bool:
        m = self.model
        now = float(t)
        truth = {
            f"{self.source}.backlog": Signal(f"{self.source}.backlog", m.queue, now),
            f"{self.source}.in_rate": Signal(f"{self.source}.in_rate", m.demand(t), now),
            f"{self.source}.value": Signal(f"{self.source}.value", m.demand(t), now),
        }
        status = WorkloadStatus(self.name, m.namespace, replicas, replicas)
        ctx = PolicyContext(status=status, signals=truth, now=now, min_replicas=self.minimum,
                            max_replicas=self.maximum)
        wanted = min(self.maximum, self.policy.recommend(ctx).replicas)
        return wanted > replicas


@dataclass
class DemoCluster:
    """The simulated servers' state plus the models that drive it."""

    namespace: str
    kube: KubeState
    pulsar: PulsarState
    es: ElasticsearchState
    prometheus: PrometheusState
    scaled: list[Scaled]
    fixed: list[str]
    speed: float
    start_offset: int
    started: float = field(default_factory=time.monotonic)
    reactions: list[float] = field(default_factory=list)
    #: Scale-ups held by the daemon's dependency gate: from the first crossing to the request.
    held: list[float] = field(default_factory=list)
    events: deque[str] = field(default_factory=lambda: deque(maxlen=8))

    def trace_time(self) -> float:
        return self.start_offset + (time.monotonic() - self.started) * self.speed

    def step(self, gated: Callable[[str], bool] = lambda _: False) -> None:
        """Play the trace up to now. `gated(workload)`: whether the daemon holds the workload
        behind its dependency gate now."""
        self.kube.reap()  # pods whose termination is over
        self.kube.renew_node()  # the kubelet's heartbeats
        t = self.trace_time()
        es_down = any(o.dependency == "elasticsearch" and o.covers(t)
                      for s in self.scaled for o in s.model.outages)
        if es_down != self.es.unavailable:
            self.es.unavailable = es_down
            self.events.append(f"elasticsearch {'DOWN' if es_down else 'back up'}")
        for s in self.scaled:
            self._sync(s, t, gated(s.name))
        for name in self.fixed:
            for pod in self.kube.workload_pods(self.namespace, name):
                if pod.deleting:
                    continue
                if not pod.ready:
                    self.kube.mark_ready(self.namespace, pod.name, True)
                self.kube.set_cpu_usage(self.namespace, pod.name,
                                        cpu_milli(pod.cpu_request_milli, 0.0))

    def _sync(self, s: Scaled, t: float, gated: bool) -> None:
        model = s.model
        dep = self.kube.deployment(self.namespace, s.name)
        real = time.monotonic()
        if dep.replicas != model.deployment.replicas:
            if dep.replicas > model.deployment.replicas:
                # A scale-up the gate held is timed from when the gate opened: from the last
                # step that saw it closed (at most one step early), the same way whether or not
                # a step saw it open before the request came.
                began = s.closed_at if s.held_at is not None else s.crossed_at
                if began is not None:
                    self.reactions.append(real - began)
                if s.held_at is not None:
                    self.held.append(real - s.held_at)
                s.crossed_at = s.held_at = s.closed_at = None
            self.events.append(f"{s.name}: {model.deployment.replicas} -> {dep.replicas}")
            model.scale(dep.replicas, at=t)
        model.advance(t)
        # In an outage, and until the daemon trusts the dependency again, it rightly holds still.
        frozen = gated or any(o.covers(t) for o in model.outages)
        crossed = s.threshold_crossed(dep.replicas, int(t))
        s.crossed_at = (s.crossed_at or real) if crossed and not frozen else None
        s.held_at = (s.held_at or real) if crossed and (frozen or s.held_at) else None
        s.closed_at = real if crossed and frozen else (s.closed_at if s.held_at else None)
        ready = sum(p.ready for p in model.deployment.pods)
        pods = sorted((p for p in self.kube.workload_pods(self.namespace, s.name)
                       if not p.deleting), key=lambda p: p.created_wall)
        # What metrics-server would report (`kubectl top pods`).
        busy = model.busy_share()
        for i, pod in enumerate(pods):
            want = i < ready
            if pod.ready != want or pod.phase != "Running":
                self.kube.mark_ready(self.namespace, pod.name, want)
            self.kube.set_cpu_usage(self.namespace, pod.name,
                                    cpu_milli(pod.cpu_request_milli, busy if want else 0.0))
        if s.query is not None:
            self.prometheus.set(s.query, model.in_rate())
        if s.topic is not None and s.subscription is not None:
            serving = [p for p in pods[:ready] if p.ip]
            per_pod = model.out_rate() / len(serving) if serving else 0.0
            self.pulsar.set_rate_in(s.topic, model.in_rate())
            self.pulsar.set_subscription(
                s.topic, s.subscription, backlog=int(model.queue), msg_rate_out=model.out_rate(),
                consumers=[Consumer.on_pod(p.name, p.ip, per_pod) for p in serving])


def demo_config(shipped: Path, *, es: str, pulsar: str, prometheus: str, real_redis: bool,
                real_mysql: bool, folder: Path) -> Path:
    """The shipped policies with every URL pointed at the simulated servers (no secrets)."""
    raw: dict[str, Any] = yaml.safe_load(shipped.read_text())
    deps = raw.get("dependencies", {})
    for name, dep in deps.items():
        dep.pop("auth", None)
        kind = dep.get("kind")
        if kind == "elasticsearch":
            dep["url"] = es
        elif kind == "pulsar":
            dep["admin_url"] = pulsar
        elif kind == "redis":
            dep["url"] = "redis://127.0.0.1:6379/0"
        elif kind == "mysql":
            dep["host"] = "127.0.0.1"
            dep["port"] = 3306
        dep["period_seconds"] = min(float(dep.get("period_seconds", 5)), 2.0)
        deps[name] = dep
    for src in raw.get("sources", {}).values():
        src.pop("auth", None)
        if src.get("kind") == "pulsar":
            src["admin_url"] = pulsar
        elif src.get("kind") == "prometheus":
            src["url"] = prometheus
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def build_cluster(loaded: LoadedConfig, trace: Trace, *, speed: float, peak_replicas: int,
                  seed: int) -> DemoCluster:
    namespace = loaded.config.daemon.namespace
    kube = KubeState(clock=time.monotonic, wall=time.time,
                     termination_seconds=TERMINATION_TRACE_SECONDS / speed)
    pulsar = PulsarState()
    prometheus = PrometheusState()
    es = ElasticsearchState()
    peak = max(trace.rates) or 1.0
    start = max(0, trace.busiest_hour_start() - 1200)
    outage_at = start + OUTAGE_AFTER_SECONDS * speed
    outage = (Outage("elasticsearch", outage_at, outage_at + OUTAGE_SECONDS * speed),)
    scaled: list[Scaled] = []
    fixed: list[str] = []
    for i, spec in enumerate(loaded.workloads):
        ref = spec.settings.policies[0]
        source = loaded.config.sources.get(str(ref.params.get("source")))
        if ref.name == "request-rate" and source is not None and source.kind == "prometheus":
            capacity = float(ref.params["capacity_rps"])
            kind, query = "api", source.query
        elif ref.name == "backlog" and source is not None and source.kind == "pulsar":
            capacity = float(ref.params["msgs_per_second"])
            kind, query = "worker", None
        else:
            kube.add_deployment(namespace, spec.deployment, replicas=spec.settings.min)
            fixed.append(spec.deployment)
            continue
        # Each workload gets traffic whose peak it can serve within its max.
        peak_need = min(peak_replicas, 0.7 * spec.settings.max)
        normalized = trace.scaled(peak_need * capacity / peak)
        first = normalized.rates[min(start, len(normalized.rates) - 1)]
        replicas = min(spec.settings.max,
                       max(spec.settings.min, math.ceil(first / capacity * 1.25)))
        model = ClusterModel(trace=normalized, kind=kind, workload=spec.deployment,
                             namespace=namespace, replicas=replicas, capacity=capacity,
                             min_replicas=spec.settings.min, outages=outage, seed=seed + i)
        model.advance(start)
        kube.add_deployment(namespace, spec.deployment, replicas=replicas)
        item = Scaled(spec.deployment, model, spec.policies[0], spec.settings.min,
                      spec.settings.max, str(ref.params["source"]), query=query)
        if source is not None and source.kind == "pulsar":
            item.topic = f"persistent://{source.tenant}/{source.namespace}/{source.topic}"
            item.subscription = source.subscription
            pulsar.add_topic(item.topic, partitions=4 if source.partitioned else 0,
                             subscriptions=(source.subscription,))
        scaled.append(item)
    return DemoCluster(namespace, kube, pulsar, es, prometheus, scaled, fixed, speed, start)


@dataclass
class DemoResult:
    reactions: list[float]
    scale_writes: int
    duration: float
    #: Why the daemon stopped before its time (a task that failed), if it did.
    failure: str | None = None
    #: Scale-ups the dependency gate held (an outage, then until the dependency was trusted).
    held: list[float] = field(default_factory=list)


def daemon_grant(loaded: LoadedConfig) -> Grant:
    """The daemon's ServiceAccount with a Role of the calls its config needs, in its namespace
    (the shipped workloads' one)."""
    namespace = loaded.config.daemon.namespace
    rules = tuple(Rule(frozenset({p.group}), frozenset({p.resource}), frozenset({p.verb}),
                       frozenset({p.name}) if p.name else frozenset())
                  for p in needed(loaded, dry_run=False, lease=lease_of(loaded))
                  if p.namespace == namespace)
    return Grant(Grant.service_account(namespace, DAEMON_ACCOUNT), namespace, DAEMON_ACCOUNT,
                 rules)


async def run_demo(*, shipped: Path, trace: Trace, speed: float, duration: float,
                   metrics_port: int, kubeconfig_out: Path | None, peak_replicas: int,
                   seed: int, show: Any, stop: asyncio.Event | None = None) -> DemoResult:
    """Serve the simulated cluster, run the daemon against it for `duration` real seconds or
    until `stop` is set (Ctrl-C).

    `show(cluster, daemon, info)` is called twice a second (the live view, or plain lines).
    """
    real_redis = reachable("127.0.0.1", 6379)
    real_mysql = reachable("127.0.0.1", 3306)
    with tempfile.TemporaryDirectory(prefix="tracardi-autoscaler-demo-") as tmp:
        folder = Path(tmp)
        shipped_loaded = load_config(shipped)
        cluster = build_cluster(shipped_loaded, trace, speed=speed,
                                peak_replicas=peak_replicas, seed=seed)
        # The daemon runs as its ServiceAccount, bound to a Role of exactly what it needs (as
        # deploy/base/role.yaml is); kubectl, without a token, is the admin.
        token, grant = secrets.token_urlsafe(16), daemon_grant(shipped_loaded)
        servers: list[ServedApp] = [
            await serve(kube_app(cluster.kube, grants={token: grant})),
            await serve(pulsar_app(cluster.pulsar)),
            await serve(es_app(cluster.es)),
            await serve(prometheus_app(cluster.prometheus)),
        ]
        kube_url, pulsar_url, es_url, prom_url = (s.url for s in servers)
        kubeconfig = write_kubeconfig(kubeconfig_out or folder / "kubeconfig", kube_url)
        daemon_kubeconfig = write_kubeconfig(folder / "daemon-kubeconfig", kube_url, token)
        config = demo_config(shipped, es=es_url, pulsar=pulsar_url, prometheus=prom_url,
                             real_redis=real_redis, real_mysql=real_mysql, folder=folder)
        overrides: dict[str, Probe] = {}
        for name, dep in load_config(config).config.dependencies.items():
            if (dep.kind == "redis" and not real_redis) or (dep.kind == "mysql"
                                                            and not real_mysql):
                overrides[name] = SimulatedProbe(name)
        info = {
            "kubeconfig": str(kubeconfig),
            "account": grant.user,
            "metrics": f"http://127.0.0.1:{metrics_port}/metrics",
            # the simulated servers, to look at with curl (the kube API through kubectl)
            "servers": f"pulsar {pulsar_url}   elasticsearch {es_url}   prometheus {prom_url}",
            "config": str(config),
            "redis": "real (127.0.0.1:6379)" if real_redis else "simulated",
            "mysql": "real (127.0.0.1:3306)" if real_mysql else "simulated",
            "speed": speed,
        }
        try:
            async with live_daemon(config, kubeconfig=str(daemon_kubeconfig), dry_run=False,
                                   metrics_host="127.0.0.1", metrics_port=metrics_port,
                                   identity="demo-daemon", probe_overrides=overrides,
                                   pod_prober=HealthyPods()) as daemon:
                result = await _play(cluster, daemon, duration=duration, info=info, show=show,
                                     stop=stop or asyncio.Event())
        finally:
            for server in servers:
                await server.stop()
    return result


async def _play(cluster: DemoCluster, daemon: Daemon, *, duration: float,
                info: Mapping[str, Any], show: Any, stop: asyncio.Event) -> DemoResult:
    def gated(workload: str) -> bool:
        state = daemon.workloads.get(f"{cluster.namespace}/{workload}")
        return state is not None and bool(dependency_reasons(state.spec.settings.requires,
                                                             daemon.store.dependencies))

    async def drive() -> None:
        while True:
            cluster.step(gated)
            await asyncio.sleep(DRIVER_SECONDS)

    async def view() -> None:
        while True:
            show(cluster, daemon, info)
            await asyncio.sleep(0.5)

    started = time.monotonic()
    cluster.started = started
    runner = asyncio.create_task(daemon.run(), name="daemon")
    helpers = [asyncio.create_task(drive(), name="driver"),
               asyncio.create_task(view(), name="view")]
    stopped = asyncio.create_task(stop.wait(), name="stop")
    try:
        await asyncio.wait({runner, stopped}, timeout=duration,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        daemon.stop()
        await runner
        for task in (*helpers, stopped):
            task.cancel()
        await asyncio.gather(*helpers, stopped, return_exceptions=True)
    writes = _scale_writes(daemon)
    return DemoResult(cluster.reactions, writes, time.monotonic() - started, daemon.failure,
                      cluster.held)


def _scale_writes(daemon: Daemon) -> int:
    total = 0
    for metric in daemon.telemetry.registry.collect():
        if metric.name == "tracardi_autoscaler_scale_writes":
            total += int(sum(s.value for s in metric.samples if s.name.endswith("_total")))
    return total



def _rows(cluster: DemoCluster, daemon: Daemon) -> list[tuple[str, ...]]:
    rows: list[tuple[str, ...]] = []
    for key, state in daemon.workloads.items():
        d = state.decision
        status = state.status
        replicas = f"{status.replicas}/{status.ready_replicas}" if status else "-"
        latest = daemon.signals_for(state.spec)  # the pods' CPU is kept per workload
        signals = ", ".join(
            f"{n.split('.', 1)[1]}={v.value:.0f}{'m' if n == CPU_SIGNAL else ''}"
            if (v := latest.get(n)) and v.ok else f"{n.split('.', 1)[1]}=?"
            for n in state.spec.signal_names())
        rows.append((key.split("/", 1)[1], replicas, str(d.desired) if d else "-",
                     d.action.value if d else "-", signals,
                     "; ".join(d.reasons)[:90] if d else ""))
    return rows


def plain_view() -> Any:
    """One line per workload every few seconds, for logs and CI."""
    last = [0.0]

    def show(cluster: DemoCluster, daemon: Daemon, info: Mapping[str, Any]) -> None:
        now = time.monotonic()
        if now - last[0] < 5:
            return
        if not last[0]:
            print(f"kubeconfig {info['kubeconfig']}   redis {info['redis']}   "
                  f"mysql {info['mysql']}   daemon runs as {info['account']}", flush=True)
            print(info["servers"], flush=True)
        last[0] = now
        deps = " ".join(f"{n}={'up' if s.health.value == 'up' else s.health.value}"
                        for n, s in sorted(daemon.store.dependencies.items()))
        print(f"t={cluster.trace_time():.0f}s deps: {deps}", flush=True)
        for row in _rows(cluster, daemon):
            print("  " + " | ".join(row), flush=True)

    return show


def rich_view(console: Any) -> tuple[Any, Any]:
    """A live terminal view (rich): workloads, signals, dependencies, recent scale actions."""
    from rich.live import Live  # noqa: PLC0415 (only the interactive demo needs rich)
    from rich.table import Table  # noqa: PLC0415

    live = Live(console=console, refresh_per_second=4, transient=False)

    def show(cluster: DemoCluster, daemon: Daemon, info: Mapping[str, Any]) -> None:
        table = Table(title=f"tracardi-autoscaler demo  trace t={cluster.trace_time():.0f}s  "
                            f"speed {info['speed']}x", expand=True)
        for col in ("workload", "replicas/ready", "desired", "action", "signals", "reasons"):
            table.add_column(col)
        for row in _rows(cluster, daemon):
            style = "red" if row[3] == "freeze" else ("green" if row[3] == "scale" else "")
            table.add_row(*row, style=style)
        deps = Table(title="dependencies", expand=True)
        deps.add_column("dependency")
        deps.add_column("state")
        deps.add_column("probe")
        for name, state in sorted(daemon.store.dependencies.items()):
            kind = info.get(name, "simulated server")
            deps.add_row(name, state.health.value, f"{kind}  {state.reason}"[:80],
                         style="" if state.health.value == "up" else "red")
        grid = Table.grid(expand=True)
        grid.add_row(table)
        grid.add_row(deps)
        grid.add_row("recent: " + "  |  ".join(cluster.events))
        grid.add_row(f"metrics {info['metrics']}   kubeconfig {info['kubeconfig']}")
        grid.add_row(info["servers"])
        live.update(grid)

    return live, show
