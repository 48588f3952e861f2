"""Chunked lists, as the apiserver serves them: `limit`, `continue` and key order.

The apiserver lists objects in the order of their storage keys (namespace, then name). With
`limit=N` it returns N of them, a `continue` token and, when no selector filters the list, the
`remainingItemCount`. Every later chunk comes from the same snapshot (the first chunk's
resourceVersion), so a list read in chunks is consistent. A token whose resourceVersion has been
compacted away (here: the watch history's horizon, or a snapshot no longer kept) gets 410
Expired, carrying a token for the rest of the list as it is now, which the client may use for an
inconsistent remainder. `kubectl get` asks in chunks of 500 (`--chunk-size`).

The token is, as the apiserver's, base64url JSON: `{"v": "meta.k8s.io/v1", "rv": N, "start":
key}`; a negative `rv` (-1 where this server writes one) marks the inconsistent remainder,
read from the latest state, as the apiserver's etcd store reads any `rv` under 0.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from autoscaler.sim.kubestate import JSON, BadRequestError, GoneError

#: Snapshots kept for continue tokens; an older one answers 410, as a compacted one does.
SNAPSHOTS = 64
TOKEN_VERSION = "meta.k8s.io/v1"
EXPIRED = ("The provided continue parameter is too old to display a consistent list result. You "
           "can start a new list without the continue parameter, or use the continue token in "
           "this response to retrieve the remainder of the results. Continuing with the provided "
           "token results in an inconsistent list - objects that were created, modified, or "
           "deleted between the time the first chunk was returned and now may show up in the "
           "list.")


def key(obj: JSON) -> str:
    """An object's storage key below its resource: `namespace/name`, or `name`."""
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    return f"{namespace}/{meta['name']}" if namespace else str(meta["name"])


def encode(rv: int, start: str) -> str:
    raw = json.dumps({"v": TOKEN_VERSION, "rv": rv, "start": start}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _clean(start: str) -> bool:
    """A start key that names a key below the list's prefix, as the apiserver requires: not
    empty, and no `..`, `.` or empty path segment (no way out of the prefix)."""
    return bool(start) and all(part not in ("", ".", "..") for part in start.split("/"))


def decode(token: str) -> tuple[int, str]:
    """A continue token's (resourceVersion, start key); BadRequestError if it is not one."""
    try:
        raw = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        rv, start = raw["rv"], raw["start"]
        valid = (raw.get("v") == TOKEN_VERSION and type(rv) is int and isinstance(start, str)
                 and rv != 0 and _clean(start))
    except (binascii.Error, UnicodeDecodeError, ValueError, TypeError, KeyError):
        valid = False
    if not valid:
        raise BadRequestError("invalid continue token: continue key is not valid")
    return rv, start


def limit_of(query: Mapping[str, str]) -> int:
    """The `limit` asked for; 0 (or less) is no limit."""
    text = query.get("limit", "")
    if not text:
        return 0
    try:
        limit = int(text)
    except ValueError:
        limit = None
    if limit is None or limit > 2**63 - 1:
        raise BadRequestError(f'invalid limit "{text}": must be a 64-bit integer')
    return max(0, limit)


@dataclass(frozen=True, slots=True)
class Page:
    items: list[JSON]
    resource_version: int
    continue_token: str | None = None
    remaining: int | None = None

    def list_meta(self) -> JSON:
        meta: JSON = {"resourceVersion": str(self.resource_version)}
        if self.continue_token is not None:
            meta["continue"] = self.continue_token
        if self.remaining is not None:
            meta["remainingItemCount"] = self.remaining
        return meta


class Pager:
    """Serves lists in chunks from snapshots, one per (resource, namespace, resourceVersion)."""

    def __init__(self, snapshots: int = SNAPSHOTS) -> None:
        self._limit = snapshots
        self._snapshots: OrderedDict[tuple[str, str | None, int], list[JSON]] = OrderedDict()

    def page(self, resource: str, namespace: str | None, objects: Iterable[JSON], *, rv: int,
             compacted_through: int, query: Mapping[str, str],
             matches: Callable[[JSON], bool], filtered: bool) -> Page:
        """The chunk `query` asks for. `objects` is the list as it is now at `rv`; `matches`
        applies the selectors, and `filtered` says whether any were given (the remaining count
        is then unknown, and left out)."""
        limit = limit_of(query)
        token = query.get("continue", "")
        if token:
            start_rv, start = decode(token)
            kept = self._snapshots.get((resource, namespace, start_rv))
            if start_rv < 0:
                # the inconsistent remainder: the list as it is now, consistent from here on
                kept, start_rv = sorted(objects, key=key), rv
            elif kept is None or start_rv < compacted_through:
                raise GoneError(EXPIRED, list_meta={"continue": encode(-1, start)})
            snapshot = kept
        else:
            snapshot, start_rv, start = sorted(objects, key=key), rv, ""
        rest = [o for o in snapshot if key(o) >= start and matches(o)]
        if not 0 < limit < len(rest):
            return Page(rest, start_rv)
        self._keep((resource, namespace, start_rv), snapshot)
        return Page(rest[:limit], start_rv, encode(start_rv, key(rest[limit - 1]) + "\x00"),
                    None if filtered else len(rest) - limit)

    def _keep(self, at: tuple[str, str | None, int], snapshot: list[JSON]) -> None:
        self._snapshots[at] = snapshot
        self._snapshots.move_to_end(at)
        while len(self._snapshots) > self._limit:
            self._snapshots.popitem(last=False)
