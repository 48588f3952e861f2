"""The live edge: builds the daemon's real adapters and serves its own endpoints.

`run_live` connects to Kubernetes (in-cluster or a kubeconfig), builds the HTTP sources and the
probes from the config, runs the leader elector on a Lease, watches the config file the way a
mounted ConfigMap changes (a symlink swap), serves `/metrics`, `/healthz` and `/readyz`, and stops
gracefully on SIGTERM. `explain` does one dry evaluation through the same adapters.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from autoscaler.config import ConfigError, LoadedConfig, load_config
from autoscaler.daemon import Adapters, Daemon, LoopClock
from autoscaler.kube.access import access_report, lease_of, watch_access
from autoscaler.kube.cluster import KubeCluster, answering
from autoscaler.kube.connect import KubeClient, connect, disconnect
from autoscaler.kube.leases import KubeLeaseStore
from autoscaler.leader import LeaderElector
from autoscaler.ports import FIELD_MANAGER, PodProber, Probe, Source
from autoscaler.probes import build_probe
from autoscaler.probes.http import PodHttpProber
from autoscaler.sources import PrometheusBatches, build_source
from autoscaler.sources.http import SessionPool
from autoscaler.telemetry import Telemetry

log = structlog.get_logger("tracardi_autoscaler")

#: How often the config file is looked at (a ConfigMap update takes ~a minute to arrive anyway).
CONFIG_POLL_SECONDS = 2.0


@dataclass
class Readers:
    sources: dict[str, Source]
    probes: dict[str, Probe]


def build_readers(loaded: LoadedConfig, *, now: Callable[[], float],
                  pool: SessionPool) -> Readers:
    """The sources and probes a config names (only those its workloads use are polled)."""
    used = {s.split(".", 1)[0] for w in loaded.workloads for s in w.signal_names()}
    used |= {w.settings.healing.consumer_source for w in loaded.workloads
             if w.settings.healing.consumer_source}
    batches = PrometheusBatches(pool)
    sources = {name: build_source(name, cfg, now=now, pool=pool, batches=batches)
               for name, cfg in loaded.config.sources.items() if name in used}
    probes = {name: build_probe(name, cfg) for name, cfg in loaded.config.dependencies.items()}
    return Readers(sources, probes)


def _file_identity(path: Path) -> tuple[int, int, int] | None:
    """What changes when a mounted ConfigMap is updated: the symlink target's inode and mtime."""
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def _reload_failed(telemetry: Telemetry, path: Path, errors: list[str]) -> None:
    telemetry.config_reloads.labels("failed").inc()
    telemetry.config_last_reload_ok.set(0)
    log.error("config_reload_failed", path=str(path), errors=errors)


async def watch_config(path: Path, *, on_change: Callable[[LoadedConfig], None],
                       telemetry: Telemetry) -> None:
    """Reload on change; a bad or missing file keeps the last good config and is reported."""
    seen = _file_identity(path)
    while True:
        await asyncio.sleep(CONFIG_POLL_SECONDS)
        current = _file_identity(path)
        if current == seen:
            continue
        seen = current
        if current is None:
            _reload_failed(telemetry, path, ["file is gone; keeping the last good config"])
            continue
        try:
            # In a thread: a big file (a ConfigMap may hold 1 MiB) must not stall the probes,
            # the evaluator or the lease renewals while it is parsed.
            loaded = await asyncio.to_thread(load_config, path)
        except ConfigError as exc:
            _reload_failed(telemetry, path, [str(i) for i in exc.issues])
            continue
        except Exception as exc:  # whatever the file holds, the daemon keeps its last config
            _reload_failed(telemetry, path,
                           [f"cannot load: {type(exc).__name__}: {str(exc)[:200]}"])
            continue
        try:
            on_change(loaded)
        except Exception as exc:  # e.g. a reader it names cannot be built: keep the old one
            _reload_failed(telemetry, path,
                           [f"cannot apply: {type(exc).__name__}: {str(exc)[:200]}"])
            continue
        telemetry.config_reloads.labels("ok").inc()
        telemetry.config_last_reload_ok.set(1)
        log.info("config_reloaded", path=str(path), workloads=len(loaded.workloads))


