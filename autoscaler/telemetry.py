"""Prometheus metric definitions and the structlog set-up.

Every daemon owns a `Telemetry` with its own registry, so several daemons (a benchmark, a test
with two replicas) can live in one process. Names carry the `tracardi_autoscaler_` prefix; labels
are `namespace`, `workload`, `dependency`, `reason` and a few more where DESIGN.md asks for them.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections import Counter as Tally
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO, cast

import structlog
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from autoscaler.engine.healing import BreakerState, HealingPlan, Symptom
from autoscaler.model import Decision, DependencyState, Health, Signal
from autoscaler.ports import WriteOutcome

PREFIX = "tracardi_autoscaler_"
WL = ("namespace", "workload")
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30)
#: The E12 series (each bound ~1.2x the last), one decade after another.
E12 = (1.0, 1.2, 1.5, 1.8, 2.2, 2.7, 3.3, 3.9, 4.7, 5.6, 6.8, 8.2)
#: Fine from 0.1 to 100 ms, where a pass over ten to thousands of workloads lands, so that its
#: quantiles are within ~10 % (not guesses across a bucket 1.5x wide, whose edges at N and 10N
#: are 10x apart whatever the passes took).
PASS_BUCKETS = (*(round(m * 10.0 ** e, 6) for e in (-4, -3, -2) for m in E12),
                0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


# No `_created` series: they double every counter's output (a scrape at a thousand workloads
# was 40,000 lines, 10,000 of them `_created`) and neither the dashboard nor an alert reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]  # (untyped upstream)


def reason_code(reason: str) -> str:
    """The low-cardinality head of a reason: `DependencyDown:es` -> `DependencyDown`."""
    head = reason.split(":", 1)[0].split(" ", 1)[0]
    return head if head.isidentifier() else "Policy"


class LastReads:
    """Each signal's last valid value and the wall time it was read at, exported when scraped.

    A read updates a dict entry instead of two gauges: a thousand sources make thousands of
    reads a minute, and a scrape comes every 15 s or so.
    """

    def __init__(self) -> None:
        self.last: dict[str, tuple[float, float]] = {}

    def describe(self) -> list[Metric]:
        return list(self._families())

    def collect(self) -> Iterator[Metric]:
        value, read_at = self._families()
        # A copy: the scrape renders in a thread while reads go on adding signals.
        for name, (v, wall) in list(self.last.items()):
            value.add_metric((name,), v)
            read_at.add_metric((name,), wall)
        yield value
        yield read_at

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily(PREFIX + "signal_value", "Last valid value of a signal",
                                  labels=("signal",)),
                GaugeMetricFamily(PREFIX + "signal_read_timestamp_seconds",
                                  "Wall time of the last valid read of a signal",
                                  labels=("signal",)))


class SkipCounts:
    """Evaluations skipped per workload (the last one was settled and no input changed since),
    exported when scraped: on a tick nearly every workload is skipped, and a dict entry costs
    less than a labelled counter's lookup and locked update."""

    def __init__(self) -> None:
        self.count: Tally[tuple[str, str]] = Tally()
        #: Skips counted elsewhere and not yet added here (the daemon's quiet workloads). A
        #: move from there to `count` holds `lock`, so a scrape sees each skip once.
        self.pending: Callable[[], list[tuple[tuple[str, str], int]]] = list
        self.lock = threading.Lock()

    def describe(self) -> list[Metric]:
        return [self._family()]

    def collect(self) -> Iterator[Metric]:
        family = self._family()
        with self.lock:
            counts = Tally(dict(self.count))  # a copy, as in LastReads
            for labels, n in self.pending():
                counts[labels] += n
        for labels, n in counts.items():
            family.add_metric(labels, n)
        yield family

    @staticmethod
    def _family() -> CounterMetricFamily:
        return CounterMetricFamily(
            PREFIX + "evaluations_skipped",
            "Evaluations skipped: the last one was settled and no input changed since",
            labels=WL)


