"""Export statistics (seed bgc-api): ``GET /metrics/resumo`` and ``GET /metrics/pais``.

Unfiltered requests read the refreshed reports (``mart.mv_resumo_geral`` / ``mart.mv_resumo_pais``);
a request filtered by year or sector aggregates ``stg.exportacao`` with bound parameters. Responses
use camelCase keys, as the seed's API standard asks.
"""

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from api.db import Db
from api.schema import NOT_FOUND, Kilograms, Money, Text, UtcDateTime

router = APIRouter(prefix="/metrics", tags=["exports"])
Ano = Annotated[int | None, Query(ge=1990, le=2100, description="Year (YYYY)")]


class _Camel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class Resumo(_Camel):
    total_usd: Money
    total_kg: Kilograms
    paises_count: int
    setores_count: int
    anos: list[int]
    updated_at: UtcDateTime | None
    filters: dict[str, Any]


class Pais(_Camel):
    pais: str
    total_usd: Money
    total_kg: Kilograms
    participacao_pct: float
    anos: list[int]
    updated_at: UtcDateTime | None


@router.get(
    "/resumo",
    response_model=Resumo,
    response_model_by_alias=True,
    summary="Overall export totals, optionally for one year and/or one sector",
    responses=NOT_FOUND,
)
def resumo(
    db: Db,
    ano: Ano = None,
    setor: Annotated[Text | None, Query(max_length=100, description="Sector name")] = None,
) -> dict:
    if ano is None and setor is None:
        row = db.one(
            "SELECT total_usd, total_kg, paises_count, setores_count, anos, updated_at "
            "FROM mart.mv_resumo_geral WHERE id = :id",
            {"id": 1},
        )
        if row is None:
            raise HTTPException(status_code=404, detail="no export data loaded yet")
        return {**row, "anos": row["anos"] or [], "filters": {}}
    conditions: list[str] = []
    params: dict[str, Any] = {}
    if ano is not None:
        conditions.append("ano = :ano")
        params["ano"] = ano
    if setor is not None:
        conditions.append("setor = :setor")
        params["setor"] = setor.strip()
    where = " AND ".join(conditions)
    row = db.one(
        "SELECT COUNT(*) AS n_rows, COALESCE(SUM(valor_usd), 0) AS total_usd, "
        "COALESCE(SUM(peso_kg), 0) AS total_kg, COUNT(DISTINCT pais) AS paises_count, "
        "COUNT(DISTINCT setor) AS setores_count, MAX(ingest_at) AS updated_at "
        f"FROM stg.exportacao WHERE {where}",
        params,
    )
    if row is None or not row["n_rows"]:
        raise HTTPException(status_code=404, detail=f"no export rows match {params}")
    anos = db.rows(f"SELECT DISTINCT ano FROM stg.exportacao WHERE {where} ORDER BY ano", params)
    return {
        "total_usd": row["total_usd"],
        "total_kg": row["total_kg"],
        "paises_count": row["paises_count"],
        "setores_count": row["setores_count"],
        "anos": [r["ano"] for r in anos],
        "updated_at": row["updated_at"],
        "filters": params,
    }


@router.get(
    "/pais",
    response_model=list[Pais],
    response_model_by_alias=True,
    summary="Export totals per destination country, largest first, optionally for one year",
)
def pais(
    db: Db,
    ano: Ano = None,
    limit: Annotated[int, Query(ge=1, le=500, description="How many countries (1-500)")] = 20,
) -> list[dict]:
    if ano is None:
        rows = db.rows(
            "SELECT pais, total_usd, total_kg, participacao_pct, anos, updated_at "
            "FROM mart.mv_resumo_pais ORDER BY total_usd DESC, pais LIMIT :limit",
            {"limit": limit},
        )
        return [{**r, "anos": r["anos"] or []} for r in rows]
    rows = db.rows(
        "SELECT pais, SUM(valor_usd) AS total_usd, SUM(peso_kg) AS total_kg, "
        "ROUND(CAST(SUM(valor_usd) * 100.0 / NULLIF(SUM(SUM(valor_usd)) OVER (), 0) AS NUMERIC(38, 10)), 2) "
        "AS participacao_pct, "
        "MAX(ingest_at) AS updated_at FROM stg.exportacao WHERE ano = :ano "
        "GROUP BY pais ORDER BY total_usd DESC, pais LIMIT :limit",
        {"ano": ano, "limit": limit},
    )
    return [{**r, "participacao_pct": r["participacao_pct"] or 0.0, "anos": [ano]} for r in rows]
