"""The simulated Pulsar admin REST API (v2), served from a mutable `PulsarState`.

The live `sources/pulsar.py` and `probes/pulsar.py` read it over real HTTP in `demo` and the
wire tests; the simulator's model writes backlog, rates and consumers into the state. Bodies are
shaped like `../shared/samples/pulsar/`: `partitioned-stats` (aggregate, `metadata.partitions`
and, with `perPartition`, one `topic-stats`-shaped entry per partition), `stats` of one
partition or non-partitioned topic, `{"reason": "Topic not found"}` with 404 (`Partitioned
Topic not found` from `partitioned-stats` of a topic without partitions or unknown, as the broker
says), and `brokers/health` answering `ok`.

msgInCounter counts the messages published at the topic's msgRateIn over the state's wall clock,
as a broker's counter grows between its rate updates; each subscription's msgOutCounter counts
the messages dispatched at its msgRateOut the same way. Each subscription's backlog and rates are
per topic; a partitioned topic spreads them evenly over its partitions (remainders on the first
ones), and every consumer of a shared subscription is attached to every partition, so the
aggregate lists each consumer once with its total rate, as Pulsar's stats aggregation does.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from autoscaler.sim.kubeapi import HttpFaults, fault_middleware

JSON = dict[str, Any]
AVERAGE_MSG_SIZE = 1070.0
CLIENT_VERSION = "2.10.2"


@dataclass(frozen=True, slots=True)
class Consumer:
    """A consumer as Pulsar reports it; `address` is `/<pod ip>:<port>`."""

    name: str
    address: str
    msg_rate_out: float = 0.0

    @classmethod
    def on_pod(cls, name: str, ip: str, msg_rate_out: float = 0.0,
               port: int = 40000) -> Consumer:
        return cls(name, f"/{ip}:{port}", msg_rate_out)


@dataclass(slots=True)
class Subscription:
    backlog: int = 0
    msg_rate_out: float = 0.0
    consumers: list[Consumer] = field(default_factory=list)
    type: str = "Shared"
    delivered: float = 0.0  # msgOutCounter: messages dispatched at msg_rate_out so far


@dataclass(slots=True)
class Topic:
    partitions: int
    msg_rate_in: float = 0.0
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    published: float = 0.0  # msgInCounter: messages published at msg_rate_in so far
    counted_at: float = 0.0  # the wall time `published` was brought up to


def _split_int(total: int, parts: int, index: int) -> int:
    base, rest = divmod(total, parts)
    return base + (1 if index < rest else 0)


class PulsarState:
    """Topics by full name (`persistent://tenant/namespace/topic`) and the broker's health."""

    def __init__(self, *, wall: Callable[[], float] = time.time) -> None:
        self.wall = wall
        self.topics: dict[str, Topic] = {}
        self.healthy = True
        self.faults = HttpFaults()

    def add_topic(self, name: str, *, partitions: int = 0,
                  subscriptions: tuple[str, ...] = ()) -> Topic:
        """A topic; `partitions=0` is a non-partitioned topic."""
        if not name.startswith("persistent://") or name.count("/") != 4:
            raise ValueError(f"not a full topic name: {name!r}")
        topic = Topic(partitions, subscriptions={s: Subscription() for s in subscriptions},
                      counted_at=self.wall())
        self.topics[name] = topic
        return topic

    def _count(self, topic: Topic) -> None:
        """Bring msgInCounter and each msgOutCounter up to now: messages arrive at the topic's
        rate and leave at each subscription's meanwhile."""
        now = self.wall()
        elapsed = max(0.0, now - topic.counted_at)
        topic.published += topic.msg_rate_in * elapsed
        for sub in topic.subscriptions.values():
            sub.delivered += sub.msg_rate_out * elapsed
        topic.counted_at = now

    def remove_topic(self, name: str) -> None:
        del self.topics[name]

    def set_rate_in(self, name: str, msg_rate_in: float) -> None:
        topic = self.topics[name]
        self._count(topic)
        topic.msg_rate_in = msg_rate_in

    def set_subscription(self, name: str, subscription: str, *, backlog: int | None = None,
                         msg_rate_out: float | None = None,
                         consumers: list[Consumer] | None = None) -> Subscription:
        """Set what is given of one subscription (created if new); the rest stays."""
        topic = self.topics[name]
        self._count(topic)
        sub = topic.subscriptions.setdefault(subscription, Subscription())
        if backlog is not None:
            sub.backlog = max(0, int(backlog))
        if msg_rate_out is not None:
            sub.msg_rate_out = msg_rate_out
        if consumers is not None:
            sub.consumers = list(consumers)
        return sub

    # -- wire bodies -------------------------------------------------------------------------

    def _consumer_json(self, consumer: Consumer, share: float) -> JSON:
        rate = consumer.msg_rate_out * share
        return {
            "msgRateOut": rate, "msgThroughputOut": rate * AVERAGE_MSG_SIZE,
            "bytesOutCounter": 0, "msgOutCounter": 0, "msgRateRedeliver": 0.0,
            "chunkedMessageRate": 0.0, "consumerName": consumer.name, "availablePermits": 1000,
            "unackedMessages": 0, "avgMessagesPerEntry": 1,
            "blockedConsumerOnUnackedMsgs": False, "lastAckedTimestamp": 0,
            "lastConsumedTimestamp": 0, "metadata": {}, "address": consumer.address,
            "connectedSince": "2024-01-01T00:00:00.000Z", "clientVersion": CLIENT_VERSION,
        }

    def _subscription_json(self, sub: Subscription, backlog: int, rate_out: float,
                           share: float, delivered: int) -> JSON:
        now_ms = int(self.wall() * 1000)
        return {
            "msgRateOut": rate_out, "msgThroughputOut": rate_out * AVERAGE_MSG_SIZE,
            "bytesOutCounter": int(delivered * AVERAGE_MSG_SIZE), "msgOutCounter": delivered,
            "msgRateRedeliver": 0.0,
            "chuckedMessageRate": 0, "chunkedMessageRate": 0,
            "msgBacklog": backlog, "backlogSize": int(backlog * AVERAGE_MSG_SIZE),
            "earliestMsgPublishTimeInBacklog": 0, "msgBacklogNoDelayed": backlog,
            "blockedSubscriptionOnUnackedMsgs": False, "msgDelayed": 0, "unackedMessages": 0,
            "type": sub.type, "msgRateExpired": 0.0, "totalMsgExpired": 0,
            "lastExpireTimestamp": 0, "lastConsumedFlowTimestamp": now_ms,
            "lastConsumedTimestamp": now_ms, "lastAckedTimestamp": now_ms,
            "lastMarkDeleteAdvancedTimestamp": now_ms,
            "consumers": [self._consumer_json(c, share) for c in sub.consumers],
            "allowOutOfOrderDelivery": False, "consumersAfterMarkDeletePosition": {},
            "nonContiguousDeletedMessagesRanges": 0,
            "nonContiguousDeletedMessagesRangesSerializedSize": 0,
            "isDurable": True, "isReplicated": False, "durable": True, "replicated": False,
        }

    def _stats(self, topic: Topic, index: int, parts: int) -> JSON:
        """`topic-stats.json`-shaped stats of one partition (or of a non-partitioned topic)."""
        rate_in = topic.msg_rate_in / parts
        counted = _split_int(int(topic.published), parts, index)
        subs = {name: self._subscription_json(sub, _split_int(sub.backlog, parts, index),
                                              sub.msg_rate_out / parts, 1 / parts,
                                              _split_int(int(sub.delivered), parts, index))
                for name, sub in topic.subscriptions.items()}
        backlog = max((s["msgBacklog"] for s in subs.values()), default=0)
        rate_out = sum(s["msgRateOut"] for s in subs.values())
        delivered = sum(s["msgOutCounter"] for s in subs.values())
        return {
            "msgRateIn": rate_in, "msgThroughputIn": rate_in * AVERAGE_MSG_SIZE,
            "msgRateOut": rate_out, "msgThroughputOut": rate_out * AVERAGE_MSG_SIZE,
            "bytesInCounter": int(counted * AVERAGE_MSG_SIZE), "msgInCounter": counted,
            "bytesOutCounter": int(delivered * AVERAGE_MSG_SIZE), "msgOutCounter": delivered,
            "averageMsgSize": AVERAGE_MSG_SIZE if rate_in else 0.0, "msgChunkPublished": False,
            "storageSize": int(backlog * AVERAGE_MSG_SIZE),
            "backlogSize": int(backlog * AVERAGE_MSG_SIZE), "filteredEntriesCount": 0,
            "earliestMsgPublishTimeInBacklogs": 0, "offloadedStorageSize": 0,
            "publishers": [{
                "accessMode": "Shared", "msgRateIn": rate_in,
                "msgThroughputIn": rate_in * AVERAGE_MSG_SIZE,
                "averageMsgSize": AVERAGE_MSG_SIZE, "chunkedMessageRate": 0.0, "producerId": 0,
                "metadata": {}, "address": "/10.244.9.1:52000",
                "connectedSince": "2024-01-01T00:00:00.000Z", "clientVersion": CLIENT_VERSION,
                "producerName": "tracardi-api-0"}] if rate_in else [],
            "waitingPublishers": 0,
            "subscriptions": subs,
            "replication": {},
            "deduplicationStatus": "Disabled",
            "nonContiguousDeletedMessagesRanges": 0,
            "nonContiguousDeletedMessagesRangesSerializedSize": 0,
            "ownerBroker": "pulsar-broker-0:8080",
        }

    def topic_stats(self, name: str) -> JSON | None:
        """What `GET .../stats` answers for a non-partitioned topic or one partition
        (`<topic>-partition-<i>`); None where Pulsar answers 404."""
        topic = self.topics.get(name)
        if topic is not None:
            if topic.partitions:
                return None
            self._count(topic)
            return self._stats(topic, 0, 1)
        base, _, index = name.rpartition("-partition-")
        topic = self.topics.get(base)
        if topic is not None and index.isdigit() and int(index) < topic.partitions:
            self._count(topic)
            return self._stats(topic, int(index), topic.partitions)
        return None

    def partitioned_stats(self, name: str, *, per_partition: bool) -> JSON:
        """`partitioned-stats.json`-shaped aggregate over the partitions."""
        topic = self.topics[name]
        self._count(topic)
        parts = topic.partitions
        per = [self._stats(topic, i, parts) for i in range(parts)]
        subs = {sub_name: self._subscription_json(sub, sub.backlog, sub.msg_rate_out, 1.0,
                                                  int(sub.delivered))
                for sub_name, sub in topic.subscriptions.items()}
        out = self._stats(topic, 0, 1)
        out["subscriptions"] = subs
        out["metadata"] = {"partitions": parts}
        out["partitions"] = ({f"{name}-partition-{i}": s for i, s in enumerate(per)}
                             if per_partition else {})
        return out


