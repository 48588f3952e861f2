"""RBAC for the simulated Kubernetes API: a bearer token bound to a Role, as a ServiceAccount
is bound by a RoleBinding.

A request made with such a token is allowed when a rule of the Role matches its verb, API group,
resource (`deployments/scale` for a subresource) and, where the rule names some, the object's
name, in the RoleBinding's namespace; anything else gets the apiserver's 403. Asking what one
may do and who one is (SelfSubjectAccessReviews, SelfSubjectRulesReviews, SelfSubjectReviews) is
always allowed, as Kubernetes grants it to every authenticated user (`system:basic-user`), and
so is getting the discovery and health paths. The admin token (`create_app(token=...)`) and requests
on a server without a token are not restricted; the admin may act as a bound user
(`Impersonate-User`, which is how kubectl's `--as` asks, e.g. `kubectl auth can-i --as=...`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from autoscaler.sim.kubestate import JSON, ForbiddenError

#: What every authenticated user may do (`system:basic-user`): ask what it may do and who it is.
EVERY_USER = frozenset({("authorization.k8s.io", "selfsubjectaccessreviews", "create"),
                        ("authorization.k8s.io", "selfsubjectrulesreviews", "create"),
                        ("authentication.k8s.io", "selfsubjectreviews", "create")})
RBAC_GROUP = "rbac.authorization.k8s.io"
#: The paths every user may get (`system:discovery`, `system:public-info-viewer`).
PUBLIC_PATHS = ("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi",
                "/openapi/*", "/readyz", "/version", "/version/")


def public(verb: str, path: str) -> bool:
    """Whether every user may `verb` the non-resource `path`: get only, on `PUBLIC_PATHS`."""
    return verb == "get" and any(
        path == p or (p.endswith("/*") and path.startswith(p[:-1])) for p in PUBLIC_PATHS)


@dataclass(frozen=True, slots=True)
class Rule:
    groups: frozenset[str]
    resources: frozenset[str]
    verbs: frozenset[str]
    names: frozenset[str] = frozenset()

    def allows(self, verb: str, group: str, resource: str, name: str | None) -> bool:
        sub = resource.partition("/")[2]
        return ((group in self.groups or "*" in self.groups)
                and (resource in self.resources or "*" in self.resources
                     or (sub != "" and f"*/{sub}" in self.resources))
                and (verb in self.verbs or "*" in self.verbs)
                and (not self.names or name in self.names))

    def as_json(self) -> JSON:
        """The rule as a Role and a rules review write it (PolicyRule)."""
        return {"verbs": sorted(self.verbs), "apiGroups": sorted(self.groups),
                "resources": sorted(self.resources),
                **({"resourceNames": sorted(self.names)} if self.names else {})}


@dataclass(frozen=True, slots=True)
class Grant:
    """A Role bound to one user in one namespace."""

    user: str
    namespace: str
    role: str
    rules: tuple[Rule, ...]

    @classmethod
    def from_role(cls, role: Mapping[str, Any], *, namespace: str, service_account: str) -> Grant:
        """The grant a RoleBinding gives the ServiceAccount `service_account` of `namespace`:
        `role` is the Role manifest (`rules` as written in YAML)."""
        rules = tuple(Rule(frozenset(r.get("apiGroups", ())), frozenset(r.get("resources", ())),
                           frozenset(r.get("verbs", ())), frozenset(r.get("resourceNames", ())))
                      for r in role.get("rules", ()))
        return cls(cls.service_account(namespace, service_account), namespace,
                   str(role["metadata"]["name"]), rules)

    @classmethod
    def service_account(cls, namespace: str, name: str) -> str:
        """The user a ServiceAccount's token authenticates as."""
        return f"system:serviceaccount:{namespace}:{name}"

    @classmethod
    def nothing(cls, user: str) -> Grant:
        """A user no RoleBinding names: it may only ask what it may do."""
        return cls(user, "", "", ())

    def allows(self, verb: str, group: str, resource: str, namespace: str | None,
               name: str | None) -> bool:
        if (group, resource, verb) in EVERY_USER:
            return True
        # A Role grants nothing outside its namespace, and nothing cluster-scoped.
        return namespace == self.namespace and any(
            r.allows(verb, group, resource, name) for r in self.rules)

    def check(self, verb: str, group: str, resource: str, namespace: str | None,
              name: str | None) -> None:
        """ForbiddenError, worded as the apiserver's, unless the Role allows the request."""
        if self.allows(verb, group, resource, namespace, name):
            return
        plural = resource.partition("/")[0]
        qualified = f"{plural}.{group}" if group else plural
        what = f'{qualified} "{name}"' if name else qualified
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        details: JSON = {"name": name} if name else {}
        if group:  # the core group's is left out
            details["group"] = group
        details["kind"] = plural
        raise ForbiddenError(
            f'{what} is forbidden: User "{self.user}" cannot {verb} resource "{resource}" in '
            f'API group "{group}"{where}', details=details)

    @property
    def account(self) -> str:
        """The ServiceAccount's own name (the last part of its user name)."""
        return self.user.rsplit(":", 1)[1]

    def role_json(self, meta: JSON) -> JSON:
        """The Role, as `kubectl get role -o yaml` shows it; `meta` is its metadata."""
        return {"kind": "Role", "apiVersion": f"{RBAC_GROUP}/v1", "metadata": meta,
                "rules": [r.as_json() for r in self.rules]}

    def binding_json(self, meta: JSON) -> JSON:
        """The RoleBinding of the Role to the ServiceAccount (named as the Role, as
        deploy/base's is); `meta` is its metadata."""
        return {"kind": "RoleBinding", "apiVersion": f"{RBAC_GROUP}/v1", "metadata": meta,
                "subjects": [{"kind": "ServiceAccount", "name": self.account,
                              "namespace": self.namespace}],
                "roleRef": {"apiGroup": RBAC_GROUP, "kind": "Role", "name": self.role}}

    @property
    def groups(self) -> list[str]:
        """The groups its token authenticates in (a ServiceAccount's)."""
        return ["system:serviceaccounts", f"system:serviceaccounts:{self.namespace}",
                "system:authenticated"] if self.namespace else ["system:authenticated"]

    def rules_review(self, namespace: str) -> JSON:
        """The `status` of a SelfSubjectRulesReview in `namespace` (`kubectl auth can-i
        --list`): the Role's rules there, and what every user may do."""
        own = [r.as_json() for r in self.rules if namespace == self.namespace]
        every = [{"verbs": ["create"], "apiGroups": [group], "resources": [resource]}
                 for group, resource, _ in sorted(EVERY_USER)]
        return {"resourceRules": [*every, *own],
                "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": list(PUBLIC_PATHS)}],
                "incomplete": False}

    def review(self, attributes: Mapping[str, Any]) -> JSON:
        """The `status` of a SelfSubjectAccessReview for its `resourceAttributes`."""
        resource = str(attributes.get("resource", ""))
        if attributes.get("subresource"):
            resource += f"/{attributes['subresource']}"
        allowed = self.allows(str(attributes.get("verb", "")), str(attributes.get("group", "")),
                              resource, attributes.get("namespace") or None,
                              attributes.get("name") or None)
        if not allowed:
            return {"allowed": False}
        if (attributes.get("group", ""), resource, attributes.get("verb")) in EVERY_USER:
            return {"allowed": True,
                    "reason": 'RBAC: allowed by ClusterRoleBinding "system:basic-user" of '
                              'ClusterRole "system:basic-user" to Group "system:authenticated"'}
        return {"allowed": True,
                "reason": f'RBAC: allowed by RoleBinding "{self.role}/{self.namespace}" of Role '
                          f'"{self.role}" to ServiceAccount "{self.account}/{self.namespace}"'}

