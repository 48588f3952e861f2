"""`scripts/cpu_noise.py`: a replay whose simulated pod CPU is off by seeded noise."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cpu_noise.py"


def replay(folder: Path, noise: str) -> tuple[float, float, float]:
    """(replica-seconds, the learned capacity's 5th percentile and median) of an API replay of
    a slow wave."""
    trace = folder / "wave.csv"  # 20 minutes between 150 and 300 requests/s, minute by minute
    trace.write_text("t_seconds,requests\n" + "".join(
        f"{60 * i},{60 * (150 + 15 * (i % 10))}\n" for i in range(20)))
    done = subprocess.run([sys.executable, str(SCRIPT), "--noise", noise, "--", "simulate",
                           "--scenario", "api", "--trace", str(trace), "--peak-replicas", "5",
                           "--no-progress"], capture_output=True, text=True, check=True)
    replica_seconds = re.search(r"replica_seconds: ([\d.]+)", done.stdout)
    low = re.search(r"p5 ([\d.]+)/s", done.stdout)
    median = re.search(r"p50 ([\d.]+)/s", done.stdout)
    assert replica_seconds and low and median, done.stdout
    return float(replica_seconds.group(1)), float(low.group(1)), float(median.group(1))


def test_noise_is_seeded_and_moves_what_is_learned(tmp_path: Path) -> None:
    exact, noisy = replay(tmp_path, "0"), replay(tmp_path, "0.2")
    assert replay(tmp_path, "0.2") == noisy  # the same seed, the same run
    assert exact[2] == 100.0  # exact CPU: the stated capacity, learned
    # A capacity learned above capacity_rps is capped at it, so the noise shows below: in the
    # low tail of what was learned, and in the pods asked for it.
    assert noisy[1] < exact[1] - 5.0
    assert noisy[0] > exact[0]


def test_it_needs_a_command() -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), "--noise", "0.1"],
                          check=False, capture_output=True, text=True)
    assert done.returncode == 2 and "a command must follow --" in done.stderr
