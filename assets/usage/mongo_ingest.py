"""MongoDB → ``raw.usage_events``: durable watermark, bounded batches, merge by document id.

Change tracking follows a keyset over ``(updated_at, _id)``: writers set ``updated_at`` on every insert
and update, so each *version* of a document passes the watermark exactly once. The watermark lives in
``raw.mongo_watermarks`` and is advanced in the SAME transaction as the rows and the rejects, so a
crash can never skip or double-count a batch. Two guards complete it:

- a safety lag: only changes older than ``lag`` seconds are read, so a writer that commits slightly
  late with an older ``updated_at`` is not skipped;
- an ObjectId *sweep*: documents created in the batch window (by ``_id`` time) whose ``updated_at`` is
  missing, not a date, or older than the watermark are read too; they would never enter the keyset
  range, and must reach the rejects table (or load, when only backdated). The rejects table keeps the
  latest rejection per document, so a document seen twice is still recorded once.

A batch is a range ``(lower, upper]`` planned by the sensor with a cheap peek (the ``max_docs``-th
change after the watermark bounds the range), passed as run config, and re-planned by the run when the
watermark moved meanwhile. The merge keeps the newest version per ``event_id``: a stale or replayed
version never overwrites a newer row, so replays are no-ops.

On MongoDB every query here is an index range scan. FerretDB 1.24 (the local service) pushes only
top-level equality filters down to PostgreSQL: the range filters, the ``$or`` sweep, the keyset sort and
a limit combined with a filter run in Go after it read and decoded the whole collection
(``SELECT _jsonb FROM <table>``). There a batch costs a full read of the collection whatever its size,
the peek's ``sort + skip + limit`` sorts the whole range in memory (the peek time limit bounds it), and
parallel cursors over ``_id`` ranges would each read everything.
"""

from __future__ import annotations

import datetime as dt
import queue
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pyarrow as pa
import sqlalchemy as sa
from bson import ObjectId, json_util
from bson.json_util import CANONICAL_JSON_OPTIONS
from pymongo.collection import Collection
from pymongo.errors import ExecutionTimeout

from assets.usage.documents import USAGE_ROW_SCHEMA, ValidatedBatch, to_utc_naive, validate_documents
from assets.usage.tables import (
    EVENTS_REJECTS_TABLE,
    EVENTS_TABLE,
    RAW_SCHEMA,
    WATERMARKS_TABLE,
    prepare_usage_tables,
)
from resources.bulk_write import bulk_insert, quote_ident
from resources.warehouse import WarehouseResource

KEYSET_SORT = [("updated_at", 1), ("_id", 1)]
CHANGE_INDEX_NAME = "updated_at_1__id_1"
_CHUNK_DOCS = 50_000
_CURSOR_BATCH = 5_000


def floor_ms(value: dt.datetime) -> dt.datetime:
    """BSON dates have millisecond precision: positions are kept at that precision (naive UTC)."""
    value = to_utc_naive(value)
    return value.replace(microsecond=value.microsecond - value.microsecond % 1000)


def encode_id(value: Any) -> str:
    """A document id as canonical extended JSON: its BSON type survives the round trip."""
    return json_util.dumps({"v": value}, json_options=CANONICAL_JSON_OPTIONS)


def decode_id(text: str) -> Any:
    return json_util.loads(text)["v"]


@dataclass(frozen=True, order=True)
class Position:
    """A point in ``(updated_at, _id)`` order; ``doc_id`` None means after every document at that time."""

    updated_at: dt.datetime
    doc_id: str | None = None

    def after_filter(self) -> dict[str, Any]:
        """Documents strictly after this position."""
        if self.doc_id is None:
            return {"updated_at": {"$gt": self.updated_at}}
        return {
            "$or": [
                {"updated_at": {"$gt": self.updated_at}},
                {"updated_at": self.updated_at, "_id": {"$gt": decode_id(self.doc_id)}},
            ]
        }

    def upto_filter(self) -> dict[str, Any]:
        """Documents at or before this position (dates only: BSON comparisons are type-bracketed)."""
        if self.doc_id is None:
            return {"updated_at": {"$lte": self.updated_at}}
        return {
            "$or": [
                {"updated_at": {"$lt": self.updated_at}},
                {"updated_at": self.updated_at, "_id": {"$lte": decode_id(self.doc_id)}},
            ]
        }

    def token(self) -> str:
        return f"{self.updated_at.isoformat(timespec='milliseconds')}/{self.doc_id or '*'}"


