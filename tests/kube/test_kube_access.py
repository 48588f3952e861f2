"""The daemon's access check against the simulated API with the shipped Role enforced: the
permissions a config needs, which of them the apiserver refuses, and how the daemon reports
them (logs and `tracardi_autoscaler_access_missing`)."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import structlog
import yaml
from kube_fixtures import RealClock

from autoscaler.config import LoadedConfig, load_config, parse_config
from autoscaler.demo import daemon_grant
from autoscaler.kube.access import Permission, hint, lease_of, needed, review, watch_access
from autoscaler.kube.connect import connect
from autoscaler.sim.kubeapi import create_app, serve, write_kubeconfig
from autoscaler.sim.kubestate import KubeState
from autoscaler.sim.rbac import Grant
from autoscaler.telemetry import Telemetry

REPO = Path(__file__).resolve().parents[2]
POLICIES = REPO / "policies" / "tracardi.yaml"
ROLE = yaml.safe_load((REPO / "deploy" / "base" / "role.yaml").read_text())
ALLOW_DELETE = REPO / "deploy" / "components" / "allow-delete" / "delete-pods.yaml"
ADMIN, DAEMON = "admin-token", "daemon-token"
LEASE = ("tracardi", "tracardi-autoscaler")


async def eventually(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"not within {within} s")


def shipped_grant(role: dict[str, Any] | None = None) -> Grant:
    return Grant.from_role(role or ROLE, namespace="tracardi",
                           service_account="tracardi-autoscaler")


def without(resource: str, verb: str) -> dict[str, Any]:
    """The shipped Role with `verb` on `resource` taken out."""
    role = copy.deepcopy(ROLE)
    for rule in role["rules"]:
        if rule["resources"] == [resource] and verb in rule["verbs"]:
            rule["verbs"] = [v for v in rule["verbs"] if v != verb]
    return role


@dataclasses.dataclass
class Daemonside:
    state: KubeState
    grants: dict[str, Grant]
    kubeconfig: Path


@pytest.fixture
async def daemonside(tmp_path: Path) -> AsyncIterator[Daemonside]:
    """The simulated API with the daemon's token bound to the shipped Role."""
    grants = {DAEMON: shipped_grant()}
    state = KubeState(clock=time.monotonic, wall=time.time)
    server = await serve(create_app(state, token=ADMIN, grants=grants))
    try:
        yield Daemonside(state, grants,
                         write_kubeconfig(tmp_path / "kubeconfig", server.url, DAEMON))
    finally:
        await server.stop()


async def missing_for(side: Daemonside, wanted: list[Permission]) -> list[Permission]:
    api = await connect(side.kubeconfig)
    try:
        answers, errors = await review(api, wanted)
    finally:
        await api.close()
    assert errors == []
    return sorted(p for p, ok in answers.items() if not ok)


def granted(role: dict[str, Any]) -> set[tuple[str, str, str]]:
    return {(g, r, v) for rule in role["rules"] for g in rule["apiGroups"]
            for r in rule["resources"] for v in rule["verbs"]}


def every_feature() -> LoadedConfig:
    """The shipped config with a CPU (hpa) workload and allow_delete: every call there is."""
    raw = yaml.safe_load(POLICIES.read_text())
    raw["workloads"]["wk-pl-background"]["healing"]["allow_delete"] = True
    raw["workloads"]["cpu"] = {"min": 1, "max": 3, "requires": ["redis"], "policies": [{
        "name": "hpa", "metric": {"type": "Resource", "resource": "cpu",
                                  "target": {"type": "Utilization", "average_utilization": 70}}}]}
    return parse_config(yaml.safe_dump(raw))


def test_the_shipped_role_grants_exactly_what_a_config_with_every_feature_needs() -> None:
    wanted = needed(every_feature(), dry_run=False, lease=lease_of(every_feature()))
    # The base Role, and the rule that components/allow-delete adds for allow_delete alone.
    [added] = yaml.safe_load(ALLOW_DELETE.read_text())
    assert {(p.group, p.resource, p.verb) for p in wanted} == granted(
        {"rules": [*ROLE["rules"], added["value"]]})
    assert ("", "pods", "delete") not in granted(ROLE)
    assert ("", "pods", "delete") not in {
        (p.group, p.resource, p.verb)
        for p in needed(load_config(POLICIES), dry_run=False, lease=LEASE)}
    [lease] = {p.name for p in wanted if p.name}
    assert lease == load_config(POLICIES).config.daemon.lease.name


