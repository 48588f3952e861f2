"""The OpenAPI v3 documents of the simulated Kubernetes API: the index at `/openapi/v3` and one
document per served group-version, with the paths and operations of each resource it serves
(its verbs), as the apiserver publishes them, and the schemas of the kinds it serves.

kubectl reads them before it writes (`apply`, `create`, `replace`, `edit`, `diff`): a PATCH
operation of the object's kind that takes the `fieldValidation` query parameter tells it that
the server validates fields itself, so it asks for that (`fieldValidation=Strict`) instead of
downloading schemas to validate against. Without these documents kubectl refuses such a write
("failed to download openapi"). `kubectl explain` reads the schemas (`components.schemas`):
those of the kinds served, their lists and every definition they refer to, taken from the
official schemas of the server's Kubernetes release that kubernetes-validate ships (its JSON
Schema form turned back into the apiserver's OpenAPI form). Without kubernetes-validate
installed (the `dev` extra has it) the documents carry none, and `kubectl explain` finds nothing
to explain. metrics-server's PodMetrics and NodeMetrics, which an aggregated API publishes
itself, are written here from k8s.io/metrics, and KEDA's ScaledObject, whose CRD carries its
schema, from that CRD.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from autoscaler.sim.kubestate import JSON, ResourceType

OPENAPI_VERSION = "3.0.0"

#: Each verb's HTTP method, operation id prefix and `x-kubernetes-action`, as the apiserver's.
_VERBS = {"list": ("get", "list", "list"), "get": ("get", "read", "get"),
          "create": ("post", "create", "post"), "update": ("put", "replace", "put"),
          "patch": ("patch", "patch", "patch"), "delete": ("delete", "delete", "delete"),
          "deletecollection": ("delete", "deleteCollection", "deletecollection")}
_PATCH_TYPES = ("application/json-patch+json", "application/merge-patch+json",
                "application/strategic-merge-patch+json")
#: Where the simulated API takes a server-side apply (`application/apply-patch+yaml`), which the
#: apiserver lists beside the other patch types: a Deployment and its scale.
_APPLIED = {"deployments", "deployments/scale"}
#: The kind a subresource belongs to, as its operation ids name it (`...NamespacedPodEviction`).
_OWNERS = {"pods": "Pod", "deployments": "Deployment"}


def _query(name: str, type_: str = "string") -> JSON:
    return {"name": name, "in": "query", "schema": {"type": type_, "uniqueItems": True}}


def _path_parameter(name: str) -> JSON:
    return {"name": name, "in": "path", "required": True,
            "schema": {"type": "string", "uniqueItems": True}}


_WRITE = [_query("dryRun"), _query("fieldManager"), _query("fieldValidation")]
_PARAMETERS: dict[str, list[JSON]] = {
    "list": [_query("allowWatchBookmarks", "boolean"), _query("continue"),
             _query("fieldSelector"), _query("labelSelector"), _query("limit", "integer"),
             _query("resourceVersion"), _query("resourceVersionMatch"),
             _query("sendInitialEvents", "boolean"), _query("timeoutSeconds", "integer"),
             _query("watch", "boolean")],
    "get": [],
    "create": _WRITE, "update": _WRITE, "patch": [*_WRITE, _query("force", "boolean")],
    "delete": [_query("dryRun"), _query("gracePeriodSeconds", "integer"),
               _query("propagationPolicy")],
    "deletecollection": [_query("dryRun"), _query("labelSelector"), _query("fieldSelector")],
}


def group_version_path(group: str, version: str) -> str:
    """The index's key of a group-version: `api/v1`, or `apis/<group>/<version>`."""
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _camel(group: str, version: str) -> str:
    """`AppsV1`, `CoreV1`, `RbacAuthorizationV1`: a group-version in operation ids."""
    name = group.removesuffix(".k8s.io") if group else "core"
    return "".join(part.capitalize() for part in name.split(".")) + version.capitalize()


