"""Consume exact Kafka offset ranges into a source's raw table in one warehouse transaction.

The write transaction opens first: it locks the ranges' partitions (PostgreSQL advisory locks)
and reads what the ledger already covers. Messages are then consumed from exactly the requested
offsets (:mod:`._consumer`), decoded and validated in chunks by the source's decoder, and each
chunk is bulk-loaded (PostgreSQL binary COPY / DuckDB Arrow scan) on a writer thread while the
next one is being consumed. Offsets the ledger already covers are dropped before loading, so
replaying a range changes nothing. The ledger rows for the newly covered ranges and an audit row
per range are written last, in the same transaction: a run killed at any point before the commit
leaves no trace.

Where a run's CPU goes per event (200k-event range of commerce events, this 2-core machine; see
``bench/commerce_kafka.py``): librdkafka fetch + message objects ~3 us, JSON decode and
validation ~4 us, Arrow/COPY encoding and writer ~1 us, PostgreSQL (binary COPY, heap, two
cheap indexes, WAL) ~6-7 us. Python's cyclic garbage collector is paused for the load (it cost a
third of the Python time: see :func:`_gc_paused`).
"""

from __future__ import annotations

import gc
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from assets.sources.kafka_topic._consumer import RangeConsumer
from assets.sources.kafka_topic._ledger import (
    BatchAudit,
    OffsetRange,
    Range,
    covered_count,
    lock_partitions,
    merge_ranges,
    read_covered,
    record_batches,
    record_ranges,
    subtract_ranges,
)
from assets.sources.kafka_topic._tables import TopicTables, ensure_tables
from resources.bulk_write import copy_binary_into_postgres, write_arrow
from resources.payloads import payload_text
from resources.warehouse import WarehouseResource

DEFAULT_CHUNK_MESSAGES = 20_000
DEFAULT_MAX_MESSAGE_BYTES = 65_536
_LOG = logging.getLogger(__name__)


class DecodedMessages(Protocol):
    """What a source's decoder returns for a batch of message values.

    ``events`` holds the valid messages as rows of the raw table's message columns, ``rows`` their
    positions in the input; ``dead_rows``/``dead_reasons`` the rejected positions and the first rule
    each broke.
    """

    @property
    def events(self) -> pa.Table: ...
    @property
    def rows(self) -> np.ndarray: ...
    @property
    def dead_rows(self) -> np.ndarray: ...
    @property
    def dead_reasons(self) -> list[str]: ...


# decoder(values, max_message_bytes): never raises for bad input, every message ends up in one side.
Decoder = Callable[[Sequence[bytes | None], int], DecodedMessages]


@dataclass(frozen=True)
class ConsumedChunk:
    """Decoded messages of one chunk: valid events and dead letters, both with source coordinates."""

    events: pa.Table
    dead_letters: pa.Table
    messages: int


@dataclass
class IngestResult:
    """What one ingest did, for run metadata and benchmarks."""

    topic: str
    ranges: list[OffsetRange]
    messages: int = 0
    events_loaded: int = 0
    dead_letters: int = 0
    already_loaded: int = 0  # offsets of the requested ranges the ledger already covered
    expired_offsets: int = 0
    skipped_covered: int = 0
    consume_seconds: float = 0.0
    write_seconds: float = 0.0
    total_seconds: float = 0.0
    reasons: dict[str, int] = field(default_factory=dict)
    audits: list[BatchAudit] = field(default_factory=list)

    def metadata(self) -> dict[str, Any]:
        rate = self.messages / self.total_seconds if self.total_seconds else 0.0
        return {
            "topic": self.topic,
            "ranges": ",".join(r.label() for r in self.ranges),
            "messages": self.messages,
            "events_loaded": self.events_loaded,
            "dead_letters": self.dead_letters,
            "already_loaded_offsets": self.already_loaded,
            "expired_offsets": self.expired_offsets,
            "consume_seconds": round(self.consume_seconds, 3),
            "write_seconds": round(self.write_seconds, 3),
            "messages_per_second": round(rate, 1),
        }


