"""`metadata.managedFields`: which field manager set which fields of an object.

The apiserver records, for every write, the manager that made it (the request's `fieldManager`,
else its User-Agent up to the first `/`: `kubectl scale` is `kubectl`, kubernetes_asyncio
unconfigured is `OpenAPI-Generator`) and the fields it changed, in FieldsV1 form
(`{"f:spec": {"f:replicas": {}}}`). An Update takes each field it changes from whichever manager
held it. A write through a subresource (`scale`, `status`) is its own entry. A server-side
apply holds every field of its configuration; one that would change a field another manager
holds is refused with a conflict unless forced. The simulated API serves these for Deployments,
the one kind whose ownership the autoscaler reads (who last set `spec.replicas`); for their
ReplicaSets (the controller's) and pods (the controller's template, the kubelet's status, and
labels and annotations by whoever set them); for Events (their creator's); for Leases,
written with Updates only (the leader election's, the kubelet's node heartbeat); and for every
other kind, who made it (`written`): the Node (its kubelet's labels, and its status dated at the
last heartbeat; the controller manager's pod CIDR), the apiserver's own Service and namespaces,
an operator's namespace (`kubectl create`), and the HPAs, PDBs, ScaledObjects, Roles and
RoleBindings of an operator's `kubectl apply`, the HPAs' and PDBs' status by the controller
manager (dated when they were made: the simulated cluster keeps no time of their last change).

How far it goes: a field is a path of FieldsV1 keys, a map (labels, annotations, requests) and a
list item (a container by name, a condition by type) is marked owned itself (`.`) beside its
members, and `spec.selector` is atomic, as in the apiserver's schema.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

JSON = dict[str, Any]
#: A field as FieldsV1 keys: `("f:spec", "f:replicas")`.
FieldPath = tuple[str, ...]

UPDATE = "Update"
APPLY = "Apply"
#: The apiserver's FieldManagerMaxLength: a manager name is at most this many bytes.
MANAGER_MAX_BYTES = 128
REPLICAS: FieldPath = ("f:spec", "f:replicas")

# Members whose node is owned itself, besides what it holds: maps and optional structs.
_OWNED_NODES = {"f:labels", "f:annotations", "f:matchLabels", "f:requests", "f:limits",
                "f:rollingUpdate"}
_ATOMIC = {"f:selector"}
#: Lists whose items are keyed (listType=map), by their key fields.
_LIST_KEYS = {"f:containers": ("name",), "f:conditions": ("type",),
              "f:ownerReferences": ("uid",), "f:podIPs": ("ip",),
              "f:ports": ("port", "protocol")}  # a Service's


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
        keys = _LIST_KEYS[last]
        items: set[FieldPath] = set()
        for item in value:
            at = (*prefix, "k:" + json.dumps({k: item[k] for k in keys}, separators=(",", ":")))
            items |= {at} | {p for k, v in item.items() for p in paths_of(v, (*at, f"f:{k}"))}
        return frozenset(items)
    return frozenset({prefix})


@functools.lru_cache(maxsize=4096)
def fields_v1(owned: frozenset[FieldPath]) -> JSON:
    """Paths as a FieldsV1 object: a member for each step, and `.` in a node owned itself.
    Served objects are rendered at every change and every read, and most pods' entries hold
    the same fields: one object per set of paths, shared (served JSON is never changed)."""
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


@dataclass(frozen=True, slots=True)
class ManagedEntry:
    """One manager's fields, set by one kind of write (an Update of the object or of one of
    its subresources, or an Apply), and when it last changed any of them (epoch seconds)."""

    manager: str
    time_wall: float
    fields: frozenset[FieldPath] = frozenset()
    subresource: str = ""
    operation: str = UPDATE
    api_version: str = "apps/v1"

    def as_json(self, format_time: Callable[[float], str]) -> JSON:
        entry: JSON = {"manager": self.manager, "operation": self.operation,
                       "apiVersion": self.api_version, "time": format_time(self.time_wall),
                       "fieldsType": "FieldsV1", "fieldsV1": fields_v1(self.fields)}
        if self.subresource:
            entry["subresource"] = self.subresource
        return entry

    def describe(self, format_time: Callable[[float], str]) -> str:
        """The manager as an apply conflict names it: `"kubectl"` for an Apply, `"kubectl"
        with subresource "scale" using apps/v1 at <time>` for an Update."""
        text = json.dumps(self.manager)
        if self.subresource:
            text += f" with subresource {json.dumps(self.subresource)}"
        if self.operation == UPDATE:
            text += f" using {self.api_version} at {format_time(self.time_wall)}"
        return text


def claim(entries: list[ManagedEntry], manager: str, paths: frozenset[FieldPath], *,
          now: float, subresource: str = "", api_version: str = "apps/v1") -> list[ManagedEntry]:
    """`entries` after `manager` changed `paths` with an Update: it holds them now and no other
    manager does."""
    if not paths:
        return entries
    key = (manager, UPDATE, subresource)
    mine = next((e for e in entries if (e.manager, e.operation, e.subresource) == key), None)
    held = mine.fields if mine is not None else frozenset()
    return [*disown((e for e in entries if e is not mine), paths),
            ManagedEntry(manager, now, held | paths, subresource, api_version=api_version)]


def disown(entries: Iterable[ManagedEntry], paths: frozenset[FieldPath]) -> list[ManagedEntry]:
    """`entries` with none holding `paths` (gone from the object, or taken by another writer);
    a manager left holding nothing is dropped."""
    kept = (replace(e, fields=e.fields - paths) if e.fields & paths else e for e in entries)
    return [e for e in kept if e.fields]


@dataclass(frozen=True, slots=True)
class Conflict:
    """A field an apply would change that another manager holds."""

    holder: ManagedEntry
    path: FieldPath


@dataclass(frozen=True, slots=True)
class Applied:
    """What an apply does to the entries: the entries after it, the conflicts (without `force`
    the apply is refused if there are any), and the fields it no longer applies that nobody
    else holds: they go."""

    entries: list[ManagedEntry]
    conflicts: list[Conflict]
    dropped: frozenset[FieldPath]


def apply(entries: list[ManagedEntry], manager: str, applied: frozenset[FieldPath],
          changed: frozenset[FieldPath], *, now: float, subresource: str = "") -> Applied:
    """`manager` applies a configuration of the fields `applied`, of which `changed` take a new
    value, to the object or through its `subresource` (its own entry). The changed fields other
    managers hold conflict; the applier takes them (as a forced apply does). Fields it applies
    with the value they have are held with their other holders."""
    key = (manager, APPLY, subresource)
    mine = next((e for e in entries if (e.manager, e.operation, e.subresource) == key), None)
    others = [e for e in entries if e is not mine]
    conflicts = [Conflict(e, p) for e in others for p in sorted(e.fields & changed)]
    held = frozenset().union(*(e.fields for e in others))
    dropped = (mine.fields if mine is not None else frozenset()) - applied - held
    kept = disown(others, changed)
    if applied:
        kept.append(ManagedEntry(manager, now, applied, subresource, operation=APPLY))
    return Applied(kept, conflicts, dropped)


def path_text(path: FieldPath) -> str:
    """A field as conflicts name it: `.spec.replicas`, `.spec.containers[name="api"].image`."""
    text = ""
    for step in path:
        if step.startswith("k:"):
            key = json.loads(step[2:])
            text += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in key.items()) + "]"
        else:
            text += "." + step[2:]
    return text


def conflict_message(conflicts: list[Conflict], format_time: Callable[[float], str]) -> str:
    """The apiserver's message for an apply refused on `conflicts`."""
    if len(conflicts) == 1:
        only = conflicts[0]
        return (f"Apply failed with 1 conflict: conflict with "
                f"{only.holder.describe(format_time)}: {path_text(only.path)}")
    by_holder: dict[str, list[FieldPath]] = {}
    for c in conflicts:
        by_holder.setdefault(c.holder.describe(format_time), []).append(c.path)
    lines = []
    for holder in sorted(by_holder):
        lines.append(f"conflicts with {holder}:")
        lines.extend(f"- {path_text(p)}" for p in by_holder[holder])
    return f"Apply failed with {len(conflicts)} conflicts: " + "\n".join(lines)