def _operation(rt: ResourceType, verb: str, served_as: str, namespaced: bool) -> JSON:
    _, prefix, action = _VERBS[verb]
    plural, _, sub = rt.plural.partition("/")
    owner = _OWNERS.get(plural, rt.kind) if sub else rt.kind
    scope = "Namespaced" if namespaced and rt.namespaced else ""
    every = "ForAllNamespaces" if rt.namespaced and not namespaced else ""
    operation: JSON = {
        "operationId": f"{prefix}{served_as}{scope}{owner}{sub.capitalize()}{every}",
        "parameters": list(_PARAMETERS[verb]),
        "responses": {"200": {"description": "OK"}, "401": {"description": "Unauthorized"}},
        "x-kubernetes-action": action,
        "x-kubernetes-group-version-kind": {"group": rt.group, "version": rt.version,
                                            "kind": rt.kind},
    }
    if verb == "patch":
        types = ("application/apply-patch+yaml", *_PATCH_TYPES) if rt.plural in _APPLIED \
            else _PATCH_TYPES
        operation["requestBody"] = {"content": {t: {} for t in types}, "required": True}
    elif verb in ("create", "update"):
        operation["requestBody"] = {"content": {"application/json": {}}, "required": True}
    return operation


def _paths(group: str, version: str, resources: Iterable[ResourceType]) -> JSON:
    root = f"/{group_version_path(group, version)}"
    served_as = _camel(group, version)
    paths: dict[str, JSON] = {}

    def add(path: str, verb: str, rt: ResourceType, namespaced: bool, names: list[str]) -> None:
        entry = paths.setdefault(path, {"parameters": [_path_parameter(n) for n in names]})
        entry[_VERBS[verb][0]] = _operation(rt, verb, served_as, namespaced)

    for rt in resources:
        plural, _, sub = rt.plural.partition("/")
        parent, names = (f"{root}/namespaces/{{namespace}}", ["namespace"]) if rt.namespaced \
            else (root, [])
        base = f"{parent}/{plural}"
        item = f"{base}/{{name}}" + (f"/{sub}" if sub else "")
        for verb in rt.verbs:
            if verb == "watch":
                continue  # a list with `watch=true`
            if verb in ("get", "update", "patch", "delete") or (verb == "create" and sub):
                add(item, verb, rt, True, [*names, "name"])
            elif verb in ("list", "create", "deletecollection"):
                add(base, verb, rt, True, names)
                if verb == "list" and rt.namespaced:
                    add(f"{root}/{plural}", verb, rt, False, [])
    return paths


@functools.cache
def definitions(release: str) -> Mapping[str, JSON]:
    """kubernetes-validate's definitions of every kind of Kubernetes `release` ("1.32"), by
    their OpenAPI names, and metrics-server's; none without kubernetes-validate or for a
    release it does not know."""
    spec = importlib.util.find_spec("kubernetes_validate")
    if spec is None or spec.origin is None:
        return {}
    path = (Path(spec.origin).parent / "kubernetes-json-schema" / f"v{release}.0-local"
            / "_definitions.json")
    try:
        official: Mapping[str, JSON] = json.loads(path.read_text())["$defs"]
    except (OSError, ValueError, KeyError):
        return {}
    return {**official, **_metrics_definitions(official), **_keda_definitions(official)}


_METRICS = "io.k8s.metrics.pkg.apis.metrics.v1beta1."
_META = "io.k8s.apimachinery.pkg.apis.meta.v1."
_MORE_INFO = "More info: https://git.k8s.io/community/contributors/devel/sig-architecture/"


