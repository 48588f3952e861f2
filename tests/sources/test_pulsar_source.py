"""PulsarBacklogSource against a loopback fake that answers with the real captures."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from wire_fakes import Canned, FakeHttp, sample

from autoscaler.config import PulsarSource, SecretRefs
from autoscaler.localport import free_port
from autoscaler.model import ConsumerStat, Signal
from autoscaler.sources.http import SessionPool
from autoscaler.sources.pulsar import PulsarBacklogSource

READ_AT = 1234.5
TOPIC_PATH = "/admin/v2/persistent/t/ns/x"


def make_source(url: str, pool: SessionPool, **overrides: Any) -> PulsarBacklogSource:
    settings: dict[str, Any] = {
        "kind": "pulsar", "admin_url": url, "tenant": "t", "namespace": "ns", "topic": "x",
        "subscription": "sub-demo", "partitioned": False, "timeout_seconds": 2.0,
    }
    settings.update(overrides)
    return PulsarBacklogSource("functions", PulsarSource(**settings), now=lambda: READ_AT,
                               session_pool=pool)


def by_field(signals: Any) -> dict[str, Signal]:
    return {s.name.removeprefix("functions."): s for s in signals}


def stats_with(**subscription: Any) -> bytes:
    """topic-stats.json with the keys of its `sub-demo` subscription replaced."""
    doc = json.loads(sample("pulsar/topic-stats.json"))
    doc["subscriptions"]["sub-demo"].update(subscription)
    return json.dumps(doc).encode()


def backlog_of(value: Any) -> bytes:
    """topic-stats.json with `value` as its subscription's backlog, delayed messages or not."""
    return stats_with(msgBacklog=value, msgBacklogNoDelayed=value)


@dataclass(frozen=True)
class StatsSample:
    file: str
    partitioned: bool
    subscription: str


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        pytest.param(StatsSample("pulsar/topic-stats.json", False, "sub-demo"),
                     {"backlog": 0.0, "in_rate": 0.0, "out_rate": 0.0, "consumers": 1.0},
                     id="topic-stats"),
        pytest.param(StatsSample("pulsar/topic-stats-with-backlog.json", False,
                                 "my-topic_subscription"),
                     {"backlog": 116632.0, "in_rate": 4641.528542257553, "out_rate": 0.0,
                      "consumers": 0.0},
                     id="topic-stats-with-backlog"),
        pytest.param(StatsSample("pulsar/partitioned-stats.json", True, "test"),
                     {"backlog": 144318.0, "in_rate": 999.992947159793, "out_rate": 0.0,
                      "consumers": 0.0},
                     id="partitioned-stats"),
    ],
)
async def test_reads_each_stats_sample(fake_http: FakeHttp, pool: SessionPool, case: StatsSample,
                                       expected: dict[str, float]) -> None:
    endpoint = "partitioned-stats" if case.partitioned else "stats"
    fake_http.route(f"{TOPIC_PATH}/{endpoint}", Canned(body=sample(case.file)))
    source = make_source(fake_http.url, pool, partitioned=case.partitioned,
                         subscription=case.subscription)

    signals = by_field(await source.read())

    assert {f: s.value for f, s in signals.items()} == expected
    assert all(s.ok and s.read_at == READ_AT for s in signals.values())
    assert [s.name for s in signals.values()] == [
        "functions.backlog", "functions.in_rate", "functions.out_rate", "functions.consumers"]
    expected_query = {"perPartition": "false"} if case.partitioned else {}
    assert fake_http.seen[0].query == expected_query


async def test_every_read_names_its_signals_with_the_same_strings(fake_http: FakeHttp,
                                                                  pool: SessionPool) -> None:
    """A thousand sources keep minutes of reads each: one name string per signal, not per
    read."""
    fake_http.route(f"{TOPIC_PATH}/stats", Canned(body=sample("pulsar/topic-stats.json")))
    source = make_source(fake_http.url, pool)

    first, second = await source.read(), await source.read()

    assert all(a.name is b.name for a, b in zip(first, second, strict=True))