def source_columns(
    topic: str, partitions: np.ndarray, offsets: np.ndarray, timestamps_ms: np.ndarray
) -> dict[str, pa.Array]:
    """Source coordinate columns (vectorized), including ``source_key`` = ``kafka/<t>/<p>/<offset>``."""
    part = pa.array(partitions, pa.int32())
    offs = pa.array(offsets, pa.int64())
    key = pc.binary_join_element_wise(
        f"kafka/{topic}/", pc.cast(part, pa.string()), "/", pc.cast(offs, pa.string()), ""
    )
    stamps = pa.array(np.asarray(timestamps_ms, dtype=np.int64) * 1000, pa.int64())
    ts = pc.if_else(pc.less(stamps, 0), pa.scalar(None, pa.int64()), stamps).cast(pa.timestamp("us"))
    return {
        "source_key": key,
        "source_topic": pa.repeat(pa.scalar(topic, pa.string()), len(offs)),
        "source_partition": part,
        "source_offset": offs,
        "source_timestamp": ts,
    }


def decode_chunk(
    decoder: Decoder,
    topic: str,
    partitions: Sequence[int] | np.ndarray,
    offsets: Sequence[int] | np.ndarray,
    timestamps_ms: Sequence[int] | np.ndarray,
    values: Sequence[bytes | None],
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> ConsumedChunk:
    """Validate one chunk of messages and attach their Kafka coordinates."""
    decoded = decoder(values, max_message_bytes)
    parts = np.asarray(partitions, dtype=np.int32)
    offs = np.asarray(offsets, dtype=np.int64)
    stamps = np.asarray(timestamps_ms, dtype=np.int64)
    events = decoded.events
    rows = decoded.rows
    for name, column in source_columns(topic, parts[rows], offs[rows], stamps[rows]).items():
        events = events.append_column(name, column)
    dead = decoded.dead_rows
    dead_columns = source_columns(topic, parts[dead], offs[dead], stamps[dead])
    dead_values = [values[i] for i in dead]
    dead_letters = pa.table(
        {
            **dead_columns,
            "reason": pa.array(decoded.dead_reasons, pa.string()),
            "raw_content": pa.array([payload_text(v) for v in dead_values], pa.string()),
            "payload_bytes": pa.array([len(v) if v is not None else 0 for v in dead_values], pa.int32()),
        }
    )
    return ConsumedChunk(events, dead_letters, len(values))


def _covered_mask(partitions: pa.Array, offsets: pa.Array, covered: dict[int, list[Range]]) -> np.ndarray:
    """True where (partition, offset) is inside a covered range."""
    mask = np.zeros(len(offsets), dtype=bool)
    if not covered or len(offsets) == 0:
        return mask
    parts = partitions.to_numpy(zero_copy_only=False)
    offs = offsets.to_numpy(zero_copy_only=False)
    for partition, spans in covered.items():
        in_partition = parts == partition
        if not in_partition.any():
            continue
        for start, end in spans:
            mask |= in_partition & (offs >= start) & (offs < end)
    return mask


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while messages are consumed, decoded and loaded.

    A run allocates millions of short-lived objects without reference cycles (messages, payloads,
    decoded events), all freed by reference counting; but every few hundred allocations the
    collector traverses every tracked object of the process, Dagster's own included. Profiles
    showed a third of a run's Python time in those collections.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def ingest_kafka_ranges(
    *,
    consumer_factory: Callable[[], Any],
    warehouse: WarehouseResource,
    topic: str,
    ranges: Sequence[OffsetRange],
    run_id: str,
    tables: TopicTables,
    decoder: Decoder,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    chunk_messages: int = DEFAULT_CHUNK_MESSAGES,
    idle_timeout_s: float = 60.0,
    log: Any = None,
    before_commit: Callable[[IngestResult], None] | None = None,
) -> IngestResult:
    """Load ``ranges`` of ``topic`` and record them in the ledger, all in one transaction.

    ``before_commit`` is a test hook called with the result right before COMMIT.
    """
    log = log or _LOG
    started = time.perf_counter()
    result = IngestResult(topic=topic, ranges=sorted(r for r in ranges if r.size > 0))
    if not result.ranges:
        return result
    ensure_tables(warehouse, tables)
    partitions = sorted({r.partition for r in result.ranges})
    now = datetime.now(UTC).replace(tzinfo=None)
    audit = {
        "ingest_at": pa.scalar(now, pa.timestamp("us")),
        "ingest_batch": pa.scalar(f"kafka_{now:%Y%m%dT%H%M%S}_{run_id[:8]}"),
        "ingest_source": pa.scalar(topic),
    }
    consumer = None
    try:
        with warehouse.begin() as conn:
            lock_partitions(conn, tables.pipeline, topic, partitions)
            covered = read_covered(conn, tables, topic, partitions)
            # Only offsets the ledger does not cover are read: replaying a range reads nothing.
            to_read = [
                OffsetRange(item.partition, start, end)
                for item in result.ranges
                for start, end in subtract_ranges(
                    (item.start_offset, item.end_offset), covered.get(item.partition, [])
                )
            ]
            writer = _ChunkWriter(conn, tables, covered, audit, result, conn.dialect.name == "postgresql")
            consume_started = time.perf_counter()
            try:
                if to_read:
                    consumer = consumer_factory()
                    reader = RangeConsumer(consumer, topic, to_read, idle_timeout_s, log)
                    with _gc_paused():
                        for chunk in reader.chunks(chunk_messages):
                            decoded = decode_chunk(
                                decoder, topic, *chunk, max_message_bytes=max_message_bytes
                            )
                            writer.submit(decoded)
                        writer.close()
                    result.expired_offsets = reader.expired
            finally:
                writer.close()
            result.consume_seconds = time.perf_counter() - consume_started - writer.wait_seconds
            write_started = time.perf_counter()
            newly: dict[int, list[Range]] = {}
            for item in result.ranges:
                span = (item.start_offset, item.end_offset)
                spans = covered.get(item.partition, [])
                newly.setdefault(item.partition, []).extend(subtract_ranges(span, spans))
                counts = writer.per_partition.get(item.partition, {})
                already = covered_count(span, spans)
                result.already_loaded += already
                result.audits.append(
                    BatchAudit(
                        item.partition,
                        item.start_offset,
                        item.end_offset,
                        counts.get((item.start_offset, item.end_offset, "events"), 0),
                        counts.get((item.start_offset, item.end_offset, "dead"), 0),
                        already,
                    )
                )
            record_ranges(conn, tables, topic, {p: merge_ranges(s) for p, s in newly.items()}, now)
            record_batches(conn, tables, topic, run_id, result.audits, now)
            if before_commit is not None:
                before_commit(result)
        result.write_seconds += time.perf_counter() - write_started
    finally:
        if consumer is not None:
            consumer.close()
    result.total_seconds = time.perf_counter() - started
    log.info(
        f"{topic} {','.join(r.label() for r in result.ranges)}: {result.events_loaded} events, "
        f"{result.dead_letters} dead letters, {result.already_loaded} already loaded, "
        f"{result.messages} messages in {result.total_seconds:.2f}s"
    )
    return result


