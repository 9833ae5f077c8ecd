"""Warehouse access for the read API: parameterized SELECTs through the Dagster-free ``Warehouse``.

Every statement is a fixed SQL text with bound parameters; request values never become SQL text.
A table that the pipeline has not produced yet is reported as :class:`NotMaterializedError` (the
app answers 503 with the relation's name) rather than as a server error.
"""

from collections.abc import Mapping
from datetime import date, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request

from resources.warehouse_core import Warehouse, get_engine

_MISSING_MARKERS = ("does not exist", "UndefinedTable", "Catalog Error")


class NotMaterializedError(RuntimeError):
    """A relation the API reads does not exist yet (its asset was never materialized)."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail)
        self.detail = detail


class WarehouseUnavailableError(RuntimeError):
    """The warehouse cannot be reached (or, for DuckDB, stays locked by a writer)."""


def plain(value: Any) -> Any:
    """Arrays as lists; decimals stay ``Decimal`` (the response models serve money exactly)."""
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value


class Database:
    """Read-only helper over one warehouse URL (one engine per process, see ``get_engine``)."""

    def __init__(self, url: str, lock_timeout_s: float = 10.0) -> None:
        self.url = url
        self.warehouse = Warehouse(url, lock_timeout_s=lock_timeout_s)

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect

    def rows(self, sql: str, params: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Run one parameterized SELECT; rows as dicts with JSON-friendly values."""
        try:
            with self.warehouse.connect() as conn:
                result = conn.execute(sa.text(sql), dict(params or {}))
                return [{k: plain(v) for k, v in row._mapping.items()} for row in result]
        except sa.exc.DBAPIError as exc:
            message = str(exc.orig) if exc.orig is not None else str(exc)
            if any(marker in message for marker in _MISSING_MARKERS):
                raise NotMaterializedError(message.splitlines()[0]) from exc
            if isinstance(exc, sa.exc.OperationalError) or exc.connection_invalidated:
                raise WarehouseUnavailableError(message.splitlines()[0]) from exc
            raise
        except OSError as exc:
            raise WarehouseUnavailableError(str(exc)) from exc

    def one(self, sql: str, params: Mapping[str, Any] | None = None) -> dict[str, Any] | None:
        found = self.rows(sql, params)
        return found[0] if found else None

    def ping(self) -> None:
        """Raise if the warehouse does not answer ``SELECT 1``."""
        with get_engine(self.url).connect() as conn:
            conn.execute(sa.text("SELECT 1")).scalar()


def iso(value: datetime | date | None) -> str | None:
    return value.isoformat() if value is not None else None


def get_db(request: Request) -> Database:
    """The app's :class:`Database` (one per app, see ``api.app.create_app``)."""
    return request.app.state.db


Db = Annotated[Database, Depends(get_db)]
