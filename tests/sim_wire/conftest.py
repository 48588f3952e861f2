"""Fixtures of the wire tests (the helpers live in `wire_k8s.py`)."""

from collections.abc import AsyncIterator

import pytest
from wire_k8s import served

from autoscaler.sim import elasticsearch_api
from autoscaler.sim.elasticsearch_api import ElasticsearchState
from autoscaler.sim.kubeapi import ServedApp, serve

__all__ = ["elasticsearch", "served"]


@pytest.fixture
async def elasticsearch() -> AsyncIterator[tuple[ElasticsearchState, ServedApp]]:
    """The simulated Elasticsearch over loopback HTTP, and its state."""
    state = ElasticsearchState()
    server = await serve(elasticsearch_api.create_app(state))
    try:
        yield state, server
    finally:
        await server.stop()
