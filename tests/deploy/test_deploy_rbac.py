"""The Role grants exactly the Kubernetes API calls that autoscaler/kube/*.py can make.

The calls are read from the code (every reference to a method of a kubernetes_asyncio `*Api`
class), mapped to (apiGroup, resource, verb) by the table below, and compared both ways with
the rendered Role: a new call without a Role rule fails, and so does a rule no call needs.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import kubernetes_asyncio.client as k8s
import pytest
from deploy_support import POLICIES, REPO, Manifest, find

from autoscaler.config import load_config
from autoscaler.sim.rbac import EVERY_USER, PUBLIC_PATHS

KUBE_PACKAGE = REPO / "autoscaler" / "kube"

Permission = tuple[str, str, str]  # (apiGroup, resource, verb)

#: kubernetes_asyncio method -> the permission its request needs. A `list_*` call made with
#: `watch=True` needs `watch` instead of `list` (see `_permission`).
PERMISSIONS: dict[str, Permission] = {
    "read_namespaced_deployment": ("apps", "deployments", "get"),
    "list_namespaced_deployment": ("apps", "deployments", "list"),
    "read_namespaced_deployment_scale": ("apps", "deployments/scale", "get"),
    "replace_namespaced_deployment_scale": ("apps", "deployments/scale", "update"),
    "patch_namespaced_deployment_scale": ("apps", "deployments/scale", "patch"),
    "read_namespaced_pod": ("", "pods", "get"),
    "list_namespaced_pod": ("", "pods", "list"),
    "delete_namespaced_pod": ("", "pods", "delete"),
    "create_namespaced_pod_eviction": ("", "pods/eviction", "create"),
    "create_namespaced_event": ("", "events", "create"),
    "list_namespaced_horizontal_pod_autoscaler":
        ("autoscaling", "horizontalpodautoscalers", "list"),
    "read_namespaced_lease": ("coordination.k8s.io", "leases", "get"),
    "create_namespaced_lease": ("coordination.k8s.io", "leases", "create"),
    "replace_namespaced_lease": ("coordination.k8s.io", "leases", "update"),
    "patch_namespaced_lease": ("coordination.k8s.io", "leases", "patch"),
    "create_self_subject_access_review":
        ("authorization.k8s.io", "selfsubjectaccessreviews", "create"),
}
#: Calls of a path that is no resource, with the path: every user may get it
#: (`system:public-info-viewer`), so they need no Role rule.
NON_RESOURCE: dict[str, str] = {"get_code": "/version"}
#: CustomObjectsApi methods: the group and plural are the call's first and fourth arguments.
CUSTOM_OBJECT_VERBS = {
    "list_namespaced_custom_object": "list",
    "get_namespaced_custom_object": "get",
}


def _api_methods() -> set[str]:
    """Every public method of every kubernetes_asyncio `*Api` class."""
    methods: set[str] = set()
    for name, cls in inspect.getmembers(k8s, inspect.isclass):
        if name.endswith("Api"):
            methods |= {m for m in vars(cls) if not m.startswith("_")}
    return methods


def _literal(node: ast.expr, what: str, where: str) -> str:
    assert isinstance(node, ast.Constant) and isinstance(node.value, str), \
        f"{where}: the {what} of a custom object call must be a string literal to be checked"
    return node.value


def _permission(call: ast.Call, method: str, where: str) -> Permission:
    if method in CUSTOM_OBJECT_VERBS:
        group = _literal(call.args[0], "group", where)
        plural = _literal(call.args[3], "plural", where)
        return group, plural, CUSTOM_OBJECT_VERBS[method]
    assert method in PERMISSIONS, (
        f"{where}: {method} is not in the table of tests/deploy/test_deploy_rbac.py; add its "
        f"(apiGroup, resource, verb) there and the rule to deploy/base/role.yaml")
    group, resource, verb = PERMISSIONS[method]
    watch = any(k.arg == "watch" and isinstance(k.value, ast.Constant) and k.value.value is True
                for k in call.keywords)
    if watch:
        assert verb == "list", f"{where}: watch=True on a non-list call {method}"
        verb = "watch"
    return group, resource, verb


def calls_in_code(package: Path = KUBE_PACKAGE, *,
                  root: Path = REPO) -> dict[Permission, list[str]]:
    """Each permission the code needs, with the places (file:line method) that need it."""
    api_methods = _api_methods()
    needed: dict[Permission, list[str]] = {}
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        called = {id(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
        calls = {id(node.func): node for node in ast.walk(tree) if isinstance(node, ast.Call)}
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            method = node.attr.removesuffix("_with_http_info")
            if method not in api_methods:
                continue
            where = f"{path.relative_to(root)}:{node.lineno} {method}"
            assert id(node) in called, f"{where}: referenced but not called; handle it here"
            if method in NON_RESOURCE:
                assert NON_RESOURCE[method] in PUBLIC_PATHS, where
                continue
            needed.setdefault(_permission(calls[id(node)], method, where), []).append(where)
    return needed


def granted(role: Manifest) -> set[Permission]:
    return {(group, resource, verb)
            for rule in role["rules"]
            for group in rule["apiGroups"]
            for resource in rule["resources"]
            for verb in rule["verbs"]}


def test_the_code_makes_the_calls_the_issue_names() -> None:
    """The derivation itself works: the calls we know the daemon makes are found."""
    needed = calls_in_code()
    for permission in [("apps", "deployments/scale", "update"), ("", "pods", "watch"),
                       ("", "pods/eviction", "create"), ("metrics.k8s.io", "pods", "list"),
                       ("keda.sh", "scaledobjects", "list"),
                       ("coordination.k8s.io", "leases", "update")]:
        assert permission in needed, permission


#: What only `healing.allow_delete` calls: deploy/components/allow-delete grants it, the base
#: Role does not.
ALLOW_DELETE: Permission = ("", "pods", "delete")


def test_the_role_grants_exactly_what_the_code_calls(rendered_full: list[Manifest]) -> None:
    # Every authenticated user may ask what it may do (`system:basic-user`): no Role rule.
    needed = {p: where for p, where in calls_in_code().items() if p not in EVERY_USER}
    role = granted(find(rendered_full, "Role"))  # with every component: allow-delete too
    missing = {p: needed[p] for p in set(needed) - role}
    unused = role - set(needed)
    assert not missing, f"calls the Role does not allow (add to deploy/base/role.yaml): {missing}"
    assert not unused, f"Role rules no code path needs (remove them): {sorted(unused)}"


def test_only_the_allow_delete_component_grants_a_pod_delete(
        rendered_base: list[Manifest], rendered_full: list[Manifest]) -> None:
    assert ALLOW_DELETE in calls_in_code()
    base, full = granted(find(rendered_base, "Role")), granted(find(rendered_full, "Role"))
    assert ALLOW_DELETE not in base
    assert full - base == {ALLOW_DELETE}


def test_no_wildcards_and_no_cluster_scope(rendered_full: list[Manifest]) -> None:
    assert not [m for m in rendered_full if m["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    for rule in find(rendered_full, "Role")["rules"]:
        for key in ("apiGroups", "resources", "verbs"):
            assert "*" not in rule[key], rule


def test_the_lease_rules_name_the_configured_lease(rendered_base: list[Manifest]) -> None:
    lease = load_config(POLICIES).config.daemon.lease.name
    rules = [r for r in find(rendered_base, "Role")["rules"] if r["resources"] == ["leases"]]
    by_verb = {verb: r.get("resourceNames") for r in rules for verb in r["verbs"]}
    assert by_verb == {"create": None, "get": [lease], "update": [lease]}, \
        "get/update only our own Lease; create cannot be limited by name"


def test_the_binding_gives_the_role_to_the_deployment_account(
        rendered_base: list[Manifest]) -> None:
    role = find(rendered_base, "Role")
    binding = find(rendered_base, "RoleBinding")
    account = find(rendered_base, "ServiceAccount")
    pod = find(rendered_base, "Deployment")["spec"]["template"]["spec"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role["metadata"]["name"]}
    assert binding["subjects"] == [{"kind": "ServiceAccount",
                                    "name": account["metadata"]["name"],
                                    "namespace": account["metadata"]["namespace"]}]
    assert pod["serviceAccountName"] == account["metadata"]["name"]


@pytest.mark.parametrize(("source", "expected"), [
    pytest.param("api.list_namespaced_pod(ns, watch=True)", ("", "pods", "watch"), id="watch"),
    pytest.param("api.list_namespaced_pod(ns)", ("", "pods", "list"), id="list"),
    pytest.param('api.list_namespaced_custom_object("keda.sh", "v1alpha1", ns, "scaledobjects")',
                 ("keda.sh", "scaledobjects", "list"), id="custom-object"),
    pytest.param("api.replace_namespaced_lease_with_http_info(n, ns, body)",
                 ("coordination.k8s.io", "leases", "update"), id="with-http-info"),
])
def test_the_derivation_maps_calls(tmp_path: Path, source: str, expected: Permission) -> None:
    module = tmp_path / "calls.py"
    module.write_text(f"async def f(api, ns, n, body):\n    await {source}\n")
    assert set(calls_in_code(tmp_path, root=tmp_path)) == {expected}


def test_the_derivation_rejects_an_unknown_call(tmp_path: Path) -> None:
    (tmp_path / "calls.py").write_text("async def f(api):\n    await api.list_node()\n")
    with pytest.raises(AssertionError, match="list_node is not in the table"):
        calls_in_code(tmp_path, root=tmp_path)

