"""`scripts/reactive_bound.py`: what a policy that sizes each second for its need and holds a
count for a while before lowering it costs, against the bench's oracle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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


def test_a_negative_hold_is_refused() -> None:
    done = run("--hold", "-30")
    assert done.returncode == 2
    assert "--hold" in done.stderr
