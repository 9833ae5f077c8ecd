"""The warehouse client without Dagster: one SQLAlchemy URL selects embedded DuckDB or PostgreSQL.

:class:`Warehouse` holds everything about reaching the warehouse (engine cache, dialect, connections
and transactions that wait out another process's DuckDB file lock, read helpers, bulk writes).
Pipelines use it through :class:`resources.warehouse.WarehouseResource` (the Dagster resource is a
``Warehouse``); the read API uses it directly, so serving answers never imports Dagster.
"""

import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa

from resources.bulk_write import WriteMode, existing_columns, write_arrow

if TYPE_CHECKING:  # imported where a DataFrame is built (see resources.bulk_write)
    import pandas as pd

DEFAULT_WAREHOUSE_URL = "duckdb:///data/warehouse.duckdb"

_ENGINES: dict[str, sa.Engine] = {}

# DuckDB lets one process write a file at a time; sensors, the API and step processes take
# turns, so a lock conflict is waited out rather than failing the run.
_DUCKDB_LOCK_MARKERS = ("Could not set lock", "Conflicting lock", "database is locked")


def dialect_of(url: str) -> str:
    """Return ``duckdb`` or ``postgresql`` for a warehouse URL."""
    name = sa.make_url(url).get_backend_name()
    if name not in ("duckdb", "postgresql"):
        raise ValueError(f"unsupported warehouse URL {url!r}: use duckdb:/// or postgresql+psycopg://")
    return name


def duckdb_file(url: str) -> str | None:
    """The database file of a DuckDB URL; None for an in-memory database (nothing on disk to share)."""
    database = sa.make_url(url).database
    return database if database and database != ":memory:" else None


def get_engine(url: str) -> sa.Engine:
    """One engine per URL per process; DuckDB without pooling so the file lock is released promptly."""
    engine = _ENGINES.get(url)
    if engine is None:
        if dialect_of(url) == "duckdb":
            database = duckdb_file(url)
            if database is not None:
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        else:
            engine = sa.create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)
        _ENGINES[url] = engine
    return engine


def dispose_engines() -> None:
    """Close every cached engine (tests and forked processes)."""
    for engine in _ENGINES.values():
        engine.dispose()
    _ENGINES.clear()


class Warehouse:
    """SQL warehouse reached through SQLAlchemy 2: DuckDB file by default, PostgreSQL via psycopg 3."""

    def __init__(self, url: str = DEFAULT_WAREHOUSE_URL, lock_timeout_s: float = 120.0) -> None:
        self.url = url
        self.lock_timeout_s = lock_timeout_s

    @property
    def dialect(self) -> str:
        return dialect_of(self.url)

    def engine(self) -> sa.Engine:
        return get_engine(self.url)

    def _connect_with_retry(self) -> sa.Connection:
        deadline = time.monotonic() + self.lock_timeout_s
        delay = 0.05
        while True:
            try:
                return self.engine().connect()
            except Exception as exc:  # DuckDB raises its own IOException subclasses
                locked = any(marker in str(exc) for marker in _DUCKDB_LOCK_MARKERS)
                if not locked or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    @contextmanager
    def begin(self) -> Iterator[sa.Connection]:
        """A connection inside one transaction: committed on success, rolled back on error."""
        with self._connect_with_retry() as conn, conn.begin():
            yield conn

    @contextmanager
    def connect(self) -> Iterator[sa.Connection]:
        """A plain connection for reads."""
        with self._connect_with_retry() as conn:
            yield conn

    def ensure_schemas(self, *schemas: str) -> None:
        with self.begin() as conn:
            for schema in schemas:
                conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))

    def read_frame(self, sql: str, params: Mapping[str, Any] | None = None) -> "pd.DataFrame":
        """Run a parameterized query and return a DataFrame."""
        import pandas as pd

        with self.connect() as conn:
            result = conn.execute(sa.text(sql), dict(params or {}))
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def scalar(self, sql: str, params: Mapping[str, Any] | None = None) -> Any:
        with self.connect() as conn:
            return conn.execute(sa.text(sql), dict(params or {})).scalar()

    def table_exists(self, schema: str, table: str) -> bool:
        with self.connect() as conn:
            return existing_columns(conn, schema, table) is not None

    def write_table(
        self,
        data: "pa.Table | pd.DataFrame",
        schema: str,
        table: str,
        mode: WriteMode = "replace",
        partition_column: str | None = None,
        partition_value: Any = None,
        column_types: Mapping[str, str] | None = None,
    ) -> int:
        """Bulk-write one table in its own transaction (see :func:`resources.bulk_write.write_arrow`)."""
        with self.begin() as conn:
            return write_arrow(
                conn,
                data,
                schema,
                table,
                mode=mode,
                partition_column=partition_column,
                partition_value=partition_value,
                column_types=column_types,
            )