@dataclass(frozen=True)
class Watermark:
    """What has been consumed from one collection, as stored in ``raw.mongo_watermarks``."""

    source_key: str
    position: Position | None = None  # None: nothing consumed yet
    sweep_id: ObjectId | None = None  # inclusive lower bound of the next ObjectId sweep


@dataclass(frozen=True)
class BatchRange:
    """One bounded batch: keyset range ``(lower, upper]`` plus ObjectId window ``[sweep_from, sweep_until)``.

    ``exact`` batches were sized by a peek and are read unsorted (streamed); otherwise the run reads
    ``max_docs`` changes in keyset order and stops there.
    """

    lower: Position | None
    upper: Position
    sweep_from: ObjectId | None
    sweep_until: ObjectId
    max_docs: int
    exact: bool = True

    def key_filter(self) -> dict[str, Any]:
        parts = [self.upper.upto_filter()]
        if self.lower is not None:
            parts.insert(0, self.lower.after_filter())
        return {"$and": parts}

    def sweep_filter(self) -> dict[str, Any]:
        id_range: dict[str, Any] = {"$lt": self.sweep_until}
        if self.sweep_from is not None:
            id_range["$gte"] = self.sweep_from
        unseen: list[dict[str, Any]] = [{"updated_at": {"$not": {"$type": "date"}}}]
        if self.lower is not None:
            # Backdated: older than the second the window starts in (the keyset consumed the rest).
            unseen.append({"updated_at": {"$lt": self.lower.updated_at.replace(microsecond=0)}})
        return {"_id": id_range, "$or": unseen}

    def combined_filter(self) -> dict[str, Any]:
        return {"$or": [self.key_filter(), self.sweep_filter()]}

    def to_config(self) -> dict[str, Any]:
        """Run-config values (plain strings) of :class:`assets.usage.raw_usage_events.MongoBatchConfig`."""
        return {
            "lower_updated_at": self.lower.updated_at.isoformat() if self.lower else None,
            "lower_id": self.lower.doc_id if self.lower else None,
            "upper_updated_at": self.upper.updated_at.isoformat(),
            "upper_id": self.upper.doc_id,
            "sweep_from": str(self.sweep_from) if self.sweep_from else None,
            "sweep_until": str(self.sweep_until),
            "max_docs": self.max_docs,
            "exact": self.exact,
        }

    @classmethod
    def from_config(cls, values: Mapping[str, Any]) -> BatchRange | None:
        """The range a run was asked for, or None when the run config names none (manual runs)."""
        if not values.get("upper_updated_at") or not values.get("sweep_until"):
            return None
        lower = None
        if values.get("lower_updated_at"):
            lower = Position(dt.datetime.fromisoformat(values["lower_updated_at"]), values.get("lower_id"))
        return cls(
            lower=lower,
            upper=Position(dt.datetime.fromisoformat(values["upper_updated_at"]), values.get("upper_id")),
            sweep_from=ObjectId(values["sweep_from"]) if values.get("sweep_from") else None,
            sweep_until=ObjectId(values["sweep_until"]),
            max_docs=int(values["max_docs"]),
            exact=bool(values.get("exact", True)),
        )

    def token(self) -> str:
        lower = self.lower.token() if self.lower else "start"
        return f"{lower}..{self.upper.token()}"


def source_key_for(collection: Collection) -> str:
    """Watermark key of a collection: one watermark per ``database.collection``."""
    return f"mongodb:{collection.database.name}.{collection.name}"


# ------------------------------------------------------------------------------------------------
# Watermark storage


