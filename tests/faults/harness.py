"""The fault matrix's world: the real daemon against the simulated servers and real stores.

Each test builds a `World`: the simulated Kubernetes API, Pulsar admin, Elasticsearch and
Prometheus on loopback, the machine's real Redis and a TCP proxy in front of its real MariaDB
(so a test can cut it). Each daemon replica gets its own `Front` to the Kubernetes API: the
front records every write it passes (who wrote, what, the count before and after, the lease
holder at that moment) and can partition its daemon away. The test plays the kubelet.

A test injects one fault, marks its window (`World.window`), lets the daemon run through it,
clears it and checks recovery; `World.violations()` then checks the invariants every fault
shares, from outside the daemon:

- bounds: every replica count the Deployment takes stays within [min, max];
- frozen: no scale and no restart while a required dependency is down (after `GRACE`);
- partial: no scale-down while a signal of the workload is missing, wrong or stale (until
  the fault clears: the next good read may scale down);
- one-writer: every write comes from the replica holding the lease, and two replicas never
  write within one lease duration of each other;
- no-duplicate: every scale write changes the count;
- alive: the daemon's task is still running (checked by `RunningDaemon.alive`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler

from autoscaler.daemon import Daemon
from autoscaler.localport import free_port
from autoscaler.runtime import live_daemon
from autoscaler.sim.elasticsearch_api import ElasticsearchState
from autoscaler.sim.elasticsearch_api import create_app as es_app
from autoscaler.sim.kubeapi import ServedApp, serve, write_kubeconfig
from autoscaler.sim.kubeapi import create_app as kube_app
from autoscaler.sim.kubestate import KubeState, WatchEvent
from autoscaler.sim.prometheus_api import PrometheusState
from autoscaler.sim.prometheus_api import create_app as prom_app
from autoscaler.sim.pulsar_admin import PulsarState
from autoscaler.sim.pulsar_admin import create_app as pulsar_app

NS = "tracardi"
TOPIC = "persistent://tracardi/system/functions"
SUB = "tracardi-function-subscription"
QUERY = 'sum(rate(nginx_ingress_controller_requests{ingress="tracardi-track"}[1m]))'
WORKER = "wk-pl-background"
API = "be-fa-public"
LEASE = "tracardi-autoscaler"
LEASE_SECONDS = 3.0
PROBE_PERIOD = 0.3
POLL = 0.3
#: After a fault starts, how long a write already decided or in flight may still land: one
#: probe or poll period to see it, one write's round trip.
GRACE = PROBE_PERIOD + 0.7
BOUNDS = {WORKER: (1, 8), API: (1, 6)}
REQUIRES = {WORKER: ("elasticsearch", "pulsar", "redis", "mysql"), API: ("elasticsearch",)}

CONFIG = """
daemon:
  namespace: tracardi
  tick_seconds: 1
  debounce_seconds: 0.05
  lease: {{duration_seconds: {lease}, renew_deadline_seconds: 2, retry_period_seconds: 0.3}}
dependencies:
  elasticsearch: {{kind: elasticsearch, url: "{es}", {timing}}}
  pulsar: {{kind: pulsar, admin_url: "{pulsar}", {timing}}}
  redis: {{kind: redis, url: "{redis}", {timing}}}
  mysql: {{kind: mysql, host: 127.0.0.1, port: {mysql_port}, auth: {{username: root}},
          {timing}}}
sources:
  functions: {{kind: pulsar, admin_url: "{pulsar}", tenant: tracardi, namespace: system,
              topic: functions, subscription: {sub}, poll_seconds: {poll},
              timeout_seconds: 0.5}}
  track-requests: {{kind: prometheus, url: "{prom}", query: '{query}', poll_seconds: {poll},
                   timeout_seconds: 0.5}}
