"""Fuzz the readers of Kubernetes objects: a well-formed value, or `MalformedObjectError`.

Targets: CPU quantities (`parse_cpu_milli`), a pod as a watch event carries it (`pod_info_json`),
and a pod, a Deployment and a Lease as kubernetes_asyncio hands them over (`pod_info`,
`_cached_deployment`, `lease_record`). For those three the body is first deserialized the way
the client does it; a body the client itself refuses never reaches our code and is skipped.
"""

from __future__ import annotations

import copy
import json
import math
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aiohttp import ClientResponse
from fuzz_support import (
    bodies,
    dump_json,
    expect,
    fuzz_settings,
    json_trees,
    sample_json,
)
from hypothesis import given
from hypothesis import strategies as st
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.rest import RESTResponse

from autoscaler.kube.cluster import (
    COMPONENT_LABEL,
    MalformedObjectError,
    _cached_deployment,
    parse_cpu_milli,
    pod_info,
    pod_info_json,
)
from autoscaler.kube.leases import lease_record
from autoscaler.model import PodInfo
from autoscaler.ports import LeaseRecord

KUBE_ERRORS = (MalformedObjectError,)


def _not_ready_pod() -> dict[str, Any]:
    pod: dict[str, Any] = copy.deepcopy(sample_json("kubernetes/pod-ready-single.json"))
    fragment = sample_json("kubernetes/pod-notready-containerstatuses-fragment.json")
    pod["status"]["containerStatuses"] = fragment["containerStatuses"]
    pod["status"]["conditions"][1]["status"] = "False"
    return pod


POD_DOCS = [sample_json("kubernetes/pod-ready-single.json"), _not_ready_pod()]
POD_KEYS = ("metadata", "name", "deletionTimestamp", "spec", "containers", "resources",
            "requests", "cpu", "status", "conditions", "type", "status", "phase", "podIP",
            "startTime", "containerStatuses", "restartCount", "state", "waiting", "reason")

_LABELS = {"app.kubernetes.io/name": "tracardi", "app.kubernetes.io/instance": "tracardi",
           COMPONENT_LABEL: "wk-pl-background"}
# Shaped like the Tracardi chart's worker Deployment as the apiserver returns it.
DEPLOYMENT_DOCS: list[dict[str, Any]] = [
    {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "wk-pl-background", "namespace": "tracardi",
                     "uid": "0c8914f7-0f35-440e-8676-7844977d3a05", "resourceVersion": "334899",
                     "generation": 3, "labels": dict(_LABELS),
                     "annotations": {"deployment.kubernetes.io/revision": "3",
                                     "autoscaler.tracardi.com/paused": "false"}},
        "spec": {"replicas": 3, "selector": {"matchLabels": dict(_LABELS)},
                 "template": {"metadata": {"labels": dict(_LABELS)},
                              "spec": {"containers": [{
                                  "name": "wk-pl-background",
                                  "image": "tracardi/background-worker:0.9.0",
                                  "resources": {"requests": {"cpu": "250m"}}}]}}},
        "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2,
                   "observedGeneration": 3},
    },
]
DEPLOYMENT_DOCS.append(copy.deepcopy(DEPLOYMENT_DOCS[0]))
DEPLOYMENT_DOCS[1]["spec"]["selector"]["matchExpressions"] = [
    {"key": "tier", "operator": "In", "values": ["worker"]}]
DEPLOYMENT_KEYS = ("metadata", "annotations", "resourceVersion", "uid", "spec", "replicas",
                   "selector", "matchLabels", "matchExpressions", "status", "readyReplicas",
                   COMPONENT_LABEL)

LEASE_DOCS: list[dict[str, Any]] = [sample_json("kubernetes/lease-apiserver-identity.json")]
LEASE_DOCS.append(copy.deepcopy(LEASE_DOCS[0]))
LEASE_DOCS[1]["spec"].update(acquireTime="2023-07-04T20:58:48.065888Z", leaseTransitions=4)
LEASE_KEYS = ("metadata", "resourceVersion", "spec", "holderIdentity", "acquireTime",
              "renewTime", "leaseDurationSeconds", "leaseTransitions")

#: CPU quantities as the apiserver and metrics-server write them, and near misses.
quantities = st.one_of(
    st.from_regex(r"\A\s?[-+]?[0-9]{0,12}(\.[0-9]{0,9})?([eE][-+]?[0-9]{1,7})?[numkMGi]{0,2}\s?\Z"),
    st.sampled_from(("", " ", "m", "n", "NaN", "sNaN", "-Infinity", "Inf", "1e999999", "1e999999m",
                     "1e999999999999", "1e-999999999", "-0", "0.0000001n", "1_000m", "٣m")),
    st.text(max_size=20),
)


