"""The simulated Elasticsearch `_cluster/health` endpoint, served from `ElasticsearchState`.

`probes/elasticsearch.py` checks it over real HTTP in `demo` and the wire tests; the simulator
flips the state to stage outages. Bodies are shaped like `../shared/samples/elasticsearch/`:
the full health body for green, yellow and red; red with `timed_out: true` comes with HTTP 408
(as `ClusterHealthResponse.status()` does); `unavailable` answers 503 with a
`master_not_discovered_exception`. A server that is down (connection refused) is the
`ServedApp.stop()` of `kubeapi.py`. Every answer carries `X-Elastic-Product: Elasticsearch`,
without which the official 8.x client refuses the server.

It is an 8.4 node, and reads the REST compatibility header as one does: an Accept of
`application/vnd.elasticsearch+json; compatible-with=8` (the 8.x client's) or `=7` is answered
in that media type, any other major (the 9.x client's `=9`) is a 400
`media_type_header_exception` (`RestCompatibleVersionHelper`). A parameter `_cluster/health`
does not take is ES's 400, another method its 405, another API its 400 "no handler found", any
other path an index it does not have.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from autoscaler.sim.kubeapi import HttpFaults, fault_middleware

PRODUCT_HEADER = {"X-Elastic-Product": "Elasticsearch"}
#: The node's major, and the oldest major whose REST API it still speaks.
MAJOR, COMPATIBLE_MAJOR = 8, 7
_COMPATIBLE_WITH = re.compile(r"compatible-with=(\d+)")
STATUSES = ("green", "yellow", "red")


@dataclass(slots=True)
class ElasticsearchState:
    """`status` is green, yellow or red; `timed_out` makes the health call time out (408);
    `unavailable` makes the node answer 503."""

    status: str = "green"
    timed_out: bool = False
    unavailable: bool = False
    cluster_name: str = "tracardi"
    nodes: int = 3
    primary_shards: int = 10
    faults: HttpFaults = field(default_factory=HttpFaults)

    def set_status(self, status: str, *, timed_out: bool = False) -> None:
        if status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
        self.status = status
        self.timed_out = timed_out

    def health(self) -> dict[str, Any]:
        """The `_cluster/health` body for the current status."""
        total = self.primary_shards * 2
        unassigned = {"green": 0, "yellow": self.primary_shards,
                      "red": self.primary_shards + 2}[self.status]
        active = total - unassigned
        primaries = self.primary_shards - (2 if self.status == "red" else 0)
        return {
            "cluster_name": self.cluster_name,
            "status": self.status,
            "timed_out": self.timed_out,
            "number_of_nodes": self.nodes,
            "number_of_data_nodes": max(1, self.nodes - 1),
            "active_primary_shards": primaries,
            "active_shards": active,
            "relocating_shards": 0,
            "initializing_shards": 0,
            "unassigned_shards": unassigned,
            "delayed_unassigned_shards": 0,
            "number_of_pending_tasks": 0,
            "number_of_in_flight_fetch": 0,
            "task_max_waiting_in_queue_millis": 0,
            "active_shards_percent_as_number": 100.0 * active / total,
        }


def _unavailable() -> web.Response:
    cause = {"type": "master_not_discovered_exception", "reason": None}
    return web.json_response({"error": {"root_cause": [cause], **cause}, "status": 503},
                             status=503, headers=PRODUCT_HEADER)


def _media_type_error(accept: str, found: int) -> web.Response:
    reason = "Invalid media-type value on headers [Accept, Content-Type]"
    cause = {"type": "status_exception",
             "reason": f"Accept version must be either version {MAJOR} or {COMPATIBLE_MAJOR}, "
                       f"but found {found}. Accept={accept}"}
    root = {"type": "media_type_header_exception", "reason": reason}
    return web.json_response({"error": {"root_cause": [root], **root, "caused_by": cause},
                              "status": 400}, status=400, headers=PRODUCT_HEADER)


@web.middleware
async def _compatibility(request: web.Request, handler: Any) -> web.StreamResponse:
    """The REST compatibility check of every request, and the media type of its answer."""
    accept = request.headers.get("Accept", "")
    wanted = _COMPATIBLE_WITH.search(accept)
    if wanted is None:
        return await handler(request)  # type: ignore[no-any-return]
    major = int(wanted.group(1))
    if not COMPATIBLE_MAJOR <= major <= MAJOR:
        return _media_type_error(accept, major)
    response: web.StreamResponse = await handler(request)
    if isinstance(response, web.Response) and response.content_type == "application/json":
        response.headers["Content-Type"] = \
            f"application/vnd.elasticsearch+json;compatible-with={major}"
    return response


#: What `_cluster/health` takes (RestClusterHealthAction), and what every request may carry.
HEALTH_PARAMETERS = frozenset({
    "level", "local", "master_timeout", "timeout", "wait_for_active_shards", "wait_for_nodes",
    "wait_for_events", "wait_for_no_relocating_shards", "wait_for_no_initializing_shards",
    "wait_for_status", "expand_wildcards", "ignore_unavailable", "allow_no_indices",
    "return_200_for_cluster_health_timeout"})
COMMON_PARAMETERS = frozenset({"pretty", "human", "error_trace", "filter_path"})


def _error(status: int, kind: str, reason: str, **extra: str) -> web.Response:
    cause = {"type": kind, "reason": reason, **extra}
    return web.json_response({"error": {"root_cause": [cause], **cause}, "status": status},
                             status=status, headers=PRODUCT_HEADER)


def create_app(state: ElasticsearchState) -> web.Application:
    """`GET /_cluster/health` and `GET /` over `state`; elsewhere ES's own errors."""

    async def health(request: web.Request) -> web.Response:
        unknown = sorted(set(request.query) - HEALTH_PARAMETERS - COMMON_PARAMETERS)
        if unknown:
            return _error(400, "illegal_argument_exception",
                          f"request [{request.path}] contains unrecognized parameter"
                          f"{'s' if len(unknown) > 1 else ''}: [{', '.join(unknown)}]")
        if state.unavailable:
            return _unavailable()
        return web.json_response(state.health(), status=408 if state.timed_out else 200,
                                 headers=PRODUCT_HEADER)

    async def elsewhere(request: web.Request) -> web.Response:
        path = request.path
        if request.method != "GET" and path in ("/_cluster/health", "/"):
            allowed = "GET" if path != "/" else "GET, HEAD"
            return web.json_response(
                {"error": f"Incorrect HTTP method for uri [{path}] and method "
                          f"[{request.method}], allowed: [{allowed}]", "status": 405},
                status=405, headers=PRODUCT_HEADER)
        index = path.strip("/").split("/")[0]
        if index.startswith("_"):  # an API, not an index: one this node does not serve
            return web.json_response(
                {"error": f"no handler found for uri [{request.path_qs}] and method "
                          f"[{request.method}]", "status": 400},
                status=400, headers=PRODUCT_HEADER)
        # Any other path is an index's name to ES, and none exists here.
        return _error(404, "index_not_found_exception", f"no such index [{index}]",
                      **{"resource.type": "index_or_alias", "resource.id": index,
                         "index_uuid": "_na_", "index": index})

    async def root(request: web.Request) -> web.Response:
        # The node answers from its own state, a master or not: without one it has not
        # joined its cluster, whose uuid it does not know yet ("_na_").
        return web.json_response({
            "name": "es-0", "cluster_name": state.cluster_name,
            "cluster_uuid": "_na_" if state.unavailable else "sim-0000000000000000000000",
            "version": {"number": "8.4.2", "build_flavor": "default",
                        "lucene_version": "9.3.0",
                        "minimum_wire_compatibility_version": "7.17.0",
                        "minimum_index_compatibility_version": "7.0.0"},
            "tagline": "You Know, for Search"}, headers=PRODUCT_HEADER)

    app = web.Application(middlewares=[fault_middleware(state.faults), _compatibility])
    app.router.add_get("/_cluster/health", health)
    app.router.add_get("/_cluster/health/{index}", health)  # the cluster's, as one node has it
    app.router.add_get("/", root)
    app.router.add_route("*", "/{tail:.*}", elsewhere)
    return app