workloads:
  {worker}:
    min: {worker_min}
    max: {worker_max}
    requires: [elasticsearch, pulsar, redis, mysql]
    policies: [{{name: backlog, source: functions, msgs_per_second: 10, drain_seconds: 10,
                learn: false, target_utilization: 1.0, use_in_rate: false}}]
    behavior:
      scale_up: {{policies: [{{type: Pods, value: 10, period_seconds: 1}}]}}
      scale_down: {{stabilization_window_seconds: 0,
                   policies: [{{type: Percent, value: 100, period_seconds: 1}}]}}
    healing: {{startup_grace_seconds: 0, not_ready_seconds: 1, min_available: 1,
              backoff_seconds: 0, max_restarts: 20, window_seconds: 60}}
  {api}:
    min: {api_min}
    max: {api_max}
    requires: [elasticsearch]
    policies: [{{name: request-rate, source: track-requests, capacity_rps: 100,
                target_utilization: 1.0, startup_seconds: 0, burst_seconds: 0}}]
    behavior:
      scale_up: {{policies: [{{type: Pods, value: 10, period_seconds: 1}}]}}
      scale_down: {{stabilization_window_seconds: 0,
                   policies: [{{type: Percent, value: 100, period_seconds: 1}}]}}
    healing: {{enabled: false}}
"""


async def eventually(check: Callable[[], object], *, what: str, within: float = 45.0) -> None:
    """`check` holds within `within` seconds: generous, because the fault tests run several
    daemons and servers on one loop."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {within}s: {what}")


async def steadily(check: Callable[[], bool], *, what: str, during: float) -> None:
    """`check` holds at every look for `during` seconds."""
    deadline = time.monotonic() + during
    while time.monotonic() < deadline:
        assert check(), f"did not hold for {during}s: {what}"
        await asyncio.sleep(0.05)


# ---------------------------------------------------------------------------------------------
# What the world saw.


@dataclass(frozen=True, slots=True)
class Write:
    t: float
    writer: str
    kind: str  # scale | evict | delete
    name: str  # the Deployment (scale) or the pod's Deployment (evict, delete)
    old: int | None
    new: int | None
    status: int
    holder: str | None


@dataclass(frozen=True, slots=True)
class Attempt:
    """Any write request, whatever its answer (a fault's own answer included)."""

    t: float
    writer: str
    kind: str
    name: str
    status: int


@dataclass(slots=True)
class Window:
    invariant: str  # frozen | partial
    workloads: tuple[str, ...]
    label: str
    start: float
    end: float | None = None


@dataclass(frozen=True, slots=True)
class Violation:
    t: float
    invariant: str
    detail: str

    def __str__(self) -> str:
        return f"{self.invariant} at t={self.t:.2f}s: {self.detail}"


class Front:
    """One daemon's own way into the Kubernetes API: it records the writes it passes and can
    be partitioned (every request hangs until the client gives up, as a lost route does)."""

    def __init__(self, world: World, identity: str) -> None:
        self.world = world
        self.identity = identity
        self.partitioned = False
        self.served: ServedApp | None = None

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        if self.partitioned:
            await asyncio.sleep(3600)
        kind, name = _write_target(request)
        if kind is None:
            return await handler(request)
        state = self.world.kube
        deployment = name if kind == "scale" else _owner(state, name)
        old = _replicas(state, deployment) if kind == "scale" else None
        holder = _holder(state)
        response = await handler(request)
        self.world.attempts.append(Attempt(self.world.now(), self.identity, kind,
                                           deployment or name, response.status))
        if response.status < 300:
            new = _replicas(state, deployment) if kind == "scale" else None
            self.world.writes.append(Write(self.world.now(), self.identity, kind,
                                           deployment or name, old, new, response.status,
                                           holder))
        return response

    @property
    def url(self) -> str:
        assert self.served is not None
        return self.served.url


def _write_target(request: web.Request) -> tuple[str | None, str]:
    parts = request.path.strip("/").split("/")
    if request.method in ("PUT", "PATCH") and parts[-1] == "scale" and "deployments" in parts:
        return "scale", parts[-2]
    if request.method == "POST" and parts[-1] == "eviction":
        return "evict", parts[-2]
    if request.method == "DELETE" and len(parts) >= 2 and parts[-2] == "pods":
        return "delete", parts[-1]
    return None, ""


def _owner(state: KubeState, pod: str) -> str | None:
    with contextlib.suppress(Exception):
        return state.pod(NS, pod).owner
    return None


