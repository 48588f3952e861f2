"""Signal reads reach the metrics: the last valid value and its read time per signal, and a
counted error per failed read that leaves the last valid value in place."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from autoscaler.model import Signal
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