_WM_INIT_COLUMNS = (
    "source_key, database_name, collection_name, docs_loaded, docs_updated, docs_stale, docs_rejected"
)


def _wm_table(conn: sa.Connection) -> str:
    return quote_ident(conn, RAW_SCHEMA, WATERMARKS_TABLE)


def _row_to_watermark(source_key: str, row: Any) -> Watermark:
    if row is None:
        return Watermark(source_key)
    wm_updated_at, wm_id, sweep_id = row
    position = Position(wm_updated_at, wm_id) if wm_updated_at is not None else None
    return Watermark(source_key, position, ObjectId(sweep_id) if sweep_id else None)


def read_watermark(warehouse: WarehouseResource, source_key: str) -> Watermark:
    """The durable watermark (a fresh one when the table or the row does not exist yet)."""
    with warehouse.connect() as conn:
        exists = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = :s AND table_name = :t"
            ),
            {"s": RAW_SCHEMA, "t": WATERMARKS_TABLE},
        ).scalar()
        if not exists:
            return Watermark(source_key)
        row = conn.execute(
            sa.text(f"SELECT wm_updated_at, wm_id, sweep_id FROM {_wm_table(conn)} WHERE source_key = :k"),
            {"k": source_key},
        ).first()
    return _row_to_watermark(source_key, row)


def lock_watermark(conn: sa.Connection, source_key: str, database: str, collection: str) -> Watermark:
    """Read the watermark inside the ingest transaction, row-locked on PostgreSQL.

    Two runs of the same source then serialize: the second sees the first one's committed watermark.
    DuckDB allows one writer per file, which serializes runs already.
    """
    table = _wm_table(conn)
    params = {"k": source_key, "d": database, "c": collection}
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text(
                f"INSERT INTO {table} ({_WM_INIT_COLUMNS}) VALUES (:k, :d, :c, 0, 0, 0, 0) "
                "ON CONFLICT (source_key) DO NOTHING"
            ),
            params,
        )
        row = conn.execute(
            sa.text(f"SELECT wm_updated_at, wm_id, sweep_id FROM {table} WHERE source_key = :k FOR UPDATE"),
            params,
        ).first()
        return _row_to_watermark(source_key, row)
    row = conn.execute(
        sa.text(f"SELECT wm_updated_at, wm_id, sweep_id FROM {table} WHERE source_key = :k"), params
    ).first()
    if row is None:
        conn.execute(
            sa.text(f"INSERT INTO {table} ({_WM_INIT_COLUMNS}) VALUES (:k, :d, :c, 0, 0, 0, 0)"),
            params,
        )
    return _row_to_watermark(source_key, row)


# ------------------------------------------------------------------------------------------------
# Planning (sensor tick and manual runs): peeks only


def plan_batch(
    collection: Collection,
    watermark: Watermark,
    *,
    now: dt.datetime,
    lag_seconds: float,
    max_docs: int,
    peek_timeout_ms: int,
) -> BatchRange | None:
    """The next bounded batch after ``watermark``, or None when nothing changed.

    Costs two small queries on an indexed collection: an existence probe and the keyset edge (the
    ``max_docs``-th change, read from the ``(updated_at, _id)`` index). If the edge query exceeds
    ``peek_timeout_ms`` the batch is planned open-ended and the run reads ``max_docs`` in order instead.
    """
    if max_docs < 1:
        raise ValueError("max_docs must be >= 1")
    horizon = floor_ms(now - dt.timedelta(seconds=lag_seconds))
    lower = watermark.position
    if lower is not None and lower.updated_at >= horizon:
        horizon = lower.updated_at
    open_range = BatchRange(
        lower=lower,
        upper=Position(horizon),
        sweep_from=watermark.sweep_id,
        sweep_until=max(
            ObjectId.from_datetime(horizon.replace(tzinfo=dt.UTC)), watermark.sweep_id or ObjectId("0" * 24)
        ),
        max_docs=max_docs,
    )
    try:
        probe = collection.find(open_range.combined_filter(), {"_id": 1}, max_time_ms=peek_timeout_ms).limit(
            1
        )
        if next(iter(probe), None) is None:
            return None
        edge_cursor = (
            collection.find(open_range.key_filter(), {"updated_at": 1}, max_time_ms=peek_timeout_ms)
            .sort(KEYSET_SORT)
            .skip(max_docs - 1)
            .limit(1)
        )
        edge = next(iter(edge_cursor), None)
    except ExecutionTimeout:
        return replace(open_range, exact=False)
    if edge is None:
        return open_range
    upper = Position(floor_ms(edge["updated_at"]), encode_id(edge["_id"]))
    sweep_until = ObjectId.from_datetime(upper.updated_at.replace(tzinfo=dt.UTC))
    return replace(
        open_range, upper=upper, sweep_until=max(sweep_until, open_range.sweep_from or sweep_until)
    )


