"""Fixtures of the fault matrix, and its record for RELIABILITY.md.

Every test carries `@pytest.mark.fault(group, fault)` and ends with `holds(world)`, which
checks the invariants (see `harness.py`). The outcome of each, with its docstring's first line
as the result, goes to `out/fault-matrix.json`, from which `scripts/reliability.py` writes
RELIABILITY.md.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import World, world
from structlog.testing import capture_logs

OUT = Path(__file__).resolve().parents[2] / "out" / "fault-matrix.json"
_results: list[dict[str, Any]] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "fault(group, fault): one row of the fault matrix")


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with capture_logs() as captured:
        yield captured


@pytest.fixture
async def w(tmp_path: Path, logs: list[dict[str, Any]]) -> AsyncIterator[World]:
    async with world(tmp_path) as wd:
        wd.logs = logs
        yield wd


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()
    marker = item.get_closest_marker("fault")
    if marker is None or report.when != "call":
        return
    doc = (getattr(item, "obj", None).__doc__ or "").strip().split("\n\n")[0]
    _results.append({
        "group": marker.args[0], "fault": marker.args[1], "test": item.nodeid,
        "outcome": report.outcome, "seconds": round(report.duration, 2),
        "result": " ".join(doc.split()),
    })


def pytest_sessionfinish(session: pytest.Session) -> None:
    if not _results:
        return
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps({"generated_at": time.time(), "faults": _results}, indent=1))
