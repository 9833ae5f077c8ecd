"""JSON the dashboard needs that no domain router serves: column lineage and exports per sector.

Lineage comes from :mod:`dbt_like_sql.catalog` (the SQL model files parsed with sqlglot), which does
not import Dagster: the read API stays independent of the orchestrator.
"""

from functools import lru_cache
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.db import Db
from api.schema import Money
from dbt_like_sql.catalog import column_catalog

router = APIRouter(prefix="/dashboard/data", tags=["dashboard"])


class LineageColumn(BaseModel):
    name: str
    description: str | None = None
    sources: list[str] = Field(description="Upstream columns as schema.table.column (empty: computed)")


class LineageModel(BaseModel):
    key: str = Field(examples=["mart.commerce_top_products"])
    asset_key: str = Field(examples=["mart/commerce_top_products"])
    group: str
    materialized: str
    description: str | None = None
    deps: list[str] = Field(description="Upstream tables (schema.table)")
    columns: list[LineageColumn]


class SectorTotal(BaseModel):
    setor: str
    total_usd: Money


@lru_cache(maxsize=1)
def _catalog() -> list[dict[str, Any]]:
    """The model files do not change while the app runs; parsing them once is enough."""
    return column_catalog()


@router.get(
    "/lineage",
    response_model=list[LineageModel],
    summary="Column-level lineage of every SQL model (model -> columns -> upstream columns)",
)
def lineage() -> list[dict[str, Any]]:
    return _catalog()


@router.get(
    "/export-sectors",
    response_model=list[SectorTotal],
    summary="Export totals per sector, largest first, optionally for one year (mart.mv_resumo_setor)",
)
def export_sectors(
    db: Db,
    ano: Annotated[int | None, Query(ge=1990, le=2100, description="Year (YYYY)")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="How many sectors (1-500)")] = 20,
) -> list[dict[str, Any]]:
    if ano is None:
        return db.rows(
            "SELECT setor, total_usd FROM mart.mv_resumo_setor ORDER BY total_usd DESC, setor LIMIT :limit",
            {"limit": limit},
        )
    return db.rows(
        "SELECT setor, SUM(valor_usd) AS total_usd FROM stg.exportacao WHERE ano = :ano "
        "GROUP BY setor ORDER BY total_usd DESC, setor LIMIT :limit",
        {"ano": ano, "limit": limit},
    )
