"""Hysteresis over raw probe results: thresholds, the unknown start, reasons and `since`."""

from __future__ import annotations

import pytest

from autoscaler.engine.hysteresis import Hysteresis
from autoscaler.model import DependencyState, Health
from autoscaler.ports import CheckResult

OK = CheckResult(ok=True)
FAIL = CheckResult(ok=False, reason="connection refused (es:9200)")
UP, DOWN, UNKNOWN = Health.UP, Health.DOWN, Health.UNKNOWN


def run(results: list[CheckResult], *, failure_threshold: int = 3, success_threshold: int = 2,
        start: Hysteresis | None = None) -> list[Health]:
    """The health after each result, with the check number as the clock."""
    state = start or Hysteresis()
    healths: list[Health] = []
    for at, result in enumerate(results, start=1):
        state = state.observe(result, now=float(at), failure_threshold=failure_threshold,
                              success_threshold=success_threshold)
        healths.append(state.health)
    return healths


@pytest.mark.parametrize(
    ("results", "thresholds", "healths"),
    [
        pytest.param([OK, OK, OK], (3, 2), [UNKNOWN, UP, UP], id="unknown-to-up-needs-streak"),
        pytest.param([FAIL, FAIL, FAIL], (3, 2), [UNKNOWN, UNKNOWN, DOWN],
                     id="unknown-to-down-needs-streak"),
        pytest.param([OK, FAIL, OK, FAIL], (3, 2), [UNKNOWN] * 4,
                     id="flapping-from-unknown-gives-no-verdict"),
        pytest.param([OK, OK, FAIL, FAIL, OK, FAIL, FAIL, FAIL], (3, 2),
                     [UNKNOWN, UP, UP, UP, UP, UP, UP, DOWN],
                     id="a-success-resets-the-failure-streak"),
        pytest.param([FAIL, FAIL, FAIL, OK, FAIL, OK, OK], (3, 2),
                     [UNKNOWN, UNKNOWN, DOWN, DOWN, DOWN, DOWN, UP],
                     id="a-failure-resets-the-success-streak"),
        pytest.param([OK, FAIL, OK], (1, 1), [UP, DOWN, UP], id="thresholds-of-one"),
        pytest.param([OK] * 4 + [FAIL] * 5, (5, 4), [UNKNOWN] * 3 + [UP] * 5 + [DOWN],
                     id="large-thresholds"),
    ],
)
def test_transitions(results: list[CheckResult], thresholds: tuple[int, int],
                     healths: list[Health]) -> None:
    failure_threshold, success_threshold = thresholds

    assert run(results, failure_threshold=failure_threshold,
               success_threshold=success_threshold) == healths


def test_starts_unknown() -> None:
    assert Hysteresis().state("es") == DependencyState(name="es", health=UNKNOWN,
                                                       reason="no check yet", since=0.0)


def test_since_is_the_time_of_the_last_change() -> None:
    state = Hysteresis()
    for at, result in enumerate([OK, OK, OK, FAIL, FAIL, FAIL, FAIL], start=10):
        state = state.observe(result, now=float(at), failure_threshold=3, success_threshold=2)

    assert (state.health, state.since) == (DOWN, 15.0)


@pytest.mark.parametrize(
    ("results", "reason"),
    [
        pytest.param([FAIL] * 3, "connection refused (es:9200)", id="down-says-why"),
        pytest.param([FAIL] * 3 + [OK], "connection refused (es:9200)",
                     id="recovering-keeps-the-failure"),
        pytest.param([OK, OK, CheckResult(ok=True, reason="yellow: 1 unassigned shards")],
                     "yellow: 1 unassigned shards", id="up-shows-the-last-remark"),
        pytest.param([OK, OK, FAIL], "connection refused (es:9200)",
                     id="up-shows-a-pending-failure"),
        pytest.param([CheckResult(ok=False)] * 3, "check failed", id="failure-without-reason"),
    ],
)
def test_reasons(results: list[CheckResult], reason: str) -> None:
    state = Hysteresis()
    for result in results:
        state = state.observe(result, now=1.0, failure_threshold=3, success_threshold=2)

    assert state.state("es").reason == reason


def test_observe_returns_a_new_value() -> None:
    before = Hysteresis()

    after = before.observe(FAIL, now=1.0, failure_threshold=1, success_threshold=1)

    assert (before.health, after.health) == (UNKNOWN, DOWN)


def trusted_after(results: list[CheckResult], *, failure_threshold: int = 2,
                  success_threshold: int = 2, step: float = 1.0) -> list[bool]:
    """Whether the gate may trust the dependency after each result (up and not settling)."""
    state = Hysteresis()
    out: list[bool] = []
    for i, result in enumerate(results, start=1):
        state = state.observe(result, now=i * step, failure_threshold=failure_threshold,
                              success_threshold=success_threshold)
        dep = state.state("es")
        out.append(dep.health is UP and dep.failures == 0 and not dep.settling)
    return out


def test_after_an_outage_trust_takes_twice_the_success_streak() -> None:
    trusted = trusted_after([OK, OK, FAIL, FAIL, FAIL, OK, OK, OK, OK, OK])
    assert trusted == [False, True] + [False] * 6 + [True, True]


def test_a_single_failed_check_also_takes_twice_the_streak() -> None:
    trusted = trusted_after([OK, OK, OK, FAIL, OK, OK, OK, OK])
    assert trusted == [False, True, True, False, False, False, False, True]


def test_failing_every_other_check_is_never_trusted() -> None:
    trusted = trusted_after([OK, OK] + [FAIL, OK] * 20)
    assert trusted[:2] == [False, True]
    assert not any(trusted[2:])


def test_up_for_a_moment_between_outages_is_not_trusted() -> None:
    """Down, up (success_threshold reached, so `up`), down again...: each flap doubles the
    streak needed to trust it, so the short ups never open the gate."""
    cycle = [FAIL, FAIL, OK, OK]
    trusted = trusted_after([OK, OK] + cycle * 6)
    assert not any(trusted[2:])


def test_a_flapping_dependency_is_trusted_once_it_holds_still() -> None:
    trusted = trusted_after([OK, OK] + [FAIL, OK] * 10 + [OK] * 40)
    first = trusted.index(True, 2)
    # 2 * 2^4 = 32 good checks in a row at most, more than after a single outage.
    assert 2 + 20 + 4 < first <= 2 + 20 + 32
    assert all(trusted[first:])


def test_old_flaps_are_forgotten() -> None:
    """Flaps more than ten minutes back no longer lengthen the settling: one new failure then
    costs what a first one does (2 * success_threshold), while the same sequence with the old
    flaps still recent needs a longer streak."""
    results = [OK, OK] + [FAIL, OK] * 5 + [OK] * 40 + [FAIL] + [OK] * 4
    assert trusted_after(results, step=20.0)[-1]  # 20 s apart: the old flaps ~15 min back
    assert not trusted_after(results, step=1.0)[-1]


def test_a_settling_dependency_says_why_and_how_long() -> None:
    state = Hysteresis()
    for result in [OK, OK, FAIL, OK]:
        state = state.observe(result, now=1.0, failure_threshold=2, success_threshold=2)
    dep = state.state("es")
    assert dep.health is UP and dep.settling
    assert dep.reason == "up again after 1 recent flap(s); trusted after 4 good checks in a row"
