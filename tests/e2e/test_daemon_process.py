"""The daemon as a process (`tracardi-autoscaler run`) against the simulated servers over HTTP.

The Kubernetes API and the Pulsar admin API are served in this test's loop; the daemons are
real subprocesses with their own kubeconfig, lease and metrics endpoint. The test plays the
kubelet (it marks new pods ready) and raises the backlog.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import yaml

from autoscaler.localport import free_port
from autoscaler.ports import FIELD_MANAGER
from autoscaler.sim.kubeapi import ServedApp, serve, write_kubeconfig
from autoscaler.sim.kubeapi import create_app as kube_app
from autoscaler.sim.kubestate import KubeState, WatchEvent
from autoscaler.sim.pulsar_admin import Consumer, PulsarState
from autoscaler.sim.pulsar_admin import create_app as pulsar_app
from autoscaler.sim.rbac import Grant

NS = "tracardi"
TOPIC = "persistent://tracardi/system/functions"
SUB = "tracardi-function-subscription"
LEASE_SECONDS = 4.0
ROLE_YAML = (Path(__file__).resolve().parents[2] / "deploy" / "base" / "role.yaml").read_text()

CONFIG = """
daemon:
  namespace: tracardi
  tick_seconds: 2
  lease: {{duration_seconds: {lease}, renew_deadline_seconds: 3, retry_period_seconds: 0.5}}
dependencies:
  pulsar: {{kind: pulsar, admin_url: "{pulsar}", period_seconds: 0.5, failure_threshold: 2,
           success_threshold: 1}}
sources:
  functions: {{kind: pulsar, admin_url: "{pulsar}", tenant: tracardi, namespace: system,
              topic: functions, subscription: {sub}, poll_seconds: 0.5}}
workloads:
  wk-pl-background:
    min: 1
    max: 8
    requires: [pulsar]
    policies: [{{name: backlog, source: functions, msgs_per_second: 10, drain_seconds: 10,
                learn: false, target_utilization: 1.0}}]
    behavior:
      scale_up: {{policies: [{{type: Pods, value: 10, period_seconds: 15}}]}}
      scale_down: {{stabilization_window_seconds: 600}}
