"""DDL of one MongoDB source's tables: raw rows, rejects and the durable watermark, created by one call.

Types are declared, not inferred from the first batch: the raw table's payload columns come from the
declared row schema (Arrow), followed by the audit columns every MongoDB source writes. Several sources
may share one watermark table (one row per ``mongodb:<database>.<collection>``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa
import sqlalchemy as sa

from resources.bulk_write import quote_ident
from resources.platform_tables import Index, PlatformTables, TableSpec, baseline, ensure_platform_tables
from resources.warehouse import WarehouseResource

AUDIT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("source", "TEXT"),
    ("ingest_batch", "TEXT"),
    ("ingested_at", "TIMESTAMP"),
)
WATERMARK_COLUMNS: tuple[tuple[str, str], ...] = (
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
)


def sql_type(arrow_type: pa.DataType) -> str:
    """The column type both warehouses accept for an Arrow type of a declared row schema."""
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "TEXT"
    if pa.types.is_int64(arrow_type):
        return "BIGINT"
    if pa.types.is_int32(arrow_type) or pa.types.is_int16(arrow_type):
        return "INTEGER"
    if pa.types.is_floating(arrow_type):
        return "DOUBLE PRECISION"
    if pa.types.is_boolean(arrow_type):
        return "BOOLEAN"
    if pa.types.is_timestamp(arrow_type):
        return "TIMESTAMP"
    raise ValueError(f"row schema type {arrow_type} has no declared warehouse column type")


@dataclass(frozen=True)
class TableName:
    """``schema.table`` of one warehouse table."""

    schema: str
    table: str

    @classmethod
    def parse(cls, dotted: str) -> TableName:
        schema, _, table = dotted.partition(".")
        if not schema or not table or "." in table:
            raise ValueError(f"table {dotted!r} must be written schema.table")
        return cls(schema, table)

    def quoted(self, conn: sa.Connection) -> str:
        return quote_ident(conn, self.schema, self.table)

    def __str__(self) -> str:
        return f"{self.schema}.{self.table}"


@dataclass(frozen=True)
class SourceTables:
    """The tables of one MongoDB source and the row shape its validator produces.

    ``key_column`` identifies a document (one row per document is kept); ``version_column`` holds the
    change time of the version kept (a newer version replaces an older one, never the reverse).
    """

    raw: TableName
    rejects: TableName
    watermarks: TableName
    row_schema: pa.Schema
    key_column: str
    version_column: str

    def __post_init__(self) -> None:
        for column in (self.key_column, self.version_column):
            if column not in self.row_schema.names:
                raise ValueError(f"row schema has no column {column!r} (has {self.row_schema.names})")

    @property
    def row_columns(self) -> tuple[str, ...]:
        """Columns of the raw table, in order: payload, then audit."""
        return (*self.row_schema.names, *(name for name, _ in AUDIT_COLUMNS))

    def columns(self) -> dict[TableName, tuple[tuple[str, str], ...]]:
        payload = tuple((f.name, sql_type(f.type)) for f in self.row_schema)
        rejects = (
            (self.key_column, "TEXT"),
            ("reason", "TEXT"),
            ("raw_content", "TEXT"),
            (self.version_column, "TIMESTAMP"),
        )
        return {
            self.raw: payload + AUDIT_COLUMNS,
            self.rejects: rejects + AUDIT_COLUMNS,
            self.watermarks: WATERMARK_COLUMNS,
        }

    def pg_indexes(self) -> tuple[tuple[TableName, str, bool, str], ...]:
        """PostgreSQL-only indexes ``(table, name, unique, column)``: DuckDB scans fast enough, and its
        ART indexes dislike delete + re-insert of a key in one transaction, which a merge does."""
        key = self.key_column
        return (
            (self.raw, f"{self.raw.table}__uix__{key}", True, key),
            (self.rejects, f"{self.rejects.table}__ix__{key}", False, key),
            (self.watermarks, f"{self.watermarks.table}__uix__source_key", True, "source_key"),
        )

    def platform_tables(self) -> PlatformTables:
        """The source's tables as platform tables, their steps recorded under ``mongo_collection/<raw>``.

        Step 1 is the baseline: the shapes are those the usage domain's DDL gave these tables before
        the mechanism existed (ec84877), unchanged since.
        """
        indexes: dict[TableName, list[Index]] = {}
        for table, index, unique, column in self.pg_indexes():
            indexes.setdefault(table, []).append(Index(index, (column,), unique=unique))
        specs = tuple(
            TableSpec(name.schema, name.table, cols, pg_indexes=tuple(indexes.get(name, ())))
            for name, cols in self.columns().items()
        )
        return PlatformTables(
            f"mongo_collection/{self.raw}", specs, (baseline("raw, rejects and watermark tables (ec84877)"),)
        )


def ensure_tables(warehouse: WarehouseResource, tables: SourceTables) -> None:
    """Create the schemas, tables and (PostgreSQL) indexes and apply pending steps (one short transaction)."""
    ensure_platform_tables(warehouse, tables.platform_tables())
