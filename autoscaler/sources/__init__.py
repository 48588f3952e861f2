"""Sources: async readers of signals, one module per system (see `autoscaler.ports.Source`).

`build_source` turns one configured source into its reader. HTTP sources share the caller's
`SessionPool` (`http.py`), which the caller closes; Prometheus sources given the same
`PrometheusBatches` ask their queries together. Pod CPU comes through `autoscaler.kube`.
"""

from __future__ import annotations

from collections.abc import Callable

from autoscaler import config
from autoscaler.ports import Source
from autoscaler.sources.http import SessionPool
from autoscaler.sources.prometheus import PrometheusBatches, PrometheusSource
from autoscaler.sources.pulsar import PulsarBacklogSource
from autoscaler.sources.tracardi_queue import TracardiQueueSource

__all__ = ["PrometheusBatches", "PrometheusSource", "PulsarBacklogSource", "SessionPool",
           "TracardiQueueSource", "build_source"]


def build_source(name: str, cfg: config.Source, *, now: Callable[[], float],
                 pool: SessionPool, batches: PrometheusBatches | None = None) -> Source:
    if isinstance(cfg, config.PulsarSource):
        return PulsarBacklogSource(name, cfg, now=now, session_pool=pool)
    if isinstance(cfg, config.PrometheusSource):
        return PrometheusSource(name, cfg, now=now, session_pool=pool, batches=batches)
    return TracardiQueueSource(name, cfg, now=now, session_pool=pool)
