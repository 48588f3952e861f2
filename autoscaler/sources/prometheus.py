"""Prometheus source: one PromQL instant query, read as the signal `<name>.value`.

Reads `GET {url}/api/v1/query?query=...` through the shared `SessionPool` of `http.py`. The
expression must give a scalar or a vector of exactly one sample, with a finite, non-negative
value no larger than `values.ABSURD_LIMIT`; anything else (empty result, several series, NaN,
±Inf, a negative or absurd value) is a distinct signal error, and Prometheus' own error bodies
are passed on with their `errorType` and `error`.
Typical use: the ingress request rate that drives the collector API's `request-rate` policy.

Queries to one Prometheus (same URL, credentials, TLS and timeout) are asked together when
`build_readers` gives the sources a shared `PrometheusBatches`: the reads that arrive within
`BATCH_WAIT_SECONDS` of each other become one POSTed query, each member wrapped as
`label_replace(<query>, "tracardi_autoscaler_member", "<i>", "", "")` and joined with `or`, and
every member is judged on its own series exactly as a lone query would be. A query joins the
batch only once a lone read of it has given a one-sample vector (scalars cannot be labelled). When
Prometheus refuses a batch, its members are read alone that round: a member whose lone read
fails leaves the batch until it reads well again, and if every lone read succeeds the batch
itself was the problem, so that Prometheus is asked one query at a time until the next reload.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from autoscaler.config import SOURCE_FIELDS, SecretRefs, TlsSettings
from autoscaler.config import PrometheusSource as PrometheusSettings
from autoscaler.model import Signal
from autoscaler.sources.http import FetchError, ReadFailedError, Reply, SessionPool, shorten
from autoscaler.sources.values import (
    ABSURD_LIMIT,
    RejectedValueError,
    failed,
    number_text,
    signal_name,
)

FIELDS = SOURCE_FIELDS["prometheus"]
#: How long the first read of a round waits for the others to join its batch.
BATCH_WAIT_SECONDS = 0.05
MEMBER_LABEL = "tracardi_autoscaler_member"

log = structlog.get_logger(__name__)


class PrometheusSource:
    """One instant query against one Prometheus (or a compatible API such as Thanos)."""

    def __init__(self, name: str, cfg: PrometheusSettings, *, now: Callable[[], float],
                 session_pool: SessionPool, batches: PrometheusBatches | None = None) -> None:
        self.name = name
        self._cfg = cfg
        self._now = now
        self._pool = session_pool
        self._batch = batches.batch(cfg) if batches is not None else None

    async def read(self) -> Sequence[Signal]:
        cfg = self._cfg
        try:
            if self._batch is not None:
                value = await self._batch.value(cfg.query)
            else:
                value, _ = await query_alone(self._pool, cfg, cfg.query)
        except ReadFailedError as exc:
            return failed(self.name, FIELDS, self._now(), str(exc))
        return (Signal(name=signal_name(self.name, "value"), value=value, read_at=self._now()),)

    async def close(self) -> None:
        """Nothing to release: the session pool belongs to whoever built this source."""


BatchKey = tuple[str, SecretRefs, TlsSettings, float]
Outcome = float | ReadFailedError


class PrometheusBatches:
    """The batches of one set of readers, one per Prometheus (URL, credentials, TLS, timeout)."""

    def __init__(self, pool: SessionPool) -> None:
        self._pool = pool
        self._batches: dict[BatchKey, QueryBatch] = {}

    def batch(self, cfg: PrometheusSettings) -> QueryBatch:
        key: BatchKey = (cfg.url, cfg.auth, cfg.tls, cfg.timeout_seconds)
        if key not in self._batches:
            self._batches[key] = QueryBatch(self._pool, cfg)
        return self._batches[key]


class QueryBatch:
    """Reads of one Prometheus that arrive together, asked as one query (see the module doc)."""

    def __init__(self, pool: SessionPool, cfg: PrometheusSettings) -> None:
        self._pool = pool
        self._cfg = cfg
        self._waiting: dict[str, list[asyncio.Future[float]]] = {}
        self._round: asyncio.Task[None] | None = None
        self._asking: set[asyncio.Task[None]] = set()  # held: the loop keeps only weak refs
        self._joinable: set[str] = set()
        self._off = False

    async def value(self, query: str) -> float:
        """The query's value; raises `ReadFailedError` as a lone read would."""
        if self._off or query not in self._joinable:
            return await self._alone(query)
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(query, []).append(future)
        if self._round is None:
            self._round = asyncio.create_task(self._ask())
            self._asking.add(self._round)
            self._round.add_done_callback(self._asking.discard)
        return await future

    async def _alone(self, query: str) -> float:
        try:
            value, kind = await query_alone(self._pool, self._cfg, query)
        except ReadFailedError:
            self._joinable.discard(query)
            raise
        if kind == "vector":
            self._joinable.add(query)
        return value

    async def _ask(self) -> None:
        """One round: wait for the others, ask, and hand each waiting read its outcome."""
        await asyncio.sleep(BATCH_WAIT_SECONDS)
        waiting, self._waiting, self._round = self._waiting, {}, None
        queries = [q for q, futures in waiting.items() if not all(f.done() for f in futures)]
        if not queries:
            return
        try:
            outcomes = await self._outcomes(queries)
        except Exception as exc:  # never leave a read waiting on a round that broke
            outcomes = {q: ReadFailedError(f"unexpected {type(exc).__name__}: {exc}")
                        for q in queries}
        for query in queries:
            outcome = outcomes[query]
            for future in waiting[query]:
                if future.done():
                    continue
                if isinstance(outcome, ReadFailedError):
                    future.set_exception(ReadFailedError(str(outcome)))
                else:
                    future.set_result(outcome)

    async def _outcomes(self, queries: list[str]) -> dict[str, Outcome]:
        if len(queries) == 1:
            return {queries[0]: await _outcome(self._alone(queries[0]))}
        cfg = self._cfg
        joined = " or\n".join(f'label_replace(\n{q}\n, "{MEMBER_LABEL}", "{i}", "", "")'
                              for i, q in enumerate(queries))
        try:
            fetched = await self._pool.fetch(
                f"{cfg.url}/api/v1/query", auth=cfg.auth, tls=cfg.tls,
                timeout_seconds=cfg.timeout_seconds, form=_query_params(joined, cfg),
                parse=lambda reply: _parse_batch_reply(reply, len(queries)))
        except ReadFailedError as exc:
            # The request itself failed (no reply, or no usable one): each lone query would too.
            return dict.fromkeys(queries, exc)
        if isinstance(fetched.value, str):
            return await self._refused(queries, fetched.value)
        return {q: fetched.value[i] for i, q in enumerate(queries)}

    async def _refused(self, queries: list[str], reason: str) -> dict[str, Outcome]:
        """Prometheus refused the batch: read each member alone this round."""
        alone = await asyncio.gather(*(_outcome(self._alone(q)) for q in queries))
        outcomes = dict(zip(queries, alone, strict=True))
        if not any(isinstance(o, ReadFailedError) for o in alone):
            self._off = True
            log.warning("prometheus_batch_off", url=self._cfg.url, queries=len(queries),
                        reason=reason)
        return outcomes