def _metrics_definitions(official: Mapping[str, JSON]) -> dict[str, JSON]:
    """metrics-server's kinds (metrics.k8s.io/v1beta1, from k8s.io/metrics), in the JSON Schema
    form of the official definitions, which do not carry them: an aggregated API publishes its
    own. Their apiVersion and kind read as every kind's (taken from Pod's), each pinned to its
    own value as the JSON Schema form pins them."""
    common = official.get("io.k8s.api.core.v1.Pod", {}).get("properties", {})
    if not common:
        return {}

    def pinned(kind: str) -> JSON:
        return {"apiVersion": {**common["apiVersion"], "enum": ["metrics.k8s.io/v1beta1"]},
                "kind": {**common["kind"], "enum": [kind]}}

    usage = {"type": "object", "description": "The memory usage is the memory working set.",
             "additionalProperties": {"$ref": f"{_DEFS}io.k8s.apimachinery.pkg.api.resource."
                                                f"Quantity"}}

    def kind(name: str, description: str, fields: JSON, required: list[str]) -> JSON:
        return {"description": description, "type": "object", "required": required,
                "properties": {**pinned(name),
                               "metadata": {"$ref": f"{_DEFS}{_META}ObjectMeta",
                                            "description": "Standard object's metadata. "
                                                           f"{_MORE_INFO}api-conventions.md"
                                                           "#metadata"},
                               "timestamp": {"$ref": f"{_DEFS}{_META}Time",
                                             "description": "The following fields define time "
                                                            "interval from which metrics were "
                                                            "collected from the interval "
                                                            "[Timestamp-Window, Timestamp]."},
                               "window": {"$ref": f"{_DEFS}{_META}Duration"}, **fields},
                "x-kubernetes-group-version-kind": [
                    {"group": "metrics.k8s.io", "kind": name, "version": "v1beta1"}]}

    def listing(name: str, of: str) -> JSON:
        return {"description": f"{name}List is a list of {name}.", "type": "object",
                "required": ["items"],
                "properties": {**pinned(f"{name}List"),
                               "metadata": {"$ref": f"{_DEFS}{_META}ListMeta",
                                            "description": "Standard list metadata. "
                                                           f"{_MORE_INFO}api-conventions.md"
                                                           "#types-kinds"},
                               "items": {"description": f"List of {of} metrics.",
                                         "type": "array",
                                         "items": {"$ref": f"{_DEFS}{_METRICS}{name}"}}},
                "x-kubernetes-group-version-kind": [
                    {"group": "metrics.k8s.io", "kind": f"{name}List", "version": "v1beta1"}]}

    return {
        f"{_METRICS}NodeMetrics": kind(
            "NodeMetrics", "NodeMetrics sets resource usage metrics of a node.",
            {"usage": usage}, ["timestamp", "window", "usage"]),
        f"{_METRICS}NodeMetricsList": listing("NodeMetrics", "node"),
        f"{_METRICS}PodMetrics": kind(
            "PodMetrics", "PodMetrics sets resource usage metrics of a pod.",
            {"containers": {"description": "Metrics for all containers are collected within "
                                           "the same time window.", "type": "array",
                            "items": {"$ref": f"{_DEFS}{_METRICS}ContainerMetrics"}}},
            ["timestamp", "window", "containers"]),
        f"{_METRICS}PodMetricsList": listing("PodMetrics", "pod"),
        f"{_METRICS}ContainerMetrics": {
            "description": "ContainerMetrics sets resource usage metrics of a container.",
            "type": "object", "required": ["name", "usage"],
            "properties": {"name": {"description": "Container name corresponding to the one "
                                                   "from pod.spec.containers.",
                                    "type": "string"},
                           "usage": usage}},
        f"{_META}Duration": {
            "description": "Duration is a wrapper around time.Duration which supports correct "
                           "marshaling to YAML and JSON. In particular, it marshals into "
                           "strings, which can be used as map keys in json.",
            "type": "string"},
    }


_KEDA = "sh.keda.v1alpha1."


def _inline(node: Any, official: Mapping[str, JSON]) -> Any:
    """`node` with every reference replaced by what it refers to, as a CRD's schema is written
    (whole, with no references), a description beside a reference kept over the referred one's."""
    if isinstance(node, list):
        return [_inline(n, official) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _inline(v, official) for k, v in node.items() if k != "$ref"}
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith(_DEFS):
        return {**_inline(official[ref.removeprefix(_DEFS)], official), **out}
    return out