def test_a_dry_run_needs_no_write() -> None:
    wanted = needed(load_config(POLICIES), dry_run=True, lease=None)
    assert wanted and all(p.verb in ("get", "list", "watch") for p in wanted)


async def test_the_shipped_role_lacks_nothing_the_shipped_config_needs(
        daemonside: Daemonside) -> None:
    wanted = needed(load_config(POLICIES), dry_run=False, lease=LEASE)
    assert await missing_for(daemonside, wanted) == []


async def test_a_rule_taken_out_of_the_role_is_missing(daemonside: Daemonside) -> None:
    daemonside.grants[DAEMON] = shipped_grant(without("deployments/scale", "update"))
    wanted = needed(load_config(POLICIES), dry_run=False, lease=LEASE)
    lacking = await missing_for(daemonside, wanted)
    assert [str(p) for p in lacking] == ["update deployments.apps/scale in namespace tracardi"]
    assert lacking[0].why == "scale"


async def test_the_daemon_reports_what_is_missing_and_when_it_is_granted(
        daemonside: Daemonside) -> None:
    daemonside.grants[DAEMON] = shipped_grant(without("pods/eviction", "create"))
    loaded = load_config(POLICIES)
    telemetry = Telemetry()
    api = await connect(daemonside.kubeconfig)

    def gauge(resource: str, verb: str, group: str = "") -> float | None:
        return telemetry.registry.get_sample_value(
            "tracardi_autoscaler_access_missing",
            {"namespace": "tracardi", "verb": verb, "group": group, "resource": resource})

    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(watch_access(
            api, lambda: loaded, dry_run=False, lease=LEASE, telemetry=telemetry,
            clock=RealClock(), period=0.2))
        try:
            await eventually(lambda: gauge("pods/eviction", "create") == 1)
            assert gauge("deployments/scale", "update", "apps") == 0
            [event] = [e for e in logs if e["event"] == "access_missing"]
            assert event["permission"] == "create pods/eviction in namespace tracardi"
            assert event["needed_to"] == "restart unhealthy pods"
            assert event["log_level"] == "error"

            await asyncio.sleep(0.5)  # checked again: still missing, not logged again
            assert len([e for e in logs if e["event"] == "access_missing"]) == 1
            daemonside.grants[DAEMON] = shipped_grant()
            await eventually(lambda: gauge("pods/eviction", "create") == 0)
            assert [e["permission"] for e in logs if e["event"] == "access_granted"] == [
                "create pods/eviction in namespace tracardi"]
        finally:
            task.cancel()
            await api.close()


async def test_a_failing_review_is_logged_once_and_changes_nothing(tmp_path: Path) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:9", DAEMON)
    api = await connect(kubeconfig)
    telemetry = Telemetry()
    loaded = load_config(POLICIES)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(watch_access(
            api, lambda: loaded, dry_run=False, lease=LEASE, telemetry=telemetry,
            clock=RealClock(), period=0.05))
        try:
            await eventually(lambda: any(e["event"] == "access_check_failed" for e in logs))
            await asyncio.sleep(0.3)  # several more failed checks
        finally:
            task.cancel()
            await api.close()
    assert [e["event"] for e in logs] == ["access_check_failed"]
    assert logs[0]["error"].startswith("Unreachable: ClientConnectorError"), logs[0]["error"]
    assert b"access_missing{" not in telemetry.render()


def test_the_demos_daemon_runs_with_what_it_needs_and_no_more() -> None:
    loaded = load_config(POLICIES)
    grant = daemon_grant(loaded)
    assert grant.user == "system:serviceaccount:tracardi:tracardi-autoscaler"
    for p in needed(loaded, dry_run=False, lease=LEASE):
        assert grant.allows(p.verb, p.group, p.resource, p.namespace, p.name), p
    assert {(r, v) for rule in grant.rules for r in rule.resources for v in rule.verbs} <= {
        (r, v) for _, r, v in granted(ROLE)}
    assert not grant.allows("update", "apps", "deployments", "tracardi", "be-fa-public")
    assert not grant.allows("update", "coordination.k8s.io", "leases", "tracardi", "other")


