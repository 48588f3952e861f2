"""The dashboard and the alert rules against a real Prometheus scraping the real daemon.

`tracardi-autoscaler demo --no-ui` runs the daemon against the simulated Tracardi cluster; a
real `prometheus` scrapes it every second and loads deploy/prometheus/rules.yaml. After ~25 s
every dashboard query (with `$__rate_interval` as 30s and the variables as `.*`) must return
data, every metric an expression names must be among those scraped, and every rule expression
must evaluate without error (alerts may rightly be quiet).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploy_support import (
    DASHBOARD,
    REPO,
    RULES,
    dashboard_exprs,
    promql_metric_names,
    require_tool,
    rule_exprs,
    run,
)

from autoscaler.localport import free_port

pytestmark = pytest.mark.real

WARM_UP_SECONDS = 25.0
JOB = "tracardi-autoscaler"



@dataclass(frozen=True)
class Prometheus:
    """The HTTP API of the Prometheus this module starts."""

    url: str

    def api(self, path: str, **params: str) -> dict[str, Any]:
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += f"?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=10) as resp:
                body: dict[str, Any] = json.loads(resp.read())
        except urllib.error.HTTPError as exc:  # 400/422 carry a JSON error
            body = json.loads(exc.read())
        return body

    def query(self, expr: str) -> dict[str, Any]:
        return self.api("query", query=expr)


def _panel_query(expr: str) -> str:
    """What Grafana would send with every variable at `All`."""
    return (expr.replace("$__rate_interval", "30s")
            .replace("$namespace", ".*").replace("$workload", ".*"))


def _demo_command() -> list[str]:
    cli = Path(sys.executable).parent / "tracardi-autoscaler"
    help_ = run([str(cli), "demo", "--help"])
    if help_.returncode != 0:
        message = (f"`tracardi-autoscaler demo --help` failed, so the daemon cannot be scraped:"
                   f"\n{help_.stderr}")
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(f"!!! THE DASHBOARD AND RULES ARE NOT CHECKED AGAINST REAL DATA: {message}")
    return [str(cli), "demo", "--no-ui"]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait(what: str, ready: Callable[[], bool], *, seconds: float,
          alive: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for proc, log in zip(alive, logs, strict=True):
            if proc.poll() is not None:
                pytest.fail(f"{proc.args[0]} exited with {proc.returncode} while waiting for "
                            f"{what}:\n{log.read_text()[-3000:]}")
        try:
            if ready():
                return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"timed out after {seconds:.0f} s waiting for {what}")


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    demo = _demo_command()
    binary = require_tool("prometheus")
    tmp = tmp_path_factory.mktemp("dashboard-prometheus")
    metrics_port, prometheus_port = free_port(), free_port()
    demo_log, prometheus_log = tmp / "demo.log", tmp / "prometheus.log"
    config = tmp / "prometheus.yml"
    config.write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": JOB, "static_configs": [
            {"targets": [f"127.0.0.1:{metrics_port}"]}]}],
    }))
    started = time.monotonic()
    with demo_log.open("wb") as demo_out, prometheus_log.open("wb") as prometheus_out:
        daemon = subprocess.Popen(
            [*demo, "--duration", "120", "--speed", "20", "--metrics-port", str(metrics_port),
             "--kubeconfig-out", str(tmp / "kubeconfig")],
            cwd=REPO, stdout=demo_out, stderr=subprocess.STDOUT)
        server = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{prometheus_port}", "--log.level=warn"],
            stdout=prometheus_out, stderr=subprocess.STDOUT)
        api = Prometheus(f"http://127.0.0.1:{prometheus_port}")
        procs, logs = [daemon, server], [demo_log, prometheus_log]
        try:
            _wait("Prometheus to scrape the daemon",
                  lambda: bool(api.query(f'up{{job="{JOB}"}} == 1')["data"]["result"]),
                  seconds=60, alive=procs, logs=logs)
            remaining = WARM_UP_SECONDS - (time.monotonic() - started)
            _wait("the warm-up", lambda: time.monotonic() - started >= WARM_UP_SECONDS,
                  seconds=max(remaining, 0) + 5, alive=procs, logs=logs)
            yield api
        finally:
            _stop(daemon)
            _stop(server)


def _failures(prometheus: Prometheus, exprs: list[tuple[str, str]], *,
              need_data: bool) -> list[str]:
    failures = []
    for where, expr in exprs:
        answer = prometheus.query(_panel_query(expr))
        if answer.get("status") != "success":
            failures.append(f"{where}: {answer.get('errorType')}: {answer.get('error')}")
        elif need_data and not answer["data"]["result"]:
            failures.append(f"{where}: no data for {_panel_query(expr)}")
    return failures


def test_every_dashboard_query_returns_data(prometheus: Prometheus) -> None:
    exprs = dashboard_exprs(json.loads(DASHBOARD.read_text()))
    failures = _failures(prometheus, exprs, need_data=True)
    assert not failures, f"{len(failures)} of {len(exprs)} queries failed:\n" + "\n".join(
        failures)


def test_every_dashboard_variable_has_values(prometheus: Prometheus) -> None:
    for variable in json.loads(DASHBOARD.read_text())["templating"]["list"]:
        if variable["type"] != "query":
            continue
        selector = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["query"]["query"])
        assert selector, variable["name"]
        answer = prometheus.query(_panel_query(selector.group(1)))
        labels = {s["metric"].get(selector.group(2)) for s in answer["data"]["result"]}
        assert labels - {None}, f"${variable['name']} would have no values"


def test_every_rule_expression_evaluates(prometheus: Prometheus) -> None:
    exprs = rule_exprs(yaml.safe_load(RULES.read_text()))
    failures = _failures(prometheus, exprs, need_data=False)
    assert not failures, "\n".join(failures)


def test_the_loaded_rules_are_healthy(prometheus: Prometheus) -> None:
    """Prometheus itself loaded rules.yaml and evaluated every rule without error."""
    groups = prometheus.api("rules")["data"]["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    assert set(loaded) == {name for name, _ in rule_exprs(yaml.safe_load(RULES.read_text()))}
    errors = {name: r.get("lastError") for name, r in loaded.items() if r["health"] == "err"}
    assert not errors, errors
    assert all(r["health"] == "ok" for r in loaded.values()), "not every rule evaluated yet"


def test_expressions_name_only_scraped_metrics(prometheus: Prometheus) -> None:
    answer = prometheus.query('group by (__name__) ({__name__=~"tracardi_autoscaler_.+"})')
    scraped = {s["metric"]["__name__"] for s in answer["data"]["result"]}
    assert scraped, "nothing scraped from the daemon"
    exprs = (dashboard_exprs(json.loads(DASHBOARD.read_text()))
             + rule_exprs(yaml.safe_load(RULES.read_text())))
    missing = {where: sorted(promql_metric_names(e) - scraped) for where, e in exprs
               if promql_metric_names(e) - scraped}
    assert not missing, f"metrics the daemon did not export during the demo: {missing}"
