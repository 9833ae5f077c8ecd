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


def create_tables(conn: sa.Connection, tables: SourceTables) -> None:
    """Create the schemas, tables and (PostgreSQL) indexes when missing; a no-op afterwards."""
    columns = tables.columns()
    for schema in sorted({name.schema for name in columns}):
        conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
    for name, cols in columns.items():
        ddl = ", ".join(f"{quote_ident(conn, column)} {kind}" for column, kind in cols)
        conn.exec_driver_sql(f"CREATE TABLE IF NOT EXISTS {name.quoted(conn)} ({ddl})")
    if conn.dialect.name == "postgresql":
        for table, index, unique, column in tables.pg_indexes():
            conn.exec_driver_sql(
                f"CREATE {'UNIQUE ' if unique else ''}INDEX IF NOT EXISTS {quote_ident(conn, index)} "
                f"ON {table.quoted(conn)} ({quote_ident(conn, column)})"
            )


def ensure_tables(warehouse: WarehouseResource, tables: SourceTables) -> None:
    """Run :func:`create_tables` in its own short transaction (a concurrent creator may win)."""
    for attempt in range(3):
        try:
            with warehouse.begin() as conn:
                create_tables(conn, tables)
            return
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt == 2:
                raise
