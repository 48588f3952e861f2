"""Write traces the shipped policies were not tuned on, for `tracardi-autoscaler bench --trace`.

The policies are tuned on the five traces in ../shared/traces; traffic elsewhere has other
shapes. These six are seeded and written as `t_seconds,requests` CSVs:
- gen_seed7, gen_seed11: the project's own generator (a diurnal cycle with a flash crowd) over
  12 hours, with seeds the bench does not use;
- nasa_2d_5min: the NASA week's first two days at 5-minute intervals (coarser, larger steps);
- wc_flash_reversed: the World Cup flash crowd played backwards;
- square_10min: 10 minutes at 100, 10 at 400, for 4 hours (a 4x step every 20 minutes);
- bursts_2h: a low base with bursts of 5 to 25 times it, 20 s to 5 min long, for 2 hours.
The NASA and World Cup ones are skipped when ../shared/traces is absent.

    python scripts/heldout_traces.py out/heldout
    tracardi-autoscaler bench --trace out/heldout/*.csv --scenario api --scenario worker
"""

from __future__ import annotations

import argparse
import csv
import random
from collections.abc import Sequence
from pathlib import Path

from autoscaler.sim.traces import generated_trace, load_trace, shared_traces_dir


def write(folder: Path, name: str, rates: Sequence[float], interval: int = 1) -> Path:
    """`rates` (requests/s per interval) as a CSV of requests per interval."""
    path = folder / f"{name}.csv"
    with path.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["t_seconds", "requests"])
        for i, rate in enumerate(rates):
            out.writerow([i * interval, max(0, round(rate * interval))])
    return path


def square(hours: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [(400.0 if (t // 600) % 2 else 100.0) * rng.uniform(0.9, 1.1)
            for t in range(int(hours * 3600))]


def bursts(hours: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    rates: list[float] = []
    level, until = 20.0, 0
    for t in range(int(hours * 3600)):
        if t >= until:
            level = rng.choice([20.0, 20.0, 20.0, rng.uniform(100.0, 500.0)])
            until = t + rng.randint(20, 300)
        rates.append(level * rng.uniform(0.8, 1.2))
    return rates


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Write traces the shipped policies were not tuned on.")
    parser.add_argument("out", type=Path, help="folder to write the CSVs into")
    args = parser.parse_args(argv)
    folder: Path = args.out
    folder.mkdir(parents=True, exist_ok=True)
    written = [write(folder, f"gen_seed{seed}", generated_trace(hours=12, seed=seed).rates)
               for seed in (7, 11)]
    shared = shared_traces_dir()
    nasa, worldcup = shared / "nasa_diurnal_week.csv", shared / "worldcup98_flash_crowd.csv"
    if nasa.is_file():
        two_days = load_trace(nasa).rates[: 2 * 86400]
        written.append(write(folder, "nasa_2d_5min",
                             [sum(two_days[i:i + 300]) / 300
                              for i in range(0, len(two_days), 300)], 300))
    if worldcup.is_file():
        written.append(write(folder, "wc_flash_reversed", load_trace(worldcup).rates[::-1]))
    written.append(write(folder, "square_10min", square(4, seed=3)))
    written.append(write(folder, "bursts_2h", bursts(2, seed=5)))
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
