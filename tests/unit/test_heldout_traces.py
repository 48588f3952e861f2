"""`scripts/heldout_traces.py`: the traces the shipped policies were not tuned on, written as
CSVs that `bench --trace` loads."""

from __future__ import annotations

import statistics
import subprocess
import sys
from pathlib import Path

from autoscaler.sim.traces import load_trace, shared_traces_dir

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "heldout_traces.py"


def test_it_writes_loadable_traces_of_the_shapes_it_names(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path / "held")],
                          capture_output=True, text=True, check=True)
    written = [Path(line) for line in done.stdout.split()]
    names = {p.stem for p in written}
    expected = {"gen_seed7", "gen_seed11", "square_10min", "bursts_2h"}
    if shared_traces_dir().is_dir():
        expected |= {"nasa_2d_5min", "wc_flash_reversed"}
    assert names == expected
    traces = {p.stem: load_trace(p) for p in written}
    assert traces["gen_seed7"].rates != traces["gen_seed11"].rates
    assert traces["gen_seed7"].duration == 12 * 3600
    square = traces["square_10min"]
    assert square.duration == 4 * 3600
    low, high = statistics.mean(square.rates[:600]), statistics.mean(square.rates[600:1200])
    assert 3.6 < high / low < 4.4
    if "nasa_2d_5min" in traces:
        assert traces["nasa_2d_5min"].interval == 300
        assert traces["nasa_2d_5min"].duration == 2 * 86400
