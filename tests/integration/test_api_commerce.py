"""The read API's commerce endpoints against tables the real pipeline produced (DuckDB and PostgreSQL)."""

from decimal import Decimal
from pathlib import Path

import pytest
from dagster import DagsterInstance
from fastapi.testclient import TestClient

from api.app import create_app
from generators.commerce import GeneratedEvent, generate_events
from resources.warehouse import WarehouseResource
from tests.integration.test_commerce_helpers import (
    drop_jsonl,
    load_files_and_models,
    resources_for,
    rows,
    sample_events,
)


def _money(value: object) -> str:
    """The exact JSON form of a NUMERIC(.., 2) amount read from the warehouse: a decimal string, 2 places."""
    assert isinstance(value, Decimal | int), f"the warehouse returned {type(value).__name__}, not a decimal"
    return format(Decimal(value).quantize(Decimal("0.01")), "f")


def load_commerce(warehouse: WarehouseResource, tmp_path: Path) -> list[GeneratedEvent]:
    """The commerce marts, built by the real pipeline from landed files; returns the "live" events."""
    landing = tmp_path / "landing"
    resources = resources_for(warehouse, landing)
    history = sample_events(1200, seed=61)
    live = list(generate_events(40, seed=62))  # wall-clock timestamps: the "realtime" window
    drop_jsonl([*history, *live], landing, files=2)
    load_files_and_models(DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")), resources)
    return live


@pytest.fixture
def client_and_tables(warehouse: WarehouseResource, tmp_path: Path):
    live = load_commerce(warehouse, tmp_path)
    with TestClient(create_app(warehouse.url)) as client:
        yield client, warehouse, live


def test_every_commerce_endpoint_matches_its_table(client_and_tables) -> None:
    client, warehouse, live = client_and_tables
    assert client.get("/health").json()["status"] == "degraded"  # freshness never recorded here
    assert client.get("/ready").json()["status"] == "ready"

    (summary,) = rows(warehouse, "SELECT * FROM mart.commerce_summary")
    got = client.get("/api/metrics/summary").json()
    for key in ("total_events", "unique_users", "sessions", "transactions", "orders"):
        assert got[key] == summary[key], key
    assert got["total_revenue"] == _money(summary["total_revenue"])
    assert got["avg_order_value"] == _money(summary["avg_order_value"])

    top = rows(warehouse, "SELECT * FROM mart.commerce_top_products ORDER BY sales_rank LIMIT 5")
    got_top = client.get("/api/metrics/top-products", params={"limit": 5}).json()
    assert [p["product_id"] for p in got_top] == [p["product_id"] for p in top]
    assert [p["revenue"] for p in got_top] == [_money(p["revenue"]) for p in top]
    assert [p["price"] for p in got_top] == [_money(p["price"]) for p in top]
    category = top[0]["category"]
    filtered = client.get("/api/metrics/top-products", params={"category": category, "limit": 100}).json()
    assert filtered and {p["category"] for p in filtered} == {category}

    by_category = {r["category"]: r for r in rows(warehouse, "SELECT * FROM mart.commerce_sales_by_category")}
    got_categories = client.get("/api/metrics/by-category").json()
    assert {c["category"] for c in got_categories} == set(by_category)
    revenues = [Decimal(c["revenue"]) for c in got_categories]
    assert revenues == sorted(revenues, reverse=True)
    for item in got_categories:
        assert item["transactions"] == by_category[item["category"]]["transactions"]
        assert item["revenue"] == _money(by_category[item["category"]]["revenue"])

    types = {
        r["event_type"]: r["events"]
        for r in rows(warehouse, "SELECT * FROM mart.commerce_event_type_distribution")
    }
    assert {t["event_type"]: t["events"] for t in client.get("/api/metrics/event-types").json()} == types

    days = rows(warehouse, "SELECT event_date, events FROM mart.commerce_daily_metrics ORDER BY event_date")
    daily = client.get("/api/metrics/timeline", params={"granularity": "day", "points": 5000 // 4}).json()
    assert [p["events"] for p in daily["points"]][-len(days) :] == [d["events"] for d in days]

    hourly = client.get(
        "/api/metrics/timeline", params={"granularity": "hour", "points": 3, "end": "2024-03-02T00:30:00"}
    ).json()
    (expected,) = rows(
        warehouse,
        "SELECT COUNT(*) AS n, SUM(CASE WHEN event_type = 'purchase' THEN total_amount END) AS revenue "
        "FROM stg.commerce_events WHERE event_timestamp >= :start AND event_timestamp < :stop",
        {"start": "2024-03-01 22:00:00", "stop": "2024-03-02 01:00:00"},
    )
    assert sum(p["events"] for p in hourly["points"]) == expected["n"]
    assert format(sum(Decimal(p["revenue"]) for p in hourly["points"]), "f") == _money(expected["revenue"])
    assert hourly["end"] == "2024-03-02T00:30:00Z" and hourly["start"] == "2024-03-01T22:00:00Z"
    assert len(hourly["points"]) <= 3

    window = client.get("/api/metrics/realtime", params={"window_seconds": 3600}).json()
    assert window["events"] == sum(1 for e in live if e.valid)
    minute = client.get("/api/metrics/realtime").json()
    assert minute["window_seconds"] == 60 and 0 <= minute["events"] <= window["events"]


def test_hostile_text_is_422_and_extreme_instants_are_clamped(client_and_tables) -> None:
    """A NUL cannot reach the driver (PostgreSQL refuses it: was a 500); calendar ends never overflow."""
    client, warehouse, _ = client_and_tables
    for text in ("\x00", "Books\x00", "\x1b[2J", " "):
        response = client.get("/api/metrics/top-products", params={"category": text})
        assert response.status_code == 422, text
        assert response.json()["detail"][0]["loc"] == ["query", "category"]

    (first,) = rows(warehouse, "SELECT MIN(event_date) AS day FROM mart.commerce_daily_metrics")
    for granularity in ("minute", "hour", "day"):
        late = client.get(
            "/api/metrics/timeline",
            params={"granularity": granularity, "points": 1440, "end": "9999-12-31T23:59:59"},
        )
        assert late.status_code == 200, late.text
        assert late.json()["end"] == "9999-12-31T23:59:59Z" and late.json()["points"] == []
        early = client.get(
            "/api/metrics/timeline",
            params={"granularity": granularity, "points": 1440, "end": "0001-01-01T00:00:00+05:00"},
        )
        assert early.status_code == 200, early.text
        assert early.json()["start"] == "0001-01-01T00:00:00Z" and early.json()["points"] == []
    # An aware instant (Z) is the same UTC instant the naive one names: the first day's data is found.
    end = f"{first['day']}T12:00:00Z"
    daily = client.get("/api/metrics/timeline", params={"granularity": "day", "points": 3, "end": end}).json()
    assert daily["points"] and daily["points"][-1]["bucket"] == f"{first['day']}T00:00:00Z"
    for not_an_instant in ("0", "0.5", "1e9", "2024-03-02T00:30:00\x00"):
        response = client.get("/api/metrics/timeline", params={"end": not_an_instant})
        assert response.status_code == 422, not_an_instant
        assert "ISO 8601" in response.json()["detail"][0]["msg"]


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/metrics/top-products", {"limit": 0}, "limit"),
        ("/api/metrics/top-products", {"limit": 101}, "limit"),
        ("/api/metrics/top-products", {"limit": "ten"}, "limit"),
        ("/api/metrics/timeline", {"granularity": "week"}, "granularity"),
        ("/api/metrics/timeline", {"points": 0}, "points"),
        ("/api/metrics/timeline", {"end": "not-a-date"}, "end"),
        ("/api/metrics/realtime", {"window_seconds": 1}, "window_seconds"),
    ],
)
def test_invalid_query_parameters_are_422(tmp_path: Path, path: str, params: dict, field: str) -> None:
    with TestClient(create_app(f"duckdb:///{tmp_path / 'empty.duckdb'}")) as client:
        response = client.get(path, params=params)
    assert response.status_code == 422
    assert any(field in error["loc"] for error in response.json()["detail"])


def test_tables_not_produced_yet_answer_503_and_openapi_lists_the_routes(tmp_path: Path) -> None:
    with TestClient(create_app(f"duckdb:///{tmp_path / 'empty.duckdb'}")) as client:
        response = client.get("/api/metrics/by-category")
        assert response.status_code == 503
        assert "not available yet" in response.json()["detail"]
        assert client.get("/ready").status_code == 200
        paths = client.get("/openapi.json").json()["paths"]
    for route in ("summary", "timeline", "top-products", "by-category", "event-types", "realtime"):
        assert f"/api/metrics/{route}" in paths
    assert {"/metrics/resumo", "/metrics/pais", "/health", "/ready"} <= set(paths)


def test_ready_is_503_when_the_warehouse_is_unreachable() -> None:
    app = create_app("postgresql+psycopg://afluente:afluente@127.0.0.1:1/nowhere?connect_timeout=2")
    with TestClient(app) as client:
        response = client.get("/ready")
    assert response.status_code == 503 and response.json()["status"] == "unavailable"
