"""The warehouse resource: one SQLAlchemy URL selects embedded DuckDB (default) or PostgreSQL.

Every pipeline reads and writes the warehouse through this resource, so switching engines is a
configuration change (``WAREHOUSE_URL``), never a code change. What it does lives in the
Dagster-free :class:`resources.warehouse_core.Warehouse` (this resource *is* one), which the read
API uses directly.
"""

from dagster import ConfigurableResource
from pydantic import Field

from resources.warehouse_core import (
    DEFAULT_WAREHOUSE_URL,
    Warehouse,
    dialect_of,
    dispose_engines,
    get_engine,
)

__all__ = [
    "DEFAULT_WAREHOUSE_URL",
    "Warehouse",
    "WarehouseResource",
    "dialect_of",
    "dispose_engines",
    "get_engine",
]


class WarehouseResource(ConfigurableResource, Warehouse):
    """The :class:`Warehouse` as a Dagster resource, configured from ``WAREHOUSE_URL``."""

    url: str = Field(
        default=DEFAULT_WAREHOUSE_URL,
        description="SQLAlchemy URL: duckdb:///path/file.duckdb or postgresql+psycopg://user:pw@host/db",
    )
    lock_timeout_s: float = Field(
        default=120.0, description="How long to wait for another process's DuckDB file lock."
    )
