"""Commands of the subscriptions domain: each accepted command is ONE event on the commands topic.

The event (JSON, keyed by user id so one user's commands stay in order on one partition)::

    {"event_id": cid, "correlation_id": cid, "event_type": "...", "user_id": "...",
     "occurred_at": "2024-05-01T13:00:00.123456Z", "idempotency_key": "..." | null, "payload": {...}}

Idempotency: with an ``Idempotency-Key`` the correlation id is ``uuid5(route, user id, key)``, so a
retry names the same command, whichever API worker (or host) it reaches. Before producing, a worker
reserves the id in the shared idempotency store (:mod:`resources.idempotency_store`: PostgreSQL next
to a PostgreSQL warehouse, a SQLite file shared by one host's workers next to DuckDB); a retry finds
the command produced and answers with its id without producing, or waits while another request is
producing it (taking it over when that request's worker died before producing). A Kafka failure
releases the reservation, so the retry produces. Reusing a key for a different request is refused
(409); a store that cannot be reached answers 503 (nothing produced). A duplicate event is only
possible when a worker dies after Kafka had the event but before recording it; it carries the same
correlation id, which processing counts once.

Requests without a key never touch the store. Each process also keeps the commands it produced in
a bounded LRU (``SUBSCRIPTIONS_IDEMPOTENCY_CACHE_SIZE``): a retry found there is answered without a
store round trip, concurrent retries in one process wait for the first attempt, and ``/status``
answers ``accepted`` for what this process just produced. Correctness does not depend on it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import orjson

from resources.event_producer import EventProducer, ProduceError
from resources.idempotency_store import (
    IdempotencyConflictError,
    IdempotencyStore,
    IdempotencyStoreUnavailableError,
    open_store,
)
from resources.settings import KafkaSettings, SubscriptionsSettings, WarehouseSettings

__all__ = [
    "Accepted",
    "CommandBus",
    "IdempotencyConflictError",
    "IdempotencyStoreUnavailableError",
    "bus_from_settings",
    "correlation_id_for",
    "fingerprint_of",
    "new_user_id",
    "store_from_settings",
]

log = logging.getLogger(__name__)

# Fixed namespace: the same (route, user, key) names the same command in every process and release.
COMMAND_NAMESPACE = uuid.UUID("5b0c7a3e-2f4d-4c55-9a51-0f3c8e6a4d21")


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


def _replayed(correlation_id: str, user_id: str, event_type: str, source: str) -> Accepted:
    """A retry answered without producing (logged with the worker's pid: retries are rare)."""
    log.info(
        "command %s: Idempotency-Key retry answered from the %s, no event produced",
        correlation_id,
        source,
        extra={"correlation_id": correlation_id, "replayed_from": source, "pid": os.getpid()},
    )
    return Accepted(correlation_id, user_id, event_type, replayed=True)


class RecentCommands:
    """LRU of correlation ids this process produced, with the fingerprint of each request.

    An entry is forgotten after ``max_age_s`` (the store's retention, after which a key may name a new
    request), so the cache never answers differently from the store.
    """

    def __init__(self, capacity: int, max_age_s: float = float("inf")) -> None:
        self.capacity = capacity
        self.max_age_s = max_age_s
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def get(self, correlation_id: str) -> str | None:
        found = self._entries.get(correlation_id)
        if found is None:
            return None
        if time.monotonic() - found[1] >= self.max_age_s:
            del self._entries[correlation_id]
            return None
        self._entries.move_to_end(correlation_id)
        return found[0]

    def add(self, correlation_id: str, fingerprint: str) -> None:
        self._entries[correlation_id] = (fingerprint, time.monotonic())
        self._entries.move_to_end(correlation_id)
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)

    def __contains__(self, correlation_id: object) -> bool:
        return isinstance(correlation_id, str) and self.get(correlation_id) is not None


