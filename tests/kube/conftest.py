"""Fixtures of the kube/ and elector tests (the helpers live in `kube_fixtures.py`)."""

from kube_fixtures import api, cluster, served, state

__all__ = ["api", "cluster", "served", "state"]
