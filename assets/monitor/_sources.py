"""Reading what the monitor indexes: Kafka topics from the ledger's offsets, JSON log files from the
ledger's byte positions. Both read at most a budget of documents and say where they stopped.

Kafka: partitions are ``assign``ed at the recorded offsets (no consumer group, nothing committed to
Kafka) and read up to the end offsets seen when the pass started. A topic that does not exist (yet)
is skipped and reported. Offsets deleted by Kafka's retention before they were read are counted.

Log files: every file matching the configured glob patterns, identified by ``<device>:<inode>`` so
a rotated (renamed) file keeps its position; a file shorter than its recorded position was
truncated and is read again from 0. Only complete lines (ending in a newline) are read.
"""

from __future__ import annotations

import glob
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from assets.monitor._documents import event_document, log_document
from assets.monitor._ledger import FILE, KAFKA, Position
from resources.kafka import KafkaResource

METADATA_TIMEOUT_S = 10.0
IDLE_TIMEOUT_S = 30.0
MAX_FILE_READ_BYTES = 64 * 1024 * 1024


@dataclass
class SourceBatch:
    """Documents read from one source and the ledger positions to record once they are safe."""

    source: str
    documents: list[dict[str, Any]] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)


@dataclass
class KafkaRead:
    batches: list[SourceBatch]
    missing_topics: list[str]
    expired: int
    lag: int  # offsets left unread because of the budget


def end_offsets(
    consumer: Any, topic: str, timeout_s: float = METADATA_TIMEOUT_S
) -> dict[int, tuple[int, int]] | None:
    """partition -> (low, high) watermarks; None when the topic does not exist."""
    from confluent_kafka import TopicPartition

    metadata = consumer.list_topics(topic, timeout=timeout_s)
    described = metadata.topics.get(topic)
    if described is None or described.error is not None or not described.partitions:
        return None
    return {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout_s, cached=False)
        for p in sorted(described.partitions)
    }


def read_topics(
    kafka: KafkaResource, topics: Sequence[str], recorded: dict[tuple[str, int], Position], budget: int
) -> KafkaRead:
    """Read every listed topic from its recorded offsets, at most ``budget`` messages in total."""
    from confluent_kafka import KafkaError, KafkaException, TopicPartition

    result = KafkaRead([], [], 0, 0)
    consumer = kafka.range_consumer()
    try:
        for topic in topics:
            marks = end_offsets(consumer, topic)
            if marks is None:
                result.missing_topics.append(topic)
                continue
            batch = SourceBatch(f"kafka:{topic}")
            start: dict[int, int] = {}
            stop: dict[int, int] = {}
            for partition, (low, high) in marks.items():
                position = recorded.get((topic, partition))
                first = position.position if position else low
                if first < low:
                    result.expired += low - first
                    first = low
                start[partition] = first
                room = max(0, budget - sum(stop[p] - start[p] for p in stop))
                stop[partition] = min(high, first + room)
                result.lag += high - stop[partition]
            wanted = {p for p in start if stop[p] > start[p]}
            nxt = dict(start)
            if wanted:
                consumer.assign([TopicPartition(topic, p, start[p]) for p in sorted(wanted)])
                last_progress = time.monotonic()
                while wanted:
                    remaining = sum(stop[p] - nxt[p] for p in wanted)
                    messages = consumer.consume(num_messages=max(1, min(remaining, 10_000)), timeout=0.5)
                    for message in messages:
                        error = message.error()
                        if error is not None:
                            if error.code() == KafkaError._PARTITION_EOF:
                                continue
                            raise KafkaException(error)
                        partition, offset = message.partition(), message.offset()
                        if partition not in wanted or offset < nxt[partition] or offset >= stop[partition]:
                            continue
                        batch.documents.append(
                            event_document(
                                topic,
                                partition,
                                offset,
                                message.timestamp()[1],
                                message.key(),
                                message.value(),
                            )
                        )
                        nxt[partition] = offset + 1
                        last_progress = time.monotonic()
                    for partition in list(wanted):
                        # Offsets without a message (transaction markers, compaction) also end a range.
                        here = consumer.position([TopicPartition(topic, partition)])[0].offset
                        if nxt[partition] >= stop[partition] or here >= stop[partition]:
                            nxt[partition] = stop[partition]
                            wanted.discard(partition)
                    if wanted and time.monotonic() - last_progress > IDLE_TIMEOUT_S:
                        raise TimeoutError(f"no progress reading {topic} for {IDLE_TIMEOUT_S:.0f}s")
                consumer.unassign()
            batch.positions = [Position(KAFKA, topic, p, nxt[p]) for p in sorted(nxt)]
            budget -= len(batch.documents)
            result.batches.append(batch)
    finally:
        consumer.close()
    return result


def file_identity(stat: os.stat_result) -> str:
    return f"{stat.st_dev}:{stat.st_ino}"


def matching_files(patterns: Sequence[str]) -> dict[str, tuple[str, int]]:
    """identity -> (path, size) of the regular files matching ``patterns`` (first path wins)."""
    found: dict[str, tuple[str, int]] = {}
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)):
            try:
                stat = os.stat(path)
            except OSError:
                continue  # removed between glob and stat
            if os.path.isfile(path):
                found.setdefault(file_identity(stat), (path, stat.st_size))
    return found


def new_bytes_start(position: Position | None, size: int) -> int:
    """Where unread bytes start: the recorded position, or 0 for a new or truncated file."""
    start = position.position if position else 0
    return 0 if start > size else start


def read_log_files(
    files: dict[str, tuple[str, int]], recorded: dict[tuple[str, int], Position], budget: int
) -> list[SourceBatch]:
    """New complete lines of every file, at most ``budget`` lines in total."""
    batches = []
    for identity, (path, size) in sorted(files.items(), key=lambda item: item[1][0]):
        start = new_bytes_start(recorded.get((identity, 0)), size)
        batch = SourceBatch(f"file:{path}")
        offset = start
        if budget > 0 and size > start:
            try:
                with open(path, "rb") as handle:
                    handle.seek(start)
                    data = handle.read(min(size - start, MAX_FILE_READ_BYTES))
            except FileNotFoundError:
                continue  # deleted since it was listed: its row is forgotten with it
            cursor = 0
            while budget > 0:
                end = data.find(b"\n", cursor)
                if end < 0:
                    break  # a writer mid-line: read it once it is complete
                line, cursor = data[cursor : end + 1], end + 1
                if line.strip():
                    batch.documents.append(log_document(path, identity, offset, line))
                    budget -= 1
                offset += len(line)
        batch.positions = [Position(FILE, identity, 0, offset, path)]
        batches.append(batch)
    return batches
