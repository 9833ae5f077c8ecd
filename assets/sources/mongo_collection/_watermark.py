"""The durable watermark of a MongoDB source: one row per collection in the declared watermark table.

The ingest reads it row-locked inside its transaction and advances it in that SAME transaction as the
rows and the rejects, so a crash can never skip or double-count a batch; the sensor reads it without
a lock, only to plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from bson import ObjectId

from assets.sources.mongo_collection._keyset import Position, Watermark
from assets.sources.mongo_collection._tables import TableName
from resources.warehouse import WarehouseResource

_INIT_COLUMNS = (
    "source_key, database_name, collection_name, docs_loaded, docs_updated, docs_stale, docs_rejected"
)


def _row_to_watermark(source_key: str, row: Any) -> Watermark:
    if row is None:
        return Watermark(source_key)
    wm_updated_at, wm_id, sweep_id = row
    position = Position(wm_updated_at, wm_id) if wm_updated_at is not None else None
    return Watermark(source_key, position, ObjectId(sweep_id) if sweep_id else None)


def read_watermark(warehouse: WarehouseResource, table: TableName, source_key: str) -> Watermark:
    """The durable watermark (a fresh one when the table or the row does not exist yet)."""
    with warehouse.connect() as conn:
        exists = conn.execute(
            sa.text(
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = :s AND table_name = :t"
            ),
            {"s": table.schema, "t": table.table},
        ).scalar()
        if not exists:
            return Watermark(source_key)
        row = conn.execute(
            sa.text(f"SELECT wm_updated_at, wm_id, sweep_id FROM {table.quoted(conn)} WHERE source_key = :k"),
            {"k": source_key},
        ).first()
    return _row_to_watermark(source_key, row)


def lock_watermark(
    conn: sa.Connection, table: TableName, source_key: str, database: str, collection: str
) -> Watermark:
    """Read the watermark inside the ingest transaction, row-locked on PostgreSQL.

    Two runs of the same source then serialize: the second sees the first one's committed watermark.
    DuckDB allows one writer per file, which serializes runs already.
    """
    quoted = table.quoted(conn)
    params = {"k": source_key, "d": database, "c": collection}
    select = f"SELECT wm_updated_at, wm_id, sweep_id FROM {quoted} WHERE source_key = :k"
    insert = f"INSERT INTO {quoted} ({_INIT_COLUMNS}) VALUES (:k, :d, :c, 0, 0, 0, 0)"
    if conn.dialect.name == "postgresql":
        conn.execute(sa.text(f"{insert} ON CONFLICT (source_key) DO NOTHING"), params)
        row = conn.execute(sa.text(f"{select} FOR UPDATE"), params).first()
        return _row_to_watermark(source_key, row)
    row = conn.execute(sa.text(select), params).first()
    if row is None:
        conn.execute(sa.text(insert), params)
    return _row_to_watermark(source_key, row)


@dataclass(frozen=True)
class Advance:
    """What one batch adds to the watermark row."""

    position: Position | None
    sweep_id: ObjectId
    new: int
    updated: int
    stale: int
    rejected: int
    batch_id: str
    run_id: str
    at: Any


def advance_watermark(conn: sa.Connection, table: TableName, source_key: str, advance: Advance) -> None:
    """Move the watermark and add the batch's counts (inside the ingest transaction)."""
    conn.execute(
        sa.text(
            f"UPDATE {table.quoted(conn)} SET wm_updated_at = :ts, wm_id = :id, sweep_id = :sweep, "
            "docs_loaded = docs_loaded + :new, docs_updated = docs_updated + :updated, "
            "docs_stale = docs_stale + :stale, docs_rejected = docs_rejected + :rejected, "
            "last_batch = :batch, last_run_id = :run, advanced_at = :at WHERE source_key = :k"
        ),
        {
            "ts": advance.position.updated_at if advance.position else None,
            "id": advance.position.doc_id if advance.position else None,
            "sweep": str(advance.sweep_id),
            "new": advance.new,
            "updated": advance.updated,
            "stale": advance.stale,
            "rejected": advance.rejected,
            "batch": advance.batch_id,
            "run": advance.run_id,
            "at": advance.at,
            "k": source_key,
        },
    )
