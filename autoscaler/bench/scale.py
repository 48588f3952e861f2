"""`tracardi-autoscaler bench --scale N[,N...]`: how the daemon's cost grows with its work.

For each N the bench generates N workloads (every 4th an API scaled by request rate on its own
Prometheus query, the rest workers scaled by the backlog of their own 10-partition Pulsar topic),
serves them from the simulated Kubernetes API, Pulsar admin API and Prometheus over real loopback
HTTP in this process, writes a config and a kubeconfig, and runs the real daemon
(`tracardi-autoscaler run`: `runtime.live_daemon`, leader election on) in a separate process in
real time for a fixed interval, so its CPU time (/proc/<pid>/stat), peak RSS (VmHWM) and TCP
connections (/proc/<pid>/net/tcp matched by socket inode from /proc/<pid>/fd) are its own.

An aiohttp middleware on the simulated servers counts Kubernetes requests by verb and source
reads; the daemon's own /metrics gives evaluation and reaction times (quantiles estimated from
the histogram buckets, counted from the end of start-up, a few seconds before the interval whose
CPU time and requests are counted). The interval starts once the daemon's start-up is over (its
dependencies are up and it has made a pass over all workloads since; `startup_s` reports how
long that took), as soon as a round of source polls has ended, so that each round falls wholly
inside or outside the interval. Everything is counted until the end of the interval
and nothing after it. The interval has three phases: a warm-up, a load phase in which a few
backlogs and request rates are raised every few seconds (so there is something to react to),
and a final idle window in which no signal changes: any scale write in it is counted as
`kube_writes_while_idle`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from autoscaler.localport import free_port
from autoscaler.sim.kubeapi import ServedApp, serve, write_kubeconfig
from autoscaler.sim.kubeapi import create_app as kube_app
from autoscaler.sim.kubestate import KubeState
from autoscaler.sim.prometheus_api import PrometheusState
from autoscaler.sim.prometheus_api import create_app as prometheus_app
from autoscaler.sim.pulsar_admin import PulsarState
from autoscaler.sim.pulsar_admin import create_app as pulsar_app

NAMESPACE = "tracardi"
TENANT = "tracardi"
PULSAR_NAMESPACE = "bench"
SUBSCRIPTION = "bench-subscription"
PARTITIONS = 10
API_CAPACITY_RPS = 100.0
API_BASE_RPS = 100.0  # 2 replicas at 80 % utilization
API_RAISED_RPS = 300.0  # 4 replicas: one step of the default scale-up limits
WORKER_MSGS_PER_SECOND = 50.0
WORKER_DRAIN_SECONDS = 30.0
WORKER_RAISED_BACKLOG = 4000  # ~3 replicas
DRIVER_SECONDS = 1.0
RAISE_EVERY_SECONDS = 3.0
WARMUP_FRACTION = 0.15
LOAD_END_FRACTION = 0.5
IDLE_START_FRACTION = 0.7
READY_TIMEOUT_SECONDS = 60.0
#: Start-up: the informers' first lists, the first reads, the dependencies' first verdicts and a
#: pass over all workloads after them.
STARTUP_TIMEOUT_SECONDS = 120.0
#: The daemon's tick: a pass over all workloads every 5 s, so that a 60 s interval holds a
#: dozen passes to take quantiles from (at the default 15 s it held four or five).
TICK_SECONDS = 5.0
IDLE_GAP_SECONDS = 12.0
WORKER_POLL_SECONDS = 2.0
API_POLL_SECONDS = 5.0
#: The interval starts once a round of polls is followed by this long without a source request.
QUIET_SECONDS = WORKER_POLL_SECONDS / 8
QUIET_WAIT_SECONDS = 10.0

KEYS = ("workloads", "eval_p50_ms", "eval_p99_ms", "reaction_p50_s", "reaction_p99_s",
        "cpu_cores", "rss_mb", "connections", "kube_requests_per_min",
        "kube_writes_while_idle", "source_requests_per_min")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def parse_scale(text: str) -> list[int]:
    """`10,100,1000` -> [10, 100, 1000]; raises ValueError on anything else."""
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        values = []
    if not values or any(v < 1 for v in values):
        raise ValueError(f"--scale wants positive integers separated by commas, not {text!r}")
    return values


# --------------------------------------------------------------------------- workloads

@dataclass(frozen=True, slots=True)
class Generated:
    name: str
    api: bool

    @property
    def topic(self) -> str:
        return f"persistent://{TENANT}/{PULSAR_NAMESPACE}/{self.name}"

    @property
    def query(self) -> str:
        return f'sum(rate(nginx_ingress_controller_requests{{ingress="{self.name}"}}[1m]))'


def generate(n: int) -> list[Generated]:
    """Every 4th workload an API, the rest workers."""
    return [Generated(f"api-{i:04d}" if i % 4 == 3 else f"wk-{i:04d}", api=i % 4 == 3)
            for i in range(n)]


def bench_config(workloads: Sequence[Generated], *, pulsar: str, prometheus: str) -> dict[str, Any]:
    sources: dict[str, Any] = {}
    config_workloads: dict[str, Any] = {}
    for w in workloads:
        if w.api:
            sources[w.name] = {"kind": "prometheus", "url": prometheus, "query": w.query,
                               "poll_seconds": API_POLL_SECONDS}
            # A short trend window and no burst memory: once a raised rate has held for
            # ~10 s the recommendation is settled, so the idle window really is idle.
            policy: dict[str, Any] = {"name": "request-rate", "source": w.name,
                                      "capacity_rps": API_CAPACITY_RPS, "trend_seconds": 10,
                                      "burst_seconds": 0}
            config_workloads[w.name] = {"min": 2, "max": 20, "requires": ["pulsar"],
                                        "policies": [policy]}
        else:
            sources[w.name] = {"kind": "pulsar", "admin_url": pulsar, "tenant": TENANT,
                               "namespace": PULSAR_NAMESPACE, "topic": w.name,
                               "subscription": SUBSCRIPTION, "partitioned": True,
                               "poll_seconds": WORKER_POLL_SECONDS}
            policy = {"name": "backlog", "source": w.name,
                      "msgs_per_second": WORKER_MSGS_PER_SECOND,
                      "drain_seconds": WORKER_DRAIN_SECONDS}
            config_workloads[w.name] = {"min": 1, "max": 20, "requires": ["pulsar"],
                                        "policies": [policy]}
    return {
        "daemon": {"namespace": NAMESPACE, "tick_seconds": TICK_SECONDS,
                   "debounce_seconds": 0.1},
        "dependencies": {"pulsar": {"kind": "pulsar", "admin_url": pulsar,
                                    "period_seconds": 2}},
        "sources": sources,
        "workloads": config_workloads,
    }


# --------------------------------------------------------------------------- counting

@dataclass
class Counts:
    """Requests seen by the simulated servers, with the time of each scale write."""

    kube: Counter[str] = field(default_factory=Counter)
    source: int = 0
    scale_writes: list[tuple[float, str]] = field(default_factory=list)
    last_source_at: float = 0.0

    def reset(self) -> None:
        self.kube.clear()
        self.source = 0
        self.scale_writes.clear()


def kube_verb(method: str, path: str, query: dict[str, str] | Any) -> str:
    """The Kubernetes verb of a request: get, list, watch, create, update, patch, delete."""
    if method == "GET":
        if str(query.get("watch", "")).lower() in {"true", "1"}:
            return "watch"
        parts = [p for p in path.split("/") if p]
        rest = parts[2:] if parts[:1] == ["api"] else parts[3:]
        if rest[:1] == ["namespaces"] and len(rest) >= 2:
            rest = rest[2:]
        return "list" if len(rest) <= 1 else "get"
    return {"POST": "create", "PUT": "update", "PATCH": "patch",
            "DELETE": "delete"}.get(method, method.lower())


def kube_counter(counts: Counts) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        counts.kube[kube_verb(request.method, request.path, request.query)] += 1
        if request.method == "PUT" and request.path.endswith("/scale"):
            counts.scale_writes.append((time.monotonic(), request.path.split("/")[-2]))
        return await handler(request)
    return middleware


def source_counter(counts: Counts) -> Any:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.endswith("/stats") or request.path.endswith("/partitioned-stats") \
                or request.path.endswith("/api/v1/query"):
            counts.source += 1
            counts.last_source_at = time.monotonic()
        return await handler(request)
    return middleware


# --------------------------------------------------------------------------- the process

def cpu_seconds(pid: int) -> float:
    """utime + stime of `pid` from /proc/<pid>/stat."""
    text = Path(f"/proc/{pid}/stat").read_text()
    fields = text[text.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def tcp_connections(pid: int) -> int:
    """Established TCP sockets the process holds (its fds matched to /proc/<pid>/net/tcp*)."""
    inodes: set[str] = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    count = 0
    for table in ("tcp", "tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
                cols = line.split()
                if len(cols) > 9 and cols[3] == "01" and cols[9] in inodes:
                    count += 1
    return count


# --------------------------------------------------------------------------- metrics

def histogram(text: str, name: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) buckets of histogram `name`, summed over labels."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == name + "_bucket":
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + float(sample.value)
    return sorted(buckets.items())


def since(text: str, before: str, name: str) -> list[tuple[float, float]]:
    """The buckets of histogram `name` in `text`, less those already counted in `before`."""
    earlier = dict(histogram(before, name))
    return [(le, count - earlier.get(le, 0.0)) for le, count in histogram(text, name)]


def quantile(buckets: Sequence[tuple[float, float]], q: float) -> float | None:
    """Prometheus' histogram_quantile: linear interpolation inside the bucket."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, count in buckets:
        if count >= rank:
            if math.isinf(upper):
                return lower
            if count == below:
                return upper
            return lower + (upper - lower) * (rank - below) / (count - below)
        lower, below = upper, count
    return lower


