"""The simulated Kubernetes API server: `KubeState` over the real wire format, with aiohttp.

`kubectl` and kubernetes_asyncio (the live adapters in `autoscaler/kube/`) talk to it unchanged:
discovery, Deployments with the `scale` subresource (get/put/patch with resourceVersion
preconditions, each write recorded in `managedFields` under its field manager, and server-side apply
of a Deployment and of its scale) and their read-only ReplicaSets, Pods (list/watch/delete/patch,
label and field selectors), the Eviction subresource, Events (core/v1, and events.k8s.io/v1 to read
and watch), Leases, PodDisruptionBudgets, HPAs (autoscaling/v2), KEDA ScaledObjects (when
"installed"), the one Node, metrics.k8s.io PodMetrics and NodeMetrics, and the reviews of what the
caller may do and who it is (`kubectl auth can-i [--list]`, `auth whoami`), read-only:
ServiceAccounts, the Roles and RoleBindings of the tokens bound to Roles (as they authorize at that
moment) and the apiserver's own `kubernetes` Service (`kubectl cluster-info`). Errors are real
`Status` objects. `kubectl get` gets server-side Tables (its usual columns) for pods, deployments,
events, nodes, leases, HPAs, services, service accounts, roles and role bindings, plain JSON for the
rest. Lists come in the apiserver's key order and in chunks when asked (`limit` and `continue`, see
`paging.py`). Tokens bound to a Role are authorized as RBAC would (`rbac.py`). `/openapi/v3` serves
the documents kubectl reads before it writes (`openapi.py`).

`serve()` runs any aiohttp app of the simulator on loopback (shared by the Pulsar,
Elasticsearch and Prometheus fakes); `write_kubeconfig()` points kubectl at this server.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import dataclasses
import hmac
import json
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from aiohttp.typedefs import Handler as AioHandler
from aiohttp.typedefs import Middleware

from autoscaler.sim import kubestate as ks
from autoscaler.sim import managed, openapi, protobuf
from autoscaler.sim.kubestate import (
    JSON,
    ApiError,
    BadRequestError,
    FieldSelector,
    GoneError,
    InvalidError,
    KubeState,
    LabelSelector,
    LeaseSpec,
    MethodNotAllowedError,
    NotFoundError,
    ResourceType,
    UnauthorizedError,
    UnsupportedMediaTypeError,
    WatchEvent,
)
from autoscaler.sim.paging import Page, Pager, limit_of
from autoscaler.sim.rbac import RBAC_GROUP, Grant, public

KUBE_VERSION = ("1", "32")
DEFAULT_WATCH_SECONDS = 1800.0
#: How long a list waits for a resourceVersion the server has not reached (the watch cache's 3 s).
TOO_LARGE_WAIT_SECONDS = 3.0

#: Served group-versions and their resources (subresources as `plural/sub`), in discovery order.
_CORE_RESOURCES = (ks.NAMESPACES, ks.NODES, ks.PODS, ks.EVICTION, ks.POD_LOG, ks.EVENTS,
                   ks.SERVICES, ks.SERVICE_ACCOUNTS)
_GROUPS: dict[str, tuple[str, tuple[ResourceType, ...]]] = {
    "apps": ("v1", (ks.DEPLOYMENTS, ks.SCALE, ks.REPLICA_SETS)),
    "events.k8s.io": ("v1", (ks.EVENTS_V1,)),
    "autoscaling": ("v2", (ks.HPAS,)),
    "policy": ("v1", (ks.PDBS,)),
    "coordination.k8s.io": ("v1", (ks.LEASES,)),
    "metrics.k8s.io": ("v1beta1", (ks.NODE_METRICS, ks.POD_METRICS)),
    "keda.sh": ("v1alpha1", (ks.SCALED_OBJECTS,)),
    "authorization.k8s.io": ("v1", (ks.SELF_SUBJECT_ACCESS_REVIEWS,
                                    ks.SELF_SUBJECT_RULES_REVIEWS)),
    "authentication.k8s.io": ("v1", (ks.SELF_SUBJECT_REVIEWS,)),
    RBAC_GROUP: ("v1", (ks.ROLES, ks.ROLE_BINDINGS)),
}
#: `kubectl get all`: the kinds in the "all" category, by (group, plural).
_CATEGORIES = {("", "pods"): ["all"], ("apps", "deployments"): ["all"],
               ("apps", "replicasets"): ["all"], ("", "services"): ["all"],
               ("autoscaling", "horizontalpodautoscalers"): ["all"]}

APPLY_PATCH = "application/apply-patch+yaml"  # server-side apply: Deployments, their scale
_PATCH_TYPES = frozenset({
    "application/json-patch+json", "application/merge-patch+json",
    "application/strategic-merge-patch+json",
})


@dataclass(frozen=True, slots=True)
class _Target:
    """What a request path names."""

    group: str
    version: str
    namespace: str | None
    plural: str
    name: str | None
    sub: str | None

    @property
    def resource(self) -> str:
        return f"{self.plural}/{self.sub}" if self.sub else self.plural

    @property
    def fault_resource(self) -> str:
        # "podmetrics" or "nodemetrics": the metrics group's plurals are the core group's
        return f"{self.plural[:-1]}metrics" if self.group == "metrics.k8s.io" else self.resource


def _read_path(version: str, rest: list[str], *, group: str = "") -> _Target | None:
    """What the part of a path after its group version names (`[namespaces/NS/]plural[/name
    [/sub]]`), as the apiserver reads any path; None when it names no resource."""
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    if not rest or len(rest) > 3:
        return None
    return _Target(group, version, namespace, rest[0], rest[1] if len(rest) > 1 else None,
                   rest[2] if len(rest) > 2 else None)


Handler = Callable[[web.Request, _Target], Awaitable[web.StreamResponse]]


def _json_response(body: Any, status: int = 200,
                   headers: Mapping[str, str] | None = None) -> web.Response:
    # `application/json` without a charset, as the apiserver's Content-Type is
    return web.Response(body=json.dumps(body).encode(), status=status,
                        headers={"Content-Type": "application/json", **(headers or {})})


def _error_response(err: ApiError) -> web.Response:
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(err.retry_after)))
    return _json_response(err.status(), err.code, headers)


def _success(code: int = 200, details: JSON | None = None) -> JSON:
    body: JSON = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}
    if details:
        body["details"] = details
    body["code"] = code
    return body


def _list(kind: str, api_version: str, page: Page) -> JSON:
    """A List as the apiserver sends it: items without kind/apiVersion."""
    stripped = [{k: v for k, v in item.items() if k not in ("kind", "apiVersion")}
                for item in page.items]
    return {"kind": f"{kind}List", "apiVersion": api_version, "metadata": page.list_meta(),
            "items": stripped}


# ---------------------------------------------------------------------------------------------
# Patches, as kubectl and the clients send them.


def _merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 merge patch; strategic-merge directives (`$patch`, ...) are ignored, which is
    exact for the fields served here (no merge-keyed lists are patched)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$"):
            continue
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge_patch(out.get(key), value)
    return out


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise InvalidError(f"invalid JSON pointer {path!r}")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _parent(doc: Any, tokens: list[str]) -> tuple[Any, str]:
    cur = doc
    for token in tokens[:-1]:
        if isinstance(cur, list):
            cur = cur[int(token)]
        elif isinstance(cur, dict):
            cur = cur[token]
        else:
            raise KeyError(token)
    return cur, tokens[-1]


def _get(doc: Any, tokens: list[str]) -> Any:
    if not tokens:
        return doc
    parent, last = _parent(doc, tokens)
    return parent[int(last)] if isinstance(parent, list) else parent[last]


def _json_patch(doc: Any, ops: Any) -> Any:
    """RFC 6902 JSON patch (add, remove, replace, test, copy, move)."""
    if not isinstance(ops, list):
        raise BadRequestError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(doc)
    for op in ops:
        try:
            kind, tokens = op["op"], _pointer(op["path"])
            if kind == "test":
                if _get(doc, tokens) != op["value"]:
                    raise InvalidError(f"the test at {op['path']} failed")
                continue
            value: Any = None
            if kind in ("copy", "move"):
                value = copy.deepcopy(_get(doc, _pointer(op["from"])))
                if kind == "move":
                    doc = _json_patch(doc, [{"op": "remove", "path": op["from"]}])
                kind = "add"
            elif kind in ("add", "replace"):
                value = copy.deepcopy(op["value"])
            elif kind != "remove":
                raise InvalidError(f"unknown JSON patch operation {kind!r}")
            if not tokens:
                doc = value
                continue
            parent, last = _parent(doc, tokens)
            if kind == "remove":
                del parent[int(last) if isinstance(parent, list) else last]
            elif isinstance(parent, list):
                index = len(parent) if last == "-" else int(last)
                if kind == "add":
                    parent.insert(index, value)
                else:
                    parent[index] = value
            else:
                if kind == "replace" and last not in parent:
                    raise KeyError(last)
                parent[last] = value
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise InvalidError(f"the JSON patch could not be applied: {exc!r}") from None
    return doc


def _unsupported_patch(*, applies: bool = False) -> UnsupportedMediaTypeError:
    accepted = [*sorted(_PATCH_TYPES), *([APPLY_PATCH] if applies else [])]
    return UnsupportedMediaTypeError(
        "the body of the request was in an unknown format - accepted media types include: "
        + ", ".join(accepted))


async def _patch_body(request: web.Request, *, applies: bool = False) -> JSON:
    """A patch's body, its Content-Type checked first, as the apiserver does: a type it does
    not take is the 415, whatever the body (`applies`: server-side apply is one of them)."""
    if request.content_type not in _PATCH_TYPES:
        raise _unsupported_patch(applies=applies)
    return await _body(request)


def apply_patch(doc: JSON, patch: Any, content_type: str) -> JSON:
    """Apply a patch of the given Content-Type; 415 for types this server does not speak."""
    if content_type == "application/json-patch+json":
        result = _json_patch(doc, patch)
    elif content_type in _PATCH_TYPES:
        result = _merge_patch(doc, patch)
    else:
        raise _unsupported_patch()
    if not isinstance(result, dict):
        raise InvalidError("the patched object is not an object")
    return result


# ---------------------------------------------------------------------------------------------
# Server-side printing: the `Table` kubectl asks for, so `kubectl get` shows its usual columns.


def human_age(seconds: float) -> str:
    """apimachinery's `duration.HumanDuration`, as the AGE column shows it."""
    s = max(0, int(seconds))
    if s < 120:
        return f"{s}s"
    m, h, d = s // 60, s // 3600, s // 86400
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if h < 3:
        return f"{m}m"
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    if d < 8:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    return f"{d}d" if d < 730 else f"{d // 365}y"


