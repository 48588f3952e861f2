"""PrometheusSource against a real Prometheus that this test starts and feeds.

The exporter serves the real Pulsar broker metrics capture (`samples/pulsar/
broker-metrics-excerpt.txt`, scraped with its old timestamps ignored) plus a counter that grows
on every scrape, so `rate()` has something to measure.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from wire_fakes import require_binary, sample, wait_for_prometheus

from autoscaler.config import PrometheusSource as PrometheusSettings
from autoscaler.localport import free_port
from autoscaler.model import Signal
from autoscaler.sources.http import Reply, SessionPool
from autoscaler.sources.prometheus import PrometheusBatches, PrometheusSource

pytestmark = pytest.mark.real

COUNTER = "autoscaler_test_requests_total"
TOPIC = 'topic="persistent://sample/dev/dev-1"'


class Exporter:
    """A /metrics endpoint on a thread: the Pulsar capture plus a counter +10 per scrape."""

    def __init__(self) -> None:
        self.scrapes = 0
        excerpt = sample("pulsar/broker-metrics-excerpt.txt").rstrip(b"\n") + b"\n"
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                exporter.scrapes += 1
                body = excerpt + (f"# TYPE {COUNTER} counter\n"
                                  f"{COUNTER} {exporter.scrapes * 10}\n").encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet: the test asserts on what Prometheus stored, not on access logs."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Exporter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@dataclass(frozen=True)
class RealPrometheus:
    url: str
    port: int


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealPrometheus]:
    binary = require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("prometheus")
    with Exporter() as exporter:
        config = tmp / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: test\n    honor_timestamps: false\n"
            f"    static_configs:\n      - targets: ['127.0.0.1:{exporter.port}']\n")
        port = free_port()
        log = (tmp / "prometheus.log").open("wb")
        proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={tmp / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for_prometheus(url, proc)
            yield RealPrometheus(url=url, port=port)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()


async def read(prometheus: RealPrometheus, query: str) -> Signal:
    pool = SessionPool()
    try:
        source = PrometheusSource("q", PrometheusSettings(
            kind="prometheus", url=prometheus.url, query=query, timeout_seconds=5.0),
            now=asyncio.get_running_loop().time, session_pool=pool)
        [signal] = await source.read()
        return signal
    finally:
        await pool.close()


async def read_when_ready(prometheus: RealPrometheus, query: str) -> Signal:
    """Until the query has data: Prometheus needs two scrapes before `rate()` has a value."""
    signal = await read(prometheus, query)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(20):
            while not signal.ok:
                await asyncio.sleep(0.25)
                signal = await read(prometheus, query)
    return signal


async def test_rate_of_a_scraped_counter_is_positive_and_finite(
        prometheus: RealPrometheus) -> None:
    signal = await read_when_ready(prometheus, f"rate({COUNTER}[5s])")

    assert signal.ok, signal.error
    assert signal.value is not None and signal.value > 0


@pytest.mark.parametrize(
    ("query", "value"),
    [
        pytest.param(f"pulsar_rate_in{{{TOPIC}}}", 25.013, id="topic-rate-in"),
        pytest.param('pulsar_subscription_msg_rate_out{subscription="dev-dev-1-sub-2"}',
                     25.013, id="one-subscription-rate-out"),
        pytest.param(f"sum(pulsar_subscription_msg_rate_out{{{TOPIC}}})", 50.026,
                     id="summed-subscriptions"),
        pytest.param(f"pulsar_storage_backlog_quota_limit{{{TOPIC}}}", 10737418240.0,
                     id="large-gauge"),
        pytest.param("3", 3.0, id="scalar"),
    ],
)
async def test_reads_the_pulsar_broker_metrics_sample(prometheus: RealPrometheus, query: str,
                                                      value: float) -> None:
    signal = await read_when_ready(prometheus, query)

    assert signal.value == pytest.approx(value)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        pytest.param("pulsar_subscription_back_log", "prometheus: 2 series, expected 1",
                     id="two-series"),
        pytest.param("pulsar_no_such_metric", "prometheus: empty result", id="empty"),
        pytest.param("vector(0) / 0", "prometheus: NaN", id="nan"),
        pytest.param("vector(1) / 0", "prometheus: +Inf", id="plus-inf"),
        pytest.param(f"pulsar_rate_in{{{TOPIC}}} - 30", "prometheus: negative value -4.987",
                     id="negative"),
    ],
)
async def test_rejects_unusable_results(prometheus: RealPrometheus, query: str,
                                        reason: str) -> None:
    await read_when_ready(prometheus, f"pulsar_rate_in{{{TOPIC}}}")

    signal = await read(prometheus, query)

    assert signal.error == reason


async def test_bad_query_reports_prometheus_own_message(prometheus: RealPrometheus) -> None:
    signal = await read(prometheus, f"sum(rate({COUNTER}[5s])")

    assert signal.error is not None
    assert signal.error.startswith("prometheus 400 bad_data: invalid parameter")
    assert "parse error" in signal.error



class RecordingPool(SessionPool):
    """A session pool that notes how each request went out: "GET" or "POST"."""

    def __init__(self) -> None:
        super().__init__()
        self.sent: list[str] = []

    async def get(self, url: str, *, form: Mapping[str, str] | None = None,
                  **kwargs: Any) -> Reply:
        self.sent.append("GET" if form is None else "POST")
        return await super().get(url, form=form, **kwargs)


async def test_queries_asked_together_read_as_they_do_alone(prometheus: RealPrometheus) -> None:
    await read_when_ready(prometheus, f"rate({COUNTER}[5s])")
    queries = {
        "rate_in": f"pulsar_rate_in{{{TOPIC}}}",
        "summed": f"sum(pulsar_subscription_msg_rate_out{{{TOPIC}}})  # both subscriptions",
        "quota": f"pulsar_storage_backlog_quota_limit{{{TOPIC}}}",
        "scalar": "3",
    }
    pool = RecordingPool()
    batches = PrometheusBatches(pool)
    sources = [PrometheusSource(name, PrometheusSettings(
        kind="prometheus", url=prometheus.url, query=query, timeout_seconds=5.0),
        now=asyncio.get_running_loop().time, session_pool=pool, batches=batches)
        for name, query in queries.items()]
    try:
        rounds = []
        for _ in range(2):
            pool.sent.clear()
            read = await asyncio.gather(*(source.read() for source in sources))
            rounds.append(({s.name: (s.value, s.error) for [s] in read}, sorted(pool.sent)))
    finally:
        await pool.close()

    alone, together = rounds
    assert alone == ({"rate_in.value": (pytest.approx(25.013), None),
                      "summed.value": (pytest.approx(50.026), None),
                      "quota.value": (10737418240.0, None),
                      "scalar.value": (3.0, None)}, ["GET", "GET", "GET", "GET"])
    # The three vectors in one POST; the scalar, which cannot be labelled, alone.
    assert together == (alone[0], ["GET", "POST"])
