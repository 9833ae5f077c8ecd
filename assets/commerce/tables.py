"""Explicit DDL of the commerce raw tables and the Kafka offset ledger.

Both writers of ``raw.commerce_events`` (Kafka ranges and landed JSONL files) append to the same
tables, so the types are declared here rather than inferred from whichever batch lands first.

On PostgreSQL the tables carry the indexes the pipeline relies on: UNIQUE indexes on the Kafka
coordinates (topic, partition, offset) and on (landed file, line), so one source message can never
be stored twice, and indexes serving the staging model's incremental filter and de-duplication.
DuckDB gets no indexes: its scans are fast and its ART indexes slow bulk appends down; there the
ledger (checked inside the write transaction) is the guarantee.
"""

from __future__ import annotations

import sqlalchemy as sa

from resources.bulk_write import quote_ident
from resources.warehouse import WarehouseResource

RAW_SCHEMA = "raw"
EVENTS_TABLE = "commerce_events"
DEAD_LETTER_TABLE = "commerce_events_dead_letter"
OFFSETS_TABLE = "kafka_offsets"
BATCHES_TABLE = "kafka_ingest_batches"

# Fields of a valid event, in the order of the raw table (types are portable SQL).
EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "TEXT"),
    ("event_type", "TEXT"),
    ("event_timestamp", "TIMESTAMP"),
    ("user_id", "TEXT"),
    ("session_id", "TEXT"),
    ("product_id", "TEXT"),
    ("product_name", "TEXT"),
    ("product_category", "TEXT"),
    ("product_price", "DOUBLE PRECISION"),
    ("quantity", "INTEGER"),
    ("total_amount", "DOUBLE PRECISION"),
    ("payment_method", "TEXT"),
    ("search_query", "TEXT"),
)
SOURCE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_key", "TEXT"),
    ("source_topic", "TEXT"),
    ("source_partition", "INTEGER"),
    ("source_offset", "BIGINT"),
    ("source_timestamp", "TIMESTAMP"),
    ("source_line", "BIGINT"),
)
AUDIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ingest_at", "TIMESTAMP"),
    ("ingest_batch", "TEXT"),
    ("ingest_source", "TEXT"),
    ("ingest_file_key", "TEXT"),
)
DEAD_LETTER_COLUMNS: tuple[tuple[str, str], ...] = (
    *SOURCE_COLUMNS,
    ("reason", "TEXT"),
    ("raw_content", "TEXT"),
    ("payload_bytes", "INTEGER"),
    *AUDIT_COLUMNS,
)

TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    EVENTS_TABLE: (*EVENT_COLUMNS, *SOURCE_COLUMNS, *AUDIT_COLUMNS),
    DEAD_LETTER_TABLE: DEAD_LETTER_COLUMNS,
    # Covered offset ranges [start_offset, next_offset) per pipeline/topic/partition, kept compact:
    # adjacent ranges are merged in the transaction that commits a batch.
    OFFSETS_TABLE: (
        ("pipeline", "TEXT NOT NULL"),
        ("topic", "TEXT NOT NULL"),
        ("kafka_partition", "INTEGER NOT NULL"),
        ("start_offset", "BIGINT NOT NULL"),
        ("next_offset", "BIGINT NOT NULL"),
        ("updated_at", "TIMESTAMP"),
    ),
    # Append-only audit: one row per committed (partition, range) of one run.
    BATCHES_TABLE: (
        ("pipeline", "TEXT"),
        ("topic", "TEXT"),
        ("kafka_partition", "INTEGER"),
        ("start_offset", "BIGINT"),
        ("next_offset", "BIGINT"),
        ("events_loaded", "BIGINT"),
        ("dead_letters", "BIGINT"),
        ("already_loaded", "BIGINT"),
        ("run_id", "TEXT"),
        ("committed_at", "TIMESTAMP"),
    ),
}

_PRIMARY_KEYS = {OFFSETS_TABLE: ("pipeline", "topic", "kafka_partition", "start_offset")}

# (index name, table, method, columns, unique, where) -- PostgreSQL only.
_PG_INDEXES: tuple[tuple[str, str, str, tuple[str, ...], bool, str | None], ...] = (
    # One row per Kafka message, one row per landed line: the database enforces it.
    (
        "commerce_events__uix__kafka_coordinates",
        EVENTS_TABLE,
        "btree",
        ("source_partition", "source_offset", "source_topic"),
        True,
        "source_topic IS NOT NULL",
    ),
    (
        "commerce_events__uix__file_line",
        EVENTS_TABLE,
        "btree",
        ("ingest_file_key", "source_line"),
        True,
        "ingest_file_key IS NOT NULL",
    ),
    # Staging de-duplicates by event_id and reads new rows by ingest time (BRIN: rows arrive in
    # ingest order, so the index is tiny and nearly free to maintain during COPY).
    ("commerce_events__ix__event_id", EVENTS_TABLE, "btree", ("event_id",), False, None),
    ("commerce_events__brin__ingest_at", EVENTS_TABLE, "brin", ("ingest_at",), False, None),
    (
        "commerce_events_dead_letter__ix__ingest_file_key",
        DEAD_LETTER_TABLE,
        "btree",
        ("ingest_file_key",),
        False,
        "ingest_file_key IS NOT NULL",
    ),
    (
        "commerce_events_dead_letter__ix__kafka_coordinates",
        DEAD_LETTER_TABLE,
        "btree",
        ("source_partition", "source_offset", "source_topic"),
        False,
        "source_topic IS NOT NULL",
    ),
)


def create_statements(conn: sa.Connection) -> list[str]:
    """DDL creating every commerce raw table (and its PostgreSQL indexes) if missing."""
    statements = []
    for table, columns in TABLES.items():
        cols = [f"{quote_ident(conn, name)} {col_type}" for name, col_type in columns]
        if table in _PRIMARY_KEYS:
            cols.append(f"PRIMARY KEY ({', '.join(quote_ident(conn, c) for c in _PRIMARY_KEYS[table])})")
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {quote_ident(conn, RAW_SCHEMA, table)} ({', '.join(cols)})"
        )
    if conn.dialect.name == "postgresql":
        for name, table, method, columns, unique, where in _PG_INDEXES:
            col_list = ", ".join(quote_ident(conn, c) for c in columns)
            kind = "UNIQUE INDEX" if unique else "INDEX"
            suffix = f" WHERE {where}" if where else ""
            statements.append(
                f"CREATE {kind} IF NOT EXISTS {quote_ident(conn, name)} "
                f"ON {quote_ident(conn, RAW_SCHEMA, table)} USING {method} ({col_list}){suffix}"
            )
    return statements


def ensure_commerce_tables(warehouse: WarehouseResource) -> None:
    """Create the raw schema, tables and indexes (idempotent, its own short transaction)."""
    try:
        with warehouse.begin() as conn:
            conn.execute(sa.schema.CreateSchema(RAW_SCHEMA, if_not_exists=True))
    except sa.exc.IntegrityError:
        pass  # another process created the schema concurrently
    for attempt in range(3):
        try:
            with warehouse.begin() as conn:
                for statement in create_statements(conn):
                    conn.exec_driver_sql(statement)
            return
        except sa.exc.IntegrityError:
            # Concurrent CREATE ... IF NOT EXISTS on PostgreSQL can race on the catalog; retry.
            if attempt == 2:
                raise
