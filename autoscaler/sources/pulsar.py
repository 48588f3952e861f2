"""Pulsar backlog source: a subscription's backlog, rates and consumers from the admin API.

Reads `GET /admin/v2/persistent/{tenant}/{namespace}/{topic}/stats` (or `/partitioned-stats`,
aggregated over partitions) through the shared `SessionPool` of `http.py`, and yields the signals
`<name>.backlog` (subscription msgBacklogNoDelayed: the backlog without the delayed messages,
which no worker may take before their time; msgBacklog from a broker that does not report it),
`<name>.in_rate`, `<name>.out_rate` (subscription
msgRateOut) and `<name>.consumers` (how many consumers, each with its address and msgRateOut,
which the healer uses to find stuck pods). A missing topic or subscription is an error on the
signals, never a zero.

`in_rate` is the increase of the topic's msgInCounter over the last `rate_seconds` of reads. The
broker's own msgRateIn is an average it recomputes only every `statsUpdateFrequencyInSecs` (60 s
by default), so a rise would show up to a minute late; the counter counts each message as it is
published. msgRateIn stands in on the first read, after the counter starts again (a broker
restart or a topic unload resets it), after a gap longer than `rate_seconds` plus the staleness
limit, and when the reply has no usable counter. A reply whose msgRateIn is rejected is broken:
its error stands, whatever the counter says. `out_rate` is the subscription's msgOutCounter over
the same window, with msgRateOut standing in the same way: the backlog policy learns a worker's
throughput from it, and a minute's average that began before the workers were busy would make
them look slow.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from autoscaler.config import SOURCE_FIELDS, PulsarSource
from autoscaler.model import ConsumerStat, Signal
from autoscaler.sources.http import FetchError, ReadFailedError, Reply, SessionPool
from autoscaler.sources.values import (
    CounterRate,
    Reading,
    RejectedValueError,
    checked,
    failed,
    reading,
    to_signals,
)

FIELDS = SOURCE_FIELDS["pulsar"]
_SHOWN_SUBSCRIPTIONS = 5


@dataclass(frozen=True, slots=True)
class _Stats:
    readings: Mapping[str, Reading]
    in_counter: float | None  # the topic's msgInCounter, when the reply has a sane one
    out_counter: float | None = None  # the subscription's msgOutCounter, likewise


def counter_rate(cfg: PulsarSource) -> CounterRate:
    """The `in_rate` (or `out_rate`) of one source: msgInCounter (msgOutCounter) over
    `rate_seconds`, no earlier read counting after a gap longer than the window plus the
    source's staleness limit."""
    return CounterRate(cfg.rate_seconds, max_age_seconds=cfg.rate_seconds + cfg.staleness_limit())


class PulsarBacklogSource:
    """One topic and subscription of one Pulsar cluster."""

    def __init__(self, name: str, cfg: PulsarSource, *, now: Callable[[], float],
                 session_pool: SessionPool) -> None:
        self.name = name
        self._cfg = cfg
        self._now = now
        self._pool = session_pool
        self._topic = f"persistent://{cfg.tenant}/{cfg.namespace}/{cfg.topic}"
        endpoint = "partitioned-stats" if cfg.partitioned else "stats"
        self._url = (f"{cfg.admin_url}/admin/v2/persistent/{cfg.tenant}/{cfg.namespace}/"
                     f"{cfg.topic}/{endpoint}")
        # Per-partition detail can be megabytes on wide topics; the aggregate is all we read.
        self._params = {"perPartition": "false"} if cfg.partitioned else None
        self._in_rate = counter_rate(cfg)
        self._out_rate = counter_rate(cfg)

    async def read(self) -> Sequence[Signal]:
        cfg = self._cfg
        try:
            fetched = await self._pool.fetch(self._url, auth=cfg.auth, tls=cfg.tls,
                                             timeout_seconds=cfg.timeout_seconds,
                                             params=self._params, parse=self._parse)
        except ReadFailedError as exc:
            return failed(self.name, FIELDS, self._now(), str(exc))
        now = self._now()
        stats = fetched.value
        readings = stats.readings
        # A reply whose msgRateIn (msgRateOut) is rejected is a broken one: its error stands.
        for field, counter, rates in (("in_rate", stats.in_counter, self._in_rate),
                                      ("out_rate", stats.out_counter, self._out_rate)):
            if counter is not None and readings[field].error is None:
                rate = rates.update(now, counter)
                if rate is not None:
                    readings = {**readings, field: Reading(value=rate)}
        return to_signals(self.name, now, readings)

    async def close(self) -> None:
        """Nothing to release: the session pool belongs to whoever built this source."""

    def _parse(self, reply: Reply) -> _Stats:
        if reply.status == 404:
            reason = reply.server_message()
            extra = f" ({reason})" if reason and reason != "Topic not found" else ""
            raise FetchError(f"topic not found: {self._topic}{extra}")
        if reply.status != 200:
            raise FetchError(reply.error_detail())
        stats = reply.json()
        if not isinstance(stats, dict):
            raise FetchError("stats: expected a JSON object")
        in_rate = reading(stats.get("msgRateIn"), "in_rate")
        in_counter = reading(stats.get("msgInCounter"), "in_counter").value
        subscription = self._subscription(stats)
        if isinstance(subscription, str):
            missing = Reading(error=subscription)
            return _Stats({"backlog": missing, "in_rate": in_rate, "out_rate": missing,
                           "consumers": missing}, in_counter)
        return _Stats({
            "backlog": reading(subscription.get("msgBacklogNoDelayed",
                                                subscription.get("msgBacklog")), "backlog"),
            "in_rate": in_rate,
            "out_rate": reading(subscription.get("msgRateOut"), "out_rate"),
            "consumers": _consumers(subscription.get("consumers")),
        }, in_counter, reading(subscription.get("msgOutCounter"), "out_counter").value)

    def _subscription(self, stats: dict[str, Any]) -> dict[str, Any] | str:
        """The configured subscription's stats, or the reason it cannot be had."""
        subscriptions = stats.get("subscriptions")
        if not isinstance(subscriptions, dict):
            return "stats: no subscriptions object"
        wanted = self._cfg.subscription
        found = subscriptions.get(wanted)
        if isinstance(found, dict):
            return found
        if found is not None:
            return f"subscription {wanted!r}: expected a JSON object"
        names = sorted(subscriptions)
        shown = ", ".join(names[:_SHOWN_SUBSCRIPTIONS])
        if len(names) > _SHOWN_SUBSCRIPTIONS:
            shown += ", ..."
        return f"subscription {wanted!r} not found (topic has: {shown or 'none'})"


def _consumers(raw: object) -> Reading:
    """Consumers merged by name and address: partitioned stats list one entry per partition."""
    if not isinstance(raw, list):
        return Reading(error="consumers: expected a list")
    rates: dict[tuple[str, str], float] = {}
    try:
        for entry in raw:
            if not isinstance(entry, dict):
                raise RejectedValueError("consumers: expected objects")
            key = (str(entry.get("consumerName") or ""), str(entry.get("address") or ""))
            rates[key] = rates.get(key, 0.0) + checked(entry.get("msgRateOut"),
                                                       "consumer out_rate")
    except RejectedValueError as exc:
        return Reading(error=str(exc))
    stats = tuple(ConsumerStat(name=name, address=address, msg_rate_out=rate)
                  for (name, address), rate in rates.items())
    return Reading(value=float(len(stats)), consumers=stats)
