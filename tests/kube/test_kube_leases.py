"""KubeLeaseStore over the simulated API, and the same LeaderElector running on it."""

from __future__ import annotations

import asyncio
import re
from dataclasses import replace

import aiohttp
from kube_fixtures import NS, TOKEN, RealClock, Served
from kubernetes_asyncio.client import ApiClient

from autoscaler.kube.leases import KubeLeaseStore
from autoscaler.leader import LeaderElector
from autoscaler.ports import LEASE_MEMO_ANNOTATION, LeaseRecord, WriteOutcome

NAME = "tracardi-autoscaler"
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def _record(holder: str | None, rv: str = "", at: float = 1_700_000_000.0) -> LeaseRecord:
    return LeaseRecord(holder=holder, acquired_at=at, renewed_at=at + 0.5, duration_seconds=15,
                       transitions=2, resource_version=rv)


async def _raw_lease(served: Served) -> dict[str, object]:
    url = f"{served.server.url}/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{NAME}"
    async with aiohttp.ClientSession() as session, session.get(
            url, headers={"Authorization": f"Bearer {TOKEN}"}) as response:
        return dict(await response.json())


async def test_lease_lifecycle_with_conflicts(served: Served, api: ApiClient) -> None:
    store = KubeLeaseStore(api)
    assert await store.get(NS, NAME) is None

    assert (await store.create(NS, NAME, _record("a"))).outcome is WriteOutcome.DONE
    assert (await store.create(NS, NAME, _record("b"))).outcome is WriteOutcome.CONFLICT

    read = await store.get(NS, NAME)
    assert read is not None
    assert (read.holder, read.acquired_at, read.renewed_at, read.duration_seconds,
            read.transitions) == ("a", 1_700_000_000.0, 1_700_000_000.5, 15.0, 2)
    raw = await _raw_lease(served)
    spec = raw["spec"]
    assert isinstance(spec, dict)
    assert MICRO_TIME.match(spec["renewTime"]) and MICRO_TIME.match(spec["acquireTime"])
    assert spec["renewTime"] == "2023-11-14T22:13:20.500000Z"

    stale = read.resource_version
    assert (await store.update(NS, NAME, _record("a", stale))).outcome is WriteOutcome.DONE
    assert (await store.update(NS, NAME, _record("b", stale))).outcome is WriteOutcome.CONFLICT
    released = await store.update(NS, NAME, _record(None, (await store.get(NS, NAME) or read)
                                                    .resource_version))
    assert released.outcome is WriteOutcome.DONE
    after = await store.get(NS, NAME)
    assert after is not None and after.holder is None


async def test_the_memo_is_the_leases_annotation_and_goes_with_a_replace(
        served: Served, api: ApiClient) -> None:
    store = KubeLeaseStore(api)
    memo = '{"healing":{"tracardi/wk":{"streak":2}},"version":1}'
    assert (await store.create(NS, NAME, replace(_record("a"), memo=memo))).outcome \
        is WriteOutcome.DONE
    read = await store.get(NS, NAME)
    assert read is not None and read.memo == memo
    meta = (await _raw_lease(served))["metadata"]
    assert isinstance(meta, dict)
    assert meta["annotations"] == {LEASE_MEMO_ANNOTATION: memo}

    # A replace without a memo takes the annotation away (a PUT sends the whole object).
    done = await store.update(NS, NAME, _record("a", read.resource_version))
    assert done.outcome is WriteOutcome.DONE
    cleared = await store.get(NS, NAME)
    assert cleared is not None and cleared.memo == ""
    meta = (await _raw_lease(served))["metadata"]
    assert isinstance(meta, dict) and "annotations" not in meta


async def test_elector_over_http_leads_alone_and_hands_over_on_release(
        served: Served, api: ApiClient) -> None:
    store = KubeLeaseStore(api)
    clock = RealClock()

    def elector(identity: str) -> LeaderElector:
        return LeaderElector(store, clock=clock, identity=identity, namespace=NS, name=NAME,
                             lease_duration=3.0, renew_deadline=2.0, retry_period=0.2)

    a, b = elector("pod-a"), elector("pod-b")
    task_a = asyncio.create_task(a.run())
    async with asyncio.timeout(2):
        await a.leading.wait()
    task_b = asyncio.create_task(b.run())
    await asyncio.sleep(0.8)
    assert a.is_leader() and not b.is_leader()

    task_a.cancel()
    await asyncio.gather(task_a, return_exceptions=True)
    async with asyncio.timeout(1.5):  # well inside the 3 s lease: the release hands over
        await b.leading.wait()
    raw = await _raw_lease(served)
    spec = raw["spec"]
    assert isinstance(spec, dict)
    assert (spec["holderIdentity"], spec["leaseTransitions"]) == ("pod-b", 1)
    task_b.cancel()
    await asyncio.gather(task_b, return_exceptions=True)


def _held(raw: dict[str, object]) -> dict[str, set[str]]:
    """Manager -> the spec fields its Update entry holds (`metadata.managedFields`)."""
    meta = raw["metadata"]
    assert isinstance(meta, dict)
    held: dict[str, set[str]] = {}
    for entry in meta["managedFields"]:
        assert (entry["operation"], entry["apiVersion"], entry["fieldsType"]) == (
            "Update", "coordination.k8s.io/v1", "FieldsV1")
        held[entry["manager"]] = set(entry["fieldsV1"].get("f:spec", {}))
    return held


async def test_the_lease_records_who_wrote_which_field(served: Served, api: ApiClient) -> None:
    store = KubeLeaseStore(api)
    await store.create(NS, NAME, _record("a"))
    assert _held(await _raw_lease(served)) == {"tracardi-autoscaler": {
        "f:holderIdentity", "f:leaseDurationSeconds", "f:acquireTime", "f:renewTime",
        "f:leaseTransitions"}}
    # Someone renews it by hand (kubectl's User-Agent, no fieldManager): that write takes the
    # one field it changes, and the autoscaler keeps the rest.
    raw = await _raw_lease(served)
    spec = raw["spec"]
    assert isinstance(spec, dict)
    url = f"{served.server.url}/apis/coordination.k8s.io/v1/namespaces/{NS}/leases/{NAME}"
    async with aiohttp.ClientSession() as session, session.put(
            url, json={**raw, "spec": {**spec, "renewTime": "2023-11-14T22:13:30.000000Z"}},
            headers={"Authorization": f"Bearer {TOKEN}",
                     "User-Agent": "kubectl/v1.32.4 (linux/amd64)"}) as response:
        assert response.status == 200
    assert _held(await _raw_lease(served)) == {
        "tracardi-autoscaler": {"f:holderIdentity", "f:leaseDurationSeconds", "f:acquireTime",
                                "f:leaseTransitions"},
        "kubectl": {"f:renewTime"}}
    # The autoscaler's next renewal takes it back, and a manager left holding nothing goes.
    read = await store.get(NS, NAME)
    assert read is not None
    await store.update(NS, NAME, _record("a", read.resource_version, at=1_700_000_100.0))
    assert _held(await _raw_lease(served)) == {"tracardi-autoscaler": {
        "f:holderIdentity", "f:leaseDurationSeconds", "f:acquireTime", "f:renewTime",
        "f:leaseTransitions"}}