class Telemetry:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry(auto_describe=True)
        p = PREFIX
        self.current = Gauge(p + "current_replicas", "Replicas of the Deployment as last read",
                             WL, registry=r)
        self.ready = Gauge(p + "ready_replicas", "Ready pods of the workload", WL, registry=r)
        self.desired = Gauge(p + "desired_replicas", "Replicas decided by the last evaluation",
                             WL, registry=r)
        self.min = Gauge(p + "min_replicas", "Configured minimum", WL, registry=r)
        self.max = Gauge(p + "max_replicas", "Configured maximum", WL, registry=r)
        self.recommended = Gauge(p + "recommended_replicas", "Raw recommendation per policy",
                                 (*WL, "policy"), registry=r)
        self.capacity = Gauge(p + "replica_capacity", "What one replica serves per second as "
                              "the policy sized for it: learned, or configured",
                              (*WL, "policy"), registry=r)
        self.capacity_configured = Gauge(p + "replica_capacity_configured",
                                         "What one replica serves per second, as configured",
                                         (*WL, "policy"), registry=r)
        self.decisions = Counter(p + "decisions", "Evaluations by outcome and reason",
                                 (*WL, "action", "reason", "leader"), registry=r)
        self.frozen = Gauge(p + "frozen", "1 while the workload is frozen by the gate", WL,
                            registry=r)
        self.paused = Gauge(p + "paused", "1 while the workload carries the pause annotation",
                            WL, registry=r)
        self.dependency_up = Gauge(p + "dependency_up", "1 up, 0 down or unknown",
                                   ("dependency",), registry=r)
        self.dependency_reason = Gauge(p + "dependency_last_reason_info",
                                       "The reason of the dependency's last verdict",
                                       ("dependency", "reason"), registry=r)
        self._last_reason: dict[str, str] = {}
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}
        #: What each gauge set through `_set` holds now.
        self._values: dict[tuple[int, tuple[str, ...]], float] = {}
        self.last_reads = LastReads()
        r.register(self.last_reads)
        self.signal_errors = Counter(p + "signal_errors", "Failed reads by signal and reason",
                                     ("signal", "reason"), registry=r)
        self.skips = SkipCounts()
        r.register(self.skips)
        self.evaluation_seconds = Histogram(p + "evaluation_seconds",
                                            "Time to evaluate one workload", registry=r,
                                            buckets=LATENCY_BUCKETS)
        self.evaluation_pass_seconds = Histogram(
            p + "evaluation_pass_seconds",
            "Time of one evaluation pass over all workloads (the periodic tick), reads included",
            registry=r, buckets=PASS_BUCKETS)
        self.reaction_seconds = Histogram(p + "reaction_seconds",
                                          "From the signal read to the scale request",
                                          registry=r, buckets=LATENCY_BUCKETS)
        self.scale_writes = Counter(p + "scale_writes", "Scale requests by outcome",
                                    (*WL, "outcome"), registry=r)
        self.writes_withheld = Counter(
            p + "writes_withheld",
            "Scale decisions not written because what they rested on changed before the write "
            "(decision_changed, stopping)", (*WL, "reason"), registry=r)
        self.workload_read_errors = Counter(
            p + "workload_read_errors",
            "Failed reads of a workload's Deployment and pods, by reason (the workload holds)",
            (*WL, "reason"), registry=r)
        self.workload_read_failing = Gauge(
            p + "workload_read_failing",
            "1 while the last read of the workload's Deployment failed (a Deployment renamed "
            "or deleted, a permission missing): it is neither scaled nor healed", WL,
            registry=r)
        self.restarts = Counter(p + "restarts", "Pod restarts by reason", (*WL, "reason"),
                                registry=r)
        self.unhealthy_pods = Gauge(p + "unhealthy_pods", "Pods judged unhealthy by reason",
                                    (*WL, "reason"), registry=r)
        self.breaker_open = Gauge(p + "breaker_open", "1 while healing is stopped by the breaker",
                                  WL, registry=r)
        self.leader = Gauge(p + "leader", "1 while this replica holds the lease", registry=r)
        self.config_reloads = Counter(p + "config_reloads", "Config reloads by outcome",
                                      ("outcome",), registry=r)
        for outcome in ("ok", "failed"):
            self.config_reloads.labels(outcome)
        self.config_last_reload_ok = Gauge(p + "config_last_reload_success",
                                           "1 if the last config (re)load succeeded",
                                           registry=r)
        self.replicas_changed_elsewhere = Counter(
            p + "replicas_changed_elsewhere",
            "Times another writer changed the replicas this daemon had set", WL, registry=r)
        self.conflicts = Gauge(p + "conflicting_autoscaler",
                               "1 while another HPA or ScaledObject targets the workload",
                               WL, registry=r)
        self.access_missing = Gauge(
            p + "access_missing",
            "1 while the apiserver says the daemon may not make this call (its Role lacks it)",
            ("namespace", "verb", "group", "resource"), registry=r)
        self._access: set[tuple[str, str, str, str]] = set()

    def set_access_missing(self, lacking: Mapping[tuple[str, str, str, str], bool]) -> None:
        """The last access check: each permission the config needs (namespace, verb, group,
        resource), 1 if missing; permissions no longer needed after a reload are dropped."""
        for labels in self._access - lacking.keys():
            self.access_missing.remove(*labels)
        for labels, missing in lacking.items():
            self.access_missing.labels(*labels).set(1 if missing else 0)
        self._access = set(lacking)

    def init_workload(self, namespace: str, workload: str, *, minimum: int,
                      maximum: int) -> None:
        """Create every per-workload series at start-up, so dashboards and alerts see zeros
        rather than nothing before the first restart or breaker."""
        self.min.labels(namespace, workload).set(minimum)
        self.max.labels(namespace, workload).set(maximum)
        self._set(self.breaker_open, (namespace, workload), 0)
        # From 0 (the daemon sets it); every outcome from 0 too, so that an alert on
        # increase() sees the first failed write.
        self.workload_read_failing.labels(namespace, workload)
        for outcome in WriteOutcome:
            self.scale_writes.labels(namespace, workload, outcome.value)
        for symptom in Symptom:
            self._set(self.unhealthy_pods, (namespace, workload, symptom.value), 0)
            self.restarts.labels(namespace, workload, symptom.value)

    def _child(self, metric: Any, *labels: str) -> Any:
        """`metric.labels(*labels)`, remembered: the lookup costs more than the update, and
        every evaluation of every workload makes a dozen of them. Only for metrics whose
        children are never removed."""
        key = (id(metric), labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _set(self, metric: Any, labels: tuple[str, ...], value: float) -> None:
        """`metric.labels(*labels).set(value)`, skipped when the gauge holds `value` already
        (most evaluations change nothing, and a set takes a lock). Gauges set this way are
        set only this way."""
        key = (id(metric), labels)
        if self._values.get(key) != value:
            self._child(metric, *labels).set(value)
            self._values[key] = value

    def observe_healing(self, namespace: str, workload: str, plan: HealingPlan) -> None:
        counts = Tally(v.reason for v in plan.verdicts)
        for symptom in Symptom:
            self._set(self.unhealthy_pods, (namespace, workload, symptom.value),
                      counts.get(symptom, 0))
        self._set(self.breaker_open, (namespace, workload),
                  1 if plan.breaker is BreakerState.OPEN else 0)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def observe_decision(self, d: Decision, *, ready: int, leader: bool) -> None:
        labels = (d.namespace, d.workload)
        gauge = self._set
        gauge(self.current, labels, d.current)
        gauge(self.ready, labels, ready)
        gauge(self.desired, labels, d.desired)
        for rec in d.recommendations:
            gauge(self.recommended, (*labels, rec.policy), rec.replicas)
            if rec.capacity is not None:
                gauge(self.capacity, (*labels, rec.policy), rec.capacity.used)
                gauge(self.capacity_configured, (*labels, rec.policy), rec.capacity.configured)
        reason = reason_code(d.reasons[-1]) if d.reasons else "none"
        if d.action.value in ("freeze", "pause") and d.reasons:
            reason = reason_code(d.reasons[0])
        self._child(self.decisions, *labels, d.action.value, reason,
                    "1" if leader else "0").inc()
        gauge(self.frozen, labels, 1 if d.action.value == "freeze" else 0)
        gauge(self.paused, labels, 1 if d.action.value == "pause" else 0)

    def observe_skip(self, namespace: str, workload: str) -> None:
        self.skips.count[namespace, workload] += 1

    def observe_dependency(self, state: DependencyState) -> None:
        self.dependency_up.labels(state.name).set(1 if state.health is Health.UP else 0)
        last = self._last_reason.get(state.name)
        reason = state.reason[:80]
        if last is not None and last != reason:
            self.dependency_reason.remove(state.name, last)
        self._last_reason[state.name] = reason
        self.dependency_reason.labels(state.name, reason).set(1)

    def observe_signal(self, sig: Signal, *, wall: float) -> None:
        if sig.ok and sig.value is not None:
            self.last_reads.last[sig.name] = (sig.value, wall)
        else:
            self.signal_errors.labels(sig.name, (sig.error or "invalid")[:60]).inc()


class _Stderr:
    """Whatever `sys.stderr` is when a line is written, not when logging was configured."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(*, json: bool = True, level: int = logging.INFO) -> None:
    """structlog to stderr: JSON lines in production, key=value for people. A logged exception
    (`exc_info`) is written out: as an `exception` field in JSON, as a traceback for people."""
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    if json:
        processors += [structlog.processors.format_exc_info,
                       structlog.processors.JSONRenderer()]
    else:
        processors.append(structlog.dev.ConsoleRenderer(colors=False))
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(file=cast(TextIO, _Stderr())),
        cache_logger_on_first_use=False,
    )
