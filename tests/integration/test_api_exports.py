"""The read API's export-statistics endpoints (seed bgc-api) against tables the real pipeline produced."""

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import DagsterInstance
from fastapi.testclient import TestClient

from api.app import create_app
from resources.warehouse import WarehouseResource
from tests.integration.exports_loading import land_and_build_exports
from tests.integration.test_commerce_helpers import rows


def _money(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def load_exports(warehouse: WarehouseResource, tmp_path: Path) -> None:
    """stg.exportacao and the export reports, built by the real pipeline from two landed CSV files."""
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    land_and_build_exports(warehouse, tmp_path / "landing", instance, seeds=[1, 2], rows=3000)


@pytest.fixture
def client_and_tables(warehouse: WarehouseResource, tmp_path: Path):
    load_exports(warehouse, tmp_path)
    with TestClient(create_app(warehouse.url)) as client:
        yield client, warehouse


def test_resumo_and_pais_match_the_tables(client_and_tables) -> None:
    client, warehouse = client_and_tables
    (geral,) = rows(warehouse, "SELECT * FROM mart.mv_resumo_geral")
    resumo = client.get("/metrics/resumo").json()
    assert _money(resumo["totalUsd"]) == _money(geral["total_usd"])
    assert resumo["paisesCount"] == geral["paises_count"] and resumo["setoresCount"] == geral["setores_count"]
    assert resumo["anos"] == list(geral["anos"]) and resumo["filters"] == {}

    year = resumo["anos"][0]
    (by_year,) = rows(
        warehouse,
        "SELECT SUM(valor_usd) AS usd, COUNT(DISTINCT pais) AS paises FROM stg.exportacao WHERE ano = :ano",
        {"ano": year},
    )
    filtered = client.get("/metrics/resumo", params={"ano": year}).json()
    assert _money(filtered["totalUsd"]) == _money(by_year["usd"])
    assert filtered["paisesCount"] == by_year["paises"] and filtered["anos"] == [year]

    (sector,) = rows(
        warehouse,
        "SELECT setor, SUM(valor_usd) AS usd FROM stg.exportacao GROUP BY setor ORDER BY 2 DESC LIMIT 1",
    )
    by_sector = client.get("/metrics/resumo", params={"setor": sector["setor"]}).json()
    assert _money(by_sector["totalUsd"]) == _money(sector["usd"]) and by_sector["setoresCount"] == 1

    top = rows(
        warehouse,
        "SELECT pais, total_usd, participacao_pct FROM mart.mv_resumo_pais ORDER BY total_usd DESC LIMIT 3",
    )
    paises = client.get("/metrics/pais", params={"limit": 3}).json()
    assert [p["pais"] for p in paises] == [t["pais"] for t in top]
    assert [_money(p["participacaoPct"]) for p in paises] == [_money(t["participacao_pct"]) for t in top]

    yearly = rows(
        warehouse,
        "SELECT pais, SUM(valor_usd) AS usd FROM stg.exportacao WHERE ano = :ano "
        "GROUP BY pais ORDER BY 2 DESC, pais LIMIT 5",
        {"ano": year},
    )
    got = client.get("/metrics/pais", params={"ano": year, "limit": 5}).json()
    assert [(p["pais"], _money(p["totalUsd"])) for p in got] == [
        (y["pais"], _money(y["usd"])) for y in yearly
    ]
    assert all(p["anos"] == [year] for p in got)


def test_unknown_filters_are_404_and_bad_parameters_422(client_and_tables) -> None:
    client, _ = client_and_tables
    assert client.get("/metrics/resumo", params={"setor": "Nenhum Setor"}).status_code == 404
    for params in ({"ano": "abc"}, {"ano": 1800}, {"setor": ""}, {"setor": "\x00"}, {"setor": "Soja\x00"}):
        assert client.get("/metrics/resumo", params=params).status_code == 422, params
    for params in ({"limit": 0}, {"limit": 501}, {"ano": 2200}):
        assert client.get("/metrics/pais", params=params).status_code == 422, params


def test_money_and_weights_are_exact_decimal_strings(warehouse: WarehouseResource) -> None:
    """A total no binary float holds (99999999999999.99 becomes ...98 as a float) is served exactly."""
    with warehouse.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS stg")
        conn.exec_driver_sql(
            "CREATE TABLE stg.exportacao (ano INTEGER, pais VARCHAR(100), setor VARCHAR(100), "
            "valor_usd NUMERIC(15, 2), peso_kg NUMERIC(15, 3), ingest_at TIMESTAMP)"
        )
        rows = [("Chile", "9999999999999.99", "1.500")] * 10 + [("China", "0.09", "0.250")]
        conn.execute(
            sa.text("INSERT INTO stg.exportacao VALUES (2024, :pais, 'Soja', :usd, :kg, :at)"),
            [
                {"pais": pais, "usd": Decimal(usd), "kg": Decimal(kg), "at": dt.datetime(2024, 5, 1, 12)}
                for pais, usd, kg in rows
            ],
        )
    with TestClient(create_app(warehouse.url)) as client:
        resumo = client.get("/metrics/resumo", params={"ano": 2024, "setor": "Soja"})
        paises = client.get("/metrics/pais", params={"ano": 2024}).json()
        schema = client.get("/openapi.json").json()["components"]["schemas"]
    assert resumo.status_code == 200, resumo.text
    body = resumo.json()
    assert (body["totalUsd"], body["totalKg"]) == ("99999999999999.99", "15.250")
    assert body["updatedAt"] == "2024-05-01T12:00:00Z"
    assert [(p["pais"], p["totalUsd"], p["totalKg"]) for p in paises] == [
        ("Chile", "99999999999999.90", "15.000"),
        ("China", "0.09", "0.250"),
    ]
    # Documented as exact decimal strings, so a generated client does not parse them as floats.
    total_usd = schema["Resumo"]["properties"]["totalUsd"]
    assert total_usd["type"] == "string" and total_usd["format"] == "decimal"
