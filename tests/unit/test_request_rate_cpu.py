"""The request-rate policy learns what a pod serves from the pods' CPU (`learn_from_cpu`)."""

from __future__ import annotations

import json
from collections import defaultdict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml

from autoscaler.cli import main
from autoscaler.config import ConfigError, PolicyRef, Workload, WorkloadSpec, load_config
from autoscaler.daemon import _WithOwn
from autoscaler.engine.evaluate import evaluate
from autoscaler.model import (
    Capacity,
    DependencyState,
    Health,
    PodInfo,
    PodSample,
    Recommendation,
    ScalingHistory,
    Signal,
    WorkloadStatus,
)
from autoscaler.policies.base import PolicyContext, build_policy, optional_signals
from autoscaler.policies.request_rate import learned_capacity

REPO = Path(__file__).resolve().parents[2]
NOW = 10_000.0
REQUEST = 500  # millicores per pod
#: Stated 100/s per pod at 80 %; no trend or burst look-ahead, so the count is the rate's.
PARAMS: dict[str, Any] = {"source": "t", "capacity_rps": 100.0, "learn_from_cpu": True,
                          "burst_seconds": 0.0, "trend_min_samples": 1000}


def share(rps_per_pod: float, capacity: float, idle: float = 0.1) -> float:
    """The CPU share of a pod serving `rps_per_pod` of `capacity`, idling at `idle`."""
    return min(1.0, idle + (1 - idle) * rps_per_pod / capacity)


def recommend(params: dict[str, Any], reads: Sequence[tuple[float, float]], *, pods: int = 4,
              cpu_now: Signal | None = None) -> Recommendation:
    """The policy's proposal for `pods` pods after CPU reads 15 s apart, each a (requests/s per
    pod, CPU share) of the `pods` pods, with the rate read 5 s before and after each; the
    newest CPU read is the last of them, or `cpu_now`."""
    ref = PolicyRef(name="request-rate", params=params)
    spec = WorkloadSpec(name="w", namespace="ns", deployment="w",
                        settings=Workload(min=1, max=100, requires=(), policies=(ref,)),
                        policies=(build_policy(ref.name, ref.params),))
    rates: list[Signal] = []
    cpus: list[Signal] = []
    start = NOW - 15 * len(reads)
    for i, (per_pod, cpu_share) in enumerate(reads):
        at = start + 15 * i
        rates += [Signal("t.value", per_pod * pods, at - 5),
                  Signal("t.value", per_pod * pods, at + 5)]
        cpus.append(cpu_signal(cpu_share, pods, at))
    now_rate = Signal("t.value", reads[-1][0] * pods, NOW)
    newest = cpu_now or cpus[-1]
    status = WorkloadStatus("w", "ns", pods, ready_replicas=pods, pods=tuple(
        PodInfo(f"w-{i}", cpu_request_milli=REQUEST) for i in range(pods)))
    result = evaluate(spec, status=status,
                      signals={"t.value": now_rate, "resources.cpu": newest},
                      dependencies={"es": DependencyState("es", Health.UP)},
                      history=ScalingHistory(), now=NOW, staleness={},
                      signal_history={"t.value": [*rates, now_rate], "resources.cpu": cpus})
    return result.decision.recommendations[0]


def cpu_signal(cpu_share: float, pods: int, at: float) -> Signal:
    used = round(cpu_share * REQUEST)
    return Signal("resources.cpu", float(used * pods), at,
                  samples=tuple(PodSample(f"w-{i}", used) for i in range(pods)))


# ------------------------------------------------------------------------- learned_capacity

def test_the_line_through_the_reads_reaches_the_whole_request_at_the_capacity() -> None:
    reads = [(x, share(x, 50.0)) for x in (10.0, 20.0, 30.0, 40.0)]
    assert learned_capacity(reads) == pytest.approx(50.0)


def test_without_spread_the_line_through_the_origin_errs_low() -> None:
    # every read at 40/s: no line can be drawn; 40/s at 0.82 of the request says 48.8/s,
    # the idle share counted as cost
    learned = learned_capacity([(40.0, share(40.0, 50.0))] * 5)
    assert learned == pytest.approx(40.0 / 0.82)
    assert learned is not None and learned < 50.0


def test_reads_the_line_does_not_explain_fall_back_to_the_origin() -> None:
    # CPU that goes down as the rate goes up: no cost per request to learn from a line
    reads = [(10.0, 0.6), (20.0, 0.5), (30.0, 0.4)]
    assert learned_capacity(reads) == pytest.approx(sum(x * x for x, _ in reads)
                                                    / sum(x * y for x, y in reads))
    assert learned_capacity([]) is None
    assert learned_capacity([(0.0, 0.1), (0.0, 0.1)]) is None