# ------------------------------------------------------------------------------------------------
# Reading


@dataclass
class _ReadState:
    docs_read: int = 0
    ordered_docs: int = 0  # documents of the in-order keyset read (non-exact batches)
    last_position: Position | None = None
    fetch_seconds: float = 0.0  # time spent waiting for MongoDB (the rest is ours)

    def truncated(self, batch: BatchRange) -> bool:
        return not batch.exact and self.ordered_docs >= batch.max_docs


def _iter_chunks(
    collection: Collection, batch: BatchRange, state: _ReadState
) -> Iterator[list[dict[str, Any]]]:
    """Documents of the batch in chunks of at most ``_CHUNK_DOCS``.

    Exact batches: one unsorted, streamed query (keyset range OR sweep window). Otherwise the sweep
    window, then ``max_docs`` changes in keyset order, remembering the last position read.
    """
    if batch.exact:
        reads = [(collection.find(batch.combined_filter(), batch_size=_CURSOR_BATCH), False)]
    else:
        ordered = collection.find(batch.key_filter(), batch_size=_CURSOR_BATCH).sort(KEYSET_SORT)
        reads = [
            (collection.find(batch.sweep_filter(), batch_size=_CURSOR_BATCH), False),
            (ordered.limit(batch.max_docs), True),
        ]
    for cursor, in_order in reads:
        chunk: list[dict[str, Any]] = []
        with cursor:
            fetch_started = time.perf_counter()
            for doc in cursor:
                chunk.append(doc)
                if len(chunk) >= _CHUNK_DOCS:
                    state.fetch_seconds += time.perf_counter() - fetch_started
                    yield from _emit(chunk, in_order, state)
                    chunk = []
                    fetch_started = time.perf_counter()
            state.fetch_seconds += time.perf_counter() - fetch_started
        if chunk:
            yield from _emit(chunk, in_order, state)


def _prefetched(chunks: Iterator[list[dict[str, Any]]], depth: int = 2) -> Iterator[list[dict[str, Any]]]:
    """Read the next chunks from MongoDB in a thread while the caller validates and writes.

    The server (and the socket) work while Python validates, so a batch costs about the slower of
    the two instead of their sum. ``depth`` bounds the chunks held in memory.
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


def _emit(chunk: list[dict[str, Any]], in_order: bool, state: _ReadState) -> Iterator[list[dict[str, Any]]]:
    state.docs_read += len(chunk)
    if in_order:
        state.ordered_docs += len(chunk)
        last = chunk[-1]
        state.last_position = Position(floor_ms(last["updated_at"]), encode_id(last["_id"]))
    yield chunk


# ------------------------------------------------------------------------------------------------
# Writing (one transaction)


@dataclass
class IngestOutcome:
    """What one batch did; becomes the run's materialization metadata."""

    source_key: str
    batch_id: str
    range_token: str
    docs_read: int = 0
    rows_new: int = 0
    rows_updated: int = 0
    rows_stale: int = 0
    rejected: int = 0
    watermark: str = ""
    elapsed_s: float = 0.0
    fetch_s: float = 0.0
    process_s: float = 0.0
    exact: bool = True
    skipped: bool = False
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_written(self) -> int:
        return self.rows_new + self.rows_updated

    def metadata(self) -> dict[str, Any]:
        return {
            "source": self.source_key,
            "batch": self.batch_id,
            "range": self.range_token,
            "docs_read": self.docs_read,
            "rows_new": self.rows_new,
            "rows_updated": self.rows_updated,
            "rows_stale_skipped": self.rows_stale,
            "rejected": self.rejected,
            "watermark": self.watermark,
            "exact_range": self.exact,
            "elapsed_s": round(self.elapsed_s, 3),
            "mongo_fetch_s": round(self.fetch_s, 3),
            "processing_s": round(self.process_s, 3),
        }


