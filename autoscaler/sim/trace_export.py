"""A trace of real traffic from Prometheus: `tracardi-autoscaler trace`.

`simulate` and `bench` replay a CSV of `t_seconds,requests` (requests per interval). This asks a
Prometheus for it with `/api/v1/query_range`: one value per `step` seconds from `start` to `end`
of a query that gives the requests of each step (`sum(increase(...[1m]))` at 60 s steps), or a
rate per second (`per_second`: each value times the step). Prometheus answers at most 11,000
points a query, so a long range is asked for in chunks of `CHUNK_STEPS`, oldest first.

The query must give one series: several (a query without `sum`) are refused, naming two of
them, as is a value that is not a finite number >= 0. Steps with no value (a scrape gap, a
Prometheus restart) get no row; the replay holds the rate of the row before over the gap, and
`Exported.gaps` says how many there were and where the first one began.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

import aiohttp

from autoscaler.sim.traces import MAX_TRACE_SECONDS

#: Steps per query_range call: under Prometheus' 11,000 points per series.
CHUNK_STEPS = 10_000


class ExportError(Exception):
    """What went wrong, in words an operator can act on; nothing was written."""


@dataclass(frozen=True, slots=True)
class Exported:
    rows: int
    steps: int
    gaps: int  # runs of steps without a value
    first_gap: float | None  # when the first one began (epoch seconds)
    peak: float  # the most requests in one step


def parse_time(text: str) -> float:
    """Epoch seconds from RFC 3339 (`2026-12-01T00:00:00Z`) or a number of epoch seconds."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ExportError(f"{text!r} is not a time: give RFC 3339 (2026-12-01T00:00:00Z) or "
                          "epoch seconds") from None
    if at.tzinfo is None:
        raise ExportError(f"{text!r} has no time zone: add Z for UTC, or an offset (+01:00)")
    return at.timestamp()


def check_range(start: float, end: float, step: int) -> None:
    if step < 1:
        raise ExportError(f"--step must be at least 1 s, got {step}")
    if end <= start:
        raise ExportError(f"--end ({_iso(end)}) must come after --start ({_iso(start)})")
    if end - start > MAX_TRACE_SECONDS:
        raise ExportError(f"{(end - start) / 86_400:.1f} days from --start to --end; a trace "
                          f"spans at most {MAX_TRACE_SECONDS // 86_400} days")


def _iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _chunks(start: float, end: float, step: int) -> Iterator[tuple[float, float]]:
    at = start
    while at <= end:
        last = min(end, at + (CHUNK_STEPS - 1) * step)
        yield at, last
        at = last + step


async def export_trace(url: str, query: str, *, start: float, end: float, step: int,
                       out: TextIO, per_second: bool = False, request_seconds: float = 60.0,
                       progress: Callable[[int, int], None] | None = None) -> Exported:
    """Ask `url` for `query` from `start` to `end` every `step` s and write the trace to `out`
    once every chunk has come back well: a failure raises `ExportError` and writes nothing."""
    check_range(start, end, step)
    chunks = list(_chunks(start, end, step))
    values: dict[float, float] = {}
    api = url.rstrip("/") + "/api/v1/query_range"
    limit = aiohttp.ClientTimeout(total=request_seconds)
    async with aiohttp.ClientSession(timeout=limit) as session:
        for done, (first, last) in enumerate(chunks, start=1):
            params = {"query": query, "start": f"{first:.3f}", "end": f"{last:.3f}",
                      "step": str(step)}
            try:
                async with session.get(api, params=params) as response:
                    body = await _json(response)
            except aiohttp.ClientError as exc:
                raise ExportError(f"{api}: {exc}") from None
            except TimeoutError:
                raise ExportError(f"{api}: no answer within {request_seconds:g} s") from None
            values.update(_values(body, step if per_second else 1))
            if progress is not None:
                progress(done, len(chunks))
    if not values:
        raise ExportError(f"the query returned no data from {_iso(start)} to {_iso(end)}: "
                          "check the metric and its labels in Prometheus' own UI")
    return _write(values, out, start=start, end=end, step=step)


async def _json(response: aiohttp.ClientResponse) -> dict[str, Any]:
    try:
        body = await response.json(content_type=None)
    except ValueError:
        raise ExportError(f"{response.url}: HTTP {response.status}, not a Prometheus API answer "
                          "(is --prometheus the server's address?)") from None
    if not isinstance(body, dict):
        raise ExportError(f"{response.url}: HTTP {response.status}, not a Prometheus API answer")
    if body.get("status") != "success":
        raise ExportError(f"prometheus {response.status} {body.get('errorType', 'error')}: "
                          f"{body.get('error', 'no message')}")
    return body


def _values(body: dict[str, Any], factor: int) -> dict[float, float]:
    data = body.get("data") or {}
    if data.get("resultType") != "matrix":
        raise ExportError(f"prometheus answered a {data.get('resultType')}, not a range of "
                          "values: give an instant-vector query, such as sum(increase(...))")
    series = data.get("result") or []
    if len(series) > 1:
        names = ", ".join(_series(s.get("metric") or {}) for s in series[:2])
        more = ", ..." if len(series) > 2 else ""
        raise ExportError(f"the query returned {len(series)} series ({names}{more}): a trace "
                          "is one, so wrap it in sum(...)")
    found: dict[float, float] = {}
    for at, text in (series[0].get("values") or []) if series else []:
        value = float(text)
        if not math.isfinite(value) or value < 0:
            raise ExportError(f"the query's value at {_iso(float(at))} is {text}: a trace "
                              "needs requests >= 0")
        found[float(at)] = value * factor
    return found


def _series(metric: dict[str, str]) -> str:
    """A series as Prometheus writes it: `name{label="value",...}`."""
    labels = ",".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{metric.get('__name__', '')}{{{labels}}}"


def _write(values: dict[float, float], out: TextIO, *, start: float, end: float,
           step: int) -> Exported:
    times = sorted(values)
    origin = times[0]
    steps = int((end - start) // step) + 1
    gaps, first_gap, expected = 0, None, start
    out.write("t_seconds,requests\n")
    for at in [*times, start + steps * step]:  # the step after the last closes a trailing gap
        if at - expected >= step / 2:  # steps before this one had no value
            gaps += 1
            first_gap = expected if first_gap is None else first_gap
        if at in values:
            out.write(f"{round(at - origin)},{values[at]:.10g}\n")
        expected = at + step
    return Exported(rows=len(times), steps=steps, gaps=gaps, first_gap=first_gap,
                    peak=max(values.values()))