def with_other_namespace() -> LoadedConfig:
    """The shipped config and one workload in a namespace the shipped Role does not cover."""
    raw = yaml.safe_load(POLICIES.read_text())
    raw["workloads"]["elsewhere"] = {"namespace": "other", "min": 1, "max": 2,
                                     "requires": ["redis"], "policies": [{"name": "fixed"}]}
    return parse_config(yaml.safe_dump(raw))


def gauge_series(telemetry: Telemetry) -> dict[tuple[str, ...], float]:
    return {(s.labels["namespace"], s.labels["verb"], s.labels["group"], s.labels["resource"]):
            s.value for metric in telemetry.registry.collect()
            if metric.name == "tracardi_autoscaler_access_missing" for s in metric.samples}


def test_the_hint_says_how_to_grant_it() -> None:
    assert hint(Permission("tracardi", "update", "apps", "deployments/scale"), "tracardi") == (
        "deploy/base/role.yaml grants it: kubectl apply -k deploy/")
    assert hint(Permission("other", "list", "", "pods"), "tracardi") == (
        "deploy/ binds its Role in namespace tracardi only: add a Role and RoleBinding in "
        "other for the daemon's ServiceAccount")
    assert hint(Permission("tracardi", "get", "coordination.k8s.io", "leases", "mine"),
                "tracardi") == ("add 'mine' to the resourceNames of the Role's leases rule "
                                "(deploy/base/role.yaml lists 'tracardi-autoscaler')")
    assert hint(Permission("tracardi", "delete", "", "pods"), "tracardi") == (
        "deploy/components/allow-delete grants it (only allow_delete needs it): add it to your "
        "overlay's components and apply")


async def test_a_reload_is_checked_at_once_and_what_it_drops_is_forgotten(
        daemonside: Daemonside) -> None:
    config = [with_other_namespace()]
    telemetry = Telemetry()
    api = await connect(daemonside.kubeconfig)
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(watch_access(
            api, lambda: config[0], dry_run=False, lease=LEASE, telemetry=telemetry,
            clock=RealClock(), look=0.05))  # the 10-minute period never comes
        try:
            await eventually(lambda: any(k[0] == "other" for k in gauge_series(telemetry)))
            missing_lines = [e for e in logs if e["event"] == "access_missing"]
            assert missing_lines and all(" in namespace other" in e["permission"]
                                         for e in missing_lines)
            assert all(e["hint"].startswith("deploy/ binds its Role in namespace tracardi only")
                       for e in missing_lines)
            assert all(v == 0 for k, v in gauge_series(telemetry).items() if k[0] == "tracardi")

            config[0] = load_config(POLICIES)  # the reload drops the other namespace
            await eventually(lambda: not any(k[0] == "other" for k in gauge_series(telemetry)))
            assert not [e for e in logs if e["event"] == "access_granted"]
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await api.close()


async def test_failed_reviews_keep_the_answers_that_came_back_and_are_asked_again_soon(
        daemonside: Daemonside) -> None:
    daemonside.grants[DAEMON] = shipped_grant(without("pods/eviction", "create"))
    daemonside.state.faults.inject("create", "selfsubjectaccessreviews", code=500)
    telemetry = Telemetry()
    api = await connect(daemonside.kubeconfig)
    loaded = load_config(POLICIES)
    wanted = {p.labels for p in needed(loaded, dry_run=False, lease=LEASE)}
    with structlog.testing.capture_logs() as logs:
        task = asyncio.create_task(watch_access(
            api, lambda: loaded, dry_run=False, lease=LEASE, telemetry=telemetry,
            clock=RealClock(), retry=0.2))  # the 10-minute period never comes
        try:
            await eventually(lambda: any(e["event"] == "access_check_failed" for e in logs))
            first = gauge_series(telemetry)
            assert 0 < len(first) < len(wanted)  # one review failed: the rest are exported
            await eventually(lambda: set(gauge_series(telemetry)) == wanted)
            assert gauge_series(telemetry)[("tracardi", "create", "", "pods/eviction")] == 1
            assert [e["event"] for e in logs].count("access_missing") == 1
            assert [e["event"] for e in logs].count("access_check_failed") == 1
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await api.close()