_ROW_COLUMNS = (*USAGE_ROW_SCHEMA.names, "source", "ingest_batch", "ingested_at")


def _with_audit(table: pa.Table, source: str, batch_id: str, at: dt.datetime) -> pa.Table:
    n = table.num_rows
    return (
        table.append_column("source", pa.array([source] * n, pa.string()))
        .append_column("ingest_batch", pa.array([batch_id] * n, pa.string()))
        .append_column("ingested_at", pa.array([at] * n, pa.timestamp("us")))
    )


def _merge(conn: sa.Connection, stage: str) -> tuple[int, int, int]:
    """Stage → raw.usage_events keeping the newest version per event_id: (new, updated, stale)."""
    target = quote_ident(conn, RAW_SCHEMA, EVENTS_TABLE)
    counts = conn.execute(
        sa.text(
            "SELECT "
            "COALESCE(SUM(CASE WHEN t.event_id IS NULL THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN t.source_updated_at < s.source_updated_at THEN 1 ELSE 0 END), 0), "
            "COALESCE(SUM(CASE WHEN t.source_updated_at >= s.source_updated_at THEN 1 ELSE 0 END), 0) "
            f"FROM {stage} AS s LEFT JOIN {target} AS t ON t.event_id = s.event_id"
        )
    ).one()
    new, updated, stale = (int(v) for v in counts)
    if stale:
        conn.exec_driver_sql(
            f"DELETE FROM {stage} WHERE EXISTS (SELECT 1 FROM {target} AS t "
            f"WHERE t.event_id = {stage}.event_id AND t.source_updated_at >= {stage}.source_updated_at)"
        )
    if updated:
        conn.exec_driver_sql(
            f"DELETE FROM {target} WHERE EXISTS "
            f"(SELECT 1 FROM {stage} AS s WHERE s.event_id = {target}.event_id)"
        )
    cols = ", ".join(quote_ident(conn, c) for c in _ROW_COLUMNS)
    conn.exec_driver_sql(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage}")
    return new, updated, stale


def _forget_rejects(conn: sa.Connection, source_key: str, event_ids: list[str]) -> None:
    """Drop earlier rejections of these documents: the table holds the latest one per document."""
    table = quote_ident(conn, RAW_SCHEMA, EVENTS_REJECTS_TABLE)
    statement = sa.text(f"DELETE FROM {table} WHERE source = :source AND event_id IN :ids").bindparams(
        sa.bindparam("ids", expanding=True)
    )
    for start in range(0, len(event_ids), 5_000):
        conn.execute(statement, {"source": source_key, "ids": event_ids[start : start + 5_000]})