def _keda_definitions(official: Mapping[str, JSON]) -> dict[str, JSON]:
    """KEDA's ScaledObject (keda.sh/v1alpha1) and its list, as the apiserver publishes a CRD's
    schema: the CRD's own schema, whole, with the standard metadata, apiVersion and kind beside
    it. The fields are those of KEDA 2's ScaledObject CRD; `advanced.horizontalPodAutoscalerConfig
    .behavior` is the HPA's own (autoscaling/v2), as KEDA passes it on."""
    pod = official.get("io.k8s.api.core.v1.Pod", {}).get("properties", {})
    pod_list = official.get("io.k8s.api.core.v1.PodList", {}).get("properties", {})
    behavior = official.get("io.k8s.api.autoscaling.v2.HorizontalPodAutoscalerBehavior")
    if not pod or not pod_list or behavior is None:
        return {}
    int32: JSON = {"type": "integer", "format": "int32"}
    string: JSON = {"type": "string"}

    def obj(description: str, properties: JSON, required: list[str] | None = None) -> JSON:
        return {"description": description, "type": "object", "properties": properties,
                **({"required": required} if required else {})}

    def counted(description: str) -> JSON:
        return {**int32, "description": description}

    spec = obj("ScaledObjectSpec is the spec for a ScaledObject resource", {
        "advanced": obj("AdvancedConfig specifies advance scaling options", {
            "horizontalPodAutoscalerConfig": obj(
                "HorizontalPodAutoscalerConfig specifies horizontal scale config", {
                    "behavior": _inline(behavior, official),
                    "name": {**string, "description": "the name of the HPA that KEDA "
                                                      "creates (default keda-hpa-<name>)"}}),
            "restoreToOriginalReplicaCount": {
                "type": "boolean", "description": "scale the target back to the count it had "
                                                  "before the ScaledObject when it is deleted"},
        }),
        "cooldownPeriod": counted("seconds to wait after the last active trigger before "
                                  "scaling to minReplicaCount or 0 (default 300)"),
        "fallback": obj("Fallback is the spec for fallback options", {
            "failureThreshold": counted("failed reads of a scaler before the fallback"),
            "replicas": counted("the count to scale to after failureThreshold failures")},
            ["failureThreshold", "replicas"]),
        "idleReplicaCount": counted("the count while no trigger is active"),
        "initialCooldownPeriod": counted("seconds after creation before a scale to 0"),
        "maxReplicaCount": counted("the most replicas KEDA scales to (default 100)"),
        "minReplicaCount": counted("the fewest replicas KEDA scales to (default 0)"),
        "pollingInterval": counted("seconds between reads of each trigger (default 30)"),
        "scaleTargetRef": obj("ScaleTarget holds the reference to the scale target Object", {
            "apiVersion": string, "envSourceContainerName": string, "kind": string,
            "name": string}, ["name"]),
        "triggers": {"type": "array", "items": obj(
            "ScaleTriggers reference the scaler that will be used", {
                "authenticationRef": obj(
                    "ScaledObjectAuthRef points to the TriggerAuthentication or "
                    "ClusterTriggerAuthentication object that is used to authenticate the "
                    "scaler with the environment", {
                        "kind": {**string, "description": "Kind of the resource being "
                                                          "referred to. Defaults to "
                                                          "TriggerAuthentication."},
                        "name": string}, ["name"]),
                "metadata": {"type": "object", "additionalProperties": string},
                "metricType": {**string, "description": "MetricTargetType specifies the type "
                                                        "of metric being targeted, and should "
                                                        "be either \"Value\", \"AverageValue\", "
                                                        "or \"Utilization\""},
                "name": string, "type": string, "useCachedMetrics": {"type": "boolean"}},
            ["metadata", "type"])},
    }, ["scaleTargetRef", "triggers"])
    condition = obj("Condition to store the condition state", {
        "message": {**string, "description": "A human readable message indicating details "
                                             "about the transition."},
        "reason": {**string, "description": "The reason for the condition's last transition."},
        "status": {**string, "description": "Status of the condition, one of True, False, "
                                            "Unknown."},
        "type": {**string, "description": "Type of condition"}}, ["status", "type"])
    status = obj("ScaledObjectStatus is the status for a ScaledObject resource", {
        "conditions": {"type": "array", "items": condition,
                       "description": "Conditions an array representation to store multiple "
                                      "Conditions"},
        "externalMetricNames": {"type": "array", "items": string},
        "health": {"type": "object", "additionalProperties": obj(
            "HealthStatus is the status for a ScaledObject's health", {
                "numberOfFailures": int32,
                "status": {**string, "description": "HealthStatusType is an indication of "
                                                    "whether the health status is happy or "
                                                    "failing"}})},
        "hpaName": string,
        "lastActiveTime": {"type": "string", "format": "date-time"},
        "originalReplicaCount": int32, "pausedReplicaCount": int32,
        "resourceMetricNames": {"type": "array", "items": string},
        "scaleTargetKind": string})

    def gvk(kind: str) -> list[JSON]:
        return [{"group": "keda.sh", "kind": kind, "version": "v1alpha1"}]

    def pinned(common: JSON, kind: str) -> JSON:
        return {"apiVersion": {**common["apiVersion"], "enum": ["keda.sh/v1alpha1"]},
                "kind": {**common["kind"], "enum": [kind]}}

    return {
        f"{_KEDA}ScaledObject": {
            "description": "ScaledObject is a specification for a ScaledObject resource",
            "type": "object", "required": ["spec"],
            "properties": {**pinned(pod, "ScaledObject"), "metadata": pod["metadata"],
                           "spec": spec, "status": status},
            "x-kubernetes-group-version-kind": gvk("ScaledObject")},
        f"{_KEDA}ScaledObjectList": {
            "description": "ScaledObjectList is a list of ScaledObject",
            "type": "object", "required": ["items"],
            "properties": {**pinned(pod_list, "ScaledObjectList"),
                           "metadata": pod_list["metadata"],
                           "items": {"description": "List of scaledobjects. More info: "
                                                    "https://k8s.io/docs/reference/using-api/"
                                                    "api-concepts/#collections",
                                     "type": "array",
                                     "items": {"$ref": f"{_DEFS}{_KEDA}ScaledObject"}}},
            "x-kubernetes-group-version-kind": gvk("ScaledObjectList")},
    }


