"""Platform tables (ledgers, rejects, watermarks, ``ops.*``) declared by their owner, created by one call.

An owner (a source mechanism, a sensor's store, ...) declares its tables as :class:`TableSpec` values
(columns with their SQL types, primary key, PostgreSQL indexes) and groups them with its numbered
upgrade steps under one migrations component (:class:`PlatformTables`). :func:`ensure_platform_tables`
then does, in ONE transaction: create the schemas and ``ops.schema_migrations``, ``CREATE TABLE IF NOT
EXISTS`` the current shape, apply the steps not recorded yet (:mod:`resources.migrations`), and create
the missing PostgreSQL indexes. A step must therefore be correct both on an older shape (it upgrades
it) and on a table just created in its current shape (where it has nothing left to do).

Types are the ones both engines accept (``TEXT``, ``BIGINT``, ``TIMESTAMP``, ...); where a table used
to be created by inference from the first Arrow batch (:func:`resources.bulk_write.sql_type`), its
declared types are the inferred ones, so databases created earlier keep working unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import sqlalchemy as sa

from resources.bulk_write import existing_columns, quote_ident
from resources.migrations import Migration, apply_migrations, ensure_migrations_table
from resources.warehouse_core import Warehouse

Columns = tuple[tuple[str, str], ...]
_ATTEMPTS = 3


@dataclass(frozen=True)
class Index:
    """A PostgreSQL index (DuckDB gets none: its scans are fast and ART indexes slow bulk appends).

    ``where`` is a literal predicate written in the declaration (never built from input).
    """

    name: str
    columns: tuple[str, ...]
    unique: bool = False
    method: str = "btree"
    where: str | None = None


@dataclass(frozen=True)
class TableSpec:
    """The current shape of one platform table."""

    schema: str
    name: str
    columns: Columns
    primary_key: tuple[str, ...] = ()
    pg_indexes: tuple[Index, ...] = ()

    def __post_init__(self) -> None:
        names = [column for column, _ in self.columns]
        missing = [column for column in (*self.primary_key, *self._indexed()) if column not in names]
        if missing:
            raise ValueError(f"{self.schema}.{self.name}: key/index columns {missing} are not declared")

    def _indexed(self) -> list[str]:
        return [column for index in self.pg_indexes for column in index.columns]

    def quoted(self, conn: sa.Connection) -> str:
        return quote_ident(conn, self.schema, self.name)

    def create_statement(self, conn: sa.Connection) -> str:
        """``CREATE TABLE IF NOT EXISTS`` of the current shape."""
        cols = [f"{quote_ident(conn, column)} {sql_type}" for column, sql_type in self.columns]
        if self.primary_key:
            cols.append(f"PRIMARY KEY ({', '.join(quote_ident(conn, c) for c in self.primary_key)})")
        return f"CREATE TABLE IF NOT EXISTS {self.quoted(conn)} ({', '.join(cols)})"

    def index_statements(self, conn: sa.Connection, present: set[tuple[str, str]]) -> list[str]:
        """``CREATE INDEX`` of the PostgreSQL indexes not in ``present`` ((schema, name) pairs)."""
        statements = []
        for index in self.pg_indexes:
            if (self.schema, index.name) in present:
                continue
            col_list = ", ".join(quote_ident(conn, c) for c in index.columns)
            kind = "UNIQUE INDEX" if index.unique else "INDEX"
            suffix = f" WHERE {index.where}" if index.where else ""
            statements.append(
                f"CREATE {kind} IF NOT EXISTS {quote_ident(conn, index.name)} "
                f"ON {self.quoted(conn)} USING {index.method} ({col_list}){suffix}"
            )
        return statements


@dataclass(frozen=True)
class PlatformTables:
    """Tables whose upgrade steps are recorded under one ``ops.schema_migrations`` component."""

    component: str
    tables: tuple[TableSpec, ...]
    steps: tuple[Migration, ...]


def _present_indexes(conn: sa.Connection, schemas: list[str]) -> set[tuple[str, str]]:
    """(schema, index) names already there: ``CREATE INDEX IF NOT EXISTS`` takes a SHARE lock on its
    table before looking the name up, so it would wait for every open transaction writing the table."""
    statement = sa.text("SELECT schemaname, indexname FROM pg_indexes WHERE schemaname IN :s").bindparams(
        sa.bindparam("s", expanding=True)
    )
    return {(row[0], row[1]) for row in conn.execute(statement, {"s": schemas})}


def create_platform_tables(conn: sa.Connection, *groups: PlatformTables) -> dict[str, list[int]]:
    """Schemas, tables, pending steps and indexes of ``groups`` in the caller's transaction.

    Returns the step versions applied now, per component (empty lists once up to date). Steps run on
    the tables of the current shape, before the indexes (a step may drop or replace one).
    """
    tables = [table for group in groups for table in group.tables]
    schemas = sorted({table.schema for table in tables})
    for schema in schemas:
        conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
    ensure_migrations_table(conn)
    for table in tables:
        conn.exec_driver_sql(table.create_statement(conn))
    applied = {group.component: apply_migrations(conn, group.component, group.steps) for group in groups}
    if conn.dialect.name == "postgresql" and any(table.pg_indexes for table in tables):
        present = _present_indexes(conn, schemas)
        for table in tables:
            for statement in table.index_statements(conn, present):
                conn.exec_driver_sql(statement)
    return applied


def ensure_platform_tables(
    target: Warehouse | sa.Connection, *groups: PlatformTables
) -> dict[str, list[int]]:
    """Create/upgrade ``groups`` (see :func:`create_platform_tables`): with a connection, in its open
    transaction; with a warehouse, in one short transaction of its own, retried when a concurrent
    creator wins a race on PostgreSQL's catalog (``CREATE ... IF NOT EXISTS`` is not atomic there)."""
    if isinstance(target, sa.Connection):
        return create_platform_tables(target, *groups)
    for attempt in range(_ATTEMPTS):
        try:
            with target.begin() as conn:
                return create_platform_tables(conn, *groups)
        except (sa.exc.IntegrityError, sa.exc.ProgrammingError):
            if attempt == _ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")