async def test_consumers_carry_name_address_and_rate(fake_http: FakeHttp,
                                                     pool: SessionPool) -> None:
    fake_http.route(f"{TOPIC_PATH}/stats", Canned(body=sample("pulsar/topic-stats.json")))

    signals = by_field(await make_source(fake_http.url, pool).read())

    assert signals["consumers"].consumers == (
        ConsumerStat(name="20b81", address="/127.0.0.1:65172", msg_rate_out=0.0),)


async def test_partitioned_consumers_are_merged_per_consumer(fake_http: FakeHttp,
                                                             pool: SessionPool) -> None:
    doc = json.loads(sample("pulsar/partitioned-stats.json"))
    doc["subscriptions"]["test"]["consumers"] = [
        {"consumerName": "c1", "address": "/10.0.0.7:4100", "msgRateOut": 2.5},
        {"consumerName": "c2", "address": "/10.0.0.8:4100", "msgRateOut": 0.0},
        {"consumerName": "c1", "address": "/10.0.0.7:4100", "msgRateOut": 1.5},
    ]
    doc["subscriptions"]["other"] = {"msgBacklog": 7, "msgRateOut": 9.0, "consumers": []}
    fake_http.route(f"{TOPIC_PATH}/partitioned-stats", Canned(body=json.dumps(doc).encode()))

    signals = by_field(await make_source(fake_http.url, pool, partitioned=True,
                                         subscription="test").read())

    assert signals["consumers"].value == 2.0
    assert signals["consumers"].consumers == (
        ConsumerStat(name="c1", address="/10.0.0.7:4100", msg_rate_out=4.0),
        ConsumerStat(name="c2", address="/10.0.0.8:4100", msg_rate_out=0.0),
    )
    assert signals["backlog"].value == 144318.0


async def test_topic_not_found_sample_is_an_error_on_every_field(fake_http: FakeHttp,
                                                                 pool: SessionPool) -> None:
    fake_http.route(f"{TOPIC_PATH}/stats",
                    Canned(status=404, body=sample("pulsar/topic-not-found-404.json")))

    signals = await make_source(fake_http.url, pool).read()

    assert len(signals) == 4
    assert {s.error for s in signals} == {"topic not found: persistent://t/ns/x"}
    assert all(s.value is None and s.read_at == READ_AT for s in signals)


async def test_other_404_reasons_are_kept(fake_http: FakeHttp, pool: SessionPool) -> None:
    fake_http.route(f"{TOPIC_PATH}/partitioned-stats", Canned(
        status=404, body=b'{"reason": "Topic partitions were not yet created"}'))

    signals = await make_source(fake_http.url, pool, partitioned=True).read()

    assert {s.error for s in signals} == {
        "topic not found: persistent://t/ns/x (Topic partitions were not yet created)"}


async def test_missing_subscription_is_an_error_but_topic_rate_stays(fake_http: FakeHttp,
                                                                      pool: SessionPool) -> None:
    fake_http.route(f"{TOPIC_PATH}/stats", Canned(body=sample("pulsar/topic-stats.json")))

    signals = by_field(await make_source(fake_http.url, pool, subscription="foo").read())

    reason = "subscription 'foo' not found (topic has: sub-demo)"
    assert {f: s.error for f, s in signals.items()} == {
        "backlog": reason, "in_rate": None, "out_rate": reason, "consumers": reason}
    assert signals["in_rate"].value == 0.0


@pytest.mark.parametrize(("subscription", "backlog"), [
    # 99,000 of 100,000 messages are delayed: a worker may take 1,000 now
    pytest.param({"msgBacklog": 100000, "msgDelayed": 99000, "msgBacklogNoDelayed": 1000}, 1000.0,
                 id="delayed-messages-are-not-work-yet"),
    # a broker that does not report msgBacklogNoDelayed: msgBacklog
    pytest.param({"msgBacklog": 250, "msgBacklogNoDelayed": None}, 250.0, id="older-broker"),
])
async def test_the_backlog_is_what_a_worker_may_take_now(
        fake_http: FakeHttp, pool: SessionPool, subscription: dict[str, Any],
        backlog: float) -> None:
    doc = json.loads(sample("pulsar/topic-stats.json"))
    doc["subscriptions"]["sub-demo"].update(subscription)
    doc["subscriptions"]["sub-demo"] = {k: v for k, v in doc["subscriptions"]["sub-demo"].items()
                                        if v is not None}
    fake_http.route(f"{TOPIC_PATH}/stats", Canned(body=json.dumps(doc).encode()))

    signals = by_field(await make_source(fake_http.url, pool).read())

    assert signals["backlog"].value == backlog


