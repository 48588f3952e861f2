"""Tracardi queue source: the backlog as Tracardi's own API reports it, as `<name>.backlog`.

Reads the commercial API's `GET {api_url}/queue/{namespace}/{topic}/backlog`, which answers
`{total, backlog: [{partition, subscription, count}]}`, through the shared `SessionPool` of
`http.py`. With a subscription configured the signal is the sum of that subscription's counts
over all partitions (an error when it has none), otherwise `total`. An alternative to
`pulsar.py` where the Pulsar admin API is not reachable from the autoscaler.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from autoscaler.config import SOURCE_FIELDS
from autoscaler.config import TracardiQueueSource as TracardiQueueSettings
from autoscaler.model import Signal
from autoscaler.sources.http import FetchError, ReadFailedError, Reply, SessionPool
from autoscaler.sources.values import RejectedValueError, checked, failed, signal_name

FIELDS = SOURCE_FIELDS["tracardi-queue"]


class TracardiQueueSource:
    """The backlog of one Tracardi queue (namespace and topic), optionally one subscription."""

    def __init__(self, name: str, cfg: TracardiQueueSettings, *, now: Callable[[], float],
                 session_pool: SessionPool) -> None:
        self.name = name
        self._cfg = cfg
        self._now = now
        self._pool = session_pool
        self._url = f"{cfg.api_url}/queue/{cfg.namespace}/{cfg.topic}/backlog"

    async def read(self) -> Sequence[Signal]:
        cfg = self._cfg
        try:
            fetched = await self._pool.fetch(self._url, auth=cfg.auth, tls=cfg.tls,
                                             timeout_seconds=cfg.timeout_seconds,
                                             parse=self._backlog)
        except ReadFailedError as exc:
            return failed(self.name, FIELDS, self._now(), str(exc))
        return (Signal(name=signal_name(self.name, "backlog"), value=fetched.value,
                       read_at=self._now()),)

    async def close(self) -> None:
        """Nothing to release: the session pool belongs to whoever built this source."""

    def _backlog(self, reply: Reply) -> float:
        if reply.status == 404:
            raise FetchError(f"queue not found: {self._cfg.namespace}/{self._cfg.topic}")
        if reply.status != 200:
            raise FetchError(reply.error_detail())
        body: Any = reply.json()
        if not isinstance(body, dict):
            raise FetchError("backlog: expected a JSON object")
        wanted = self._cfg.subscription
        if wanted is None:
            return checked(body.get("total"), "backlog")
        entries = body.get("backlog")
        if not isinstance(entries, list):
            raise RejectedValueError("backlog: expected a list of partitions")
        counts = [checked(e.get("count"), "backlog") for e in entries
                  if isinstance(e, dict) and e.get("subscription") == wanted]
        if not counts:
            raise RejectedValueError(f"subscription {wanted!r} not found")
        return checked(sum(counts), "backlog")
