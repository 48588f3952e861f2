"""Helpers of the kube/ and elector tests: a simulated cluster served on loopback, a
kubernetes_asyncio client for it built through `kube.connect`, and clocks."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes_asyncio.client import ApiClient

from autoscaler.kube.cluster import KubeCluster
from autoscaler.kube.connect import connect
from autoscaler.sim.kubeapi import ServedApp, create_app, serve, write_kubeconfig
from autoscaler.sim.kubestate import KubeState

NS = "tracardi"
TOKEN = "test-token-0123456789"


class RealClock:
    """`ports.Clock` on the running loop's (real) time."""

    def now(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


@dataclass
class Served:
    state: KubeState
    server: ServedApp
    kubeconfig: Path


@pytest.fixture
def state() -> KubeState:
    return KubeState(clock=time.monotonic, wall=time.time)


@pytest.fixture
async def served(state: KubeState, tmp_path: Path) -> AsyncIterator[Served]:
    server = await serve(create_app(state, token=TOKEN))
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", server.url, TOKEN)
    try:
        yield Served(state, server, kubeconfig)
    finally:
        await server.stop()


@pytest.fixture
async def api(served: Served) -> AsyncIterator[ApiClient]:
    client = await connect(served.kubeconfig)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
def cluster(api: ApiClient) -> KubeCluster:
    return KubeCluster(api, clock=RealClock(), identity="test-daemon", request_timeout=5.0,
                       watch_timeout_seconds=1, backoff_seconds=(0.05, 0.2))
