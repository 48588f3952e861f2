"""HPA replica-calculator cases in the style of Kubernetes' replica_calculator_test.go.

Expected values are computed by hand from the rules in shared/conformance/hpa/README.md; each
case states its arithmetic. Pods have a 1000m CPU request unless noted.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from autoscaler.model import PodInfo
from autoscaler.policies.hpa import (
    HpaMathError,
    Tolerance,
    average_value_replicas,
    utilization_replicas,
    value_replicas,
)

TOL = Tolerance()


def pods_and_usage(usage: Sequence[int | None], ready: Sequence[bool] | None = None,
                   request: int = 1000, phases: Sequence[str] | None = None,
                   deleting: Sequence[bool] | None = None,
                   ) -> tuple[tuple[PodInfo, ...], dict[str, int]]:
    n = len(usage)
    ready = ready or [True] * n
    phases = phases or ["Running"] * n
    deleting = deleting or [False] * n
    pods = tuple(PodInfo(name=f"p{i}", ready=ready[i], phase=phases[i], deleting=deleting[i],
                         cpu_request_milli=request) for i in range(n))
    return pods, {f"p{i}": u for i, u in enumerate(usage) if u is not None}


UTILIZATION_CASES = [
    # ScaleUp: util = floor(1500*100/3000) = 50; ratio 50/30 = 1.667; ceil(1.667*3) = 5.
    pytest.param(3, [300, 500, 700], None, 30, 5, id="scale-up"),
    # ScaleDown: floor(1400*100/5000) = 28; 28/50 = 0.56; ceil(0.56*5) = ceil(2.8) = 3.
    pytest.param(5, [100, 300, 500, 250, 250], None, 50, 3, id="scale-down"),
    # Tolerance: floor(3060*100/3000) = 102; 1.02 within [0.9, 1.1] -> keep 3.
    pytest.param(3, [1010, 1030, 1020], None, 100, 3, id="tolerance"),
    # ScaleUpUnreadyLessScale: ready p1,p2: floor(1200*100/2000) = 60; 60/30 = 2 > 1 so the
    # unready p0 counts 0 %: floor(1200*100/3000) = 40; 40/30 = 1.333; ceil(1.333*3) = 4.
    pytest.param(3, [300, 500, 700], [False, True, True], 30, 4, id="up-unready-less-scale"),
    # ScaleUpUnreadyNoScale: ready p1: 500*100/1000 = 50 -> 1.667; unready at 0 %:
    # floor(500*100/3000) = 16 -> 0.533 < 1: direction flips -> keep 3.
    pytest.param(3, [400, 500, 700], [False, True, False], 30, 3, id="up-unready-no-scale"),
    # ScaleDown with unready pods: unready p0,p1 left out; ready 1000/3000 -> 33 -> 0.66;
    # ceil(0.66*3) = ceil(1.98) = 2.
    pytest.param(5, [100, 300, 500, 250, 250], [False, False, True, True, True], 50, 2,
                 id="down-unready-left-out"),
    # Missing on scale-down counts 100 %: 300/3000 -> 10 -> 0.2 < 1; fill p3 = 1000m:
    # floor(1300*100/4000) = 32 -> 0.64; ceil(0.64*4) = ceil(2.56) = 3.
    pytest.param(4, [100, 100, 100, None], None, 50, 3, id="down-missing-counts-100"),
    # Missing on scale-down flips: 400/1000 -> 40 -> 0.8; fill p1 = 1000m:
    # floor(1400*100/2000) = 70 -> 1.4 > 1: direction flips -> keep 2.
    pytest.param(2, [400, None], None, 50, 2, id="down-missing-flip-keeps"),
    # Missing with target > 100 fills max(100, 150) = 150 % = 1500m:
    # floor(200*100/2000) = 10 -> 10/150 = 0.067; fill p2 = 1500m:
    # floor(1700*100/3000) = 56 -> 0.373; ceil(0.373*3) = ceil(1.12) = 2.
    pytest.param(3, [100, 100, None], None, 150, 2, id="down-missing-fill-target"),
    # Missing on scale-up counts 0 %: floor(1800*100/2000) = 90 -> 1.8; fill p2 = 0:
    # floor(1800*100/3000) = 60 -> 1.2; ceil(1.2*3) = ceil(3.6) = 4.
    pytest.param(3, [900, 900, None], None, 50, 4, id="up-missing-counts-0"),
    # Missing on scale-up flips: 600/1000 -> 60 -> 1.2; fill 0: floor(600*100/2000) = 30
    # -> 0.6 < 1: flip -> keep 2.
    pytest.param(2, [600, None], None, 50, 2, id="up-missing-flip-keeps"),
    # Missing pods skip the first tolerance check: floor(2200*100/2000) = 110 -> 1.1 > 1, so
    # p2 counts 0 %: floor(2200*100/3000) = 73 -> 0.73 < 1: direction flips -> keep 3.
    pytest.param(3, [1100, 1100, None], None, 100, 3, id="up-missing-within-flip"),
    # Missing and unready on scale-up: ready p0,p1 = 1600/2000 -> 80 -> 80/40 = 2; missing p3
    # and unready p2 both 0 %: floor(1600*100/4000) = 40 -> 1.0 within tolerance -> keep 4.
    pytest.param(4, [800, 800, 900, None], [True, True, False, True], 40, 4,
                 id="up-missing-and-unready-tolerance"),
    # Missing + unready on scale-up past tolerance: 1800/2000 -> 90 -> 90/30 = 3; fill both:
    # floor(1800*100/4000) = 45 -> 1.5; ceil(1.5*4) = 6.
    pytest.param(4, [900, 900, 500, None], [True, True, False, True], 30, 6,
                 id="up-missing-and-unready-scale"),
]


@pytest.mark.parametrize(("current", "usage", "ready", "target", "expected"),
                         UTILIZATION_CASES)
def test_utilization(current: int, usage: list[int | None], ready: list[bool] | None,
                     target: int, expected: int) -> None:
    pods, metrics = pods_and_usage(usage, ready)
    assert utilization_replicas(current=current, pods=pods, usage=metrics, target=target,
                                tolerance=TOL) == expected


def test_utilization_skips_deleting_and_failed_pods() -> None:
    # p2 deleting, p3 failed: skipped entirely. p0,p1: floor(1800*100/2000) = 90 -> 90/30 = 3;
    # ceil(3*2) = 6.
    pods, metrics = pods_and_usage([900, 900, 5, 5], phases=["Running", "Running", "Running",
                                                             "Failed"],
                                   deleting=[False, False, True, False])
    assert utilization_replicas(current=4, pods=pods, usage=metrics, target=30,
                                tolerance=TOL) == 6


def test_utilization_pending_pod_is_unready_even_with_metric() -> None:
    # p2 Pending (unready): ready 1200/2000 -> 60 -> 60/30 = 2; p2 at 0 %:
    # floor(1200*100/3000) = 40 -> 1.333; ceil(1.333*3) = 4.
    pods, metrics = pods_and_usage([600, 600, 900], phases=["Running", "Running", "Pending"])
    assert utilization_replicas(current=3, pods=pods, usage=metrics, target=30,
                                tolerance=TOL) == 4


def test_utilization_uneven_requests() -> None:
    # requests 500m and 1500m: floor((400+600)*100/2000) = 50 -> 50/25 = 2; ceil(2*2) = 4.
    pods = (PodInfo("a", cpu_request_milli=500), PodInfo("b", cpu_request_milli=1500))
    assert utilization_replicas(current=2, pods=pods, usage={"a": 400, "b": 600}, target=25,
                                tolerance=TOL) == 4


@pytest.mark.parametrize(("usage", "ready", "target", "request_milli"), [
    pytest.param([None, None], None, 50, 1000, id="no-metrics"),
    pytest.param([500, 500], [False, False], 50, 1000, id="all-unready"),
    pytest.param([500], None, 50, 0, id="missing-request"),
    pytest.param([500], None, 0, 1000, id="zero-target"),
])
def test_utilization_errors(usage: list[int | None], ready: list[bool] | None, target: int,
                            request_milli: int) -> None:
    pods, metrics = pods_and_usage(usage, ready, request=request_milli)
    with pytest.raises(HpaMathError):
        utilization_replicas(current=len(usage), pods=pods, usage=metrics, target=target,
                             tolerance=TOL)


@pytest.mark.parametrize(("current", "value", "target", "ready", "expected"), [
    # ratio 8600/4400 = 1.9545; ceil(1.9545*3) = ceil(5.86) = 6.
    pytest.param(3, 8600.0, 4400.0, 3, 6, id="scale-up"),
    # ratio 50/100 = 0.5; ceil(0.5*4) = 2.
    pytest.param(4, 50.0, 100.0, 4, 2, id="scale-down"),
    # ratio 105/100 = 1.05 within tolerance -> keep 3.
    pytest.param(3, 105.0, 100.0, 3, 3, id="tolerance"),
    # ratio exactly 1.1 is within (inclusive) -> keep 3.
    pytest.param(3, 110.0, 100.0, 3, 3, id="tolerance-edge"),
    # ready pods 2 of 4: ratio 3; ceil(3*2) = 6.
    pytest.param(4, 300.0, 100.0, 2, 6, id="ready-pods-multiply"),
    # current 0: ceil(ratio) = ceil(250/100) = 3, ready pods irrelevant.
    pytest.param(0, 250.0, 100.0, 0, 3, id="current-zero"),
    # current 0 and ratio within tolerance still ceil(1.05) = 2.
    pytest.param(0, 105.0, 100.0, 0, 2, id="current-zero-no-tolerance"),
    # milli units: 0.5 -> 500m, 0.2 -> 200m; ratio 2.5; ceil(2.5*1) = 3.
    pytest.param(1, 0.5, 0.2, 1, 3, id="milli-units"),
    # value 0: ratio 0; ceil(0*3) = 0.
    pytest.param(3, 0.0, 100.0, 3, 0, id="zero-value"),
])
def test_value_target(current: int, value: float, target: float, ready: int,
                      expected: int) -> None:
    assert value_replicas(current=current, value=value, target=target, ready_pods=ready,
                          tolerance=TOL) == expected


@pytest.mark.parametrize(("current", "value", "target", "expected"), [
    # ratio 8600/(2000*3) = 1.433 outside; ceil(8600/2000) = ceil(4.3) = 5.
    pytest.param(3, 8600.0, 2000.0, 5, id="scale-up"),
    # ratio 3100/(1000*3) = 1.033 within -> keep 3.
    pytest.param(3, 3100.0, 1000.0, 3, id="tolerance"),
    # ratio 1500/(1000*5) = 0.3; ceil(1500/1000) = 2.
    pytest.param(5, 1500.0, 1000.0, 2, id="scale-down"),
    # current 0: ratio inf -> ceil(250/100) = 3.
    pytest.param(0, 250.0, 100.0, 3, id="current-zero"),
    # 0.5 -> 500m, 0.2 -> 200m: ratio 500/200 = 2.5; ceil(2.5) = 3.
    pytest.param(1, 0.5, 0.2, 3, id="milli-units"),
    # value 0 -> ceil(0) = 0 (min applies later, in behavior).
    pytest.param(4, 0.0, 10.0, 0, id="zero-value"),
    # ratio 0.9 exactly is within -> keep 10.
    pytest.param(10, 900.0, 100.0, 10, id="tolerance-lower-edge"),
])
def test_average_value_target(current: int, value: float, target: float,
                              expected: int) -> None:
    assert average_value_replicas(current=current, value=value, target=target,
                                  tolerance=TOL) == expected


@pytest.mark.parametrize(("tolerance", "ratio_value", "expected"), [
    # up tolerance 0.5: ratio 1.4 within -> keep 2.
    pytest.param(Tolerance(up=0.5, down=0.1), 140.0, 2, id="wide-up-holds"),
    # down tolerance 0.1: ratio 0.4 outside -> ceil(0.4*2) = ceil(0.8) = 1.
    pytest.param(Tolerance(up=0.5, down=0.1), 40.0, 1, id="narrow-down-scales"),
    # up tolerance 0: ratio 1.01 outside -> ceil(1.01*2) = ceil(2.02) = 3.
    pytest.param(Tolerance(up=0.0, down=0.1), 101.0, 3, id="zero-up-tolerance"),
])
def test_per_direction_tolerance(tolerance: Tolerance, ratio_value: float,
                                 expected: int) -> None:
    assert value_replicas(current=2, value=ratio_value, target=100.0, ready_pods=2,
                          tolerance=tolerance) == expected


@pytest.mark.parametrize("target", [0.0, -1.0])
def test_non_positive_target_raises(target: float) -> None:
    with pytest.raises(HpaMathError):
        value_replicas(current=1, value=1.0, target=target, ready_pods=1, tolerance=TOL)
    with pytest.raises(HpaMathError):
        average_value_replicas(current=1, value=1.0, target=target, tolerance=TOL)
