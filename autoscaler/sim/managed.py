"""`metadata.managedFields`: which field manager set which fields of an object.

The apiserver records, for every write, the manager that made it (the request's `fieldManager`,
else its User-Agent up to the first `/`: `kubectl scale` is `kubectl`, kubernetes_asyncio
unconfigured is `OpenAPI-Generator`) and the fields it changed, in FieldsV1 form
(`{"f:spec": {"f:replicas": {}}}`). An Update takes each field it changes from whichever manager
held it. A write through a subresource (`scale`, `status`) is its own entry. The simulated API
serves these for Deployments, the one kind whose ownership the autoscaler reads: who last set
`spec.replicas`.

How far it goes: Update operations only (no server-side apply, which the simulated API refuses);
a field is a path of FieldsV1 keys, a map (labels, annotations, requests) and a list item (a
container by name, a condition by type) is marked owned itself (`.`) beside its members, and
`spec.selector` is atomic, as in the apiserver's schema.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

JSON = dict[str, Any]
#: A field as FieldsV1 keys: `("f:spec", "f:replicas")`.
FieldPath = tuple[str, ...]

UPDATE = "Update"
#: The apiserver's FieldManagerMaxLength: a manager name is at most this many bytes.
MANAGER_MAX_BYTES = 128
REPLICAS: FieldPath = ("f:spec", "f:replicas")

# Members whose node is owned itself, besides what it holds: maps and optional structs.
_OWNED_NODES = {"f:labels", "f:annotations", "f:matchLabels", "f:requests", "f:limits",
                "f:rollingUpdate"}
_ATOMIC = {"f:selector"}
#: Lists whose items are keyed (listType=map), by their key field.
_LIST_KEYS = {"f:containers": "name", "f:conditions": "type"}


def manager_of(field_manager: str, user_agent: str) -> str:
    """The manager a write is recorded under: `fieldManager` when given, else the User-Agent's
    printable characters before its first `/`, cut to `MANAGER_MAX_BYTES` (the apiserver's
    `managerOrUserAgent`)."""
    if field_manager:
        return field_manager
    out = ""
    for ch in user_agent.split("/", maxsplit=1)[0]:
        if not ch.isprintable():
            continue
        if len((out + ch).encode()) > MANAGER_MAX_BYTES:
            break
        out += ch
    return out


def paths_of(value: Any, prefix: FieldPath) -> frozenset[FieldPath]:
    """The FieldsV1 paths of `value` found at `prefix` (which names a field: `("f:spec",)`)."""
    last = prefix[-1]
    if isinstance(value, Mapping) and value and last not in _ATOMIC:
        found = {prefix} if last in _OWNED_NODES else set()
        for key, member in value.items():
            found |= paths_of(member, (*prefix, f"f:{key}"))
        return frozenset(found)
    if isinstance(value, list) and last in _LIST_KEYS:
        key = _LIST_KEYS[last]
        items: set[FieldPath] = set()
        for item in value:
            at = (*prefix, "k:" + json.dumps({key: item[key]}, separators=(",", ":")))
            items |= {at} | {p for k, v in item.items() for p in paths_of(v, (*at, f"f:{k}"))}
        return frozenset(items)
    return frozenset({prefix})


@lru_cache(maxsize=256)
def fields_v1(owned: frozenset[FieldPath]) -> JSON:
    """Paths as a FieldsV1 object: a member for each step, and `.` in a node owned itself.
    Every Deployment served renders its entries, and they seldom change: the same set gives
    the same object (which its readers copy before they change it, as a patch does)."""
    root: JSON = {}
    for path in sorted(owned):
        node = root
        for step in path:
            node = node.setdefault(step, {})
    for path in owned:
        node = root
        for step in path:
            node = node[step]
        if node:
            node["."] = {}
    return _sorted(root)


def _sorted(node: JSON) -> JSON:
    return {k: _sorted(v) for k, v in sorted(node.items())}


@dataclass(slots=True)
class ManagedEntry:
    """One manager's fields, set by one kind of write (an Update of the object or of one of
    its subresources), and when it last changed any of them (epoch seconds)."""

    manager: str
    time_wall: float
    fields: frozenset[FieldPath] = frozenset()
    subresource: str = ""
    api_version: str = "apps/v1"

    def as_json(self, format_time: Callable[[float], str]) -> JSON:
        entry: JSON = {"manager": self.manager, "operation": UPDATE,
                       "apiVersion": self.api_version, "time": format_time(self.time_wall),
                       "fieldsType": "FieldsV1", "fieldsV1": fields_v1(self.fields)}
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry


def claim(entries: list[ManagedEntry], manager: str, paths: frozenset[FieldPath], *,
          now: float, subresource: str = "") -> list[ManagedEntry]:
    """`entries` after `manager` changed `paths` with an Update: it holds them now, no other
    manager does, and a manager left holding nothing is dropped."""
    if not paths:
        return entries
    mine = next((e for e in entries if (e.manager, e.subresource) == (manager, subresource)),
                None)
    for entry in entries:
        if entry is not mine and entry.fields & paths:
            entry.fields -= paths
    if mine is None:
        mine = ManagedEntry(manager, now, subresource=subresource)
        entries = [*entries, mine]
    mine.fields |= paths
    mine.time_wall = now
    return [e for e in entries if e.fields]


def owners(entries: Iterable[ManagedEntry], path: FieldPath) -> list[str]:
    """The managers that hold `path`, the latest writer last."""
    return [e.manager for e in sorted(entries, key=lambda e: e.time_wall) if path in e.fields]


def disown(entries: list[ManagedEntry], paths: frozenset[FieldPath]) -> list[ManagedEntry]:
    """`entries` once `paths` are gone from the object (a removed label): nobody holds them."""
    for entry in entries:
        if entry.fields & paths:
            entry.fields -= paths
    return [e for e in entries if e.fields]


def managed_fields(entries: Iterable[ManagedEntry],
                   format_time: Callable[[float], str]) -> list[JSON]:
    """The entries as the apiserver lists them: by operation, then time (whole seconds), then
    manager, then apiVersion, then subresource."""
    ordered = sorted(entries, key=lambda e: (UPDATE, int(e.time_wall), e.manager,
                                             e.api_version, e.subresource))
    return [e.as_json(format_time) for e in ordered]
