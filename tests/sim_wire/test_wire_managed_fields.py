"""`metadata.managedFields` of the simulated Deployments, as the apiserver records them: the
creator holds what it made, a write takes the fields it changes from whoever held them, and the
manager is the write's `fieldManager`, else its User-Agent up to the first "/"."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from wire_k8s import API, NS, Kubectl, Served, kubectl_binary, validate

from autoscaler.sim.managed import fields_v1, manager_of


@pytest.fixture
def kubectl(served: Served, tmp_path: Path) -> Kubectl:
    return Kubectl(kubectl_binary(), served.kubeconfig, tmp_path / "kube-cache")


def _holders(obj: dict[str, Any], *path: str) -> list[tuple[str, str]]:
    """(manager, subresource) of each managedFields entry that holds `path`."""
    found = []
    for entry in obj["metadata"]["managedFields"]:
        node = entry["fieldsV1"]
        for step in path:
            node = node.get(step)
            if node is None:
                break
        else:
            found.append((entry["manager"], entry.get("subresource", "")))
    return found


async def _deployment(kubectl: Kubectl) -> dict[str, Any]:
    got: dict[str, Any] = json.loads(await kubectl("get", f"deploy/{API}", "-o", "json",
                                                   "--show-managed-fields"))
    validate(got)
    return got


@pytest.mark.real
async def test_kubectl_writes_take_the_fields_they_change(kubectl: Kubectl) -> None:
    made = await _deployment(kubectl)
    assert _holders(made, "f:spec", "f:replicas") == [("helm", "")]
    assert _holders(made, "f:status", "f:replicas") == [("kube-controller-manager", "status")]
    await kubectl("scale", f"deploy/{API}", "--replicas=5")
    await kubectl("annotate", f"deploy/{API}", "team=crm")
    await kubectl("label", f"deploy/{API}", "tier=api", "--field-manager=argocd-controller")
    changed = await _deployment(kubectl)
    assert _holders(changed, "f:spec", "f:replicas") == [("kubectl", "scale")]
    assert _holders(changed, "f:metadata", "f:annotations", "f:team") == [
        ("kubectl-annotate", "")]
    assert _holders(changed, "f:metadata", "f:labels", "f:tier") == [("argocd-controller", "")]
    assert _holders(changed, "f:spec", "f:selector") == [("helm", "")]  # untouched: still its
    await kubectl("annotate", f"deploy/{API}", "team-")  # a removed field is nobody's
    assert _holders(await _deployment(kubectl), "f:metadata", "f:annotations", "f:team") == []


@pytest.mark.real
async def test_a_write_that_changes_nothing_takes_nothing(kubectl: Kubectl,
                                                          served: Served) -> None:
    await kubectl("scale", f"deploy/{API}", "--replicas=3")  # it already has 3
    assert _holders(await _deployment(kubectl), "f:spec", "f:replicas") == [("helm", "")]
    assert served.state.deployment(NS, API).generation == 1


def test_a_manager_is_the_field_manager_or_the_user_agents_prefix() -> None:
    assert manager_of("argocd-controller", "kubectl/v1.32.4") == "argocd-controller"
    assert manager_of("", "kubectl/v1.32.4 (linux/amd64) kubernetes/4cb5f07") == "kubectl"
    assert manager_of("", "OpenAPI-Generator/33.3.0+snapshot/python") == "OpenAPI-Generator"
    assert manager_of("", "a\x00b\tc/1.0") == "abc"  # unprintable characters dropped
    assert manager_of("", "é" * 100) == "é" * 64  # cut at 128 bytes, not inside a character
    assert manager_of("", "") == ""


def test_fields_render_as_fields_v1() -> None:
    paths = frozenset({("f:metadata", "f:labels"), ("f:metadata", "f:labels", "f:app"),
             ("f:spec", "f:replicas"), ("f:spec", "f:selector")})
    assert fields_v1(paths) == {
        "f:metadata": {"f:labels": {".": {}, "f:app": {}}},
        "f:spec": {"f:replicas": {}, "f:selector": {}}}
