"""Fixtures of the wire tests (the helpers live in `wire_k8s.py`)."""

from wire_k8s import served

__all__ = ["served"]
