"""An idempotent Kafka producer whose ``send`` returns only once the broker has the message.

The command API answers ``202`` only after the delivery report: the producer is idempotent
(``enable.idempotence=true``, ``acks=all``, so librdkafka's own retries never duplicate nor reorder a
message), ``delivery.timeout.ms`` bounds how long a message may wait for the broker, and ``send`` waits
for the report a little longer than that. A broker that is down therefore costs one timeout and a
:class:`ProduceError`, which callers turn into a clean refusal.

Dagster-free on purpose (the read API imports it): plain confluent-kafka. Delivery reports are served
by a pump task on the event loop of the senders (``poll(0)`` about every millisecond while messages
are in flight, asleep otherwise), so a report resolves its waiting request in the same thread: no
cross-thread wake-up per message, which costs more CPU than the produce itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Message, Producer

log = logging.getLogger(__name__)
# Extra time ``send`` waits past delivery.timeout.ms: librdkafka reports every message by then.
_REPORT_GRACE_S = 1.0
# How often the pump serves delivery reports while messages are in flight (adds at most this latency).
_PUMP_INTERVAL_S = 0.001


class ProduceError(RuntimeError):
    """Kafka did not confirm a message: broker unreachable, delivery timed out, queue full or fatal error."""


class EventProducer:
    """One idempotent producer (per process) and the pump that serves its delivery reports."""

    def __init__(
        self, bootstrap_servers: str, timeout_ms: int, settings: Mapping[str, Any] | None = None
    ) -> None:
        self.timeout_ms = timeout_ms
        self._fatal: KafkaError | None = None
        config: dict[str, Any] = {
            "bootstrap.servers": bootstrap_servers,
            "client.id": "afluente-commands",
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 2,  # small batches under load, ~no added latency alone
            "delivery.timeout.ms": timeout_ms,
            "socket.connection.setup.timeout.ms": max(1000, min(timeout_ms, 30_000)),
            "error_cb": self._on_error,
            "logger": log,  # librdkafka's own lines through logging (JSON in the API), not raw stderr
            **(settings or {}),
        }
        self._producer = Producer(config)
        self._closed = False
        self._pump: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None

    @property
    def failed(self) -> bool:
        """A fatal error (e.g. the idempotent sequence broke): this producer must be replaced."""
        return self._fatal is not None or self._closed

    def _on_error(self, error: KafkaError) -> None:
        if error.fatal():
            self._fatal = error
            log.error("Kafka producer fatal error, it will be recreated: %s", error)
        else:  # transport errors repeat while a broker is down: the per-message outcome is what counts
            log.warning("Kafka producer: %s", error)

    def _wake_pump(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start the pump on ``loop`` (again, if an earlier loop is gone) and make sure it is awake."""
        if self._pump is None or self._pump.done() or self._pump.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._pump = loop.create_task(self._serve_reports(self._wake), name="afluente-producer-pump")
        assert self._wake is not None
        self._wake.set()

    async def _serve_reports(self, wake: asyncio.Event) -> None:
        while True:
            await wake.wait()
            wake.clear()
            while len(self._producer):  # messages queued or awaiting their report
                self._producer.poll(0)
                await asyncio.sleep(_PUMP_INTERVAL_S)

    async def send(
        self, topic: str, key: bytes, value: bytes, headers: Mapping[str, bytes] | None = None
    ) -> None:
        """Produce one message and wait for the broker's acknowledgement (``ProduceError`` otherwise)."""
        if self.failed:
            raise ProduceError(f"Kafka producer unusable: {self._fatal or 'closed'}")
        loop = asyncio.get_running_loop()
        delivered: asyncio.Future[None] = loop.create_future()

        def report(error: KafkaError | None, message: Message) -> None:
            _settle(delivered, error)  # called by poll(), on this loop's thread

        try:
            self._producer.produce(
                topic, value=value, key=key, headers=list((headers or {}).items()), on_delivery=report
            )
        except BufferError as exc:
            raise ProduceError("Kafka producer queue is full (broker slow or unreachable)") from exc
        except KafkaException as exc:
            raise ProduceError(f"Kafka refused the message: {exc.args[0]}") from exc
        self._wake_pump(loop)
        expiry = loop.call_later(
            self.timeout_ms / 1000 + _REPORT_GRACE_S, _expire, delivered, self.timeout_ms
        )
        try:
            await delivered
        finally:
            expiry.cancel()

    def close(self, timeout_s: float = 5.0) -> int:
        """Deliver what is queued (bounded wait), stop the pump; returns messages left undelivered."""
        self._closed = True
        if self._pump is not None:
            self._pump.cancel()
        return int(self._producer.flush(timeout_s))


def _expire(future: asyncio.Future[None], timeout_ms: int) -> None:
    if not future.done():
        future.set_exception(ProduceError(f"no delivery report from Kafka within {timeout_ms} ms"))


def _settle(future: asyncio.Future[None], error: KafkaError | None) -> None:
    if future.done():  # the waiter gave up (timeout or cancelled request)
        return
    if error is None:
        future.set_result(None)
    else:
        future.set_exception(ProduceError(f"Kafka did not take the message: {error.str()}"))
