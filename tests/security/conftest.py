"""Fixtures of the security tests: one throwaway PKI for the whole directory."""

from __future__ import annotations

import pytest
from security_support import Pki, make_pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))
