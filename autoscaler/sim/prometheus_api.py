"""The simulated Prometheus instant-query API (`/api/v1/query`), served from `PrometheusState`.

`sources/prometheus.py` reads it over real HTTP in `demo` and the wire tests; the simulator
maps each configured query to a number (or a callable reading its model). Bodies are shaped like
`../shared/samples/prometheus/`: a vector with `[timestamp, "value"]`, an empty result for a
query whose value is None, and 400 `bad_data` for a query it does not know (a real server would
return an empty result; failing loudly shows a misconfigured query in the simulator). Beyond the
configured queries it evaluates the two PromQL constructs a batch of queries is built from:
`a or b` and `label_replace(<expr>, "<label>", "<value>", "", "")`.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

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
    """Prometheus' sample formatting (`jsonutil.MarshalFloat`): the shortest digits that read
    back as the value, in Go's 'f' form, or its 'e' form below 1e-6 and from 1e21; NaN and
    ±Inf spelled out."""
    value = float(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value != 0 and not 1e-6 <= abs(value) < 1e21:
        return repr(value)  # Python's shortest 'e' form is Go's: 1e-07, 1.5e+21
    fixed = format(Decimal(repr(value)), "f")
    return fixed.rstrip("0").rstrip(".") if "." in fixed else fixed


def _timestamp(at: float) -> float | int:
    """A sample's time as Prometheus writes it: seconds, with milliseconds when it has them."""
    at = round(at, 3)
    return int(at) if at.is_integer() else at


def _time(text: str, now: float) -> float:
    """A `time` parameter as Prometheus reads it: a Unix time or RFC 3339; empty is now."""
    if not text:
        return now
    bad = QueryError(f"cannot parse {json.dumps(text)} to a valid timestamp")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise bad
        return seconds
    try:
        at = datetime.fromisoformat(text)
    except ValueError:
        raise bad from None
    if at.tzinfo is None:  # RFC 3339 names its zone
        raise bad
    return at.timestamp()


Sample = tuple[dict[str, str], float]


class QueryError(Exception):
    """A query the simulator cannot evaluate; `str()` is Prometheus' `error` text."""


def evaluate(state: PrometheusState, text: str) -> list[Sample]:
    """The instant vector of `text`: a configured query, or `or`s and `label_replace`s of them."""
    if text in state.queries:  # exactly as configured, whitespace and all
        value = state.value(text)
        return [] if value is None else [(dict(state.labels.get(text, {})), value)]
    stripped = text.strip()
    if stripped != text:  # whitespace around a query means nothing to PromQL
        return evaluate(state, next((q for q in state.queries if q.strip() == stripped),
                                    stripped))
    terms = _split(text, " or")
    if len(terms) > 1:
        out: list[Sample] = []
        for term in terms:
            seen = {tuple(sorted(labels.items())) for labels, _ in out}
            out += [s for s in evaluate(state, term) if tuple(sorted(s[0].items())) not in seen]
        return out
    if text.startswith("label_replace(") and text.endswith(")"):
        args = _split(text[len("label_replace("):-1], ",")
        if len(args) != 5:
            raise QueryError(f"expected 5 arguments to label_replace, got {len(args)}")
        try:
            label, value, source, regex = (json.loads(a.strip()) for a in args[1:])
        except ValueError:
            raise QueryError("label_replace: the simulator reads only double-quoted strings") \
                from None
        if source or regex:
            raise QueryError("label_replace: the simulator supports only an empty source and "
                             "regex")
        return [({**labels, label: value}, v) for labels, v in evaluate(state, args[0])]
    raise QueryError(f"the simulator has no series for {text!r}")


def _split(text: str, separator: str) -> list[str]:
    """`text` cut at each `separator` outside brackets and string literals."""
    parts: list[str] = []
    depth, start, i, quote = 0, 0, 0, ""
    while i < len(text):
        c = text[i]
        if quote:
            if c == "\\":
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
        elif c in "([{":
            depth += 1
        elif c in ")]}":
            depth -= 1
        elif depth == 0 and text.startswith(separator, i) and (
                separator == "," or not text[i + len(separator):i + len(separator) + 1].isalnum()):
            parts.append(text[start:i])
            start = i = i + len(separator)
            continue
        i += 1
    return [*parts, text[start:]]


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
        try:
            samples = evaluate(state, text)
        except QueryError as exc:
            return _bad_data(f"invalid parameter \"query\": {exc}")
        try:
            at = _time(params.get("time", ""), state.wall())
        except QueryError as exc:
            return _bad_data(f"invalid parameter \"time\": {exc}")
        result = [{"metric": labels, "value": [_timestamp(at), _format(value)]}
                  for labels, value in samples]
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
