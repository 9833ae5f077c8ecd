"""One MongoDB batch into the warehouse: read, validate, merge by document key, watermark, atomically.

The rows, the rejects and the watermark advance are written in ONE transaction. The merge keeps the
newest version per document key: a stale or replayed version never overwrites a newer row, so replays
are no-ops. The rejects table keeps the latest rejection per document, so a document seen twice is
still recorded once.
"""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
import sqlalchemy as sa
from pymongo.collection import Collection

from assets.sources.mongo_collection._keyset import BatchRange, Position, to_utc_naive
from assets.sources.mongo_collection._planning import plan_batch, source_key_for
from assets.sources.mongo_collection._reader import ReadState, iter_chunks, prefetched
from assets.sources.mongo_collection._tables import SourceTables, ensure_tables
from assets.sources.mongo_collection._watermark import Advance, advance_watermark, lock_watermark
from resources.bulk_write import bulk_insert, quote_ident
from resources.warehouse import WarehouseResource

_REJECT_ID_CHUNK = 5_000


class Validated(Protocol):
    """What a declared validator returns for a batch of documents.

    ``rows`` follow the declared row schema; ``rejects`` hold at least the key column, ``reason``,
    ``raw_content`` and the version column. Every document ends up in exactly one of them.
    """

    @property
    def rows(self) -> pa.Table: ...

    @property
    def rejects(self) -> pa.Table: ...


Validator = Callable[[Iterable[Any]], Validated]


@dataclass(frozen=True)
class IngestSpec:
    """What the ingest needs from a declaration."""

    tables: SourceTables
    validate: Validator
    change_field: str
    before_ingest: Callable[[WarehouseResource], None] | None = None


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


def _with_audit(table: pa.Table, source: str, batch_id: str, at: dt.datetime) -> pa.Table:
    n = table.num_rows
    return (
        table.append_column("source", pa.array([source] * n, pa.string()))
        .append_column("ingest_batch", pa.array([batch_id] * n, pa.string()))
        .append_column("ingested_at", pa.array([at] * n, pa.timestamp("us")))
    )


def _merge(conn: sa.Connection, tables: SourceTables, stage: str) -> tuple[int, int, int]:
    """Stage → raw table keeping the newest version per document key: (new, updated, stale)."""
    target = tables.raw.quoted(conn)
    key = quote_ident(conn, tables.key_column)
    version = quote_ident(conn, tables.version_column)
    counts = conn.execute(
        sa.text(
            "SELECT "
            f"COALESCE(SUM(CASE WHEN t.{key} IS NULL THEN 1 ELSE 0 END), 0), "
            f"COALESCE(SUM(CASE WHEN t.{version} < s.{version} THEN 1 ELSE 0 END), 0), "
            f"COALESCE(SUM(CASE WHEN t.{version} >= s.{version} THEN 1 ELSE 0 END), 0) "
            f"FROM {stage} AS s LEFT JOIN {target} AS t ON t.{key} = s.{key}"
        )
    ).one()
    new, updated, stale = (int(v) for v in counts)
    if stale:
        conn.exec_driver_sql(
            f"DELETE FROM {stage} WHERE EXISTS (SELECT 1 FROM {target} AS t "
            f"WHERE t.{key} = {stage}.{key} AND t.{version} >= {stage}.{version})"
        )
    if updated:
        conn.exec_driver_sql(
            f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {stage} AS s WHERE s.{key} = {target}.{key})"
        )
    cols = ", ".join(quote_ident(conn, c) for c in tables.row_columns)
    conn.exec_driver_sql(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {stage}")
    return new, updated, stale


def _forget_rejects(conn: sa.Connection, tables: SourceTables, source_key: str, keys: list[str]) -> None:
    """Drop earlier rejections of these documents: the table holds the latest one per document."""
    statement = sa.text(
        f"DELETE FROM {tables.rejects.quoted(conn)} "
        f"WHERE source = :source AND {quote_ident(conn, tables.key_column)} IN :ids"
    ).bindparams(sa.bindparam("ids", expanding=True))
    for start in range(0, len(keys), _REJECT_ID_CHUNK):
        conn.execute(statement, {"source": source_key, "ids": keys[start : start + _REJECT_ID_CHUNK]})


def _write_rejects(
    conn: sa.Connection,
    spec: IngestSpec,
    source_key: str,
    batch_id: str,
    at: dt.datetime,
    parts: list[pa.Table],
) -> int:
    tables = spec.tables
    columns = [tables.key_column, "reason", "raw_content", tables.version_column]
    table = pa.concat_tables(parts).select(columns)
    _forget_rejects(conn, tables, source_key, [k for k in table.column(tables.key_column).to_pylist() if k])
    bulk_insert(
        conn, tables.rejects.schema, tables.rejects.table, _with_audit(table, source_key, batch_id, at)
    )
    return table.num_rows


def ingest_batch(
    warehouse: WarehouseResource,
    collection: Collection[Any],
    batch: BatchRange | None,
    *,
    spec: IngestSpec,
    now: dt.datetime,
    lag_seconds: float,
    max_docs: int,
    peek_timeout_ms: int,
    run_id: str = "",
    log: Any = None,
) -> IngestOutcome:
    """Read one batch from MongoDB and merge it into the warehouse, watermark included, atomically.

    A batch planned before the watermark moved (another run committed meanwhile) is planned again.
    """
    started = time.perf_counter()
    tables = spec.tables
    source_key = source_key_for(collection)
    ensure_tables(warehouse, tables)
    if spec.before_ingest is not None:
        spec.before_ingest(warehouse)
    ingested_at = to_utc_naive(now)
    batch_id = f"mongo_{ingested_at:%Y%m%d_%H%M%S}_{uuid.uuid4().hex[:8]}"
    with warehouse.begin() as conn:
        watermark = lock_watermark(
            conn, tables.watermarks, source_key, collection.database.name, collection.name
        )
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
                change_field=spec.change_field,
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
        stage_name = f"_{tables.raw.table}_stage_{uuid.uuid4().hex[:12]}"
        stage = quote_ident(conn, tables.raw.schema, stage_name)
        unlogged = "UNLOGGED " if conn.dialect.name == "postgresql" else ""
        conn.exec_driver_sql(
            f"CREATE {unlogged}TABLE {stage} AS SELECT * FROM {tables.raw.quoted(conn)} WHERE 1 = 0"
        )
        state = ReadState(spec.change_field)
        rejects: list[pa.Table] = []
        process_started = time.perf_counter()
        waited = 0.0
        chunks = prefetched(iter_chunks(collection, batch, state))
        while True:
            wait_started = time.perf_counter()
            chunk = next(chunks, None)
            waited += time.perf_counter() - wait_started
            if chunk is None:
                break
            validated = spec.validate(chunk)
            rows = _with_audit(validated.rows, source_key, batch_id, ingested_at)
            bulk_insert(conn, tables.raw.schema, stage_name, rows)
            if validated.rejects.num_rows:
                rejects.append(validated.rejects)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"ANALYZE {stage}")
        new, updated, stale = _merge(conn, tables, stage)
        conn.exec_driver_sql(f"DROP TABLE {stage}")
        rejected = _write_rejects(conn, spec, source_key, batch_id, ingested_at, rejects) if rejects else 0
        process_seconds = time.perf_counter() - process_started - waited
        position: Position | None = batch.upper
        if state.truncated(batch):  # read in order and cut at max_docs: resume after the last one read
            position = state.last_position
        advance = Advance(
            position, batch.sweep_until, new, updated, stale, rejected, batch_id, run_id, ingested_at
        )
        advance_watermark(conn, tables.watermarks, source_key, advance)
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