def fingerprint_of(event_type: str, payload: dict[str, Any]) -> str:
    """What a key must keep naming: the command and its payload (canonical JSON, hashed)."""
    canonical = orjson.dumps([event_type, payload], option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(canonical, digest_size=16).hexdigest()


class CommandBus:
    """Turns a validated command into one delivered event; with a key, once across every worker."""

    def __init__(self, sink: CommandSink, capacity: int, store: IdempotencyStore) -> None:
        self.sink = sink
        self.store = store
        self.recent = RecentCommands(capacity, store.retention_s)
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
        if idempotency_key is None:  # the fast path: a fresh id, nothing to look up
            await self._deliver(correlation_id, event_type, user_id, None, payload)
            self.recent.add(correlation_id, "")
            return Accepted(correlation_id, user_id, event_type, replayed=False)

        fingerprint = fingerprint_of(event_type, payload)
        while True:  # known here, or racing its first attempt in this process
            known = self.recent.get(correlation_id)
            if known is not None:
                if known != fingerprint:
                    raise IdempotencyConflictError(
                        f"Idempotency-Key {idempotency_key!r} was already used for a different request"
                    )
                return _replayed(correlation_id, user_id, event_type, "cache")
            pending = self._in_flight.get(correlation_id)
            if pending is None:
                break
            await pending.wait()  # then: delivered (known above) or failed (this request tries itself)

        done = self._in_flight[correlation_id] = asyncio.Event()
        try:
            return await self._submit_once(
                correlation_id, fingerprint, event_type, user_id, idempotency_key, payload
            )
        finally:
            del self._in_flight[correlation_id]
            done.set()

    async def _submit_once(
        self,
        correlation_id: str,
        fingerprint: str,
        event_type: str,
        user_id: str,
        idempotency_key: str,
        payload: dict[str, Any],
    ) -> Accepted:
        """Reserve in the shared store, then produce (or replay what another worker produced)."""
        try:
            reservation = await self.store.reserve(correlation_id, fingerprint)
        except IdempotencyConflictError as exc:
            raise IdempotencyConflictError(
                f"Idempotency-Key {idempotency_key!r} was already used for a different request"
            ) from exc
        if reservation.produced:
            self.recent.add(correlation_id, fingerprint)
            return _replayed(correlation_id, user_id, event_type, "store")
        try:
            await self._deliver(correlation_id, event_type, user_id, idempotency_key, payload)
        except ProduceError:
            try:  # not accepted: the retry must produce, not wait for a takeover
                await self.store.release(reservation)
            except IdempotencyStoreUnavailableError as exc:
                log.warning(
                    "idempotency: could not release %s (a retry takes it over): %s", correlation_id, exc
                )
            raise
        self.recent.add(correlation_id, fingerprint)
        try:
            await self.store.mark_produced(reservation)
        except IdempotencyStoreUnavailableError as exc:  # Kafka has it: accepted all the same
            log.warning("idempotency: %s produced but not recorded: %s", correlation_id, exc)
        return Accepted(correlation_id, user_id, event_type, replayed=False)

    async def _deliver(
        self,
        correlation_id: str,
        event_type: str,
        user_id: str,
        idempotency_key: str | None,
        payload: dict[str, Any],
    ) -> None:
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
        await self.sink.deliver(user_id.encode(), orjson.dumps(event), headers)

    def produced_recently(self, correlation_id: str) -> bool:
        return correlation_id in self.recent

    async def accepted(self, correlation_id: str) -> bool:
        """Produced by this process recently, or (a keyed command) by any worker per the shared store;
        a store that cannot be reached answers "not known here" (``/status`` then looks further)."""
        if self.produced_recently(correlation_id):
            return True
        try:
            return await self.store.is_produced(correlation_id)
        except IdempotencyStoreUnavailableError as exc:
            log.warning("idempotency store not consulted for the status of %s: %s", correlation_id, exc)
            return False

    async def aclose(self) -> None:
        """Close this process's producer and the store's connections (at the app's shutdown)."""
        self.sink.close()
        await self.store.aclose()


def store_from_settings(warehouse_url: str | None = None) -> IdempotencyStore:
    """The idempotency store ``SUBSCRIPTIONS_IDEMPOTENCY_STORE`` names for ``warehouse_url`` (default:
    ``WAREHOUSE_URL``); it connects at its first use."""
    settings = SubscriptionsSettings.current()
    return open_store(
        warehouse_url or WarehouseSettings.current().url,
        settings.idempotency_store,
        sqlite_path=settings.idempotency_sqlite_path,
        takeover_s=settings.idempotency_takeover_seconds,
        retention_s=settings.idempotency_retention_hours * 3600,
    )


def bus_from_settings(warehouse_url: str | None = None) -> CommandBus:
    """The Kafka-backed bus of ``KAFKA_BOOTSTRAP_SERVERS`` and the ``SUBSCRIPTIONS_*`` settings."""
    settings = SubscriptionsSettings.current()
    sink = KafkaCommandSink(
        KafkaSettings.current().bootstrap_servers, settings.commands_topic, settings.produce_timeout_ms
    )
    return CommandBus(sink, settings.idempotency_cache_size, store_from_settings(warehouse_url))
