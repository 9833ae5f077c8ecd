"""Explicit DDL of a Kafka topic source's tables: raw rows, dead letters, the offset ledger, batches.

The raw table is the declared message columns plus a fixed envelope (source coordinates and
ingest audit columns), so other writers of the same table (a landing feed of the same events)
append rows of the same shape; the types are declared rather than inferred from the first batch.

Indexes on PostgreSQL, each paid per loaded row. PostgreSQL CPU per row for 200k Kafka events
(binary COPY, fresh table, this 2-core machine): about 5 us with the indexes below, 8 with a
unique B-tree on the Kafka coordinates added, 10 with a B-tree on the id column instead of the
hash index as well (13 with CSV COPY instead of binary: the previous layout).

- id column (``id_column``): a *hash* index. Staging de-duplicates by it (equality probes only);
  a B-tree on random UUIDs costs 2-3x more per inserted row.
- Kafka coordinates: a BRIN index (partition, offset) serving the per-run reconciliation count.
  One row per Kafka message is guaranteed by the offset ledger, read and written under a
  per-partition lock in the same transaction as the rows (exactly as on DuckDB), not by a unique
  B-tree, which cost ~3 us per row; the reconciliation check would still flag a duplicate.
- Landed files: UNIQUE (file key, line), partial, so Kafka rows do not enter it.
- ``ingest_at``: BRIN (rows arrive in ingest order; the staging model reads new rows by it).

DuckDB gets no indexes: its scans are fast and its ART indexes slow bulk appends down; there the
ledger (checked inside the write transaction) is the guarantee.

Upgrades from earlier shapes are numbered steps (:data:`MIGRATIONS`) recorded per source in
``ops.schema_migrations`` (:mod:`resources.migrations`).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from resources.bulk_write import quote_ident
from resources.migrations import Migration
from resources.platform_tables import Index, PlatformTables, TableSpec, ensure_platform_tables
from resources.warehouse import WarehouseResource

Columns = tuple[tuple[str, str], ...]

SOURCE_COLUMNS: Columns = (
    ("source_key", "TEXT"),
    ("source_topic", "TEXT"),
    ("source_partition", "INTEGER"),
    ("source_offset", "BIGINT"),
    ("source_timestamp", "TIMESTAMP"),
    ("source_line", "BIGINT"),
)
AUDIT_COLUMNS: Columns = (
    ("ingest_at", "TIMESTAMP"),
    ("ingest_batch", "TEXT"),
    ("ingest_source", "TEXT"),
    ("ingest_file_key", "TEXT"),
)
DEAD_LETTER_COLUMNS: Columns = (
    *SOURCE_COLUMNS,
    ("reason", "TEXT"),
    ("raw_content", "TEXT"),
    ("payload_bytes", "INTEGER"),
    *AUDIT_COLUMNS,
)
# Covered offset ranges [start_offset, next_offset) per pipeline/topic/partition, kept compact:
# adjacent ranges are merged in the transaction that commits a batch. Shared by every source.
OFFSETS_COLUMNS: Columns = (
    ("pipeline", "TEXT NOT NULL"),
    ("topic", "TEXT NOT NULL"),
    ("kafka_partition", "INTEGER NOT NULL"),
    ("start_offset", "BIGINT NOT NULL"),
    ("next_offset", "BIGINT NOT NULL"),
    ("updated_at", "TIMESTAMP"),
)
OFFSETS_PRIMARY_KEY = ("pipeline", "topic", "kafka_partition", "start_offset")
# Append-only audit: one row per committed (partition, range) of one run.
BATCHES_COLUMNS: Columns = (
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
)

Table = tuple[str, str]  # (schema, name)


@dataclass(frozen=True)
class TopicTables:
    """Where one source's rows, dead letters, ledger and batch audit live, and the rows' columns."""

    pipeline: str
    raw: Table
    dead_letter: Table
    message_columns: Columns
    id_column: str | None = None
    offsets: Table = ("raw", "kafka_offsets")
    batches: Table = ("raw", "kafka_ingest_batches")

    @property
    def raw_columns(self) -> Columns:
        return (*self.message_columns, *SOURCE_COLUMNS, *AUDIT_COLUMNS)

    @property
    def coordinates_brin(self) -> str:
        """BRIN index serving the reconciliation count (PostgreSQL)."""
        return f"{self.raw[1]}__brin__kafka_coordinates"

    def pg_indexes(self) -> tuple[tuple[str, Table, str, tuple[str, ...], bool, str | None], ...]:
        """(index name, table, method, columns, unique, where) -- PostgreSQL only."""
        raw, dead = self.raw[1], self.dead_letter[1]
        indexes: list[tuple[str, Table, str, tuple[str, ...], bool, str | None]] = [
            (
                f"{raw}__uix__file_line",
                self.raw,
                "btree",
                ("ingest_file_key", "source_line"),
                True,
                "ingest_file_key IS NOT NULL",
            )
        ]
        if self.id_column:
            indexes.append(
                (f"{raw}__hix__{self.id_column}", self.raw, "hash", (self.id_column,), False, None)
            )
        indexes += [
            (self.coordinates_brin, self.raw, "brin", ("source_partition", "source_offset"), False, None),
            (f"{raw}__brin__ingest_at", self.raw, "brin", ("ingest_at",), False, None),
            (
                f"{dead}__ix__ingest_file_key",
                self.dead_letter,
                "btree",
                ("ingest_file_key",),
                False,
                "ingest_file_key IS NOT NULL",
            ),
            (
                f"{dead}__ix__kafka_coordinates",
                self.dead_letter,
                "btree",
                ("source_partition", "source_offset", "source_topic"),
                False,
                "source_topic IS NOT NULL",
            ),
        ]
        return tuple(indexes)

    def tables(self) -> tuple[tuple[Table, Columns, tuple[str, ...]], ...]:
        """(table, columns, primary key) of every table of the source."""
        return (
            (self.raw, self.raw_columns, ()),
            (self.dead_letter, DEAD_LETTER_COLUMNS, ()),
            (self.offsets, OFFSETS_COLUMNS, OFFSETS_PRIMARY_KEY),
            (self.batches, BATCHES_COLUMNS, ()),
        )


def _drop_retired_indexes(tables: TopicTables) -> Migration:
    """Step 1: the first layout had a unique B-tree on the Kafka coordinates and a B-tree on the id
    column; both were replaced by the BRIN and hash indexes above (PostgreSQL only)."""
    retired = [f"{tables.raw[1]}__uix__kafka_coordinates"]
    if tables.id_column:
        retired.append(f"{tables.raw[1]}__ix__{tables.id_column}")

    def apply(conn: sa.Connection) -> None:
        if conn.dialect.name != "postgresql":
            return
        for name in retired:
            conn.exec_driver_sql(f"DROP INDEX IF EXISTS {quote_ident(conn, tables.raw[0], name)}")

    return Migration(1, "drop B-tree indexes replaced by BRIN (coordinates) and hash (id)", apply)


def migrations(tables: TopicTables) -> list[Migration]:
    """Upgrade steps of a source's tables, oldest first (append new steps with the next version)."""
    return [_drop_retired_indexes(tables)]