def _age(obj: JSON, now: float, key: str = "creationTimestamp") -> str:
    stamp = obj.get("metadata", {}).get(key) or obj.get(key)
    return human_age(now - ks.parse_time(stamp)) if stamp else "<unknown>"


def _pod_cells(pod: JSON, now: float) -> list[Any]:
    statuses = pod["status"].get("containerStatuses", [])
    ready = sum(1 for c in statuses if c.get("ready"))
    waiting = next((c["state"]["waiting"].get("reason") for c in statuses
                    if "waiting" in c.get("state", {})), None)
    restarts = sum(c.get("restartCount", 0) for c in statuses)
    finished = [c["lastState"]["terminated"]["finishedAt"] for c in statuses
                if "terminated" in c.get("lastState", {})]
    restart_text = f"{restarts} ({human_age(now - ks.parse_time(finished[0]))} ago)" \
        if restarts and finished else str(restarts)
    reason = "Terminating" if "deletionTimestamp" in pod["metadata"] else \
        waiting or pod["status"]["phase"]
    return [pod["metadata"]["name"], f"{ready}/{len(statuses)}", reason, restart_text,
            _age(pod, now), pod["status"].get("podIP", "<none>"),
            pod["spec"].get("nodeName", "<none>"), "<none>", "<none>"]


def _deployment_cells(d: JSON, now: float) -> list[Any]:
    status = d["status"]
    return [d["metadata"]["name"], f"{status.get('readyReplicas', 0)}/{d['spec']['replicas']}",
            status.get("updatedReplicas", 0), status.get("availableReplicas", 0), _age(d, now),
            ",".join(c["name"] for c in d["spec"]["template"]["spec"]["containers"]),
            ",".join(c["image"] for c in d["spec"]["template"]["spec"]["containers"]),
            ks.selector_string(d["spec"]["selector"]["matchLabels"])]


def _replica_set_cells(rs: JSON, now: float) -> list[Any]:
    status, containers = rs["status"], rs["spec"]["template"]["spec"]["containers"]
    return [rs["metadata"]["name"], rs["spec"]["replicas"], status.get("replicas", 0),
            status.get("readyReplicas", 0), _age(rs, now),
            ",".join(c["name"] for c in containers), ",".join(c["image"] for c in containers),
            ks.selector_string(rs["spec"]["selector"]["matchLabels"])]


def _event_cells(ev: JSON, now: float) -> list[Any]:
    involved = ev["involvedObject"]
    source = ev.get("source") or {}
    by = ", ".join(v for v in (source.get("component") or ev.get("reportingComponent", ""),
                               source.get("host", "")) if v)
    return [_age(ev, now, "lastTimestamp"), ev["type"], ev["reason"],
            f"{involved.get('kind', '').lower()}/{involved.get('name', '')}",
            involved.get("fieldPath", ""), by, ev["message"],
            _age(ev, now, "firstTimestamp"), str(ev.get("count", 1)), ev["metadata"]["name"]]


def _node_cells(node: JSON, now: float) -> list[Any]:
    status, labels = node["status"], node["metadata"].get("labels", {})
    ready = next((c["status"] for c in status["conditions"] if c["type"] == "Ready"), "Unknown")
    state = {"True": "Ready", "False": "NotReady"}.get(ready, "Unknown")
    if node["spec"].get("unschedulable"):
        state += ",SchedulingDisabled"
    roles = sorted(k.split("/", 1)[1] for k in labels if k.startswith("node-role.kubernetes.io/"))
    addresses = {a["type"]: a["address"] for a in status.get("addresses", [])}
    info = status["nodeInfo"]
    return [node["metadata"]["name"], state, ",".join(roles) or "<none>", _age(node, now),
            info["kubeletVersion"], addresses.get("InternalIP", "<none>"),
            addresses.get("ExternalIP", "<none>"), info["osImage"], info["kernelVersion"],
            info["containerRuntimeVersion"]]


def _hpa_cells(hpa: JSON, now: float) -> list[Any]:
    spec = hpa["spec"]
    target = spec["metrics"][0]["resource"]["target"].get("averageUtilization", "")
    return [hpa["metadata"]["name"],
            f"{spec['scaleTargetRef']['kind']}/{spec['scaleTargetRef']['name']}",
            f"cpu: <unknown>/{target}%", spec.get("minReplicas", 1), spec["maxReplicas"],
            hpa["status"].get("currentReplicas", 0), _age(hpa, now)]


def _service_cells(svc: JSON, now: float) -> list[Any]:
    spec = svc["spec"]
    ports = ",".join(f"{p['port']}/{p.get('protocol', 'TCP')}" for p in spec.get("ports", []))
    return [svc["metadata"]["name"], spec["type"], spec.get("clusterIP", "<none>"),
            ",".join(spec.get("externalIPs", [])) or "<none>", ports or "<none>",
            _age(svc, now), ks.selector_string(spec["selector"]) if spec.get("selector")
            else "<none>"]


def _role_binding_cells(binding: JSON, now: float) -> list[Any]:
    subjects = binding.get("subjects", [])

    def named(kind: str) -> str:
        return ", ".join(f"{s['namespace']}/{s['name']}" if kind == "ServiceAccount"
                         else s["name"] for s in subjects if s["kind"] == kind)

    ref = binding["roleRef"]
    return [binding["metadata"]["name"], f"{ref['kind']}/{ref['name']}", _age(binding, now),
            named("User"), named("Group"), named("ServiceAccount")]


_Column = tuple[str, str, int]
_TABLES: dict[str, tuple[tuple[_Column, ...], Callable[[JSON, float], list[Any]]]] = {
    "pods": ((("Name", "string", 0), ("Ready", "string", 0), ("Status", "string", 0),
              ("Restarts", "string", 0), ("Age", "string", 0), ("IP", "string", 1),
              ("Node", "string", 1), ("Nominated Node", "string", 1),
              ("Readiness Gates", "string", 1)), _pod_cells),
    "deployments": ((("Name", "string", 0), ("Ready", "string", 0),
                     ("Up-to-date", "integer", 0), ("Available", "integer", 0),
                     ("Age", "string", 0), ("Containers", "string", 1),
                     ("Images", "string", 1), ("Selector", "string", 1)), _deployment_cells),
    "replicasets": ((("Name", "string", 0), ("Desired", "integer", 0), ("Current", "integer", 0),
                     ("Ready", "integer", 0), ("Age", "string", 0), ("Containers", "string", 1),
                     ("Images", "string", 1), ("Selector", "string", 1)), _replica_set_cells),
    # The name last and hidden, as the apiserver's event printer has it.
    "events": ((("Last Seen", "string", 0), ("Type", "string", 0), ("Reason", "string", 0),
                ("Object", "string", 0), ("Subobject", "string", 1), ("Source", "string", 1),
                ("Message", "string", 0), ("First Seen", "string", 1), ("Count", "string", 1),
                ("Name", "string", 1)), _event_cells),
    "nodes": ((("Name", "string", 0), ("Status", "string", 0), ("Roles", "string", 0),
               ("Age", "string", 0), ("Version", "string", 0), ("Internal-IP", "string", 1),
               ("External-IP", "string", 1), ("OS-Image", "string", 1),
               ("Kernel-Version", "string", 1), ("Container-Runtime", "string", 1)),
              _node_cells),
    "leases": ((("Name", "string", 0), ("Holder", "string", 0), ("Age", "string", 0)),
               lambda le, now: [le["metadata"]["name"], le["spec"].get("holderIdentity", ""),
                                _age(le, now)]),
    "services": ((("Name", "string", 0), ("Type", "string", 0), ("Cluster-IP", "string", 0),
                  ("External-IP", "string", 0), ("Port(s)", "string", 0), ("Age", "string", 0),
                  ("Selector", "string", 1)), _service_cells),
    "serviceaccounts": ((("Name", "string", 0), ("Secrets", "string", 0), ("Age", "string", 0)),
                        lambda sa, now: [sa["metadata"]["name"], len(sa.get("secrets", [])),
                                         _age(sa, now)]),
    "roles": ((("Name", "string", 0), ("Created At", "date", 0)),
              lambda role, now: [role["metadata"]["name"],
                                 role["metadata"]["creationTimestamp"]]),
    "rolebindings": ((("Name", "string", 0), ("Role", "string", 0), ("Age", "string", 0),
                      ("Users", "string", 1), ("Groups", "string", 1),
                      ("ServiceAccounts", "string", 1)), _role_binding_cells),
    "horizontalpodautoscalers": ((("Name", "string", 0), ("Reference", "string", 0),
                                  ("Targets", "string", 0), ("MinPods", "string", 0),
                                  ("MaxPods", "string", 0), ("Replicas", "string", 0),
                                  ("Age", "string", 0)), _hpa_cells),
}


def wants_table(request: web.Request, resource: str) -> bool:
    return resource in _TABLES and "as=Table" in request.headers.get("Accept", "")