def _replicas(state: KubeState, deployment: str | None) -> int | None:
    if deployment is None:
        return None
    with contextlib.suppress(Exception):
        return state.deployment(NS, deployment).replicas
    return None


def _holder(state: KubeState) -> str | None:
    with contextlib.suppress(Exception):
        return state.get_lease(NS, LEASE).spec.holder
    return None


# ---------------------------------------------------------------------------------------------
# Real stores: a private Redis (stoppable) and a cuttable way to the machine's MariaDB.


class RedisServer:
    """A private redis-server on a free port: `pause()` hangs it (SIGSTOP), `stop()` kills it
    (connections refused), `start()` brings it back on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            "redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        for _ in range(100):
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", self.port)
                writer.close()
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def pause(self, paused: bool) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGSTOP if paused else signal.SIGCONT)

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.kill()
            await self.proc.wait()


class TcpProxy:
    """Loopback TCP proxy to a real server; `cut()` resets every connection and refuses new
    ones until `restore()`."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.down = False
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.down:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}

    def cut(self) -> None:
        self.down = True
        for w in list(self._writers):
            w.transport.abort()

    def restore(self) -> None:
        self.down = False

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()


# ---------------------------------------------------------------------------------------------
# The daemon under test, in this loop or as a process.


@dataclass
class RunningDaemon:
    identity: str
    daemon: Daemon
    task: asyncio.Task[None]
    front: Front
    stack: contextlib.AsyncExitStack

    def metrics(self) -> str:
        return self.daemon.telemetry.render().decode()

    def metric(self, name: str, **labels: str) -> float:
        """The sum of `tracardi_autoscaler_<name>` samples whose labels include `labels`."""
        return metric_value(self.metrics(), name, **labels)

    def alive(self) -> bool:
        return not self.task.done()

    async def stop(self) -> None:
        if not self.task.done():
            self.daemon.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(self.task, 20)
        await self.stack.aclose()


def metric_value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    full = f"tracardi_autoscaler_{name}"
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(full):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, rest = head.partition("{")
        if metric not in (full, full + "_total"):
            continue
        if all(f'{k}="{v}"' in rest for k, v in labels.items()):
            total += float(value)
    return total


@dataclass
class DaemonProcess:
    identity: str
    proc: asyncio.subprocess.Process
    port: int
    front: Front
    log: IO[bytes]

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as s, s.get(
                f"http://127.0.0.1:{self.port}/metrics") as r:
            return await r.text()

    async def ready(self) -> bool:
        try:
            async with aiohttp.ClientSession() as s, s.get(
                    f"http://127.0.0.1:{self.port}/readyz") as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False


# ---------------------------------------------------------------------------------------------
# The world.


