"""Explicit DDL of the commerce raw tables and the Kafka offset ledger.

Both writers of ``raw.commerce_events`` (Kafka ranges and landed JSONL files) append to the same
tables, so the types are declared here rather than inferred from whichever batch lands first.

Indexes on PostgreSQL, each paid per loaded row. PostgreSQL CPU per row for 200k Kafka events
(binary COPY, fresh table, this 2-core machine): about 5 us with the indexes below, 8 with a
unique B-tree on the Kafka coordinates added, 10 with a B-tree on ``event_id`` instead of the
hash index as well (13 with CSV COPY instead of binary: the previous layout).

- ``event_id``: a *hash* index. Staging de-duplicates by ``event_id`` (equality probes only); a
  B-tree on random UUIDs costs 2-3x more per inserted row.
- Kafka coordinates: a BRIN index (partition, offset) serving the per-run reconciliation count.
  One row per Kafka message is guaranteed by the offset ledger, read and written under a
  per-partition lock in the same transaction as the rows (exactly as on DuckDB), not by a unique
  B-tree, which cost ~3 us per row; the reconciliation check would still flag a duplicate.
- Landed files: UNIQUE (file key, line), partial, so Kafka rows do not enter it.
- ``ingest_at``: BRIN (rows arrive in ingest order; the staging model reads new rows by it).

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

# Serves the per-run reconciliation count (see assets.commerce.raw_events.reconcile_ranges).
KAFKA_COORDINATES_BRIN = "commerce_events__brin__kafka_coordinates"

_PRIMARY_KEYS = {OFFSETS_TABLE: ("pipeline", "topic", "kafka_partition", "start_offset")}

# (index name, table, method, columns, unique, where) -- PostgreSQL only.
_PG_INDEXES: tuple[tuple[str, str, str, tuple[str, ...], bool, str | None], ...] = (
    (
        "commerce_events__uix__file_line",
        EVENTS_TABLE,
        "btree",
        ("ingest_file_key", "source_line"),
        True,
        "ingest_file_key IS NOT NULL",
    ),
    ("commerce_events__hix__event_id", EVENTS_TABLE, "hash", ("event_id",), False, None),
    (
        KAFKA_COORDINATES_BRIN,
        EVENTS_TABLE,
        "brin",
        ("source_partition", "source_offset"),
        False,
        None,
    ),
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
# Indexes of earlier versions, replaced above (dropped when present).
_PG_RETIRED_INDEXES = ("commerce_events__uix__kafka_coordinates", "commerce_events__ix__event_id")


def create_statements(conn: sa.Connection, present_indexes: set[str] | None = None) -> list[str]:
    """DDL creating every commerce raw table (and its PostgreSQL indexes) if missing.

    ``present_indexes`` (PostgreSQL index names in the raw schema) leaves out the index statements
    with nothing to do: ``CREATE INDEX IF NOT EXISTS`` takes a SHARE lock on its table *before*
    looking the name up, so it would wait for every open ingest transaction writing that table,
    which made concurrent ingest runs wait for each other's commits.
    """
    statements = []
    for table, columns in TABLES.items():
        cols = [f"{quote_ident(conn, name)} {col_type}" for name, col_type in columns]
        if table in _PRIMARY_KEYS:
            cols.append(f"PRIMARY KEY ({', '.join(quote_ident(conn, c) for c in _PRIMARY_KEYS[table])})")
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {quote_ident(conn, RAW_SCHEMA, table)} ({', '.join(cols)})"
        )
    if conn.dialect.name == "postgresql":
        for name in _PG_RETIRED_INDEXES:
            if present_indexes is None or name in present_indexes:
                statements.append(f"DROP INDEX IF EXISTS {quote_ident(conn, RAW_SCHEMA, name)}")
        for name, table, method, index_columns, unique, where in _PG_INDEXES:
            if present_indexes is not None and name in present_indexes:
                continue
            col_list = ", ".join(quote_ident(conn, c) for c in index_columns)
            kind = "UNIQUE INDEX" if unique else "INDEX"
            suffix = f" WHERE {where}" if where else ""
            statements.append(
                f"CREATE {kind} IF NOT EXISTS {quote_ident(conn, name)} "
                f"ON {quote_ident(conn, RAW_SCHEMA, table)} USING {method} ({col_list}){suffix}"
            )
    return statements


def _present_indexes(conn: sa.Connection) -> set[str] | None:
    """Index names of the raw schema (PostgreSQL), None elsewhere."""
    if conn.dialect.name != "postgresql":
        return None
    rows = conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = :s"), {"s": RAW_SCHEMA})
    return {row[0] for row in rows}


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
                for statement in create_statements(conn, _present_indexes(conn)):
                    conn.exec_driver_sql(statement)
            return
        except sa.exc.IntegrityError:
            # Concurrent CREATE ... IF NOT EXISTS on PostgreSQL can race on the catalog; retry.
            if attempt == 2:
                raise
