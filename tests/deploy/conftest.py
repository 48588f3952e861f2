"""Fixtures of the deploy/ tests: the kustomize renderings, made once per session.

`rendered_full` is the example overlay plus every optional component, so that each object the
repository ships is rendered and checked at least once.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml
from deploy_support import DEPLOY, Manifest, kustomize, require_tool


@pytest.fixture(scope="session")
def kubectl() -> str:
    return require_tool("kubectl")


@pytest.fixture(scope="session")
def rendered_base(kubectl: str) -> list[Manifest]:
    """`kubectl kustomize deploy/`: what `kubectl apply -k deploy/` applies."""
    return kustomize(kubectl, DEPLOY)


@pytest.fixture(scope="session")
def rendered_overlay(kubectl: str) -> list[Manifest]:
    return kustomize(kubectl, DEPLOY / "overlays" / "tracardi")


@pytest.fixture(scope="session")
def full_kustomization(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example overlay as an operator would enable every component in deploy/components:
    its kustomization.yaml in a temporary directory, paths rebased, components added."""
    root = tmp_path_factory.mktemp("full-overlay")
    overlay = DEPLOY / "overlays" / "tracardi"
    spec = yaml.safe_load((overlay / "kustomization.yaml").read_text())

    def rebase(entry: str) -> str:  # kustomize refuses absolute paths
        return os.path.relpath((overlay / entry).resolve(), root)

    spec["resources"] = [rebase(r) for r in spec["resources"]]
    components = {(overlay / c).resolve() for c in spec.get("components", [])}
    components |= {p for p in (DEPLOY / "components").iterdir() if p.is_dir()}
    spec["components"] = sorted(os.path.relpath(c, root) for c in components)
    (root / "kustomization.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return root


@pytest.fixture(scope="session")
def rendered_full(kubectl: str, full_kustomization: Path) -> list[Manifest]:
    return kustomize(kubectl, full_kustomization)
