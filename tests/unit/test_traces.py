"""Loading a trace CSV: what an operator's export looks like, and each fault named by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from autoscaler.sim.traces import TraceError, load_trace


def write(tmp_path: Path, data: bytes) -> Path:
    path = tmp_path / "t.csv"
    path.write_bytes(data)
    return path


def test_rows_become_a_rate_per_second(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, b"t_seconds,requests\n0,600\n60,1200\n"))
    assert trace.interval == 60
    assert trace.rates == (10.0,) * 60 + (20.0,) * 60


def test_a_spreadsheet_export_with_a_byte_order_mark_loads(tmp_path: Path) -> None:
    trace = load_trace(write(tmp_path, b"\xef\xbb\xbft_seconds,requests\r\n0,5\r\n1,7\r\n"))
    assert trace.rates == (5.0, 7.0)


@pytest.mark.parametrize(("data", "message"), [
    pytest.param(b"t_seconds,requests\n0,5\n1,\xff\xfe\n", "not UTF-8 text", id="latin-1"),
    pytest.param(b"t_seconds,requests\n0,5\n1e400,5\n", ":3: t_seconds: must be whole seconds",
                 id="infinite-time"),
    pytest.param(b"t_seconds,requests\n0,5\n0.5,5\n", ":3: t_seconds: must be whole seconds, "
                 "got 0.5", id="fractional-time"),
    pytest.param(b"t_seconds,requests\n0,5\n1,5\n9999999999,5\n",
                 ":4: t_seconds: 9999999999 is 115741 days after the first row; a trace spans "
                 "at most 31 days", id="runaway-time"),
    pytest.param(b"t_seconds,requests\n0,5\n1,-2\n", ":3: requests: must be a finite number",
                 id="negative-count"),
    pytest.param(b"time,count\n0,5\n", ":1: header: expected the header", id="wrong-header"),
    pytest.param(b"t_seconds,requests\n0,1\n2678400,2\n",
                 ": its last row lasts until 62 days after the first (a row lasts the trace's "
                 "2678400 s interval); a trace spans at most 31 days", id="last-row-too-long"),
])
def test_a_bad_trace_is_one_error_that_names_the_place(tmp_path: Path, data: bytes,
                                                       message: str) -> None:
    with pytest.raises(TraceError) as error:
        load_trace(write(tmp_path, data))
    assert message in str(error.value)
    assert str(error.value).startswith(str(tmp_path / "t.csv"))


def test_an_empty_path_is_no_trace() -> None:
    with pytest.raises(TraceError, match=r"^an empty path: name a CSV of t_seconds,requests$"):
        load_trace("")
