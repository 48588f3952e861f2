"""`tracardi-autoscaler bench` as an operator runs it: the traces it is given, the JSON it
writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autoscaler.cli import main


def trace(folder: Path, name: str, rates: list[int]) -> str:
    path = folder / f"{name}.csv"
    path.write_text("t_seconds,requests\n" + "".join(
        f"{60 * i},{60 * r}\n" for i, r in enumerate(rates)))
    return str(path)


def test_one_trace_flag_takes_several_csvs_and_repeats(tmp_path: Path) -> None:
    a = trace(tmp_path, "flat", [100] * 5)
    b = trace(tmp_path, "rise", [100, 100, 300, 300, 300])
    c = trace(tmp_path, "fall", [300, 300, 100, 100, 100])
    out = tmp_path / "bench.json"
    code = main(["bench", "--trace", a, b, "--trace", c, "--scenario", "api",
                 "--json", str(out), "--no-progress"])
    assert code == 0
    runs = json.loads(out.read_text())["runs"]
    assert sorted({r["trace"] for r in runs}) == ["fall", "flat", "rise"]
    assert {r["contender"] for r in runs} == {"ours", "keda", "static", "oracle"}


def test_a_missing_trace_names_the_file_and_runs_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = trace(tmp_path, "flat", [100] * 5)
    out = tmp_path / "bench.json"
    code = main(["bench", "--trace", a, str(tmp_path / "nope.csv"), "--scenario", "api",
                 "--json", str(out), "--no-progress"])
    assert code == 2
    assert "nope.csv" in capsys.readouterr().err
    assert not out.exists()