class _ChunkWriter:
    """Filters already-covered offsets and bulk-loads chunks, optionally on a background thread.

    On PostgreSQL, COPY releases the GIL while PostgreSQL parses rows, so loading chunk *n* on a
    thread overlaps with consuming chunk *n+1*. DuckDB connections are used from one thread only.
    """

    def __init__(
        self,
        conn: sa.Connection,
        tables: TopicTables,
        covered: dict[int, list[Range]],
        audit: dict[str, pa.Scalar],
        result: IngestResult,
        pipelined: bool,
    ) -> None:
        self.conn = conn
        self.tables = tables
        self.covered = covered
        self.audit = audit
        self.result = result
        self.per_partition: dict[int, dict[tuple[int, int, str], int]] = {}
        self.wait_seconds = 0.0
        self.error: BaseException | None = None
        self.error_raised = False
        self.queue: queue.Queue[ConsumedChunk | None] | None = None
        self.thread: threading.Thread | None = None
        if pipelined:
            self.queue = queue.Queue(maxsize=2)
            self.thread = threading.Thread(target=self._run, name="kafka-chunk-writer", daemon=True)
            self.thread.start()

    def submit(self, chunk: ConsumedChunk) -> None:
        self._raise_error()
        if self.queue is None:
            self._write(chunk)
            return
        waited = time.perf_counter()
        self.queue.put(chunk)
        self.wait_seconds += time.perf_counter() - waited

    def close(self) -> None:
        """Wait for the queued chunks; re-raise the writer's error (once). Idempotent."""
        if self.queue is not None and self.thread is not None:
            waited = time.perf_counter()
            self.queue.put(None)
            self.thread.join()
            self.thread = None
            self.wait_seconds += time.perf_counter() - waited
        self._raise_error()

    def _raise_error(self) -> None:
        """Re-raise the writer thread's error in the caller, once (close() runs in a finally)."""
        if self.error is not None and not self.error_raised:
            self.error_raised = True
            raise self.error

    def _run(self) -> None:
        assert self.queue is not None
        while True:
            chunk = self.queue.get()
            if chunk is None:
                return
            if self.error is not None:
                continue  # drain after a failure; the caller re-raises
            try:
                self._write(chunk)
            except BaseException as exc:  # re-raised in the consuming thread
                self.error = exc

    def _count(self, table: pa.Table, kind: str) -> None:
        if table.num_rows == 0:
            return
        parts = table.column("source_partition").to_numpy(zero_copy_only=False)
        offs = table.column("source_offset").to_numpy(zero_copy_only=False)
        for item in self.result.ranges:
            inside = (parts == item.partition) & (offs >= item.start_offset) & (offs < item.end_offset)
            n = int(inside.sum())
            if n:
                slot = self.per_partition.setdefault(item.partition, {})
                key = (item.start_offset, item.end_offset, kind)
                slot[key] = slot.get(key, 0) + n

    def _fresh(self, table: pa.Table) -> tuple[pa.Table, int]:
        mask = _covered_mask(table.column("source_partition"), table.column("source_offset"), self.covered)
        if not mask.any():
            return table, 0
        return table.filter(pa.array(~mask)), int(mask.sum())

    def _with_audit(self, table: pa.Table) -> pa.Table:
        for name, scalar in self.audit.items():
            table = table.append_column(name, pa.repeat(scalar, table.num_rows))
        return table

    def _write(self, chunk: ConsumedChunk) -> None:
        started = time.perf_counter()
        events, skipped_events = self._fresh(chunk.events)
        dead, skipped_dead = self._fresh(chunk.dead_letters)
        if events.num_rows:
            if self.conn.dialect.name == "postgresql":
                copy_binary_into_postgres(self.conn, *self.tables.raw, self._with_audit(events))
            else:
                write_arrow(self.conn, self._with_audit(events), *self.tables.raw, mode="append")
        if dead.num_rows:
            write_arrow(self.conn, self._with_audit(dead), *self.tables.dead_letter, mode="append")
        self._count(events, "events")
        self._count(dead, "dead")
        result = self.result
        result.messages += chunk.messages
        result.events_loaded += events.num_rows
        result.dead_letters += dead.num_rows
        result.skipped_covered += skipped_events + skipped_dead
        for reason in dead.column("reason").to_pylist():
            kind = reason.split(":", 1)[0]
            result.reasons[kind] = result.reasons.get(kind, 0) + 1
        result.write_seconds += time.perf_counter() - started
