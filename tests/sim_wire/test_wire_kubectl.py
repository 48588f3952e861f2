"""A real kubectl against the simulated Kubernetes API on loopback, with a generated kubeconfig."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from wire_k8s import API, NS, WORKER, Kubectl, Served, kubectl_binary, sample_json

pytestmark = pytest.mark.real


@pytest.fixture
def kubectl(served: Served, tmp_path: Path) -> Kubectl:
    return Kubectl(kubectl_binary(), served.kubeconfig, tmp_path / "kube-cache")


async def test_get_deployments_and_pods(served: Served, kubectl: Kubectl) -> None:
    out = await kubectl("get", "deploy,pods", "-n", NS)
    assert f"deployment.apps/{API}" in out and f"deployment.apps/{WORKER}" in out
    for pod in served.state.pods(NS):
        assert f"pod/{pod.name}" in out


async def test_get_prints_kubectls_usual_columns(served: Served, kubectl: Kubectl) -> None:
    rows = [line.split() for line in (await kubectl("get", "deploy")).splitlines()]
    assert rows[0] == ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    assert rows[1][:4] == [API, "2/3", "3", "2"]
    pods = await kubectl("get", "pods", "-o", "wide")
    header = pods.splitlines()[0].split()
    assert header[:5] == ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]
    crashed = served.state.workload_pods(NS, WORKER)[0]
    [line] = [row for row in pods.splitlines() if row.startswith(crashed.name)]
    assert line.split()[1:4] == ["0/1", "CrashLoopBackOff", "1"]
    assert crashed.ip in line
    assert header[5:] == ["IP", "NODE", "NOMINATED", "NODE", "READINESS", "GATES"]


async def test_a_crash_looping_container_is_shaped_like_the_captured_one(
        served: Served, kubectl: Kubectl) -> None:
    sample = sample_json("kubernetes/pod-notready-containerstatuses-fragment.json")
    [expected] = sample["containerStatuses"]
    crashed = served.state.workload_pods(NS, WORKER)[0]
    for _ in range(6):  # the kubelet's back-off is at its 5 minutes from the sixth crash
        served.state.crash(NS, crashed.name)
    pod = json.loads(await kubectl("get", f"pod/{crashed.name}", "-o", "json"))
    [status] = pod["status"]["containerStatuses"]
    assert set(status) == set(expected)
    assert set(status["lastState"]["terminated"]) == set(expected["lastState"]["terminated"])
    assert status["lastState"]["terminated"]["containerID"] == status["containerID"]
    assert status["state"]["waiting"]["message"] == (
        f"back-off 5m0s restarting failed container={status['name']} "
        f"pod={crashed.name}_{NS}({pod['metadata']['uid']})")


async def test_get_deployment_json(kubectl: Kubectl) -> None:
    listed = json.loads(await kubectl("get", "deploy", "-o", "json"))
    by_name = {d["metadata"]["name"]: d for d in listed["items"]}
    assert set(by_name) == {API, WORKER}
    assert by_name[API]["spec"]["replicas"] == 3
    assert by_name[API]["status"]["readyReplicas"] == 2
    one = json.loads(await kubectl("get", f"deploy/{API}", "-o", "json"))
    assert one["kind"] == "Deployment" and one["metadata"]["name"] == API


async def test_scale_changes_the_state_and_creates_pods(served: Served,
                                                        kubectl: Kubectl) -> None:
    out = await kubectl("scale", f"deploy/{API}", "--replicas=5")
    assert f"deployment.apps/{API} scaled" in out
    assert served.state.deployment(NS, API).replicas == 5
    pods = served.state.workload_pods(NS, API)
    assert len(pods) == 5
    listed = await kubectl("get", "pods", "-l", f"app.kubernetes.io/component={API}", "-o",
                           "name")
    assert sorted(listed.split()) == sorted(f"pod/{p.name}" for p in pods)


async def test_scale_with_a_stale_resource_version_is_refused(served: Served,
                                                              kubectl: Kubectl) -> None:
    with pytest.raises(AssertionError, match="Expected resource version to be 1, was"):
        await kubectl("scale", f"deploy/{API}", "--replicas=4", "--resource-version=1")
    assert served.state.deployment(NS, API).replicas == 3


async def test_get_lease(kubectl: Kubectl) -> None:
    out = await kubectl("get", "lease", "-n", NS)
    assert "tracardi-autoscaler" in out
    lease = json.loads(await kubectl("get", "lease", "tracardi-autoscaler", "-o", "json"))
    assert lease["spec"]["holderIdentity"] == "autoscaler-0"


async def test_get_events(kubectl: Kubectl) -> None:
    ours = ("--field-selector", "source=tracardi-autoscaler")
    listed = json.loads(await kubectl("get", "events", *ours, "-o", "json"))
    [event] = listed["items"]
    assert (event["reason"], event["involvedObject"]["name"]) == ("SuccessfulRescale", API)
    [row] = (await kubectl("get", "ev", *ours)).splitlines()[1:]
    assert row.split()[1:4] == ["Normal", "SuccessfulRescale", f"deployment/{API}"]
    header, wide = (await kubectl("get", "ev", *ours, "-o", "wide")).splitlines()
    assert header.split() == ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE",
                              "MESSAGE", "FIRST", "SEEN", "COUNT", "NAME"]
    assert wide.split()[-2:] == ["1", event["metadata"]["name"]]
    # With other kinds, kubectl prefixes each name with its kind: the events' is their hidden
    # NAME column, not LAST SEEN.
    mixed = (await kubectl("get", "deploy,events")).splitlines()
    rows = mixed[mixed.index(next(r for r in mixed if r.startswith("LAST SEEN"))) + 1:]
    assert rows and not [r for r in rows if r.startswith("event/")], mixed


async def test_delete_pod_is_replaced(served: Served, kubectl: Kubectl) -> None:
    victim = served.state.workload_pods(NS, API)[0].name
    out = await kubectl("delete", "pod", victim)
    assert f'pod "{victim}" deleted' in out
    names = {p.name for p in served.state.workload_pods(NS, API)}
    assert victim not in names and len(names) == 3


async def test_annotate_pauses_the_deployment(served: Served, kubectl: Kubectl) -> None:
    await kubectl("annotate", f"deploy/{API}", "autoscaler.tracardi.com/paused=true")
    assert served.state.deployment(NS, API).paused


async def test_get_hpa_and_pdb(kubectl: Kubectl) -> None:
    assert "legacy-hpa" in await kubectl("get", "hpa")
    assert "api-pdb" in await kubectl("get", "pdb")


async def test_a_field_selector_the_apiserver_does_not_support_is_a_bad_request(
        served: Served, kubectl: Kubectl) -> None:
    running = await kubectl("get", "pods", "--field-selector", "status.phase=Running", "-o",
                            "name")
    assert running.split() and all(line.startswith("pod/") for line in running.split())
    for resource, field in (("pods", "bogus.field"), ("deploy", "status.phase"),
                            ("lease", "spec.holderIdentity")):
        with pytest.raises(AssertionError, match=f"field label not supported: {field}"):
            await kubectl("get", resource, "--field-selector", f"{field}=x")


async def test_sort_by_a_field_of_the_object_lists_every_row(served: Served,
                                                               kubectl: Kubectl) -> None:
    # --sort-by asks for includeObject=Object and sorts on the whole object of each row.
    rows = (await kubectl("get", "deploy", "--sort-by=.spec.replicas",
                          "-o", "custom-columns=NAME:.metadata.name,R:.spec.replicas",
                          "--no-headers")).split("\n")
    replicas = [int(line.split()[1]) for line in rows if line.strip()]
    assert len(replicas) == len(served.state.deployments(NS)) and replicas == sorted(replicas)
    events = await kubectl("get", "events", "--sort-by=.lastTimestamp")
    assert "SuccessfulRescale" in events


async def test_the_health_endpoints_answer_ok(kubectl: Kubectl) -> None:
    for path in ("/healthz", "/readyz", "/livez"):
        assert (await kubectl("get", "--raw", path)).strip() == "ok"


async def test_each_deployment_has_the_replicaset_its_pods_name(served: Served,
                                                                kubectl: Kubectl) -> None:
    listed = json.loads(await kubectl("get", "rs", "-o", "json"))
    by_owner = {rs["metadata"]["ownerReferences"][0]["name"]: rs for rs in listed["items"]}
    assert set(by_owner) == {API, WORKER}
    pod = served.state.workload_pods(NS, API)[0]
    owner = json.loads(await kubectl("get", f"pod/{pod.name}", "-o", "json"))[
        "metadata"]["ownerReferences"][0]
    rs = by_owner[API]
    assert (owner["kind"], owner["name"], owner["uid"]) == (
        "ReplicaSet", rs["metadata"]["name"], rs["metadata"]["uid"])
    assert rs["spec"]["replicas"] == served.state.deployment(NS, API).replicas
    # the Deployment controller's labels: its pods' (the template's), its selector the
    # Deployment's, each with the pod-template-hash
    pod_labels = json.loads(await kubectl("get", f"pod/{pod.name}", "-o", "json"))[
        "metadata"]["labels"]
    assert rs["metadata"]["labels"] == pod_labels == rs["spec"]["template"]["metadata"]["labels"]
    deployment = json.loads(await kubectl("get", f"deploy/{API}", "-o", "json"))
    assert rs["spec"]["selector"]["matchLabels"] == {
        **deployment["spec"]["selector"]["matchLabels"],
        "pod-template-hash": pod_labels["pod-template-hash"]}
    assert set(rs["spec"]["selector"]["matchLabels"]) < set(pod_labels)
    described = await kubectl("describe", f"deploy/{API}")
    assert f"NewReplicaSet:   {rs['metadata']['name']}" in described
    history = await kubectl("rollout", "history", f"deploy/{API}")
    assert any(line.split() == ["1", "<none>"] for line in history.splitlines()), history


async def test_get_all_lists_the_all_category_and_no_metrics(kubectl: Kubectl) -> None:
    kinds = {line.split("/")[0] for line in (await kubectl("get", "all", "-o", "name")).split()}
    assert {"pod", "deployment.apps", "replicaset.apps"} <= kinds
    assert kinds <= {"pod", "deployment.apps", "replicaset.apps",
                     "horizontalpodautoscaler.autoscaling"}, kinds


async def test_replicasets_namespaces_and_newer_events_can_be_watched(served: Served) -> None:
    objects: list[dict[str, object]] = []

    async def watch(path: str, change: Callable[[], object]) -> list[tuple[str, str]]:
        seen: list[tuple[str, str]] = []
        async with aiohttp.ClientSession() as session, session.get(
                f"{served.server.url}{path}", params={"watch": "true",
                                                     "timeoutSeconds": "1"}) as response:
            assert response.status == 200
            first = True
            async for line in response.content:
                event = json.loads(line)
                seen.append((event["type"], event["object"]["metadata"]["name"]))
                objects.append(event["object"])
                if first:
                    change()
                    first = False
        return seen

    rs = served.state.replica_set_json(served.state.deployment(NS, API))["metadata"]["name"]
    seen = await watch(f"/apis/apps/v1/namespaces/{NS}/replicasets",
                       lambda: served.state.set_replicas(NS, API, 4))
    assert ("MODIFIED", rs) in seen
    seen = await watch("/api/v1/namespaces",
                       lambda: served.state.add_deployment("fresh", "x", replicas=0))
    assert ("ADDED", NS) in seen and ("ADDED", "fresh") in seen
    objects.clear()
    seen = await watch(f"/apis/events.k8s.io/v1/namespaces/{NS}/events", lambda: (
        served.state.record_event(NS, kind="Deployment", name=API, reason="Watched",
                                  message="seen by a watch")))
    assert {e for e, _ in seen} == {"ADDED"} and len(seen) == len(served.state.events(NS))
    assert objects[-1]["reason"] == "Watched" and "regarding" in objects[-1]
    assert objects[-1]["apiVersion"] == "events.k8s.io/v1"


async def test_logs_are_empty_for_a_started_container_and_refused_as_the_kubelet_does(
        served: Served, kubectl: Kubectl) -> None:
    running, _, pending = served.state.workload_pods(NS, API)
    crashed = served.state.workload_pods(NS, WORKER)[0]
    assert await kubectl("logs", running.name) == ""
    assert await kubectl("logs", f"deploy/{API}") == ""
    assert await kubectl("logs", crashed.name, "--previous") == ""
    refusals = [
        (("logs", pending.name), f'container "{API}" in pod "{pending.name}" is waiting to '
                                 "start: ContainerCreating"),
        (("logs", running.name, "--previous"),
         f'previous terminated container "{API}" in pod "{running.name}" not found'),
        (("logs", running.name, "-c", "sidecar"),
         f"container sidecar is not valid for pod {running.name}"),
        (("logs", "nope"), 'pods "nope" not found'),
    ]
    for args, message in refusals:
        with pytest.raises(AssertionError, match=re.escape(message)):
            await kubectl(*args)


async def test_explain_reads_the_official_schemas(kubectl: Kubectl) -> None:
    # kubectl explain reads the OpenAPI v3 document of the kind's group-version
    replicas = await kubectl("explain", "deployment.spec.replicas")
    assert "FIELD: replicas <integer>" in replicas
    assert "Number of desired pods" in replicas
    resources = await kubectl("explain", "pods.spec.containers.resources")
    assert "FIELD: resources <ResourceRequirements>" in resources
    assert ("limits\t<map[string]Quantity>" in resources
            and "requests\t<map[string]Quantity>" in resources)
    surge = await kubectl("explain", "deploy.spec.strategy.rollingUpdate.maxSurge")
    assert "FIELD: maxSurge <IntOrString>" in surge
    lease = await kubectl("explain", "lease.spec", "--recursive")
    assert "holderIdentity\t<string>" in lease and "renewTime\t<string>" in lease
    behavior = await kubectl("explain", "hpa.spec.behavior.scaleDown")
    assert "stabilizationWindowSeconds\t<integer>" in behavior
    event = await kubectl("explain", "events", "--api-version=events.k8s.io/v1")
    assert "Event is a report of an event somewhere in the cluster" in event
    # metrics-server's kinds, which the official schemas do not carry
    usage = await kubectl("explain", "podmetrics.containers.usage")
    assert "FIELD: usage <map[string]" in usage
    assert "The memory usage is the memory working set." in usage
    node = await kubectl("explain", "nodemetrics", "--recursive")
    assert "NodeMetrics sets resource usage metrics of a node." in node
    assert "window\t<string>" in node and "timestamp\t<string>" in node


async def test_explain_reads_kedas_crd_schema(served: Served, kubectl: Kubectl) -> None:
    # KEDA's CRD carries its own schema, which the apiserver publishes once KEDA is installed
    served.state.add_scaled_object(NS, "api-so", target=API)
    triggers = await kubectl("explain", "so.spec.triggers")
    assert "FIELD: triggers <[]Object>" in triggers
    assert "metadata\t<map[string]string> -required-" in triggers
    assert "type\t<string> -required-" in triggers
    # the HPA behavior that KEDA passes on is the HPA's own, written whole as in a CRD
    behavior = await kubectl(
        "explain", "scaledobject.spec.advanced.horizontalPodAutoscalerConfig.behavior.scaleUp")
    assert "stabilizationWindowSeconds\t<integer>" in behavior
    scaled = await kubectl("explain", "scaledobject")
    assert "KIND:       ScaledObject" in scaled and "spec\t<Object> -required-" in scaled
