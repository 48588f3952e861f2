"""Checking numbers read from the wire and packing them into signals, for every source.

A source reads a JSON document, checks each number it needs with `checked` (rejecting missing,
non-numeric, negative, non-finite and absurd values with a reason) and turns the per-field
`Reading`s of one read into `Signal`s named `<source>.<field>` that share one `read_at`.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from autoscaler.model import ConsumerStat, Signal

#: No backlog or rate of a Tracardi cluster comes near this; a larger value is a broken reply.
ABSURD_LIMIT = 1e15


@lru_cache(maxsize=65536)
def signal_name(source: str, field: str) -> str:
    """`<source>.<field>`, one string for every read of it: a thousand sources keep minutes of
    reads each, and the store's lookups find the same string first."""
    return f"{source}.{field}"


class RejectedValueError(ValueError):
    """A value that must not reach a policy; `str()` is the reason."""


@dataclass(frozen=True, slots=True)
class Reading:
    """One field of one read: a value, or the reason there is none."""

    value: float | None = None
    error: str | None = None
    consumers: tuple[ConsumerStat, ...] = ()


def checked(raw: object, label: str) -> float:
    """`raw` as a finite, non-negative, sane float; raises `RejectedValueError` otherwise."""
    if raw is None:
        raise RejectedValueError(f"{label} missing")
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise RejectedValueError(f"{label}: expected a number, got {type(raw).__name__}")
    try:
        value = float(raw)
    except OverflowError:  # JSON integers have no size limit; floats end near 1e308
        raise RejectedValueError(f"negative {label} below -1e308" if raw < 0
                                 else f"absurd {label} above 1e308") from None
    if math.isnan(value):
        raise RejectedValueError(f"{label} is NaN")
    if math.isinf(value):
        raise RejectedValueError(f"{label} is {'+' if value > 0 else '-'}Inf")
    if value < 0:
        raise RejectedValueError(f"negative {label} {number_text(value)}")
    if value > ABSURD_LIMIT:
        raise RejectedValueError(f"absurd {label} {number_text(value)}")
    return value


def number_text(value: float) -> str:
    """Compact and unambiguous: `-3`, `0.25`, `1e18`."""
    return f"{value:g}".replace("e+", "e")


def reading(raw: object, label: str) -> Reading:
    try:
        return Reading(value=checked(raw, label))
    except RejectedValueError as exc:
        return Reading(error=str(exc))


def to_signals(source: str, read_at: float, readings: Mapping[str, Reading]) -> tuple[Signal, ...]:
    return tuple(
        Signal(name=signal_name(source, field), value=None if r.error else r.value,
               read_at=read_at, error=r.error, consumers=r.consumers)
        for field, r in readings.items()
    )


def failed(source: str, fields: Iterable[str], read_at: float, reason: str) -> tuple[Signal, ...]:
    """Every field of a read that produced nothing usable, all with the same reason."""
    return tuple(Signal(name=signal_name(source, field), value=None, read_at=read_at,
                        error=reason)
                 for field in fields)


class CounterRate:
    """A rate from a cumulative counter read again and again (Pulsar's `msgInCounter`): its
    increase per second over the last `window_seconds`, measured from the newest earlier read
    at least that old, or from the oldest one kept when none is.

    `update` gives None when there is no such window yet: on the first read, after the counter
    went down (the broker restarted or the topic moved: Pulsar's counters start again at 0),
    when the clock did not advance, and when every earlier read is older than `max_age_seconds`
    (a long gap averages over what is long past).
    """

    def __init__(self, window_seconds: float, *, max_age_seconds: float) -> None:
        self._window = window_seconds
        self._max_age = max_age_seconds
        self._reads: deque[tuple[float, float]] = deque()

    def update(self, at: float, counter: float) -> float | None:
        reads = self._reads
        if reads and (counter < reads[-1][1] or at <= reads[-1][0]):
            reads.clear()
        reads.append((at, counter))
        while len(reads) > 1 and at - reads[0][0] > self._max_age:
            reads.popleft()
        while len(reads) > 2 and at - reads[1][0] >= self._window:
            reads.popleft()
        if len(reads) < 2:
            return None
        since, start = reads[0]
        return (counter - start) / (at - since)