@dataclass
class World:
    tmp: Path
    kube: KubeState
    pulsar: PulsarState
    es: ElasticsearchState
    prom: PrometheusState
    redis_url: str
    mysql: TcpProxy
    servers: dict[str, ServedApp] = field(default_factory=dict)
    fronts: dict[str, Front] = field(default_factory=dict)
    writes: list[Write] = field(default_factory=list)
    attempts: list[Attempt] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    replicas_seen: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    windows: list[Window] = field(default_factory=list)
    sick: set[str] = field(default_factory=set)
    daemons: list[RunningDaemon] = field(default_factory=list)
    processes: list[DaemonProcess] = field(default_factory=list)
    t0: float = field(default_factory=time.monotonic)

    def now(self) -> float:
        return time.monotonic() - self.t0

    # -- config ------------------------------------------------------------------------------

    def config_text(self, **overrides: Any) -> str:
        values: dict[str, Any] = {
            "lease": LEASE_SECONDS, "es": self.servers["es"].url,
            "pulsar": self.servers["pulsar"].url, "prom": self.servers["prom"].url,
            "redis": self.redis_url, "mysql_port": self.mysql.port, "sub": SUB, "poll": POLL,
            "query": QUERY, "worker": WORKER, "api": API,
            "worker_min": BOUNDS[WORKER][0], "worker_max": BOUNDS[WORKER][1],
            "api_min": BOUNDS[API][0], "api_max": BOUNDS[API][1],
            "timing": (f"period_seconds: {PROBE_PERIOD}, timeout_seconds: 0.5, "
                       "failure_threshold: 2, success_threshold: 2"),
        }
        values.update(overrides)
        return CONFIG.format(**values)

    def write_config(self, name: str = "config.yaml", **overrides: Any) -> Path:
        path = self.tmp / name
        path.write_text(self.config_text(**overrides))
        return path

    # -- the cluster -------------------------------------------------------------------------

    def replicas(self, workload: str = WORKER) -> int:
        return self.kube.deployment(NS, workload).replicas

    def backlog(self, messages: int) -> None:
        self.pulsar.set_subscription(TOPIC, SUB, backlog=messages, msg_rate_out=0.0)

    def rate(self, rps: float | None) -> None:
        self.prom.set(QUERY, rps)

    def scale_writes(self, writer: str | None = None) -> list[Write]:
        return [w for w in self.writes
                if w.kind == "scale" and (writer is None or w.writer == writer)]

    def restarts(self) -> list[Write]:
        return [w for w in self.writes if w.kind in ("evict", "delete")]

    def events(self, reason: str) -> list[str]:
        return [e.message for e in self.kube.events(NS) if e.reason == reason]

    async def front(self, identity: str) -> Front:
        front = Front(self, identity)
        front.served = await serve(kube_app(self.kube, middlewares=[front.middleware]))
        self.fronts[identity] = front
        return front

    # -- daemons -----------------------------------------------------------------------------

    async def start(self, identity: str = "a", *, config: Path | None = None,
                    leader: bool = True) -> RunningDaemon:
        """The daemon in this loop (`live_daemon`, as `run` builds it), on its own front."""
        front = await self.front(identity)
        kubeconfig = write_kubeconfig(self.tmp / f"kubeconfig-{identity}", front.url)
        stack = contextlib.AsyncExitStack()
        daemon = await stack.enter_async_context(live_daemon(
            config or self.write_config(), kubeconfig=str(kubeconfig), dry_run=False,
            metrics_host="127.0.0.1", metrics_port=free_port(), identity=identity))
        running = RunningDaemon(identity, daemon, asyncio.create_task(daemon.run()), front,
                                stack)
        self.daemons.append(running)
        if leader:
            await eventually(lambda: _holder(self.kube) == identity,
                             what=f"{identity} holds the lease")
        return running

    async def spawn(self, identity: str, *, config: Path | None = None) -> DaemonProcess:
        """The daemon as a process (`tracardi-autoscaler run`), on its own front."""
        front = await self.front(identity)
        kubeconfig = write_kubeconfig(self.tmp / f"kubeconfig-{identity}", front.url)
        port = free_port()
        log = (self.tmp / f"{identity}.log").open("ab")
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "autoscaler.cli", "run",
            "--config", str(config or self.write_config()), "--kubeconfig", str(kubeconfig),
            "--metrics-host", "127.0.0.1", "--metrics-port", str(port), "--identity", identity,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=log, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        process = DaemonProcess(identity, proc, port, front, log)
        self.processes.append(process)
        await eventually(process.ready, what=f"{identity} ready", within=30)
        return process

    # -- fault windows and invariants --------------------------------------------------------

    @contextlib.contextmanager
    def window(self, invariant: str, label: str, *workloads: str) -> Iterator[Window]:
        """Mark a fault's window: `frozen` (a required dependency is down) or `partial` (a
        signal is missing, wrong or stale)."""
        win = Window(invariant, workloads or (WORKER, API), label, self.now())
        self.windows.append(win)
        try:
            yield win
        finally:
            win.end = self.now()

    def violations(self) -> list[Violation]:
        out: list[Violation] = []
        for name, seen in self.replicas_seen.items():
            lo, hi = BOUNDS.get(name, (0, 10_000))
            out += [Violation(t, "bounds", f"{name} at {n} outside [{lo}, {hi}]")
                    for t, n in seen if not lo <= n <= hi]
        for w in self.writes:
            windows = [win for win in self.windows if w.name in win.workloads]
            for win in windows:
                end = win.end if win.end is not None else float("inf")
                if win.invariant == "frozen" and win.start + GRACE < w.t <= end:
                    out.append(Violation(w.t, "frozen", f"{w.kind} of {w.name} by {w.writer} "
                                                        f"during {win.label}"))
                if (win.invariant == "partial" and w.kind == "scale" and w.old is not None
                        and w.new is not None and w.new < w.old
                        and win.start < w.t <= end):
                    out.append(Violation(w.t, "partial", f"scale-down {w.old}->{w.new} of "
                                                         f"{w.name} during {win.label}"))
            if w.kind == "scale" and w.old == w.new:
                out.append(Violation(w.t, "no-duplicate",
                                     f"{w.writer} wrote {w.name} to {w.new} it already had"))
            if w.holder != w.writer:
                out.append(Violation(w.t, "one-writer", f"{w.kind} of {w.name} by {w.writer} "
                                                        f"while {w.holder} held the lease"))
        for prev, cur in zip(self.writes, self.writes[1:], strict=False):
            if prev.writer != cur.writer and cur.t - prev.t < LEASE_SECONDS:
                out.append(Violation(cur.t, "one-writer",
                                     f"{prev.writer} and {cur.writer} wrote "
                                     f"{cur.t - prev.t:.2f}s apart"))
        return out