"""


@dataclass
class Cluster:
    kube: KubeState
    pulsar: PulsarState
    config: Path
    kubeconfig: Path
    pulsar_url: str
    kube_url: str = ""
    grants: dict[str, Grant] = field(default_factory=dict)  # tokens bound to a Role
    replicas_seen: list[int] = field(default_factory=list)
    sick: set[str] = field(default_factory=set)  # pods the test's kubelet leaves not ready
    starting: bool = False  # while set, the test's kubelet leaves every new pod not ready

    def backlog(self, messages: int) -> None:
        self.pulsar.set_subscription(TOPIC, SUB, backlog=messages, msg_rate_out=0.0)

    def replicas(self) -> int:
        return self.kube.deployment(NS, "wk-pl-background").replicas

    def rescale_events(self) -> list[str]:
        return [e.message for e in self.kube.events(NS) if e.reason == "SuccessfulRescale"]


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    kube = KubeState(clock=time.monotonic, wall=time.time)
    kube.add_deployment(NS, "wk-pl-background", replicas=1)
    pulsar = PulsarState()
    pulsar.add_topic(TOPIC, partitions=2, subscriptions=(SUB,))
    grants: dict[str, Grant] = {}
    servers: list[ServedApp] = [await serve(kube_app(kube, grants=grants)),
                                await serve(pulsar_app(pulsar))]
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", servers[0].url)
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG.format(lease=LEASE_SECONDS, pulsar=servers[1].url, sub=SUB))
    c = Cluster(kube, pulsar, config, kubeconfig, servers[1].url, servers[0].url, grants,
                replicas_seen=[1])

    def on_deployment(event: WatchEvent) -> None:
        replicas = event.object["spec"]["replicas"]
        if c.replicas_seen[-1] != replicas:
            c.replicas_seen.append(replicas)

    kube.subscribe("deployments", NS, on_deployment)

    async def kubelet() -> None:
        while True:
            for pod in kube.pods(NS):
                if not pod.ready and pod.name not in c.sick and not c.starting:
                    kube.mark_ready(NS, pod.name, True)
            await asyncio.sleep(0.1)

    task = asyncio.create_task(kubelet())
    try:
        yield c
    finally:
        task.cancel()
        for server in servers:
            await server.stop()


@dataclass
class Daemon:
    identity: str
    port: int
    proc: asyncio.subprocess.Process

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as s, s.get(
                f"http://127.0.0.1:{self.port}/metrics") as r:
            return await r.text()

    async def writes(self, outcome: str = "done") -> int:
        text = await self.metrics()
        pattern = (r'tracardi_autoscaler_scale_writes_total{[^}]*outcome="' + outcome
                   + r'"[^}]*} ([0-9.]+)')
        return sum(int(float(v)) for v in re.findall(pattern, text))


@pytest.fixture
async def start(cluster: Cluster) -> AsyncIterator[Callable[[str], asyncio.Future[Daemon]]]:
    started: list[Daemon] = []

    async def launch(identity: str, *flags: str) -> Daemon:
        port = free_port()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "autoscaler.cli", "run", "--config", str(cluster.config),
            "--kubeconfig", str(cluster.kubeconfig), "--metrics-host", "127.0.0.1",
            "--metrics-port", str(port), "--identity", identity, *flags,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        daemon = Daemon(identity, port, proc)
        started.append(daemon)
        await eventually(lambda: daemon_ready(daemon), what=f"{identity} ready")
        return daemon

    yield launch  # type: ignore[misc]
    for d in started:
        if d.proc.returncode is None:
            d.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(d.proc.wait(), 15)
            except TimeoutError:
                d.proc.kill()
                await d.proc.wait()


async def daemon_ready(daemon: Daemon) -> bool:
    try:
        async with aiohttp.ClientSession() as s, s.get(
                f"http://127.0.0.1:{daemon.port}/readyz") as r:
            return r.status == 200
    except aiohttp.ClientError:
        return False


async def eventually(check: Callable[[], object], *, what: str, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {within}s: {what}")


def holder(cluster: Cluster) -> str | None:
    leases = cluster.kube.leases(NS)
    return leases[0].spec.holder if leases else None


async def test_backlog_scales_the_deployment_with_an_event_and_metrics(
        cluster: Cluster, start: Callable[[str], asyncio.Future[Daemon]]) -> None:
    daemon = await start("a")
    await eventually(lambda: holder(cluster) == "a", what="a holds the lease")
    cluster.backlog(600)  # 600 / 10 s drain = 60 msg/s at 10 msg/s per replica -> 6
    await eventually(lambda: cluster.replicas() == 6, what="scaled to 6")
    await eventually(lambda: any("New size: 6" in m for m in cluster.rescale_events()),
                     what="a SuccessfulRescale event")
    text = await daemon.metrics()
    assert re.search(r'tracardi_autoscaler_desired_replicas{[^}]*workload="wk-pl-background"'
                     r'[^}]*} 6\.0', text)
    assert await daemon.writes() == 1
    assert 'tracardi_autoscaler_leader 1.0' in text


async def test_a_scale_up_whose_pods_are_still_starting_is_retracted_past_the_window(
        cluster: Cluster, start: Callable[[str], asyncio.Future[Daemon]]) -> None:
    # The same config with retracting: the 600 s window holds a scale-down of ready pods only.
    cluster.config.write_text(cluster.config.read_text().replace(
        "scale_down: {stabilization_window_seconds: 600}",
        "scale_down: {stabilization_window_seconds: 600, retract_seconds: 60}"))
    await start("a")
    await eventually(lambda: holder(cluster) == "a", what="a holds the lease")
    cluster.starting = True  # the five new pods stay not ready (the Deployment's status says so)
    cluster.backlog(600)
    await eventually(lambda: cluster.replicas() == 6, what="scaled to 6")
    cluster.backlog(0)  # the rise passed before they started: they go, past the window
    await eventually(lambda: cluster.replicas() == 1, what="retracted to 1")
    await eventually(lambda: any("ScaleUpRetracted" in m for m in cluster.rescale_events()),
                     what="the rescale event says why")
    cluster.starting = False  # pods are ready once they run: the window holds them now
    cluster.backlog(600)
    await eventually(lambda: cluster.replicas() == 6, what="scaled to 6 again")
    await eventually(lambda: sum(p.ready for p in cluster.kube.pods(NS)) == 6,
                     what="all 6 ready")
    cluster.backlog(0)
    await asyncio.sleep(3)  # several evaluations (a 0.5 s poll, a 2 s tick)
    assert cluster.replicas() == 6


async def test_a_ready_pod_that_runs_no_consumer_yet_is_retracted_too(
        cluster: Cluster, start: Callable[[str], asyncio.Future[Daemon]]) -> None:
    # Ready once its container runs (no readiness probe, as in Tracardi's charts): the
    # subscription's consumers tell a worker that takes work from one that is still starting.
    cluster.config.write_text(cluster.config.read_text().replace(
        "scale_down: {stabilization_window_seconds: 600}",
        "scale_down: {stabilization_window_seconds: 600, retract_seconds: 60}\n"
        "    healing: {consumer_source: functions}"))
    await eventually(lambda: all(p.ip for p in cluster.kube.pods(NS)), what="the first pod runs")
    (first,) = cluster.kube.pods(NS)
    consuming = [Consumer.on_pod(first.name, first.ip, msg_rate_out=5.0)]
    cluster.pulsar.set_subscription(TOPIC, SUB, consumers=consuming)
    await start("a")
    await eventually(lambda: holder(cluster) == "a", what="a holds the lease")
    cluster.backlog(600)
    await eventually(lambda: cluster.replicas() == 6, what="scaled to 6")
    await eventually(lambda: sum(p.ready for p in cluster.kube.pods(NS)) == 6,
                     what="all 6 ready")
    cluster.backlog(0)  # five of them ready, none consuming yet: they go, past the window
    await eventually(lambda: cluster.replicas() == 1, what="retracted to 1")
    # Consuming, they have started: the window holds them.
    cluster.backlog(600)
    await eventually(lambda: sum(p.ready for p in cluster.kube.pods(NS)) == 6,
                     what="6 ready again")
    cluster.pulsar.set_subscription(TOPIC, SUB, consumers=[
        Consumer.on_pod(p.name, p.ip, msg_rate_out=5.0) for p in cluster.kube.pods(NS)])
    await asyncio.sleep(1)  # a read of the consumers (0.5 s polls)
    cluster.backlog(0)
    await asyncio.sleep(3)
    assert cluster.replicas() == 6


async def test_follower_never_writes_and_takes_over_after_the_leader_dies(
        cluster: Cluster, start: Callable[[str], asyncio.Future[Daemon]]) -> None:
    first = await start("a")
    await eventually(lambda: holder(cluster) == "a", what="a holds the lease")
    second = await start("b")
    cluster.backlog(300)
    await eventually(lambda: cluster.replicas() == 3, what="scaled to 3 by the leader")
    await asyncio.sleep(2)  # the follower has evaluated in shadow meanwhile
    assert await second.writes() == 0
    assert await first.writes() == 1
    assert "tracardi_autoscaler_leader 0.0" in await second.metrics()

    first.proc.kill()
    await first.proc.wait()
    await eventually(lambda: holder(cluster) == "b", what="b takes the lease",
                     within=3 * LEASE_SECONDS)
    cluster.backlog(500)
    await eventually(lambda: cluster.replicas() == 5, what="scaled to 5 by the new leader")
    assert await second.writes() == 1
    # Every replica change in the cluster was made by exactly one write: no double action.
    assert cluster.replicas_seen == [1, 3, 5]


async def test_conflict_on_scale_rereads_and_lands_the_right_count(
        cluster: Cluster, start: Callable[[str], asyncio.Future[Daemon]]) -> None:
    daemon = await start("a")
    await eventually(lambda: holder(cluster) == "a", what="a holds the lease")
    cluster.kube.faults.inject("update", "deployments/scale", code=409, times=1)
    cluster.backlog(400)
    await eventually(lambda: cluster.replicas() == 4, what="scaled to 4 after the conflict")
    assert await daemon.writes("conflict") == 1
    assert await daemon.writes("done") == 1
    assert cluster.replicas_seen == [1, 4]


def swap(link: Path, target: Path) -> None:
    """Point `link` at `target` atomically, the way the kubelet updates a mounted ConfigMap."""
    tmp = link.with_name(link.name + ".tmp")
    tmp.symlink_to(target)
    os.replace(tmp, link)


async def test_hot_reload_through_a_symlink_swap_and_a_bad_config_keeps_the_last_good(
        cluster: Cluster, start: Callable[[str], asyncio.Future[Daemon]],
        tmp_path: Path) -> None:
    good = cluster.config.read_text()
    (tmp_path / "v1").mkdir()
    (tmp_path / "v1" / "config.yaml").write_text(good)
    link = tmp_path / "mounted.yaml"
    link.symlink_to(tmp_path / "v1" / "config.yaml")
    cluster.config = link
    daemon = await start("a")
    await eventually(lambda: holder(cluster) == "a", what="a holds the lease")

    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "config.yaml").write_text(good.replace("max: 8", "max: 3"))
    swap(link, tmp_path / "v2" / "config.yaml")
    await eventually(lambda: daemon_metric(daemon, 'config_reloads_total{outcome="ok"}', 1.0),
                     what="the new config is loaded")
    cluster.backlog(600)  # wants 6, the reloaded max is 3
    await eventually(lambda: cluster.replicas() == 3, what="scaled to the new max")

    (tmp_path / "v3").mkdir()
    (tmp_path / "v3" / "config.yaml").write_text("workloads: {broken: {min: 5, max: 1}}\n")
    swap(link, tmp_path / "v3" / "config.yaml")
    await eventually(lambda: daemon_metric(daemon, 'config_reloads_total{outcome="failed"}',
                                           1.0), what="the bad config is refused")
    text = await daemon.metrics()
    assert "tracardi_autoscaler_config_last_reload_success 0.0" in text
    assert daemon.proc.returncode is None
    cluster.backlog(100)  # the last good config still governs: max 3, and no scale-down
    await asyncio.sleep(2)
    assert cluster.replicas() == 3


async def daemon_metric(daemon: Daemon, series: str, value: float) -> bool:
    text = await daemon.metrics()
    return f"tracardi_autoscaler_{series} {value}" in text


async def test_sigterm_stops_gracefully_and_releases_the_lease(
        cluster: Cluster, start: Callable[[str], asyncio.Future[Daemon]]) -> None:
    daemon = await start("a")
    await eventually(lambda: holder(cluster) == "a", what="a holds the lease")
    daemon.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(daemon.proc.wait(), 15) == 0
    assert holder(cluster) in (None, "")


async def test_a_metrics_port_in_use_stops_the_daemon_before_it_acts(cluster: Cluster) -> None:
    cluster.backlog(600)  # a daemon that ran would scale to 6 at once
    taken = socket.create_server(("127.0.0.1", 0))
    port = taken.getsockname()[1]
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "autoscaler.cli", "run", "--config", str(cluster.config),
            "--kubeconfig", str(cluster.kubeconfig), "--metrics-host", "127.0.0.1",
            "--metrics-port", str(port), "--identity", "b", "--no-leader-election",
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
        _, err = await asyncio.wait_for(proc.communicate(), 30)
    finally:
        taken.close()
    assert proc.returncode == 2
    assert err.decode().strip().splitlines()[-1] == (
        f"tracardi-autoscaler: cannot serve /metrics, /healthz and /readyz on 127.0.0.1:{port}: "
        "address already in use; choose another with --metrics-port (or daemon.metrics_port "
        "in the config)")
    assert b"Traceback" not in err
    await asyncio.sleep(1)
    assert cluster.replicas_seen == [1]
    assert not [e for e in cluster.kube.events(NS) if e.manager == FIELD_MANAGER]


async def test_explain_prints_signals_dependencies_and_the_decision(cluster: Cluster) -> None:
    cluster.backlog(300)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "autoscaler.cli", "explain", "--config", str(cluster.config),
        "--kubeconfig", str(cluster.kubeconfig), "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    (w,) = report["workloads"]
    assert w["name"] == "wk-pl-background" and w["namespace"] == NS
    assert w["signals"]["functions.backlog"]["value"] == 300
    assert w["signals"]["functions.backlog"]["error"] is None
    assert w["dependencies"] == {"pulsar": {"up": True, "reason": ""}}
    assert w["decision"] == {"action": "scale", "current": 1, "desired": 3,
                             "reasons": w["decision"]["reasons"]}
    assert cluster.replicas() == 1, "explain never writes"
    assert w["replicas_set_by"] == "helm"  # who made it, by its managedFields
    access = report["access"]
    assert (access["as"], access["missing"], access["error"]) == (None, [], None)
    assert access["checked"] >= 10


async def test_explain_as_the_daemon_names_the_permission_its_role_lacks(
        cluster: Cluster, tmp_path: Path) -> None:
    role = yaml.safe_load(ROLE_YAML)
    role["rules"] = [r for r in role["rules"] if r["resources"] != ["pods/eviction"]]
    cluster.grants["daemon-token"] = Grant.from_role(role, namespace=NS,
                                                     service_account="tracardi-autoscaler")
    user = "system:serviceaccount:tracardi:tracardi-autoscaler"

    async def explain(*flags: str, kubeconfig: Path = cluster.kubeconfig) -> tuple[int, str]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "autoscaler.cli", "explain", "--config", str(cluster.config),
            "--kubeconfig", str(kubeconfig), *flags,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, err = await asyncio.wait_for(proc.communicate(), 30)
        assert proc.returncode is not None, err.decode()
        return proc.returncode, out.decode()

    code, out = await explain("--as", user, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["workloads"][0]["decision"] is not None  # the Role lets it read everything
    assert report["access"]["as"] == user and report["access"]["error"] is None
    assert report["access"]["missing"] == [{
        "permission": f"create pods/eviction in namespace {NS}",
        "needed_to": "restart unhealthy pods",
        "hint": "deploy/base/role.yaml grants it: kubectl apply -k deploy/"}]
    code, out = await explain("--as", user)
    assert code == 1
    assert f"  MISSING     create pods/eviction in namespace {NS}  to restart unhealthy pods" in out

    code, out = await explain("--as", "system:serviceaccount:tracardi:nobody")
    assert code == 1, out  # bound to nothing: it may not even read the Deployment
    assert "decision    none: the Deployment could not be read" in out
    assert out.count("\n  MISSING     ") >= 10

    # The daemon's own token may not act as anybody else: nothing is checked, and it says why.
    own = write_kubeconfig(tmp_path / "own", cluster.kube_url, "daemon-token")
    code, out = await explain("--as", "admin", kubeconfig=own)
    assert code == 1 and "MISSING" not in out
    assert (f'  not checked 14 of 14 reviews failed: 403 Forbidden: users "admin" is forbidden: '
            f'User "{user}" cannot impersonate') in out


HEALING_CONFIG = """
daemon:
  namespace: tracardi
  tick_seconds: 1
  lease: {{duration_seconds: {lease}, renew_deadline_seconds: 3, retry_period_seconds: 0.5}}
