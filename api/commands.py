"""Commands of the subscriptions domain: each accepted command is ONE event on the commands topic.

The event (JSON, keyed by user id so one user's commands stay in order on one partition)::

    {"event_id": cid, "correlation_id": cid, "event_type": "...", "user_id": "...",
     "occurred_at": "2024-05-01T13:00:00.123456Z", "idempotency_key": "..." | null, "payload": {...}}

Idempotency: with an ``Idempotency-Key`` the correlation id is ``uuid5(route, user id, key)``, so a
retry names the same command. Each API process remembers the commands it produced (a bounded LRU,
``SUBSCRIPTIONS_IDEMPOTENCY_CACHE_SIZE``) and answers a retry it knows without producing again; a
retry that races the first attempt in the same process waits for it. A retry reaching another worker
(or this one after a restart or eviction) produces a second event with the *same* correlation id,
which processing counts once. Reusing a key for a different request is refused (409).
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from resources.event_producer import EventProducer
from resources.settings import KafkaSettings, SubscriptionsSettings

# Fixed namespace: the same (route, user, key) names the same command in every process and release.
COMMAND_NAMESPACE = uuid.UUID("5b0c7a3e-2f4d-4c55-9a51-0f3c8e6a4d21")


class IdempotencyConflictError(ValueError):
    """An ``Idempotency-Key`` already named a different request (other payload or command)."""


class CommandSink(Protocol):
    """Where accepted commands go; ``deliver`` returns once the event is durable or raises."""

    async def deliver(self, key: bytes, value: bytes, headers: dict[str, bytes]) -> None: ...

    def close(self) -> None: ...


class KafkaCommandSink:
    """The commands topic through one lazily created idempotent producer (replaced after a fatal error)."""

    def __init__(self, bootstrap_servers: str, topic: str, timeout_ms: int) -> None:
        self.bootstrap_servers = bootstrap_servers
        self.topic = topic
        self.timeout_ms = timeout_ms
        self._producer: EventProducer | None = None

    async def deliver(self, key: bytes, value: bytes, headers: dict[str, bytes]) -> None:
        if self._producer is not None and self._producer.failed:
            self._producer.close(timeout_s=0)
            self._producer = None
        if self._producer is None:
            self._producer = EventProducer(self.bootstrap_servers, self.timeout_ms)
        await self._producer.send(self.topic, key, value, headers)

    def close(self) -> None:
        if self._producer is not None:
            self._producer.close()
            self._producer = None


def correlation_id_for(route: str, user_id: str, idempotency_key: str | None) -> str:
    """Random without a key; with one, the same for every retry of the same command."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(COMMAND_NAMESPACE, f"{route}\n{user_id}\n{idempotency_key}"))


def new_user_id(idempotency_key: str | None) -> str:
    """The id of a user being created: derived from the key, so a retried creation names the same user."""
    if idempotency_key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(COMMAND_NAMESPACE, f"usuario\n{idempotency_key}"))


def utc_now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Accepted:
    correlation_id: str
    user_id: str
    event_type: str
    replayed: bool  # a known retry: no new event was produced


class RecentCommands:
    """LRU of correlation ids this process produced, with the fingerprint of each request."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[str, bytes] = OrderedDict()

    def get(self, correlation_id: str) -> bytes | None:
        found = self._entries.get(correlation_id)
        if found is not None:
            self._entries.move_to_end(correlation_id)
        return found

    def add(self, correlation_id: str, fingerprint: bytes) -> None:
        self._entries[correlation_id] = fingerprint
        self._entries.move_to_end(correlation_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __contains__(self, correlation_id: object) -> bool:
        return correlation_id in self._entries


class CommandBus:
    """Turns a validated command into one delivered event, at most once per key within this process."""

    def __init__(self, sink: CommandSink, capacity: int) -> None:
        self.sink = sink
        self.recent = RecentCommands(capacity)
        self._in_flight: dict[str, asyncio.Event] = {}

    async def submit(
        self,
        *,
        route: str,
        event_type: str,
        user_id: str,
        idempotency_key: str | None,
        payload: dict[str, Any],
    ) -> Accepted:
        """Deliver the command's event (``ProduceError`` when the sink cannot confirm it)."""
        correlation_id = correlation_id_for(route, user_id, idempotency_key)
        fingerprint = hashlib.blake2b(
            orjson.dumps([event_type, payload], option=orjson.OPT_SORT_KEYS), digest_size=16
        ).digest()
        while True:  # a known retry, or one racing its first attempt in this process
            known = self.recent.get(correlation_id)
            if known is not None:
                if known != fingerprint:
                    raise IdempotencyConflictError(
                        f"Idempotency-Key {idempotency_key!r} was already used for a different request"
                    )
                return Accepted(correlation_id, user_id, event_type, replayed=True)
            pending = self._in_flight.get(correlation_id)
            if pending is None:
                break
            await pending.wait()  # then: delivered (known above) or failed (this request tries itself)

        event = {
            "event_id": correlation_id,
            "correlation_id": correlation_id,
            "event_type": event_type,
            "user_id": user_id,
            "occurred_at": utc_now_iso(),
            "idempotency_key": idempotency_key,
            "payload": payload,
        }
        headers = {"correlation_id": correlation_id.encode(), "event_type": event_type.encode()}
        done = self._in_flight[correlation_id] = asyncio.Event()
        try:
            await self.sink.deliver(user_id.encode(), orjson.dumps(event), headers)
            self.recent.add(correlation_id, fingerprint)
        finally:
            del self._in_flight[correlation_id]
            done.set()
        return Accepted(correlation_id, user_id, event_type, replayed=False)

    def produced_recently(self, correlation_id: str) -> bool:
        return correlation_id in self.recent

    def close(self) -> None:
        self.sink.close()


def bus_from_settings() -> CommandBus:
    """The Kafka-backed bus configured by ``KAFKA_BOOTSTRAP_SERVERS`` and the ``SUBSCRIPTIONS_*`` settings."""
    settings = SubscriptionsSettings.current()
    sink = KafkaCommandSink(
        KafkaSettings.current().bootstrap_servers, settings.commands_topic, settings.produce_timeout_ms
    )
    return CommandBus(sink, settings.idempotency_cache_size)
