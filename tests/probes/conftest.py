"""Fixtures of the probe tests, shared with tests/sources through its `wire_fakes` module.

tests/ has no packages, so `wire_fakes` is loaded by path once and registered under its name;
the probe tests then import it like the source tests do.
"""

import importlib.util
import sys
from pathlib import Path

if "wire_fakes" not in sys.modules:
    _spec = importlib.util.spec_from_file_location(
        "wire_fakes", Path(__file__).resolve().parents[1] / "sources" / "wire_fakes.py")
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules["wire_fakes"] = _module
    _spec.loader.exec_module(_module)

from wire_fakes import fake_http, pool

__all__ = ["fake_http", "pool"]
