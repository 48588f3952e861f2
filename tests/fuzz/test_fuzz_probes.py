"""Fuzz the probes' reply parsers: a `CheckResult` (down always with a reason), or `FetchError`.

Targets: Elasticsearch `_cluster/health` (`verdict`) and Pulsar `brokers/health`
(`health_verdict`). Neither may ever call a dependency up on anything but HTTP 200.
"""

from __future__ import annotations

import pytest
from fuzz_support import (
    bodies,
    corrupted,
    dump_json,
    expect,
    fuzz_settings,
    sample_json,
    sample_text,
    statuses,
)
from hypothesis import given
from hypothesis import strategies as st

from autoscaler.ports import CheckResult
from autoscaler.probes.elasticsearch import verdict
from autoscaler.probes.pulsar import health_verdict
from autoscaler.sources.http import FetchError, Reply

ES_DOCS = [
    sample_json(f"elasticsearch/{name}")
    for name in ("cluster-health-green.json", "cluster-health-yellow.json",
                 "cluster-health-red.json", "cluster-health-red-timed-out.json",
                 "unauthorized-401.json")
]
ES_KEYS = ("status", "timed_out", "unassigned_shards", "error", "reason", "type")

broker_health_bodies = st.one_of(
    st.sampled_from((sample_text("pulsar/brokers-health-ok.txt").encode(), b'"ok"', b"ok\n",
                     b"OK", b"")).flatmap(corrupted),
    st.binary(max_size=100),
    bodies([{"reason": "Topic not found"}, {"message": "broker is starting"}],
           ("reason", "message", "detail", "error")),
)


def assert_check(result: CheckResult, status: int) -> None:
    assert isinstance(result, CheckResult)
    assert isinstance(result.ok, bool)
    assert isinstance(result.reason, str)
    if result.ok:
        assert status == 200
    else:
        assert result.reason.strip()


@given(status=statuses | st.just(408), body=bodies(ES_DOCS, ES_KEYS),
       yellow_is_up=st.booleans())
@fuzz_settings(600)
def test_elasticsearch_health(status: int, body: bytes, yellow_is_up: bool) -> None:
    result = expect("elasticsearch-health",
                    lambda: verdict(Reply(status, body), yellow_is_up=yellow_is_up),
                    (FetchError,))
    if result is not None:
        assert_check(result, status)


@given(status=statuses, body=broker_health_bodies)
@fuzz_settings(600)
def test_pulsar_broker_health(status: int, body: bytes) -> None:
    result = expect("pulsar-broker-health", lambda: health_verdict(Reply(status, body)), ())
    assert result is not None
    assert_check(result, status)


# The fuzzers start from these documents; each must give its verdict.
@pytest.mark.parametrize(("index", "status", "ok"), [
    pytest.param(0, 200, True, id="green"),
    pytest.param(1, 200, True, id="yellow-is-up"),
    pytest.param(2, 200, False, id="red"),
    pytest.param(3, 408, False, id="timed-out"),
    pytest.param(4, 401, False, id="unauthorized"),
])
def test_elasticsearch_seed_documents(index: int, status: int, ok: bool) -> None:
    result = verdict(Reply(status, dump_json(ES_DOCS[index])), yellow_is_up=True)
    assert result.ok is ok
    assert_check(result, status)


def test_pulsar_broker_health_seed() -> None:
    assert health_verdict(Reply(200, sample_text("pulsar/brokers-health-ok.txt").encode())).ok
