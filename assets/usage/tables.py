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

from assets.sources.landing_feed import AUDIT_COLUMNS, REJECTS_COLUMNS
from assets.sources.mongo_collection import MongoCollectionSource
from resources.platform_tables import Index, PlatformTables, TableSpec, baseline, ensure_platform_tables
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
# PostgreSQL-only index (DuckDB scans fast enough).
LANDED_FILES_TABLES = PlatformTables(
    f"usage/{RAW_SCHEMA}.{FILE_EVENTS_TABLE}",
    (
        TableSpec(
            RAW_SCHEMA,
            FILE_EVENTS_TABLE,
            PAYLOAD_COLUMNS + AUDIT_COLUMNS,  # the feed appends its audit columns
            pg_indexes=(Index("usage_event_files__ix__file_key", ("ingest_file_key",)),),
        ),
        TableSpec(
            RAW_SCHEMA,
            FILE_REJECTS_TABLE,
            REJECTS_COLUMNS,  # the feed's rejects table, created ahead of the first file
        ),
    ),
    (baseline("landed usage files and their rejects as declared since ec84877"),),
)


def prepare_usage_tables(warehouse: WarehouseResource) -> None:
    """Every usage raw table: the MongoDB source's (its mechanism) and the landed files' (above).

    Each owner's tables in one short transaction (a concurrent creator may win).
    """
    usage_mongo_source().ensure_tables(warehouse)
    ensure_platform_tables(warehouse, LANDED_FILES_TABLES)
