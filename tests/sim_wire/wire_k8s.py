"""Helpers of the wire tests: the official schemas (kubernetes-validate, strict), a simulated
Tracardi cluster served on loopback, and a kubectl runner."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

from autoscaler.sim.kubeapi import ServedApp, create_app, serve, write_kubeconfig
from autoscaler.sim.kubestate import KubeState, LeaseSpec

K8S_VERSION = "1.34.0"
NS = "tracardi"
API = "be-fa-public"
WORKER = "wk-pl-collector"
REPO = Path(__file__).resolve().parents[2]
SAMPLES = Path(os.environ.get("SHARED_DIR", REPO.parent / "shared")) / "samples"


def sample_json(relative: str) -> Any:
    return json.loads((SAMPLES / relative).read_text())


def validate(obj: dict[str, Any], *, kind: str | None = None) -> None:
    """Validate against the official schema of Kubernetes 1.34, strict (no unknown fields).

    meta/v1 kinds (Status, APIResourceList, WatchEvent, ...) are not reachable through
    `kubernetes_validate.validate` (their files are `<kind>-meta-v1.json`), so those are
    checked against the same files with the same validator directly; `kind` names the schema
    of an object that carries no kind (a watch event).
    """
    kind = kind or obj["kind"]
    if obj.get("apiVersion", "v1") != "v1" or kind in {"Pod", "PodList", "Event",
                                                               "EventList", "Namespace",
                                                               "NamespaceList", "Node",
                                                               "NodeList", "Service",
                                                               "ServiceList", "ServiceAccount",
                                                               "ServiceAccountList"}:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        return
    directory = f"kubernetes-json-schema/v{K8S_VERSION}-local-strict"
    schema = kv_utils.schema_contents(f"{directory}/{kind.lower()}-meta-v1.json",
                                      K8S_VERSION)
    definitions = kv_utils.schema_contents(f"{directory}/_definitions.json", K8S_VERSION)
    registry: Registry[Any] = Resource.from_contents(schema) @ Registry()
    registry = Resource.from_contents(definitions) @ registry
    jsonschema.validators.Draft202012Validator(schema, registry=registry).validate(obj)


def tracardi_cluster(state: KubeState) -> None:
    """Tracardi's chart layout with every kind of object the server serves."""
    state.add_deployment(NS, API, replicas=3, cpu_request_milli=500)
    state.add_deployment(NS, WORKER, replicas=2, cpu_request_milli=250,
                         image="tracardi/background-worker")
    api_pods = state.workload_pods(NS, API)
    state.mark_ready(NS, api_pods[0].name, True)
    state.mark_ready(NS, api_pods[1].name, True)
    state.set_cpu_usage(NS, api_pods[0].name, 420)
    state.crash(NS, state.workload_pods(NS, WORKER)[0].name)
    state.add_pdb(NS, "api-pdb", min_available=2, selector=state.deployment(NS, API).selector)
    state.add_hpa(NS, "legacy-hpa", target=WORKER)
    state.record_event(NS, kind="Deployment", name=API, reason="SuccessfulRescale",
                       message="New size: 3; reason: backlog 12000 above target")
    state.create_lease(NS, "tracardi-autoscaler", lease_spec())


def lease_spec() -> LeaseSpec:
    now = time.time()
    return LeaseSpec(holder="autoscaler-0", duration_seconds=15, acquire_time=now - 30,
                     renew_time=now, transitions=1)


@dataclass
class Served:
    state: KubeState
    server: ServedApp
    kubeconfig: Path


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    state = KubeState(clock=time.monotonic, wall=time.time)
    tracardi_cluster(state)
    server = await serve(create_app(state))
    try:
        yield Served(state, server, write_kubeconfig(tmp_path / "kubeconfig", server.url))
    finally:
        await server.stop()


def kubectl_binary() -> str:
    """kubectl on PATH; skipped on a developer machine without it, a failure in CI."""
    found = shutil.which("kubectl")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("kubectl is required in CI (Debian's kubernetes-client package)")
        pytest.skip("kubectl not installed")
    return found


@dataclass(frozen=True)
class Kubectl:
    binary: str
    kubeconfig: Path
    cache: Path

    async def __call__(self, *args: str) -> str:
        proc = await asyncio.create_subprocess_exec(
            self.binary, f"--kubeconfig={self.kubeconfig}", f"--cache-dir={self.cache}",
            "--request-timeout=10s", *args,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        async with asyncio.timeout(60):
            out, err = await proc.communicate()
        if proc.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({proc.returncode}): "
                                 f"{err.decode()}")
        return out.decode()


class Ticks:
    """A clock the test moves by hand (both monotonic and wall)."""

    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        return self.t
