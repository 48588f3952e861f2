"""Probes: dependency checks, one module per system (see `autoscaler.ports.Probe`).

`build_probe` turns one configured dependency into its probe. Each probe owns what it opens
(HTTP probes a `SessionPool`, the others a connection per check) and bounds every check by the
dependency's `timeout_seconds`. Hysteresis over the raw results is pure and lives in
`autoscaler.engine.hysteresis`.
"""

from __future__ import annotations

from autoscaler import config
from autoscaler.ports import Probe
from autoscaler.probes.elasticsearch import ElasticsearchProbe
from autoscaler.probes.http import HttpProbe, http_check
from autoscaler.probes.mysql import MysqlProbe
from autoscaler.probes.pulsar import PulsarProbe
from autoscaler.probes.redis import RedisProbe

__all__ = ["ElasticsearchProbe", "HttpProbe", "MysqlProbe", "PulsarProbe", "RedisProbe",
           "build_probe", "http_check"]


def build_probe(name: str, cfg: config.Dependency) -> Probe:
    if isinstance(cfg, config.ElasticsearchDependency):
        return ElasticsearchProbe(name, cfg)
    if isinstance(cfg, config.MysqlDependency):
        return MysqlProbe(name, cfg)
    if isinstance(cfg, config.RedisDependency):
        return RedisProbe(name, cfg)
    if isinstance(cfg, config.PulsarDependency):
        return PulsarProbe(name, cfg)
    return HttpProbe(name, cfg)