def test_a_noisy_line_is_used_only_where_it_can_err_low_and_never_below_the_means() -> None:
    # 50/s pods idling at 10 %, the CPU off by up to 3 % of the request: R squared about 0.6
    noise = (0.03, -0.03, 0.02, -0.02, 0.0, 0.03)
    reads = [(x, share(x, 50.0) + e) for x, e in zip((30, 32, 34, 36, 38, 40), noise,
                                                       strict=True)]
    line = learned_capacity(reads)
    origin = learned_capacity(reads, min_fit=0.9)  # the line explains too little for that
    mean_x = sum(x for x, _ in reads) / len(reads)
    mean_y = sum(y for _, y in reads) / len(reads)
    assert line is not None and origin is not None
    assert line != origin and line >= mean_x / mean_y and origin < 50.0


# ----------------------------------------------------------------------------------- policy

def test_the_policy_reads_the_pods_cpu_only_when_it_learns() -> None:
    on = build_policy("request-rate", PARAMS)
    off = build_policy("request-rate", {**PARAMS, "learn_from_cpu": False})
    # the CPU is read, but the policy can do without it: its absence freezes nothing
    assert on.signals() == off.signals() == ("t.value",)
    assert optional_signals(on) == ("resources.cpu",) and optional_signals(off) == ()
    assert on.history_seconds()["resources.cpu"] == 900.0  # type: ignore[attr-defined]


def test_pods_that_serve_half_are_learned_and_sized_for() -> None:
    # 4 pods at 25 to 35/s each of a real 50/s: the policy learns 50/s, so 140/s needs
    # ceil(140 / (50 * 0.8)) = 4 pods, where the stated 100/s said 2
    reads = [(x, share(x, 50.0)) for x in (25.0, 28.0, 30.0, 33.0, 35.0)]
    rec = recommend(PARAMS, reads)
    assert rec.replicas == 4
    assert "capacity 50.0/s learned from CPU" in rec.reason
    assert rec.capacity is not None and rec.capacity.learned
    assert rec.capacity.configured == 100.0 and rec.capacity.used == pytest.approx(50.0, 0.01)
    stated = recommend({**PARAMS, "learn_from_cpu": False}, reads)
    assert stated.replicas == 2 and stated.capacity == Capacity(100.0, 100.0, False)


def test_reads_of_pods_that_idle_teach_nothing() -> None:
    # pods at a fifth to a third of their request: under learn_min_share (half)
    reads = [(x, share(x, 50.0)) for x in (5.0, 8.0, 10.0, 12.0, 12.0)]
    rec = recommend(PARAMS, reads)
    assert rec.capacity == Capacity(100.0, 100.0, False)
    learns = recommend({**PARAMS, "learn_min_share": 0.1}, reads)
    assert learns.capacity is not None and learns.capacity.used == pytest.approx(50.0, 0.02)


def test_too_few_reads_keep_the_stated_capacity() -> None:
    reads = [(x, share(x, 50.0)) for x in (25.0, 28.0, 30.0, 35.0)]  # 4 of the 5 needed
    rec = recommend(PARAMS, reads)
    assert rec.replicas == 2 and "learned" not in rec.reason


def test_a_learned_capacity_above_the_stated_one_needs_leave() -> None:
    # pods that serve 200/s: by default the CPU may only lower capacity_rps
    reads = [(x, share(x, 200.0)) for x in (100.0, 110.0, 120.0, 130.0, 130.0)]
    capped = recommend(PARAMS, reads)
    assert capped.replicas == 7  # 520/s at 80/s per pod, as stated
    trusted = recommend({**PARAMS, "learn_above_capacity_rps": True}, reads)
    assert trusted.replicas == 4  # 520/s at 160/s per pod
    assert "learned from CPU" in trusted.reason


def test_above_capacity_rps_only_a_line_that_explains_the_reads_is_trusted() -> None:
    # pods that serve 200/s, their CPU noisy: the line through the reads explains too little
    # of them to be trusted above the 100/s stated, so the policy takes the origin's (low) line
    noise = (0.03, -0.03, 0.02, -0.02, 0.0, 0.03)
    reads = [(x, share(x, 200.0) + e) for x, e in zip((100, 105, 110, 115, 120, 125), noise,
                                                        strict=True)]
    rec = recommend({**PARAMS, "learn_above_capacity_rps": True}, reads)
    quantized = [(x, round(y * REQUEST) / REQUEST) for x, y in reads]  # milli-CPU, as read
    origin = learned_capacity(quantized, min_fit=0.9)
    assert rec.capacity is not None and origin is not None
    assert rec.capacity.used == pytest.approx(origin)
    assert learned_capacity(quantized) != pytest.approx(origin)


def test_saturated_reads_teach_nothing_and_raise_the_count_as_the_hpa_would() -> None:
    # every read saturated: the 100/s stated gives 2 pods for 160/s, but the pods' CPU is
    # full, so ceil(4 pods * 1.0 / 0.8) = 5
    reads = [(40.0, 1.0)] * 6
    rec = recommend(PARAMS, reads)
    assert "learned" not in rec.reason
    assert rec.replicas == 5 and "4 pods saturated at 100% of their CPU request" in rec.reason