async def _outcome(read: Awaitable[float]) -> Outcome:
    try:
        value = await read
    except ReadFailedError as exc:
        return exc
    return value


def _query_params(query: str, cfg: PrometheusSettings) -> dict[str, str]:
    # Prometheus aborts the evaluation itself at our deadline instead of computing on for
    # a client that has gone. Whole milliseconds: Prometheus rejects durations like "2.0s".
    return {"query": query, "timeout": f"{round(cfg.timeout_seconds * 1000)}ms"}


async def query_alone(pool: SessionPool, cfg: PrometheusSettings,
                      query: str) -> tuple[float, str]:
    """One instant query by GET: (its value, its result type); raises `ReadFailedError`."""
    fetched = await pool.fetch(f"{cfg.url}/api/v1/query", auth=cfg.auth, tls=cfg.tls,
                               timeout_seconds=cfg.timeout_seconds,
                               params=_query_params(query, cfg), parse=_parse_typed)
    return fetched.value


def _parse_batch_reply(reply: Reply, members: int) -> dict[int, Outcome] | str:
    """Each member's outcome from its own series, or why Prometheus refused the whole batch."""
    try:
        kind, result = result_of(reply)
    except RejectedValueError as exc:
        return str(exc)
    if kind != "vector" or not isinstance(result, list | None):
        return f"prometheus: {kind} result for a batch, expected a vector"
    series: dict[int, list[Any]] = {i: [] for i in range(members)}
    for sample in result or []:
        labels = sample.get("metric") if isinstance(sample, dict) else None
        member = labels.get(MEMBER_LABEL) if isinstance(labels, Mapping) else None
        if not isinstance(member, str) or not member.isdigit() or int(member) not in series:
            return "prometheus: a batch sample without its member label"
        series[int(member)].append(sample)
    outcomes: dict[int, Outcome] = {}
    for i, samples in series.items():
        try:
            outcomes[i] = _one_sample(samples)
        except RejectedValueError as exc:
            outcomes[i] = ReadFailedError(str(exc))
    return outcomes


def parse_query_reply(reply: Reply) -> float:
    """The single value of an instant-query reply; raises `RejectedValueError` or `FetchError`."""
    return _parse_typed(reply)[0]


def _parse_typed(reply: Reply) -> tuple[float, str]:
    """(value, result type) of an instant-query reply."""
    kind, result = result_of(reply)
    if kind == "scalar":
        return _sample_value(result), kind
    if kind != "vector":
        raise RejectedValueError(f"prometheus: {kind} result, expected a scalar or a vector")
    return _one_sample(result), kind


def result_of(reply: Reply) -> tuple[object, object]:
    """(resultType, result) of a successful reply; Prometheus' own errors are passed on."""
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
    return data.get("resultType"), data.get("result")


def _one_sample(result: object) -> float:
    """The value of a vector result that must hold exactly one float sample."""
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
