"""Signal reads reach the metrics: the last valid value and its read time per signal, and a
counted error per failed read that leaves the last valid value in place. Decisions reach them
too: each policy's proposal, and what one replica serves as it sized for it."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from autoscaler.model import Action, Capacity, Decision, Recommendation, Signal
from autoscaler.telemetry import Telemetry


def _samples(t: Telemetry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(t.render().decode())
            for s in family.samples}


def test_a_valid_read_sets_value_and_read_time_and_a_failed_one_keeps_them() -> None:
    t = Telemetry()
    t.observe_signal(Signal("wk.backlog", 120.0, 5.0), wall=1_700_000_000.0)
    t.observe_signal(Signal("wk.in_rate", 3.5, 5.0), wall=1_700_000_000.0)
    t.observe_signal(Signal("wk.backlog", 80.0, 7.0), wall=1_700_000_002.0)
    t.observe_signal(Signal("wk.in_rate", None, 7.0, error="timeout after 2s"),
                     wall=1_700_000_002.0)
    samples = _samples(t)
    value, read_at = "tracardi_autoscaler_signal_value", \
        "tracardi_autoscaler_signal_read_timestamp_seconds"
    assert samples[(value, (("signal", "wk.backlog"),))] == 80.0
    assert samples[(read_at, (("signal", "wk.backlog"),))] == 1_700_000_002.0
    assert samples[(value, (("signal", "wk.in_rate"),))] == 3.5  # the last valid value
    assert samples[(read_at, (("signal", "wk.in_rate"),))] == 1_700_000_000.0
    errors = ("tracardi_autoscaler_signal_errors_total",
              (("reason", "timeout after 2s"), ("signal", "wk.in_rate")))
    assert samples[errors] == 1.0


def test_families_are_described_before_any_read() -> None:
    families = {f.name: f.samples for f in
                text_string_to_metric_families(Telemetry().render().decode())}
    assert families["tracardi_autoscaler_signal_value"] == []
    assert families["tracardi_autoscaler_signal_read_timestamp_seconds"] == []


def test_each_policy_reports_the_capacity_it_sized_for_next_to_the_configured_one() -> None:
    t = Telemetry()
    learned = Recommendation(9, "r", "request-rate", capacity=Capacity(100.0, 48.5, True))
    fixed = Recommendation(1, "f", "fixed")  # sizes by no capacity: reports none
    t.observe_decision(Decision("api", "ns", Action.SCALE, 5, 9, ("r",), (learned, fixed)),
                       ready=5, leader=True)
    samples = _samples(t)
    labels = (("namespace", "ns"), ("policy", "request-rate"), ("workload", "api"))
    assert samples[("tracardi_autoscaler_replica_capacity", labels)] == 48.5
    assert samples[("tracardi_autoscaler_replica_capacity_configured", labels)] == 100.0
    assert not any(name.startswith("tracardi_autoscaler_replica_capacity") and
                   ("policy", "fixed") in key for name, key in samples)