def test_without_a_fresh_cpu_read_the_policy_proposes_but_never_from_the_stale_one() -> None:
    # saturated reads, the newest of them 200 s old (metrics-server gone): the policy still
    # proposes for the rate at the stated capacity, and the stale saturation asks for nothing
    reads = [(40.0, 1.0)] * 6
    stale = cpu_signal(1.0, 4, NOW - 200)
    rec = recommend(PARAMS, reads, cpu_now=stale)
    assert rec.replicas == 2 and "saturated" not in rec.reason
    failed = Signal("resources.cpu", None, NOW, error="no pod metrics for w")
    assert recommend(PARAMS, reads, cpu_now=failed).replicas == 2


def test_a_cpu_read_while_the_rate_moves_is_not_learned_from() -> None:
    ref = PolicyRef(name="request-rate", params=PARAMS)
    policy = build_policy(ref.name, ref.params)
    pods = 4
    status = WorkloadStatus("w", "ns", pods, ready_replicas=pods, pods=tuple(
        PodInfo(f"w-{i}", cpu_request_milli=REQUEST) for i in range(pods)))
    rates: list[Signal] = []
    cpus: list[Signal] = []
    for i in range(6):  # the rate doubles across each CPU read
        at = NOW - 100 + 15 * i
        rates += [Signal("t.value", 80.0, at - 5), Signal("t.value", 160.0, at + 5)]
        cpus.append(cpu_signal(share(30.0, 50.0), pods, at))
    ctx = PolicyContext(status=status, signals={"t.value": rates[-1], "resources.cpu": cpus[-1]},
                        now=NOW, min_replicas=1, max_replicas=100,
                        history={"t.value": rates, "resources.cpu": cpus})
    assert policy.capacity(ctx) == (100.0, False)  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------- replay

def learn_config(folder: Path, *, learn: bool) -> Path:
    config = yaml.safe_load((REPO / "policies" / "tracardi.yaml").read_text())
    config["workloads"]["be-fa-public"]["policies"][0]["learn_from_cpu"] = learn
    path = folder / f"learn-{learn}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_a_replayed_api_whose_pods_serve_half_keeps_its_slo_when_it_learns(
        tmp_path: Path) -> None:
    trace = tmp_path / "rise.csv"  # 10 min at a quarter of the peak, then 20 min at the peak
    trace.write_text("t_seconds,requests\n" + "".join(
        f"{60 * i},{60 * (100 if i < 10 else 400)}\n" for i in range(30)))
    runs = {}
    for learn, factor in ((False, "0.5"), (True, "0.5"), (False, "1")):
        out = tmp_path / f"run-{learn}-{factor}.json"
        assert main(["simulate", "--config", str(learn_config(tmp_path, learn=learn)),
                     "--trace", str(trace), "--scenario", "api", "--capacity-factor", factor,
                     "--no-progress", "--json", str(out)]) == 0
        runs[learn, factor] = json.loads(out.read_text())["runs"][0]
    # told 100/s, the pods serve 50/s: sized by what it was told, the API is overloaded for
    # most of the peak; sized by what it learned in the first 10 minutes, it does as well as
    # when it is told the truth (pods start 30 s after the step: neither avoids that)
    told_the_truth = runs[False, "1"]["slo_violation_seconds"]
    assert runs[False, "0.5"]["slo_violation_seconds"] > 1000
    assert runs[True, "0.5"]["slo_violation_seconds"] <= told_the_truth < 120


def test_the_history_a_workload_reads_serves_its_own_cpu_and_adds_no_key() -> None:
    store: defaultdict[str, deque[Signal]] = defaultdict(deque)
    store["t.value"].append(Signal("t.value", 1.0, NOW))
    store["resources.cpu@ns/w"].append(cpu_signal(0.5, 2, NOW))
    view = _WithOwn(store, {"resources.cpu": store["resources.cpu@ns/w"]})
    assert view["resources.cpu"][0].value == 500.0
    assert view.get("t.value") == store["t.value"]
    assert view.get("nope") is None and "nope" not in view
    with pytest.raises(KeyError):
        view["nope"]
    assert set(view) == {"resources.cpu", "t.value", "resources.cpu@ns/w"} and len(view) == 3
    assert set(store) == {"t.value", "resources.cpu@ns/w"}  # nothing added to the store


def test_a_learning_band_that_holds_no_read_is_refused_with_its_reason(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "policies" / "tracardi.yaml").read_text())
    config["workloads"]["be-fa-public"]["policies"][0]["learn_min_share"] = 0.96
    path = tmp_path / "band.yaml"
    path.write_text(yaml.safe_dump(config))
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "learn_min_share (0.96) must be under saturated_share (0.95)" in str(caught.value)