# --------------------------------------------------------------------------------------------
# Steps shared by several owners


def baseline(note: str) -> Migration:
    """Step 1 of a table family whose shape has not changed since it got explicit DDL: nothing to do,
    recorded so that the next change is step 2 and databases say which shape they have."""

    def apply(conn: sa.Connection) -> None:
        return None

    return Migration(1, f"baseline: {note}", apply)


def add_missing_columns(version: int, tables: Sequence[TableSpec], name: str | None = None) -> Migration:
    """Add the declared columns an existing table lacks (type only: a constraint such as NOT NULL
    cannot hold for the rows already there). Both engines support ``ALTER TABLE ... ADD COLUMN``."""

    def apply(conn: sa.Connection) -> None:
        for table in tables:
            present = existing_columns(conn, table.schema, table.name) or []
            for column, sql_type in table.columns:
                if column not in present:
                    base_type = sql_type.replace("NOT NULL", "").replace("PRIMARY KEY", "").strip()
                    conn.exec_driver_sql(
                        f"ALTER TABLE {table.quoted(conn)} ADD COLUMN {quote_ident(conn, column)} {base_type}"
                    )

    names = ", ".join(f"{t.schema}.{t.name}" for t in tables)
    return Migration(version, name or f"add declared columns missing from {names}", apply)


def has_primary_key(conn: sa.Connection, schema: str, table: str) -> bool:
    """Whether the table has a primary key (``information_schema``: both engines)."""
    count = conn.execute(
        sa.text(
            "SELECT COUNT(*) FROM information_schema.table_constraints WHERE table_schema = :s "
            "AND table_name = :t AND constraint_type = 'PRIMARY KEY'"
        ),
        {"s": schema, "t": table},
    ).scalar_one()
    return int(count) > 0


def add_primary_key(version: int, table: TableSpec, keep_latest_by: str) -> Migration:
    """Give a table created without one its declared primary key.

    Rows sharing a key (possible without the constraint, e.g. two writers racing) are reduced to the
    one with the highest ``keep_latest_by`` first, otherwise the constraint could not be added.
    PostgreSQL: ``DELETE`` of the extra rows, then ``ALTER TABLE ... ADD PRIMARY KEY`` (indexes,
    grants and dependent views stay). DuckDB (2.0) can add a primary key too, but its index build
    still sees rows deleted earlier in the same transaction, so there the table is rebuilt in its
    declared shape (copy of the kept rows, drop, rename; its views bind by name and survive).
    """
    if not table.primary_key:
        raise ValueError(f"{table.schema}.{table.name} declares no primary key")
    keys = table.primary_key

    def kept_rows(conn: sa.Connection, columns: str, row_id: str) -> str:
        order = f"{quote_ident(conn, keep_latest_by)} DESC NULLS LAST"
        partition = ", ".join(quote_ident(conn, c) for c in keys)
        return (
            f"SELECT {columns}, {row_id} AS rid, "
            f"ROW_NUMBER() OVER (PARTITION BY {partition} ORDER BY {order}) AS n FROM {table.quoted(conn)}"
        )

    def apply(conn: sa.Connection) -> None:
        if has_primary_key(conn, table.schema, table.name):
            return
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                f"DELETE FROM {table.quoted(conn)} WHERE ctid IN "
                f"(SELECT rid FROM ({kept_rows(conn, '1', 'ctid')}) ranked WHERE n > 1)"
            )
            key_list = ", ".join(quote_ident(conn, c) for c in keys)
            conn.exec_driver_sql(f"ALTER TABLE {table.quoted(conn)} ADD PRIMARY KEY ({key_list})")
            return
        present = existing_columns(conn, table.schema, table.name) or []
        declared = [column for column, _ in table.columns]
        undeclared = [column for column in present if column not in declared]
        if undeclared:
            raise ValueError(f"{table.schema}.{table.name} has undeclared columns {undeclared}: not rebuilt")
        rebuilt = replace(table, name=f"{table.name}__rebuild", pg_indexes=())
        copied = ", ".join(quote_ident(conn, column) for column in declared if column in present)
        conn.exec_driver_sql(rebuilt.create_statement(conn))
        conn.exec_driver_sql(
            f"INSERT INTO {rebuilt.quoted(conn)} ({copied}) SELECT {copied} "
            f"FROM ({kept_rows(conn, copied, 'rowid')}) ranked WHERE n = 1"
        )
        conn.exec_driver_sql(f"DROP TABLE {table.quoted(conn)}")
        conn.exec_driver_sql(f"ALTER TABLE {rebuilt.quoted(conn)} RENAME TO {quote_ident(conn, table.name)}")

    return Migration(version, f"primary key ({', '.join(keys)}) on {table.schema}.{table.name}", apply)


__all__ = [
    "Columns",
    "Index",
    "PlatformTables",
    "TableSpec",
    "add_missing_columns",
    "add_primary_key",
    "baseline",
    "create_platform_tables",
    "ensure_platform_tables",
    "has_primary_key",
]
