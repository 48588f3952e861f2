"""TracardiQueueSource against a loopback fake of Tracardi's `/queue/{ns}/{topic}/backlog`."""

from __future__ import annotations

import json
from typing import Any

import pytest
from wire_fakes import Canned, FakeHttp

from autoscaler.config import TracardiQueueSource as TracardiQueueSettings
from autoscaler.sources.http import SessionPool
from autoscaler.sources.tracardi_queue import TracardiQueueSource

PATH = "/queue/system/functions/backlog"
BACKLOG = json.dumps({"total": 130, "backlog": [
    {"partition": 0, "subscription": "tracardi-function-subscription", "count": 40},
    {"partition": 1, "subscription": "tracardi-function-subscription", "count": 60},
    {"partition": 0, "subscription": "audit", "count": 30},
]}).encode()


def make_source(url: str, pool: SessionPool, **overrides: Any) -> TracardiQueueSource:
    settings: dict[str, Any] = {"kind": "tracardi-queue", "api_url": url, "namespace": "system",
                                "topic": "functions"}
    settings.update(overrides)
    return TracardiQueueSource("queue", TracardiQueueSettings(**settings), now=lambda: 5.0,
                               session_pool=pool)


@pytest.mark.parametrize(
    ("subscription", "value"),
    [
        pytest.param(None, 130.0, id="total"),
        pytest.param("tracardi-function-subscription", 100.0, id="one-subscription-summed"),
        pytest.param("audit", 30.0, id="other-subscription"),
    ],
)
async def test_reads_the_backlog(fake_http: FakeHttp, pool: SessionPool,
                                 subscription: str | None, value: float) -> None:
    fake_http.route(PATH, Canned(body=BACKLOG))

    [signal] = await make_source(fake_http.url, pool, subscription=subscription).read()

    assert (signal.name, signal.value, signal.error, signal.read_at) == (
        "queue.backlog", value, None, 5.0)


@pytest.mark.parametrize(
    ("canned", "subscription", "reason"),
    [
        pytest.param(Canned(body=BACKLOG), "nobody", "subscription 'nobody' not found",
                     id="unknown-subscription"),
        pytest.param(Canned(body=b'{"total": -1, "backlog": []}'), None, "negative backlog -1",
                     id="negative-total"),
        pytest.param(Canned(body=b'{"backlog": []}'), None, "backlog missing",
                     id="no-total"),
        pytest.param(Canned(body=b'{"total": 1, "backlog": [{"subscription": "s", "count": '
                                 b'1e18}]}'), "s", "absurd backlog 1e18", id="absurd-count"),
        pytest.param(Canned(status=404, body=b'{"detail": "Not Found"}'), None,
                     "queue not found: system/functions", id="404"),
        pytest.param(Canned(status=401, body=b'{"detail": "Not authenticated"}'), None,
                     "HTTP 401: Not authenticated", id="401-fastapi-detail"),
        pytest.param(Canned(body=b"{"), None, "invalid JSON", id="truncated-json"),
    ],
)
async def test_rejects_with_a_reason(fake_http: FakeHttp, pool: SessionPool, canned: Canned,
                                     subscription: str | None, reason: str) -> None:
    fake_http.route(PATH, canned)

    [signal] = await make_source(fake_http.url, pool, subscription=subscription).read()

    assert (signal.value, signal.error) == (None, reason)