def table(resource: str, objects: Iterable[JSON], rv: int, now: float, *,
          include: str = "Metadata", list_meta: JSON | None = None) -> JSON:
    """A `meta.k8s.io/v1` Table of `objects`. Each row carries what `includeObject` asks for:
    the object's metadata (the default), the whole object (kubectl's `--sort-by` sorts on it),
    or nothing."""
    if include not in ("Metadata", "Object", "None"):
        raise BadRequestError(f'invalid includeObject "{include}": Metadata, Object or None')
    columns, cells = _TABLES[resource]

    def row(obj: JSON) -> JSON:
        out: JSON = {"cells": cells(obj, now)}
        if include == "Object":
            out["object"] = obj
        elif include == "Metadata":
            out["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj["metadata"]}
        return out

    return {
        "kind": "Table", "apiVersion": "meta.k8s.io/v1",
        "metadata": list_meta or {"resourceVersion": str(rv)},
        # kubectl prefixes the column of format "name" with the kind (`pod/...`) when it
        # prints several kinds: the Name column, wherever it is.
        "columnDefinitions": [{"name": name, "type": type_,
                               "format": "name" if name == "Name" else "",
                               "description": "", "priority": priority}
                              for name, type_, priority in columns],
        "rows": [row(obj) for obj in objects],
    }


# ---------------------------------------------------------------------------------------------
# The server.


_GRANT_KEY = web.RequestKey("grant", Grant)
ADMIN_USER = "kubernetes-admin"  # who the admin token (or no token) authenticates as


class _KubeApi:
    def __init__(self, state: KubeState, token: str | None,
                 grants: Mapping[str, Grant]) -> None:
        self.state = state
        self.token = token
        self.grants = grants  # read at each request: a test may change a Role meanwhile
        # The Roles and RoleBindings of the grants are made with the server.
        self.rbac_created, self.rbac_rv = state.wall(), state.resource_version
        for grant in grants.values():
            if grant.namespace:
                state.add_service_account(grant.namespace, grant.account)
        self.watches: set[asyncio.Queue[JSON | None]] = set()
        self.pager = Pager()
        self.handlers: dict[tuple[str, str, str], Handler] = {
            ("", "namespaces", "list"): self.list_namespaces,
            ("", "namespaces", "get"): self.get_namespace,
            ("", "namespaces", "watch"): self.watch_generic,
            ("", "nodes", "list"): self.list_generic,
            ("", "nodes", "watch"): self.watch_generic,
            ("", "nodes", "get"): self.get_node,
            ("", "nodes", "patch"): self.patch_node,
            ("", "pods", "list"): self.list_generic,
            ("", "pods", "watch"): self.watch_generic,
            ("", "pods", "get"): self.get_pod,
            ("", "pods", "delete"): self.delete_pod,
            ("", "pods", "patch"): self.patch_pod,
            ("", "pods/eviction", "create"): self.create_eviction,
            ("", "pods/log", "get"): self.get_pod_log,
            ("", "events", "list"): self.list_generic,
            ("", "events", "watch"): self.watch_generic,
            ("", "events", "get"): self.get_event,
            ("", "events", "create"): self.create_event,
            ("", "services", "list"): self.list_generic,
            ("", "services", "watch"): self.watch_generic,
            ("", "services", "get"): self.get_generic,
            ("", "serviceaccounts", "list"): self.list_generic,
            ("", "serviceaccounts", "watch"): self.watch_generic,
            ("", "serviceaccounts", "get"): self.get_generic,
            (RBAC_GROUP, "roles", "list"): self.list_generic,
            (RBAC_GROUP, "roles", "watch"): self.watch_generic,
            (RBAC_GROUP, "roles", "get"): self.get_generic,
            (RBAC_GROUP, "rolebindings", "list"): self.list_generic,
            (RBAC_GROUP, "rolebindings", "watch"): self.watch_generic,
            (RBAC_GROUP, "rolebindings", "get"): self.get_generic,
            ("apps", "deployments", "list"): self.list_generic,
            ("apps", "deployments", "watch"): self.watch_generic,
            ("apps", "deployments", "get"): self.get_deployment,
            ("apps", "deployments", "patch"): self.patch_deployment,
            ("apps", "replicasets", "list"): self.list_generic,
            ("apps", "replicasets", "get"): self.get_replica_set,
            ("apps", "replicasets", "watch"): self.watch_generic,
            ("apps", "deployments/scale", "get"): self.get_scale,
            ("apps", "deployments/scale", "update"): self.update_scale,
            ("apps", "deployments/scale", "patch"): self.patch_scale,
            ("events.k8s.io", "events", "list"): self.list_events_v1,
            ("events.k8s.io", "events", "get"): self.get_event_v1,
            ("events.k8s.io", "events", "watch"): self.watch_generic,
            ("coordination.k8s.io", "leases", "list"): self.list_generic,
            ("coordination.k8s.io", "leases", "watch"): self.watch_generic,
            ("coordination.k8s.io", "leases", "get"): self.get_lease,
            ("coordination.k8s.io", "leases", "create"): self.create_lease,
            ("coordination.k8s.io", "leases", "update"): self.update_lease,
            ("coordination.k8s.io", "leases", "delete"): self.delete_lease,
            ("autoscaling", "horizontalpodautoscalers", "list"): self.list_generic,
            ("autoscaling", "horizontalpodautoscalers", "watch"): self.watch_generic,
            ("autoscaling", "horizontalpodautoscalers", "get"): self.get_hpa,
            ("policy", "poddisruptionbudgets", "list"): self.list_generic,
            ("policy", "poddisruptionbudgets", "watch"): self.watch_generic,
            ("policy", "poddisruptionbudgets", "get"): self.get_pdb,
            ("keda.sh", "scaledobjects", "list"): self.list_generic,
            ("keda.sh", "scaledobjects", "watch"): self.watch_generic,
            ("keda.sh", "scaledobjects", "get"): self.get_scaled_object,
            ("metrics.k8s.io", "pods", "list"): self.list_pod_metrics,
            ("metrics.k8s.io", "pods", "get"): self.get_pod_metrics,
            ("metrics.k8s.io", "nodes", "list"): self.list_node_metrics,
            ("metrics.k8s.io", "nodes", "get"): self.get_node_metrics,
            ("authorization.k8s.io", "selfsubjectaccessreviews", "create"):
                self.create_self_subject_access_review,
            ("authorization.k8s.io", "selfsubjectrulesreviews", "create"):
                self.create_self_subject_rules_review,
            ("authentication.k8s.io", "selfsubjectreviews", "create"):
                self.create_self_subject_review,
        }

    # -- dispatch ----------------------------------------------------------------------------

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            self._authenticate(request)
            return await self._route(request)
        except ApiError as err:
            return _error_response(err)
        except (TypeError, AttributeError, KeyError, ValueError) as exc:
            # A field of another type than its schema's (a string where an object belongs):
            # the apiserver's decoder refuses the body with a 400, it never answers 500.
            return _error_response(BadRequestError(
                f"the body of the request does not match its schema: {type(exc).__name__}: "
                f"{exc}"))

    def _authenticate(self, request: web.Request) -> None:
        """The admin token, or a token bound to a Role (whose grant the request then carries);
        without a server token, any request is the admin's. The admin may act as another user
        (`Impersonate-User`, kubectl's `--as`: kubectl sends no token over plain HTTP), who then
        has what its grant gives, or nothing."""
        given = request.headers.get("Authorization", "").encode()
        as_user = request.headers.get("Impersonate-User")
        for token, grant in self.grants.items():
            if hmac.compare_digest(given, f"Bearer {token}".encode()):
                if as_user is not None:
                    grant.check("impersonate", "", "users", None, as_user)
                request[_GRANT_KEY] = grant
                return
        if self.token is not None and not hmac.compare_digest(
                given, f"Bearer {self.token}".encode()):
            raise UnauthorizedError("Unauthorized")
        groups = request.headers.getall("Impersonate-Group", [])
        if as_user is not None and "system:masters" not in groups:
            request[_GRANT_KEY] = next((g for g in self.grants.values() if g.user == as_user),
                                       Grant.nothing(as_user))

    def _groups(self) -> dict[str, tuple[str, tuple[ResourceType, ...]]]:
        return {g: v for g, v in _GROUPS.items()
                if g != "keda.sh" or self.state.keda_installed}

    async def _route(self, request: web.Request) -> web.StreamResponse:
        parts = [p for p in request.path.split("/") if p]
        if parts in (["healthz"], ["readyz"], ["livez"]) and request.method == "GET":
            # The apiserver's health endpoints: plain "ok" (`kubectl get --raw /readyz`).
            return web.Response(text="ok", content_type="text/plain")
        groups = self._groups()
        if parts[:2] == ["openapi", "v3"] and request.method == "GET":
            return self._openapi("/".join(parts[2:]), groups)
        discovery = (parts in (["version"], ["api"], ["api", "v1"], ["apis"])
                     or (parts[:1] == ["apis"] and len(parts) in (2, 3)))
        if discovery:
            if request.method != "GET":
                raise _method_not_allowed()
            return self._discovery(request, parts, groups)
        try:
            target = self._target(parts, groups)
        except NotFoundError:
            # As the apiserver, authorization comes before finding out that nothing is there.
            self._authorize_unserved(request, parts)
            raise
        return await self._serve(request, target)

    def _authorize_unserved(self, request: web.Request, parts: list[str]) -> None:
        """The 403 a restricted caller gets for a path the server does not serve, when its
        Role does not allow what the path asks (read as the apiserver reads any path)."""
        grant = request.get(_GRANT_KEY)
        if grant is None or parts[:1] not in (["api"], ["apis"]):
            return
        target = _read_path(parts[1], parts[2:]) if parts[0] == "api" else \
            _read_path(parts[1], parts[3:], group=parts[1])
        if target is not None:
            verb = self._verb(request, target)
            grant.check(verb, target.group, target.resource, target.namespace,
                        self._named(request, target, verb))

    def _discovery(self, request: web.Request, parts: list[str],
                   groups: Mapping[str, tuple[str, tuple[ResourceType, ...]]]) -> web.Response:
        if parts == ["version"]:
            return _json_response(self._version())
        if parts == ["api"]:
            return _json_response({"kind": "APIVersions", "versions": ["v1"],
                                   "serverAddressByClientCIDRs": [
                                       {"clientCIDR": "0.0.0.0/0",
                                        "serverAddress": request.host}]})
        if parts == ["apis"]:
            return _json_response({"kind": "APIGroupList", "apiVersion": "v1",
                                   "groups": [self._group(g, v) for g, (v, _) in
                                              self._groups().items()]})
        if len(parts) >= 2 and parts[0] == "apis" and parts[1] in groups:
            version = groups[parts[1]][0]
            if len(parts) == 2:
                return _json_response({"kind": "APIGroup", "apiVersion": "v1",
                                       **self._group(parts[1], version)})
            if parts[2] == version:
                return _json_response(self._resource_list(parts, groups))
        elif parts == ["api", "v1"]:
            return _json_response(self._resource_list(parts, groups))
        raise _path_not_found()

    async def _serve(self, request: web.Request, target: _Target) -> web.StreamResponse:
        verb = self._verb(request, target)
        grant = request.get(_GRANT_KEY)
        if grant is not None:  # authorization comes first, as in the apiserver
            # A namespace's own object is in that namespace, for a Role to grant it.
            namespace = target.name if target.plural == "namespaces" else target.namespace
            grant.check(verb, target.group, target.resource, namespace,
                        self._named(request, target, verb))
        handler = self.handlers.get((target.group, target.resource, verb))
        if handler is None:
            if any(key[:2] == (target.group, target.resource) for key in self.handlers):
                raise _method_not_allowed()
            raise _path_not_found()
        fault = self.state.faults.take(verb, target.fault_resource)
        if fault is not None:
            if fault.delay > 0:
                # Accepted, then slow (as a slow etcd is): the body is in, so the request
                # completes even if its client gives up or dies meanwhile.
                await request.read()
                await asyncio.sleep(fault.delay)
            err = fault.error()
            if err is not None:
                raise err
        return await handler(request, target)

    @staticmethod
    def _target(parts: list[str],
                groups: Mapping[str, tuple[str, tuple[ResourceType, ...]]]) -> _Target:
        """The resource a path names."""
        target = None
        if len(parts) >= 2 and parts[0] == "api" and parts[1] == "v1":
            target = _read_path("v1", parts[2:])
        elif (len(parts) >= 3 and parts[0] == "apis" and parts[1] in groups
              and groups[parts[1]][0] == parts[2]):
            target = _read_path(parts[2], parts[3:], group=parts[1])
        if target is None:
            raise _path_not_found()
        return target

    @staticmethod
    def _named(request: web.Request, target: _Target, verb: str) -> str | None:
        """The object's name as authorization sees it: a list or watch whose field selector
        requires `metadata.name=X` asks for X, so a rule's `resourceNames` can allow it (as
        the apiserver's RequestInfo reads it)."""
        if target.name is not None or verb not in ("list", "watch"):
            return target.name
        try:
            terms = FieldSelector.parse(request.query.get("fieldSelector")).terms
        except ApiError:
            return None  # a bad selector: the 400 comes after authorization
        return next((value for path, equal, value in terms
                     if path == "metadata.name" and equal), None)

    @staticmethod
    def _verb(request: web.Request, target: _Target) -> str:
        if request.method == "GET":
            if target.name is not None:
                return "get"
            watch = request.query.get("watch", "").lower() in ("1", "true")
            return "watch" if watch else "list"
        if request.method == "DELETE" and target.name is None:
            return "deletecollection"
        return {"POST": "create", "PUT": "update", "PATCH": "patch",
                "DELETE": "delete"}.get(request.method, request.method.lower())

    # -- discovery ---------------------------------------------------------------------------

    @staticmethod
    def _openapi(path: str, groups: Mapping[str, tuple[str, tuple[ResourceType, ...]]]
                 ) -> web.Response:
        """`/openapi/v3` (the index), or the document of the group-version at `path`
        (whatever `hash` the query carries: the index names the current one)."""
        served = (("", "v1", _CORE_RESOURCES),
                  *((group, version, resources) for group, (version, resources) in groups.items()))
        server = _KubeApi._version()["gitVersion"]
        documents, index = openapi.documents(served, server_version=server,
                                             release=".".join(KUBE_VERSION))
        if not path:
            return _json_response(index)
        if path not in documents:
            raise _path_not_found()
        return _json_response(documents[path])

    @staticmethod
    def _version() -> JSON:
        major, minor = KUBE_VERSION
        return {"major": major, "minor": minor, "gitVersion": f"v{major}.{minor}.0-sim",
                "gitCommit": "0" * 40, "gitTreeState": "clean",
                "buildDate": "2025-01-01T00:00:00Z", "goVersion": "go1.23.0", "compiler": "gc",
                "platform": "linux/amd64"}

    @staticmethod
    def _group(name: str, version: str) -> JSON:
        gv = {"groupVersion": f"{name}/{version}", "version": version}
        return {"name": name, "versions": [gv], "preferredVersion": gv}

    def _resource_list(self, parts: list[str],
                       groups: Mapping[str, tuple[str, tuple[ResourceType, ...]]]) -> JSON:
        resources: tuple[ResourceType, ...]
        if parts[0] == "api":
            group_version, resources = "v1", _CORE_RESOURCES
        else:
            group_version, resources = f"{parts[1]}/{parts[2]}", groups[parts[1]][1]
        own_group = "" if parts[0] == "api" else parts[1]
        entries = []
        for rt in resources:
            entry: JSON = {"name": rt.plural, "singularName": rt.singular,
                           "namespaced": rt.namespaced}
            if rt.group != own_group:
                entry.update(group=rt.group, version=rt.version)
            entry.update(kind=rt.kind, verbs=list(rt.verbs))
            if rt.short_names:
                entry["shortNames"] = list(rt.short_names)
            if (rt.group, rt.plural) in _CATEGORIES:
                entry["categories"] = _CATEGORIES[(rt.group, rt.plural)]
            entries.append(entry)
        return {"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
                "resources": entries}

    # -- generic list and watch --------------------------------------------------------------

    @staticmethod
    def _selectors(request: web.Request,
                   resource: str) -> tuple[LabelSelector, FieldSelector]:
        return (LabelSelector.parse(request.query.get("labelSelector")),
                FieldSelector.parse(request.query.get("fieldSelector")).supported_by(resource))

    def _objects(self, plural: str, namespace: str | None) -> list[JSON]:
        """The wire objects of a listable resource in `namespace` (None: all), in key order:
        the state's, or the Roles and RoleBindings of the grants as they are now."""
        if plural not in ("roles", "rolebindings"):
            return list(self.state.objects_json(plural, namespace))
        grants = {(g.namespace, g.role): g for g in self.grants.values()
                  if g.namespace and namespace in (None, g.namespace)}
        out = []
        for (ns, name), grant in sorted(grants.items()):
            meta = ks.object_meta(
                name=name, namespace=ns, rv=self.rbac_rv, created=self.rbac_created,
                uid=str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{name}.{ns}.{plural}")))
            obj = grant.role_json(meta) if plural == "roles" else grant.binding_json(meta)
            # made by an operator's `kubectl apply` of deploy/base
            meta["managedFields"] = managed.written(
                obj["apiVersion"], ks.format_time, (ks.APPLY_MANAGER, self.rbac_created, {
                    k: v for k, v in obj.items() if k not in ("kind", "apiVersion", "metadata")},
                    ""))
            out.append(obj)
        return out

    async def get_generic(self, request: web.Request, target: _Target) -> web.StreamResponse:
        name = _name(target)
        for obj in self._objects(target.plural, _ns(target)):
            if obj["metadata"]["name"] == name:
                return self._object(request, target.plural, obj)
        raise ks.not_found(self._resource_type(target), name)

    async def list_generic(self, request: web.Request, target: _Target) -> web.StreamResponse:
        rt = self._resource_type(target)
        page = await self._page(request, target, target.resource,
                                lambda: self._objects(target.plural, target.namespace))
        if wants_table(request, target.plural):
            return self._table(request, target.plural, page.items, page)
        return _json_response(_list(rt.kind, rt.api_version, page))

    async def _page(self, request: web.Request, target: _Target, fields_of: str,
                    objects: Callable[[], Iterable[JSON]], *, versioned: bool = True) -> Page:
        """The chunk of the list that `limit` and `continue` ask for, in key order, after the
        label and field selectors; of `objects()` as they are once the version asked for is
        reached, or as they were at the resourceVersion an exact read asks for."""
        labels, fields = self._selectors(request, fields_of)
        at = await self._list_version(request) if versioned else None
        listed, rv = objects(), self.state.resource_version
        if at is not None:
            listed, rv = self.state.objects_at(target.plural, target.namespace, at, listed), at
        return self.pager.page(
            f"{target.group}/{target.plural}", target.namespace, listed,
            rv=rv, compacted_through=self.state.compacted_through,
            query=request.query, filtered=bool(labels.requirements or fields.terms),
            matches=lambda o: labels.matches(o["metadata"].get("labels", {}))
            and fields.matches(o))

    async def _list_version(self, request: web.Request) -> int | None:
        """The past resourceVersion a list reads at, as the apiserver reads `resourceVersion`
        and `resourceVersionMatch`; None for the newest state. An exact read (`Exact`, or a
        version with a `limit` and no match: the legacy one) of a version older than the newest
        is at that version; any other is at the newest, once the server has reached the version
        asked for: it waits up to `TOO_LARGE_WAIT_SECONDS` for that, then answers the 504
        "Too large resource version", as the watch cache does."""
        query = request.query
        text, match = query.get("resourceVersion", ""), query.get("resourceVersionMatch", "")
        token = query.get("continue", "")
        causes = []
        if match:  # the apiserver's ValidateListOptions
            if not text:
                causes.append(("FieldValueForbidden", "Forbidden: resourceVersionMatch is "
                                                      "forbidden unless resourceVersion is "
                                                      "provided"))
            if token:
                causes.append(("FieldValueForbidden", "Forbidden: resourceVersionMatch is "
                                                      "forbidden when continue is provided"))
            if match not in ("Exact", "NotOlderThan"):
                causes.append(("FieldValueNotSupported", f'Unsupported value: "{match}": '
                               'supported values: "Exact", "NotOlderThan", ""'))
            if match == "Exact" and text == "0":
                causes.append(("FieldValueForbidden", 'Forbidden: resourceVersionMatch "exact" '
                                                      'is forbidden for resourceVersion "0"'))
        if causes:
            errors = [f"resourceVersionMatch: {message}" for _, message in causes]
            raise InvalidError(
                'ListOptions.meta.k8s.io "" is invalid: '
                + (errors[0] if len(errors) == 1 else f"[{', '.join(errors)}]"),
                details={"group": "meta.k8s.io", "kind": "ListOptions",
                         "causes": [{"reason": reason, "message": message,
                                     "field": "resourceVersionMatch"}
                                    for reason, message in causes]})
        if text in ("", "0"):
            return None
        if token:
            raise BadRequestError("specifying resource version is not allowed when using "
                                  "continue")
        if not text.isdigit():
            raise BadRequestError(f'invalid resourceVersion "{text}": a list reads at a '
                                  "non-negative integer, as this server hands them out")
        rv = int(text)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TOO_LARGE_WAIT_SECONDS
        while (current := self.state.resource_version) < rv:
            if loop.time() >= deadline:
                raise ks.GatewayTimeoutError(
                    f"Timeout: Too large resource version: {rv}, current: {current}",
                    details={"causes": [{"reason": "ResourceVersionTooLarge",
                                         "message": "Too large resource version"}]},
                    retry_after=1)
            await asyncio.sleep(0.05)
        exact = match == "Exact" or (not match and limit_of(query) > 0)
        return rv if exact and rv < self.state.resource_version else None

    def _table(self, request: web.Request, resource: str, objects: Iterable[JSON],
               page: Page | None = None) -> web.Response:
        return _json_response(table(resource, objects, self.state.resource_version,
                                    self.state.wall(),
                                    include=request.query.get("includeObject", "Metadata"),
                                    list_meta=page.list_meta() if page else None))

    def _object(self, request: web.Request, resource: str, obj: JSON) -> web.Response:
        """One object, or a one-row Table when kubectl asks for one."""
        return self._table(request, resource, [obj]) if wants_table(request, resource) \
            else _json_response(obj)

    def _resource_type(self, target: _Target) -> ResourceType:
        resources = _CORE_RESOURCES if target.group == "" else _GROUPS[target.group][1]
        return next(rt for rt in resources if rt.plural == target.resource)

    async def watch_generic(self, request: web.Request, target: _Target) -> web.StreamResponse:
        """A watch stream: newline-delimited `{"type", "object"}`, like the apiserver's.

        No resourceVersion (or "0") starts with a synthetic ADDED per existing object; a
        compacted one gets a single ERROR event carrying a 410 Status, then the stream ends.
        """
        labels, fields = self._selectors(request, target.resource)
        try:
            timeout = float(request.query.get("timeoutSeconds", DEFAULT_WATCH_SECONDS))
            rv_text = request.query.get("resourceVersion", "")
            since = None if rv_text in ("", "0") else int(rv_text)
        except ValueError as exc:
            raise BadRequestError(f"invalid watch parameter: {exc}") from None
        queue: asyncio.Queue[JSON | None] = asyncio.Queue()
        v1_events = target.group == "events.k8s.io"  # the core Events, in their newer form
        as_table = wants_table(request, target.plural) and not v1_events
        include = request.query.get("includeObject", "Metadata")

        def wanted(obj: JSON) -> bool:
            return labels.matches(obj["metadata"].get("labels", {})) and fields.matches(obj)

        def send(type_: str, obj: JSON) -> None:
            if v1_events:
                obj = ks.event_v1(obj)
            # kubectl get -w asks for Tables: each event then carries a one-row Table.
            shown = table(target.plural, [obj], self.state.resource_version,
                          self.state.wall(), include=include) if as_table else obj
            queue.put_nowait({"type": type_, "object": shown})

        def on_event(event: WatchEvent) -> None:
            if wanted(event.object):
                send(event.type, event.object)

        if since is None:
            for obj in self._objects(target.plural, target.namespace):
                if wanted(obj):
                    send("ADDED", obj)
        try:
            unsubscribe = self.state.subscribe(target.plural, target.namespace, on_event,
                                               since=since)
        except GoneError as err:
            queue.put_nowait({"type": "ERROR", "object": err.status()})
            queue.put_nowait(None)
            unsubscribe = _nothing
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        self.watches.add(queue)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while (remaining := deadline - loop.time()) > 0:
                try:
                    item = await asyncio.wait_for(queue.get(), remaining)
                except TimeoutError:
                    break
                if item is None:
                    break
                await response.write(json.dumps(item).encode() + b"\n")
            await response.write_eof()
        except ConnectionResetError:
            pass
        finally:
            unsubscribe()
            self.watches.discard(queue)
        return response

    async def close_watches(self, _app: web.Application) -> None:
        for queue in list(self.watches):
            queue.put_nowait(None)

    # -- core/v1 -----------------------------------------------------------------------------

    async def list_namespaces(self, request: web.Request, target: _Target) -> web.StreamResponse:
        page = await self._page(request, target, "namespaces", lambda: [
            self.state.namespace_json(n) for n in self.state.namespaces()])
        return _json_response(_list("Namespace", "v1", page))

    async def get_namespace(self, request: web.Request, target: _Target) -> web.StreamResponse:
        return _json_response(self.state.namespace_json(_name(target)))

    async def get_node(self, request: web.Request, target: _Target) -> web.StreamResponse:
        return self._object(request, "nodes", self.state.node_json(_name(target)))

    async def patch_node(self, request: web.Request, target: _Target) -> web.StreamResponse:
        """Refused: the one node is not cordoned or drained (its pods would have nowhere to
        go), so `kubectl cordon` and `drain` fail here instead of seeming to work."""
        current = self.state.node_json(_name(target))
        patched = apply_patch(current, await _patch_body(request), request.content_type)
        changed = sorted(f"{part}.{k}" for part in ("metadata", "spec")
                         for k in {*current.get(part, {}), *patched.get(part, {})}
                         if current.get(part, {}).get(k) != patched.get(part, {}).get(k))
        raise _unmodelled("Node", "", current["metadata"]["name"], changed or ["spec"],
                          message="Forbidden: the simulated cluster's one node is never "
                                  "cordoned or changed")

    async def get_pod(self, request: web.Request, target: _Target) -> web.StreamResponse:
        return self._object(request, "pods",
                            self.state.pod_json(self.state.pod(_ns(target), _name(target))))

    async def get_pod_log(self, request: web.Request, target: _Target) -> web.StreamResponse:
        """`kubectl logs`: the simulated containers write nothing, so a started one's log is
        empty; the refusals are the kubelet's, worded as the apiserver relays them."""
        pod = self.state.pod(_ns(target), _name(target))
        container = request.query.get("container") or pod.container
        if container != pod.container:
            raise BadRequestError(f"container {container} is not valid for pod {pod.name}")
        if request.query.get("previous", "").lower() in ("1", "true"):
            if not pod.restarts:
                raise BadRequestError(f'previous terminated container "{container}" in pod '
                                      f'"{pod.name}" not found')
        elif pod.phase != "Running":
            raise BadRequestError(f'container "{container}" in pod "{pod.name}" is waiting to '
                                  f"start: {pod.waiting_reason or 'ContainerCreating'}")
        return web.Response(text="", content_type="text/plain")

    async def delete_pod(self, request: web.Request, target: _Target) -> web.StreamResponse:
        pod = self.state.pod(_ns(target), _name(target))
        options = await _body(request, optional=True)
        ks.check_resource_version(ks.PODS, pod.name, pod.resource_version,
                                  ((options or {}).get("preconditions") or {}).get(
                                      "resourceVersion"))
        body = self.state.pod_json(pod)
        if not _dry_run(request, options):
            # `--grace-period=0 --force`: gone at once; else the pod terminates first, and the
            # answer shows it so (its deletionTimestamp set).
            given = (options or {}).get("gracePeriodSeconds",
                                        request.query.get("gracePeriodSeconds"))
            try:
                grace = None if given is None else int(given)
            except (TypeError, ValueError):
                raise BadRequestError(f"invalid gracePeriodSeconds: {given!r}") from None
            self.state.delete_pod(pod.namespace, pod.name, force=grace is not None and grace <= 0,
                                  grace=grace)
            if pod.deleting and self.state.has_pod(pod.namespace, pod.name):
                body = self.state.pod_json(pod)
        return _json_response(body)

    async def patch_pod(self, request: web.Request, target: _Target) -> web.StreamResponse:
        pod = self.state.pod(_ns(target), _name(target))
        current = self.state.pod_json(pod)
        patched = apply_patch(current, await _patch_body(request), request.content_type)
        meta = _metadata("Pod", "", pod.name, patched)
        if patched.get("spec") != current.get("spec"):
            raise _unmodelled("Pod", "", pod.name, ["spec"], "a pod's labels and annotations")
        if _dry_run(request):
            ks.check_resource_version(ks.PODS, pod.name, pod.resource_version,
                                      meta.get("resourceVersion"))
            return _json_response(patched)
        self.state.update_pod_metadata(pod.namespace, pod.name, labels=meta.get("labels") or {},
                                       annotations=meta.get("annotations") or {},
                                       resource_version=meta.get("resourceVersion"),
                                       manager=_manager(request))
        return _json_response(self.state.pod_json(pod))

    async def create_eviction(self, request: web.Request, target: _Target) -> web.StreamResponse:
        body = await _body(request)
        name = (body.get("metadata") or {}).get("name")
        if name != target.name:
            raise BadRequestError("name in URL does not match name in Eviction object")
        options = body.get("deleteOptions") or {}
        preconditions = options.get("preconditions") if isinstance(options, dict) else None
        if not isinstance(options, dict) or not isinstance(preconditions or {}, dict):
            raise BadRequestError("json: cannot unmarshal into Go struct field "
                                  "Eviction.deleteOptions of type v1.DeleteOptions")
        self.state.evict(_ns(target), _name(target), dry_run=_dry_run(request, options),
                         resource_version=(preconditions or {}).get("resourceVersion"))
        return _json_response(_success(201), status=201)

    async def get_event(self, request: web.Request, target: _Target) -> web.StreamResponse:
        return self._object(request, "events",
                            self.state.event_json(self.state.event(_ns(target), _name(target))))

    async def create_event(self, request: web.Request, target: _Target) -> web.StreamResponse:
        _no_dry_run(request, "events")
        event = self.state.create_event(_ns(target), await _body(request),
                                        manager=_manager(request))
        return _json_response(self.state.event_json(event), status=201)

    async def list_events_v1(self, request: web.Request, target: _Target) -> web.StreamResponse:
        page = await self._page(request, target, "events",
                                lambda: self.state.objects_json("events", target.namespace))
        page = dataclasses.replace(page, items=[ks.event_v1(e) for e in page.items])
        return _json_response(_list("Event", "events.k8s.io/v1", page))

    async def get_event_v1(self, request: web.Request, target: _Target) -> web.StreamResponse:
        return _json_response(ks.event_v1(self.state.event_json(
            self.state.event(_ns(target), _name(target)))))

    # -- apps/v1 -----------------------------------------------------------------------------

    async def get_deployment(self, request: web.Request, target: _Target) -> web.StreamResponse:
        d = self.state.deployment(_ns(target), _name(target))
        return self._object(request, "deployments", self.state.deployment_json(d))

    async def get_replica_set(self, request: web.Request, target: _Target) -> web.StreamResponse:
        d = self.state.replica_set(_ns(target), _name(target))
        return self._object(request, "replicasets", self.state.replica_set_json(d))

    async def patch_deployment(self, request: web.Request,
                               target: _Target) -> web.StreamResponse:
        if request.content_type == APPLY_PATCH:
            return await self._apply_deployment(request, target)
        d = self.state.deployment(_ns(target), _name(target))
        current = self.state.deployment_json(d)
        patched = apply_patch(current, await _patch_body(request, applies=True),
                              request.content_type)
        meta, spec = _metadata("Deployment", "apps", d.name, patched), patched.get("spec") or {}
        replicas = spec.get("replicas", d.replicas)
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise InvalidError(f'Deployment.apps "{d.name}" is invalid: spec.replicas: '
                               "Invalid value: must be an integer")
        old_spec = current.get("spec") or {}
        changed = sorted(k for k in {*old_spec, *spec}
                         if k != "replicas" and old_spec.get(k) != spec.get(k))
        if changed:
            # A rollout (image, template, strategy, pause) is not modelled: refused, not
            # answered as done.
            raise _unmodelled("Deployment", "apps", d.name, [f"spec.{k}" for k in changed],
                              "replicas, labels and annotations")
        if _dry_run(request):
            ks.check_resource_version(ks.DEPLOYMENTS, d.name, d.resource_version,
                                      meta.get("resourceVersion"))
            ks.check_replicas(d.name, replicas)
            return _json_response(patched)
        self.state.update_deployment_metadata(
            d.namespace, d.name, labels=meta.get("labels") or {},
            annotations=meta.get("annotations") or {}, replicas=replicas,
            resource_version=meta.get("resourceVersion"), manager=_manager(request))
        return _json_response(self.state.deployment_json(d))

    async def _apply_deployment(self, request: web.Request,
                                target: _Target) -> web.StreamResponse:
        """Server-side apply (`kubectl apply --server-side`) of a Deployment that exists: its
        replicas, labels and annotations, and other spec fields as they are (a change of those
        is the 422 of a change not modelled). Ownership and conflicts: `apply_deployment`."""
        manager, force, config = await _apply_request(request)
        try:
            d = self.state.deployment(_ns(target), _name(target))
        except NotFoundError:
            # The apiserver would create it; the simulated cluster's Deployments are its own.
            raise _unmodelled("Deployment", "apps", _name(target), ["metadata.name"],
                              message="Forbidden: the simulated cluster creates no "
                                      "Deployments: apply one it has") from None
        if (config.get("apiVersion"), config.get("kind")) != ("apps/v1", "Deployment"):
            raise BadRequestError(f"the object of kind {config.get('kind')!r} in "
                                  f"{config.get('apiVersion')!r} is not an apps/v1 Deployment")
        meta = _metadata("Deployment", "apps", d.name, config)
        if meta.get("name") != d.name:
            raise BadRequestError(f"the name of the object ({meta.get('name')}) does not match "
                                  f"the name on the URL ({d.name})")
        spec, replicas = _applied_replicas(config, f'Deployment.apps "{d.name}"')
        rest = {k: v for k, v in spec.items() if k != "replicas"}
        differ = _differences(rest, self.state.deployment_json(d)["spec"], "spec")
        if differ:
            raise _unmodelled("Deployment", "apps", d.name, differ,
                              "replicas, labels and annotations")
        return _json_response(self.state.apply_deployment(
            d.namespace, d.name, manager=manager, replicas=replicas,
            labels=meta.get("labels") or {}, annotations=meta.get("annotations") or {},
            spec=managed.paths_of(rest, ("f:spec",)) if rest else frozenset(), force=force,
            dry_run=_dry_run(request)))

    async def _apply_scale(self, request: web.Request, target: _Target) -> web.StreamResponse:
        """Server-side apply through the `scale` subresource (client-go's `ApplyScale`): an
        autoscaling/v1 Scale whose `spec.replicas` the applier holds (`apply_scale`)."""
        manager, force, config = await _apply_request(request)
        name = _name(target)
        if (config.get("apiVersion"), config.get("kind")) != ("autoscaling/v1", "Scale"):
            raise BadRequestError(f"the object of kind {config.get('kind')!r} in "
                                  f"{config.get('apiVersion')!r} is not an autoscaling/v1 Scale")
        meta = config.get("metadata") or {}
        if not isinstance(meta, dict) or meta.get("name") != name:
            raise BadRequestError("the name of the object does not match the name on the URL")
        _, replicas = _applied_replicas(config, f'Scale.autoscaling "{name}"', details={
            "name": name, "group": "autoscaling", "kind": "Scale"})
        return _json_response(self.state.apply_scale(
            _ns(target), name, manager=manager, replicas=replicas, force=force,
            dry_run=_dry_run(request)))

    async def get_scale(self, request: web.Request, target: _Target) -> web.StreamResponse:
        return _json_response(self.state.scale_json(self.state.deployment(_ns(target),
                                                                          _name(target))))

    async def update_scale(self, request: web.Request, target: _Target) -> web.StreamResponse:
        return self._write_scale(target, await _body(request), dry_run=_dry_run(request),
                                 manager=_manager(request))

    async def patch_scale(self, request: web.Request, target: _Target) -> web.StreamResponse:
        if request.content_type == APPLY_PATCH:
            return await self._apply_scale(request, target)
        d = self.state.deployment(_ns(target), _name(target))
        patched = apply_patch(self.state.scale_json(d), await _patch_body(request, applies=True),
                              request.content_type)
        return self._write_scale(target, patched, dry_run=_dry_run(request),
                                 manager=_manager(request))

    def _write_scale(self, target: _Target, body: JSON, *, manager: str,
                     dry_run: bool = False) -> web.Response:
        name = _name(target)
        meta, spec = body.get("metadata") or {}, body.get("spec") or {}
        if meta.get("name", name) != name:
            raise BadRequestError("the name of the object does not match the name on the URL")
        replicas = spec.get("replicas")
        if not isinstance(replicas, int) or isinstance(replicas, bool):
            raise InvalidError(f'Scale.autoscaling "{name}" is invalid: spec.replicas: '
                               "Required value: must be an integer",
                               details={"name": name, "group": "autoscaling", "kind": "Scale"})
        if dry_run:
            d = self.state.deployment(_ns(target), name)
            ks.check_resource_version(ks.DEPLOYMENTS, name, d.resource_version,
                                      meta.get("resourceVersion"))
            ks.check_replicas(name, replicas)
            scale = self.state.scale_json(d)
            scale["spec"]["replicas"] = replicas
            return _json_response(scale)
        d = self.state.set_replicas(_ns(target), name, replicas,
                                    resource_version=meta.get("resourceVersion"), manager=manager)
        return _json_response(self.state.scale_json(d))

    # -- coordination.k8s.io/v1 --------------------------------------------------------------

    async def get_lease(self, request: web.Request, target: _Target) -> web.StreamResponse:
        lease = self.state.get_lease(_ns(target), _name(target))
        return self._object(request, "leases", self.state.lease_json(lease))

    async def create_lease(self, request: web.Request, target: _Target) -> web.StreamResponse:
        _no_dry_run(request, "leases")
        body = await _body(request)
        meta = _metadata("Lease", "coordination.k8s.io", str((body.get("metadata") or {}).get(
            "name") or ""), body)
        if not meta.get("name"):
            raise InvalidError('Lease.coordination.k8s.io "" is invalid: metadata.name: '
                               "Required value: name or generateName is required")
        lease = self.state.create_lease(_ns(target), meta["name"], _lease_spec(body),
                                        labels=meta.get("labels"),
                                        annotations=meta.get("annotations"),
                                        manager=_manager(request))
        return _json_response(self.state.lease_json(lease), status=201)

    async def update_lease(self, request: web.Request, target: _Target) -> web.StreamResponse:
        _no_dry_run(request, "leases")
        body = await _body(request)
        meta = _metadata("Lease", "coordination.k8s.io", _name(target), body)
        if meta.get("name", target.name) != target.name:
            raise BadRequestError("the name of the object does not match the name on the URL")
        lease = self.state.update_lease(_ns(target), _name(target), _lease_spec(body),
                                        resource_version=meta.get("resourceVersion"),
                                        labels=meta.get("labels"),
                                        # a PUT: the annotations sent are all there are
                                        annotations=meta.get("annotations") or {},
                                        manager=_manager(request))
        return _json_response(self.state.lease_json(lease))

    async def delete_lease(self, request: web.Request, target: _Target) -> web.StreamResponse:
        _no_dry_run(request, "leases")
        lease = self.state.delete_lease(_ns(target), _name(target))
        return _json_response(_success(200, {"name": lease.name, "group": "coordination.k8s.io",
                                             "kind": "leases", "uid": lease.uid}))

    # -- autoscaling, policy, keda, metrics --------------------------------------------------

    async def get_hpa(self, request: web.Request, target: _Target) -> web.StreamResponse:
        return self._object(request, "horizontalpodautoscalers",
                            self.state.hpa_json(self.state.hpa(_ns(target), _name(target))))

    async def get_pdb(self, request: web.Request, target: _Target) -> web.StreamResponse:
        return _json_response(self.state.pdb_json(self.state.pdb(_ns(target), _name(target))))

    async def get_scaled_object(self, request: web.Request,
                                target: _Target) -> web.StreamResponse:
        so = self.state.scaled_object(_ns(target), _name(target))
        return _json_response(self.state.scaled_object_json(so))

    async def list_pod_metrics(self, request: web.Request,
                               target: _Target) -> web.StreamResponse:
        labels, fields = self._selectors(request, "pods.metrics.k8s.io")
        pods = [p for ns in ([target.namespace] if target.namespace
                             else list(self.state.namespaces()))
                for p in self.state.pod_metrics(ns, labels)]
        items = [o for o in map(self.state.pod_metrics_json, pods) if fields.matches(o)]
        return _json_response(_list("PodMetrics", "metrics.k8s.io/v1beta1",
                                    Page(items, self.state.resource_version)))

    async def get_pod_metrics(self, request: web.Request,
                              target: _Target) -> web.StreamResponse:
        name = _name(target)
        for pod in self.state.pod_metrics(_ns(target)):
            if pod.name == name:
                return _json_response(self.state.pod_metrics_json(pod))
        raise NotFoundError(f'podmetrics.metrics.k8s.io "{name}" not found',
                            details={"name": name, "group": "metrics.k8s.io", "kind": "pods"})

    async def list_node_metrics(self, request: web.Request,
                                target: _Target) -> web.StreamResponse:
        # metrics-server keeps no versions: it reads every list as of now
        page = await self._page(request, target, "nodes.metrics.k8s.io",
                                lambda: [self.state.node_metrics_json()], versioned=False)
        return _json_response(_list("NodeMetrics", "metrics.k8s.io/v1beta1", page))

    async def get_node_metrics(self, request: web.Request,
                               target: _Target) -> web.StreamResponse:
        return _json_response(self.state.node_metrics_json(_name(target)))

    async def create_self_subject_access_review(self, request: web.Request,
                                                target: _Target) -> web.StreamResponse:
        """What the caller may do: its Role's answer, or yes for the admin."""
        body = (protobuf.self_subject_access_review(await request.read())
                if request.content_type == protobuf.CONTENT_TYPE else await _body(request))
        spec = body.get("spec")
        if not isinstance(spec, dict) or not (
                isinstance(spec.get("resourceAttributes"), dict)
                or isinstance(spec.get("nonResourceAttributes"), dict)):
            raise InvalidError(
                'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.'
                "resourceAttributes: Invalid value: \"null\": exactly one of "
                "nonResourceAttributes or resourceAttributes must be specified",
                details={"group": "authorization.k8s.io", "kind": "SelfSubjectAccessReview",
                         "causes": [{"reason": "FieldValueInvalid", "field":
                                     "spec.resourceAttributes"}]})
        grant = request.get(_GRANT_KEY)
        status: JSON
        if grant is None:
            status = {"allowed": True}
        elif isinstance(spec.get("resourceAttributes"), dict):
            status = grant.review(spec["resourceAttributes"])
        else:
            attributes = spec["nonResourceAttributes"]
            status = {"allowed": public(str(attributes.get("verb", "")),
                                        str(attributes.get("path", "")))}
        return _json_response({"kind": "SelfSubjectAccessReview",
                               "apiVersion": "authorization.k8s.io/v1",
                               "metadata": {"creationTimestamp": None}, "spec": spec,
                               "status": status}, status=201)

    async def create_self_subject_rules_review(self, request: web.Request,
                                               target: _Target) -> web.StreamResponse:
        """What the caller may do in a namespace (`kubectl auth can-i --list`)."""
        body = (protobuf.self_subject_rules_review(await request.read())
                if request.content_type == protobuf.CONTENT_TYPE else await _body(request))
        spec = body.get("spec") or {}
        namespace = str(spec.get("namespace") or "")
        grant = request.get(_GRANT_KEY)
        status = grant.rules_review(namespace) if grant is not None else {
            "resourceRules": [{"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]}],
            "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
            "incomplete": False}
        return _json_response({"kind": "SelfSubjectRulesReview",
                               "apiVersion": "authorization.k8s.io/v1",
                               "metadata": {"creationTimestamp": None},
                               "spec": {"namespace": namespace}, "status": status}, status=201)

    async def create_self_subject_review(self, request: web.Request,
                                         target: _Target) -> web.StreamResponse:
        """Who the caller is (`kubectl auth whoami`): the body asks nothing."""
        await request.read()
        grant = request.get(_GRANT_KEY)
        user = ({"username": grant.user, "groups": grant.groups} if grant is not None else
                {"username": ADMIN_USER, "groups": ["system:masters", "system:authenticated"]})
        return _json_response({"kind": "SelfSubjectReview",
                               "apiVersion": "authentication.k8s.io/v1",
                               "metadata": {"creationTimestamp": None},
                               "status": {"userInfo": user}}, status=201)


#: A label value, and the name part of a label or annotation key (IsQualifiedName).
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_NAME_RULE = ("name part must consist of alphanumeric characters, '-', '_' or '.', and must "
              "start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or "
              "'123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?"
              "[A-Za-z0-9]')")


def _key_problem(key: str) -> str | None:
    """Why `key` is not a qualified name (a label or annotation key), or None."""
    prefix, _, name = key.rpartition("/")
    if "/" in prefix:
        return "a qualified name must consist of an optional prefix and a name"
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return "prefix part must be a lowercase RFC 1123 subdomain"
    if not name:
        return "name part must be non-empty"
    if len(name) > 63:
        return "name part must be no more than 63 characters"
    return None if _LABEL_NAME.fullmatch(name) else _NAME_RULE


def _metadata(kind: str, group: str, name: str, obj: JSON) -> JSON:
    """`obj`'s metadata, with labels and annotations checked as the apiserver checks them: a
    value of another type is a 400 (the decoder), a bad key or label value a 422."""
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        raise BadRequestError(f"json: cannot unmarshal {type(meta).__name__} into Go struct field "
                              f"{kind}.metadata of type v1.ObjectMeta")
    causes: list[JSON] = []
    for field in ("labels", "annotations"):
        values = meta.get(field) or {}
        if not isinstance(values, dict) or not all(isinstance(v, str) for v in values.values()):
            raise BadRequestError(f"json: cannot unmarshal into Go struct field ObjectMeta."
                                  f"metadata.{field} of type map[string]string")
        for key, value in values.items():
            shown, problem = key, _key_problem(key)
            if problem is None and field == "labels" and value and (
                    len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
                shown, problem = value, ("a valid label must be an empty string or consist of "
                                         "alphanumeric characters, '-', '_' or '.', and must "
                                         "start and end with an alphanumeric character")
            if problem is not None:
                causes.append({"reason": "FieldValueInvalid", "field": f"metadata.{field}",
                               "message": f'Invalid value: "{shown}": {problem}'})
    if causes:
        title = f"{kind}.{group}" if group else kind
        details: JSON = {"name": name, "kind": kind, "causes": causes}
        if group:
            details["group"] = group
        raise InvalidError(f'{title} "{name}" is invalid: ' + ", ".join(
            f"{c['field']}: {c['message']}" for c in causes), details=details)
    return meta


def _unmodelled(kind: str, group: str, name: str, fields: list[str], what: str = "", *,
                message: str = "") -> InvalidError:
    """The 422 for a change the simulated cluster does not model, with a cause per field (kubectl
    prints them): refused rather than answered as done. `message` says why, or `what` the
    simulated cluster changes instead."""
    message = message or f"Forbidden: the simulated cluster changes {what} only"
    title = f"{kind}.{group}" if group else kind
    details: JSON = {"name": name, "kind": kind,
                     "causes": [{"reason": "FieldValueForbidden", "message": message,
                                 "field": f} for f in fields]}
    if group:
        details["group"] = group
    return InvalidError(f'{title} "{name}" is invalid: {", ".join(fields)}: {message}',
                        details=details)


def _differences(applied: Any, live: Any, where: str) -> list[str]:
    """The fields `applied` sets to other values than `live` has, by their paths: a keyed list
    (containers) item by item, any other list whole."""
    if isinstance(applied, dict) and isinstance(live, dict):
        return [f for k, v in applied.items()
                for f in (_differences(v, live[k], f"{where}.{k}") if k in live else [
                    f"{where}.{k}"])]
    if isinstance(applied, list) and isinstance(live, list) and where.endswith(".containers"):
        by_name = {c.get("name"): c for c in live if isinstance(c, dict)}
        return [f for i, c in enumerate(applied) for f in (
            _differences(c, by_name[c.get("name")], f"{where}[{i}]")
            if isinstance(c, dict) and c.get("name") in by_name else [f"{where}[{i}]"])]
    return [] if applied == live else [where]


async def _apply_request(request: web.Request) -> tuple[str, bool, JSON]:
    """A server-side apply's field manager (required), whether it is forced, and its
    configuration (YAML, or JSON, which is YAML too)."""
    manager = request.query.get("fieldManager", "")
    if not manager:
        raise InvalidError('PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required '
                           "value: is required for apply patch")
    force = request.query.get("force", "false").lower() == "true"
    try:
        config = yaml.safe_load(await request.read())
    except yaml.YAMLError as exc:
        raise BadRequestError(f"error decoding YAML: {exc}") from None
    if not isinstance(config, dict):
        raise BadRequestError("the body of the request must be a YAML or JSON object")
    return manager, force, config


def _applied_replicas(config: JSON, what: str, *,
                      details: JSON | None = None) -> tuple[JSON, int | None]:
    """An applied configuration's `spec` and its `spec.replicas` (None: not set); a 400 for a
    spec that is no object, the 422 of `what` for replicas that are no integer."""
    spec = config.get("spec") or {}
    if not isinstance(spec, dict):
        raise BadRequestError("spec: expected an object")
    replicas = spec.get("replicas")
    if replicas is not None and (not isinstance(replicas, int) or isinstance(replicas, bool)):
        raise InvalidError(f"{what} is invalid: spec.replicas: Invalid value: must be an integer",
                           details=details)
    return spec, replicas


def _manager(request: web.Request) -> str:
    """The field manager a write is recorded under (`metadata.managedFields`)."""
    return managed.manager_of(request.query.get("fieldManager", ""),
                              request.headers.get("User-Agent", ""))


def _dry_run(request: web.Request, options: JSON | None = None) -> bool:
    """Whether the write asks for a dry run (`?dryRun=All`, or `dryRun: [All]` in its
    DeleteOptions): validated and answered, not stored. Any other value is a 400, as the
    apiserver answers."""
    values = request.query.getall("dryRun", [])
    if isinstance(options, dict):
        values = [*values, *(options.get("dryRun") or [])]
    for value in values:
        if value != "All":
            raise BadRequestError(f'Invalid dry run value "{value}"; the only one is "All"')
    return bool(values)


def _no_dry_run(request: web.Request, resource: str) -> None:
    """Refuse a dry run of a write the simulated cluster cannot answer without storing it."""
    if _dry_run(request):
        raise BadRequestError(f"dry run of {resource} is not supported by the simulated "
                              "cluster")


def _nothing() -> None:
    """The unsubscribe of a watch that never subscribed."""


def _path_not_found() -> NotFoundError:
    """The apiserver's 404 of a path it does not serve: a generic response, whose details are
    empty but sent (`"details": {}`)."""
    return NotFoundError("the server could not find the requested resource", details={})


def _method_not_allowed() -> MethodNotAllowedError:
    """The apiserver's 405 of a method a path does not take, shaped as its 404 above."""
    return MethodNotAllowedError(
        "the server does not allow this method on the requested resource", details={})


def _ns(target: _Target) -> str:
    if target.namespace is None:
        raise _path_not_found()
    return target.namespace


def _name(target: _Target) -> str:
    if target.name is None:
        raise _method_not_allowed()
    return target.name


async def _body(request: web.Request, *, optional: bool = False) -> JSON:
    if request.content_type == protobuf.CONTENT_TYPE:
        # Read only where kubectl sends nothing else (a SelfSubjectAccessReview); elsewhere the
        # 415 an apiserver answers to a body it cannot decode.
        raise UnsupportedMediaTypeError(
            "the body of the request was in an unknown format - accepted media types include: "
            "application/json, application/yaml")
    raw = await request.read()
    if not raw.strip() and optional:
        return {}
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequestError("the body of the request was in an unknown format - accepted "
                              "media types include: application/json") from None
    if not isinstance(body, dict) and request.content_type != "application/json-patch+json":
        raise BadRequestError("the body of the request must be a JSON object")
    return body  # type: ignore[no-any-return]


def _lease_spec(body: JSON) -> LeaseSpec:
    spec = body.get("spec") or {}
    try:
        def time_of(key: str) -> float | None:
            value = spec.get(key)
            return None if value is None else ks.parse_time(str(value))

        duration = spec.get("leaseDurationSeconds")
        transitions = spec.get("leaseTransitions")
        return LeaseSpec(holder=spec.get("holderIdentity") or None,
                         duration_seconds=None if duration is None else int(duration),
                         acquire_time=time_of("acquireTime"), renew_time=time_of("renewTime"),
                         transitions=None if transitions is None else int(transitions))
    except (TypeError, ValueError) as exc:
        raise BadRequestError(f"invalid Lease spec: {exc}") from None


_API_KEY = web.AppKey("kube_api", _KubeApi)


def create_app(state: KubeState, *, token: str | None = None,
               grants: Mapping[str, Grant] | None = None,
               middlewares: Iterable[Middleware] = ()) -> web.Application:
    """The Kubernetes API over `state`; with `token`, requests need `Authorization: Bearer`.
    `grants` binds more tokens to Roles (`rbac.py`): what their requests may do is checked,
    against the mapping as it is at each request (a test may change a Role meanwhile).
    `middlewares` wrap every request (the fault tests record and partition clients with them);
    `drop_watches(app)` ends every open watch stream, as an apiserver restart does."""
    api = _KubeApi(state, token, {} if grants is None else grants)
    app = web.Application(middlewares=list(middlewares))
    app[_API_KEY] = api
    app.on_shutdown.append(api.close_watches)
    app.router.add_route("*", "/{tail:.*}", api.handle)
    return app


async def drop_watches(app: web.Application) -> None:
    """End every watch stream `app` serves; clients see the stream close and resume."""
    await app[_API_KEY].close_watches(app)


# ---------------------------------------------------------------------------------------------
# Shared by the simulator's HTTP servers: fault hooks, running on loopback, kubeconfig.


@dataclass(frozen=True, slots=True)
class HttpFault:
    """One misbehaviour of a fake server: wait `delay` seconds, then answer `status` with
    `body` instead of the real answer, or cut the real body to its first `truncate` bytes
    (Content-Length matches, so the client sees malformed JSON, not a transport error)."""

    status: int | None = None
    delay: float = 0.0
    truncate: int | None = None
    body: str = ""
    path: str = ""


class HttpFaults:
    """A queue of faults; each request whose path starts with the fault's `path` takes one."""

    def __init__(self) -> None:
        self._queue: list[HttpFault] = []

    def next(self, *, status: int | None = None, delay: float = 0.0,
             truncate: int | None = None, body: str = "", path: str = "",
             times: int = 1) -> None:
        self._queue.extend([HttpFault(status, delay, truncate, body, path)] * times)

    def take(self, path: str) -> HttpFault | None:
        for i, fault in enumerate(self._queue):
            if path.startswith(fault.path):
                return self._queue.pop(i)
        return None

    def clear(self) -> None:
        self._queue.clear()


def fault_middleware(faults: HttpFaults) -> Middleware:
    """An aiohttp middleware applying `faults` before (status, delay) or after (truncate) the
    real handler."""

    @web.middleware
    async def middleware(request: web.Request, handler: AioHandler) -> web.StreamResponse:
        fault = faults.take(request.path)
        if fault is None:
            return await handler(request)
        if fault.delay > 0:
            await asyncio.sleep(fault.delay)
        if fault.status is not None:
            return web.Response(status=fault.status, text=fault.body,
                                content_type="application/json" if fault.body.startswith("{")
                                else "text/plain")
        response = await handler(request)
        if fault.truncate is not None and isinstance(response, web.Response) and response.body:
            body = bytes(response.body)  # type: ignore[arg-type]
            return web.Response(status=response.status, body=body[: fault.truncate],
                                content_type=response.content_type)
        return response

    return middleware



class ServedApp:
    """An aiohttp app listening on loopback; it can stop and start again on the same port
    (how the simulator takes a dependency down: connection refused, then back)."""

    def __init__(self, app: web.Application, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._runner is not None

    async def start(self) -> ServedApp:
        if self._runner is not None:
            return self
        runner = web.AppRunner(self.app, shutdown_timeout=1.0, handle_signals=False,
                               access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self.port = int(runner.addresses[0][1])
        self._runner = runner
        return self

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def serve(app: web.Application, *, host: str = "127.0.0.1", port: int = 0) -> ServedApp:
    """Start `app` on `host:port` (0: any free port) and return the running server."""
    return await ServedApp(app, host=host, port=port).start()


def written_kubeconfig(path: str | Path, name: str = "tracardi-sim") -> bool:
    """Whether `path` holds a kubeconfig `write_kubeconfig` wrote (its one context `name`), which
    a new one may replace; an operator's own kubeconfig it must not."""
    try:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    return (isinstance(loaded, dict) and isinstance(loaded.get("contexts"), list)
            and [c.get("name") if isinstance(c, dict) else None
                 for c in loaded["contexts"]] == [name])


def write_kubeconfig(path: str | Path, server_url: str, token: str | None = None, *,
                     namespace: str = "tracardi", name: str = "tracardi-sim") -> Path:
    """A kubeconfig whose current context points at `server_url` (plain HTTP, loopback).

    kubectl (client-go) sends no bearer token over plain HTTP, so a server started with a
    token only admits clients that do send it (kubernetes_asyncio); serve kubectl without one.
    """
    user: JSON = {"token": token} if token else {}
    config = {
        "apiVersion": "v1", "kind": "Config", "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": server_url}}],
        "users": [{"name": name, "user": user}],
        "contexts": [{"name": name,
                      "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
    }
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        target.unlink()
    target.touch(mode=0o600)
    target.write_text(yaml.safe_dump(config, sort_keys=False))
    return target
