"""`KubeCluster`: the `Cluster` port over the real Kubernetes API (kubernetes_asyncio).

The daemon's actuator writes through it (scale, evict, delete, events) and its readers read
through it (workload status, pod CPU from metrics.k8s.io, the pod watch). `sim/cluster.py`
(`SimCluster`) implements the same port over the in-memory `KubeState` with the same outcomes,
and `sim/kubeapi.py` serves that state over HTTP so this class can be tested against it.

Rules kept here:
- every scale is a PUT of the `scale` subresource carrying the resourceVersion that was read;
  a 409 comes back as CONFLICT and is never retried here (the caller re-reads and re-decides);
- restarts go through the Eviction API, so PodDisruptionBudgets hold (429 -> THROTTLED);
- writes never raise: 401/403/404/409/429/5xx and transport errors become a `WriteResult`;
  reads raise `KubeError` carrying the apiserver's Status message.

`PodInfo.started_at` is the pod's `status.startTime` in epoch seconds: the daemon's monotonic
clock cannot be related to the apiserver's wall clock, so callers compare it with wall time.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar, cast

import aiohttp
import structlog
from kubernetes_asyncio.client import (
    ApiClient,
    AppsV1Api,
    AutoscalingV2Api,
    CoreV1Api,
    CoreV1Event,
    CustomObjectsApi,
    V1DeleteOptions,
    V1Deployment,
    V1EventSource,
    V1Eviction,
    V1ObjectMeta,
    V1ObjectReference,
    V1Pod,
    V1Preconditions,
    V1Scale,
    V1ScaleSpec,
    VersionApi,
)
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.config import PAUSE_ANNOTATION
from autoscaler.kube.errors import UNREACHABLE, KubeError, outcome_for, retry_after
from autoscaler.model import CPU_SIGNAL, PodInfo, PodSample, Signal, WorkloadStatus
from autoscaler.ports import FIELD_MANAGER, Clock, PodEvent, WriteOutcome, WriteResult

log = structlog.get_logger(__name__)

COMPONENT_LABEL = "app.kubernetes.io/component"
EVENT_SOURCE = "tracardi-autoscaler"
#: Objects per page of a list (client-go's reflector lists in pages of 500 too).
LIST_PAGE = 500
#: How long one list of a watched namespace's HPAs and ScaledObjects answers conflict checks.
AUTOSCALER_LIST_SECONDS = 10.0
#: How long a read Deployment answers `get_workload` while its pods do not change and the
#: Deployment watch is not in sync (its replicas, readiness and pause annotation; writes are
#: guarded by resourceVersion anyway).
DEPLOYMENT_CACHE_SECONDS = 60.0
TRANSPORT_ERRORS = (aiohttp.ClientError, TimeoutError, OSError)
_Item = TypeVar("_Item")
#: What a call may raise besides ApiException: the transport, or the client's own
#: deserialization of a malformed body (ValueError), which must not end a watch or a task.
CALL_ERRORS = (*TRANSPORT_ERRORS, ValueError)

_CPU_SUFFIX = {"n": Decimal("1e-6"), "u": Decimal("1e-3"), "m": Decimal(1), "": Decimal(1000)}


#: Kubernetes counts are int32 or int64; anything larger is not a count.
_MAX_COUNT = 2**63 - 1


class MalformedObjectError(ValueError):
    """A Kubernetes object, or a value in one, without the shape its kind promises."""


def parse_cpu_milli(quantity: str | None) -> int:
    """Millicores from a Kubernetes CPU quantity: `250m`, `1`, `0.5`, `123456789n`, `5u`.

    Raises `MalformedObjectError` for anything else: no number, NaN, infinity, a negative
    amount, or one past 10^16 of its unit (`1e999999m` would take half a minute to turn into
    an exact integer).
    """
    if not quantity:
        return 0
    if not isinstance(quantity, str):
        raise MalformedObjectError(f"not a CPU quantity: {quantity!r:.40}")
    text = quantity.strip()
    suffix = text[-1:] if text[-1:] in ("n", "u", "m") else ""
    try:
        number = Decimal(text[: len(text) - len(suffix)])
    except InvalidOperation:
        raise MalformedObjectError(f"not a CPU quantity: {quantity!r:.40}") from None
    if not number.is_finite() or number < 0 or number.adjusted() > 15:
        raise MalformedObjectError(f"not a CPU quantity of a pod: {quantity!r:.40}")
    return int((number * _CPU_SUFFIX[suffix]).to_integral_value())


def count_of(value: object, where: str) -> int:
    """A count read from an object (restarts, replicas): absent is 0, else a non-negative int."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= _MAX_COUNT:
        raise MalformedObjectError(f"{where}: expected a count, got {value!r:.40}")
    return value


def epoch_of(value: datetime | str | None, where: str) -> float:
    """Epoch seconds of a timestamp read from an object (RFC 3339 text or as parsed by the
    client); absent is 0."""
    if not value:
        return 0.0
    try:
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.timestamp()
    except (TypeError, ValueError, OverflowError, OSError, AttributeError):
        raise MalformedObjectError(f"{where}: not a timestamp: {value!r:.40}") from None


def _fields(value: object, where: str) -> Mapping[str, Any]:
    """A JSON object's field that holds an object; absent (null or empty) reads as empty."""
    if not value:
        return {}
    if not isinstance(value, Mapping):
        raise MalformedObjectError(f"{where}: expected an object, got {type(value).__name__}")
    return value


def _entries(value: object, where: str) -> list[Mapping[str, Any]]:
    """A JSON object's field that holds a list of objects; absent reads as empty."""
    if not value:
        return []
    if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
        raise MalformedObjectError(f"{where}: expected a list of objects")
    return value


