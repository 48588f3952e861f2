"""Fixtures of the source tests: the loopback fake HTTP server and a session pool."""

from wire_fakes import fake_http, pool

__all__ = ["fake_http", "pool"]