def ingest_batch(
    warehouse: WarehouseResource,
    collection: Collection,
    batch: BatchRange | None,
    *,
    now: dt.datetime,
    lag_seconds: float,
    max_docs: int,
    peek_timeout_ms: int,
    run_id: str = "",
    log: Any = None,
) -> IngestOutcome:
    """Read one batch from MongoDB and merge it into the warehouse, watermark included, atomically."""
    started = time.perf_counter()
    source_key = source_key_for(collection)
    prepare_usage_tables(warehouse)
    ingested_at = to_utc_naive(now)
    batch_id = f"mongo_{ingested_at:%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:8]}"
    with warehouse.begin() as conn:
        watermark = lock_watermark(conn, source_key, collection.database.name, collection.name)
        if batch is None or batch.lower != watermark.position or batch.sweep_from != watermark.sweep_id:
            if batch is not None and log is not None:
                log.info(f"watermark moved since the batch was planned ({batch.token()}); planning again")
            batch = plan_batch(
                collection,
                watermark,
                now=now,
                lag_seconds=lag_seconds,
                max_docs=max_docs,
                peek_timeout_ms=peek_timeout_ms,
            )
        if batch is None:
            return IngestOutcome(
                source_key,
                batch_id,
                "nothing new",
                watermark=watermark.position.token() if watermark.position else "start",
                elapsed_s=time.perf_counter() - started,
                skipped=True,
            )
        stage_name = f"_usage_stage_{uuid.uuid4().hex[:12]}"
        stage = quote_ident(conn, RAW_SCHEMA, stage_name)
        unlogged = "UNLOGGED " if conn.dialect.name == "postgresql" else ""
        conn.exec_driver_sql(
            f"CREATE {unlogged}TABLE {stage} AS SELECT * FROM {quote_ident(conn, RAW_SCHEMA, EVENTS_TABLE)} "
            "WHERE 1 = 0"
        )
        state = _ReadState()
        rejects: list[pa.Table] = []
        process_started = time.perf_counter()
        waited = 0.0
        chunks = _prefetched(_iter_chunks(collection, batch, state))
        while True:
            wait_started = time.perf_counter()
            chunk = next(chunks, None)
            waited += time.perf_counter() - wait_started
            if chunk is None:
                break
            validated: ValidatedBatch = validate_documents(chunk)
            bulk_insert(
                conn, RAW_SCHEMA, stage_name, _with_audit(validated.rows, source_key, batch_id, ingested_at)
            )
            if validated.rejects.num_rows:
                rejects.append(validated.rejects)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ANALYZE {stage}")
        new, updated, stale = _merge(conn, stage)
        conn.exec_driver_sql(f"DROP TABLE {stage}")
        rejected = 0
        if rejects:
            table = pa.concat_tables(rejects).drop_columns(["position"])
            rejected = table.num_rows
            _forget_rejects(conn, source_key, [e for e in table.column("event_id").to_pylist() if e])
            bulk_insert(
                conn, RAW_SCHEMA, EVENTS_REJECTS_TABLE, _with_audit(table, source_key, batch_id, ingested_at)
            )
        process_seconds = time.perf_counter() - process_started - waited
        position: Position | None = batch.upper
        if state.truncated(batch):  # read in order and cut at max_docs: resume after the last one read
            position = state.last_position
        conn.execute(
            sa.text(
                f"UPDATE {_wm_table(conn)} SET wm_updated_at = :ts, wm_id = :id, sweep_id = :sweep, "
                "docs_loaded = docs_loaded + :new, docs_updated = docs_updated + :updated, "
                "docs_stale = docs_stale + :stale, docs_rejected = docs_rejected + :rejected, "
                "last_batch = :batch, last_run_id = :run, advanced_at = :at WHERE source_key = :k"
            ),
            {
                "ts": position.updated_at if position else None,
                "id": position.doc_id if position else None,
                "sweep": str(batch.sweep_until),
                "new": new,
                "updated": updated,
                "stale": stale,
                "rejected": rejected,
                "batch": batch_id,
                "run": run_id,
                "at": ingested_at,
                "k": source_key,
            },
        )
    return IngestOutcome(
        source_key,
        batch_id,
        batch.token(),
        docs_read=state.docs_read,
        rows_new=new,
        rows_updated=updated,
        rows_stale=stale,
        rejected=rejected,
        watermark=position.token() if position else "start",
        elapsed_s=time.perf_counter() - started,
        fetch_s=state.fetch_seconds,
        process_s=process_seconds,
        exact=batch.exact,
    )


def ensure_change_index(collection: Collection) -> None:
    """The ``(updated_at, _id)`` index that makes the peek and the range reads index scans."""
    collection.create_index(KEYSET_SORT, name=CHANGE_INDEX_NAME)
