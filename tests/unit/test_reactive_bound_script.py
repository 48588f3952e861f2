"""`scripts/reactive_bound.py`: what a policy that sizes each second for its need and holds a
count for a while before lowering it costs, against the bench's oracle; and for the workers,
what one that scales in the very second of each rise has in violation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "reactive_bound.py"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], check=False,
                          capture_output=True, text=True)


def test_the_hold_costs_what_it_holds(tmp_path: Path) -> None:
    # Two minutes at 100/s with 10 s at 500/s from second 50; its peak needs 5 pods of 100/s,
    # the rest of the time the API's min of 3 rules.
    trace = tmp_path / "spike.csv"
    trace.write_text("t_seconds,requests\n" + "".join(
        f"{t},{500 if 50 <= t < 60 else 100}\n" for t in range(120)))
    done = run("--trace", str(trace), "--peak-replicas", "5", "--hold", "0", "30", "300")
    assert done.returncode == 0, done.stderr
    row = done.stdout.splitlines()[1].split()
    # The oracle starts the 5 pods 30 s early: 5 for 20 s, 3 for 100 s.
    assert row[:2] == ["spike", "400"]
    # Each second its own need: 5 for 10 s, 3 for 110 (under the oracle: no start-up paid);
    # held 30 s: 5 for 40 s; held 300 s: 5 until the end, 70 s.
    assert row[2:] == [f"{380 / 400:.3f}x", f"{440 / 400:.3f}x", f"{500 / 400:.3f}x"]
    # Sized at half a pod's capacity, the spike needs 10 pods (the rest still the min of 3).
    done = run("--trace", str(trace), "--peak-replicas", "5", "--hold", "0",
               "--utilization", "0.5")
    assert done.stdout.splitlines()[1].split() == ["spike", "400", f"{430 / 400:.3f}x"]


def test_a_burst_from_idle_outruns_the_workers_start_up(tmp_path: Path) -> None:
    # Five minutes at 1/s with a minute at 1000/s from second 100: the burst needs 20 workers of
    # 50/s, and from the workload's min of 2, the other 18 take 20 s (+- 20 %) to start.
    trace = tmp_path / "burst.csv"
    trace.write_text("t_seconds,requests\n" + "".join(
        f"{t},{1000 if 100 <= t < 160 else 1}\n" for t in range(300)))

    def row(*extra: str) -> list[str]:
        done = run("--scenario", "worker", "--trace", str(trace), *extra)
        assert done.returncode == 0, done.stderr
        return done.stdout.splitlines()[1].split()

    name, floor, oracle, replica_s, _, violations, _ = row()
    # The oracle: 2 workers for 240 s, 20 for the burst's 60.
    assert (name, floor, oracle) == ("burst", "2", "1680")
    # Two workers drain 100/s of the 1000/s: the backlog outgrows 60 s of their work in 7 s,
    # and stays there until the 18 have started.
    assert 5 <= int(violations) <= 20
    assert 1680 < float(replica_s) < 2 * 1680
    # With 20 workers all along, none is missing when the burst comes.
    assert row("--min", "20")[1:] == ["20", "1680", "6000", f"{6000 / 1680:.3f}x", "0", "0.00%"]


@pytest.mark.parametrize("args", [("--hold", "-30"), ("--utilization", "0"),
                                  ("--utilization", "1.5")])
def test_bad_arguments_are_refused(args: tuple[str, str]) -> None:
    done = run(*args)
    assert done.returncode == 2
    assert args[0] in done.stderr


def test_a_bad_trace_is_named_and_nothing_is_printed(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_text("t_seconds,requests\n")
    done = run("--trace", str(empty))
    assert done.returncode == 2
    assert f"{empty}: needs at least two rows" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""
