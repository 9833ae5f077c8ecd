"""Explicit DDL of a landing-file feed's platform tables: the file ledger and the rejects table.

Both used to be created by inference from the first Arrow batch written
(:func:`resources.bulk_write.write_arrow`); their declared types are exactly what inference created on
each engine (``TEXT`` strings, ``BIGINT`` int64, ``TIMESTAMP`` timestamp[us]), so tables created that
way keep working. The rows table stays the domain's (its columns come from the feed's reader and
``column_types``) and is still created on its first write.

- Ledger (default ``raw.landing_files``, shared by every feed naming it): one row per
  ``<domain>/<partition key>``, now a PRIMARY KEY on ``ledger_key`` on both engines (the write path
  replaces the row, delete + insert in one transaction, which DuckDB's index accepts since 1.2).
- Rejects: one row per rejected line; ``(ingest_file_key, source_line)`` is unique because a file's
  rows are replaced as a whole in the write transaction, but it is not declared as a key: the table
  may be another source's dead-letter table (a Kafka topic's, created by the feed's ``before_ingest``
  hook with its own DDL), whose Kafka rows have no file key. ``CREATE TABLE IF NOT EXISTS`` leaves
  such a table as its owner made it; the feed only adds reject columns it would lack.

Steps are recorded per table in ``ops.schema_migrations`` under ``landing_feed/<schema>.<table>``:
several feeds share one ledger, which is upgraded once.
"""

from __future__ import annotations

from functools import cache

from resources.platform_tables import (
    PlatformTables,
    TableSpec,
    add_missing_columns,
    add_primary_key,
    ensure_platform_tables,
)
from resources.warehouse import WarehouseResource

# Columns of a file's ledger row (see _ingest._ledger_row), in the order inference created them.
LEDGER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ledger_key", "TEXT NOT NULL"),
    ("domain", "TEXT"),
    ("partition_key", "TEXT"),
    ("file_name", "TEXT"),
    ("content_sha256", "TEXT"),
    ("status", "TEXT"),
    ("rows_total", "BIGINT"),
    ("rows_loaded", "BIGINT"),
    ("rows_rejected", "BIGINT"),
    ("reason", "TEXT"),
    ("details", "TEXT"),
    ("ingest_batch", "TEXT"),
    ("ingest_at", "TIMESTAMP"),
)
# The audit columns every landed row and reject carries (see _ingest.ingest_landing_file).
AUDIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("ingest_at", "TIMESTAMP"),
    ("ingest_batch", "TEXT"),
    ("ingest_source", "TEXT"),
    ("ingest_file_key", "TEXT"),
)
REJECTS_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source_line", "BIGINT"),
    ("reason", "TEXT"),
    ("raw_content", "TEXT"),
    *AUDIT_COLUMNS,
)


def migration_component(table: tuple[str, str]) -> str:
    """The name a feed table's steps are recorded under in ``ops.schema_migrations``."""
    return f"landing_feed/{table[0]}.{table[1]}"


@cache
def ledger_tables(table: tuple[str, str]) -> PlatformTables:
    """The file ledger ``table``: its DDL and upgrade steps.

    Step 1 (from the inferred shape): duplicates of a ledger key reduced to the latest entry, then
    PRIMARY KEY (ledger_key).
    """
    spec = TableSpec(table[0], table[1], LEDGER_COLUMNS, primary_key=("ledger_key",))
    return PlatformTables(
        migration_component(table), (spec,), (add_primary_key(1, spec, keep_latest_by="ingest_at"),)
    )


@cache
def rejects_tables(table: tuple[str, str]) -> PlatformTables:
    """The rejects ``table``: its DDL and upgrade steps.

    Step 1 (from the inferred shape, or another owner's table): add the reject columns it lacks
    (none on the shapes inference created: every reader returns the three typed reject columns).
    """
    spec = TableSpec(table[0], table[1], REJECTS_COLUMNS)
    return PlatformTables(migration_component(table), (spec,), (add_missing_columns(1, (spec,)),))


def ensure_feed_tables(
    warehouse: WarehouseResource, ledger: tuple[str, str], rejects: tuple[str, str]
) -> dict[str, list[int]]:
    """Create or upgrade a feed's ledger and rejects tables, in one transaction."""
    return ensure_platform_tables(warehouse, ledger_tables(ledger), rejects_tables(rejects))
