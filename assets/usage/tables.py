"""Explicit DDL of the usage domain's raw tables, created by whichever raw asset runs first.

``stg.usage_events`` reads both raw sources (MongoDB and landed files), so both raw tables must exist
even when only one source is used (``make demo`` has no MongoDB): every raw asset creates all of them.
Types are declared, not inferred from the first batch, so both writers agree on them.
"""

from __future__ import annotations

import sqlalchemy as sa

from resources.bulk_write import quote_ident
from resources.warehouse import WarehouseResource

RAW_SCHEMA = "raw"
EVENTS_TABLE = "usage_events"
EVENTS_REJECTS_TABLE = "usage_events_rejects"
FILE_EVENTS_TABLE = "usage_event_files"
FILE_REJECTS_TABLE = "usage_event_files_rejects"
WATERMARKS_TABLE = "mongo_watermarks"

PAYLOAD_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "TEXT"),
    ("user_id", "TEXT"),
    ("user_name", "TEXT"),
    ("team", "TEXT"),
    ("ide", "TEXT"),
    ("model", "TEXT"),
    ("feature", "TEXT"),
    ("language", "TEXT"),
    ("prompt", "TEXT"),
    ("response", "TEXT"),
    ("input_tokens", "BIGINT"),
    ("output_tokens", "BIGINT"),
    ("latency_ms", "BIGINT"),
    ("created_at", "TIMESTAMP"),
    ("source_updated_at", "TIMESTAMP"),
)
LANDING_AUDIT: tuple[tuple[str, str], ...] = (
    ("ingest_at", "TIMESTAMP"),
    ("ingest_batch", "TEXT"),
    ("ingest_source", "TEXT"),
    ("ingest_file_key", "TEXT"),
)

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    EVENTS_TABLE: PAYLOAD_COLUMNS
    + (("source", "TEXT"), ("ingest_batch", "TEXT"), ("ingested_at", "TIMESTAMP")),
    EVENTS_REJECTS_TABLE: (
        ("event_id", "TEXT"),
        ("reason", "TEXT"),
        ("raw_content", "TEXT"),
        ("source_updated_at", "TIMESTAMP"),
        ("source", "TEXT"),
        ("ingest_batch", "TEXT"),
        ("ingested_at", "TIMESTAMP"),
    ),
    FILE_EVENTS_TABLE: PAYLOAD_COLUMNS + LANDING_AUDIT,
    FILE_REJECTS_TABLE: (("source_line", "BIGINT"), ("reason", "TEXT"), ("raw_content", "TEXT"))
    + LANDING_AUDIT,
    WATERMARKS_TABLE: (
        ("source_key", "TEXT NOT NULL"),
        ("database_name", "TEXT"),
        ("collection_name", "TEXT"),
        ("wm_updated_at", "TIMESTAMP"),
        ("wm_id", "TEXT"),
        ("sweep_id", "TEXT"),
        ("docs_loaded", "BIGINT"),
        ("docs_updated", "BIGINT"),
        ("docs_stale", "BIGINT"),
        ("docs_rejected", "BIGINT"),
        ("last_batch", "TEXT"),
        ("last_run_id", "TEXT"),
        ("advanced_at", "TIMESTAMP"),
    ),
}

# PostgreSQL-only indexes (DuckDB scans fast enough, and its ART indexes dislike delete + re-insert of a
# key in one transaction, which is exactly what a merge does).
_PG_INDEXES: tuple[tuple[str, str, str], ...] = (
    (EVENTS_TABLE, "usage_events__uix__event_id", "UNIQUE INDEX IF NOT EXISTS {name} ON {table} (event_id)"),
    (
        EVENTS_REJECTS_TABLE,
        "usage_events_rejects__ix__event_id",
        "INDEX IF NOT EXISTS {name} ON {table} (event_id)",
    ),
    (
        FILE_EVENTS_TABLE,
        "usage_event_files__ix__file_key",
        "INDEX IF NOT EXISTS {name} ON {table} (ingest_file_key)",
    ),
    (
        WATERMARKS_TABLE,
        "mongo_watermarks__uix__source_key",
        "UNIQUE INDEX IF NOT EXISTS {name} ON {table} (source_key)",
    ),
)


def ensure_usage_tables(conn: sa.Connection) -> None:
    """Create the raw schema, tables and (PostgreSQL) indexes when missing; a no-op afterwards."""
    conn.execute(sa.schema.CreateSchema(RAW_SCHEMA, if_not_exists=True))
    for table, columns in TABLES.items():
        cols = ", ".join(f"{quote_ident(conn, name)} {sql_type}" for name, sql_type in columns)
        conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {quote_ident(conn, RAW_SCHEMA, table)} ({cols})")
    if conn.dialect.name == "postgresql":
        for table, name, template in _PG_INDEXES:
            conn.exec_driver_sql(
                "CREATE "
                + template.format(name=quote_ident(conn, name), table=quote_ident(conn, RAW_SCHEMA, table))
            )


def prepare_usage_tables(warehouse: WarehouseResource) -> None:
    """Run :func:`ensure_usage_tables` in its own short transaction (a concurrent creator may win)."""
    for attempt in range(3):
        try:
            with warehouse.begin() as conn:
                ensure_usage_tables(conn)
            return
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt == 2:
                raise
