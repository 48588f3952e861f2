"""Request-rate traces: CSV files (`t_seconds,requests`) and the built-in generator.

A trace becomes a per-second demand in requests/s. The interval is inferred from the first
rows; a 60 s trace holds each minute's rate for its 60 seconds. The generator makes a diurnal
cycle with a flash crowd so `demo` and `simulate` work from a bare clone.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from autoscaler.config import ConfigIssue


class TraceError(ValueError):
    """The file is not a usable trace; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class Trace:
    name: str
    rates: tuple[float, ...]  # requests/s, one per second from t = 0
    interval: int

    @property
    def duration(self) -> int:
        return len(self.rates)

    def scaled(self, factor: float) -> Trace:
        return Trace(self.name, tuple(r * factor for r in self.rates), self.interval)

    def busiest_hour_start(self) -> int:
        """Start (s) of the 3600 s window with the most requests (the whole trace if shorter)."""
        window = min(3600, self.duration)
        total = sum(self.rates[:window])
        best, best_at = total, 0
        for t in range(window, self.duration):
            total += self.rates[t] - self.rates[t - window]
            if total > best:
                best, best_at = total, t - window + 1
        return best_at


#: The longest trace replayed: a rate per second is kept for every second of it.
MAX_TRACE_SECONDS = 31 * 86_400


def load_trace(path: str | Path) -> Trace:
    if not str(path):  # an unset $VARIABLE, most likely: not the current folder
        raise TraceError("an empty path: name a CSV of t_seconds,requests")
    p = Path(path)
    try:
        # utf-8-sig: a spreadsheet's "CSV UTF-8" begins with a byte-order mark
        handle = p.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise TraceError(f"{p}: {exc.strerror or exc}") from exc
    times: list[int] = []
    counts: list[float] = []
    with handle:
        try:
            _read_rows(p, csv.reader(handle), times, counts)
        except UnicodeDecodeError as exc:
            raise TraceError(f"{p}: not UTF-8 text (byte {exc.start} of a read block: "
                             f"{exc.reason}); save it as a UTF-8 CSV") from None
    if len(times) < 2:
        raise TraceError(f"{p}: needs at least two rows")
    interval = min(b - a for a, b in itertools.pairwise(times))
    if times[-1] + interval - times[0] > MAX_TRACE_SECONDS:  # the last row lasts an interval
        raise TraceError(
            f"{p}: its last row lasts until {(times[-1] + interval - times[0]) / 86_400:.0f} "
            f"days after the first (a row lasts the trace's {interval} s interval); a trace "
            f"spans at most {MAX_TRACE_SECONDS // 86_400} days")
    rates: list[float] = []
    for i, (t, n) in enumerate(zip(times, counts, strict=True)):
        end = times[i + 1] if i + 1 < len(times) else t + interval
        rates.extend([n / interval] * (end - t))
    return Trace(p.stem, tuple(rates), interval)


def _read_rows(p: Path, reader: Iterator[list[str]], times: list[int],
               counts: list[float]) -> None:
    """The rows after the header into `times` and `counts`; the first fault as a TraceError
    that names its line."""
    header = next(reader, None)
    if header is None or [h.strip() for h in header[:2]] != ["t_seconds", "requests"]:
        raise TraceError(str(ConfigIssue(str(p), 1, "header",
                                         "expected the header 't_seconds,requests'")))
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        try:
            at, n = float(row[0]), float(row[1])
        except (ValueError, IndexError):
            raise TraceError(str(ConfigIssue(str(p), lineno, "row",
                                             f"expected two numbers, got {row!r}"))) from None
        if not math.isfinite(n) or n < 0:
            raise TraceError(str(ConfigIssue(str(p), lineno, "requests",
                                             f"must be a finite number >= 0, got {n}")))
        if not math.isfinite(at) or at != int(at):
            raise TraceError(str(ConfigIssue(str(p), lineno, "t_seconds",
                                             f"must be whole seconds, got {row[0].strip()}")))
        t = int(at)
        if times and t <= times[-1]:
            raise TraceError(str(ConfigIssue(str(p), lineno, "t_seconds",
                                             "must increase from row to row")))
        if times and t - times[0] > MAX_TRACE_SECONDS:
            raise TraceError(str(ConfigIssue(
                str(p), lineno, "t_seconds",
                f"{t} is {(t - times[0]) / 86_400:.0f} days after the first row; a trace "
                f"spans at most {MAX_TRACE_SECONDS // 86_400} days")))
        times.append(t)
        counts.append(n)


def generated_trace(*, hours: float = 6.0, seed: int = 1, base: float = 100.0) -> Trace:
    """A diurnal cycle (compressed into `hours`) with noise and one flash crowd (~4x, 20 min)."""
    rng = random.Random(seed)
    duration = int(hours * 3600)
    crowd_at = int(duration * 0.6)
    rates = []
    for t in range(duration):
        phase = 2 * math.pi * t / duration
        diurnal = base * (1.0 + 0.6 * math.sin(phase - math.pi / 2) * -1)
        crowd = 0.0
        if crowd_at <= t < crowd_at + 1200:
            rise = min(1.0, (t - crowd_at) / 300)
            crowd = 3.0 * base * rise * math.exp(-(t - crowd_at) / 900)
        rates.append(max(0.0, (diurnal + crowd) * rng.uniform(0.9, 1.1)))
    return Trace("generated", tuple(rates), 1)


def shared_traces_dir() -> Path:
    """`../shared/traces` beside the checkout, or $SHARED_DIR/traces."""
    shared = os.environ.get("SHARED_DIR")
    if shared:
        return Path(shared) / "traces"
    return Path(__file__).resolve().parents[3] / "shared" / "traces"


def default_trace_paths() -> list[Path]:
    folder = shared_traces_dir()
    return sorted(folder.glob("*.csv")) if folder.is_dir() else []