def endpoints(daemon: Daemon) -> web.Application:
    """Read-only HTTP: Prometheus metrics and the daemon's own probes. Only GET is routed."""

    async def metrics(_: web.Request) -> web.Response:
        # In a thread: with a thousand workloads a scrape takes a good part of a second, and the
        # loop keeps serving reads meanwhile instead of letting their deadlines pass.
        body = await asyncio.to_thread(daemon.telemetry.render)
        return web.Response(body=body,
                            content_type="text/plain", charset="utf-8",
                            headers={"X-Content-Type-Options": "nosniff"})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if daemon.ready:
            return web.Response(text="ready\n")
        return web.Response(status=503, text="not ready\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


class EndpointsError(Exception):
    """The endpoints cannot listen where they are told to (a port in use, an address that is
    not this host's): raised before the daemon starts, so it has done nothing. `port_taken`
    says which of the two to change."""

    def __init__(self, message: str, *, port_taken: bool) -> None:
        super().__init__(message)
        self.port_taken = port_taken


@contextlib.asynccontextmanager
async def serving_endpoints(daemon: Daemon, *, host: str, port: int) -> AsyncIterator[None]:
    """`/metrics`, `/healthz` and `/readyz` on `host:port` while the context lasts."""
    runner = web.AppRunner(endpoints(daemon), access_log=None)
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port).start()
        except OSError as exc:
            # asyncio says "error while attempting to bind on address (...): <why>"
            reason = (exc.strerror or str(exc)).rpartition("): ")[2]
            raise EndpointsError(f"cannot serve /metrics, /healthz and /readyz on "
                                 f"{host}:{port}: {reason}",
                                 port_taken=exc.errno == errno.EADDRINUSE) from None
        # The addresses bound: a port of 0 is the one the system chose.
        log.info("endpoints_listening",
                 addresses=[f"http://[{a[0]}]:{a[1]}" if ":" in a[0] else f"http://{a[0]}:{a[1]}"
                            for a in runner.addresses],
                 paths=["/metrics", "/healthz", "/readyz"])
        yield
    finally:
        await runner.cleanup()


@contextlib.asynccontextmanager
async def live_adapters(
    loaded: LoadedConfig, *, kubeconfig: str | None, identity: str, telemetry: Telemetry,
    leader_election: bool = True, current: Callable[[], LoadedConfig] | None = None,
    dry_run: bool = False, as_user: str | None = None,
) -> AsyncIterator[tuple[Adapters, SessionPool, KubeClient]]:
    """The live adapters for `loaded`, their session pool and their Kubernetes client, acting
    as the kubeconfig's user (or `as_user`). With `current` (the config in force, which a
    reload changes), a task asks the apiserver whether the daemon may make the calls it needs
    (`kube/access.py`)."""
    clock = LoopClock()
    api = await connect(kubeconfig, as_user=as_user)
    pool = SessionPool()
    readers = build_readers(loaded, now=clock.now, pool=pool)
    cluster = KubeCluster(api, clock=clock, identity=identity)
    extra: dict[str, Callable[[], Coroutine[Any, Any, None]]] = {}
    adapters = Adapters(clock=clock, cluster=cluster, sources=readers.sources,
                        probes=readers.probes, extra_tasks=extra, pod_prober=PodHttpProber())
    if leader_election:
        telemetry.leader.set(0)

        def leading(now_leading: bool) -> Callable[[], None]:
            def changed() -> None:
                telemetry.leader.set(1 if now_leading else 0)
                log.info("leadership_changed", identity=identity, leader=now_leading)
            return changed

        elector = LeaderElector.from_settings(
            KubeLeaseStore(api), loaded.config.daemon.lease, clock=clock, identity=identity,
            # The daemon's one wall clock, looked up at each use (the fault tests jump it).
            namespace=loaded.config.daemon.namespace, wall=lambda: adapters.wall(),  # noqa: PLW0108
            on_started_leading=leading(True), on_stopped_leading=leading(False))
        adapters.leadership = elector
        extra["leader-elector"] = elector.run
    else:
        telemetry.leader.set(1)
    if current is not None:
        # The Lease of the election built above: a reload does not move it.
        lease = lease_of(loaded) if leader_election else None
        extra["access-check"] = lambda: watch_access(
            api, current, dry_run=dry_run, lease=lease, telemetry=telemetry, clock=clock)
    try:
        yield adapters, pool, api
    finally:
        built: list[Source | Probe] = [*adapters.sources.values(), *adapters.probes.values()]
        for reader in built:
            with contextlib.suppress(Exception):
                await reader.close()
        if adapters.pod_prober is not None:
            await adapters.pod_prober.close()
        await pool.close()
        await cluster.close()
        await disconnect(api)


def default_identity() -> str:
    """The pod name in-cluster (HOSTNAME), else host and pid."""
    return os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}"


