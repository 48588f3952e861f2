"""`tracardi-autoscaler bench` and `simulate` as an operator runs them: the traces they are
given, the JSON they write, the progress they show."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from autoscaler.bench.contenders import run_ours
from autoscaler.bench.scenario import build_setup
from autoscaler.cli import default_config_path, main
from autoscaler.config import load_config
from autoscaler.ports import PodEvent
from autoscaler.sim.adapters import ModelCluster
from autoscaler.sim.traces import Trace


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


def test_simulate_shows_how_much_of_the_trace_is_done_and_changes_no_number(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = trace(tmp_path, "rise", [100, 100, 300, 300, 300])
    shown, quiet = tmp_path / "shown.json", tmp_path / "quiet.json"
    assert main(["simulate", "--trace", a, "--scenario", "worker", "--json", str(shown)]) == 0
    err = capsys.readouterr().err
    assert re.search(r"simulated 300 s of 300 s \(100 %\) in \d+ s\n$", err), err
    assert main(["simulate", "--trace", a, "--scenario", "worker", "--json", str(quiet),
                 "--no-progress"]) == 0
    assert "simulated" not in capsys.readouterr().err

    def scores(path: Path) -> dict[str, object]:
        run = json.loads(path.read_text())["runs"][0]
        del run["wall_s"]
        return dict(run)

    assert scores(shown) == scores(quiet)
    assert scores(shown)["duration_s"] == 300


@pytest.mark.parametrize("command", ["simulate", "bench"])
def test_a_replay_whose_daemon_fails_gives_no_scores_and_says_why(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken_watch(self: ModelCluster, namespace: str) -> AsyncIterator[PodEvent]:
        raise RuntimeError("the pod watch broke")
        yield  # an async generator, as the real one

    monkeypatch.setattr(ModelCluster, "watch_pods", broken_watch)  # forked workers inherit it
    a = trace(tmp_path, "rise", [100, 100, 300, 300, 300])
    out = tmp_path / "runs.json"
    code = main([command, "--trace", a, "--scenario", "worker", "--json", str(out),
                 "--no-progress"])
    assert code == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        "tracardi-autoscaler: rise worker: the replayed daemon stopped early: task "
        "pod-watch:tracardi failed: RuntimeError: the pod watch broke"]
    assert "replica_seconds" not in captured.out and not out.exists()


def test_a_replay_prints_none_of_its_daemons_log_lines(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    a = trace(tmp_path, "rise", [100, 100, 300, 300, 300])
    assert main(["bench", "--trace", a, "--scenario", "healing", "--no-progress"]) == 0
    err = capfd.readouterr().err
    assert '"event"' not in err, err


def test_a_trace_that_ends_before_the_outage_says_so(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = trace(tmp_path, "short", [100, 300])  # 120 s: over before the outage begins
    cut = trace(tmp_path, "cut", [100] * 5 + [300] * 5)  # 600 s: the outage (120-720 s) cut
    long = trace(tmp_path, "long", [100] * 10 + [300] * 10)  # 1200 s: the whole outage
    assert main(["bench", "--trace", short, cut, long, "--scenario", "worker-outage",
                 "--no-progress"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines()
             if line.startswith("note: ")]
    assert notes == [
        "note: short: worker-outage has no outage: the trace ends at 120 s, before the outage "
        "(120-720 s); its rows are worker's",
        "note: cut: worker-outage's outage (120-720 s) is cut short by the end of the trace at "
        "600 s"]
    assert main(["simulate", "--trace", short, "--scenario", "worker-outage",
                 "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[-1].startswith("note: short: worker-outage "
                                                               "has no outage")
    assert main(["simulate", "--trace", short, "--scenario", "worker", "--no-progress"]) == 0
    assert "note:" not in capsys.readouterr().out


def test_workload_picks_which_of_the_configs_workloads_is_replayed(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = trace(tmp_path, "rise", [100, 100, 300, 300, 300])
    default, collector = tmp_path / "default.json", tmp_path / "collector.json"
    assert main(["simulate", "--trace", a, "--scenario", "worker", "--no-progress",
                 "--json", str(default)]) == 0
    assert main(["simulate", "--trace", a, "--scenario", "worker", "--workload",
                 "wk-pl-collector", "--peak-replicas", "10", "--no-progress",
                 "--json", str(collector)]) == 0
    assert "note:" not in capsys.readouterr().out

    def run(path: Path) -> dict[str, object]:
        return dict(json.loads(path.read_text())["runs"][0])

    assert run(default)["workload"] == "wk-pl-background"  # the first with a backlog policy
    assert run(collector)["workload"] == "wk-pl-collector"
    out = tmp_path / "bench.json"
    assert main(["bench", "--trace", a, "--scenario", "worker", "--workload", "wk-pl-collector",
                 "--peak-replicas", "10", "--no-progress", "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    assert {r["workload"] for r in runs} == {"wk-pl-collector"}
    ours = next(r for r in runs if r["contender"] == "ours")
    assert ours["replica_seconds"] == run(collector)["replica_seconds"]


@pytest.mark.parametrize(("argv", "error"), [
    (["--scenario", "worker", "--workload", "nope"],
     "no workload 'nope'; its workloads: be-fa-public, wk-pl-background"),
    (["--scenario", "api", "--workload", "wk-pl-collector"],
     "workload 'wk-pl-collector' has no 'request-rate' policy on a PrometheusSource source or "
     "an 'hpa' policy on CPU or on an External metric of a PrometheusSource source, which this "
     "scenario replays; the workloads that have one: be-fa-public"),
    (["--scenario", "healing", "--workload", "wk-pl-workflow"],
     "the healing scenario needs workload 'wk-pl-workflow' to heal and to read its consumers"),
])
@pytest.mark.parametrize("command", ["simulate", "bench"])
def test_a_workload_the_scenario_cannot_replay_is_named_and_nothing_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, argv: list[str],
        error: str) -> None:
    a = trace(tmp_path, "flat", [100] * 5)
    out = tmp_path / "out.json"
    assert main([command, "--trace", a, *argv, "--no-progress", "--json", str(out)]) == 2
    assert error in capsys.readouterr().err
    assert not out.exists()


def test_bench_workload_needs_a_scenario_it_replays(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--workload", "wk-pl-collector", "--no-progress"]) == 2
    assert "--workload needs --scenario" in capsys.readouterr().err
    for other in (["--scenario", "chaos"], ["--scale", "10"]):
        assert main(["bench", "--workload", "wk-pl-collector", *other, "--no-progress"]) == 2
        assert "not for --scale or the chaos soak" in capsys.readouterr().err


def test_a_workload_whose_max_is_under_the_peak_is_named(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = trace(tmp_path, "rise", [100, 100, 300, 300, 300])
    assert main(["simulate", "--trace", a, "--scenario", "worker", "--workload",
                 "wk-pl-collector", "--no-progress"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == (
        "note: worker: workload 'wk-pl-collector' may have at most 10 pods, and the trace's peak "
        "needs 20 (--peak-replicas): it cannot keep up there; replay it with --peak-replicas 10 "
        "or less")
    assert main(["bench", "--trace", a, "--scenario", "worker", "--scenario", "api",
                 "--workload", "wk-pl-collector", "--no-progress"]) == 2  # api: not its policy
    capsys.readouterr()
    assert main(["bench", "--trace", a, "--scenario", "worker", "--no-progress"]) == 0
    assert "note:" not in capsys.readouterr().out  # the shipped default's max is 30


def test_capacity_factor_replays_pods_that_serve_less_than_the_policy_states(
        tmp_path: Path) -> None:
    a = trace(tmp_path, "rise", [100, 100, 300, 300, 300, 300, 300, 300, 300, 300])
    # the shipped config with the API's policy trusting capacity_rps, not learning from CPU
    config = yaml.safe_load(default_config_path().read_text())
    config["workloads"]["be-fa-public"]["policies"][0]["learn_from_cpu"] = False
    trusting = tmp_path / "trusting.yaml"
    trusting.write_text(yaml.safe_dump(config))

    def run(*extra: str) -> dict[str, object]:
        out = tmp_path / "run.json"
        assert main(["simulate", "--config", str(trusting), "--trace", a, "--scenario", "api",
                     "--no-progress", "--json", str(out), *extra]) == 0
        return dict(json.loads(out.read_text())["runs"][0])

    stated, slower = run(), run("--capacity-factor", "0.5")
    # a policy that trusts capacity_rps, with pods that serve half of it, asks for about half
    # the pods the peak needs (a step to 20 pods' worth), and the API stays late
    viol = (stated["slo_violation_seconds"], slower["slo_violation_seconds"])
    assert isinstance(viol[0], int) and isinstance(viol[1], int)
    assert viol[1] > 4 * viol[0] and viol[1] > 300, viol
    assert slower["replica_seconds"] < stated["replica_seconds"]  # fewer pods asked for
    out = tmp_path / "bench.json"
    assert main(["bench", "--trace", a, "--scenario", "worker", "--capacity-factor", "0.5",
                 "--no-progress", "--json", str(out)]) == 0
    runs = json.loads(out.read_text())["runs"]
    static = next(r for r in runs if r["contender"] == "static")
    oracle = next(r for r in runs if r["contender"] == "oracle")
    # the peak still needs 20 of the (slower) pods: static and the oracle size for those
    assert static["replica_seconds"] == 20 * 600
    assert oracle["replica_seconds"] <= 20 * 600


@pytest.mark.parametrize("argv", [["simulate", "--scenario", "healing"], ["bench"],
                                  ["bench", "--scenario", "chaos"], ["bench", "--scale", "10"]])
def test_capacity_factor_is_refused_where_it_does_not_apply(
        argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--capacity-factor", "0.5", "--no-progress"]) == 2
    assert "--capacity-factor is for --scenario api, worker and worker-outage" in (
        capsys.readouterr().err)


def test_with_a_capacity_factor_keda_still_sizes_by_what_the_policy_states() -> None:
    loaded = load_config(default_config_path())
    flat = Trace("flat", (10.0,) * 60, 1)
    setup = build_setup(loaded, flat, "api", peak_replicas=20, capacity_factor=0.5)
    assert (setup.capacity, setup.policy_capacity) == (50.0, 100.0)  # capacity_rps: 100
    assert max(setup.trace.rates) == 20 * 50.0  # the peak needs 20 of the slower pods
    same = build_setup(loaded, flat, "worker", peak_replicas=20)
    assert (same.capacity, same.policy_capacity) == (50.0, 50.0)  # msgs_per_second: 50


def external_hpa(folder: Path) -> str:
    """The shipped config with the API scaled as by KEDA's Prometheus scaler: an `hpa` policy on
    the request rate as an External metric, 80 requests/s per pod, HPA behavior."""
    config = yaml.safe_load(default_config_path().read_text())
    api = config["workloads"]["be-fa-public"]
    api["policies"] = [{"name": "hpa", "metric": {
        "type": "External", "source": "track-requests",
        "target": {"type": "AverageValue", "average_value": 80.0}}}]
    api["behavior"] = {}
    path = folder / "external.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_an_hpa_on_an_external_metric_is_replayed_with_what_a_pod_serves(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = external_hpa(tmp_path)
    a = trace(tmp_path, "rise", [100] * 10 + [400] * 20)
    out = tmp_path / "run.json"
    # The target is in requests/s: it says nothing of what a pod serves, which the replay needs.
    for command in ("simulate", "bench"):
        assert main([command, "--config", config, "--trace", a, "--scenario", "api",
                     "--no-progress", "--json", str(out)]) == 2
        assert "give it with --capacity-rps" in capsys.readouterr().err
        assert not out.exists()
    assert main(["simulate", "--config", config, "--trace", a, "--scenario", "api",
                 "--capacity-rps", "100", "--no-progress", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["runs"][0]["workload"] == "be-fa-public"
    # Pods that serve 60/s, a peak that needs 20 of them (1200/s): the HPA asks for
    # ceil(1200 / 80) = 15 pods, and ceil(300 / 80) = 4 before the rise.
    loaded = load_config(config)
    rise = Trace("rise", (100.0,) * 600 + (400.0,) * 1200, 1)
    setup = build_setup(loaded, rise, "api", peak_replicas=20, capacity_rps=60.0)
    assert setup.capacity == 60.0
    model = setup.model(seed=1)
    run_ours(loaded, setup, model)
    before = [new for at, _, new in model.scale_log if at < 600]
    after = [new for at, _, new in model.scale_log if at >= 600]
    assert before and before[-1] == 4
    assert after and max(after) == 15 and after[-1] == 15


@pytest.mark.parametrize(("argv", "error"), [
    (["simulate", "--scenario", "api"], "'be-fa-public' (scenario api) is scaled by "
                                        "'request-rate', which does"),
    (["bench", "--scenario", "worker"], "'wk-pl-background' (scenario worker) is scaled by "
                                        "'backlog', which does"),
    (["bench", "--scenario", "chaos"], "--scale and the chaos soak size their own pods"),
])
def test_capacity_rps_is_refused_where_the_policy_states_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], error: str) -> None:
    a = trace(tmp_path, "flat", [100] * 5)
    assert main([*argv, "--trace", a, "--capacity-rps", "100", "--no-progress"]) == 2
    assert error in capsys.readouterr().err