def _loads_or_none(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        return None


def k8s_model(body: bytes, kind: str) -> Any:
    """`body` deserialized as kubernetes_asyncio does a response, or None if it refuses it."""
    client = ApiClient.__new__(ApiClient)  # deserialize() uses no connection, so none is made
    response = RESTResponse(cast(ClientResponse, SimpleNamespace(status=200, reason="OK")), body)
    try:
        return client.deserialize(response, kind)
    except Exception:  # the client's own failure: such a body never reaches our parsers
        return None


def as_json(model: Any) -> Any:
    """A model object back as its JSON, as `KubeCluster` hands a read Deployment to the cache."""
    return ApiClient.__new__(ApiClient).sanitize_for_serialization(model)


def assert_pod(info: PodInfo) -> None:
    assert isinstance(info, PodInfo)
    for text in (info.name, info.phase, info.ip, info.waiting_reason):
        assert isinstance(text, str)
    assert isinstance(info.ready, bool)
    assert isinstance(info.deleting, bool)
    assert isinstance(info.started_at, float)
    assert math.isfinite(info.started_at)
    for count in (info.restarts, info.cpu_request_milli):
        assert isinstance(count, int)
        assert not isinstance(count, bool)
        assert count >= 0


@given(quantity=quantities)
@fuzz_settings(1200)
def test_cpu_quantity(quantity: str) -> None:
    milli = expect("kube-cpu-quantity", lambda: parse_cpu_milli(quantity), KUBE_ERRORS)
    if milli is not None:
        assert isinstance(milli, int)
        assert milli >= 0


@given(obj=st.one_of(st.sampled_from(POD_DOCS), json_trees(POD_KEYS),
                     bodies(POD_DOCS, POD_KEYS).map(_loads_or_none)))
@fuzz_settings(500)
def test_pod_from_watch_event(obj: Any) -> None:
    info = expect("kube-pod-json", lambda: pod_info_json(obj), KUBE_ERRORS)
    if info is not None:
        assert_pod(info)


@given(body=bodies(POD_DOCS, POD_KEYS))
@fuzz_settings(400)
def test_pod_model(body: bytes) -> None:
    pod = k8s_model(body, "V1Pod")
    if pod is None:
        return
    info = expect("kube-pod-model", lambda: pod_info(pod), KUBE_ERRORS)
    if info is not None:
        assert_pod(info)


@given(body=bodies(DEPLOYMENT_DOCS, DEPLOYMENT_KEYS))
@fuzz_settings(400)
def test_deployment_model(body: bytes) -> None:
    dep = k8s_model(body, "V1Deployment")
    if dep is None:
        return
    entry = expect("kube-deployment-model",
                   lambda: _cached_deployment(as_json(dep), now=1.0), KUBE_ERRORS)
    if entry is None:
        return
    assert COMPONENT_LABEL in entry.match_labels
    for count in (entry.replicas, entry.ready):
        assert isinstance(count, int)
        assert count >= 0
    assert isinstance(entry.paused, bool)
    for text in (entry.resource_version, entry.selector, entry.uid):
        assert isinstance(text, str)


@given(body=bodies(LEASE_DOCS, LEASE_KEYS))
@fuzz_settings(400)
def test_lease_model(body: bytes) -> None:
    lease = k8s_model(body, "V1Lease")
    if lease is None:
        return
    record = expect("kube-lease-model", lambda: lease_record(lease), KUBE_ERRORS)
    if record is None:
        return
    assert isinstance(record, LeaseRecord)
    assert record.holder is None or isinstance(record.holder, str)
    for seconds in (record.acquired_at, record.renewed_at, record.duration_seconds):
        assert isinstance(seconds, float)
        assert math.isfinite(seconds)
    assert record.duration_seconds >= 0
    assert isinstance(record.transitions, int)
    assert record.transitions >= 0
    assert record.resource_version


# The fuzzers start from these documents; each must give the pod, Deployment or Lease it is.
def test_seed_pods() -> None:
    ready = pod_info_json(POD_DOCS[0])
    assert (ready.name, ready.ready, ready.cpu_request_milli, ready.ip) == (
        "nginx", True, 100, "172.17.0.6")
    assert ready.started_at == 1565327539.0
    crashing = pod_info_json(POD_DOCS[1])
    assert (crashing.ready, crashing.restarts, crashing.waiting_reason) == (
        False, 617, "CrashLoopBackOff")
    model = k8s_model(dump_json(POD_DOCS[1]), "V1Pod")
    assert pod_info(model) == crashing


@pytest.mark.parametrize(("index", "cached"), [
    pytest.param(0, True, id="match-labels"),
    pytest.param(1, False, id="match-expressions-not-cached"),
])
def test_seed_deployments(index: int, cached: bool) -> None:
    entry = _cached_deployment(
        as_json(k8s_model(dump_json(DEPLOYMENT_DOCS[index]), "V1Deployment")), now=1.0)
    assert (entry is not None) is cached
    if entry is not None:
        assert (entry.replicas, entry.ready, entry.paused, entry.resource_version) == (
            3, 2, False, "334899")


def test_seed_lease() -> None:
    record = lease_record(k8s_model(dump_json(LEASE_DOCS[1]), "V1Lease"))
    assert record.holder == LEASE_DOCS[1]["spec"]["holderIdentity"]
    assert (record.duration_seconds, record.transitions, record.resource_version) == (
        3600.0, 4, "334899")
    assert record.renewed_at - record.acquired_at == 3600.0