@contextlib.asynccontextmanager
async def live_daemon(
    config_path: Path, *, kubeconfig: str | None, dry_run: bool, metrics_host: str,
    metrics_port: int | None, identity: str, leader_election: bool = True,
    probe_overrides: Mapping[str, Probe] | None = None, pod_prober: PodProber | None = None,
) -> AsyncIterator[Daemon]:
    """A daemon wired to the live adapters, its endpoints and its config watcher; not started.

    `probe_overrides` replaces named probes (the demo simulates Redis or MySQL when no real
    one is reachable); `pod_prober` replaces the healer's HTTP check of pods.
    """
    loaded = load_config(config_path)
    telemetry = Telemetry()
    telemetry.config_last_reload_ok.set(1)
    overrides = dict(probe_overrides or {})
    daemon: Daemon | None = None

    def current() -> LoadedConfig:
        return loaded if daemon is None else daemon.loaded

    async with live_adapters(loaded, kubeconfig=kubeconfig, identity=identity,
                             telemetry=telemetry, leader_election=leader_election,
                             current=current, dry_run=dry_run) as (a, pool, _):
        a.probes = {**a.probes, **{k: v for k, v in overrides.items() if k in a.probes}}
        if pod_prober is not None:
            if a.pod_prober is not None:
                await a.pod_prober.close()
            a.pod_prober = pod_prober
        daemon = Daemon(loaded, a, telemetry=telemetry, dry_run=dry_run)
        if isinstance(a.leadership, LeaderElector):
            a.leadership.handover = daemon  # the healer's budgets pass on with the Lease

        def on_change(new: LoadedConfig) -> None:
            # The Lease and the metrics port are set up at start, and stay as they were.
            fixed = [f"daemon.{key}" for key in ("lease", "metrics_port")
                     if getattr(new.config.daemon, key) != getattr(loaded.config.daemon, key)]
            if fixed:
                log.warning("restart_needed", settings=fixed,
                            hint="set up at start: restart the daemon to apply them")
            readers = build_readers(new, now=a.clock.now, pool=pool)
            probes = {**readers.probes,
                      **{k: v for k, v in overrides.items() if k in readers.probes}}
            daemon.reload(new, sources=readers.sources, probes=probes)

        a.extra_tasks = {
            **a.extra_tasks,
            "config-watch": lambda: watch_config(config_path, on_change=on_change,
                                                 telemetry=telemetry),
        }
        # Listening before the daemon starts: a port in use stops it before it does anything.
        async with serving_endpoints(
                daemon, host=metrics_host,
                port=loaded.config.daemon.metrics_port if metrics_port is None else metrics_port):
            yield daemon


#: gc.set_threshold for the live daemon: collect the young generation every 10,000 net
#: allocations instead of 700, the older ones as often relative to it as by default.
GC_THRESHOLDS = (10_000, 10, 10)


async def run_live(config_path: Path, *, kubeconfig: str | None, dry_run: bool,
                   metrics_host: str, metrics_port: int | None, identity: str,
                   leader_election: bool = True) -> int:
    """`tracardi-autoscaler run`: until SIGTERM or SIGINT, then a graceful stop."""
    # Every source read allocates a few hundred short-lived objects, and reads that wait for a
    # connection outlive the default 700-allocation young generation: they were promoted and
    # swept up by full collections, a fifth of the daemon's CPU with a thousand workloads
    # (`bench --scale`). A larger young generation lets them die young.
    gc.set_threshold(*GC_THRESHOLDS)
    async with live_daemon(config_path, kubeconfig=kubeconfig, dry_run=dry_run,
                           metrics_host=metrics_host, metrics_port=metrics_port,
                           identity=identity, leader_election=leader_election) as daemon:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stop)
        log.info("starting", config=str(config_path), workloads=len(daemon.workloads),
                 dry_run=dry_run, identity=identity)
        try:
            await daemon.run()
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        if daemon.failure is not None:
            log.error("stopped", identity=identity, reason=daemon.failure)
            print(f"tracardi-autoscaler: {daemon.failure}", file=sys.stderr)
            return 1
        log.info("stopped", identity=identity)
    return 0


#: How long `explain` waits for the API server to answer at all.
EXPLAIN_REACH_SECONDS = 10.0


