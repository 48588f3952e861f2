"""Fuzz the sources' reply parsers: a value in range, or `FetchError`/`RejectedValueError`.

Targets: `values.checked` (every number a source reads), `Reply.json` and its error helpers,
Pulsar topic stats (`PulsarBacklogSource._parse`), Tracardi's queue backlog
(`TracardiQueueSource._backlog`) and Prometheus instant queries (`parse_query_reply`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from fuzz_support import (
    bodies,
    dump_json,
    expect,
    fuzz_settings,
    hostile_scalars,
    json_trees,
    sample_json,
    statuses,
)
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.config import PulsarSource, TracardiQueueSource
from autoscaler.sources.http import FetchError, Reply, SessionPool
from autoscaler.sources.prometheus import parse_query_reply
from autoscaler.sources.pulsar import FIELDS, PulsarBacklogSource
from autoscaler.sources.tracardi_queue import TracardiQueueSource as QueueSource
from autoscaler.sources.values import ABSURD_LIMIT, Reading, RejectedValueError, checked

SUBSCRIPTION = "tracardi-function-subscription"
SOURCE_ERRORS = (FetchError, RejectedValueError)


def _now() -> float:
    return 0.0


def _with_subscription(stats: dict[str, Any]) -> dict[str, Any]:
    """A captured stats document whose one subscription is renamed to the configured one."""
    (only,) = stats["subscriptions"].values()
    return {**stats, "subscriptions": {SUBSCRIPTION: only}}


PULSAR_DOCS = [
    _with_subscription(sample_json(f"pulsar/{name}"))
    for name in ("topic-stats.json", "topic-stats-with-backlog.json", "partitioned-stats.json")
] + [sample_json("pulsar/topic-not-found-404.json")]
PULSAR_KEYS = ("msgRateIn", "subscriptions", SUBSCRIPTION, "msgBacklog", "msgBacklogNoDelayed",
               "msgRateOut", "consumers", "consumerName", "address", "reason")

QUEUE_DOCS = [
    {"total": 1200, "backlog": [
        {"partition": 0, "subscription": SUBSCRIPTION, "count": 700},
        {"partition": 1, "subscription": SUBSCRIPTION, "count": 500},
        {"partition": 0, "subscription": "other", "count": 3},
    ]},
    {"total": 0, "backlog": []},
]
QUEUE_KEYS = ("total", "backlog", "partition", "subscription", "count", "detail")

#: Replies with one value, as the autoscaler's queries give: the fuzzing starts from these half
#: the time, so that mutated values often reach the value checks.
PROMETHEUS_VALUES = [
    {"status": "success", "data": {"resultType": "vector",
                                   "result": [{"metric": {}, "value": [1435781451.781, "42.5"]}]}},
    {"status": "success", "data": {"resultType": "scalar", "result": [1435781451.781, "3"]}},
]
PROMETHEUS_DOCS = [
    sample_json(f"prometheus/{name}")
    for name in ("query-vector-success.json", "query-empty-result.json",
                 "query-empty-result-null-legacy-2.0.json", "query-error-bad-data.json",
                 "query-range-error-bad-data-v2.4.3.json")
] + PROMETHEUS_VALUES
PROMETHEUS_KEYS = ("status", "data", "resultType", "result", "value", "histogram", "errorType",
                   "error", "vector", "scalar", "success")


def _pool() -> SessionPool:
    return SessionPool()


def pulsar_source() -> PulsarBacklogSource:
    cfg = PulsarSource(kind="pulsar", admin_url="http://pulsar:8080", tenant="tracardi",
                       namespace="system", topic="functions", subscription=SUBSCRIPTION)
    return PulsarBacklogSource("functions", cfg, now=_now, session_pool=_pool())


def queue_source(subscription: str | None) -> QueueSource:
    cfg = TracardiQueueSource(kind="tracardi-queue", api_url="http://tracardi:8686",
                              namespace="system", topic="functions", subscription=subscription)
    return QueueSource("queue", cfg, now=_now, session_pool=_pool())


def assert_in_range(value: float) -> None:
    assert isinstance(value, float)
    assert math.isfinite(value)
    assert 0 <= value <= ABSURD_LIMIT


def assert_readings(readings: Mapping[str, Reading]) -> None:
    assert set(readings) == set(FIELDS)
    for reading in readings.values():
        assert (reading.value is None) != (reading.error is None)
        if reading.error is not None:
            assert reading.error.strip()
            continue
        assert reading.value is not None
        assert_in_range(reading.value)
        for consumer in reading.consumers:
            assert math.isfinite(consumer.msg_rate_out)
            assert consumer.msg_rate_out >= 0


@given(raw=hostile_scalars | json_trees())
@fuzz_settings(1200)
def test_checked_gives_a_sane_number_or_rejects(raw: object) -> None:
    value = expect("values-checked", lambda: checked(raw, "backlog"), (RejectedValueError,))
    if value is not None:
        assert_in_range(value)


@given(status=statuses, body=bodies(PULSAR_DOCS + QUEUE_DOCS + PROMETHEUS_DOCS))
@fuzz_settings(400)
def test_reply_json_and_server_message(status: int, body: bytes) -> None:
    reply = Reply(status, body)
    expect("reply-json", reply.json, (FetchError,))
    # The error helpers are used on the failure paths and must never raise themselves.
    message = reply.server_message()
    assert isinstance(message, str)
    assert reply.error_detail().startswith(f"HTTP {status}")


@given(status=statuses, body=bodies(PULSAR_DOCS, PULSAR_KEYS))
@fuzz_settings(600)
def test_pulsar_stats(status: int, body: bytes) -> None:
    source = pulsar_source()
    stats = expect("pulsar-stats", lambda: source._parse(Reply(status, body)), SOURCE_ERRORS)
    if stats is not None:
        assert status == 200
        assert_readings(stats.readings)
        if stats.in_counter is not None:
            assert_in_range(stats.in_counter)


@given(status=statuses, body=bodies(QUEUE_DOCS, QUEUE_KEYS),
       subscription=st.sampled_from((None, SUBSCRIPTION)))
@fuzz_settings(500)
def test_tracardi_queue_backlog(status: int, body: bytes, subscription: str | None) -> None:
    source = queue_source(subscription)
    value = expect("tracardi-queue-backlog", lambda: source._backlog(Reply(status, body)),
                   SOURCE_ERRORS)
    if value is not None:
        assert status == 200
        assert_in_range(value)


@given(status=statuses, body=bodies(PROMETHEUS_DOCS, PROMETHEUS_KEYS)
       | bodies(PROMETHEUS_VALUES, PROMETHEUS_KEYS))
@fuzz_settings(600)
def test_prometheus_query_reply(status: int, body: bytes) -> None:
    value = expect("prometheus-query", lambda: parse_query_reply(Reply(status, body)),
                   SOURCE_ERRORS)
    if value is not None:
        assert status == 200
        assert isinstance(value, float)
        assert math.isfinite(value)
        assert value >= 0


# The fuzzers start from these documents; each must parse, or the fuzzing misses the happy path.
@pytest.mark.parametrize(("index", "backlog"), [
    pytest.param(0, 0.0, id="topic-stats"),
    pytest.param(1, 116632.0, id="topic-stats-with-backlog"),
    pytest.param(2, 144318.0, id="partitioned-stats"),
])
def test_pulsar_seed_documents_parse(index: int, backlog: float) -> None:
    stats = pulsar_source()._parse(Reply(200, dump_json(PULSAR_DOCS[index])))
    assert stats.readings["backlog"].value == backlog
    assert_readings(stats.readings)


@pytest.mark.parametrize(("subscription", "backlog"), [
    pytest.param(None, 1200.0, id="total"),
    pytest.param(SUBSCRIPTION, 1200.0, id="one-subscription-over-partitions"),
])
def test_queue_seed_documents_parse(subscription: str | None, backlog: float) -> None:
    assert queue_source(subscription)._backlog(Reply(200, dump_json(QUEUE_DOCS[0]))) == backlog


@pytest.mark.parametrize(("index", "value"), [
    pytest.param(5, 42.5, id="vector"),
    pytest.param(6, 3.0, id="scalar"),
])
def test_prometheus_seed_documents_parse(index: int, value: float) -> None:
    assert parse_query_reply(Reply(200, dump_json(PROMETHEUS_DOCS[index]))) == value
