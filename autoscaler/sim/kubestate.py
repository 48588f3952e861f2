"""In-memory Kubernetes state shared by the simulator's model and the simulated API server.

Synchronous and free of I/O: `kubeapi.py` serves it over HTTP in the real wire format,
`cluster.py` (`SimCluster`) and `leases.py` (`SimLeaseStore`) adapt it to the daemon's ports
without HTTP, and the simulator's model drives it (pods becoming ready, crashing, using CPU).
Time comes from two callables passed in: `clock` (monotonic seconds, for the model's own
bookkeeping such as `Pod.created_at`) and `wall` (epoch seconds, for timestamps on the wire).

What it imitates, and how far:
- a global resourceVersion counter; every write bumps it and stamps the object; a write that
  names a stale resourceVersion raises `ConflictError`, exactly like the apiserver's optimistic
  concurrency;
- a Deployment's `managedFields` (see `managed.py`): its creator, the controller, and each
  writer of its replicas, labels and annotations; a Lease's: each writer of its fields;
- the Deployment + ReplicaSet controllers: a replica change creates Pending pods at once or
  deletes pods in the ReplicaSet controller's order (Pending before Running, not-ready before
  ready, most recently ready first, more restarts first, newest first); a deleted or evicted pod
  is replaced at once; with `termination_seconds`, a deleted pod terminates for that long (its
  deletionTimestamp set, `Terminating` in kubectl, counted by no controller) until `reap()`
  removes it, as the kubelet does once the container exits; without, it is gone at once;
- the Events those controllers, the scheduler and the kubelet record (`ScalingReplicaSet`,
  `SuccessfulCreate`/`SuccessfulDelete`, `Scheduled`, `Pulled`/`Created`/`Started`, `Killing`,
  `BackOff`), each gone an hour after it is made, as with the apiserver's `--event-ttl`;
- a `default` ServiceAccount in every namespace, made with it (as the ServiceAccount controller
  does), and the apiserver's `kubernetes` Service in `default`;
- the Eviction API with PodDisruptionBudgets (`minAvailable`, the default
  `IfHealthyBudget` policy for unhealthy pods);
- watches: a bounded event history, so a watch from a compacted resourceVersion gets `GoneError`
  (and so does a list's continue token, see `paging.py`);
- fault injection per (verb, resource), consumed by the HTTP server and the in-memory adapter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from autoscaler.config import PAUSE_ANNOTATION
from autoscaler.sim import managed
from autoscaler.sim.managed import FieldPath, ManagedEntry
from autoscaler.sim.model import POD_CPU_REQUEST_MILLI

JSON = dict[str, Any]

NAME_LABEL = "app.kubernetes.io/name"
COMPONENT_LABEL = "app.kubernetes.io/component"
INSTANCE_LABEL = "app.kubernetes.io/instance"
POD_TEMPLATE_HASH = "pod-template-hash"
REVISION_ANNOTATION = "deployment.kubernetes.io/revision"
NODE_NAME = "sim-node-1"
NODE_IP = "10.0.0.10"
#: The one node's capacity. The simulator has no scheduler: every pod runs on this node, so it
#: is sized to hold any count the simulator asks for (the kubelet's max-pods can be set so).
NODE_CAPACITY = {"cpu": "64", "memory": "257920Mi", "ephemeral-storage": "507944Mi",
                 "pods": "5000"}
NODE_RESERVED_MILLI = 500  # kube-reserved + system-reserved CPU: capacity - allocatable
NODE_BASE_USAGE_MILLI = 350  # the kubelet, the runtime and the system, besides the pods
MAX_REPLICAS = 1000  # per Deployment: past it, a scale is refused (see check_replicas)
POD_GRACE_SECONDS = 30  # the pods' terminationGracePeriodSeconds (the default)
EVENT_TTL_SECONDS = 3600  # the apiserver's --event-ttl: an Event is gone an hour after it is made
NODE_LEASE_NAMESPACE = "kube-node-lease"  # where each kubelet renews its node's Lease
NODE_LEASE_RENEW_SECONDS = 10  # the kubelet's renew interval (a quarter of the 40 s duration)
NODE_STATUS_SECONDS = 300  # the kubelet's nodeStatusReportFrequency, when nothing changes
#: The `kubernetes` Service in `default`: the apiserver, at the first address of the service CIDR.
API_SERVICE_IP = "10.96.0.1"
API_SECURE_PORT = 6443  # the apiserver's --secure-port, which the Service's port 443 leads to
DEFAULT_SERVICE_ACCOUNT = "default"  # made in every namespace by the ServiceAccount controller
WATCH_HISTORY = 1000
#: Who made the Deployments (Tracardi installs with Helm), who keeps their status, and whom a
#: direct change of the state is recorded as: `kubectl scale` and `kubectl annotate`.
CREATOR = "helm"
CONTROLLER_MANAGER = "kube-controller-manager"
SCALE_MANAGER = "kubectl"
ANNOTATE_MANAGER = "kubectl-annotate"
KUBELET_MANAGER = "kubelet"  # the node's heartbeat Lease, the pods' status
API_SERVER_MANAGER = "kube-apiserver"  # its own Service and namespaces
CREATE_MANAGER = "kubectl-create"  # the namespaces an operator made
#: Who made the HPAs, PDBs, ScaledObjects, Roles and RoleBindings: an operator's `kubectl apply`.
APPLY_MANAGER = "kubectl-client-side-apply"
#: The node's pod range, which every pod IP is in (kind's and flannel's default).
POD_CIDR = "10.244.0.0/16"
#: The namespaces the apiserver makes itself.
SYSTEM_NAMESPACES = frozenset({"default", "kube-system", "kube-public", "kube-node-lease"})
#: The field manager of each component that records Events (by `source.component`): the
#: binary it runs in; any other is its own.
_COMPONENT_MANAGERS = {"deployment-controller": CONTROLLER_MANAGER,
                       "replicaset-controller": CONTROLLER_MANAGER,
                       "default-scheduler": "kube-scheduler"}
LEASE_API = "coordination.k8s.io/v1"
DEFAULT_REPLICAS = 1  # what the apiserver defaults a Deployment's spec.replicas to

# The random-suffix alphabet of apimachinery's `utilrand.String` (no vowels, no 0/1/3).
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One REST resource: enough to name it in errors, discovery and fault plans."""

    plural: str
    kind: str
    group: str = ""
    version: str = "v1"
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ("get", "list", "watch")
    singular: str = ""

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def qualified(self) -> str:
        """`deployments.apps`, or `pods` for the core group: how the apiserver names it."""
        return f"{self.plural}.{self.group}" if self.group else self.plural


DEPLOYMENTS = ResourceType("deployments", "Deployment", "apps", short_names=("deploy",),
                           verbs=("get", "list", "watch", "patch"), singular="deployment")
SCALE = ResourceType("deployments/scale", "Scale", "autoscaling", "v1",
                     verbs=("get", "patch", "update"))
REPLICA_SETS = ResourceType("replicasets", "ReplicaSet", "apps", short_names=("rs",),
                            verbs=("get", "list", "watch"), singular="replicaset")
PODS = ResourceType("pods", "Pod", short_names=("po",),
                    verbs=("delete", "get", "list", "patch", "watch"), singular="pod")
EVICTION = ResourceType("pods/eviction", "Eviction", "policy", "v1", verbs=("create",))
POD_LOG = ResourceType("pods/log", "Pod", verbs=("get",))
EVENTS = ResourceType("events", "Event", short_names=("ev",),
                      verbs=("create", "get", "list", "watch"), singular="event")
EVENTS_V1 = ResourceType("events", "Event", "events.k8s.io", short_names=("ev",),
                         verbs=("get", "list", "watch"), singular="event")
LEASES = ResourceType("leases", "Lease", "coordination.k8s.io",
                      verbs=("create", "delete", "get", "list", "update", "watch"),
                      singular="lease")
HPAS = ResourceType("horizontalpodautoscalers", "HorizontalPodAutoscaler", "autoscaling", "v2",
                    short_names=("hpa",), singular="horizontalpodautoscaler")
PDBS = ResourceType("poddisruptionbudgets", "PodDisruptionBudget", "policy", "v1",
                    short_names=("pdb",), singular="poddisruptionbudget")
SCALED_OBJECTS = ResourceType("scaledobjects", "ScaledObject", "keda.sh", "v1alpha1",
                              short_names=("so",), singular="scaledobject")
POD_METRICS = ResourceType("pods", "PodMetrics", "metrics.k8s.io", "v1beta1",
                           verbs=("get", "list"), singular="")
NAMESPACES = ResourceType("namespaces", "Namespace", namespaced=False, short_names=("ns",),
                          verbs=("get", "list", "watch"), singular="namespace")
SELF_SUBJECT_ACCESS_REVIEWS = ResourceType(
    "selfsubjectaccessreviews", "SelfSubjectAccessReview", "authorization.k8s.io", "v1",
    namespaced=False, verbs=("create",), singular="selfsubjectaccessreview")
SELF_SUBJECT_RULES_REVIEWS = ResourceType(
    "selfsubjectrulesreviews", "SelfSubjectRulesReview", "authorization.k8s.io", "v1",
    namespaced=False, verbs=("create",), singular="selfsubjectrulesreview")
SELF_SUBJECT_REVIEWS = ResourceType(
    "selfsubjectreviews", "SelfSubjectReview", "authentication.k8s.io", "v1",
    namespaced=False, verbs=("create",), singular="selfsubjectreview")
NODES = ResourceType("nodes", "Node", namespaced=False, short_names=("no",),
                     verbs=("get", "list", "patch", "watch"), singular="node")
NODE_METRICS = ResourceType("nodes", "NodeMetrics", "metrics.k8s.io", "v1beta1",
                            namespaced=False, verbs=("get", "list"), singular="")
SERVICES = ResourceType("services", "Service", short_names=("svc",),
                        verbs=("get", "list", "watch"), singular="service")
SERVICE_ACCOUNTS = ResourceType("serviceaccounts", "ServiceAccount", short_names=("sa",),
                                verbs=("get", "list", "watch"), singular="serviceaccount")
ROLES = ResourceType("roles", "Role", "rbac.authorization.k8s.io",
                     verbs=("get", "list", "watch"), singular="role")
ROLE_BINDINGS = ResourceType("rolebindings", "RoleBinding", "rbac.authorization.k8s.io",
                             verbs=("get", "list", "watch"), singular="rolebinding")

#: Resource names used by fault plans, e.g. `faults.inject("update", "deployments/scale", ...)`.
FAULT_RESOURCES = frozenset({
    "deployments", "deployments/scale", "pods", "pods/eviction", "events", "leases",
    "horizontalpodautoscalers", "poddisruptionbudgets", "scaledobjects", "podmetrics",
    "namespaces", "nodes", "nodemetrics", "selfsubjectaccessreviews",
})
FAULT_VERBS = frozenset({"get", "list", "watch", "create", "update", "patch", "delete"})


# ---------------------------------------------------------------------------------------------
# Errors: each one renders the apiserver's Status body.