def exact_quantile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def change_to_write(raised_at: dict[str, float],
                    writes: Sequence[tuple[float, str]]) -> list[float]:
    """Per raised workload: seconds from the raise to its first scale write after it."""
    out: list[float] = []
    for name, at in raised_at.items():
        after = [t for t, w in writes if w == name and t >= at]
        if after:
            out.append(min(after) - at)
    return out


# --------------------------------------------------------------------------- one run

@dataclass
class Cluster:
    kube: KubeState
    pulsar: PulsarState
    prometheus: PrometheusState
    workloads: list[Generated]
    raised_at: dict[str, float] = field(default_factory=dict)

    def ready_pods(self) -> None:
        """What the kubelet would do: every pod becomes ready (with an IP) within a second."""
        for pod in self.kube.pods(NAMESPACE):
            if not pod.ready and not getattr(pod, "deleting", False):
                self.kube.mark_ready(NAMESPACE, pod.name, True)

    def raise_load(self, w: Generated) -> None:
        self.raised_at[w.name] = time.monotonic()
        if w.api:
            self.prometheus.set(w.query, API_RAISED_RPS)
        else:
            self.pulsar.set_subscription(w.topic, SUBSCRIPTION, backlog=WORKER_RAISED_BACKLOG)


def build(workloads: list[Generated]) -> Cluster:
    kube = KubeState(clock=time.monotonic, wall=time.time)
    pulsar = PulsarState()
    prometheus = PrometheusState()
    for w in workloads:
        kube.add_deployment(NAMESPACE, w.name, replicas=2 if w.api else 1)
        if w.api:
            prometheus.set(w.query, API_BASE_RPS)
        else:
            pulsar.add_topic(w.topic, partitions=PARTITIONS, subscriptions=(SUBSCRIPTION,))
            pulsar.set_rate_in(w.topic, 0.0)
            pulsar.set_subscription(w.topic, SUBSCRIPTION, backlog=0, msg_rate_out=0.0)
    cluster = Cluster(kube, pulsar, prometheus, workloads)
    cluster.ready_pods()
    return cluster


