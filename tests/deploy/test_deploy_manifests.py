"""deploy/ renders with `kubectl kustomize`, every object validates with kubernetes-validate in
strict mode, and the objects fit together: the Deployment runs the shipped config with the
hardening the issue asks for, and Service, PDB, NetworkPolicy and ServiceMonitor select its pods.
"""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest
import yaml
from deploy_support import DEPLOY, POLICIES, Manifest, find

from autoscaler.config import load_config

CONFIG_DIR = "/etc/tracardi-autoscaler"
SECRET_NAME = "tracardi-autoscaler-credentials"
K8S_VERSION = kubernetes_validate.latest_version()


def _pod_spec(manifests: list[Manifest]) -> dict[str, Any]:
    spec: dict[str, Any] = find(manifests, "Deployment")["spec"]["template"]["spec"]
    return spec


def _container(manifests: list[Manifest]) -> dict[str, Any]:
    [container] = _pod_spec(manifests)["containers"]
    return dict(container)


def _pod_labels(manifests: list[Manifest]) -> dict[str, str]:
    labels: dict[str, str] = find(manifests, "Deployment")["spec"]["template"]["metadata"][
        "labels"]
    return labels


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _secret_env_names(node: Any) -> set[str]:
    """Every `*_env` value in the config: the environment variables that carry secrets."""
    if isinstance(node, dict):
        found = {v for k, v in node.items() if k.endswith("_env") and isinstance(v, str)}
        for value in node.values():
            found |= _secret_env_names(value)
        return found
    if isinstance(node, list):
        return set().union(*(_secret_env_names(v) for v in node)) if node else set()
    return set()


def test_a_current_kubernetes_version_is_the_target() -> None:
    major, minor, *_ = (int(p) for p in K8S_VERSION.split("."))
    assert (major, minor) >= (1, 30), f"kubernetes-validate only knows {K8S_VERSION}; upgrade it"


@pytest.mark.parametrize("rendering", ["rendered_base", "rendered_overlay", "rendered_full"])
def test_every_rendered_object_validates_strictly(rendering: str,
                                                  request: pytest.FixtureRequest) -> None:
    manifests: list[Manifest] = request.getfixturevalue(rendering)
    kinds = sorted(m["kind"] for m in manifests)
    assert {"ServiceAccount", "Role", "RoleBinding", "Deployment", "ConfigMap",
            "PodDisruptionBudget", "Service", "NetworkPolicy"} <= set(kinds)
    for manifest in manifests:
        if manifest["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # a CRD: no schema in kubernetes-validate; checked by the test below
        kubernetes_validate.validate(manifest, K8S_VERSION, strict=True)


def test_the_secret_example_validates_and_stays_out_of_the_base(
        rendered_full: list[Manifest]) -> None:
    example = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())
    kubernetes_validate.validate(example, K8S_VERSION, strict=True)
    assert example["metadata"]["name"] == SECRET_NAME
    assert not [m for m in rendered_full if m["kind"] == "Secret"], "no Secret is ever rendered"


