"""Reading one batch's documents from MongoDB in bounded chunks, prefetched in a thread.

The server (and the socket) work while Python validates and writes the previous chunk, so a batch
costs about the slower of the two instead of their sum.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from pymongo.collection import Collection

from assets.sources.mongo_collection._keyset import BatchRange, Position, encode_id, floor_ms, keyset_sort

CHUNK_DOCS = 50_000
CURSOR_BATCH = 5_000


@dataclass
class ReadState:
    """What the read of one batch saw so far."""

    change_field: str
    docs_read: int = 0
    ordered_docs: int = 0  # documents of the in-order keyset read (non-exact batches)
    last_position: Position | None = None
    fetch_seconds: float = 0.0  # time spent waiting for MongoDB (the rest is ours)

    def truncated(self, batch: BatchRange) -> bool:
        return not batch.exact and self.ordered_docs >= batch.max_docs

    def emit(self, chunk: list[dict[str, Any]], in_order: bool) -> list[dict[str, Any]]:
        self.docs_read += len(chunk)
        if in_order:
            self.ordered_docs += len(chunk)
            last = chunk[-1]
            self.last_position = Position(floor_ms(last[self.change_field]), encode_id(last["_id"]))
        return chunk


def iter_chunks(
    collection: Collection[Any], batch: BatchRange, state: ReadState
) -> Iterator[list[dict[str, Any]]]:
    """Documents of the batch in chunks of at most ``CHUNK_DOCS``.

    Exact batches: one unsorted, streamed query (keyset range OR sweep window). Otherwise the sweep
    window, then ``max_docs`` changes in keyset order, remembering the last position read.
    """
    if batch.exact:
        reads = [(collection.find(batch.combined_filter(), batch_size=CURSOR_BATCH), False)]
    else:
        ordered = collection.find(batch.key_filter(), batch_size=CURSOR_BATCH).sort(
            keyset_sort(batch.change_field)
        )
        reads = [
            (collection.find(batch.sweep_filter(), batch_size=CURSOR_BATCH), False),
            (ordered.limit(batch.max_docs), True),
        ]
    for cursor, in_order in reads:
        chunk: list[dict[str, Any]] = []
        with cursor:
            fetch_started = time.perf_counter()
            for doc in cursor:
                chunk.append(doc)
                if len(chunk) >= CHUNK_DOCS:
                    state.fetch_seconds += time.perf_counter() - fetch_started
                    yield state.emit(chunk, in_order)
                    chunk = []
                    fetch_started = time.perf_counter()
            state.fetch_seconds += time.perf_counter() - fetch_started
        if chunk:
            yield state.emit(chunk, in_order)


def prefetched(chunks: Iterator[list[dict[str, Any]]], depth: int = 2) -> Iterator[list[dict[str, Any]]]:
    """Read the next chunks from MongoDB in a thread while the caller validates and writes.

    ``depth`` bounds the chunks held in memory.
    """
    handoff: queue.Queue[Any] = queue.Queue(maxsize=depth)
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for chunk in chunks:
                while not stop.is_set():
                    try:
                        handoff.put(chunk, timeout=0.5)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            handoff.put(done)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the consumer
            handoff.put(exc)

    thread = threading.Thread(target=produce, name="mongo-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = handoff.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join(timeout=30)