async def _wait_ready(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as session:
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the daemon exited with {proc.returncode} before it was ready")
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(url) as reply:
                    if reply.status == 200:
                        return
            await asyncio.sleep(0.2)


def _spawn(command: list[str]) -> subprocess.Popen[bytes]:
    """The daemon in its own process, its logs discarded (WARNING and up only anyway)."""
    return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


async def _scrape(url: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(url) as reply:
        return await reply.text()


def daemon_command(config: Path, kubeconfig: Path, metrics_port: int) -> list[str]:
    return [sys.executable, "-c", "import sys; from autoscaler.cli import main; sys.exit(main())",
            "run", "--config", str(config), "--kubeconfig", str(kubeconfig),
            "--metrics-host", "127.0.0.1", "--metrics-port", str(metrics_port),
            "--identity", "scale-bench", "--log-level", "WARNING"]


async def run_one(n: int, *, seconds: float, log: Callable[[str], None] = lambda _: None,
                  ) -> dict[str, Any]:
    """Serve N generated workloads, run the daemon against them for `seconds`; one record."""
    workloads = generate(n)
    cluster = build(workloads)
    counts = Counts()
    kube = kube_app(cluster.kube)
    kube.middlewares.append(kube_counter(counts))
    pulsar = pulsar_app(cluster.pulsar)
    pulsar.middlewares.append(source_counter(counts))
    prometheus = prometheus_app(cluster.prometheus)
    prometheus.middlewares.append(source_counter(counts))
    servers: list[ServedApp] = [await serve(kube), await serve(pulsar), await serve(prometheus)]
    kube_url, pulsar_url, prom_url = (s.url for s in servers)
    proc: subprocess.Popen[bytes] | None = None
    try:
        with tempfile.TemporaryDirectory(prefix="tracardi-autoscaler-scale-") as tmp:
            folder = Path(tmp)
            kubeconfig = write_kubeconfig(folder / "kubeconfig", kube_url, namespace=NAMESPACE)
            config = folder / "config.yaml"
            config.write_text(yaml.safe_dump(
                bench_config(workloads, pulsar=pulsar_url, prometheus=prom_url),
                sort_keys=False))
            port = free_port()
            spawned = time.monotonic()
            proc = _spawn(daemon_command(config, kubeconfig, port))
            driver = asyncio.create_task(_drive(cluster))
            try:
                try:
                    async with asyncio.timeout(READY_TIMEOUT_SECONDS):
                        await _wait_ready(f"http://127.0.0.1:{port}/readyz", proc)
                except TimeoutError:
                    raise RuntimeError(f"the daemon was not ready within "
                                       f"{READY_TIMEOUT_SECONDS:g}s") from None
                metrics = f"http://127.0.0.1:{port}/metrics"
                try:
                    async with asyncio.timeout(STARTUP_TIMEOUT_SECONDS):
                        before = await _started(metrics, proc)
                except TimeoutError:
                    raise RuntimeError(f"the daemon's dependencies were not up and followed by "
                                       f"a pass over all workloads within "
                                       f"{STARTUP_TIMEOUT_SECONDS:g}s") from None
                startup = time.monotonic() - spawned
                # The polls run in step, so the requests come in rounds (at N=1000 a round
                # takes half a second to arrive). An interval whose edges cut a round counts
                # part of it twice or not at all; one that starts in the quiet between rounds
                # (and so ends in it, when the interval is a whole number of poll periods, as
                # the default 60 s is) counts each once. The histograms count from the end of
                # start-up, a moment earlier: reading the metrics again here would take long
                # enough at N=1000 (half a second) for the next round to begin.
                await _quiet(counts, QUIET_SECONDS,
                             round_size=sum(not w.api for w in workloads))
                record = await _measure(n, cluster, counts, proc, seconds=seconds,
                                        metrics=metrics, before=before, log=log)
                record["startup_s"] = round(startup, 1)
            finally:
                driver.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await driver
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                await asyncio.to_thread(proc.wait, 20)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait)
        for server in servers:
            await server.stop()
    return record


async def _drive(cluster: Cluster) -> None:
    while True:
        cluster.ready_pods()
        await asyncio.sleep(DRIVER_SECONDS)


def started_up(text: str) -> tuple[bool, float]:
    """(every dependency is up, passes over all workloads so far) from the daemon's metrics."""
    up: list[float] = []
    passes = 0.0
    for family in text_string_to_metric_families(text):
        if family.name == "tracardi_autoscaler_dependency_up":
            up.extend(sample.value for sample in family.samples)
        elif family.name == "tracardi_autoscaler_evaluation_pass_seconds":
            passes = sum(s.value for s in family.samples
                         if s.name == "tracardi_autoscaler_evaluation_pass_seconds_count")
    return bool(up) and all(v == 1 for v in up), passes


async def _started(metrics: str, proc: subprocess.Popen[bytes]) -> str:
    """Wait for the end of the daemon's start-up: its dependencies up, then one more pass over
    all workloads. Returns the metrics text at that moment."""
    passes_when_up: float | None = None
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode} during start-up")
        text = await _scrape(metrics)
        up, passes = started_up(text)
        if up and passes_when_up is None:
            passes_when_up = passes
        elif up and passes_when_up is not None and passes > passes_when_up:
            return text
        await asyncio.sleep(1.0)


