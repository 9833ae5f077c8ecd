"""The usage domain's raw tables, created by whichever raw asset runs first.

``stg.usage_events`` reads both raw sources (MongoDB and landed files), so both raw tables must exist
even when only one source is used (``make demo`` has no MongoDB): both raw assets call
:func:`prepare_usage_tables` before they ingest. The MongoDB source's tables are its mechanism's
(declared in ``assets/defs/usage/mongo_events/defs.yaml``); the landed files' DDL is below. Types are
declared, not inferred from the first batch, so both writers agree on them.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import sqlalchemy as sa

from assets.sources.mongo_collection import MongoCollectionSource
from resources.bulk_write import quote_ident
from resources.warehouse import WarehouseResource

MONGO_DECLARATION = Path(__file__).resolve().parents[1] / "defs" / "usage" / "mongo_events" / "defs.yaml"


@cache
def usage_mongo_source() -> MongoCollectionSource:
    """The declared MongoDB source of usage events (its tables, validator and settings)."""
    return MongoCollectionSource.from_defs_yaml(MONGO_DECLARATION)


RAW_SCHEMA = usage_mongo_source().tables.raw.schema
EVENTS_TABLE = usage_mongo_source().tables.raw.table
FILE_EVENTS_TABLE = "usage_event_files"
FILE_REJECTS_TABLE = "usage_event_files_rejects"

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
    FILE_EVENTS_TABLE: PAYLOAD_COLUMNS + LANDING_AUDIT,
    FILE_REJECTS_TABLE: (("source_line", "BIGINT"), ("reason", "TEXT"), ("raw_content", "TEXT"))
    + LANDING_AUDIT,
}

# PostgreSQL-only indexes (DuckDB scans fast enough).
_PG_INDEXES: tuple[tuple[str, str, str], ...] = (
    (
        FILE_EVENTS_TABLE,
        "usage_event_files__ix__file_key",
        "INDEX IF NOT EXISTS {name} ON {table} (ingest_file_key)",
    ),
)


def ensure_usage_tables(conn: sa.Connection) -> None:
    """Create the landed files' tables and (PostgreSQL) indexes when missing; a no-op afterwards."""
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
    """Every usage raw table: the MongoDB source's (its mechanism) and the landed files' (above).

    Each in its own short transaction (a concurrent creator may win).
    """
    usage_mongo_source().ensure_tables(warehouse)
    for attempt in range(3):
        try:
            with warehouse.begin() as conn:
                ensure_usage_tables(conn)
            return
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt == 2:
                raise