dependencies:
  pulsar: {{kind: pulsar, admin_url: "{pulsar}", period_seconds: 0.5, failure_threshold: 2,
           success_threshold: 1}}
workloads:
  wk-apm:
    min: 3
    max: 3
    requires: [pulsar]
    policies: [{{name: fixed}}]
    healing: {{startup_grace_seconds: 0, not_ready_seconds: 1, min_available: 0,
              backoff_seconds: 0, max_restarts: 10}}
"""


async def test_an_eviction_blocked_by_a_pdb_is_retried_and_never_becomes_a_delete(
        cluster: Cluster, start: Callable[[str], asyncio.Future[Daemon]]) -> None:
    kube = cluster.kube
    kube.add_deployment(NS, "wk-apm", replicas=3)
    kube.add_pdb(NS, "wk-apm", min_available=3,
                 selector={"app.kubernetes.io/component": "wk-apm"})
    cluster.config.write_text(HEALING_CONFIG.format(lease=LEASE_SECONDS,
                                                    pulsar=cluster.pulsar_url))
    await eventually(lambda: all(p.ready for p in kube.workload_pods(NS, "wk-apm")),
                     what="the kubelet has started every pod")
    sick = kube.workload_pods(NS, "wk-apm")[0].name
    cluster.sick.add(sick)
    kube.mark_ready(NS, sick, False)

    def alive() -> set[str]:
        return {p.name for p in kube.workload_pods(NS, "wk-apm")}

    await start("a")
    await eventually(lambda: holder(cluster) == "a", what="a holds the lease")
    await asyncio.sleep(4)  # several evaluations: each eviction answered 429 by the PDB
    assert sick in alive(), "a 429 must never be turned into a delete"
    assert not [e for e in kube.events(NS) if e.reason == "PodRestarted"]
    kube.add_pdb(NS, "wk-apm", min_available=0,
                 selector={"app.kubernetes.io/component": "wk-apm"})
    await eventually(lambda: sick not in alive(),
                     what="the eviction goes through once the budget allows it")
    # The Event follows the eviction's reply, a request later.
    await eventually(lambda: any(e.reason == "PodRestarted" for e in kube.events(NS)),
                     what="the restart is reported in an Event")


async def test_dry_run_decides_and_reports_but_writes_nothing(
        cluster: Cluster, start: Callable[..., asyncio.Future[Daemon]]) -> None:
    daemon = await start("a", "--dry-run")
    await eventually(lambda: holder(cluster) == "a", what="a holds the lease")
    cluster.backlog(600)
    await eventually(lambda: daemon_metric(daemon, 'desired_replicas{namespace="tracardi",'
                                                   'workload="wk-pl-background"}', 6.0),
                     what="the decision is reported")
    await asyncio.sleep(1)
    assert cluster.replicas() == 1
    assert cluster.replicas_seen == [1]
    assert await daemon.writes() == 0
    assert not cluster.rescale_events()


async def test_a_permission_the_role_lacks_is_exported_and_the_rest_works(
        cluster: Cluster, start: Callable[[str], asyncio.Future[Daemon]],
        tmp_path: Path) -> None:
    """The daemon runs with a token bound to the shipped Role without its eviction rule."""
    role = yaml.safe_load(ROLE_YAML)
    role["rules"] = [r for r in role["rules"] if r["resources"] != ["pods/eviction"]]
    cluster.grants["daemon-token"] = Grant.from_role(role, namespace=NS,
                                                     service_account="tracardi-autoscaler")
    cluster.kubeconfig = write_kubeconfig(tmp_path / "restricted", cluster.kube_url,
                                          "daemon-token")
    daemon = await start("a")

    def gauge(text: str, verb: str, group: str, resource: str) -> float | None:
        found = re.search(
            rf'tracardi_autoscaler_access_missing{{group="{group}",namespace="{NS}",'
            rf'resource="{re.escape(resource)}",verb="{verb}"}} ([0-9.]+)', text)
        return float(found.group(1)) if found else None

    async def exported() -> bool:
        return gauge(await daemon.metrics(), "create", "", "pods/eviction") == 1.0

    await eventually(exported, what="the missing eviction permission exported")
    text = await daemon.metrics()
    assert gauge(text, "update", "apps", "deployments/scale") == 0.0
    assert gauge(text, "get", "coordination.k8s.io", "leases") == 0.0
    await eventually(lambda: holder(cluster) == "a", what="a holds the lease under the Role")
    cluster.backlog(600)
    await eventually(lambda: cluster.replicas() == 6, what="scaled to 6 under the Role")

