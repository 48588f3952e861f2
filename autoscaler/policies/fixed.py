"""`fixed`: never scales. For heal-only workloads such as Tracardi's singleton workers."""

from __future__ import annotations

from typing import ClassVar

from autoscaler.model import Recommendation
from autoscaler.policies.base import PolicyContext, PolicyParams


class FixedParams(PolicyParams):
    pass


class FixedPolicy:
    name: ClassVar[str] = "fixed"
    Params: ClassVar[type[PolicyParams]] = FixedParams

    def __init__(self, params: FixedParams) -> None:
        self.params = params

    def signals(self) -> tuple[str, ...]:
        return ()

    def history_seconds(self) -> dict[str, float]:
        return {}

    def recommend(self, ctx: PolicyContext) -> Recommendation:
        return Recommendation(ctx.status.replicas, "fixed: heal-only workload", self.name,
                              settled=True)