def owners(entries: Iterable[ManagedEntry], path: FieldPath) -> list[str]:
    """The managers that hold `path`, the latest writer last."""
    return [e.manager for e in sorted(entries, key=lambda e: e.time_wall) if path in e.fields]


def managed_fields(entries: Iterable[ManagedEntry],
                   format_time: Callable[[float], str]) -> list[JSON]:
    """The entries as the apiserver lists them: by operation, then time (whole seconds), then
    manager, then apiVersion, then subresource."""
    ordered = sorted(entries, key=lambda e: (e.operation, int(e.time_wall), e.manager,
                                             e.api_version, e.subresource))
    return [e.as_json(format_time) for e in ordered]


def written(api_version: str, format_time: Callable[[float], str],
            *writes: tuple[str, float, Mapping[str, Any], str]) -> list[JSON]:
    """The `managedFields` of an object each of whose fields one write set: a write is (its
    manager, when, the part of the object it set, the subresource it went through: "" for the
    object itself). Of `metadata`, its labels and annotations are owned; a write that set no
    field has no entry, as the apiserver keeps none (a ServiceAccount made with its name only)."""
    entries = []
    for manager, at, part, subresource in writes:
        fields: set[FieldPath] = set()
        for key, value in part.items():
            if key == "metadata":
                meta = {k: v for k, v in value.items() if k in ("labels", "annotations") and v}
                if meta:
                    fields |= paths_of(meta, ("f:metadata",))
            elif value not in (None, "", {}, []):
                fields |= paths_of(value, (f"f:{key}",))
        if fields:
            entries.append(ManagedEntry(manager, at, frozenset(fields), subresource,
                                        api_version=api_version))
    return managed_fields(entries, format_time)