async def _quiet(counts: Counts, seconds: float, *, round_size: int) -> None:
    """Until a round of source requests (at least `round_size` of them) has ended: no request
    for `seconds` after it (at most `QUIET_WAIT_SECONDS`). The moment lies early in the quiet
    between two rounds."""
    give_up = time.monotonic() + QUIET_WAIT_SECONDS
    first = counts.source
    while True:
        now = time.monotonic()
        ended = (counts.source - first >= round_size
                 and now - counts.last_source_at >= seconds)
        if ended or now >= give_up:
            return
        await asyncio.sleep(0.02)


async def _measure(n: int, cluster: Cluster, counts: Counts, proc: subprocess.Popen[bytes], *,
                   seconds: float, metrics: str, before: str,
                   log: Callable[[str], None]) -> dict[str, Any]:
    pid = proc.pid
    # Like the CPU time and the request counts, the daemon's histograms count from here.
    counts.reset()
    started = time.monotonic()
    cpu_start = cpu_seconds(pid)
    per_raise = max(1, math.ceil(n / 100))
    pending = list(cluster.workloads)
    next_raise = started + WARMUP_FRACTION * seconds
    load_end = started + LOAD_END_FRACTION * seconds
    # The last raise needs a source poll (5 s at most) and an evaluation before its write.
    idle_start = min(started + seconds,
                     max(started + IDLE_START_FRACTION * seconds, load_end + IDLE_GAP_SECONDS))
    end = started + seconds
    connections = 0
    raised = 0
    while (now := time.monotonic()) < end:
        if proc.poll() is not None:
            raise RuntimeError(f"the daemon exited with {proc.returncode} during the run")
        if next_raise <= now < load_end:
            for w in pending[:per_raise]:
                cluster.raise_load(w)
            raised += len(pending[:per_raise])
            del pending[:per_raise]
            next_raise = now + min(RAISE_EVERY_SECONDS, max(0.5, seconds / 20))
        connections = max(connections, tcp_connections(pid))
        await asyncio.sleep(min(0.25, max(0.0, end - now)))
    elapsed = time.monotonic() - started
    cpu = cpu_seconds(pid) - cpu_start
    # Taken now: the requests made while the daemon renders its metrics are not in `elapsed`.
    kube_requests, source_requests = Counter(counts.kube), counts.source
    scale_writes = list(counts.scale_writes)
    text = await _scrape(metrics)
    rss = peak_rss_mb(pid)
    minutes = elapsed / 60.0
    per_workload = since(text, before, "tracardi_autoscaler_evaluation_seconds")
    per_pass = since(text, before, "tracardi_autoscaler_evaluation_pass_seconds")
    reaction = since(text, before, "tracardi_autoscaler_reaction_seconds")

    def eval_ms(q: float) -> float | None:
        # A measured pass over all workloads when the daemon reports one; else N per-workload
        # evaluations.
        whole = quantile(per_pass, q)
        if whole is not None:
            return round(whole * 1000, 3)
        one = quantile(per_workload, q)
        return None if one is None else round(one * n * 1000, 3)

    def rounded(value: float | None, digits: int) -> float | None:
        return None if value is None else round(value, digits)

    changes = change_to_write(cluster.raised_at, scale_writes)
    log(f"N={n}: raised {raised} workloads, {len(scale_writes)} scale writes")
    return {
        "workloads": n,
        "eval_p50_ms": eval_ms(0.5),
        "eval_p99_ms": eval_ms(0.99),
        "reaction_p50_s": rounded(quantile(reaction, 0.5), 3),
        "reaction_p99_s": rounded(quantile(reaction, 0.99), 3),
        "cpu_cores": round(cpu / elapsed, 4),
        "rss_mb": round(rss, 1),
        "connections": connections,
        "kube_requests_per_min": {verb: round(c / minutes, 1)
                                  for verb, c in sorted(kube_requests.items())},
        "kube_writes_while_idle": sum(1 for t, _ in scale_writes if t >= idle_start),
        "source_requests_per_min": round(source_requests / minutes, 1),
        # Seen from outside: from the raise of a signal to the first scale write it causes
        # (includes the wait for the next source poll, which the daemon's own metric does not).
        "change_to_write_p50_s": rounded(exact_quantile(changes, 0.5), 3),
        "change_to_write_p99_s": rounded(exact_quantile(changes, 0.99), 3),
        "idle_window_s": round(max(0.0, started + seconds - idle_start), 1),
        "raised": raised,
    }


