"""Writes `out/fuzz-figures.json` when a session that ran fuzz targets ends."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fuzz_support import CRASHES_FIXED, EXAMPLES, FIGURES, PARSED, REJECTED, SCALE


@pytest.fixture(scope="session", autouse=True)
def fuzz_figures() -> Iterator[None]:
    yield
    if not EXAMPLES:
        return
    targets = {
        name: {"examples": EXAMPLES[name], "parsed": PARSED[name], "rejected": REJECTED[name],
               "crashes_fixed": CRASHES_FIXED.get(name, [])}
        for name in sorted(EXAMPLES)
    }
    FIGURES.parent.mkdir(parents=True, exist_ok=True)
    FIGURES.write_text(json.dumps({"examples_scale": SCALE, "targets": targets}, indent=2) + "\n",
                       encoding="utf-8")
