"""What an operator sees when something is wrong before or outside the config: one line that
names what to fix and a non-zero exit code, not a traceback or a silent exit 0."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest
import structlog
import yaml
from daemon_support import bench_daemon

from autoscaler.cli import main
from autoscaler.kube.cluster import kube_error
from autoscaler.kube.connect import KubeconfigError, connect
from autoscaler.sim.kubeapi import write_kubeconfig, written_kubeconfig
from autoscaler.telemetry import configure_logging


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["run", "--metrics-port", "99999"], "99999 is not a port", id="port-range"),
    pytest.param(["run", "--metrics-port", "http"], "'http' is not a whole number",
                 id="port-word"),
    pytest.param(["demo", "--speed", "0"], "0 is not a number above 0", id="speed-zero"),
    pytest.param(["demo", "--duration", "-3"], "-3 is not a number above 0",
                 id="duration-negative"),
    pytest.param(["bench", "--workers", "0"], "--workers: 0 is below 1", id="workers-zero"),
    pytest.param(["simulate", "--peak-replicas", "-5"], "--peak-replicas: -5 is below 1",
                 id="peak-negative"),
    pytest.param(["simulate", "--capacity-factor", "1e-308"],
                 "--capacity-factor: 1e-308 is not from 0.001 to 1000", id="factor-tiny"),
    pytest.param(["simulate", "--capacity-factor", "1e308"],
                 "--capacity-factor: 1e308 is not from 0.001 to 1000", id="factor-huge"),
    pytest.param(["bench", "--hours", "nan"], "--hours: nan is not a number above 0",
                 id="hours-nan"),
    pytest.param(["bench", "--hours", "1e-9"], "--hours: 1e-9 is not from 0.01 to 744",
                 id="hours-tiny"),
    pytest.param(["bench", "--scale-seconds", "inf"],
                 "--scale-seconds: inf is not a number above 0", id="scale-seconds-inf"),
])
def test_a_bad_number_on_the_command_line_is_refused_by_name(
        argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_a_scale_list_that_is_not_numbers_names_the_option(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "--scale", "abc"]) == 2
    assert "--scale wants positive integers" in capsys.readouterr().err


async def test_a_missing_kubeconfig_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    with pytest.raises(KubeconfigError, match=r"nowhere\.yaml: no such file; pass --kubeconfig"):
        await connect(missing)


async def test_a_kubeconfig_that_is_not_yaml_names_the_file_and_the_fault(
        tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text("clusters: [\n")
    with pytest.raises(KubeconfigError, match=r"kubeconfig .*kubeconfig: ParserError"):
        await connect(bad)


@pytest.mark.parametrize(("text", "found"), [
    pytest.param("", "the file is empty", id="empty"),
    pytest.param("hello\n", "its top level is the value 'hello'", id="a-word"),
    pytest.param("- a\n- b\n", "its top level is a list", id="a-list"),
])
async def test_a_kubeconfig_that_is_no_mapping_says_so(tmp_path: Path, text: str,
                                                       found: str) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text(text)
    with pytest.raises(KubeconfigError) as refused:
        await connect(bad)
    assert str(refused.value) == (f"kubeconfig {bad}: not a kubeconfig (a YAML mapping of "
                                  f"clusters, contexts and users): {found}")


async def test_a_kubeconfig_whose_server_is_no_url_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "kubeconfig"
    bad.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "x",
        "clusters": [{"name": "c", "cluster": {"server": "not a url"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}))
    with pytest.raises(KubeconfigError, match=r"the cluster's server 'not a url' is not an "
                                              r"https:// URL"):
        await connect(bad)


def test_explain_with_a_kubeconfig_directory_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["explain", "--kubeconfig", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == (f"tracardi-autoscaler: kubeconfig {tmp_path}: a directory; pass "
                   "--kubeconfig, set $KUBECONFIG, or run in a pod with a service account\n")


async def test_a_kubeconfig_without_a_context_names_the_file(tmp_path: Path) -> None:
    empty = tmp_path / "kubeconfig"
    empty.write_text("apiVersion: v1\nkind: Config\n")
    with pytest.raises(KubeconfigError, match=r"kubeconfig .*kubeconfig: ConfigException"):
        await connect(empty)


def test_explain_with_a_missing_kubeconfig_is_one_line_and_exit_2(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["explain", "--kubeconfig", str(tmp_path / "nowhere.yaml")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("tracardi-autoscaler: kubeconfig ") and "no such file" in err
    assert "Traceback" not in err


async def test_a_failed_task_ends_the_run_with_its_reason(tmp_path: Path) -> None:
    class _Cluster:
        pass

    daemon = bench_daemon(tmp_path, _Cluster())

    async def endpoints() -> None:
        raise OSError(98, "address already in use")

    daemon.a.extra_tasks = {"endpoints": endpoints}
    await asyncio.wait_for(daemon.run(), 15)
    assert daemon.failure == "task endpoints failed: OSError: [Errno 98] address already in use"


async def test_a_stopped_run_has_no_failure(tmp_path: Path) -> None:
    class _Cluster:
        pass

    daemon = bench_daemon(tmp_path, _Cluster())
    daemon.stop()
    await asyncio.wait_for(daemon.run(), 15)
    assert daemon.failure is None


def test_a_logged_exception_keeps_its_text_in_json(capsys: pytest.CaptureFixture[str]) -> None:
    saved = structlog.get_config()
    try:
        configure_logging(json=True, level=logging.INFO)
        try:
            raise OSError(98, "address already in use")
        except OSError:
            structlog.get_logger().exception("task_failed", task="endpoints")
        line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    finally:
        structlog.configure(**saved)
    assert line["event"] == "task_failed"
    assert "OSError: [Errno 98] address already in use" in line["exception"]


def _short_trace(tmp_path: Path) -> Path:
    path = tmp_path / "flat.csv"
    path.write_text("t_seconds,requests\n" + "".join(f"{t},100\n" for t in range(120)))
    return path


@pytest.mark.parametrize(("flag", "where", "message"), [
    pytest.param("--json", "flat.csv/x.json", "flat.csv: is a file, not a folder to write in",
                 id="json-under-file"),
    pytest.param("--plot", "plot.txt", "cannot plot to '.txt'", id="plot-format"),
    pytest.param("--plot", ".", "is a directory; name a file", id="plot-directory"),
])
def test_simulate_refuses_an_output_it_cannot_write_before_it_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, where: str,
        message: str) -> None:
    trace = _short_trace(tmp_path)
    code = main(["simulate", "--trace", str(trace), "--no-progress", flag,
                 str(tmp_path / where)])
    out, err = capsys.readouterr()
    assert code == 2
    assert message in err
    assert out == ""  # refused before the run, not after it


@pytest.mark.parametrize("argv", [
    pytest.param(["--scenario", "api", "--plots", "{file}/plots"], id="replay-plots"),
    pytest.param(["--scenario", "chaos", "--hours", "0.01", "--json", "{file}/soak.json"],
                 id="chaos-json"),
    pytest.param(["--scale", "1", "--scale-seconds", "1", "--json", "{file}/scale.json"],
                 id="scale-json"),
])
def test_bench_refuses_an_output_it_cannot_write_before_it_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    trace = _short_trace(tmp_path)
    code = main(["bench", "--trace", str(trace), "--no-progress",
                 *(a.format(file=trace) for a in argv)])
    out, err = capsys.readouterr()
    assert code == 2
    assert err == f"{trace}: is a file, not a folder to write in\n"
    assert out == ""  # refused before the runs, not after them


def test_bench_refuses_a_config_without_the_scenarios_workload_before_it_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "empty.yaml"
    config.write_text("workloads: {}\n")
    code = main(["bench", "--config", str(config), "--trace", str(_short_trace(tmp_path)),
                 "--scenario", "worker", "--scenario", "api", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2
    assert err.strip() == f"{config}: no workload with a 'backlog' policy on a PulsarSource source"
    assert out == ""


async def test_explain_names_why_a_deployment_could_not_be_read(tmp_path: Path) -> None:
    from autoscaler.runtime import explain_report, format_explain  # noqa: PLC0415

    class _ForbiddenError(Exception):
        reason = "Forbidden"

    class _Cluster:
        async def get_workload(self, namespace: str, deployment: str) -> None:
            raise _ForbiddenError('deployments.apps "wk-0000" is forbidden')

    daemon = bench_daemon(tmp_path, _Cluster())
    await daemon.explain()
    [workload] = explain_report(daemon)["workloads"]
    assert workload["decision"] is None
    assert workload["error"] == 'Forbidden: deployments.apps "wk-0000" is forbidden'
    assert ("decision    none: the Deployment could not be read: Forbidden: deployments.apps"
            in format_explain({"workloads": [workload]}))


async def test_a_read_error_names_its_reason_once(tmp_path: Path) -> None:
    class _Cluster:
        async def get_workload(self, namespace: str, deployment: str) -> None:
            raise kube_error(TimeoutError())

    daemon = bench_daemon(tmp_path, _Cluster())
    await daemon.explain()
    [state] = daemon.workloads.values()
    assert state.read_error == "Unreachable: TimeoutError: no answer in time"


@pytest.mark.parametrize("server", ["refuses", "never-answers"])
def test_explain_against_a_server_that_does_not_answer_fails_in_seconds(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        server: str) -> None:
    import socket  # noqa: PLC0415

    from autoscaler import runtime  # noqa: PLC0415

    monkeypatch.setattr(runtime, "EXPLAIN_REACH_SECONDS", 0.5)
    listener = socket.create_server(("127.0.0.1", 0))  # accepts, and never says a word
    port = listener.getsockname()[1]
    if server == "refuses":
        listener.close()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
    try:
        assert main(["explain", "--kubeconfig", str(kubeconfig)]) == 1
    finally:
        listener.close()
    err = capsys.readouterr().err
    assert err.startswith(f"tracardi-autoscaler: the API server http://127.0.0.1:{port} did not "
                          "answer GET /version: ")
    assert ("no answer within 0.5 s" if server == "never-answers" else "Cannot connect") in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_check_into_a_pipe_that_closes_early_prints_no_traceback(tmp_path: Path) -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    from autoscaler.cli import default_config_path  # noqa: PLC0415

    files = [str(default_config_path())] * 400  # well over a pipe buffer of output
    proc = subprocess.Popen([sys.executable, "-m", "autoscaler.cli", "check", *files],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # as `| head -1` does
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait(timeout=60) == 1
    assert first.endswith(b"ok, 6 workload(s), 4 dependencies, 4 sources\n")
    assert "Traceback" not in err and "BrokenPipeError" not in err


def test_demo_never_replaces_a_kubeconfig_it_did_not_write(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    own = tmp_path / "config"
    own.write_text("apiVersion: v1\nkind: Config\n"
                   "contexts: [{name: prod, context: {cluster: prod, user: admin}}]\n")
    before = own.read_bytes()
    assert main(["demo", "--no-ui", "--duration", "1", "--kubeconfig-out", str(own)]) == 2
    assert capsys.readouterr().err == (
        f"demo: --kubeconfig-out {own}: exists and is not a kubeconfig an earlier demo wrote, "
        "which the demo would replace; name another file\n")
    assert own.read_bytes() == before
    assert main(["demo", "--no-ui", "--duration", "1", "--kubeconfig-out", str(tmp_path)]) == 2
    assert "is a directory; name a file" in capsys.readouterr().err
    # One an earlier demo wrote is its to replace.
    earlier = write_kubeconfig(tmp_path / "sim", "http://127.0.0.1:1")
    assert written_kubeconfig(earlier) and not written_kubeconfig(own)


def test_run_on_an_address_not_of_this_host_names_the_host_setting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from autoscaler.cli import default_config_path  # noqa: PLC0415

    saved = structlog.get_config()
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", "http://127.0.0.1:1")
    try:
        code = main(["run", "--config", str(default_config_path()), "--kubeconfig",
                     str(kubeconfig), "--metrics-host", "192.0.2.7", "--metrics-port", "9",
                     "--no-leader-election"])
    finally:
        structlog.configure(**saved)
    assert code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "tracardi-autoscaler: cannot serve /metrics, /healthz and /readyz on 192.0.2.7:9: "
        "cannot assign requested address; give --metrics-host an address of this host")


async def test_the_endpoints_log_the_port_they_were_given_by_the_system(tmp_path: Path) -> None:
    import aiohttp  # noqa: PLC0415

    from autoscaler.runtime import serving_endpoints  # noqa: PLC0415

    class _Cluster:
        pass

    daemon = bench_daemon(tmp_path, _Cluster())
    with structlog.testing.capture_logs() as logs:
        async with serving_endpoints(daemon, host="127.0.0.1", port=0):
            [address] = next(e["addresses"] for e in logs if e["event"] == "endpoints_listening")
            assert not address.endswith(":0")
            async with aiohttp.ClientSession() as session, session.get(
                    f"{address}/healthz") as response:
                assert (response.status, await response.text()) == (200, "ok\n")