def run_scale(sizes: Sequence[int], *, seconds: float,
              log: Callable[[str], None] = lambda _: None) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = []
    for n in sizes:
        log(f"scale N={n}: {seconds:g}s of the daemon in real time ...")
        records.append(asyncio.run(run_one(n, seconds=seconds, log=log)))
    return records


# --------------------------------------------------------------------------- reporting

def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def table(records: Sequence[dict[str, Any]]) -> str:
    head = ("N", "eval p50 ms", "eval p99 ms", "react p50 s", "react p99 s", "cpu cores",
            "rss MB", "conns", "kube req/min by verb", "idle writes", "source req/min")
    rows = [head]
    for r in records:
        verbs = " ".join(f"{v}={c:g}" for v, c in r["kube_requests_per_min"].items())
        rows.append((str(r["workloads"]), _num(r["eval_p50_ms"], 2), _num(r["eval_p99_ms"], 2),
                     _num(r["reaction_p50_s"], 2), _num(r["reaction_p99_s"], 2),
                     _num(r["cpu_cores"], 3), _num(r["rss_mb"], 1), str(r["connections"]),
                     verbs, str(r["kube_writes_while_idle"]),
                     _num(r["source_requests_per_min"], 0)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True))
                     for row in rows)


def write_json(records: Sequence[dict[str, Any]], path: str | Path) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"scale": list(records)}, indent=2) + "\n")
