"""Read exactly the requested offset ranges of a topic's partitions (confluent-kafka, no group).

Messages are consumed from exactly the requested offsets (``assign`` at the start offsets; nothing
is committed to Kafka). Per message only the accessor calls run in Python; which messages fall
inside the current range of their partition is decided with NumPy masks.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from assets.sources.kafka_topic._ledger import OffsetRange

# (partitions, offsets, Kafka timestamps in ms, message values) of consumed messages.
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, list[Any]]


class RangeUnavailableError(RuntimeError):
    """A requested range cannot be read (beyond the log end, or the broker stopped answering)."""


class RangeConsumer:
    """Reads exactly the requested offset ranges from assigned partitions (confluent-kafka, no group)."""

    def __init__(
        self,
        consumer: Any,
        topic: str,
        ranges: Sequence[OffsetRange],
        idle_timeout_s: float,
        log: Any,
    ) -> None:
        self.consumer = consumer
        self.topic = topic
        self.idle_timeout_s = idle_timeout_s
        self.log = log
        self.pending: dict[int, list[OffsetRange]] = {}
        for item in sorted(ranges):
            if item.size > 0:
                self.pending.setdefault(item.partition, []).append(item)
        self.expired = 0
        self.next_offset: dict[int, int] = {}

    def _check_bounds(self) -> None:
        from confluent_kafka import KafkaException, TopicPartition

        for partition, items in self.pending.items():
            try:
                log_start, log_end = self.consumer.get_watermark_offsets(
                    TopicPartition(self.topic, partition), timeout=30, cached=False
                )
            except KafkaException as exc:
                raise RangeUnavailableError(f"{self.topic}[{partition}] cannot be read: {exc}") from exc
            last = items[-1].end_offset
            if last > log_end:
                raise RangeUnavailableError(
                    f"{self.topic}[{partition}]: requested offsets up to {last} but the log ends at "
                    f"{log_end} (was the topic recreated?)"
                )
            for item in items:
                if item.start_offset < log_start:
                    lost = min(item.end_offset, log_start) - item.start_offset
                    self.expired += lost
                    self.log.warning(
                        f"{self.topic}[{partition}]: {lost} offsets of {item.label()} were deleted by "
                        f"retention before they were ingested (log starts at {log_start})"
                    )

    def _assign(self) -> None:
        from confluent_kafka import TopicPartition

        self.consumer.assign(
            [TopicPartition(self.topic, p, items[0].start_offset) for p, items in self.pending.items()]
        )

    def chunks(self, chunk_messages: int) -> Iterator[Chunk]:
        """Yield (partitions, offsets, timestamps_ms, values) of about ``chunk_messages`` messages.

        Per message only the accessor calls run in Python (one list comprehension each); which
        messages fall inside the current range of their partition is decided with NumPy masks.
        """
        from confluent_kafka import TopicPartition

        consumer = self.consumer
        self._check_bounds()
        self._assign()
        active = set(self.pending)
        # Next offset expected per partition: asking consume() for no more messages than the
        # current ranges still hold lets it return as soon as they arrived, instead of waiting
        # out its timeout for messages that will never come (a range ending at the log end).
        self.next_offset = {p: items[0].start_offset for p, items in self.pending.items()}
        pieces: list[Chunk] = []
        buffered = 0
        last_progress = time.monotonic()
        while active:
            remaining = sum(self.pending[p][0].end_offset - self.next_offset[p] for p in active)
            wanted = max(1, min(chunk_messages - buffered, 100_000, remaining))
            messages = consumer.consume(num_messages=wanted, timeout=0.5)
            done: set[int] = set()
            if messages:
                last_progress = time.monotonic()
                piece = self._select(messages, active, done)
                if piece is not None:
                    pieces.append(piece)
                    buffered += len(piece[3])
            # Offsets past the last message (transaction markers, compaction) also end a range.
            for partition in list(active - done):
                position = consumer.position([TopicPartition(self.topic, partition)])[0].offset
                if position >= self.pending[partition][0].end_offset:
                    done.add(partition)
            for partition in done & active:
                self.pending[partition].pop(0)
                last_progress = time.monotonic()
                if self.pending[partition]:
                    start = self.pending[partition][0].start_offset
                    self.next_offset[partition] = start
                    consumer.seek(TopicPartition(self.topic, partition, start))
                else:
                    consumer.pause([TopicPartition(self.topic, partition)])
                    active.discard(partition)
            if buffered >= chunk_messages:
                yield _concat(pieces)
                pieces, buffered = [], 0
            if active and time.monotonic() - last_progress > self.idle_timeout_s:
                stuck = {p: self.pending[p][0].label() for p in sorted(active)}
                raise RangeUnavailableError(
                    f"no progress reading {self.topic} for {self.idle_timeout_s:.0f}s; still missing {stuck}"
                )
        if buffered:
            yield _concat(pieces)

    def _select(self, messages: list[Any], active: set[int], done: set[int]) -> Chunk | None:
        """The messages of one ``consume`` call inside their partition's current range.

        Adds to ``done`` the partitions whose current range this batch reaches the end of.
        """
        from confluent_kafka import KafkaError, KafkaException

        if any(m.error() is not None for m in messages):
            for message in messages:
                error = message.error()
                if error is not None and error.code() != KafkaError._PARTITION_EOF:
                    raise KafkaException(error)
            messages = [m for m in messages if m.error() is None]
        parts = np.array([m.partition() for m in messages], dtype=np.int32)
        offs = np.array([m.offset() for m in messages], dtype=np.int64)
        keep = np.zeros(len(messages), dtype=bool)
        for partition in active:
            current = self.pending[partition][0]
            mine = parts == partition
            if not mine.any():
                continue
            inside = mine & (offs >= current.start_offset) & (offs < current.end_offset)
            keep |= inside
            if inside.any():
                self.next_offset[partition] = int(offs[inside].max()) + 1
            if (offs[mine] >= current.end_offset - 1).any():
                done.add(partition)
        if not keep.any():
            return None
        if not keep.all():
            messages = [messages[i] for i in np.flatnonzero(keep)]
            parts, offs = parts[keep], offs[keep]
        stamps = np.array([m.timestamp()[1] for m in messages], dtype=np.int64)
        return parts, offs, stamps, [m.value() for m in messages]


def _concat(pieces: list[Chunk]) -> Chunk:
    if len(pieces) == 1:
        return pieces[0]
    return (
        np.concatenate([p[0] for p in pieces]),
        np.concatenate([p[1] for p in pieces]),
        np.concatenate([p[2] for p in pieces]),
        [value for p in pieces for value in p[3]],
    )
