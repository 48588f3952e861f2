"""Hygiene for every test: the logging configuration a test leaves (a command run in-process
configures structlog for its own output, at WARNING) does not leak into the tests after it,
whose `structlog.testing.capture_logs` would then miss info lines."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture(autouse=True)
def _structlog_as_it_was() -> Iterator[None]:
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)