def test_strict_validation_rejects_an_unknown_field(rendered_base: list[Manifest]) -> None:
    """kubernetes-validate really checks: a misspelt field fails strict validation."""
    broken = find(rendered_base, "Deployment")
    broken = {**broken, "spec": {**broken["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_the_config_map_is_the_shipped_policies_byte_for_byte(
        rendered_base: list[Manifest]) -> None:
    shipped = POLICIES.read_bytes()
    config_map = find(rendered_base, "ConfigMap")
    assert config_map["data"]["config.yaml"].encode() == shipped
    assert config_map["metadata"]["name"].startswith("tracardi-autoscaler-config-"), \
        "the generator's content hash rolls the Deployment on a config change"


def test_the_deployment_reads_the_config_map_at_the_configured_path(
        rendered_base: list[Manifest]) -> None:
    config_map = find(rendered_base, "ConfigMap")
    pod = _pod_spec(rendered_base)
    container = _container(rendered_base)
    [volume] = [v for v in pod["volumes"] if "configMap" in v]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    [mount] = [m for m in container["volumeMounts"] if m["name"] == volume["name"]]
    assert mount["mountPath"] == CONFIG_DIR and mount.get("readOnly") is True
    assert "subPath" not in mount, "a subPath mount never sees ConfigMap updates"
    args = container["args"]
    assert args[args.index("--config") + 1] == f"{CONFIG_DIR}/config.yaml"
    assert list(config_map["data"]) == ["config.yaml"]


def test_every_object_lives_in_the_namespace_the_config_manages(
        rendered_base: list[Manifest]) -> None:
    namespace = load_config(POLICIES).config.daemon.namespace
    assert {m["metadata"].get("namespace") for m in rendered_base} == {namespace}


def test_the_deployment_is_hardened(rendered_base: list[Manifest]) -> None:
    deployment = find(rendered_base, "Deployment")
    pod = _pod_spec(rendered_base)
    container = _container(rendered_base)
    assert deployment["spec"]["replicas"] == 2
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert isinstance(pod["securityContext"]["runAsUser"], int)
    assert pod["securityContext"]["runAsUser"] != 0
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security["runAsNonRoot"] is True
    for kind in ("requests", "limits"):
        assert set(container["resources"][kind]) == {"cpu", "memory"}, kind


def test_probes_and_metrics_port_agree(rendered_base: list[Manifest]) -> None:
    container = _container(rendered_base)
    [port] = container["ports"]
    args = container["args"]
    assert str(port["containerPort"]) == args[args.index("--metrics-port") + 1]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": port["name"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": port["name"]}


def test_the_replicas_spread_over_nodes_and_zones(rendered_base: list[Manifest]) -> None:
    labels = _pod_labels(rendered_base)
    constraints = _pod_spec(rendered_base)["topologySpreadConstraints"]
    keys = {c["topologyKey"] for c in constraints}
    assert keys == {"kubernetes.io/hostname", "topology.kubernetes.io/zone"}
    for constraint in constraints:
        assert _selects(constraint["labelSelector"]["matchLabels"], labels)


def test_pods_carry_no_tracardi_component_label(rendered_base: list[Manifest]) -> None:
    """The daemon's pod watch maps `app.kubernetes.io/component` to Tracardi workloads."""
    assert "app.kubernetes.io/component" not in _pod_labels(rendered_base)


def test_credentials_come_from_the_optional_secret(rendered_base: list[Manifest]) -> None:
    referenced = _secret_env_names(yaml.safe_load(POLICIES.read_text()))
    assert referenced == {"ELASTIC_PASSWORD", "MYSQL_PASSWORD", "REDIS_PASSWORD"}
    env = {e["name"]: e for e in _container(rendered_base)["env"]}
    for name in referenced:
        assert "value" not in env[name], f"{name} must never be inline"
        ref = env[name]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": SECRET_NAME, "key": name, "optional": True}
    example = yaml.safe_load((DEPLOY / "secret.example.yaml").read_text())
    assert set(example["stringData"]) == referenced


def test_only_the_overlay_runs_in_dry_run(rendered_base: list[Manifest],
                                          rendered_overlay: list[Manifest]) -> None:
    assert "--dry-run" not in _container(rendered_base)["args"]
    assert _container(rendered_overlay)["args"][-1] == "--dry-run"
    assert _container(rendered_overlay)["image"] != _container(rendered_base)["image"]


def test_service_and_pdb_select_the_pods(rendered_base: list[Manifest]) -> None:
    labels = _pod_labels(rendered_base)
    service = find(rendered_base, "Service")
    assert _selects(service["spec"]["selector"], labels)
    [port] = service["spec"]["ports"]
    assert port["targetPort"] == _container(rendered_base)["ports"][0]["name"]
    pdb = find(rendered_base, "PodDisruptionBudget")
    assert _selects(pdb["spec"]["selector"]["matchLabels"], labels)
    assert pdb["spec"]["maxUnavailable"] == 1


def test_network_policy_lets_only_prometheus_reach_the_metrics_port(
        rendered_base: list[Manifest]) -> None:
    policy = find(rendered_base, "NetworkPolicy")["spec"]
    assert _selects(policy["podSelector"]["matchLabels"], _pod_labels(rendered_base))
    assert policy["policyTypes"] == ["Ingress"]
    [rule] = policy["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    [peer] = rule["from"]
    assert peer["namespaceSelector"]["matchLabels"], "not open to every namespace"
    assert peer["podSelector"]["matchLabels"]["app.kubernetes.io/name"] == "prometheus"


def test_the_service_monitor_scrapes_the_metrics_service(
        rendered_full: list[Manifest]) -> None:
    monitor = find(rendered_full, "ServiceMonitor")
    service = find(rendered_full, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["namespace"] == service["metadata"]["namespace"]
    assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert endpoint["honorLabels"] is True  # the workloads' namespace, not the daemon's