async def kubelet(world: World) -> None:
    """Mark new pods ready (except those the test keeps sick)."""
    while True:
        for pod in world.kube.pods(NS):
            if not pod.ready and pod.name not in world.sick and pod.owner not in world.sick:
                world.kube.mark_ready(NS, pod.name, True)
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def world(tmp: Path, *, redis_url: str = "redis://127.0.0.1:6379/0",
                worker_replicas: int = 1, api_replicas: int = 1) -> AsyncIterator[World]:
    kube = KubeState(clock=time.monotonic, wall=time.time)
    pulsar = PulsarState()
    pulsar.add_topic(TOPIC, partitions=2, subscriptions=(SUB,))
    es = ElasticsearchState()
    prom = PrometheusState()
    prom.set(QUERY, 50.0)
    mysql = TcpProxy(3306)
    await mysql.start()
    w = World(tmp, kube, pulsar, es, prom, redis_url, mysql)
    w.servers = {"pulsar": await serve(pulsar_app(pulsar)), "es": await serve(es_app(es)),
                 "prom": await serve(prom_app(prom))}
    for name, replicas in ((WORKER, worker_replicas), (API, api_replicas)):
        kube.add_deployment(NS, name, replicas=replicas)
        w.replicas_seen[name] = [(w.now(), replicas)]

    def on_deployment(event: WatchEvent) -> None:
        name = event.object["metadata"]["name"]
        replicas = event.object["spec"]["replicas"]
        seen = w.replicas_seen.setdefault(name, [])
        if not seen or seen[-1][1] != replicas:
            seen.append((w.now(), replicas))

    kube.subscribe("deployments", NS, on_deployment)
    task = asyncio.create_task(kubelet(w))
    try:
        yield w
    finally:
        task.cancel()
        for d in w.daemons:
            with contextlib.suppress(Exception):
                await d.stop()
        for p in w.processes:
            if p.proc.returncode is None:
                p.proc.kill()
                await p.proc.wait()
            p.log.close()
        for front in w.fronts.values():
            front.partitioned = False
            if front.served is not None:
                await front.served.stop()
        for server in w.servers.values():
            await server.stop()
        await mysql.stop()


def dump(world: World) -> str:
    """What a failed test prints: the writes and replica counts the world saw."""
    return json.dumps({"writes": [dataclasses.asdict(w) for w in world.writes],
                       "replicas": world.replicas_seen}, default=str, indent=1)


def holds(world: World) -> None:
    """Every invariant held, and every daemon of this loop is still running."""
    bad = world.violations()
    assert not bad, "\n".join(map(str, bad)) + "\n" + dump(world)
    dead = [d.identity for d in world.daemons if not d.alive()]
    assert not dead, f"daemon task ended: {dead}"


def logged(world: World, event: str, **fields: Any) -> list[dict[str, Any]]:
    """The daemon's log lines named `event` whose fields include `fields`."""
    return [e for e in world.logs if e.get("event") == event
            and all(e.get(k) == v for k, v in fields.items())]