@pytest.mark.parametrize(
    ("body", "field", "reason"),
    [
        pytest.param(backlog_of(-3), "backlog", "negative backlog -3", id="negative"),
        pytest.param(backlog_of(10**18), "backlog", "absurd backlog 1e18",
                     id="absurd"),
        pytest.param(backlog_of(None), "backlog", "backlog missing", id="null"),
        pytest.param(backlog_of("12"), "backlog",
                     "backlog: expected a number, got str", id="string"),
        pytest.param(backlog_of(True), "backlog",
                     "backlog: expected a number, got bool", id="bool"),
        pytest.param(stats_with(msgRateOut=float("nan")), "out_rate", "out_rate is NaN",
                     id="nan-literal"),
        pytest.param(stats_with(msgRateOut=float("inf")), "out_rate", "out_rate is +Inf",
                     id="infinity-literal"),
        pytest.param(stats_with(consumers=[{"consumerName": "c", "msgRateOut": -1}]),
                     "consumers", "negative consumer out_rate -1", id="negative-consumer-rate"),
        pytest.param(stats_with(consumers={"c": {}}), "consumers", "consumers: expected a list",
                     id="consumers-not-a-list"),
    ],
)
async def test_bad_values_are_errors_on_their_field_only(fake_http: FakeHttp, pool: SessionPool,
                                                         body: bytes, field: str,
                                                         reason: str) -> None:
    fake_http.route(f"{TOPIC_PATH}/stats", Canned(body=body))

    signals = by_field(await make_source(fake_http.url, pool).read())

    assert signals[field].error == reason
    assert signals[field].value is None
    assert all(s.ok for f, s in signals.items() if f != field)


@pytest.mark.parametrize(
    ("canned", "reason"),
    [
        pytest.param(Canned(status=500, body=b"boom", content_type="text/plain"), "HTTP 500",
                     id="500"),
        pytest.param(Canned(status=500, body=b'{"reason": "Internal error"}'),
                     "HTTP 500: Internal error", id="500-with-reason"),
        pytest.param(Canned(status=401, body=b'{"reason": "Authentication required"}'),
                     "HTTP 401: Authentication required", id="401"),
        pytest.param(Canned(body=b'{"msgRateIn": 1.0, "subscriptions": {'), "invalid JSON",
                     id="truncated-json"),
        pytest.param(Canned(body=b"[]"), "stats: expected a JSON object", id="json-array"),
        pytest.param(Canned(body=sample("pulsar/topic-stats.json"), truncate=True),
                     "truncated response", id="connection-dropped-mid-body"),
        pytest.param(Canned(status=307, headers={"Location": "http://broker-2.pulsar:8080/x"}),
                     "HTTP 307 redirect to broker-2.pulsar:8080 refused", id="redirect"),
    ],
)
async def test_reply_failures_are_errors_on_every_field(fake_http: FakeHttp, pool: SessionPool,
                                                        canned: Canned, reason: str) -> None:
    fake_http.route(f"{TOPIC_PATH}/stats", canned)

    signals = await make_source(fake_http.url, pool).read()

    assert {s.error for s in signals} == {reason}
    assert all(s.value is None and s.read_at == READ_AT for s in signals)


async def test_redirect_is_not_followed(fake_http: FakeHttp, pool: SessionPool) -> None:
    fake_http.route(f"{TOPIC_PATH}/stats",
                    Canned(status=302, headers={"Location": "/elsewhere"}))
    fake_http.route("/elsewhere", Canned(body=sample("pulsar/topic-stats.json")))

    signals = await make_source(fake_http.url, pool).read()

    assert {s.error for s in signals} == {"HTTP 302 redirect to elsewhere refused"}
    assert [s.path for s in fake_http.seen] == [f"{TOPIC_PATH}/stats"]


