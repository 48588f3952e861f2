"""The data of ../shared (the HPA cases, the traces) for the tests that read it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def require_shared(path: Path) -> Path:
    """`path`, which lies in ../shared: skipped loudly in a bare clone, a failure in CI (where
    ../shared is beside the checkout)."""
    if path.exists():
        return path
    if os.environ.get("CI"):
        pytest.fail(f"{path} is missing; CI runs beside ../shared")
    pytest.skip(f"!!! {path} IS ABSENT (a bare clone without ../shared): SKIPPED")
