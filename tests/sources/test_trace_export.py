"""`tracardi-autoscaler trace` against a real Prometheus holding two hours of a known traffic.

The history is backfilled with promtool (the OpenMetrics text below, one value a minute, with a
ten-minute gap), so every exported value is known. The lookback is 30 s, so the gap shows as
steps without a value instead of the last value held for Prometheus' default five minutes.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from wire_fakes import require_binary, wait_for_prometheus

from autoscaler.cli import main
from autoscaler.config import PrometheusSource
from autoscaler.localport import free_port
from autoscaler.sim import trace_export
from autoscaler.sim.trace_export import ExportError, check_range, export_trace, parse_time
from autoscaler.sim.traces import load_trace
from autoscaler.sources.http import Reply
from autoscaler.sources.values import RejectedValueError

MINUTES = 120
GAP = range(60, 70)  # minutes without a sample
QUERY = 'sum(tracardi_track_requests{ingress="tracardi-track"})'


def requests_at(minute: int) -> int:
    """The known requests of each minute: a pattern with no two neighbours alike."""
    return 100 + (minute * 37) % 50


@dataclass(frozen=True)
class History:
    url: str
    start: float  # the first minute's sample (epoch seconds, whole minutes)

    @property
    def source(self) -> PrometheusSource:
        return PrometheusSource(kind="prometheus", url=self.url, query=QUERY)

    @property
    def end(self) -> float:
        return self.start + (MINUTES - 1) * 60


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> Iterator[History]:
    prometheus, promtool = require_binary("prometheus"), require_binary("promtool")
    tmp = tmp_path_factory.mktemp("trace-export")
    start = (int(time.time()) // 3600 - 3) * 3600  # whole hours, well inside the retention
    lines = ["# TYPE tracardi_track_requests gauge"]
    for ingress, scale in (("tracardi-track", 1), ("other", 2)):
        lines += [f'tracardi_track_requests{{ingress="{ingress}"}} {requests_at(m) * scale} '
                  f"{start + m * 60}" for m in range(MINUTES) if m not in GAP]
    (tmp / "history.om").write_text("\n".join([*lines, "# EOF", ""]))
    data = tmp / "data"
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics",
                    str(tmp / "history.om"), str(data)], check=True, capture_output=True)
    port = free_port()
    (tmp / "prometheus.yml").write_text("global:\n  scrape_interval: 1m\n")
    log = (tmp / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [prometheus, f"--config.file={tmp / 'prometheus.yml'}", f"--storage.tsdb.path={data}",
         f"--web.listen-address=127.0.0.1:{port}", "--query.lookback-delta=30s",
         "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_prometheus(url, proc)
        yield History(url, float(start))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        log.close()


def _rows(text: str) -> list[tuple[int, float]]:
    lines = text.splitlines()
    assert lines[0] == "t_seconds,requests"
    return [(int(t), float(n)) for t, n in (line.split(",") for line in lines[1:])]


def _expected(step: int = 60) -> list[tuple[int, float]]:
    return [(m * step, float(requests_at(m))) for m in range(MINUTES) if m not in GAP]


@pytest.mark.real
async def test_exports_each_minute_and_names_the_gap(history: History, tmp_path: Path) -> None:
    out = io.StringIO()
    done = await export_trace(history.source, QUERY, start=history.start, end=history.end,
                              step=60, out=out)
    assert _rows(out.getvalue()) == _expected()
    assert (done.rows, done.steps, done.gaps) == (MINUTES - len(GAP), MINUTES, 1)
    assert done.first_gap == history.start + GAP.start * 60
    assert done.peak == max(requests_at(m) for m in range(MINUTES) if m not in GAP)
    # ... and `simulate` and `bench` read it as any trace: a minute's requests over 60 s
    path = tmp_path / "track.csv"
    path.write_text(out.getvalue())
    trace = load_trace(path)
    assert trace.interval == 60 and trace.rates[0] == requests_at(0) / 60


@pytest.mark.real
async def test_a_rate_per_second_is_multiplied_by_the_step(history: History) -> None:
    out = io.StringIO()
    await export_trace(history.source, f"{QUERY} / 60", start=history.start, end=history.end,
                       step=60, out=out, per_second=True)
    rows = _rows(out.getvalue())
    assert [t for t, _ in rows] == [t for t, _ in _expected()]
    assert [n for _, n in rows] == pytest.approx([n for _, n in _expected()])


@pytest.mark.real
async def test_a_long_range_is_asked_in_chunks_with_the_same_result(
        history: History, monkeypatch: pytest.MonkeyPatch) -> None:
    whole = io.StringIO()
    await export_trace(history.source, QUERY, start=history.start, end=history.end, step=60,
                       out=whole)
    monkeypatch.setattr(trace_export, "CHUNK_STEPS", 7)
    seen: list[tuple[int, int]] = []
    chunked = io.StringIO()
    await export_trace(history.source, QUERY, start=history.start, end=history.end, step=60,
                       out=chunked, progress=lambda done, of: seen.append((done, of)))
    assert chunked.getvalue() == whole.getvalue()
    assert seen == [(i, 18) for i in range(1, 19)]  # 120 steps, 7 a query


@pytest.mark.real
@pytest.mark.parametrize(("query", "message"), [
    pytest.param("tracardi_track_requests", r'/api/v1/query_range: the query returned 2 series '
                 r'\(tracardi_track_requests{ingress="other"}, '
                 r'tracardi_track_requests{ingress="tracardi-track"}\): a trace is one, so '
                 r"wrap it in sum\(\.\.\.\)", id="two-series"),
    pytest.param("sum(rate(tracardi_track_requests[1m])", r"query_range: prometheus 400 bad_data: ",
                 id="bad-query"),
    pytest.param("sum(no_such_metric)", r"^the query returned no data from ", id="no-data"),
    pytest.param(f"{QUERY} - 130", r"query_range: the query's value at .* is -\d+: a trace needs "
                 r"finite requests >= 0", id="negative"),
])
async def test_what_is_not_a_trace_is_refused_and_nothing_written(
        history: History, query: str, message: str) -> None:
    out = io.StringIO()
    with pytest.raises(ExportError, match=message):
        await export_trace(history.source, query, start=history.start, end=history.end, step=60,
                           out=out)
    assert out.getvalue() == ""


@pytest.mark.real
def test_the_command_writes_the_file_or_nothing(
        history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "track.csv"
    args = ["trace", "--prometheus", history.url, "--query", QUERY,
            "--start", str(int(history.start)),
            "--end", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(history.end)),
            "--out", str(out)]
    assert main(args) == 0
    assert _rows(out.read_text()) == _expected()
    err = capsys.readouterr().err
    assert f"trace: {MINUTES - len(GAP)} rows of {MINUTES} steps of 60 s to {out}" in err
    assert "10 steps in 1 gaps had no value" in err
    out.unlink()
    # an unreachable server: exit 1, the address named, no file
    assert main([*args[:2], f"http://127.0.0.1:{free_port()}", *args[3:]]) == 1
    assert "/api/v1/query_range: connection refused (127.0.0.1:" in capsys.readouterr().err
    assert not out.exists()
    # a file that cannot be written: exit 2 before asking anything, what is in the way named
    blocking = tmp_path / "a-file"
    blocking.write_text("")
    assert main([*args[:-1], str(blocking / "track.csv")]) == 2
    assert capsys.readouterr().err == (f"tracardi-autoscaler trace: --out {blocking}: is a "
                                       "file, not a folder to write in\n")
    assert main([*args[:-1], ""]) == 2
    assert "--out : an empty path; name a file" in capsys.readouterr().err
    # a folder that does not exist yet is made, as for the other commands' outputs
    assert main([*args[:-1], str(tmp_path / "new" / "track.csv")]) == 0
    assert _rows((tmp_path / "new" / "track.csv").read_text()) == _expected()
    capsys.readouterr()
    # no query for a bare Prometheus: exit 2
    assert main([*args[:3], *args[5:]]) == 2
    assert "--query is needed with --prometheus" in capsys.readouterr().err
    # a bad time: exit 2 before asking anything
    assert main([*args[:6], "yesterday", *args[7:]]) == 2
    assert "'yesterday' is not a time" in capsys.readouterr().err
    assert not out.exists()


def test_times_and_ranges() -> None:
    assert parse_time("2026-12-01T00:00:00Z") == parse_time("1796083200") == 1796083200.0
    assert parse_time("2026-12-01T01:00:00+01:00") == 1796083200.0
    with pytest.raises(ExportError, match="has no time zone"):
        parse_time("2026-12-01T00:00:00")
    with pytest.raises(ExportError, match=r"--end \(2026-12-01T00:00:00Z\) must come after"):
        check_range(1796083200.0, 1796083200.0, 60)
    with pytest.raises(ExportError, match="spans at most 31 days"):
        check_range(0.0, 32 * 86_400.0, 60)
    with pytest.raises(ExportError, match="--step must be at least 1 s"):
        check_range(0.0, 60.0, 0)
    with pytest.raises(ExportError, match=r"30 s from --start to --end is less than one --step "
                                          r"\(60 s\): a trace needs two values at least"):
        check_range(0.0, 30.0, 60)
    for text in ("nan", "inf", "-1", "1e20"):
        with pytest.raises(ExportError, match=rf"^'{text}' is not a time: give RFC 3339 .* "
                                              "epoch seconds from 0 to 9999-12-31$"):
            parse_time(text)


def test_a_value_that_overflows_with_the_step_is_refused() -> None:
    body = {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": {}, "values": [[1796083200, "1e308"]]}]}}
    reply = Reply(200, json.dumps(body).encode())
    assert trace_export._values(reply, factor=1) == {1796083200.0: 1e308}
    with pytest.raises(RejectedValueError, match=r"at 2026-12-01T00:00:00Z is 1e308 x 60 s: a "
                                                 r"trace needs finite requests >= 0"):
        trace_export._values(reply, factor=60)


@pytest.mark.real
def test_a_configured_source_gives_its_prometheus_and_its_rate(
        history: History, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = yaml.safe_load((Path(__file__).parents[2] / "policies" / "tracardi.yaml")
                             .read_text())
    # what the request-rate policy reads: requests/s (here the minute's requests over 60 s)
    shipped["sources"]["track-requests"].update(url=history.url, query=f"{QUERY} / 60")
    config = tmp_path / "tracardi.yaml"
    config.write_text(yaml.safe_dump(shipped))
    out = tmp_path / "track.csv"
    args = ["trace", "--config", str(config), "--start", str(int(history.start)),
            "--end", str(int(history.end)), "--out", str(out)]
    assert main([*args, "--source", "track-requests"]) == 0
    rows = _rows(out.read_text())
    assert [t for t, _ in rows] == [t for t, _ in _expected()]
    assert [n for _, n in rows] == pytest.approx([n for _, n in _expected()])
    out.unlink()
    # a source that is not Prometheus', or none: exit 2, the Prometheus sources named
    assert main([*args, "--source", "functions"]) == 2
    assert ("'functions' is a pulsar source of " in (err := capsys.readouterr().err)
            and "its Prometheus sources: track-requests" in err)
    assert main([*args, "--source", "nope"]) == 2
    assert "'nope' is not a source of " in capsys.readouterr().err
    assert not out.exists()
