"""The scale bench's machinery end to end for N=4: servers, a daemon process, one record."""

from __future__ import annotations

import asyncio
import json
import math
import time
from pathlib import Path

import pytest

from autoscaler.bench import scale
from autoscaler.bench.plots import plot_scale


def test_generate_every_fourth_is_an_api() -> None:
    names = [(w.name, w.api) for w in scale.generate(8)]
    assert [api for _, api in names] == [False, False, False, True] * 2


def test_quantile_interpolates_inside_the_bucket() -> None:
    buckets = [(0.1, 0.0), (0.2, 10.0), (math.inf, 10.0)]
    assert scale.quantile(buckets, 0.5) == pytest.approx(0.15)
    assert scale.quantile([], 0.5) is None


def test_histograms_count_from_the_start_of_the_run() -> None:
    def text(fast: int, slow: int) -> str:
        name = "tracardi_autoscaler_evaluation_pass_seconds"
        return (f"# TYPE {name} histogram\n"
                f'{name}_bucket{{le="0.05"}} {fast}\n{name}_bucket{{le="1.0"}} {fast + slow}\n'
                f'{name}_bucket{{le="+Inf"}} {fast + slow}\n{name}_count {fast + slow}\n'
                f"{name}_sum 1.0\n")

    # Two slow passes at start-up, then three fast ones during the run.
    buckets = scale.since(text(3, 2), text(0, 2), "tracardi_autoscaler_evaluation_pass_seconds")
    assert buckets == [(0.05, 3.0), (1.0, 3.0), (math.inf, 3.0)]
    assert (scale.quantile(buckets, 0.99) or 1.0) <= 0.05


def test_start_up_ends_with_every_dependency_up() -> None:
    def text(up: dict[str, int], passes: int) -> str:
        lines = ["# TYPE tracardi_autoscaler_dependency_up gauge"]
        lines += [f'tracardi_autoscaler_dependency_up{{dependency="{d}"}} {v}'
                  for d, v in up.items()]
        name = "tracardi_autoscaler_evaluation_pass_seconds"
        lines += [f"# TYPE {name} histogram", f'{name}_bucket{{le="+Inf"}} {passes}',
                  f"{name}_count {passes}", f"{name}_sum 0.5"]
        return "\n".join(lines) + "\n"

    assert scale.started_up(text({"pulsar": 1, "redis": 0}, 2)) == (False, 2.0)
    assert scale.started_up(text({"pulsar": 1, "redis": 1}, 3)) == (True, 3.0)
    assert scale.started_up(text({}, 3)) == (False, 3.0)  # no verdict yet is not "all up"


async def test_the_interval_starts_once_a_round_of_polls_has_ended() -> None:
    counts = scale.Counts(last_source_at=time.monotonic() - 5.0)  # quiet for a while already
    arrivals: list[float] = []

    async def request() -> None:
        counts.source += 1
        counts.last_source_at = time.monotonic()
        arrivals.append(counts.last_source_at)

    async def polls() -> None:
        await asyncio.sleep(0.1)
        await request()  # a lone request is not a round
        await asyncio.sleep(0.3)
        for _ in range(5):  # a round: requests 50 ms apart, never quiet for 200 ms
            await request()
            await asyncio.sleep(0.05)

    task = asyncio.create_task(polls())
    await scale._quiet(counts, 0.2, round_size=5)

    assert task.done() and len(arrivals) == 6
    assert time.monotonic() - arrivals[-1] >= 0.2


def test_kube_verbs() -> None:
    assert scale.kube_verb("GET", "/api/v1/namespaces/t/pods", {}) == "list"
    assert scale.kube_verb("GET", "/api/v1/namespaces/t/pods", {"watch": "true"}) == "watch"
    assert scale.kube_verb("GET", "/apis/apps/v1/namespaces/t/deployments/a/scale", {}) == "get"
    assert scale.kube_verb("PUT", "/apis/apps/v1/namespaces/t/deployments/a/scale", {}) \
        == "update"


def test_scale_bench_record_for_four_workloads() -> None:
    # 28 s: the raises (from 4.2 s, one a 1.4 s) end at 14 s, and the idle window starts 12 s
    # later (IDLE_GAP_SECONDS), so the run has scale writes, reactions and an idle window.
    record = asyncio.run(scale.run_one(4, seconds=28.0))
    for key in scale.KEYS:
        assert key in record, key
    assert record["workloads"] == 4
    assert record["raised"] == 4
    assert record["startup_s"] > 0
    assert record["cpu_cores"] > 0 and record["rss_mb"] > 0  # read from the daemon's /proc
    assert record["connections"] >= 1
    assert record["source_requests_per_min"] > 0
    verbs = record["kube_requests_per_min"]
    assert verbs.get("update", 0) > 0  # every raised workload was scaled
    # Nothing changes in the idle window, so the daemon writes nothing in it.
    assert record["idle_window_s"] > 0
    assert record["kube_writes_while_idle"] == 0
    for low, high in (("eval_p50_ms", "eval_p99_ms"), ("reaction_p50_s", "reaction_p99_s"),
                      ("change_to_write_p50_s", "change_to_write_p99_s")):
        assert record[low] is not None and record[high] is not None, low
        assert 0 < record[low] <= record[high], low
    assert scale.table([record]).splitlines()[1].startswith("4 ")


def test_scale_plot_writes_a_png(tmp_path: Path) -> None:
    records = [{"workloads": n, "eval_p50_ms": 0.2 * n, "eval_p99_ms": 5.0 * n,
                "cpu_cores": 0.0003 * n, "rss_mb": 100 + 0.07 * n,
                "source_requests_per_min": 26.0 * n,
                "kube_requests_per_min": {"get": 1.2 * n, "update": 36.0}}
               for n in (10, 100, 1000)]
    out = tmp_path / "plots" / "scale.png"
    plot_scale(records, out)
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_json_goes_where_asked_even_into_a_folder_not_made_yet(tmp_path: Path) -> None:
    out = tmp_path / "out" / "scale.json"
    scale.write_json([{"workloads": 10, "eval_p50_ms": 0.5}], out)
    assert json.loads(out.read_text()) == {"scale": [{"workloads": 10, "eval_p50_ms": 0.5}]}