class ApiError(Exception):
    """An apiserver error; `status()` is the `Status` object the server sends."""

    code = 500
    reason = "InternalError"

    def __init__(self, message: str, *, details: JSON | None = None,
                 retry_after: float | None = None, list_meta: JSON | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
        self.retry_after = retry_after
        self.list_meta = list_meta

    def status(self) -> JSON:
        body: JSON = {"kind": "Status", "apiVersion": "v1", "metadata": dict(self.list_meta or {}),
                      "status": "Failure",
                      "message": self.message, "reason": self.reason}
        details = dict(self.details or {})
        if self.retry_after is not None:
            details["retryAfterSeconds"] = max(1, round(self.retry_after))
        if details or self.details is not None:  # `{}` is sent as such (a path not served)
            body["details"] = details
        body["code"] = self.code
        return body


class BadRequestError(ApiError):
    code, reason = 400, "BadRequest"


class UnauthorizedError(ApiError):
    code, reason = 401, "Unauthorized"


class ForbiddenError(ApiError):
    code, reason = 403, "Forbidden"


class NotFoundError(ApiError):
    code, reason = 404, "NotFound"


class MethodNotAllowedError(ApiError):
    code, reason = 405, "MethodNotAllowed"


class ConflictError(ApiError):
    code, reason = 409, "Conflict"


class AlreadyExistsError(ApiError):
    code, reason = 409, "AlreadyExists"


class GoneError(ApiError):
    code, reason = 410, "Expired"


class UnsupportedMediaTypeError(ApiError):
    code, reason = 415, "UnsupportedMediaType"


class InvalidError(ApiError):
    code, reason = 422, "Invalid"


class TooManyRequestsError(ApiError):
    code, reason = 429, "TooManyRequests"


def _available(replicas: int, ready: int) -> bool:
    """The Deployment's Available condition: maxUnavailable 25 % rounds down, as the
    Deployment controller computes it."""
    return ready >= replicas - replicas // 4


def check_replicas(name: str, replicas: int) -> None:
    """The apiserver's validation of a scale: `InvalidError` with its cause below 0; and above
    `MAX_REPLICAS`, which the simulated cluster does not model (each of its pods is an object it
    keeps and drives, where a real cluster would leave most of them Pending)."""
    message = None
    if replicas < 0:
        message = f"Invalid value: {replicas}: must be greater than or equal to 0"
    elif replicas > MAX_REPLICAS:
        message = (f"Invalid value: {replicas}: the simulated cluster runs at most "
                   f"{MAX_REPLICAS} pods per Deployment")
    if message is not None:
        raise InvalidError(f'Scale.autoscaling "{name}" is invalid: spec.replicas: {message}',
                           details={"name": name, "group": "autoscaling", "kind": "Scale",
                                    "causes": [{"reason": "FieldValueInvalid",
                                                "message": message, "field": "spec.replicas"}]})


class InternalError(ApiError):
    code, reason = 500, "InternalError"


class ServiceUnavailableError(ApiError):
    code, reason = 503, "ServiceUnavailable"


class GatewayTimeoutError(ApiError):
    code, reason = 504, "Timeout"


_ERRORS_BY_CODE: dict[int, type[ApiError]] = {
    cls.code: cls for cls in (
        BadRequestError, UnauthorizedError, ForbiddenError, NotFoundError, MethodNotAllowedError,
        ConflictError, GoneError, UnsupportedMediaTypeError, InvalidError, TooManyRequestsError,
        InternalError, ServiceUnavailableError, GatewayTimeoutError)
}


def error_for_code(code: int, message: str = "", *, retry_after: float | None = None) -> ApiError:
    """The error the apiserver would send with this HTTP code (for injected faults)."""
    cls = _ERRORS_BY_CODE.get(code, InternalError)
    err = cls(message or f"injected fault: HTTP {code}", retry_after=retry_after)
    err.code = code
    return err


def _details(rt: ResourceType, name: str) -> JSON:
    details: JSON = {"name": name}
    if rt.group:
        details["group"] = rt.group
    details["kind"] = rt.plural.split("/")[0]
    return details


def not_found(rt: ResourceType, name: str) -> NotFoundError:
    return NotFoundError(f'{rt.qualified} "{name}" not found',
                    details=_details(rt, name))


def _crash_back_off(restarts: int) -> str:
    """The kubelet's restart back-off after `restarts` crashes, as Go prints a duration: 10 s
    doubled at each crash, at most 5 minutes."""
    seconds = min(10 * 2 ** max(0, restarts - 1), 300)
    minutes, rest = divmod(seconds, 60)
    return f"{minutes}m{rest}s" if minutes else f"{rest}s"


def conflict(rt: ResourceType, name: str) -> ConflictError:
    return ConflictError(
        f'Operation cannot be fulfilled on {rt.qualified} "{name}": the object has been '
        "modified; please apply your changes to the latest version and try again",
        details=_details(rt, name))


def check_resource_version(rt: ResourceType, name: str, current: int,
                           wanted: str | int | None) -> None:
    """A write's resourceVersion precondition (none when empty): a stale one is the 409, for
    a dry run too, as the apiserver checks it before it decides not to store."""
    if wanted not in (None, "") and str(wanted) != str(current):
        raise conflict(rt, name)


# ---------------------------------------------------------------------------------------------
# Fault injection.


@dataclass(frozen=True, slots=True)
class Fault:
    """One injected misbehaviour: wait `delay` seconds, then fail with `code` (if set)."""

    code: int | None = None
    retry_after: float | None = None
    delay: float = 0.0
    message: str = ""

    def error(self) -> ApiError | None:
        if self.code is None:
            return None
        return error_for_code(self.code, self.message, retry_after=self.retry_after)


class FaultPlan:
    """Queues of faults per (verb, resource); each request of that kind consumes one."""

    def __init__(self) -> None:
        self._queues: dict[tuple[str, str], deque[Fault]] = {}

    def inject(self, verb: str, resource: str, *, code: int | None = None,
               retry_after: float | None = None, delay: float = 0.0, message: str = "",
               times: int = 1) -> None:
        if resource not in FAULT_RESOURCES:
            raise ValueError(f"unknown resource {resource!r}; one of {sorted(FAULT_RESOURCES)}")
        if verb not in FAULT_VERBS:
            raise ValueError(f"unknown verb {verb!r}; one of {sorted(FAULT_VERBS)}")
        queue = self._queues.setdefault((verb, resource), deque())
        queue.extend([Fault(code, retry_after, delay, message)] * times)

    def take(self, verb: str, resource: str) -> Fault | None:
        queue = self._queues.get((verb, resource))
        return queue.popleft() if queue else None

    def pending(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def clear(self) -> None:
        self._queues.clear()


# ---------------------------------------------------------------------------------------------
# Time and selectors.


def format_time(epoch: float) -> str:
    """A `metav1.Time`: RFC 3339, whole seconds, UTC."""
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_micro_time(epoch: float) -> str:
    """A `metav1.MicroTime`: RFC 3339 with exactly six fractional digits, UTC."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> float:
    """Epoch seconds from an RFC 3339 `Time` or `MicroTime`; ValueError if malformed."""
    parsed = datetime.fromisoformat(text)
    if parsed.tzinfo is None:
        raise ValueError(f"timestamp without a time zone: {text!r}")
    return parsed.timestamp()


_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9._/-]+)\s*"
    r"(?:(?P<op>==|!=|=)\s*(?P<value>[A-Za-z0-9._-]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<values>[^)]*)\))?\s*$"
)


def _split_requirements(text: str) -> list[str]:
    parts: list[str] = []
    depth, current = 0, ""
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    parts.append(current)
    return [p for p in parts if p.strip()]


@dataclass(frozen=True, slots=True)
class _Requirement:
    """One term of a label selector: `key op values`."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        if self.op == "exists":
            return value is not None
        if self.op == "!exists":
            return value is None
        if self.op in ("=", "==", "in"):
            return value in self.values
        return value not in self.values


@dataclass(frozen=True, slots=True)
class LabelSelector:
    """A parsed label selector (`a=b,c!=d,e in (x,y),f notin (z),g,!h`); empty matches all."""

    requirements: tuple[_Requirement, ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> LabelSelector:
        """BadRequestError when malformed, as the apiserver answers."""
        out = []
        for part in _split_requirements(text or ""):
            m = _REQUIREMENT.match(part)
            if m is None or (m["neg"] and (m["op"] or m["setop"])):
                raise BadRequestError(f"unable to parse requirement: {part.strip()!r}")
            if m["op"]:
                out.append(_Requirement(m["key"], m["op"], frozenset({m["value"]})))
            elif m["setop"]:
                values = frozenset(v.strip() for v in m["values"].split(",") if v.strip())
                out.append(_Requirement(m["key"], m["setop"], values))
            else:
                out.append(_Requirement(m["key"], "!exists" if m["neg"] else "exists"))
        return cls(tuple(out))

    @classmethod
    def of(cls, match_labels: Mapping[str, str]) -> LabelSelector:
        return cls(tuple(_Requirement(k, "=", frozenset({v}))
                         for k, v in sorted(match_labels.items())))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)


def selector_string(match_labels: Mapping[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(match_labels.items()))


def _field(obj: Mapping[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, Mapping) else None
    return "" if cur is None else str(cur)


@dataclass(frozen=True, slots=True)
class FieldSelector:
    """A parsed field selector (`metadata.name=x,involvedObject.kind!=Pod`) over wire objects."""

    terms: tuple[tuple[str, bool, str], ...] = ()

    @classmethod
    def parse(cls, text: str | None) -> FieldSelector:
        terms = []
        for part in _split_requirements(text or ""):
            m = re.fullmatch(r"\s*([A-Za-z0-9_.]+)\s*(==|!=|=)\s*([^,]*?)\s*", part)
            if m is None:
                raise BadRequestError(f"invalid field selector: {part.strip()!r}")
            path, op, value = m.groups()
            terms.append((path, op != "!=", value))
        return cls(tuple(terms))

    def matches(self, obj: Mapping[str, Any]) -> bool:
        return all((_field(obj, FIELD_PATHS.get(path, path)) == value) == equal
                   for path, equal, value in self.terms)

    def supported_by(self, resource: str) -> FieldSelector:
        """Itself, when each field is one the apiserver selects `resource` by; else the 400 it
        answers (`field label not supported: <field>`)."""
        allowed = FIELD_LABELS.get(resource, frozenset()) | {"metadata.name",
                                                              "metadata.namespace"}
        for path, _, _ in self.terms:
            if path not in allowed:
                raise BadRequestError(f"field label not supported: {path}")
        return self


#: Field labels that are not the path of their value (an Event's `source` is its component).
FIELD_PATHS = {"source": "source.component"}

#: The fields besides metadata.name and metadata.namespace that the apiserver selects each
#: resource by (its `GetAttrs` / field label conversion funcs); the others take none.
FIELD_LABELS: dict[str, frozenset[str]] = {
    "pods": frozenset({"spec.nodeName", "spec.restartPolicy", "spec.schedulerName",
                       "spec.serviceAccountName", "spec.hostNetwork", "status.phase",
                       "status.podIP", "status.podIPs", "status.nominatedNodeName"}),
    "events": frozenset({"involvedObject.kind", "involvedObject.namespace",
                         "involvedObject.name", "involvedObject.uid",
                         "involvedObject.apiVersion", "involvedObject.resourceVersion",
                         "involvedObject.fieldPath", "reason", "reportingComponent", "source",
                         "type"}),
    "namespaces": frozenset({"status.phase"}),
    "nodes": frozenset({"spec.unschedulable"}),
}


# ---------------------------------------------------------------------------------------------
# Objects.


@dataclass(slots=True)
class Deployment:
    namespace: str
    name: str
    replicas: int
    labels: dict[str, str]
    annotations: dict[str, str]
    selector: dict[str, str]
    cpu_request_milli: int
    image: str
    uid: str
    created_wall: float
    resource_version: int
    generation: int = 1
    status_key: tuple[int, int, int] = (0, 0, 0)
    status_changed_wall: float = 0.0
    #: The Available condition: its status, and when it last flipped (lastTransitionTime).
    available: bool | None = None
    available_since_wall: float = 0.0
    #: Who set which fields (`metadata.managedFields`), but for the status, made when served.
    managed: list[ManagedEntry] = field(default_factory=list)
    #: Its JSON at a resourceVersion: every change stores a new one, so at the same version
    #: it is the same object (served, watched and read back by the ReplicaSet alike).
    rendered: tuple[int, JSON] | None = field(default=None, repr=False)
    #: Its ReplicaSet's JSON at the Deployment's resourceVersion, made from `rendered`.
    replica_set_rendered: tuple[int, JSON] | None = field(default=None, repr=False)

    @property
    def paused(self) -> bool:
        return self.annotations.get(PAUSE_ANNOTATION, "").lower() in {"true", "1", "yes"}

    @property
    def replica_set_name(self) -> str:
        """Its one ReplicaSet's name (`<deployment>-<pod-template-hash>`)."""
        return f"{self.name}-{self.template_hash}"

    @property
    def replica_set_uid(self) -> str:
        return str(uuid.uuid5(uuid.NAMESPACE_OID, self.uid))

    @property
    def template_hash(self) -> str:
        digest = hashlib.sha256(f"{self.namespace}/{self.name}".encode()).digest()
        return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:10])


@dataclass(slots=True)
class Pod:
    namespace: str
    name: str
    owner: str
    labels: dict[str, str]
    uid: str
    created_at: float
    created_wall: float
    cpu_request_milli: int
    image: str
    resource_version: int
    phase: str = "Pending"
    ready: bool = False
    ready_since_wall: float | None = None
    running_since_wall: float | None = None
    ip: str = ""
    restarts: int = 0
    waiting_reason: str = "ContainerCreating"
    last_exit_wall: float | None = None
    cpu_usage_milli: int | None = None
    annotations: dict[str, str] = field(default_factory=dict)
    #: When the pod was deleted (wall, and clock for `reap`), while it terminates.
    deleted_wall: float | None = None
    deleted_at: float | None = None
    grace_seconds: int = POD_GRACE_SECONDS  # the deletion's: the kubelet kills it after that
    #: When the kubelet last wrote the status (wall): its `managedFields` entry's time.
    status_wall: float = 0.0
    #: Who set which fields (`metadata.managedFields`), but for the status, made when served.
    managed: list[ManagedEntry] = field(default_factory=list)
    #: Its JSON at a resourceVersion, as a Deployment's (every change stores a new one).
    rendered: tuple[int, JSON] | None = field(default=None, repr=False)

    @property
    def container(self) -> str:
        return self.owner or self.name

    @property
    def deleting(self) -> bool:
        return self.deleted_wall is not None


@dataclass(slots=True)
class Event:
    namespace: str
    name: str
    uid: str
    resource_version: int
    created_wall: float
    involved: dict[str, str]
    reason: str
    message: str
    type: str
    source_component: str
    source_host: str
    count: int
    first_wall: float
    last_wall: float
    event_time: float | None
    reporting_component: str
    reporting_instance: str
    action: str
    manager: str = ""  # the field manager that created it


@dataclass(frozen=True, slots=True)
class LeaseSpec:
    """`coordination.k8s.io/v1` LeaseSpec with times as epoch seconds."""

    holder: str | None = None
    duration_seconds: int | None = None
    acquire_time: float | None = None
    renew_time: float | None = None
    transitions: int | None = None


@dataclass(slots=True)
class Lease:
    namespace: str
    name: str
    uid: str
    created_wall: float
    resource_version: int
    spec: LeaseSpec
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    #: Who set which fields (`metadata.managedFields`): each Update's manager.
    managed: list[ManagedEntry] = field(default_factory=list)


@dataclass(slots=True)
class Hpa:
    namespace: str
    name: str
    target_kind: str
    target_name: str
    min_replicas: int
    max_replicas: int
    cpu_utilization: int
    uid: str
    created_wall: float
    resource_version: int


@dataclass(slots=True)
class ScaledObject:
    namespace: str
    name: str
    target_kind: str
    target_name: str
    min_replicas: int
    max_replicas: int
    uid: str
    created_wall: float
    resource_version: int


@dataclass(slots=True)
class Pdb:
    namespace: str
    name: str
    min_available: int
    selector: dict[str, str]
    uid: str
    created_wall: float
    resource_version: int


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """One change as a watch sees it; `object` is the wire object after (or, for DELETED,
    at) the change."""

    type: str
    resource: str
    namespace: str
    resource_version: int
    object: JSON


WatchCallback = Callable[[WatchEvent], None]


@dataclass(slots=True)
class _Subscription:
    resource: str
    namespace: str | None
    callback: WatchCallback


def _phase_rank(pod: Pod) -> int:
    return {"Pending": 0, "Unknown": 1}.get(pod.phase, 2)


def _deletion_order(pod: Pod) -> tuple[int, bool, float, int, float]:
    """The ReplicaSet controller's `ActivePods` ordering: the first sorts out first."""
    return (_phase_rank(pod), pod.ready, -(pod.ready_since_wall or 0.0), -pod.restarts,
            -pod.created_wall)


def event_v1(core: JSON) -> JSON:
    """A core/v1 Event as `events.k8s.io/v1` serves the same object (renamed fields,
    deprecated*): a function of the wire object, so an Event already gone (a DELETED watch
    event) or as it was (a list at a past resourceVersion) converts too."""
    out: JSON = {
        "kind": "Event", "apiVersion": "events.k8s.io/v1", "metadata": core["metadata"],
        "eventTime": core.get("eventTime"),
        "reportingController": core.get("reportingComponent", ""),
        "reportingInstance": core.get("reportingInstance", ""),
        "regarding": core["involvedObject"], "reason": core["reason"], "note": core["message"],
        "type": core["type"], "deprecatedSource": core.get("source", {}),
        "deprecatedFirstTimestamp": core["firstTimestamp"],
        "deprecatedLastTimestamp": core["lastTimestamp"], "deprecatedCount": core["count"],
    }
    if "action" in core:
        out["action"] = core["action"]
    return out


def _meta_set(before: Deployment | Pod, labels: Mapping[str, str],
              annotations: Mapping[str, str], *, gone: bool = False) -> frozenset[FieldPath]:
    """The label and annotation fields of `before` that `labels` and `annotations` set to a
    new value, or with `gone` those they leave out."""
    return frozenset(("f:metadata", f"f:{kind}", f"f:{k}")
                     for kind, old, new in (("labels", before.labels, labels),
                                            ("annotations", before.annotations, annotations))
                     for k in (old.keys() - new.keys() if gone else new)
                     if gone or old.get(k) != new[k])


def _ownership(entry: ManagedEntry) -> tuple[str, str, str, tuple[FieldPath, ...]]:
    """What an entry says, but for when: an apply that changes only the time changes nothing."""
    return entry.manager, entry.operation, entry.subresource, tuple(sorted(entry.fields))


def _applied_count(d: Deployment, replicas: int | None, done: managed.Applied) -> int:
    """The count after an apply that sets `replicas` (None: not at all): the apiserver's default
    once no manager holds it any more, else as it was; `check_replicas` bounds it."""
    count = replicas if replicas is not None else (
        DEFAULT_REPLICAS if managed.REPLICAS in done.dropped else d.replicas)
    check_replicas(d.name, count)
    return count


def _refuse_conflicts(done: managed.Applied, force: bool) -> None:
    """The apiserver's 409 for an apply that would change fields other managers hold, naming
    each, unless it is forced (it then takes them)."""
    if done.conflicts and not force:
        raise ConflictError(managed.conflict_message(done.conflicts, format_time), details={
            "causes": [{"reason": "FieldManagerConflict", "field": managed.path_text(c.path),
                        "message": f"conflict with {c.holder.describe(format_time)}"}
                       for c in done.conflicts]})


def object_meta(*, name: str, namespace: str | None, uid: str, rv: int, created: float,
                labels: Mapping[str, str] | None = None,
                annotations: Mapping[str, str] | None = None, **extra: Any) -> JSON:
    """An object's `metadata` as the apiserver writes it (`extra`: generation, ...)."""
    meta: JSON = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta.update({"uid": uid, "resourceVersion": str(rv),
                 "creationTimestamp": format_time(created)})
    meta.update(extra)
    if labels:
        meta["labels"] = dict(labels)
    if annotations:
        meta["annotations"] = dict(annotations)
    return meta


def lease_spec_json(s: LeaseSpec) -> JSON:
    """A LeaseSpec as the apiserver serves it: the fields that are set."""
    spec: JSON = {}
    if s.holder is not None:
        spec["holderIdentity"] = s.holder
    if s.duration_seconds is not None:
        spec["leaseDurationSeconds"] = s.duration_seconds
    if s.acquire_time is not None:
        spec["acquireTime"] = format_micro_time(s.acquire_time)
    if s.renew_time is not None:
        spec["renewTime"] = format_micro_time(s.renew_time)
    if s.transitions is not None:
        spec["leaseTransitions"] = s.transitions
    return spec


def _object_key(obj: JSON) -> tuple[str, str]:
    meta = obj["metadata"]
    return meta.get("namespace", ""), meta["name"]


#: The 410 of a list at a resourceVersion that is no longer kept (etcd's compacted revision).
LIST_EXPIRED = "The resourceVersion for the provided list is too old."


class KubeState:
    """Deployments, pods, events, leases, HPAs, ScaledObjects, PDBs and ServiceAccounts of a
    simulated cluster.

    All mutators are synchronous and emit watch events; reads return live objects the caller
    must not mutate (use the mutators).
    """

    def __init__(self, *, clock: Callable[[], float], wall: Callable[[], float],
                 keda_installed: bool = False, watch_history: int = WATCH_HISTORY,
                 termination_seconds: float = 0.0) -> None:
        self.clock = clock
        self.wall = wall
        self.termination_seconds = termination_seconds
        self.keda_installed = keda_installed
        self.faults = FaultPlan()
        self._rv = 1
        self._names = 0
        self._ips = 0
        self._deployments: dict[tuple[str, str], Deployment] = {}
        self._pods: dict[tuple[str, str], Pod] = {}
        self._events: dict[tuple[str, str], Event] = {}
        self._leases: dict[tuple[str, str], Lease] = {}
        self._hpas: dict[tuple[str, str], Hpa] = {}
        self._scaled_objects: dict[tuple[str, str], ScaledObject] = {}
        self._pdbs: dict[tuple[str, str], Pdb] = {}
        # The namespaces every cluster has from its start (kube-node-lease with the node).
        self._namespaces: dict[str, float] = dict.fromkeys(
            ("default", "kube-system", "kube-public"), wall())
        self._node_created = wall()
        self._namespace_rv: dict[str, int] = {}
        self._namespaces[NODE_LEASE_NAMESPACE] = self._node_created
        node_lease = Lease(
            NODE_LEASE_NAMESPACE, NODE_NAME, str(uuid.uuid5(uuid.NAMESPACE_DNS, "lease")),
            self._node_created, 1, LeaseSpec(holder=NODE_NAME, duration_seconds=40,
                                             renew_time=self._node_created))
        self._lease_written(node_lease, KUBELET_MANAGER, {}, {}, {})
        self._leases[(NODE_LEASE_NAMESPACE, NODE_NAME)] = node_lease
        self._node_rv = 1
        self._node_heartbeat = self._node_created
        # name -> (creation time, resourceVersion); a namespace's `default` one comes with it
        self._service_accounts: dict[tuple[str, str], tuple[float, int]] = {
            (ns, DEFAULT_SERVICE_ACCOUNT): (created, 1) for ns, created in self._namespaces.items()}
        self._history: deque[WatchEvent] = deque(maxlen=watch_history)
        self._compacted_through = 0
        self._subscriptions: list[_Subscription] = []

    # -- bookkeeping -------------------------------------------------------------------------

    @property
    def resource_version(self) -> int:
        """The newest resourceVersion handed out (what a list reports)."""
        return self._rv

    def _next_rv(self) -> int:
        self._rv += 1
        return self._rv

    def _uid(self) -> str:
        self._names += 1
        return str(uuid.UUID(int=self._names, version=4))

    def _suffix(self, length: int = 5) -> str:
        """A random-looking but reproducible name suffix (the same run gives the same names)."""
        self._names += 1
        digest = hashlib.sha256(self._names.to_bytes(8, "big")).digest()
        return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:length])

    def _touch_namespace(self, namespace: str) -> None:
        if namespace not in self._namespaces:
            self._namespaces[namespace] = self.wall()
            rv = self._namespace_rv[namespace] = self._next_rv()
            self._emit("ADDED", "namespaces", namespace, rv, self.namespace_json(namespace))
            self.add_service_account(namespace, DEFAULT_SERVICE_ACCOUNT)

    def _emit(self, type_: str, resource: str, namespace: str, rv: int, obj: JSON) -> None:
        event = WatchEvent(type_, resource, namespace, rv, obj)
        if len(self._history) == self._history.maxlen:
            self._compacted_through = self._history[0].resource_version
        self._history.append(event)
        for sub in list(self._subscriptions):
            if sub.resource == resource and sub.namespace in (None, namespace):
                sub.callback(event)

    def subscribe(self, resource: str, namespace: str | None, callback: WatchCallback, *,
                  since: int | None = None) -> Callable[[], None]:
        """Deliver every later change of `resource` (a plural such as "pods") in `namespace`
        (None: all) to `callback`; with `since`, first replay the retained changes after that
        resourceVersion, or raise `GoneError` if they were compacted. Returns the unsubscribe."""
        if since is not None:
            if since < self._compacted_through:
                oldest = self._compacted_through + 1
                raise GoneError(f"too old resource version: {since} ({oldest})")
            for event in list(self._history):
                if (event.resource_version > since and event.resource == resource
                        and namespace in (None, event.namespace)):
                    callback(event)
        sub = _Subscription(resource, namespace, callback)
        self._subscriptions.append(sub)

        def unsubscribe() -> None:
            if sub in self._subscriptions:
                self._subscriptions.remove(sub)

        return unsubscribe

    def objects_at(self, resource: str, namespace: str | None, rv: int,
                   current: Iterable[JSON]) -> list[JSON]:
        """`current`, the objects of `resource` in `namespace` (None: all) now, as they were at
        resourceVersion `rv`: what a list with `resourceVersionMatch=Exact` reads (etcd's
        range at a past revision), rebuilt from the watch history. An object's version at `rv`
        is its last change up to `rv`; with none retained, its version now if it has not changed
        since, or nothing if it was made after. `GoneError` (etcd's compacted revision) when
        `rv` is older than the history, or when an object changed after `rv` and its version
        at `rv` is older than the history."""
        too_old = GoneError(LIST_EXPIRED)
        if rv < self._compacted_through:
            raise too_old
        changes: dict[tuple[str, str], list[WatchEvent]] = {}
        for event in self._history:
            if event.resource == resource and namespace in (None, event.namespace):
                changes.setdefault(_object_key(event.object), []).append(event)
        out = {}
        for obj in current:
            if _object_key(obj) not in changes:
                if int(obj["metadata"]["resourceVersion"]) > rv:
                    raise too_old  # changed after rv with no change retained
                out[_object_key(obj)] = obj
        for key_, events in changes.items():
            before = [e for e in events if e.resource_version <= rv]
            if before:
                if before[-1].type != "DELETED":
                    out[key_] = before[-1].object
            elif events[0].type != "ADDED":
                raise too_old  # its version at rv is older than the history
        return [out[k] for k in sorted(out)]

    @property
    def compacted_through(self) -> int:
        """The newest resourceVersion compacted away: a watch or a list's continue token from
        before it gets `GoneError`."""
        return self._compacted_through

    def compact(self) -> None:
        """Forget the watch history, as etcd compaction does: older watches get `GoneError`."""
        self._history.clear()
        self._compacted_through = self._rv

    def add_service_account(self, namespace: str, name: str) -> None:
        """The ServiceAccount `name` in `namespace`, made now unless it exists (a Role's
        binding names it: `create_app` adds those of its grants)."""
        self._touch_namespace(namespace)
        if (namespace, name) in self._service_accounts:
            return
        rv = self._next_rv()
        self._service_accounts[(namespace, name)] = (self.wall(), rv)
        self._emit("ADDED", "serviceaccounts", namespace, rv,
                   self.service_account_json(namespace, name))

    def service_accounts(self, namespace: str | None = None) -> list[tuple[str, str]]:
        """(namespace, name) of each ServiceAccount, in key order."""
        return sorted(k for k in self._service_accounts if namespace in (None, k[0]))

    def namespaces(self) -> dict[str, float]:
        """Namespace name -> creation time (epoch); namespaces exist once something is in them."""
        return dict(sorted(self._namespaces.items()))

    # -- deployments and the controller ------------------------------------------------------

    def add_deployment(self, namespace: str, name: str, *, replicas: int,
                       cpu_request_milli: int = POD_CPU_REQUEST_MILLI,
                       image: str = "tracardi/com-tracardi-api",
                       labels: Mapping[str, str] | None = None,
                       annotations: Mapping[str, str] | None = None,
                       instance: str = "tracardi", manager: str = CREATOR) -> Deployment:
        """A Deployment labelled like Tracardi's chart, with its pods created (Pending), made
        by `manager`."""
        if (namespace, name) in self._deployments:
            raise AlreadyExistsError(f'{DEPLOYMENTS.qualified} "{name}" already exists',
                                details=_details(DEPLOYMENTS, name))
        self._touch_namespace(namespace)
        selector = {COMPONENT_LABEL: name, NAME_LABEL: "tracardi"}
        all_labels = {**selector, INSTANCE_LABEL: instance, **(labels or {})}
        d = Deployment(namespace=namespace, name=name, replicas=replicas, labels=all_labels,
                       annotations={REVISION_ANNOTATION: "1", **(annotations or {})},
                       selector=selector, cpu_request_milli=cpu_request_milli, image=image,
                       uid=self._uid(), created_wall=self.wall(), resource_version=self._next_rv(),
                       status_changed_wall=self.wall())
        # The creator set the spec, labels and annotations; the controller its revision.
        own = {"labels": d.labels, "annotations": {
            k: v for k, v in d.annotations.items() if k != REVISION_ANNOTATION}}
        d.managed = [
            ManagedEntry(manager, d.created_wall,
                         managed.paths_of(self._deployment_spec(d), ("f:spec",))
                         | managed.paths_of({k: v for k, v in own.items() if v},
                                            ("f:metadata",))),
            ManagedEntry(CONTROLLER_MANAGER, d.created_wall,
                         frozenset({("f:metadata", "f:annotations", f"f:{REVISION_ANNOTATION}")}))]
        self._deployments[(namespace, name)] = d
        self._emit_deployment("ADDED", d, d.resource_version)
        if replicas:
            self._deployment_event(d, "ScalingReplicaSet", f"Scaled up replica set "
                                   f"{d.replica_set_name} to {replicas} from 0")
        self._reconcile(d)
        return d

    def deployment(self, namespace: str, name: str) -> Deployment:
        try:
            return self._deployments[(namespace, name)]
        except KeyError:
            raise not_found(DEPLOYMENTS, name) from None

    def deployments(self, namespace: str | None = None) -> list[Deployment]:
        return [d for (ns, _), d in sorted(self._deployments.items())
                if namespace in (None, ns)]

    def set_replicas(self, namespace: str, name: str, replicas: int, *,
                     resource_version: str | int | None = None, manager: str = SCALE_MANAGER,
                     subresource: str = "scale") -> Deployment:
        """Change spec.replicas (what a scale write does, by `manager` through `subresource`);
        the controller acts at once.

        A non-empty `resource_version` is a precondition: a stale one raises `ConflictError`.
        """
        d = self.deployment(namespace, name)
        # The scale subresource is stored as the Deployment: its conflicts name deployments.apps.
        check_resource_version(DEPLOYMENTS, name, d.resource_version, resource_version)
        check_replicas(name, replicas)
        if replicas != d.replicas:
            d.managed = managed.claim(d.managed, manager, frozenset({managed.REPLICAS}),
                                      now=self.wall(), subresource=subresource)
            self._change_replicas(d, replicas)
        return d

    def _change_replicas(self, d: Deployment, replicas: int) -> None:
        old, d.replicas = d.replicas, replicas
        d.generation += 1
        self._modified_deployment(d)
        self._deployment_event(d, "ScalingReplicaSet",
                               f"Scaled {'up' if replicas > old else 'down'} replica set "
                               f"{d.replica_set_name} to {replicas} from {old}")
        self._reconcile(d)

    def apply_deployment(self, namespace: str, name: str, *, manager: str,
                         replicas: int | None, labels: Mapping[str, str],
                         annotations: Mapping[str, str], spec: frozenset[FieldPath],
                         force: bool = False, dry_run: bool = False) -> JSON:
        """A server-side apply by `manager` of a configuration that sets `replicas` (None: not
        at all), `labels`, `annotations` and the other spec fields `spec` (with the values they
        have: the caller checks). What the manager applied before and no longer does, and no
        other manager holds, is removed: a label, or the replicas, which then default to 1.
        `ConflictError` (409) names each field another manager holds that it would change,
        unless `force`, which takes them. Returns the Deployment as it is, or on a dry run
        would be, after it."""
        d = self.deployment(namespace, name)
        maps = {"labels": labels, "annotations": annotations}
        applied = spec | managed.paths_of({k: v for k, v in maps.items() if v}, ("f:metadata",))
        changed = _meta_set(d, labels, annotations)
        if replicas is not None:
            applied |= {managed.REPLICAS}
            if replicas != d.replicas:
                changed |= {managed.REPLICAS}
        done = managed.apply(d.managed, manager, applied, changed, now=self.wall())
        _refuse_conflicts(done, force)
        entries = done.entries
        kept = {kind: {k: v for k, v in live.items()
                       if ("f:metadata", f"f:{kind}", f"f:{k}") not in done.dropped}
                | dict(maps[kind])
                for kind, live in (("labels", d.labels), ("annotations", d.annotations))}
        count = _applied_count(d, replicas, done)
        if dry_run:
            return self.deployment_json(dataclasses.replace(
                d, labels=kept["labels"], annotations=kept["annotations"], replicas=count,
                generation=d.generation + (count != d.replicas), managed=entries,
                rendered=None))
        touched = kept["labels"] != d.labels or kept["annotations"] != d.annotations
        d.labels, d.annotations = kept["labels"], kept["annotations"]
        self._store_apply(d, entries, count, touched=touched)
        return self.deployment_json(d)

    def apply_scale(self, namespace: str, name: str, *, manager: str, replicas: int | None,
                    force: bool = False, dry_run: bool = False) -> JSON:
        """A server-side apply by `manager` through the `scale` subresource (client-go's
        `ApplyScale`) of a Scale that sets `replicas` (None: not at all): held in an Apply entry
        of its own, with the conflicts and the removal of `apply_deployment`. Returns the Scale
        as it is, or on a dry run would be, after it."""
        d = self.deployment(namespace, name)
        applied = frozenset({managed.REPLICAS}) if replicas is not None else frozenset()
        changed = applied if replicas != d.replicas else frozenset()
        done = managed.apply(d.managed, manager, applied, changed, now=self.wall(),
                             subresource="scale")
        _refuse_conflicts(done, force)
        count = _applied_count(d, replicas, done)
        if dry_run:
            scale = self.scale_json(d)
            scale["spec"]["replicas"] = count
            return scale
        self._store_apply(d, done.entries, count)
        return self.scale_json(d)

    def _store_apply(self, d: Deployment, entries: list[ManagedEntry], count: int, *,
                     touched: bool = False) -> None:
        """An apply's result stored: its ownership and count; a change of either (or of what
        else it `touched`) is a new resourceVersion, one that changes only times is none."""
        moved = sorted(map(_ownership, entries)) != sorted(map(_ownership, d.managed))
        d.managed = entries
        if count != d.replicas:
            self._change_replicas(d, count)
        elif moved or touched:
            self._modified_deployment(d)

    def update_deployment_metadata(self, namespace: str, name: str, *,
                                   labels: Mapping[str, str], annotations: Mapping[str, str],
                                   replicas: int,
                                   resource_version: str | int | None = None,
                                   manager: str = ANNOTATE_MANAGER) -> Deployment:
        """A metadata/replicas patch of the Deployment itself by `manager` (kubectl annotate,
        label, scale)."""
        d = self.deployment(namespace, name)
        check_resource_version(DEPLOYMENTS, name, d.resource_version, resource_version)
        changed = dict(labels) != d.labels or dict(annotations) != d.annotations
        d.managed = managed.claim(d.managed, manager, _meta_set(d, labels, annotations),
                                  now=self.wall())
        d.managed = managed.disown(d.managed, _meta_set(d, labels, annotations, gone=True))
        d.labels, d.annotations = dict(labels), dict(annotations)
        if replicas != d.replicas:
            self.set_replicas(namespace, name, replicas, manager=manager, subresource="")
        elif changed:
            self._modified_deployment(d)
        return d

    def delete_deployment(self, namespace: str, name: str) -> Deployment:
        """Delete a Deployment and, as the garbage collector does, its pods."""
        d = self.deployment(namespace, name)
        for pod in self._deployment_pods(d):
            self._remove_pod(pod)
        del self._deployments[(namespace, name)]
        self._emit_deployment("DELETED", d, self._next_rv())
        return d

    def set_paused(self, namespace: str, name: str, paused: bool) -> None:
        """Set or clear the `autoscaler.tracardi.com/paused` annotation, as `kubectl annotate`
        records it. Unlike a PATCH that changes nothing, it is a change (a new resourceVersion)
        even when the annotation already is so: tests touch a Deployment with it."""
        d = self.deployment(namespace, name)
        path = ("f:metadata", "f:annotations", f"f:{PAUSE_ANNOTATION}")
        if paused:
            d.annotations[PAUSE_ANNOTATION] = "true"
            d.managed = managed.claim(d.managed, ANNOTATE_MANAGER, frozenset({path}),
                                      now=self.wall())
        else:
            d.annotations.pop(PAUSE_ANNOTATION, None)
            d.managed = managed.disown(d.managed, frozenset({path}))
        self._modified_deployment(d)

    def _modified_deployment(self, d: Deployment) -> None:
        d.resource_version = self._next_rv()
        self._emit_deployment("MODIFIED", d, d.resource_version)

    def _emit_deployment(self, type_: str, d: Deployment, rv: int) -> None:
        """A change of the Deployment, and of its one ReplicaSet (whose status is its)."""
        self._emit(type_, "deployments", d.namespace, rv, self.deployment_json(d))
        self._emit(type_, "replicasets", d.namespace, rv, self.replica_set_json(d))

    def _deployment_pods(self, d: Deployment) -> list[Pod]:
        """The pods the ReplicaSet controller counts: not those terminating."""
        return [p for p in self._pods.values()
                if p.namespace == d.namespace and p.owner == d.name and not p.deleting]

    def _reconcile(self, d: Deployment) -> None:
        """The ReplicaSet controller: create or delete pods until the count matches."""
        pods = self._deployment_pods(d)
        if len(pods) < d.replicas:
            for _ in range(d.replicas - len(pods)):
                self._create_pod(d)
        elif len(pods) > d.replicas:
            for pod in sorted(pods, key=_deletion_order)[: len(pods) - d.replicas]:
                self._remove_pod(pod)
                self._replica_set_event(d, "SuccessfulDelete", f"Deleted pod: {pod.name}")
        self._refresh_status(d)

    def _refresh_status(self, d: Deployment) -> None:
        pods = self._deployment_pods(d)
        key = (len(pods), sum(p.ready for p in pods), d.generation)
        if key != d.status_key:
            d.status_key = key
            d.status_changed_wall = self.wall()
            available = _available(d.replicas, key[1])
            if available is not d.available:  # a flip: the condition's lastTransitionTime
                d.available, d.available_since_wall = available, d.status_changed_wall
            self._modified_deployment(d)

    # -- pods --------------------------------------------------------------------------------

    def _create_pod(self, d: Deployment) -> Pod:
        name = f"{d.replica_set_name}-{self._suffix()}"
        while (d.namespace, name) in self._pods:
            name = f"{d.replica_set_name}-{self._suffix()}"
        labels = {**d.selector, POD_TEMPLATE_HASH: d.template_hash,
                  INSTANCE_LABEL: d.labels.get(INSTANCE_LABEL, "tracardi")}
        pod = Pod(namespace=d.namespace, name=name, owner=d.name, labels=labels,
                  uid=self._uid(), created_at=self.clock(), created_wall=self.wall(),
                  cpu_request_milli=d.cpu_request_milli, image=d.image,
                  resource_version=self._next_rv(), status_wall=self.wall())
        # The ReplicaSet's controller sent the template, its labels, a name prefix and itself
        # as the owner; the kubelet writes the status (made when served).
        pod.managed = [ManagedEntry(
            CONTROLLER_MANAGER, pod.created_wall,
            managed.paths_of(self._deployment_spec(d)["template"]["spec"], ("f:spec",))
            | managed.paths_of({"generateName": "", "labels": labels,
                                "ownerReferences": [self._replica_set_owner(d)]},
                               ("f:metadata",)),
            api_version="v1")]
        self._pods[(d.namespace, name)] = pod
        self._emit("ADDED", "pods", pod.namespace, pod.resource_version, self.pod_json(pod))
        self._replica_set_event(d, "SuccessfulCreate", f"Created pod: {pod.name}")
        self.record_event(pod.namespace, kind="Pod", name=pod.name, uid=pod.uid,
                          api_version="v1", reason="Scheduled",
                          message=f"Successfully assigned {pod.namespace}/{pod.name} to "
                                  f"{NODE_NAME}",
                          component="default-scheduler", action="Binding")
        return pod

    def _remove_pod(self, pod: Pod, *, force: bool = False, grace: int | None = None) -> None:
        """Delete `pod`: it terminates for `termination_seconds`, or its `grace` period when
        that is shorter, unless `force` (a grace period of 0) or there is none to wait; a pod
        already terminating is left to finish."""
        if not pod.deleting and pod.phase == "Running":  # a container to stop
            self._kubelet_event(pod, "Killing", f"Stopping container {pod.container}")
        if self.termination_seconds > 0 and not force:
            if not pod.deleting:
                pod.deleted_wall, pod.deleted_at = self.wall(), self.clock()
                pod.grace_seconds = POD_GRACE_SECONDS if grace is None else grace
                pod.resource_version = self._next_rv()
                self._emit("MODIFIED", "pods", pod.namespace, pod.resource_version,
                           self.pod_json(pod))
            return
        del self._pods[(pod.namespace, pod.name)]
        rv = self._next_rv()
        pod.resource_version = rv
        self._emit("DELETED", "pods", pod.namespace, rv, self.pod_json(pod))

    def reap(self) -> list[Pod]:
        """Remove the pods whose termination is over (the kubelet saw their container exit);
        the model calls it as time passes. Returns them."""
        now = self.clock()
        done = [p for p in self._pods.values() if p.deleted_at is not None
                and p.deleted_at + min(self.termination_seconds, p.grace_seconds) <= now]
        for pod in done:
            self._remove_pod(pod, force=True)
        return done

    def pod(self, namespace: str, name: str) -> Pod:
        try:
            return self._pods[(namespace, name)]
        except KeyError:
            raise not_found(PODS, name) from None

    def has_pod(self, namespace: str, name: str) -> bool:
        return (namespace, name) in self._pods

    def pods(self, namespace: str | None = None, *,
             selector: Mapping[str, str] | None = None) -> list[Pod]:
        """Pods in creation order, optionally only those whose labels include `selector`."""
        out = [p for p in self._pods.values() if namespace in (None, p.namespace)
               and all(p.labels.get(k) == v for k, v in (selector or {}).items())]
        return sorted(out, key=lambda p: (p.created_wall, p.name))

    def workload_pods(self, namespace: str, deployment: str) -> list[Pod]:
        return self.pods(namespace, selector=self.deployment(namespace, deployment).selector)

    def _modified_pod(self, pod: Pod, *, status: bool = False) -> None:
        """`pod` changed (`status`: the kubelet wrote its status)."""
        if status:
            pod.status_wall = self.wall()
        pod.resource_version = self._next_rv()
        self._emit("MODIFIED", "pods", pod.namespace, pod.resource_version, self.pod_json(pod))
        owner = self._deployments.get((pod.namespace, pod.owner))
        if owner is not None:
            self._refresh_status(owner)

    def update_pod_metadata(self, namespace: str, name: str, *, labels: Mapping[str, str],
                            annotations: Mapping[str, str],
                            resource_version: str | int | None = None,
                            manager: str = ANNOTATE_MANAGER) -> Pod:
        """A labels/annotations patch of a pod by `manager` (kubectl label, annotate)."""
        pod = self.pod(namespace, name)
        check_resource_version(PODS, name, pod.resource_version, resource_version)
        if dict(labels) != pod.labels or dict(annotations) != pod.annotations:
            pod.managed = managed.disown(
                managed.claim(pod.managed, manager, _meta_set(pod, labels, annotations),
                              now=self.wall(), api_version="v1"),
                _meta_set(pod, labels, annotations, gone=True))
            pod.labels, pod.annotations = dict(labels), dict(annotations)
            self._modified_pod(pod)
        return pod

    def mark_ready(self, namespace: str, name: str, ready: bool) -> Pod:
        """The model's verdict: the container runs and its readiness is `ready`.

        The first call moves a Pending pod to Running and gives it an IP.
        """
        pod = self.pod(namespace, name)
        now = self.wall()
        if pod.phase != "Running":
            pod.phase = "Running"
            pod.running_since_wall = now
            self._container_started(pod)
        if not pod.ip:
            pod.ip = self._next_ip()
        if ready and not pod.ready:
            pod.ready_since_wall = now
        if ready or pod.waiting_reason == "ContainerCreating":
            pod.waiting_reason = ""
        pod.ready = ready
        self._modified_pod(pod, status=True)
        return pod

    def set_pod_ip(self, namespace: str, name: str, ip: str) -> Pod:
        pod = self.pod(namespace, name)
        pod.ip = ip
        self._modified_pod(pod, status=True)
        return pod

    def crash(self, namespace: str, name: str) -> Pod:
        """The container exited: one more restart, not ready, waiting in CrashLoopBackOff."""
        pod = self.pod(namespace, name)
        pod.phase = "Running"
        if not pod.ip:
            pod.ip = self._next_ip()
        pod.restarts += 1
        pod.ready = False
        pod.ready_since_wall = None
        pod.waiting_reason = "CrashLoopBackOff"
        pod.last_exit_wall = self.wall()
        self._modified_pod(pod, status=True)
        self._kubelet_event(pod, "BackOff",
                            f"Back-off restarting failed container {pod.container} in pod "
                            f"{pod.name}_{pod.namespace}({pod.uid})", type_="Warning")
        return pod

    def set_cpu_usage(self, namespace: str, name: str, milli: int) -> None:
        """What metrics-server would report for the pod (no watch event: metrics aren't
        objects)."""
        self.pod(namespace, name).cpu_usage_milli = max(0, int(milli))

    def _next_ip(self) -> str:
        self._ips += 1
        return f"10.244.{self._ips // 250}.{self._ips % 250 + 1}"

    def delete_pod(self, namespace: str, name: str, *, force: bool = False,
                   grace: int | None = None, resource_version: str | None = None) -> Pod:
        """Delete a pod (at once with `force`, else it terminates first within `grace`, see
        `_remove_pod`), if it is still at `resource_version` (when given); its Deployment's
        controller replaces it at once."""
        pod = self.pod(namespace, name)
        check_resource_version(PODS, name, pod.resource_version, resource_version)
        self._remove_pod(pod, force=force, grace=grace)
        owner = self._deployments.get((namespace, pod.owner))
        if owner is not None:
            self._reconcile(owner)
        return pod

    def evict(self, namespace: str, name: str, *, dry_run: bool = False,
              resource_version: str | None = None) -> Pod:
        """The Eviction API: `TooManyRequestsError` when a PodDisruptionBudget forbids it, a
        conflict when the pod is no longer at `resource_version` (its deleteOptions'
        precondition). A dry run checks the budgets and deletes nothing."""
        pod = self.pod(namespace, name)
        if pod.deleting:  # already on its way out: the eviction has nothing to check
            return pod
        for pdb in self.pdbs(namespace):
            if not all(pod.labels.get(k) == v for k, v in pdb.selector.items()):
                continue
            healthy = self._healthy(pdb)
            allowed = healthy - 1 if pod.ready else healthy
            if allowed < pdb.min_available:
                raise TooManyRequestsError(
                    "Cannot evict pod as it would violate the pod's disruption budget.",
                    details={"causes": [{
                        "reason": "DisruptionBudget",
                        "message": f"The disruption budget {pdb.name} needs "
                                   f"{pdb.min_available} healthy pods and has {healthy} "
                                   "currently"}]})
        # As the apiserver: the budgets first, then the delete with its precondition.
        check_resource_version(PODS, name, pod.resource_version, resource_version)
        return pod if dry_run else self.delete_pod(namespace, name)

    # -- PDBs, HPAs, ScaledObjects -----------------------------------------------------------

    def add_pdb(self, namespace: str, name: str, *, min_available: int,
                selector: Mapping[str, str]) -> Pdb:
        self._touch_namespace(namespace)
        pdb = Pdb(namespace, name, min_available, dict(selector), self._uid(), self.wall(),
                  self._next_rv())
        self._pdbs[(namespace, name)] = pdb
        self._emit("ADDED", "poddisruptionbudgets", namespace, pdb.resource_version,
                   self.pdb_json(pdb))
        return pdb

    def pdbs(self, namespace: str | None = None) -> list[Pdb]:
        return [p for (ns, _), p in sorted(self._pdbs.items()) if namespace in (None, ns)]

    def pdb(self, namespace: str, name: str) -> Pdb:
        try:
            return self._pdbs[(namespace, name)]
        except KeyError:
            raise not_found(PDBS, name) from None

    def _healthy(self, pdb: Pdb) -> int:
        """Ready pods that are not terminating, as the disruption controller counts them."""
        return sum(1 for p in self.pods(pdb.namespace, selector=pdb.selector)
                   if p.ready and not p.deleting)

    def add_hpa(self, namespace: str, name: str, *, target: str, min_replicas: int = 1,
                max_replicas: int = 10, cpu_utilization: int = 80,
                target_kind: str = "Deployment") -> Hpa:
        self._touch_namespace(namespace)
        hpa = Hpa(namespace, name, target_kind, target, min_replicas, max_replicas,
                  cpu_utilization, self._uid(), self.wall(), self._next_rv())
        self._hpas[(namespace, name)] = hpa
        self._emit("ADDED", "horizontalpodautoscalers", namespace, hpa.resource_version,
                   self.hpa_json(hpa))
        return hpa

    def remove_hpa(self, namespace: str, name: str) -> None:
        hpa = self._hpas.pop((namespace, name), None)
        if hpa is None:
            raise not_found(HPAS, name)
        self._emit("DELETED", "horizontalpodautoscalers", namespace, self._next_rv(),
                   self.hpa_json(hpa))

    def hpas(self, namespace: str | None = None) -> list[Hpa]:
        return [h for (ns, _), h in sorted(self._hpas.items()) if namespace in (None, ns)]

    def hpa(self, namespace: str, name: str) -> Hpa:
        try:
            return self._hpas[(namespace, name)]
        except KeyError:
            raise not_found(HPAS, name) from None

    def add_scaled_object(self, namespace: str, name: str, *, target: str,
                          min_replicas: int = 1, max_replicas: int = 10,
                          target_kind: str = "Deployment") -> ScaledObject:
        """A KEDA ScaledObject; installs the KEDA CRD in the fake cluster if needed."""
        self.keda_installed = True
        self._touch_namespace(namespace)
        so = ScaledObject(namespace, name, target_kind, target, min_replicas, max_replicas,
                          self._uid(), self.wall(), self._next_rv())
        self._scaled_objects[(namespace, name)] = so
        self._emit("ADDED", "scaledobjects", namespace, so.resource_version,
                   self.scaled_object_json(so))
        return so

    def scaled_objects(self, namespace: str | None = None) -> list[ScaledObject]:
        """ScaledObjects; `NotFoundError` (like the apiserver's 404) when KEDA is not installed."""
        if not self.keda_installed:
            raise NotFoundError("the server could not find the requested resource")
        return [s for (ns, _), s in sorted(self._scaled_objects.items())
                if namespace in (None, ns)]

    def scaled_object(self, namespace: str, name: str) -> ScaledObject:
        self.scaled_objects(namespace)
        try:
            return self._scaled_objects[(namespace, name)]
        except KeyError:
            raise not_found(SCALED_OBJECTS, name) from None

    # -- events ------------------------------------------------------------------------------

    def create_event(self, namespace: str, body: Mapping[str, Any], *,
                     manager: str = "") -> Event:
        """A core/v1 Event from its wire body (server fields are filled in), created by
        `manager`."""
        meta = body.get("metadata") or {}
        name = meta.get("name") or ""
        if not name and meta.get("generateName"):
            name = f"{meta['generateName']}{self._suffix()}"
        involved = body.get("involvedObject")
        if not name or not isinstance(involved, Mapping):
            raise InvalidError(f'Event "{name}" is invalid: metadata.name and involvedObject are '
                          "required", details=_details(EVENTS, name))
        if meta.get("namespace", namespace) != namespace:
            raise BadRequestError("the namespace of the provided object does not match the "
                             "namespace sent on the request")
        if (namespace, name) in self._events:
            raise AlreadyExistsError(f'events "{name}" already exists',
                                     details=_details(EVENTS, name))
        now = self.wall()
        self._expire_events(now)
        source = body.get("source") or {}
        try:
            first = parse_time(body["firstTimestamp"]) if body.get("firstTimestamp") else now
            last = parse_time(body["lastTimestamp"]) if body.get("lastTimestamp") else first
            event_time = parse_time(body["eventTime"]) if body.get("eventTime") else None
        except (TypeError, ValueError) as exc:
            raise BadRequestError(f"invalid timestamp: {exc}") from None
        self._touch_namespace(namespace)
        ev = Event(namespace=namespace, name=name, uid=self._uid(),
                   resource_version=self._next_rv(), created_wall=now,
                   involved={k: str(v) for k, v in involved.items() if v is not None},
                   reason=str(body.get("reason") or ""), message=str(body.get("message") or ""),
                   type=str(body.get("type") or "Normal"),
                   source_component=str(source.get("component") or ""),
                   source_host=str(source.get("host") or ""), count=int(body.get("count") or 1),
                   first_wall=first, last_wall=last, event_time=event_time,
                   reporting_component=str(body.get("reportingComponent") or ""),
                   reporting_instance=str(body.get("reportingInstance") or ""),
                   action=str(body.get("action") or ""), manager=manager)
        self._events[(namespace, name)] = ev
        self._emit("ADDED", "events", namespace, ev.resource_version, self.event_json(ev))
        return ev

    def record_event(self, namespace: str, *, kind: str, name: str, reason: str, message: str,
                     type_: str = "Normal", component: str = "tracardi-autoscaler",
                     api_version: str = "apps/v1", uid: str | None = None, host: str = "",
                     field_path: str = "", action: str = "") -> Event:
        """An Event about an object, as client-go's recorder would create it (`action`: as the
        events.k8s.io recorder, with an eventTime, as the scheduler's)."""
        if uid is None:
            known = self._deployments.get((namespace, name)) if kind == "Deployment" else None
            uid = known.uid if known is not None else ""
        now = self.wall()
        involved = {"kind": kind, "namespace": namespace, "name": name, "uid": uid,
                    "apiVersion": api_version}
        if field_path:
            involved["fieldPath"] = field_path
        body: JSON = {
            "metadata": {"name": f"{name}.{int(now * 1e9):x}{self._suffix(3)}",
                         "namespace": namespace},
            "involvedObject": involved,
            "reason": reason, "message": message, "type": type_,
            "source": {"component": component, "host": host}, "count": 1,
            "firstTimestamp": format_time(now), "lastTimestamp": format_time(now),
            "reportingComponent": component,
        }
        if action:
            body |= {"action": action, "eventTime": format_micro_time(now),
                     "reportingInstance": f"{component}-{NODE_NAME}"}
        return self.create_event(namespace, body, manager=_COMPONENT_MANAGERS.get(component,
                                                                                  component))

    def _deployment_event(self, d: Deployment, reason: str, message: str) -> None:
        self.record_event(d.namespace, kind="Deployment", name=d.name, uid=d.uid,
                          reason=reason, message=message, component="deployment-controller")

    def _replica_set_event(self, d: Deployment, reason: str, message: str) -> None:
        self.record_event(d.namespace, kind="ReplicaSet", name=d.replica_set_name,
                          uid=d.replica_set_uid, reason=reason, message=message,
                          component="replicaset-controller")

    def _kubelet_event(self, pod: Pod, reason: str, message: str, *,
                       type_: str = "Normal") -> None:
        self.record_event(pod.namespace, kind="Pod", name=pod.name, uid=pod.uid,
                          api_version="v1", reason=reason, message=message, type_=type_,
                          component="kubelet", host=NODE_NAME,
                          field_path=f"spec.containers{{{pod.container}}}")

    def _container_started(self, pod: Pod) -> None:
        """What the kubelet reports as it first starts the pod's container."""
        self._kubelet_event(pod, "Pulled", f'Container image "{pod.image}" already present on '
                                           "machine")
        self._kubelet_event(pod, "Created", f"Created container: {pod.container}")
        self._kubelet_event(pod, "Started", f"Started container {pod.container}")

    def _expire_events(self, now: float) -> None:
        """Drop the Events older than the TTL (the oldest come first: dicts keep their order)."""
        while self._events:
            key, ev = next(iter(self._events.items()))
            if ev.created_wall > now - EVENT_TTL_SECONDS:
                return
            del self._events[key]
            self._emit("DELETED", "events", ev.namespace, self._next_rv(), self.event_json(ev))

    def events(self, namespace: str | None = None) -> list[Event]:
        """Events in creation order."""
        out = [e for (ns, _), e in self._events.items() if namespace in (None, ns)]
        return sorted(out, key=lambda e: e.resource_version)

    def event(self, namespace: str, name: str) -> Event:
        try:
            return self._events[(namespace, name)]
        except KeyError:
            raise not_found(EVENTS, name) from None

    # -- leases ------------------------------------------------------------------------------

    def get_lease(self, namespace: str, name: str) -> Lease:
        try:
            return self._leases[(namespace, name)]
        except KeyError:
            raise not_found(LEASES, name) from None

    def leases(self, namespace: str | None = None) -> list[Lease]:
        return [le for (ns, _), le in sorted(self._leases.items()) if namespace in (None, ns)]

    def create_lease(self, namespace: str, name: str, spec: LeaseSpec, *,
                     labels: Mapping[str, str] | None = None,
                     annotations: Mapping[str, str] | None = None, manager: str = "") -> Lease:
        if (namespace, name) in self._leases:
            raise AlreadyExistsError(f'{LEASES.qualified} "{name}" already exists',
                                details=_details(LEASES, name))
        self._touch_namespace(namespace)
        lease = Lease(namespace, name, self._uid(), self.wall(), self._next_rv(), spec,
                      dict(labels or {}), dict(annotations or {}))
        self._lease_written(lease, manager, {}, {}, {})
        self._leases[(namespace, name)] = lease
        self._emit("ADDED", "leases", namespace, lease.resource_version, self.lease_json(lease))
        return lease

    def update_lease(self, namespace: str, name: str, spec: LeaseSpec, *,
                     resource_version: str | int | None,
                     labels: Mapping[str, str] | None = None,
                     annotations: Mapping[str, str] | None = None, manager: str = "") -> Lease:
        """A replace of the Lease (a PUT): labels and annotations, when given, replace the old."""
        lease = self.get_lease(namespace, name)
        check_resource_version(LEASES, name, lease.resource_version, resource_version)
        before, labels_before = lease_spec_json(lease.spec), dict(lease.labels)
        annotations_before = dict(lease.annotations)
        lease.spec = spec
        if labels is not None:
            lease.labels = dict(labels)
        if annotations is not None:
            lease.annotations = dict(annotations)
        self._lease_written(lease, manager, before, labels_before, annotations_before)
        lease.resource_version = self._next_rv()
        self._emit("MODIFIED", "leases", namespace, lease.resource_version,
                   self.lease_json(lease))
        return lease

    def _lease_written(self, lease: Lease, manager: str, before: JSON,
                       labels_before: Mapping[str, str],
                       annotations_before: Mapping[str, str]) -> None:
        """An Update of `lease` by `manager`: it takes the fields it changed from whoever held
        them, and a field it dropped is no one's."""
        spec = lease_spec_json(lease.spec)
        changed: frozenset[FieldPath] = frozenset(
            ("f:spec", f"f:{k}") for k, v in spec.items() if before.get(k) != v)
        gone: frozenset[FieldPath] = frozenset(
            ("f:spec", f"f:{k}") for k in before.keys() - spec.keys())
        for key, now, was in (("labels", lease.labels, labels_before),
                              ("annotations", lease.annotations, annotations_before)):
            if now != was:
                changed |= managed.paths_of({key: now} if now else {}, ("f:metadata",))
            gone |= frozenset(("f:metadata", f"f:{key}", f"f:{k}")
                              for k in was.keys() - now.keys())
        lease.managed = managed.disown(managed.claim(lease.managed, manager, changed,
                                                     now=self.wall(), api_version=LEASE_API),
                                       gone)

    def delete_lease(self, namespace: str, name: str) -> Lease:
        lease = self.get_lease(namespace, name)
        del self._leases[(namespace, name)]
        self._emit("DELETED", "leases", namespace, self._next_rv(), self.lease_json(lease))
        return lease

    # -- pod metrics -------------------------------------------------------------------------

    def pod_metrics(self, namespace: str,
                    selector: LabelSelector | None = None) -> list[Pod]:
        """Pods that metrics-server would report: running, with a usage sample."""
        return [p for p in self.pods(namespace)
                if p.phase == "Running" and p.cpu_usage_milli is not None
                and (selector is None or selector.matches(p.labels))]

    # -- wire objects ------------------------------------------------------------------------

    def replica_set(self, namespace: str, name: str) -> Deployment:
        """The Deployment whose one ReplicaSet is `name` (`<deployment>-<template hash>`)."""
        for d in self.deployments(namespace):
            if d.replica_set_name == name:
                return d
        raise not_found(REPLICA_SETS, name)

    def replica_set_json(self, d: Deployment) -> JSON:
        """The Deployment's ReplicaSet: one per Deployment, revision 1, as the simulated
        cluster has no rollouts. Its template is the Deployment's with the pod-template-hash
        label, so kubectl finds it as the new one (`describe`, `rollout history`)."""
        deployment = self.deployment_json(d)
        if d.replica_set_rendered is not None and \
                d.replica_set_rendered[0] == d.resource_version:
            return d.replica_set_rendered[1]
        # The ReplicaSet's pods are the Deployment's: its counts are the Deployment's too.
        count = deployment["status"].get("replicas", 0)
        ready = deployment["status"].get("readyReplicas", 0)
        # As the Deployment controller makes it: the template's labels and its selector, each
        # with the pod-template-hash.
        selector = {**d.selector, POD_TEMPLATE_HASH: d.template_hash}
        template = deployment["spec"]["template"]
        labels = {**template["metadata"]["labels"], POD_TEMPLATE_HASH: d.template_hash}
        template = {**template, "metadata": {**template["metadata"], "labels": labels}}
        status: JSON = {"replicas": count, "observedGeneration": 1}
        for key, value in (("fullyLabeledReplicas", count), ("readyReplicas", ready),
                           ("availableReplicas", ready)):
            if value:
                status[key] = value
        surge = -(-d.replicas // 4)  # maxSurge 25 % rounds up
        meta = object_meta(
            name=d.replica_set_name, namespace=d.namespace, uid=d.replica_set_uid,
            rv=d.resource_version,
            created=d.created_wall, labels=labels,
            annotations={"deployment.kubernetes.io/desired-replicas": str(d.replicas),
                         "deployment.kubernetes.io/max-replicas": str(d.replicas + surge),
                         "deployment.kubernetes.io/revision": "1"},
            generation=1)
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": "Deployment",
                                    "name": d.name, "uid": d.uid, "controller": True,
                                    "blockOwnerDeletion": True}]
        spec: JSON = {"replicas": d.replicas, "selector": {"matchLabels": selector},
                      "template": template}
        # The Deployment's controller made it and sets its count (when the Deployment's count
        # was last set); the ReplicaSet's controller writes its status.
        scaled = max((e.time_wall for e in d.managed if managed.REPLICAS in e.fields),
                     default=d.created_wall)
        meta["managedFields"] = managed.managed_fields([
            ManagedEntry(CONTROLLER_MANAGER, scaled, managed.paths_of(spec, ("f:spec",))
                         | managed.paths_of({k: meta[k] for k in ("labels", "annotations",
                                                                  "ownerReferences")},
                                            ("f:metadata",))),
            ManagedEntry(CONTROLLER_MANAGER, d.status_changed_wall,
                         managed.paths_of(status, ("f:status",)), subresource="status"),
        ], format_time)
        rendered: JSON = {"kind": "ReplicaSet", "apiVersion": "apps/v1", "metadata": meta,
                          "spec": spec, "status": status}
        d.replica_set_rendered = (d.resource_version, rendered)
        return rendered

    def deployment_json(self, d: Deployment) -> JSON:
        if d.rendered is not None and d.rendered[0] == d.resource_version:
            return d.rendered[1]
        pods = self._deployment_pods(d)
        ready = sum(p.ready for p in pods)
        status: JSON = {"observedGeneration": d.generation}
        for key, value in (("replicas", len(pods)), ("updatedReplicas", len(pods)),
                           ("readyReplicas", ready), ("availableReplicas", ready),
                           ("unavailableReplicas", max(0, d.replicas - ready))):
            if value:
                status[key] = value
        available = _available(d.replicas, ready)
        since = d.available_since_wall if d.available is available else d.status_changed_wall
        changed = format_time(d.status_changed_wall)
        status["conditions"] = [
            {"type": "Available", "status": "True" if available else "False",
             "lastUpdateTime": changed,
             "lastTransitionTime": format_time(since),
             "reason": "MinimumReplicasAvailable" if available else "MinimumReplicasUnavailable",
             "message": "Deployment has minimum availability." if available
             else "Deployment does not have minimum availability."},
            {"type": "Progressing", "status": "True", "lastUpdateTime": changed,
             "lastTransitionTime": format_time(d.created_wall), "reason": "NewReplicaSetAvailable",
             "message": f'ReplicaSet "{d.replica_set_name}" has successfully progressed.'},
        ]
        rendered: JSON = {
            "kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": object_meta(name=d.name, namespace=d.namespace, uid=d.uid,
                                   rv=d.resource_version, created=d.created_wall,
                                   labels=d.labels, annotations=d.annotations,
                                   generation=d.generation, managedFields=managed.managed_fields(
                                       [*d.managed, ManagedEntry(
                                           CONTROLLER_MANAGER, d.status_changed_wall,
                                           managed.paths_of(status, ("f:status",)),
                                           subresource="status")], format_time)),
            "spec": self._deployment_spec(d),
            "status": status,
        }
        d.rendered = (d.resource_version, rendered)
        return rendered

    @staticmethod
    def _deployment_spec(d: Deployment) -> JSON:
        container: JSON = {
            "name": d.name, "image": d.image, "imagePullPolicy": "IfNotPresent",
            "resources": {"requests": {"cpu": f"{d.cpu_request_milli}m"}},
            "terminationMessagePath": "/dev/termination-log",
            "terminationMessagePolicy": "File",
        }
        return {
            "replicas": d.replicas,
            "selector": {"matchLabels": dict(d.selector)},
            "template": {
                "metadata": {"labels": {**d.selector,
                                        INSTANCE_LABEL: d.labels.get(INSTANCE_LABEL, "")}},
                "spec": {"containers": [container], "restartPolicy": "Always",
                         "terminationGracePeriodSeconds": POD_GRACE_SECONDS,
                         "dnsPolicy": "ClusterFirst",
                         "schedulerName": "default-scheduler", "securityContext": {}},
            },
            "strategy": {"type": "RollingUpdate",
                         "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}},
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
        }

    def scale_json(self, d: Deployment) -> JSON:
        return {
            "kind": "Scale", "apiVersion": "autoscaling/v1",
            "metadata": object_meta(name=d.name, namespace=d.namespace, uid=d.uid,
                                   rv=d.resource_version, created=d.created_wall),
            # autoscaling/v1 ScaleSpec.replicas is omitempty: a Deployment at 0 has spec {}
            "spec": {"replicas": d.replicas} if d.replicas else {},
            "status": {"replicas": len(self._deployment_pods(d)),
                       "selector": selector_string(d.selector)},
        }

    @staticmethod
    def _replica_set_owner(d: Deployment) -> JSON:
        """The owner reference of `d`'s ReplicaSet, as its pods carry it."""
        return {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": d.replica_set_name,
                "uid": d.replica_set_uid, "controller": True, "blockOwnerDeletion": True}

    def pod_json(self, pod: Pod) -> JSON:
        if pod.rendered is not None and pod.rendered[0] == pod.resource_version:
            return pod.rendered[1]
        created = format_time(pod.created_wall)
        running = pod.phase == "Running"

        def condition(type_: str, ok: bool, since: float | None, *,
                      unready: str = "") -> JSON:
            out: JSON = {"type": type_, "status": "True" if ok else "False",
                         "lastProbeTime": None,
                         "lastTransitionTime": format_time(since or pod.created_wall)}
            if not ok and unready:  # the kubelet's words for a container not ready
                out["reason"] = unready
                out["message"] = f"containers with unready status: [{pod.container}]"
            return out

        state: JSON
        if pod.waiting_reason:
            state = {"waiting": {"reason": pod.waiting_reason}}
            if pod.waiting_reason == "CrashLoopBackOff":
                state["waiting"]["message"] = (
                    f"back-off {_crash_back_off(pod.restarts)} restarting failed "
                    f"container={pod.container} pod={pod.name}_{pod.namespace}({pod.uid})")
        else:
            state = {"running": {"startedAt": format_time(pod.running_since_wall
                                                          or pod.created_wall)}}
        container_status: JSON = {
            "name": pod.container, "image": pod.image,
            "imageID": f"docker.io/{pod.image}@sha256:{'0' * 64}",
            "ready": pod.ready, "restartCount": pod.restarts,
            "started": running and pod.waiting_reason == "",
            "state": state, "lastState": {},
        }
        container_id = f"containerd://{pod.uid.replace('-', '')}"
        if running or pod.last_exit_wall is not None:  # kept while it waits to start again
            container_status["containerID"] = container_id
        if pod.last_exit_wall is not None:
            container_status["lastState"] = {"terminated": {
                "exitCode": 1, "reason": "Error",
                "startedAt": format_time(pod.running_since_wall or pod.created_wall),
                "finishedAt": format_time(pod.last_exit_wall), "containerID": container_id}}
        status: JSON = {
            "phase": pod.phase,
            "conditions": [
                condition("Initialized", True, pod.created_wall),
                condition("Ready", pod.ready, pod.ready_since_wall or pod.last_exit_wall,
                          unready="ContainersNotReady"),
                condition("ContainersReady", pod.ready,
                          pod.ready_since_wall or pod.last_exit_wall,
                          unready="ContainersNotReady"),
                condition("PodScheduled", True, pod.created_wall),
            ],
            "hostIP": NODE_IP,
            "startTime": created,
            "containerStatuses": [container_status],
            "qosClass": "Burstable",
        }
        if pod.ip:
            status["podIP"] = pod.ip
            status["podIPs"] = [{"ip": pod.ip}]
        owner = self._deployments.get((pod.namespace, pod.owner))
        owner_refs = [] if owner is None else [self._replica_set_owner(owner)]
        # The kubelet's status writes; the QoS class is the apiserver's, set at creation.
        kubelet = ManagedEntry(KUBELET_MANAGER, pod.status_wall,
                               managed.paths_of({k: v for k, v in status.items()
                                                 if k != "qosClass"}, ("f:status",)),
                               subresource="status", api_version="v1")
        meta = object_meta(name=pod.name, namespace=pod.namespace, uid=pod.uid,
                          rv=pod.resource_version, created=pod.created_wall, labels=pod.labels,
                          annotations=pod.annotations,
                          generateName=f"{pod.owner}-{pod.labels.get(POD_TEMPLATE_HASH, '')}-",
                          managedFields=managed.managed_fields([*pod.managed, kubelet],
                                                               format_time))
        if owner_refs:
            meta["ownerReferences"] = owner_refs
        if pod.deleted_wall is not None:  # the time by which the kubelet would kill it
            meta["deletionTimestamp"] = format_time(pod.deleted_wall + pod.grace_seconds)
            meta["deletionGracePeriodSeconds"] = pod.grace_seconds
        rendered: JSON = {
            "kind": "Pod", "apiVersion": "v1",
            "metadata": meta,
            "spec": {
                "containers": [{
                    "name": pod.container, "image": pod.image, "imagePullPolicy": "IfNotPresent",
                    "resources": {"requests": {"cpu": f"{pod.cpu_request_milli}m"}},
                    "terminationMessagePath": "/dev/termination-log",
                    "terminationMessagePolicy": "File",
                }],
                "restartPolicy": "Always", "terminationGracePeriodSeconds": POD_GRACE_SECONDS,
                "dnsPolicy": "ClusterFirst", "schedulerName": "default-scheduler",
                "serviceAccountName": "default", "serviceAccount": "default",
                "nodeName": NODE_NAME,
                "securityContext": {}, "priority": 0, "enableServiceLinks": True,
                # added at creation by the DefaultTolerationSeconds admission plugin
                "tolerations": [{"key": key, "operator": "Exists", "effect": "NoExecute",
                                 "tolerationSeconds": 300}
                                for key in ("node.kubernetes.io/not-ready",
                                            "node.kubernetes.io/unreachable")],
            },
            "status": status,
        }
        pod.rendered = (pod.resource_version, rendered)
        return rendered

    def event_json(self, ev: Event) -> JSON:
        out: JSON = {
            "kind": "Event", "apiVersion": "v1",
            "metadata": object_meta(name=ev.name, namespace=ev.namespace, uid=ev.uid,
                                   rv=ev.resource_version, created=ev.created_wall),
            "involvedObject": dict(ev.involved),
            "reason": ev.reason, "message": ev.message,
            "source": {k: v for k, v in (("component", ev.source_component),
                                         ("host", ev.source_host)) if v},
            "firstTimestamp": format_time(ev.first_wall),
            "lastTimestamp": format_time(ev.last_wall),
            "count": ev.count, "type": ev.type,
            "eventTime": None if ev.event_time is None else format_micro_time(ev.event_time),
            "reportingComponent": ev.reporting_component,
            "reportingInstance": ev.reporting_instance,
        }
        if ev.action:
            out["action"] = ev.action
        if ev.manager:  # its creator set every field it has
            out["metadata"]["managedFields"] = managed.written("v1", format_time, (
                ev.manager, ev.created_wall, {k: v for k, v in out.items()
                                              if k not in ("kind", "apiVersion", "metadata")},
                ""))
        return out

    def lease_json(self, lease: Lease) -> JSON:
        return {"kind": "Lease", "apiVersion": LEASE_API,
                "metadata": object_meta(name=lease.name, namespace=lease.namespace, uid=lease.uid,
                                       rv=lease.resource_version, created=lease.created_wall,
                                       labels=lease.labels, annotations=lease.annotations,
                                       managedFields=managed.managed_fields(
                                           lease.managed, format_time)),
                "spec": lease_spec_json(lease.spec)}

    def hpa_json(self, hpa: Hpa) -> JSON:
        current = 0
        if hpa.target_kind == "Deployment" and (hpa.namespace, hpa.target_name) \
                in self._deployments:
            current = self._deployments[(hpa.namespace, hpa.target_name)].replicas
        spec = {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": hpa.target_kind,
                               "name": hpa.target_name},
            "minReplicas": hpa.min_replicas, "maxReplicas": hpa.max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu", "target": {"type": "Utilization",
                                          "averageUtilization": hpa.cpu_utilization}}}],
        }
        status = {"currentReplicas": current, "desiredReplicas": current}
        return {
            "kind": "HorizontalPodAutoscaler", "apiVersion": "autoscaling/v2",
            "metadata": object_meta(
                name=hpa.name, namespace=hpa.namespace, uid=hpa.uid, rv=hpa.resource_version,
                created=hpa.created_wall, managedFields=managed.written(
                    "autoscaling/v2", format_time,
                    (APPLY_MANAGER, hpa.created_wall, {"spec": spec}, ""),
                    (CONTROLLER_MANAGER, hpa.created_wall, {"status": status}, "status"))),
            "spec": spec, "status": status,
        }

    def scaled_object_json(self, so: ScaledObject) -> JSON:
        spec = {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": so.target_kind,
                                   "name": so.target_name},
                "minReplicaCount": so.min_replicas, "maxReplicaCount": so.max_replicas,
                "triggers": [{"type": "cpu", "metricType": "Utilization",
                              "metadata": {"value": "80"}}]}
        return {
            "kind": "ScaledObject", "apiVersion": "keda.sh/v1alpha1",
            "metadata": object_meta(
                name=so.name, namespace=so.namespace, uid=so.uid, rv=so.resource_version,
                created=so.created_wall, managedFields=managed.written(
                    "keda.sh/v1alpha1", format_time,
                    (APPLY_MANAGER, so.created_wall, {"spec": spec}, ""))),
            "spec": spec,
        }

    def pdb_json(self, pdb: Pdb) -> JSON:
        healthy = self._healthy(pdb)
        expected = len(self.pods(pdb.namespace, selector=pdb.selector))
        spec = {"minAvailable": pdb.min_available,
                "selector": {"matchLabels": dict(pdb.selector)}}
        status = {"observedGeneration": 1, "currentHealthy": healthy,
                  "desiredHealthy": pdb.min_available,
                  "disruptionsAllowed": max(0, healthy - pdb.min_available),
                  "expectedPods": expected}
        return {
            "kind": "PodDisruptionBudget", "apiVersion": "policy/v1",
            "metadata": object_meta(
                name=pdb.name, namespace=pdb.namespace, uid=pdb.uid, rv=pdb.resource_version,
                created=pdb.created_wall, generation=1, managedFields=managed.written(
                    "policy/v1", format_time,
                    (APPLY_MANAGER, pdb.created_wall, {"spec": spec}, ""),
                    (CONTROLLER_MANAGER, pdb.created_wall, {"status": status}, "status"))),
            "spec": spec, "status": status,
        }

    def pod_metrics_json(self, pod: Pod) -> JSON:
        """metrics-server's PodMetrics: CPU in nanocores, a 15 s window."""
        now = self.wall()
        return {
            "kind": "PodMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": pod.name, "namespace": pod.namespace,
                         "creationTimestamp": format_time(now), "labels": dict(pod.labels)},
            "timestamp": format_time(now - 5), "window": "15s",
            "containers": [{"name": pod.container, "usage": {
                "cpu": f"{(pod.cpu_usage_milli or 0) * 1_000_000}n", "memory": "262144Ki"}}],
        }

    def renew_node(self) -> None:
        """The kubelet's heartbeats, as time passes (the model calls it): the node's Lease
        every 10 s, the Node's status every 5 minutes, each a new resourceVersion."""
        now = self.wall()
        lease = self._leases[(NODE_LEASE_NAMESPACE, NODE_NAME)]
        if now - (lease.spec.renew_time or 0.0) >= NODE_LEASE_RENEW_SECONDS:
            before = lease_spec_json(lease.spec)
            lease.spec = dataclasses.replace(lease.spec, renew_time=now)
            self._lease_written(lease, KUBELET_MANAGER, before, lease.labels, lease.annotations)
            lease.resource_version = self._next_rv()
            self._emit("MODIFIED", "leases", NODE_LEASE_NAMESPACE, lease.resource_version,
                       self.lease_json(lease))
        if now - self._node_heartbeat >= NODE_STATUS_SECONDS:
            self._node_heartbeat, self._node_rv = now, self._next_rv()
            self._emit("MODIFIED", "nodes", "", self._node_rv, self.node_json())

    def node_json(self, name: str = NODE_NAME) -> JSON:
        """The one node, Ready, as its kubelet reports it (`kubectl get/describe nodes`)."""
        if name != NODE_NAME:
            raise not_found(NODES, name)
        now = format_time(self._node_heartbeat)
        created = format_time(self._node_created)
        cpu = int(NODE_CAPACITY["cpu"]) * 1000 - NODE_RESERVED_MILLI
        allocatable = {**NODE_CAPACITY, "cpu": f"{cpu}m", "memory": "253824Mi"}
        conditions = [
            ("MemoryPressure", "False", "KubeletHasSufficientMemory",
             "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID",
             "kubelet has sufficient PID available"),
            ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
        ]
        labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                  "kubernetes.io/arch": "amd64", "beta.kubernetes.io/os": "linux",
                  "beta.kubernetes.io/arch": "amd64"}
        annotations = {"node.alpha.kubernetes.io/ttl": "0"}
        spec = {"podCIDR": POD_CIDR, "podCIDRs": [POD_CIDR]}  # where its pods' IPs are
        node: JSON = {
            "kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                         "resourceVersion": str(self._node_rv), "creationTimestamp": created,
                         "labels": labels, "annotations": annotations},
            "spec": spec,
            "status": {
                "capacity": dict(NODE_CAPACITY), "allocatable": allocatable,
                "conditions": [{"type": t, "status": st, "lastHeartbeatTime": now,
                                "lastTransitionTime": created, "reason": r, "message": m}
                               for t, st, r, m in conditions],
                "addresses": [{"type": "InternalIP", "address": NODE_IP},
                              {"type": "Hostname", "address": name}],
                "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
                "nodeInfo": {"machineID": "0" * 32, "systemUUID": str(uuid.UUID(int=1)),
                             "bootID": str(uuid.UUID(int=2)), "kernelVersion": "6.1.0-sim",
                             "osImage": "Debian GNU/Linux 12 (bookworm)",
                             "containerRuntimeVersion": "containerd://1.7.24",
                             "kubeletVersion": "v1.32.0-sim", "kubeProxyVersion": "v1.32.0-sim",
                             "operatingSystem": "linux", "architecture": "amd64"},
            },
        }
        # The kubelet registers the node with its labels and reports its status; the
        # controller manager gives it its pod CIDR and the TTL annotation.
        node["metadata"]["managedFields"] = managed.written(
            "v1", format_time,
            (KUBELET_MANAGER, self._node_created, {"metadata": {"labels": labels}}, ""),
            (CONTROLLER_MANAGER, self._node_created,
             {"metadata": {"annotations": annotations}, "spec": spec}, ""),
            (KUBELET_MANAGER, self._node_heartbeat, {"status": node["status"]}, "status"))
        return node

    def node_metrics_json(self, name: str = NODE_NAME) -> JSON:
        """metrics-server's NodeMetrics: the node's own use plus every pod's."""
        if name != NODE_NAME:
            raise not_found(NODE_METRICS, name)
        now = self.wall()
        pods = [p for ns in self._namespaces for p in self.pod_metrics(ns)]
        cpu = NODE_BASE_USAGE_MILLI + sum(p.cpu_usage_milli or 0 for p in pods)
        return {
            "kind": "NodeMetrics", "apiVersion": "metrics.k8s.io/v1beta1",
            "metadata": {"name": name, "creationTimestamp": format_time(now),
                         "labels": self.node_json(name)["metadata"]["labels"]},
            "timestamp": format_time(now - 5), "window": "20s",
            "usage": {"cpu": f"{cpu * 1_000_000}n",
                      "memory": f"{1048576 + 262144 * len(pods)}Ki"},
        }

    def namespace_json(self, name: str) -> JSON:
        created = self._namespaces.get(name)
        if created is None:
            raise not_found(NAMESPACES, name)
        labels = {"kubernetes.io/metadata.name": name}
        # The apiserver makes its own namespaces; an operator made the rest (`kubectl create`).
        # Either way only the label the apiserver adds is owned: the rest are defaults.
        maker = API_SERVER_MANAGER if name in SYSTEM_NAMESPACES else CREATE_MANAGER
        return {"kind": "Namespace", "apiVersion": "v1",
                "metadata": {"name": name, "uid": str(uuid.uuid5(uuid.NAMESPACE_DNS, name)),
                             "resourceVersion": str(self._namespace_rv.get(name, 1)),
                             "creationTimestamp": format_time(created), "labels": labels,
                             "managedFields": managed.written(
                                 "v1", format_time,
                                 (maker, created, {"metadata": {"labels": labels}}, ""))},
                "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}}

    def service_account_json(self, namespace: str, name: str) -> JSON:
        """A ServiceAccount as 1.24 and later serve it: no token Secrets (tokens are bound and
        short-lived, requested through the TokenRequest API)."""
        try:
            created, rv = self._service_accounts[(namespace, name)]
        except KeyError:
            raise not_found(SERVICE_ACCOUNTS, name) from None
        return {"kind": "ServiceAccount", "apiVersion": "v1",
                "metadata": object_meta(name=name, namespace=namespace, rv=rv, created=created,
                                       uid=str(uuid.uuid5(uuid.NAMESPACE_DNS,
                                                          f"{name}.{namespace}.sa")))}

    def service_json(self, namespace: str, name: str) -> JSON:
        """The one Service: `kubernetes` in `default`, the apiserver's own, which `kubectl
        cluster-info` starts from. The simulated cluster models no other networking."""
        if (namespace, name) != ("default", "kubernetes"):
            raise not_found(SERVICES, name)
        labels = {"component": "apiserver", "provider": "kubernetes"}
        spec = {"ports": [{"name": "https", "protocol": "TCP", "port": 443,
                           "targetPort": API_SECURE_PORT}],
                "clusterIP": API_SERVICE_IP, "clusterIPs": [API_SERVICE_IP],
                "type": "ClusterIP", "sessionAffinity": "None", "ipFamilies": ["IPv4"],
                "ipFamilyPolicy": "SingleStack", "internalTrafficPolicy": "Cluster"}
        return {
            "kind": "Service", "apiVersion": "v1",
            "metadata": object_meta(
                name=name, namespace=namespace, rv=1, created=self._node_created,
                uid=str(uuid.uuid5(uuid.NAMESPACE_DNS, "kubernetes.svc")), labels=labels,
                managedFields=managed.written(
                    "v1", format_time, (API_SERVER_MANAGER, self._node_created,
                                        {"metadata": {"labels": labels}, "spec": spec}, ""))),
            "spec": spec, "status": {"loadBalancer": {}},
        }

    def objects_json(self, resource: str, namespace: str | None) -> Iterable[JSON]:
        """The wire objects of a watchable resource, for a list or a watch's initial state."""
        if resource == "deployments":
            return [self.deployment_json(d) for d in self.deployments(namespace)]
        if resource == "replicasets":
            return [self.replica_set_json(d) for d in self.deployments(namespace)]
        if resource == "pods":
            return [self.pod_json(p) for p in self.pods(namespace)]
        if resource == "events":
            return [self.event_json(e) for e in self.events(namespace)]
        if resource == "leases":
            return [self.lease_json(le) for le in self.leases(namespace)]
        if resource == "horizontalpodautoscalers":
            return [self.hpa_json(h) for h in self.hpas(namespace)]
        if resource == "poddisruptionbudgets":
            return [self.pdb_json(p) for p in self.pdbs(namespace)]
        if resource == "scaledobjects":
            return [self.scaled_object_json(s) for s in self.scaled_objects(namespace)]
        if resource == "nodes":
            return [self.node_json()]
        if resource == "namespaces":
            return [self.namespace_json(n) for n in self.namespaces()]
        if resource == "serviceaccounts":
            return [self.service_account_json(*k) for k in self.service_accounts(namespace)]
        if resource == "services":
            return [self.service_json("default", "kubernetes")] \
                if namespace in (None, "default") else []
        raise ValueError(f"not a watchable resource: {resource}")