async def test_timeout_is_an_error(fake_http: FakeHttp, pool: SessionPool) -> None:
    fake_http.route(f"{TOPIC_PATH}/stats", Canned(hang=True))

    signals = await make_source(fake_http.url, pool, timeout_seconds=0.2).read()

    assert {s.error for s in signals} == {"timeout after 0.2s"}


async def test_connection_refused_is_an_error(pool: SessionPool) -> None:
    port = free_port()

    signals = await make_source(f"http://127.0.0.1:{port}", pool).read()

    assert {s.error for s in signals} == {f"connection refused (127.0.0.1:{port})"}


async def test_bearer_token_from_env(fake_http: FakeHttp, pool: SessionPool,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSAR_TOKEN", "tok-123")
    fake_http.route(f"{TOPIC_PATH}/stats", Canned(body=sample("pulsar/topic-stats.json")))
    source = make_source(fake_http.url, pool, auth=SecretRefs(token_env="PULSAR_TOKEN"))

    signals = await source.read()

    assert all(s.ok for s in signals)
    assert fake_http.seen[0].headers["Authorization"] == "Bearer tok-123"


async def test_basic_auth_from_file(fake_http: FakeHttp, pool: SessionPool,
                                    tmp_path: Path) -> None:
    (tmp_path / "password").write_text("pa:ss\n")
    fake_http.route(f"{TOPIC_PATH}/stats", Canned(body=sample("pulsar/topic-stats.json")))
    source = make_source(fake_http.url, pool, auth=SecretRefs(
        username="admin", password_file=tmp_path / "password"))

    await source.read()

    expected = base64.b64encode(b"admin:pa:ss").decode()
    assert fake_http.seen[0].headers["Authorization"] == f"Basic {expected}"


async def test_missing_secret_is_an_error_and_nothing_is_sent(fake_http: FakeHttp,
                                                              pool: SessionPool,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    monkeypatch.delenv("PULSAR_TOKEN", raising=False)
    source = make_source(fake_http.url, pool, auth=SecretRefs(token_env="PULSAR_TOKEN"))

    signals = await source.read()

    assert {s.error for s in signals} == {"environment variable PULSAR_TOKEN is not set"}
    assert fake_http.seen == []


async def test_secret_echoed_by_the_server_is_redacted(fake_http: FakeHttp, pool: SessionPool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PULSAR_TOKEN", "tok-123")
    fake_http.route(f"{TOPIC_PATH}/stats",
                    Canned(status=401, body=b'{"reason": "invalid token tok-123"}'))
    source = make_source(fake_http.url, pool, auth=SecretRefs(token_env="PULSAR_TOKEN"))

    signals = await source.read()

    assert {s.error for s in signals} == {"HTTP 401: invalid token ***"}


def counted(in_counter: object, *, rate_in: object = 7.0) -> bytes:
    """topic-stats.json with its msgInCounter and msgRateIn replaced."""
    doc = json.loads(sample("pulsar/topic-stats.json"))
    doc["msgInCounter"] = in_counter
    doc["msgRateIn"] = rate_in
    return json.dumps(doc).encode()


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def read_counters(fake_http: FakeHttp, pool: SessionPool,
                        reads: list[tuple[float, object]], *, rate_seconds: float = 10.0,
                        rate_in: object = 7.0) -> list[Signal]:
    """The in_rate of each read, the topic's msgInCounter being `counter` at `at`."""
    clock = Clock()
    cfg = PulsarSource(kind="pulsar", admin_url=fake_http.url, tenant="t", namespace="ns",
                       topic="x", subscription="sub-demo", partitioned=False,
                       rate_seconds=rate_seconds)
    source = PulsarBacklogSource("functions", cfg, now=clock, session_pool=pool)
    rates = []
    for at, counter in reads:
        clock.now = at
        fake_http.route(f"{TOPIC_PATH}/stats", Canned(body=counted(counter, rate_in=rate_in)))
        rates.append(by_field(await source.read())["in_rate"])
    return rates


async def test_in_rate_is_the_counters_increase_over_the_window(fake_http: FakeHttp,
                                                                pool: SessionPool) -> None:
    # Reads every 2 s; 50 msg/s for 10 s, then 250 msg/s. msgRateIn (7) is the broker's stale
    # average: only the first read, with no earlier one, falls back to it.
    reads = [(100.0 + 2 * i, 500 + 100 * i) for i in range(6)]
    reads += [(112.0, 1500), (114.0, 2000)]
    rates = [s.value for s in await read_counters(fake_http, pool, reads)]

    assert rates[0] == 7.0
    assert rates[1:6] == [50.0] * 5
    # The window is the last 10 s: from the read at 102 (600) to 112, from 104 (700) to 114.
    assert rates[6] == pytest.approx((1500 - 600) / 10)
    assert rates[7] == pytest.approx((2000 - 700) / 10)


async def test_a_short_window_follows_a_rise_within_one_poll(fake_http: FakeHttp,
                                                              pool: SessionPool) -> None:
    reads = [(100.0, 0), (102.0, 100), (104.0, 600)]
    rates = [s.value for s in await read_counters(fake_http, pool, reads, rate_seconds=2)]

    assert rates == [7.0, 50.0, 250.0]


async def test_a_counter_that_starts_again_falls_back_to_the_brokers_rate(
        fake_http: FakeHttp, pool: SessionPool) -> None:
    # The topic moved to another broker: its counters start again at 0.
    reads = [(100.0, 9000), (102.0, 9100), (104.0, 40), (106.0, 140)]
    rates = [s.value for s in await read_counters(fake_http, pool, reads)]

    assert rates == [7.0, 50.0, 7.0, 50.0]


async def test_reads_older_than_the_window_and_staleness_limit_do_not_count(
        fake_http: FakeHttp, pool: SessionPool) -> None:
    # rate_seconds 10 + the staleness limit (3 polls of 2 s + 2 s timeout): 18 s. After a gap of
    # 30 s the average since the last read would hide what happens now.
    reads = [(100.0, 0), (102.0, 100), (132.0, 4000), (134.0, 4200)]
    rates = [s.value for s in await read_counters(fake_http, pool, reads)]

    assert rates == [7.0, 50.0, 7.0, 100.0]


async def test_out_rate_is_the_subscriptions_counter_over_the_window(
        fake_http: FakeHttp, pool: SessionPool) -> None:
    # msgRateOut (0 in the sample) is the broker's average of the last minute: the workers were
    # idle for most of it. msgOutCounter shows what they take now; only the first read, with no
    # earlier one, falls back to msgRateOut.
    clock = Clock()
    cfg = PulsarSource(kind="pulsar", admin_url=fake_http.url, tenant="t", namespace="ns",
                       topic="x", subscription="sub-demo", partitioned=False, rate_seconds=2)
    source = PulsarBacklogSource("functions", cfg, now=clock, session_pool=pool)
    rates = []
    for at, taken in [(100.0, 41), (102.0, 141), (104.0, 641), (106.0, 5)]:
        clock.now = at
        doc = json.loads(sample("pulsar/topic-stats.json"))
        doc["subscriptions"]["sub-demo"]["msgOutCounter"] = taken
        fake_http.route(f"{TOPIC_PATH}/stats", Canned(body=json.dumps(doc).encode()))
        rates.append(by_field(await source.read())["out_rate"].value)

    # The counter started again (the topic moved): msgRateOut stands in.
    assert rates == [0.0, 50.0, 250.0, 0.0]


@pytest.mark.parametrize("in_counter", [None, "many", -5, float("inf"), 1e18])
async def test_an_unusable_counter_leaves_the_brokers_rate(fake_http: FakeHttp,
                                                           pool: SessionPool,
                                                           in_counter: object) -> None:
    reads = [(100.0, in_counter), (102.0, in_counter)]
    signals = await read_counters(fake_http, pool, reads)

    assert [s.value for s in signals] == [7.0, 7.0]
    assert all(s.ok for s in signals)


async def test_a_rejected_broker_rate_stays_an_error_whatever_the_counter(
        fake_http: FakeHttp, pool: SessionPool) -> None:
    reads = [(100.0, 0), (102.0, 100)]
    signals = await read_counters(fake_http, pool, reads, rate_in=-1.0)

    assert [s.error for s in signals] == ["negative in_rate -1"] * 2