async def explain_live(config_path: Path, *, kubeconfig: str | None,
                       as_user: str | None = None) -> dict[str, Any]:
    """`explain`: the report of `explain_report`, and under "access" what a daemon with this
    config could not do as the kubeconfig's user (or `as_user`)."""
    loaded = load_config(config_path)
    telemetry = Telemetry()
    async with live_adapters(loaded, kubeconfig=kubeconfig, identity="explain",
                             telemetry=telemetry, leader_election=False,
                             as_user=as_user) as (a, _, api):
        # One look first: a server that does not answer fails it in seconds, not after every
        # read and review has waited out its own timeout.
        await answering(api, request_seconds=EXPLAIN_REACH_SECONDS)
        daemon = Daemon(loaded, a, telemetry=telemetry, dry_run=True)
        await daemon.explain()
        report = explain_report(daemon)
        report["access"] = {"as": as_user, **await access_report(api, loaded)}
    return report


def explain_report(daemon: Daemon) -> dict[str, Any]:
    """`{"workloads": [...]}` as documented in the README's explain section."""
    now = daemon.a.clock.now()
    out: list[dict[str, Any]] = []
    for key, state in daemon.workloads.items():
        spec = state.spec
        signals: dict[str, Any] = {}
        view = daemon.signals_for(spec)
        for name in spec.signal_names():
            sig = view.get(name)
            signals[name] = ({"value": None, "age_s": None, "error": "never read"} if sig is None
                             else {"value": sig.value, "age_s": round(sig.age(now), 3),
                                   "error": sig.error})
        deps: dict[str, Any] = {}
        for name in spec.settings.requires:
            dep = daemon.store.dependencies.get(name)
            deps[name] = {"up": dep is not None and dep.health.value == "up",
                          "reason": dep.reason if dep else "never checked"}
        d = state.decision
        best = max(d.recommendations, key=lambda r: r.replicas) if d and d.recommendations \
            else None
        out.append({
            "name": spec.name,
            "namespace": spec.namespace,
            "key": key,
            "signals": signals,
            "dependencies": deps,
            "recommendation": (None if best is None else
                               {"replicas": best.replicas, "policy": best.policy,
                                "reason": best.reason}),
            "steps": [] if d is None else [{"stage": s.stage, "replicas": s.replicas,
                                            "reason": s.reason} for s in d.steps],
            "decision": (None if d is None else
                         {"action": d.action.value, "current": d.current,
                          "desired": d.desired, "reasons": list(d.reasons)}),
            # Who last set spec.replicas (managedFields); None when the cluster does not say.
            "replicas_set_by": (state.status.replicas_set_by or None) if state.status else None,
            "error": state.read_error,
        })
    return {"workloads": out}


def format_explain(report: Mapping[str, Any]) -> str:
    lines: list[str] = []
    for w in report["workloads"]:
        lines.append(f"{w['namespace']}/{w['name']}")
        for name, s in w["signals"].items():
            value = "-" if s["value"] is None else f"{s['value']:g}"
            age = "-" if s["age_s"] is None else f"{s['age_s']:.1f}s"
            err = f"  error: {s['error']}" if s["error"] else ""
            lines.append(f"  signal      {name:<28} {value:>12}  age {age}{err}")
        for name, dep in w["dependencies"].items():
            state = "up" if dep["up"] else "DOWN"
            reason = f"  ({dep['reason']})" if dep["reason"] else ""
            lines.append(f"  dependency  {name:<28} {state}{reason}")
        rec = w["recommendation"]
        if rec:
            lines.append(f"  policy      {rec['policy']:<28} {rec['replicas']:>12}  "
                         f"{rec['reason']}")
        for step in w["steps"]:
            lines.append(f"  step        {step['stage']:<28} {step['replicas']:>12}  "
                         f"{step['reason']}")
        d = w["decision"]
        if d:
            lines.append(f"  decision    {d['action']:<28} {d['current']} -> {d['desired']}  "
                         f"{'; '.join(d['reasons'])}")
        else:
            lines.append("  decision    none: the Deployment could not be read: "
                         f"{w.get('error') or 'see the log'}")
        writer = w.get("replicas_set_by")
        if writer == FIELD_MANAGER:
            lines.append(f"  replicas    set by {writer} (this autoscaler)")
        elif writer:
            lines.append(f"  replicas    set by {writer}: if it sets them again (a chart "
                         "upgrade, a GitOps sync), it resets the count; leave replicas out of "
                         "its manifests (deploy/README.md)")
    access = report.get("access")
    if access is not None:
        who = access["as"] or "this kubeconfig's user"
        lines.append(f"access as {who}: what a daemon with this config (writing, with leader "
                     "election) needs")
        for m in access["missing"]:
            lines.append(f"  MISSING     {m['permission']}  to {m['needed_to']}: {m['hint']}")
        if access["error"]:
            lines.append(f"  not checked {access['error']}")
        elif not access["missing"]:
            lines.append(f"  allowed     all {access['checked']} calls")
    return "\n".join(lines)
