"""What the daemon may do in the cluster, asked of the apiserver before it is needed.

A Role that lacks a rule shows only when its call is first made: a scale-up hours after the
start, in the middle of a flash crowd, gets a 403. So the daemon asks at start, after each
config reload and every `ACCESS_CHECK_SECONDS`: one SelfSubjectAccessReview (which every
authenticated user may create) per permission its config needs, the same list the shipped Role
(deploy/base/role.yaml) grants, a few at a time. Each missing one is logged once as
`access_missing`, naming the call it is for and how to grant it, and exported as
`tracardi_autoscaler_access_missing`; the daemon runs on (what it may do still works, and a write
that is refused is counted as `forbidden`). Reviews that fail (the API unreachable) are logged
once as `access_check_failed` and asked again after 5 s, then 10, 20, ... up to the period.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

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
from autoscaler.kube.cluster import CALL_ERRORS, kube_error
from autoscaler.ports import Clock
from autoscaler.telemetry import Telemetry

log = structlog.get_logger("autoscaler.kube.access")

#: How often the daemon asks again with an unchanged config: a Role can change at any time.
ACCESS_CHECK_SECONDS = 600.0
#: How often it looks whether the config was reloaded (a reload is checked at once).
RELOAD_LOOK_SECONDS = 5.0
#: After a check in which some reviews failed, the next comes this long after, doubling up to
#: ACCESS_CHECK_SECONDS.
RETRY_SECONDS = 5.0
#: Reviews in flight at once: the daemon's client also carries the lease renewals and writes.
CONCURRENT_REVIEWS = 4
#: The Lease name the shipped Role (deploy/base/role.yaml) lists in its resourceNames.
SHIPPED_LEASE = "tracardi-autoscaler"


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

    @property
    def labels(self) -> tuple[str, str, str, str]:
        """Its `tracardi_autoscaler_access_missing` labels (the name is not one)."""
        return self.namespace, self.verb, self.group, self.resource


def needed(loaded: LoadedConfig, *, dry_run: bool,
           lease: tuple[str, str] | None) -> list[Permission]:
    """Every permission the daemon needs for `loaded`, once each, with what it is for. `lease`
    is the (namespace, name) of the Lease the leader election holds, None without one."""
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
            need(ns, "list", "metrics.k8s.io", "pods",
                 why="read pod CPU (an hpa policy, learn_from_cpu)")
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
    if lease is not None:
        ns, name = lease
        need(ns, "create", "coordination.k8s.io", "leases", why="create the leader Lease")
        for verb in ("get", "update"):
            need(ns, verb, "coordination.k8s.io", "leases", name,
                 why="hold and renew the leader Lease")
    return sorted(out)


def lease_of(loaded: LoadedConfig) -> tuple[str, str]:
    """The (namespace, name) of the Lease that leader election under `loaded` holds."""
    daemon = loaded.config.daemon
    return daemon.lease.namespace or daemon.namespace, daemon.lease.name


def hint(p: Permission, role_namespace: str) -> str:
    """How to grant `p`, given that deploy/ binds its Role in `role_namespace`."""
    if p.namespace != role_namespace:
        return (f"deploy/ binds its Role in namespace {role_namespace} only: add a Role and "
                f"RoleBinding in {p.namespace} for the daemon's ServiceAccount")
    if p.name is not None and p.name != SHIPPED_LEASE:
        return (f"add {p.name!r} to the resourceNames of the Role's leases rule "
                f"(deploy/base/role.yaml lists {SHIPPED_LEASE!r})")
    if (p.verb, p.group, p.resource) == ("delete", "", "pods"):
        return ("deploy/components/allow-delete grants it (only allow_delete needs it): add it "
                "to your overlay's components and apply")
    return "deploy/base/role.yaml grants it: kubectl apply -k deploy/"


async def review(api: ApiClient, wanted: Iterable[Permission], *,
                 request_timeout: float = 10.0) -> tuple[dict[Permission, bool], list[Exception]]:
    """Ask the apiserver about each permission, `CONCURRENT_REVIEWS` at a time: the answers
    that came back (True: allowed), and the errors of the reviews that failed."""
    authz = AuthorizationV1Api(api)
    gate = asyncio.Semaphore(CONCURRENT_REVIEWS)

    async def allowed(p: Permission) -> bool:
        plural, _, sub = p.resource.partition("/")
        request = V1SelfSubjectAccessReview(spec=V1SelfSubjectAccessReviewSpec(
            resource_attributes=V1ResourceAttributes(
                namespace=p.namespace, verb=p.verb, group=p.group, resource=plural,
                subresource=sub or None, name=p.name)))
        async with gate:
            answer = await authz.create_self_subject_access_review(
                request, _request_timeout=request_timeout)
        return bool(answer.status and answer.status.allowed)

    wanted = list(wanted)
    results = await asyncio.gather(*(allowed(p) for p in wanted), return_exceptions=True)
    answers: dict[Permission, bool] = {}
    errors: list[Exception] = []
    for p, result in zip(wanted, results, strict=True):
        if isinstance(result, bool):
            answers[p] = result
        elif isinstance(result, (ApiException, *CALL_ERRORS)):
            errors.append(result)
        else:
            raise result  # a bug or a cancellation: not an answer
    return answers, errors


async def access_report(api: ApiClient, loaded: LoadedConfig) -> dict[str, Any]:
    """For `explain`: what a daemon running `loaded` (writing, with leader election) may not
    do, as the client's user: `{"checked": N, "missing": [{"permission", "needed_to",
    "hint"}], "error": str | None}` (`error`: some reviews failed; `missing` is from the
    others)."""
    wanted = needed(loaded, dry_run=False, lease=lease_of(loaded))
    answers, errors = await review(api, wanted)
    role_namespace = loaded.config.daemon.namespace
    return {
        "checked": len(answers),
        "missing": [{"permission": str(p), "needed_to": p.why, "hint": hint(p, role_namespace)}
                    for p in wanted if answers.get(p) is False],
        "error": (f"{len(errors)} of {len(wanted)} reviews failed: "
                  f"{kube_error(errors[0])}"[:300]) if errors else None,
    }


async def watch_access(api: ApiClient, config: Callable[[], LoadedConfig], *, dry_run: bool,
                       lease: tuple[str, str] | None, telemetry: Telemetry, clock: Clock,
                       period: float = ACCESS_CHECK_SECONDS, retry: float = RETRY_SECONDS,
                       look: float = RELOAD_LOOK_SECONDS) -> None:
    """The daemon's task: check, report what changed, and check again after a reload (looked
    for every `look` seconds), after `period`, or after `retry` (doubling) when reviews failed.

    What a permission last was (allowed or not) is kept while the config needs it: a failed
    review leaves it as it was, and a permission a reload no longer needs is forgotten without a
    word (its series is dropped).
    """
    known: dict[Permission, bool] = {}
    failing, told_ok = False, False
    first_retry = retry
    while True:
        checked = config()
        wanted = needed(checked, dry_run=dry_run, lease=lease)
        answers, errors = await review(api, wanted)
        if config() is not checked:
            continue  # reloaded meanwhile: these answers were for the old config
        role_namespace = checked.config.daemon.namespace
        for p in wanted:
            now = answers.get(p)
            if now is False and known.get(p) is not False:
                log.error("access_missing", permission=str(p), needed_to=p.why,
                          hint=hint(p, role_namespace))
            elif now is True and known.get(p) is False:
                log.info("access_granted", permission=str(p))
        known = {p: answers[p] if p in answers else known[p] for p in wanted
                 if p in answers or p in known}
        if errors and not failing:
            log.warning("access_check_failed", failed=len(errors), of=len(wanted),
                        error=str(kube_error(errors[0]))[:300],
                        hint="the daemon runs on; a refused write is counted as forbidden")
        failing = bool(errors)
        if not errors and not told_ok and all(known.values()):
            log.info("access_ok", permissions=len(wanted))
            told_ok = True
        state: dict[tuple[str, str, str, str], bool] = {}
        for p, ok in known.items():
            state[p.labels] = state.get(p.labels, False) or not ok
        telemetry.set_access_missing(state)
        wait = min(retry, period) if errors else period
        retry = min(period, retry * 2) if errors else first_retry
        deadline = clock.now() + wait
        while clock.now() < deadline and config() is checked:
            await clock.sleep(min(look, deadline - clock.now()))