def _topic_name(request: web.Request) -> str:
    info = request.match_info
    return f"persistent://{info['tenant']}/{info['namespace']}/{info['topic']}"


def _not_found(reason: str = "Topic not found") -> web.Response:
    return web.json_response({"reason": reason}, status=404)


def create_app(state: PulsarState) -> web.Application:
    """Pulsar admin v2: partitioned-stats, stats and brokers/health over `state`."""

    async def partitioned_stats(request: web.Request) -> web.Response:
        name = _topic_name(request)
        topic = state.topics.get(name)
        # A topic the broker does not know has no partition metadata either: the same 404
        # as a non-partitioned one (PersistentTopicsBase.internalGetPartitionedStats).
        if topic is None or topic.partitions == 0:
            return _not_found("Partitioned Topic not found")
        per_partition = request.query.get("perPartition", "true").lower() != "false"
        return web.json_response(state.partitioned_stats(name, per_partition=per_partition))

    async def stats(request: web.Request) -> web.Response:
        body = state.topic_stats(_topic_name(request))
        return _not_found() if body is None else web.json_response(body)

    async def health(request: web.Request) -> web.Response:
        if not state.healthy:
            return web.json_response({"reason": "Broker is not healthy"}, status=500)
        return web.Response(text="ok", content_type="text/plain")

    app = web.Application(middlewares=[fault_middleware(state.faults)])
    prefix = "/admin/v2/persistent/{tenant}/{namespace}/{topic}"
    app.router.add_get(f"{prefix}/partitioned-stats", partitioned_stats)
    app.router.add_get(f"{prefix}/stats", stats)
    app.router.add_get("/admin/v2/brokers/health", health)
    return app
