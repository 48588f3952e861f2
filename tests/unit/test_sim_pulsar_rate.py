"""The simulator's Pulsar source makes `in_rate` as the live one does: the increase of the
messages published over the source's `rate_seconds`, the model's averaged msgRateIn before."""

from __future__ import annotations

import asyncio

import pytest

from autoscaler.config import PulsarSource
from autoscaler.sim.adapters import ModelPulsarSource
from autoscaler.sim.clock import run_virtual
from autoscaler.sim.model import ClusterModel
from autoscaler.sim.traces import Trace

#: 10 msg/s for 20 s, then 100 msg/s.
STEP = Trace("step", (10.0,) * 20 + (100.0,) * 40, 60)


def settings(rate_seconds: float) -> PulsarSource:
    return PulsarSource(kind="pulsar", admin_url="http://pulsar:8080", tenant="t",
                        namespace="ns", topic="x", subscription="s", rate_seconds=rate_seconds)


def in_rates(rate_seconds: float, at: list[float]) -> list[float | None]:
    model = ClusterModel(trace=STEP, kind="worker", workload="wk", replicas=1, capacity=50.0)
    source = ModelPulsarSource("functions", model, settings(rate_seconds))

    async def main() -> list[float | None]:
        rates = []
        for t in at:
            await asyncio.sleep(t - asyncio.get_running_loop().time())
            signals = {s.name: s for s in await source.read()}
            rates.append(signals["functions.in_rate"].value)
        return rates

    return run_virtual(main())


def test_in_rate_is_the_increase_of_what_was_published_over_the_window() -> None:
    rates = in_rates(2.0, [16.0, 18.0, 20.0, 22.0, 24.0])
    # The first read has no earlier one: the model's 10 s average stands in.
    assert rates[0] == pytest.approx(10.0)
    assert rates[1:] == pytest.approx([10.0, 10.0, 100.0, 100.0])


def test_a_longer_window_averages_the_step() -> None:
    rates = in_rates(10.0, [10.0, 12.0, 14.0, 16.0, 18.0, 20.0, 22.0, 30.0])
    assert rates[-3:] == pytest.approx([10.0, (8 * 10 + 2 * 100) / 10, 100.0])


def test_the_models_average_rate_adds_as_python_3_11_does_on_every_version() -> None:
    """Python 3.12 made sum() of floats compensated (ten 0.1s add up to 1.0 there, and to
    0.9999999999999999 from left to right). The model adds from left to right on every version,
    so a replay gives the same numbers whichever Python runs it."""
    model = ClusterModel(trace=Trace("tenths", (0.1,) * 20, 20), kind="worker", workload="wk",
                         replicas=1, capacity=50.0)
    model.advance(10)
    assert model.in_rate() == 0.9999999999999999 / 10
