"""The Policy protocol and the registry that loads policies by name from entry points.

A policy is a pure function from a workload's state and signals to a `Recommendation`. Built-ins
and third-party policies register the same way, under the entry-point group
`tracardi_autoscaler.policies`; the value is a class with a pydantic `Params` model and a
constructor that takes the validated params.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib.metadata import entry_points
from typing import Any, ClassVar, Protocol, cast, runtime_checkable

from pydantic import BaseModel, ConfigDict

from autoscaler.model import Recommendation, Signal, WorkloadStatus

ENTRY_POINT_GROUP = "tracardi_autoscaler.policies"


class PolicyParams(BaseModel):
    """Base of every policy's parameters: frozen, unknown keys and infinities rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


@dataclass(frozen=True, slots=True)
class PolicyContext:
    """Everything a policy may look at. `history` holds recent signals per name, oldest first."""

    status: WorkloadStatus
    signals: Mapping[str, Signal]
    now: float
    min_replicas: int
    max_replicas: int
    tolerance_up: float = 0.1
    tolerance_down: float = 0.1
    history: Mapping[str, Sequence[Signal]] = field(default_factory=dict)
    #: The optional signals (`ReadsOptional`) that are missing, failed or stale now: a policy
    #: does without them, and never acts on their latest value.
    unusable: frozenset[str] = frozenset()

    def recent(self, name: str, seconds: float) -> list[tuple[float, float]]:
        """The valid (time, value) reads of signal `name` in the last `seconds`, newest first."""
        points: list[tuple[float, float]] = []
        for s in reversed(self.history.get(name, ())):
            if self.now - s.read_at > seconds:
                break
            if s.ok and s.value is not None:
                points.append((s.read_at, float(s.value)))
        return points


@runtime_checkable
class Policy(Protocol):
    """A scaling algorithm with its parameters bound."""

    name: ClassVar[str]

    def signals(self) -> tuple[str, ...]:
        """The signal names this policy needs; the gate checks each for presence and age."""
        ...

    def recommend(self, ctx: PolicyContext) -> Recommendation:
        """Propose a replica count. Called only when every needed signal is valid."""
        ...


@runtime_checkable
class ReadsOptional(Protocol):
    """A policy that also reads signals it can do without. They are read like the others; one
    that is missing, failed or stale does not make the proposal invalid, and is named in
    `PolicyContext.unusable` instead."""

    def optional_signals(self) -> tuple[str, ...]: ...


def optional_signals(policy: Policy) -> tuple[str, ...]:
    """The signals `policy` can do without (none unless it is `ReadsOptional`)."""
    if not _reads_optional(type(policy)):
        return ()
    return cast(ReadsOptional, policy).optional_signals()


@cache
def _reads_optional(cls: type) -> bool:
    """Whether instances of `cls` are `ReadsOptional`, asked once per class: the protocol's
    own isinstance check walks its attributes on every call, and this runs at every
    evaluation."""
    return issubclass(cls, ReadsOptional)


@runtime_checkable
class LooksBack(Protocol):
    """A policy that says how far back `recommend` reads `ctx.history`, per signal name.

    The daemon keeps that much history of each signal and only the latest read of the others.
    While any policy in the config does not say, every signal keeps `daemon.history_seconds`.
    """

    def history_seconds(self) -> Mapping[str, float]: ...


class PolicyFactory(Protocol):
    """What an entry point must name: a class with `Params` that builds a `Policy`."""

    name: ClassVar[str]
    Params: ClassVar[type[PolicyParams]]

    def __call__(self, params: Any) -> Policy: ...


class PolicyError(ValueError):
    """A policy cannot propose a count from these inputs; the engine treats it as invalid."""


class UnknownPolicyError(LookupError):
    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(f"unknown policy {name!r}; known: {', '.join(known)}")
        self.name = name


@cache
def registry() -> Mapping[str, PolicyFactory]:
    """All installed policies by name, read once from the entry-point group."""
    found: dict[str, PolicyFactory] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.load()
    return found


def policy_factory(name: str) -> PolicyFactory:
    known = registry()
    if name not in known:
        raise UnknownPolicyError(name, tuple(sorted(known)))
    return known[name]


def build_policy(name: str, params: Mapping[str, Any]) -> Policy:
    """Validate `params` against the named policy and bind them (raises pydantic errors)."""
    factory = policy_factory(name)
    return factory(factory.Params.model_validate(dict(params)))
