"""The simulated Prometheus instant-query API (`/api/v1/query`), served from `PrometheusState`.

`sources/prometheus.py` reads it over real HTTP in `demo` and the wire tests; the simulator
maps each configured query to a number (or a callable reading its model). Bodies are shaped like
`../shared/samples/prometheus/`: a vector with `[timestamp, "value"]`, an empty result for a
query whose value is None, and 400 `bad_data` for a query it does not know (a real server would
return an empty result; failing loudly shows a misconfigured query in the simulator).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from aiohttp import web

from autoscaler.sim.kubeapi import HttpFaults, fault_middleware

Value = float | None | Callable[[], float | None]


@dataclass(slots=True)
class PrometheusState:
    """`queries` maps a query string, exactly as configured, to its value."""

    queries: dict[str, Value] = field(default_factory=dict)
    labels: dict[str, Mapping[str, str]] = field(default_factory=dict)
    wall: Callable[[], float] = time.time
    faults: HttpFaults = field(default_factory=HttpFaults)

    def set(self, query: str, value: Value, *, labels: Mapping[str, str] | None = None) -> None:
        self.queries[query] = value
        if labels is not None:
            self.labels[query] = dict(labels)

    def value(self, query: str) -> float | None:
        v = self.queries[query]
        return v() if callable(v) else v


def _format(value: float) -> str:
    """Prometheus' sample formatting: Go's strconv 'f', -1, with NaN and ±Inf spelled out."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def _bad_data(message: str) -> web.Response:
    return web.json_response({"status": "error", "errorType": "bad_data", "error": message},
                             status=400)


def create_app(state: PrometheusState) -> web.Application:
    """`GET|POST /api/v1/query` and the `/-/healthy` and `/-/ready` endpoints over `state`."""

    async def query(request: web.Request) -> web.Response:
        params = dict(request.query)
        if request.method == "POST":
            params.update({k: str(v) for k, v in (await request.post()).items()})
        text = params.get("query")
        if not text:
            return _bad_data("invalid parameter \"query\": unknown position: parse error: "
                             "no expression found in input")
        if text not in state.queries:
            return _bad_data(f"invalid parameter \"query\": the simulator has no series for "
                             f"{text!r}")
        try:
            at = float(params["time"]) if "time" in params else state.wall()
        except ValueError:
            return _bad_data(f"invalid parameter \"time\": cannot parse {params['time']!r} "
                             "to a valid timestamp")
        value = state.value(text)
        result = [] if value is None else [
            {"metric": dict(state.labels.get(text, {})), "value": [round(at, 3), _format(value)]}]
        return web.json_response({"status": "success",
                                  "data": {"resultType": "vector", "result": result}})

    async def healthy(request: web.Request) -> web.Response:
        return web.Response(text="Prometheus Server is Healthy.\n")

    async def ready(request: web.Request) -> web.Response:
        return web.Response(text="Prometheus Server is Ready.\n")

    app = web.Application(middlewares=[fault_middleware(state.faults)])
    app.router.add_route("GET", "/api/v1/query", query)
    app.router.add_route("POST", "/api/v1/query", query)
    app.router.add_get("/-/healthy", healthy)
    app.router.add_get("/-/ready", ready)
    return app