#: Definitions whose JSON Schema form is not the apiserver's: in its OpenAPI v3 documents, the
#: union of their `OpenAPIV3OneOfTypes` (kubectl explain names them <IntOrString>, <Quantity>).
_AS_SERVED: dict[str, JSON] = {
    "io.k8s.apimachinery.pkg.util.intstr.IntOrString": {
        "oneOf": [{"type": "integer"}, {"type": "string"}], "format": "int-or-string"},
    "io.k8s.apimachinery.pkg.api.resource.Quantity": {
        "oneOf": [{"type": "string"}, {"type": "number"}]},
}
_DEFS = "#/$defs/"


def _openapi_form(node: Any) -> Any:
    """A JSON Schema node as the apiserver's OpenAPI v3 writes it: a type without "null", and
    a reference with a description beside it wrapped in `allOf`."""
    if isinstance(node, list):
        return [_openapi_form(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _openapi_form(v) for k, v in node.items() if k != "$ref"}
    types = out.get("type")
    if isinstance(types, list):
        types = [t for t in types if t != "null"]
        out["type"] = types[0] if len(types) == 1 else types
    if "$ref" in node:
        ref = {"$ref": "#/components/schemas/" + node["$ref"].removeprefix(_DEFS)}
        return {"allOf": [ref], **out} if out else ref
    return out


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, list):
        for n in node:
            yield from _refs(n)
    elif isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith(_DEFS):
            yield ref.removeprefix(_DEFS)
        for v in node.values():
            yield from _refs(v)


def schemas(kinds: Iterable[tuple[str, str, str]], *, release: str) -> dict[str, JSON]:
    """`components.schemas` for the (group, version, kind)s served and their lists: each
    kind's definition and every definition it refers to, in the OpenAPI form."""
    known = definitions(release)
    wanted = {(g, v, k + suffix) for g, v, k in kinds for suffix in ("", "List")}
    todo = [name for name, d in known.items()
            if any((gvk.get("group", ""), gvk.get("version"), gvk.get("kind")) in wanted
                   for gvk in d.get("x-kubernetes-group-version-kind", ()))]
    found: dict[str, JSON] = {}
    while todo:
        name = todo.pop()
        if name in found or name not in known:
            continue
        definition = known[name]
        if name in _AS_SERVED:
            found[name] = dict(_AS_SERVED[name])
            continue
        schema = _openapi_form(definition)
        if "x-kubernetes-group-version-kind" in definition:
            for field in ("apiVersion", "kind"):  # the JSON Schema form pins them; not the API
                schema.get("properties", {}).get(field, {}).pop("enum", None)
        found[name] = schema
        todo.extend(_refs(definition))
    return dict(sorted(found.items()))


def document(group: str, version: str, resources: Iterable[ResourceType], *,
             server_version: str, release: str) -> JSON:
    """The OpenAPI v3 document of one group-version of a server of `server_version`, with
    the schemas of Kubernetes `release` ("1.32")."""
    resources = tuple(resources)
    return {"openapi": OPENAPI_VERSION,
            "info": {"title": "Kubernetes", "version": server_version},
            "paths": _paths(group, version, resources),
            "components": {"schemas": schemas(
                {(rt.group, rt.version, rt.kind) for rt in resources}, release=release)}}


@functools.cache
def documents(served: tuple[tuple[str, str, tuple[ResourceType, ...]], ...], *,
              server_version: str, release: str) -> tuple[dict[str, JSON], JSON]:
    """The document of each served (group, version, resources), by its path, and the index:
    built once per server, since what it serves does not change."""
    docs = {group_version_path(group, version):
            document(group, version, resources, server_version=server_version,
                     release=release)
            for group, version, resources in served}
    return docs, index(docs)


def digest(doc: JSON) -> str:
    """A document's `hash`, as the apiserver's: SHA-512 of its bytes, upper-case hex."""
    return hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest().upper()


def index(documents: Mapping[str, JSON]) -> JSON:
    """`/openapi/v3`: each group-version's document by its path, with its hash."""
    return {"paths": {path: {"serverRelativeURL": f"/openapi/v3/{path}?hash={digest(doc)}"}
                      for path, doc in documents.items()}}
