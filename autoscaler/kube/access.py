"""What the daemon may do in the cluster, asked of the apiserver before it is needed.

A Role that lacks a rule shows only when its call is first made: a scale-up hours after the
start, in the middle of a flash crowd, gets a 403. So the daemon asks at start, after each
config reload and every `ACCESS_CHECK_SECONDS`: one SelfSubjectAccessReview (which every
authenticated user may create) per permission its config needs, the same list the shipped Role
(deploy/base/role.yaml) grants. Each missing one is logged once as `access_missing`, naming the
call it is for, and exported as `tracardi_autoscaler_access_missing`; the daemon runs on (what
it may do still works, and a write that is refused is counted as `forbidden`). A review that
fails (the API unreachable) is logged as `access_check_failed` and asked again next time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import structlog
from kubernetes_asyncio.client import (
    ApiClient,
    AuthorizationV1Api,
    V1ResourceAttributes,
    V1SelfSubjectAccessReview,
    V1SelfSubjectAccessReviewSpec,
)
from kubernetes_asyncio.client.exceptions import ApiException

from autoscaler.config import RESOURCE_SIGNALS, LoadedConfig
from autoscaler.kube.cluster import CALL_ERRORS
from autoscaler.ports import Clock
from autoscaler.telemetry import Telemetry

log = structlog.get_logger("autoscaler.kube.access")

#: How often the daemon asks again with an unchanged config: a Role can change at any time.
ACCESS_CHECK_SECONDS = 600.0
#: How often it looks whether the config was reloaded (a reload is checked at once).
RELOAD_LOOK_SECONDS = 5.0


@dataclass(frozen=True, order=True, slots=True)
class Permission:
    """One call the daemon makes: `resource` is `deployments/scale` for a subresource."""

    namespace: str
    verb: str
    group: str
    resource: str
    name: str | None = None
    why: str = field(default="", compare=False)

    def __str__(self) -> str:
        plural, _, sub = self.resource.partition("/")
        what = f"{plural}.{self.group}" if self.group else plural
        what += f"/{sub}" if sub else ""
        what += f" {self.name}" if self.name else ""
        return f"{self.verb} {what} in namespace {self.namespace}"


def needed(loaded: LoadedConfig, *, dry_run: bool, leader_election: bool) -> list[Permission]:
    """Every permission the daemon needs for `loaded`, once each, with what it is for."""
    out: dict[Permission, Permission] = {}

    def need(ns: str, verb: str, group: str, resource: str, name: str | None = None, *,
             why: str) -> None:
        p = Permission(ns, verb, group, resource, name, why)
        out.setdefault(p, p)

    for spec in loaded.workloads:
        ns = spec.namespace
        for verb in ("get", "list", "watch"):
            need(ns, verb, "apps", "deployments", why="read the Deployments and their changes")
        need(ns, "get", "apps", "deployments/scale", why="read the replica count")
        for verb in ("list", "watch"):
            need(ns, verb, "", "pods", why="read the pods' readiness and health")
        need(ns, "list", "autoscaling", "horizontalpodautoscalers",
             why="hold a workload that an HPA also scales")
        need(ns, "list", "keda.sh", "scaledobjects",
             why="hold a workload that a KEDA ScaledObject also scales")
        if any(s in RESOURCE_SIGNALS for s in spec.signal_names()):
            need(ns, "list", "metrics.k8s.io", "pods", why="read pod CPU for the hpa policy")
        if dry_run:
            continue
        need(ns, "update", "apps", "deployments/scale", why="scale")
        need(ns, "create", "", "events", why="report each scale and restart as an Event")
        healing = spec.settings.healing
        if healing.enabled:
            need(ns, "create", "", "pods/eviction", why="restart unhealthy pods")
            if healing.allow_delete:
                need(ns, "delete", "", "pods",
                     why="restart a pod whose eviction a PDB keeps refusing (allow_delete)")
    if leader_election:
        daemon = loaded.config.daemon
        ns, lease = daemon.lease.namespace or daemon.namespace, daemon.lease.name
        need(ns, "create", "coordination.k8s.io", "leases", why="create the leader Lease")
        for verb in ("get", "update"):
            need(ns, verb, "coordination.k8s.io", "leases", lease,
                 why="hold and renew the leader Lease")
    return sorted(out)


async def missing(api: ApiClient, wanted: Iterable[Permission], *,
                  request_timeout: float = 10.0) -> list[Permission]:
    """The permissions of `wanted` that the apiserver says the daemon does not have. Raises
    what the reviews raise (ApiException, transport errors)."""
    authz = AuthorizationV1Api(api)

    async def allowed(p: Permission) -> bool:
        plural, _, sub = p.resource.partition("/")
        review = V1SelfSubjectAccessReview(spec=V1SelfSubjectAccessReviewSpec(
            resource_attributes=V1ResourceAttributes(
                namespace=p.namespace, verb=p.verb, group=p.group, resource=plural,
                subresource=sub or None, name=p.name)))
        answer = await authz.create_self_subject_access_review(
            review, _request_timeout=request_timeout)
        return bool(answer.status and answer.status.allowed)

    wanted = list(wanted)
    answers = await asyncio.gather(*(allowed(p) for p in wanted))
    return [p for p, ok in zip(wanted, answers, strict=True) if not ok]


async def watch_access(api: ApiClient, config: Callable[[], LoadedConfig], *, dry_run: bool,
                       leader_election: bool, telemetry: Telemetry, clock: Clock,
                       period: float = ACCESS_CHECK_SECONDS) -> None:
    """The daemon's task: check, report what changed, and check again after a reload or
    `period`."""
    reported: set[Permission] = set()
    failing, first = False, True
    while True:
        checked = config()
        wanted = needed(checked, dry_run=dry_run, leader_election=leader_election)
        try:
            lacking = set(await missing(api, wanted))
        except (ApiException, *CALL_ERRORS) as exc:
            if not failing:
                log.warning("access_check_failed", error=f"{type(exc).__name__}: {exc}"[:300],
                            hint="the daemon runs on; a refused write is counted as forbidden")
            failing = True
        else:
            failing = False
            for p in sorted(lacking - reported):
                log.error("access_missing", permission=str(p), needed_to=p.why,
                          hint="deploy/base/role.yaml grants it: kubectl apply -k deploy/")
            for p in sorted(reported - lacking):
                log.info("access_granted", permission=str(p))
            if first and not lacking:
                log.info("access_ok", permissions=len(wanted))
            state: dict[tuple[str, str, str, str], bool] = {}
            for p in wanted:
                labels = (p.namespace, p.verb, p.group, p.resource)
                state[labels] = state.get(labels, False) or p in lacking
            telemetry.set_access_missing(state)
            reported, first = lacking, False
        deadline = clock.now() + period
        while clock.now() < deadline and config() is checked:
            await clock.sleep(min(RELOAD_LOOK_SECONDS, deadline - clock.now()))
