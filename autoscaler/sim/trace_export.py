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

The requests go through the sources' own HTTP plumbing (`sources/http.py`): a configured
Prometheus source's auth and TLS apply, and no secret reaches an error message.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from autoscaler.config import PrometheusSource
from autoscaler.sim.traces import MAX_TRACE_SECONDS
from autoscaler.sources.http import ReadFailedError, Reply, SessionPool
from autoscaler.sources.prometheus import result_of
from autoscaler.sources.values import RejectedValueError

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


#: The last second a time can name (9999-12-31T23:59:59Z), as Prometheus' own range ends.
LAST_TIME = 253_402_300_799


def parse_time(text: str) -> float:
    """Epoch seconds from RFC 3339 (`2026-12-01T00:00:00Z`) or a number of epoch seconds."""
    what = (f"{text!r} is not a time: give RFC 3339 (2026-12-01T00:00:00Z) or epoch seconds "
            "from 0 to 9999-12-31")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not 0 <= seconds <= LAST_TIME:  # NaN too
            raise ExportError(what)
        return seconds
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ExportError(what) from None
    if at.tzinfo is None:
        raise ExportError(f"{text!r} has no time zone: add Z for UTC, or an offset (+01:00)")
    return at.timestamp()


def check_range(start: float, end: float, step: int) -> None:
    if step < 1:
        raise ExportError(f"--step must be at least 1 s, got {step}")
    if end <= start:
        raise ExportError(f"--end ({_iso(end)}) must come after --start ({_iso(start)})")
    if end - start < step:
        raise ExportError(f"{end - start:g} s from --start to --end is less than one --step "
                          f"({step} s): a trace needs two values at least")
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


async def export_trace(source: PrometheusSource, query: str, *, start: float, end: float,
                       step: int, out: TextIO, per_second: bool = False,
                       request_seconds: float = 60.0,
                       progress: Callable[[int, int], None] | None = None) -> Exported:
    """Ask `source`'s Prometheus (its URL, auth and TLS) for `query` from `start` to `end` every
    `step` s and write the trace to `out` once every chunk has come back well: a failure raises
    `ExportError` and writes nothing."""
    check_range(start, end, step)
    chunks = list(_chunks(start, end, step))
    values: dict[float, float] = {}
    api = f"{source.url}/api/v1/query_range"
    parse = functools.partial(_values, factor=step if per_second else 1)
    pool = SessionPool()
    try:
        for done, (first, last) in enumerate(chunks, start=1):
            params = {"query": query, "start": f"{first:.3f}", "end": f"{last:.3f}",
                      "step": str(step), "timeout": f"{round(request_seconds * 1000)}ms"}
            try:
                fetched = await pool.fetch(api, auth=source.auth, tls=source.tls,
                                           timeout_seconds=request_seconds, params=params,
                                           parse=parse)
            except ReadFailedError as exc:
                raise ExportError(f"{api}: {exc}") from None
            values.update(fetched.value)
            if progress is not None:
                progress(done, len(chunks))
    finally:
        await pool.close()
    if not values:
        raise ExportError(f"the query returned no data from {_iso(start)} to {_iso(end)}: "
                          "check the metric and its labels in Prometheus' own UI")
    return _write(values, out, start=start, end=end, step=step)


def _values(reply: Reply, *, factor: int) -> dict[float, float]:
    """Each step's value of a query_range reply, times `factor`; `RejectedValueError` for what
    is not one series of finite values >= 0 (Prometheus' own errors come through `result_of`)."""
    kind, result = result_of(reply)
    if kind != "matrix" or not isinstance(result, list):
        raise RejectedValueError(f"prometheus answered a {kind}, not a range of values: give "
                                 "an instant-vector query, such as sum(increase(...))")
    if len(result) > 1:
        names = ", ".join(_series(s.get("metric") or {}) for s in result[:2])
        more = ", ..." if len(result) > 2 else ""
        raise RejectedValueError(f"the query returned {len(result)} series ({names}{more}): a "
                                 "trace is one, so wrap it in sum(...)")
    found: dict[float, float] = {}
    for at, text in result[0].get("values") or [] if result else []:
        value = float(text) * factor
        if not math.isfinite(value) or value < 0:
            times = f" x {factor} s" if factor != 1 else ""
            raise RejectedValueError(f"the query's value at {_iso(float(at))} is {text}{times}: "
                                     "a trace needs finite requests >= 0")
        found[float(at)] = value
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
