"""Prometheus source: one PromQL instant query, read as the signal `<name>.value`.

Reads `GET {url}/api/v1/query?query=...` through the shared `SessionPool` of `http.py`. The
expression must give a scalar or a vector of exactly one sample, with a finite, non-negative
value no larger than `values.ABSURD_LIMIT`; anything else (empty result, several series, NaN,
±Inf, a negative or absurd value) is a distinct signal error, and Prometheus' own error bodies
are passed on with their `errorType` and `error`.
Typical use: the ingress request rate that drives the collector API's `request-rate` policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from autoscaler.config import SOURCE_FIELDS
from autoscaler.config import PrometheusSource as PrometheusSettings
from autoscaler.model import Signal
from autoscaler.sources.http import FetchError, ReadFailedError, Reply, SessionPool, shorten
from autoscaler.sources.values import ABSURD_LIMIT, RejectedValueError, failed, number_text

FIELDS = SOURCE_FIELDS["prometheus"]


class PrometheusSource:
    """One instant query against one Prometheus (or a compatible API such as Thanos)."""

    def __init__(self, name: str, cfg: PrometheusSettings, *, now: Callable[[], float],
                 session_pool: SessionPool) -> None:
        self.name = name
        self._cfg = cfg
        self._now = now
        self._pool = session_pool
        self._url = f"{cfg.url}/api/v1/query"
        # Prometheus aborts the evaluation itself at our deadline instead of computing on for
        # a client that has gone. Whole milliseconds: Prometheus rejects durations like "2.0s".
        self._params = {"query": cfg.query, "timeout": f"{round(cfg.timeout_seconds * 1000)}ms"}

    async def read(self) -> Sequence[Signal]:
        cfg = self._cfg
        try:
            fetched = await self._pool.fetch(self._url, auth=cfg.auth, tls=cfg.tls,
                                             timeout_seconds=cfg.timeout_seconds,
                                             params=self._params, parse=parse_query_reply)
        except ReadFailedError as exc:
            return failed(self.name, FIELDS, self._now(), str(exc))
        return (Signal(name=f"{self.name}.value", value=fetched.value, read_at=self._now()),)

    async def close(self) -> None:
        """Nothing to release: the session pool belongs to whoever built this source."""


def parse_query_reply(reply: Reply) -> float:
    """The single value of an instant-query reply; raises `RejectedValueError` or `FetchError`."""
    body: Any
    try:
        body = reply.json()
    except FetchError:
        body = None
    if not isinstance(body, dict):
        # Proxies in front of Prometheus answer errors with HTML; the status is all there is.
        raise FetchError("invalid JSON" if reply.status == 200 else f"HTTP {reply.status}")
    if body.get("status") == "error" or reply.status != 200:
        kind = body.get("errorType") or "error"
        message = shorten(str(body.get("error") or "no message"))
        raise RejectedValueError(f"prometheus {reply.status} {kind}: {message}")
    data = body.get("data")
    if body.get("status") != "success" or not isinstance(data, dict):
        raise RejectedValueError("prometheus: reply has no data")
    kind = data.get("resultType")
    result = data.get("result")
    if kind == "scalar":
        return _sample_value(result)
    if kind != "vector":
        raise RejectedValueError(f"prometheus: {kind} result, expected a scalar or a vector")
    # Prometheus 2.0 sent `null` for an empty vector.
    if not result:
        raise RejectedValueError("prometheus: empty result")
    if not isinstance(result, list):
        raise RejectedValueError("prometheus: vector result is not a list")
    if len(result) > 1:
        raise RejectedValueError(f"prometheus: {len(result)} series, expected 1")
    sample = result[0]
    if not isinstance(sample, dict):
        raise RejectedValueError("prometheus: malformed sample")
    if "value" not in sample and "histogram" in sample:
        raise RejectedValueError("prometheus: native histogram sample, expected a float")
    return _sample_value(sample.get("value"))


def _sample_value(pair: object) -> float:
    """`[<unix time>, "<value>"]` -> a finite, non-negative float."""
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        raise RejectedValueError("prometheus: malformed sample")
    try:
        value = float(pair[1])
    except ValueError:
        raise RejectedValueError(f"prometheus: unparsable value {shorten(pair[1], 40)!r}") from None
    if math.isnan(value):
        raise RejectedValueError("prometheus: NaN")
    if math.isinf(value):
        raise RejectedValueError(f"prometheus: {'+' if value > 0 else '-'}Inf")
    if value < 0:
        raise RejectedValueError(f"prometheus: negative value {number_text(value)}")
    if value > ABSURD_LIMIT:
        raise RejectedValueError(f"prometheus: absurd value {number_text(value)}")
    return value