def migration_component(tables: TopicTables) -> str:
    """The name a source's steps are recorded under in ``ops.schema_migrations``."""
    return f"kafka_topic/{tables.pipeline}"


def platform_tables(tables: TopicTables) -> PlatformTables:
    """The source's tables (DDL, PostgreSQL indexes) and their upgrade steps, as platform tables."""
    indexes: dict[Table, list[Index]] = {}
    for name, table, method, columns, unique, where in tables.pg_indexes():
        indexes.setdefault(table, []).append(Index(name, columns, unique=unique, method=method, where=where))
    specs = tuple(
        TableSpec(schema, name, columns, primary_key, tuple(indexes.get((schema, name), ())))
        for (schema, name), columns, primary_key in tables.tables()
    )
    return PlatformTables(migration_component(tables), specs, tuple(migrations(tables)))


def ensure_tables(warehouse: WarehouseResource, tables: TopicTables) -> None:
    """Create the schemas, tables and indexes and apply pending upgrade steps (idempotent, short).

    Indexes already there are not created again: ``CREATE INDEX IF NOT EXISTS`` takes a SHARE lock
    on its table before looking the name up, which made concurrent ingest runs wait for each other's
    commits (:func:`resources.platform_tables.create_platform_tables` skips them).
    """
    ensure_platform_tables(warehouse, platform_tables(tables))