def replicas_set_by(managed_fields: object) -> str:
    """The field manager that last set `spec.replicas`, from `metadata.managedFields` as JSON:
    the newest entry that holds it (an Update takes a field from its former holder, so there is
    one, unless server-side apply shares it); empty when none does. It only names a writer in
    a report: an entry it cannot read is passed over, never a reason to hold the workload."""
    found, newest = "", -1.0
    if not isinstance(managed_fields, list):
        return found
    for entry in managed_fields:
        try:
            spec = _fields(_fields(entry.get("fieldsV1"), "fieldsV1").get("f:spec"), "f:spec")
            at = epoch_of(entry.get("time"), "time")
        except (AttributeError, MalformedObjectError):
            continue
        if "f:replicas" in spec and at >= newest:
            found, newest = str(entry.get("manager") or ""), at
    return found


def _status_body(exc: ApiException) -> Mapping[str, Any]:
    try:
        body = json.loads(exc.body) if exc.body else {}
    except (TypeError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def kube_error(exc: BaseException) -> KubeError:
    """A KubeError for an ApiException (with the Status message) or a transport failure."""
    if isinstance(exc, ApiException):
        status = _status_body(exc)
        code = int(exc.status or 0)
        headers: Mapping[str, str] = exc.headers or {}
        return KubeError(code, str(status.get("reason") or exc.reason or "Error"),
                         str(status.get("message") or exc.reason or ""),
                         retry_after=retry_after(headers.get("Retry-After"), status))
    # A timeout has no text of its own: say what it was.
    detail = str(exc) or ("no answer in time" if isinstance(exc, TimeoutError) else "")
    what = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if isinstance(exc, ValueError):
        return KubeError(UNREACHABLE, "MalformedResponse", what)
    return KubeError(UNREACHABLE, "Unreachable", what)


async def answering(api: ApiClient, *, request_seconds: float = 10.0) -> None:
    """Raise an `Unreachable` KubeError naming the server unless it answers `GET /version`
    within `request_seconds` (any answer, a 401 or 403 too: it is there)."""
    try:
        await VersionApi(api).get_code(_request_timeout=request_seconds)
    except ApiException:
        return
    except CALL_ERRORS as exc:
        why = (f"no answer within {request_seconds:g} s" if isinstance(exc, TimeoutError)
               else kube_error(exc).message)
        raise KubeError(UNREACHABLE, "Unreachable",
                        f"the API server {api.configuration.host} did not answer GET /version: "
                        f"{why}") from None


def _write_result(exc: BaseException) -> WriteResult:
    err = kube_error(exc)
    outcome = outcome_for(err.code) if err.code else WriteOutcome.FAILED
    return WriteResult(outcome, err.message or err.reason, err.retry_after)


def _items(values: list[Any] | None, where: str) -> list[Any]:
    """A list the client deserialized; a null entry in it is malformed, not skipped."""
    if any(v is None for v in values or []):
        raise MalformedObjectError(f"{where}: null entry")
    return values or []


def pod_info(pod: V1Pod) -> PodInfo:
    """What the engine needs from a core/v1 Pod; `MalformedObjectError` if it is not one."""
    meta, spec, status = pod.metadata, pod.spec, pod.status
    if meta is None:
        raise MalformedObjectError("pod without metadata")
    conditions = _items(status.conditions if status else None, "status.conditions")
    statuses = _items(status.container_statuses if status else None,
                      "status.containerStatuses")
    waiting = next((cs.state.waiting.reason for cs in statuses
                    if cs.state and cs.state.waiting and cs.state.waiting.reason), "")
    requests = 0
    for container in _items(spec.containers if spec else None, "spec.containers"):
        resources = container.resources
        if resources and resources.requests:
            requests += parse_cpu_milli(resources.requests.get("cpu"))
    start = status.start_time if status else None
    return PodInfo(
        name=meta.name or "",
        ready=any(c.type == "Ready" and c.status == "True" for c in conditions),
        phase=(status.phase if status else None) or "Unknown",
        ip=(status.pod_ip if status else None) or "",
        started_at=epoch_of(start, "status.startTime"),
        deleting=meta.deletion_timestamp is not None,
        restarts=sum(count_of(cs.restart_count, "restartCount") for cs in statuses),
        waiting_reason=waiting,
        cpu_request_milli=requests,
        resource_version=meta.resource_version or "",
    )


def _selector(deployment: V1Deployment) -> str:
    """The label selector string of a Deployment's `spec.selector`."""
    selector = deployment.spec.selector
    return _selector_text(selector.match_labels or {},
                          ((e.key, e.operator, e.values or [])
                           for e in selector.match_expressions or []))


def _selector_text(labels: Mapping[str, str],
                   expressions: Iterable[tuple[str, str, Sequence[str]]]) -> str:
    """`k=v,...` for matchLabels, then each matchExpression in label-selector syntax."""
    terms = [f"{k}={v}" for k, v in sorted(labels.items())]
    for key, op, values in expressions:
        if op == "Exists":
            terms.append(key)
        elif op == "DoesNotExist":
            terms.append(f"!{key}")
        else:
            terms.append(f"{key} {op.lower()} ({','.join(values)})")
    return ",".join(terms)


def pod_info_json(obj: Mapping[str, Any]) -> PodInfo:
    """`pod_info` for a pod as JSON (a watch event's object); `MalformedObjectError` when it
    is not shaped like a pod."""
    if not isinstance(obj, Mapping):
        raise MalformedObjectError(f"pod: expected an object, got {type(obj).__name__}")
    meta = _fields(obj.get("metadata"), "metadata")
    spec = _fields(obj.get("spec"), "spec")
    status = _fields(obj.get("status"), "status")
    statuses = _entries(status.get("containerStatuses"), "status.containerStatuses")
    waiting = ""
    for cs in statuses:
        state = _fields(cs.get("state"), "status.containerStatuses.state")
        reason = _fields(state.get("waiting"), "status.containerStatuses.state.waiting")
        if reason.get("reason"):
            waiting = str(reason["reason"])
            break
    requests = 0
    for c in _entries(spec.get("containers"), "spec.containers"):
        resources = _fields(c.get("resources"), "spec.containers.resources")
        cpu = _fields(resources.get("requests"), "spec.containers.resources.requests").get("cpu")
        requests += parse_cpu_milli(cpu)
    return PodInfo(
        name=str(meta.get("name") or ""),
        ready=any(c.get("type") == "Ready" and c.get("status") == "True"
                  for c in _entries(status.get("conditions"), "status.conditions")),
        phase=str(status.get("phase") or "Unknown"),
        ip=str(status.get("podIP") or ""),
        started_at=epoch_of(status.get("startTime"), "status.startTime"),
        deleting=meta.get("deletionTimestamp") is not None,
        restarts=sum(count_of(cs.get("restartCount"), "restartCount") for cs in statuses),
        waiting_reason=waiting,
        cpu_request_milli=requests,
        resource_version=str(meta.get("resourceVersion") or ""),
    )


def _preconditions(resource_version: str) -> V1DeleteOptions | None:
    """DeleteOptions that hold a pod to the version it was judged on (none when unknown)."""
    if not resource_version:
        return None
    return V1DeleteOptions(preconditions=V1Preconditions(resource_version=resource_version))


@dataclass(slots=True)
class _CachedDeployment:
    read_at: float
    replicas: int
    ready: int
    paused: bool
    resource_version: str
    generation: int
    replicas_set_by: str
    #: The selector's matchLabels, which name the component label the pod watch selects on.
    match_labels: dict[str, str]
    selector: str
    uid: str


def _cached_deployment(obj: Mapping[str, Any], *, now: float) -> _CachedDeployment | None:
    """What the cache keeps of a Deployment as JSON (a list item, a watch event's object, or a
    read through `sanitize_for_serialization`); None when the pod cache cannot answer for its
    selector (matchExpressions, or no component label). `MalformedObjectError` when it is not
    shaped like a Deployment."""
    if not isinstance(obj, Mapping):
        raise MalformedObjectError(f"deployment: expected an object, got {type(obj).__name__}")
    meta = _fields(obj.get("metadata"), "metadata")
    if not meta:
        raise MalformedObjectError("Deployment without metadata")
    spec = _fields(obj.get("spec"), "spec")
    selector = _fields(spec.get("selector"), "spec.selector")
    labels = {str(k): str(v) for k, v in
              _fields(selector.get("matchLabels"), "spec.selector.matchLabels").items()}
    if not selector or selector.get("matchExpressions") or COMPONENT_LABEL not in labels:
        return None
    annotations = _fields(meta.get("annotations"), "metadata.annotations")
    return _CachedDeployment(
        read_at=now,
        replicas=count_of(spec.get("replicas"), "spec.replicas"),
        ready=count_of(_fields(obj.get("status"), "status").get("readyReplicas"),
                       "status.readyReplicas"),
        paused=str(annotations.get(PAUSE_ANNOTATION, "")).strip().lower() in {
            "true", "1", "yes"},
        resource_version=str(meta.get("resourceVersion") or ""),
        generation=count_of(meta.get("generation"), "metadata.generation"),
        replicas_set_by=replicas_set_by(meta.get("managedFields")),
        match_labels=labels,
        selector=_selector_text(labels, ()),
        uid=str(meta.get("uid") or ""),
    )


@dataclass
class _Informer:
    """One namespace's component-labelled pods and its Deployments, as their watches last saw
    them.

    While the Deployment watch is in sync its events keep the entries current and they do
    not age. Otherwise an entry is dropped when one of its pods changes (its readiness changes
    with them) or when it is older than the cache's limit, and the next read fetches it. A
    write that conflicts drops it either way.

    Pods are indexed by their component label, so a workload's pods are found without a scan.
    The pods answer only while the pod watch is in sync; otherwise reads go to the apiserver.
    """

    deployments: dict[str, _CachedDeployment] = field(default_factory=dict)
    pods: dict[str, dict[str, tuple[Mapping[str, str], PodInfo]]] = field(default_factory=dict)
    pod_component: dict[str, str] = field(default_factory=dict)
    by_component: dict[str, set[str]] = field(default_factory=dict)
    pods_listed: bool = False
    pods_synced: bool = False
    deployments_synced: bool = False
    #: A count of the pod changes per component, and the statuses built (see `status`).
    pod_versions: dict[str, int] = field(default_factory=dict)
    built: dict[str, tuple[_CachedDeployment, tuple[int, str, int], WorkloadStatus]] = field(
        default_factory=dict)

    def put_pod(self, labels: Mapping[str, str], info: PodInfo, *, listed: bool = False) -> None:
        """A pod as a watch event brings it, or as a list (a snapshot: no change to react to,
        and the Deployments it would drop were just listed beside it) when `listed`."""
        if not listed:
            self.drop_pod(info.name)
        component = labels.get(COMPONENT_LABEL, "")
        self.pod_component[info.name] = component
        self.pods.setdefault(component, {})[info.name] = (labels, info)
        self.pod_versions[component] = self.pod_versions.get(component, 0) + 1
        if not listed:
            self.pod_changed(component)

    def drop_pod(self, name: str) -> None:
        component = self.pod_component.pop(name, None)
        if component is not None:
            self.pods.get(component, {}).pop(name, None)
            self.pod_versions[component] = self.pod_versions.get(component, 0) + 1
            self.pod_changed(component)

    def pod_changed(self, component: str) -> None:
        """The Deployments of `component` are read again, unless their watch brings their
        new status."""
        if not self.deployments_synced:
            for name in self.by_component.pop(component, set()):
                self.deployments.pop(name, None)

    def remember(self, name: str, dep: _CachedDeployment | None) -> None:
        """Keep `dep` as Deployment `name`; None (not cacheable, or deleted) forgets it."""
        if dep is None:
            self.deployments.pop(name, None)
            return
        self.deployments[name] = dep
        self.by_component.setdefault(dep.match_labels[COMPONENT_LABEL], set()).add(name)

    def status(self, namespace: str, deployment: str, *, now: float,
               max_age: float) -> WorkloadStatus | None:
        if not self.pods_synced:
            return None
        dep = self.deployments.get(deployment)
        if dep is None or (not self.deployments_synced and now - dep.read_at > max_age):
            return None
        wanted = dep.match_labels
        component = wanted[COMPONENT_LABEL]
        # The same answer while neither the Deployment nor a pod of its component changed:
        # one object, which the evaluator compares by identity first.
        key = (dep.replicas, dep.resource_version, self.pod_versions.get(component, 0))
        built = self.built.get(deployment)
        if built is not None and built[0] is dep and built[1] == key:
            return built[2]
        candidates = self.pods.get(component, {}).values()
        pods = [info for labels, info in candidates
                if all(labels.get(k) == v for k, v in wanted.items())]
        status = WorkloadStatus(
            name=deployment, namespace=namespace, replicas=dep.replicas,
            ready_replicas=dep.ready, paused=dep.paused,
            resource_version=dep.resource_version, generation=dep.generation,
            replicas_set_by=dep.replicas_set_by, pods=tuple(sorted(pods, key=lambda p: p.name)))
        self.built[deployment] = (dep, key, status)
        return status


def _apply_pod(informer: _Informer, kind: str, obj: Mapping[str, Any]) -> str:
    """A pod watch event into `informer`; the workload (component label) it concerns."""
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    if kind == "DELETED":
        informer.drop_pod(str(meta.get("name") or ""))
    elif kind in {"ADDED", "MODIFIED"}:
        informer.put_pod(labels, pod_info_json(obj))
    return str(labels.get(COMPONENT_LABEL, ""))


def _hpa_for(hpas: Any, deployment: str) -> str | None:
    for hpa in hpas.items or []:
        ref = hpa.spec.scale_target_ref
        if ref.kind == "Deployment" and ref.name == deployment:
            return f"HorizontalPodAutoscaler/{hpa.metadata.name}"
    return None


class KubeCluster:
    """The `Cluster` port over kubernetes_asyncio. It does not own `api`: close that yourself
    after `close()`."""

    def __init__(self, api: ApiClient, *, clock: Clock, identity: str = "",
                 request_timeout: float = 10.0, watch_timeout_seconds: int = 300,
                 backoff_seconds: tuple[float, float] = (1.0, 30.0),
                 wall: Callable[[], float] = time.time) -> None:
        self._api = api
        self._apps = AppsV1Api(api)
        self._core = CoreV1Api(api)
        self._autoscaling = AutoscalingV2Api(api)
        self._custom = CustomObjectsApi(api)
        self._clock = clock
        self._wall = wall
        self._identity = identity or socket.gethostname()
        self._timeout = request_timeout
        self._watch_timeout = watch_timeout_seconds
        self._backoff = backoff_seconds
        self._selectors: dict[tuple[str, str], str] = {}
        self._uids: dict[tuple[str, str], str] = {}
        self._closed = False
        #: Namespace -> its informer, fed by `watch_pods` and by the Deployment reads.
        self._informers: dict[str, _Informer] = {}
        #: Namespace -> (read at, HPAs, ScaledObjects), only for namespaces being watched.
        self._autoscalers: dict[str, tuple[float, Any, Any]] = {}
        #: Namespace -> its list of autoscalers under way, which later askers wait for.
        self._listing: dict[str, asyncio.Future[tuple[Any, Any]]] = {}

    # -- reads -------------------------------------------------------------------------------

    async def get_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        """The Deployment, the resourceVersion of its `scale` subresource, and its pods.

        While the namespace is watched (`watch_pods`) and in sync, the pods come from the pod
        watch and the Deployment from the Deployment watch; it is read again only after one of
        its pods changed or a write on it conflicted (or, while the Deployment watch is not in
        sync, once per `DEPLOYMENT_CACHE_SECONDS`): one GET instead of three requests, mostly
        none. A stale cache cannot cause a wrong write: every scale carries the resourceVersion
        read, and a 409 drops the entry. Else the apiserver is read: the Deployment, its scale
        subresource and its pods.
        """
        cached = self.cached_workload(namespace, deployment)
        if cached is not None:
            return cached
        key = (namespace, deployment)
        informer = self._informers.get(namespace)
        if informer is None or not informer.pods_synced:
            return await self._read_workload(namespace, deployment)
        now = self._clock.now()
        try:
            dep = await self._apps.read_namespaced_deployment(
                deployment, namespace, _request_timeout=self._timeout)
        except (ApiException, *CALL_ERRORS) as exc:
            raise self._read_failed("get_workload", namespace, deployment, exc) from exc
        entry = _cached_deployment(self._api.sanitize_for_serialization(dep), now=now)
        if entry is None:
            return await self._read_workload(namespace, deployment)
        self._selectors[key] = entry.selector
        self._uids[key] = entry.uid
        informer.remember(deployment, entry)
        status = informer.status(namespace, deployment, now=now,
                                 max_age=DEPLOYMENT_CACHE_SECONDS)
        return status if status is not None else await self._read_workload(namespace, deployment)

    def cached_workload(self, namespace: str, deployment: str) -> WorkloadStatus | None:
        """The workload from the watches of its namespace while they are in sync (see
        `get_workload`); None when it must be read."""
        informer = self._informers.get(namespace)
        if informer is None:
            return None
        return informer.status(namespace, deployment, now=self._clock.now(),
                               max_age=DEPLOYMENT_CACHE_SECONDS)

    def watches_synced(self, namespace: str) -> bool:
        informer = self._informers.get(namespace)
        return informer is not None and informer.pods_synced and informer.deployments_synced

    async def _read_workload(self, namespace: str, deployment: str) -> WorkloadStatus:
        try:
            dep = await self._apps.read_namespaced_deployment(
                deployment, namespace, _request_timeout=self._timeout)
            scale = await self._apps.read_namespaced_deployment_scale(
                deployment, namespace, _request_timeout=self._timeout)
            selector = (scale.status.selector if scale.status else None) or _selector(dep)
            pods = await self._core.list_namespaced_pod(
                namespace, label_selector=selector, _request_timeout=self._timeout)
        except (ApiException, *CALL_ERRORS) as exc:
            raise self._read_failed("get_workload", namespace, deployment, exc) from exc
        self._selectors[(namespace, deployment)] = selector
        self._uids[(namespace, deployment)] = dep.metadata.uid or ""
        annotations = dep.metadata.annotations or {}
        return WorkloadStatus(
            name=deployment,
            namespace=namespace,
            replicas=int(scale.spec.replicas or 0),
            ready_replicas=int((dep.status.ready_replicas if dep.status else None) or 0),
            paused=annotations.get(PAUSE_ANNOTATION, "").strip().lower() in {"true", "1", "yes"},
            resource_version=str(scale.metadata.resource_version or ""),
            pods=tuple(sorted((pod_info(p) for p in pods.items or []), key=lambda p: p.name)),
            generation=int(dep.metadata.generation or 0),
            replicas_set_by=replicas_set_by(
                self._api.sanitize_for_serialization(dep.metadata.managed_fields)),
        )

    async def conflicting_autoscaler(self, namespace: str, deployment: str) -> str | None:
        """`HorizontalPodAutoscaler/<name>` or `ScaledObject/<name>` targeting the Deployment.

        No KEDA CRD (404) means no ScaledObject; any other failure raises `KubeError`, because
        "unknown" must not be taken for "none" when two controllers could fight.
        """
        cached = self._autoscalers.get(namespace)
        if namespace not in self._informers:
            hpas, scaled = await self._list_autoscalers(namespace, deployment)
        elif cached is not None and self._clock.now() - cached[0] < AUTOSCALER_LIST_SECONDS:
            # A watched namespace: one list of its autoscalers serves every workload for a
            # few seconds (the daemon checks each workload once a minute anyway).
            hpas, scaled = cached[1], cached[2]
        else:
            # ... and the workloads that ask while that list is under way wait for it.
            listing = self._listing.get(namespace)
            if listing is None:
                listing = asyncio.ensure_future(self._list_autoscalers(namespace, deployment))
                self._listing[namespace] = listing
                listing.add_done_callback(lambda done: self._listed(namespace, done))
            hpas, scaled = await asyncio.shield(listing)
        hpa = _hpa_for(hpas, deployment)
        if hpa:
            return hpa
        if isinstance(scaled, BaseException):  # ScaledObjects unknown, and no HPA of its own
            raise self._read_failed("list_scaledobjects", namespace, deployment,
                                    scaled) from scaled
        for item in (scaled or {}).get("items") or []:
            target = (item.get("spec") or {}).get("scaleTargetRef") or {}
            if (target.get("kind", "Deployment") == "Deployment"
                    and target.get("name") == deployment):
                return f"ScaledObject/{item['metadata']['name']}"
        return None

    def _listed(self, namespace: str, done: asyncio.Future[tuple[Any, Any]]) -> None:
        """Keep a complete list of a namespace's autoscalers for the next askers."""
        self._listing.pop(namespace, None)
        if done.cancelled() or done.exception() is not None:
            return
        hpas, scaled = done.result()
        if not isinstance(scaled, BaseException):
            self._autoscalers[namespace] = (self._clock.now(), hpas, scaled)

    async def _list_autoscalers(self, namespace: str, deployment: str) -> tuple[Any, Any]:
        """The namespace's HPAs and its ScaledObjects: None when the KEDA CRD is absent, the
        exception when they could not be listed. Raises `KubeError` when the HPAs cannot be."""
        try:
            hpas = await self._autoscaling.list_namespaced_horizontal_pod_autoscaler(
                namespace, _request_timeout=self._timeout)
        except (ApiException, *CALL_ERRORS) as exc:
            raise self._read_failed("list_hpas", namespace, deployment, exc) from exc
        try:
            scaled = await self._custom.list_namespaced_custom_object(
                "keda.sh", "v1alpha1", namespace, "scaledobjects",
                _request_timeout=self._timeout)
        except ApiException as exc:
            if exc.status == 404:
                return hpas, None
            return hpas, exc
        except CALL_ERRORS as exc:
            return hpas, exc
        return hpas, scaled

    async def pod_cpu(self, namespace: str, deployment: str) -> Signal:
        """CPU usage of the Deployment's pods from metrics.k8s.io: the sum in millicores, each
        pod as a sample. No metrics at all is an error, never a zero (no scale-down on it)."""
        try:
            selector = await self._selector_of(namespace, deployment)
            metrics = await self._custom.list_namespaced_custom_object(
                "metrics.k8s.io", "v1beta1", namespace, "pods", label_selector=selector,
                _request_timeout=self._timeout)
            samples = tuple(
                PodSample(item["metadata"]["name"],
                          sum(parse_cpu_milli(c["usage"]["cpu"]) for c in item["containers"]))
                for item in (metrics or {}).get("items") or [])
        except KubeError as err:
            return Signal(CPU_SIGNAL, None, self._clock.now(), error=str(err))
        except (ApiException, *CALL_ERRORS) as exc:
            return Signal(CPU_SIGNAL, None, self._clock.now(), error=str(kube_error(exc)))
        except (KeyError, TypeError, ValueError) as exc:
            return Signal(CPU_SIGNAL, None, self._clock.now(),
                          error=f"malformed PodMetrics: {exc!r}")
        now = self._clock.now()
        if not samples:
            return Signal(CPU_SIGNAL, None, now, error=f"no pod metrics for {deployment}")
        return Signal(CPU_SIGNAL, float(sum(s.usage_milli for s in samples)), now,
                      samples=samples)

    async def _selector_of(self, namespace: str, deployment: str) -> str:
        key = (namespace, deployment)
        if key not in self._selectors:
            try:
                dep = await self._apps.read_namespaced_deployment(
                    deployment, namespace, _request_timeout=self._timeout)
            except (ApiException, *CALL_ERRORS) as exc:
                raise self._read_failed("get_deployment", namespace, deployment, exc) from exc
            self._selectors[key] = _selector(dep)
            self._uids[key] = dep.metadata.uid or ""
        return self._selectors[key]

    def _read_failed(self, op: str, namespace: str, name: str, exc: BaseException) -> KubeError:
        err = kube_error(exc)
        log.warning("kube_read_failed", op=op, namespace=namespace, name=name, code=err.code,
                    reason=err.reason, message=err.message)
        return err

    # -- writes ------------------------------------------------------------------------------

    async def scale(self, namespace: str, deployment: str, *, replicas: int,
                    resource_version: str) -> WriteResult:
        """PUT the scale subresource with the resourceVersion that was read."""
        if not resource_version:
            return WriteResult(WriteOutcome.FAILED,
                               "refusing an unconditional scale: read the workload first")
        body = V1Scale(api_version="autoscaling/v1", kind="Scale",
                       metadata=V1ObjectMeta(name=deployment, namespace=namespace,
                                             resource_version=resource_version),
                       spec=V1ScaleSpec(replicas=replicas))

        async def put() -> None:
            written = await self._apps.replace_namespaced_deployment_scale(
                deployment, namespace, body, field_manager=FIELD_MANAGER,
                _request_timeout=self._timeout)
            # The cache learns our own write now, not only when its watch event arrives.
            dep = self._informers.get(namespace, _Informer()).deployments.get(deployment)
            if dep is not None and isinstance(written, V1Scale) and written.metadata:
                dep.replicas = int((written.spec.replicas if written.spec else None) or 0)
                dep.resource_version = str(written.metadata.resource_version or "")
                dep.replicas_set_by = FIELD_MANAGER

        result = await self._write("scale", namespace, deployment, put(), replicas=replicas)
        if result.outcome is not WriteOutcome.DONE and namespace in self._informers:
            # Someone else changed it (409) or it is unknown what happened: read it again.
            self._informers[namespace].deployments.pop(deployment, None)
        return result

    async def evict(self, namespace: str, pod: str, *,
                    resource_version: str = "") -> WriteResult:
        """A policy/v1 Eviction: the apiserver refuses (429) when a PDB would break, and (409)
        when the pod is no longer at `resource_version`."""
        body = V1Eviction(api_version="policy/v1", kind="Eviction",
                          metadata=V1ObjectMeta(name=pod, namespace=namespace),
                          delete_options=_preconditions(resource_version))
        return await self._write(
            "evict", namespace, pod,
            self._core.create_namespaced_pod_eviction(pod, namespace, body,
                                                      field_manager=FIELD_MANAGER,
                                                      _request_timeout=self._timeout),
            resource_version=resource_version)

    async def delete_pod(self, namespace: str, pod: str, *,
                         resource_version: str = "") -> WriteResult:
        return await self._write(
            "delete_pod", namespace, pod,
            self._core.delete_namespaced_pod(
                pod, namespace, body=_preconditions(resource_version) or V1DeleteOptions(),
                _request_timeout=self._timeout),
            resource_version=resource_version)

    async def _write(self, op: str, namespace: str, name: str, call: Any,
                     **context: Any) -> WriteResult:
        try:
            await call
        except (ApiException, *CALL_ERRORS) as exc:
            result = _write_result(exc)
            log.warning("kube_write_failed", op=op, namespace=namespace, name=name,
                        outcome=result.outcome.value, message=result.message,
                        retry_after=result.retry_after, **context)
            return result
        log.info("kube_write", op=op, namespace=namespace, name=name, **context)
        return WriteResult(WriteOutcome.DONE)

    async def emit_event(self, namespace: str, deployment: str, *, reason: str, message: str,
                         warning: bool = False) -> None:
        """A core/v1 Event on the Deployment, shaped like the HPA controller's (reason such as
        `SuccessfulRescale`, message such as `New size: 6; reason: ...`). Failures are logged,
        never raised: an event is a report, not an action."""
        if (namespace, deployment) not in self._uids:
            with contextlib.suppress(KubeError):  # without a uid the event still names it
                await self._selector_of(namespace, deployment)
        now = self._wall()
        stamp = datetime.fromtimestamp(int(now), UTC)
        body = CoreV1Event(
            api_version="v1", kind="Event",
            # client-go's recorder names events `<object>.<unix nanoseconds in hex>`.
            metadata=V1ObjectMeta(name=f"{deployment}.{int(now * 1e9):x}", namespace=namespace),
            involved_object=V1ObjectReference(
                api_version="apps/v1", kind="Deployment", namespace=namespace, name=deployment,
                uid=self._uids.get((namespace, deployment)) or None),
            reason=reason, message=message, type="Warning" if warning else "Normal",
            source=V1EventSource(component=EVENT_SOURCE), count=1,
            first_timestamp=stamp, last_timestamp=stamp,
            reporting_component=EVENT_SOURCE, reporting_instance=self._identity,
        )
        try:
            await self._core.create_namespaced_event(namespace, body,
                                                     field_manager=FIELD_MANAGER,
                                                     _request_timeout=self._timeout)
        except (ApiException, *CALL_ERRORS) as exc:
            err = kube_error(exc)
            log.warning("kube_event_failed", namespace=namespace, name=deployment,
                        reason=reason, code=err.code, message=err.message)

    # -- the watches -------------------------------------------------------------------------

    async def watch_pods(self, namespace: str) -> AsyncIterator[PodEvent]:
        """Changes of the namespace's pods that carry a component label, and of its
        Deployments, forever.

        Each resource is listed first (one ADDED per workload with pods, so a (re)start
        re-evaluates them), then watched from the list's resourceVersion, into the informer
        that `get_workload` answers from. A dropped stream resumes from the last seen
        resourceVersion; 410 Gone re-lists; other failures back off (1 s doubling to 30 s).
        """
        informer = self._informers.setdefault(namespace, _Informer())
        events: asyncio.Queue[PodEvent] = asyncio.Queue()

        def apply_deployment(kind: str, obj: Mapping[str, Any]) -> str:
            name = str(_fields(obj.get("metadata"), "metadata").get("name") or "")
            if kind in {"ADDED", "MODIFIED"}:
                self._learn(namespace, name,
                            _cached_deployment(obj, now=self._clock.now()), informer)
            elif kind == "DELETED":
                informer.remember(name, None)
            return name

        followers = [
            self._follow(
                namespace, "pods", lambda: self._list_pods(namespace, informer),
                lambda rv: self._core.list_namespaced_pod(
                    namespace, label_selector=COMPONENT_LABEL, watch=True,
                    resource_version=rv, allow_watch_bookmarks=True,
                    timeout_seconds=self._watch_timeout, _preload_content=False,
                    _request_timeout=self._watch_request_timeout()),
                apply=lambda kind, obj: _apply_pod(informer, kind, obj),
                synced=lambda ok: setattr(informer, "pods_synced", ok and informer.pods_listed)),
            self._follow(
                namespace, "deployments", lambda: self._list_deployments(namespace, informer),
                lambda rv: self._apps.list_namespaced_deployment(
                    namespace, watch=True, resource_version=rv, allow_watch_bookmarks=True,
                    timeout_seconds=self._watch_timeout, _preload_content=False,
                    _request_timeout=self._watch_request_timeout()),
                apply=apply_deployment,
                synced=lambda ok: setattr(informer, "deployments_synced", ok)),
        ]

        async def forward(follower: AsyncIterator[PodEvent]) -> None:
            async for event in follower:
                events.put_nowait(event)

        tasks = [asyncio.create_task(forward(f), name=f"watch:{namespace}") for f in followers]
        getting: asyncio.Future[PodEvent] | None = None
        try:
            while True:
                getting = asyncio.ensure_future(events.get())
                done, _ = await asyncio.wait([getting, *tasks],
                                             return_when=asyncio.FIRST_COMPLETED)
                if getting not in done:  # a follower ended: the cluster is closing, or a bug
                    for task in done:
                        if not task.cancelled() and task.exception() is not None:
                            raise cast(BaseException, task.exception())
                    return
                yield getting.result()
        finally:
            pending: list[asyncio.Future[Any]] = [*tasks, *([getting] if getting else [])]
            for future in pending:
                future.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            informer.pods_synced = informer.deployments_synced = False
            if self._informers.get(namespace) is informer:
                del self._informers[namespace]

    async def _follow(self, namespace: str, resource: str,
                      relist: Callable[[], Awaitable[tuple[str, list[str]]]],
                      watch: Callable[[str], Awaitable[Any]], *,
                      apply: Callable[[str, Mapping[str, Any]], str],
                      synced: Callable[[bool], None]) -> AsyncIterator[PodEvent]:
        """List, then watch one resource of `namespace`, forever, as an informer does.

        `relist` lists (its resourceVersion, and the workloads to announce as ADDED), `watch`
        opens a watch from a resourceVersion, `apply` takes each event's object (and names the
        workload it concerns, or ""), `synced` learns whether the watch is in sync.
        """
        resource_version: str | None = None
        delay = self._backoff[0]
        while not self._closed:
            try:
                if resource_version is None:
                    resource_version, workloads = await relist()
                    for workload in workloads:
                        yield PodEvent("ADDED", namespace, workload, resource)
                async for kind, rv, workload in self._watch_stream(
                        watch(resource_version), resource_version, apply=apply,
                        synced=synced):
                    resource_version = rv
                    delay = self._backoff[0]
                    if workload:
                        yield PodEvent(kind, namespace, workload, resource)
            except KubeError as err:
                synced(False)
                if err.code == 410:
                    log.info("kube_watch_expired", namespace=namespace, resource=resource,
                             message=err.message)
                    resource_version = None
                    continue
                log.warning("kube_watch_failed", namespace=namespace, resource=resource,
                            code=err.code, reason=err.reason, message=err.message,
                            retry_in=delay)
                await self._clock.sleep(delay)
                delay = min(delay * 2, self._backoff[1])

    def _watch_request_timeout(self) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=None, connect=self._timeout,
                                     sock_read=self._watch_timeout + 30)

    async def _list_pods(self, namespace: str, informer: _Informer) -> tuple[str, list[str]]:
        """The namespace's component pods into `informer`."""
        resource_version, pods = await self._list_json(
            lambda token: self._core.list_namespaced_pod(
                namespace, label_selector=COMPONENT_LABEL, limit=LIST_PAGE, _continue=token,
                _preload_content=False, _request_timeout=self._timeout),
            lambda p: (_fields(_fields(p.get("metadata"), "metadata").get("labels"),
                               "metadata.labels"), pod_info_json(p)),
            malformed="MalformedPod")  # the watch backs off and lists again
        informer.pods.clear()
        informer.pod_component.clear()
        informer.built.clear()
        for labels, info in pods:
            informer.put_pod(dict(labels), info, listed=True)
        informer.pods_listed = True
        workloads = sorted({labels.get(COMPONENT_LABEL, "") for labels, _ in pods} - {""})
        return resource_version, workloads

    async def _list_deployments(self, namespace: str,
                                informer: _Informer) -> tuple[str, list[str]]:
        """The namespace's Deployments into `informer`; their names are announced, since a
        change missed while no watch was open shows only here."""
        now = self._clock.now()
        resource_version, items = await self._list_json(
            lambda token: self._apps.list_namespaced_deployment(
                namespace, limit=LIST_PAGE, _continue=token, _preload_content=False,
                _request_timeout=self._timeout),
            lambda d: (str(_fields(d.get("metadata"), "metadata").get("name") or ""),
                       _cached_deployment(d, now=now)))
        entries = dict(items)
        informer.deployments.clear()
        informer.by_component.clear()
        for name, entry in entries.items():
            self._learn(namespace, name, entry, informer)
        return resource_version, sorted(entries)

    def _learn(self, namespace: str, name: str, entry: _CachedDeployment | None,
               informer: _Informer) -> None:
        """A Deployment as a list or watch brought it: cached, and its selector and uid known
        (an Event names the uid)."""
        informer.remember(name, entry)
        if entry is not None:
            self._selectors[(namespace, name)] = entry.selector
            self._uids[(namespace, name)] = entry.uid

    async def _list_json(self, page: Callable[[str], Awaitable[Any]],
                         parse: Callable[[Any], _Item], *,
                         malformed: str | None = None) -> tuple[str, list[_Item]]:
        """A list made with `_preload_content=False` in pages of `LIST_PAGE` (`page` opens the
        one after the `continue` token given, "" for the first), read as JSON as the
        watches read their events (a thousand objects cost the client's model classes over a
        second, and every read in flight waited meanwhile): its resourceVersion and each item
        through `parse`. Pages bound what one body holds in memory: every pod carries its
        `managedFields`. A malformed object is `KubeError(malformed)` when that is given; it and
        any other malformed body are else `MalformedList`, as is a page that gives back the
        token it was asked with. An expired token is the 410 a list gets (the watch lists
        again)."""
        items: list[_Item] = []
        token = ""
        while True:
            response = await self._raw(page(token))
            try:
                body = json.loads(await response.read())
                items.extend(parse(item) for item in _entries(body.get("items"), "items"))
                meta = _fields(body.get("metadata"), "metadata")
                resource_version = str(meta.get("resourceVersion") or "")
                token, previous = str(meta.get("continue") or ""), token
                if token and token == previous:  # no end to this list: a broken server
                    raise ValueError(f"the same continue token twice: {token[:40]!r}")
            except MalformedObjectError as exc:
                if malformed is None:
                    raise KubeError(UNREACHABLE, "MalformedList", repr(exc)) from exc
                raise KubeError(UNREACHABLE, malformed, str(exc)) from exc
            except (ValueError, AttributeError, TypeError, RecursionError) as exc:
                raise KubeError(UNREACHABLE, "MalformedList", repr(exc)) from exc
            except TRANSPORT_ERRORS as exc:
                raise kube_error(exc) from exc
            finally:
                response.release()
            if not token:
                return resource_version, items

    @staticmethod
    async def _raw(opening: Awaitable[Any]) -> aiohttp.ClientResponse:
        """The response of a call made with `_preload_content=False`; `KubeError` for a
        failure, the apiserver's Status included (such a response skips the client's own
        status check)."""
        try:
            response = cast(aiohttp.ClientResponse, await opening)
        except (ApiException, *CALL_ERRORS) as exc:
            raise kube_error(exc) from exc
        if response.status >= 300:
            failure = ApiException(status=response.status, reason=response.reason)
            try:
                failure.body = await response.read()
            except TRANSPORT_ERRORS:
                failure.body = b""
            finally:
                response.release()
            failure.headers = response.headers
            raise kube_error(failure)
        return response

    async def _watch_stream(self, opening: Awaitable[Any], resource_version: str, *,
                            apply: Callable[[str, Mapping[str, Any]], str],
                            synced: Callable[[bool], None],
                            ) -> AsyncIterator[tuple[str, str, str]]:
        """(type, resourceVersion, workload) per watch event until the server ends the
        stream; `KubeError` (410 for an expired resourceVersion) on failure. `apply` takes
        each event's object on the way and names the workload it concerns."""
        response = await self._raw(opening)
        try:
            synced(True)
            async for line in response.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                obj = event.get("object") or {}
                if event.get("type") == "ERROR":
                    raise KubeError(int(obj.get("code") or 500), str(obj.get("reason") or ""),
                                    str(obj.get("message") or ""))
                meta = obj.get("metadata") or {}
                rv = str(meta.get("resourceVersion") or resource_version)
                kind = str(event.get("type"))
                yield kind, rv, "" if kind == "BOOKMARK" else apply(kind, obj)
        except (ValueError, AttributeError, TypeError, OverflowError, RecursionError) as exc:
            raise KubeError(UNREACHABLE, "MalformedWatch", repr(exc)) from exc
        except TRANSPORT_ERRORS as exc:
            raise kube_error(exc) from exc
        finally:
            response.release()

    async def close(self) -> None:
        """Stop the watches at their next event; the ApiClient stays open (not ours)."""
        self._closed = True
