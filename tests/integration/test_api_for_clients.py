"""The read API for real clients, on DuckDB and PostgreSQL: /v1 routes, the answer cache invalidated by a
rebuild, API keys with roles, per-key rate limits, and the Prometheus exposition."""

from __future__ import annotations

import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
from dagster import DagsterInstance
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from api.access import hash_key
from api.app import create_app
from resources.warehouse import WarehouseResource
from tests.integration.exports_loading import land_and_build_exports

VIEWER_KEY, OPS_KEY = "viewer-key-0123456789", "ops-key-0123456789"


@pytest.fixture
def exports_loaded(warehouse: WarehouseResource, tmp_path: Path) -> Iterator[DagsterInstance]:
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster")) as instance:
        land_and_build_exports(warehouse, tmp_path / "landing", instance, seeds=[1], rows=2000)
        yield instance


def _until_cached(client: TestClient, path: str, timeout: float = 5.0) -> dict:
    """Ask until the answer comes from memory (on PostgreSQL the listener connects asynchronously)."""
    deadline = time.monotonic() + timeout
    while True:
        answer = client.get(path)
        assert answer.status_code == 200, answer.text
        if answer.headers.get("x-cache") == "hit" or time.monotonic() > deadline:
            assert answer.headers.get("x-cache") == "hit", "never served from the cache"
            return answer.json()
        time.sleep(0.05)


def test_a_rebuild_invalidates_cached_answers(
    warehouse: WarehouseResource, exports_loaded: DagsterInstance, tmp_path: Path
) -> None:
    with TestClient(create_app(warehouse.url)) as client:
        before = _until_cached(client, "/metrics/resumo")
        assert client.get("/metrics/resumo").headers["x-cache"] == "hit"
        cached_v1 = client.get("/v1/exports/resumo")
        assert cached_v1.status_code == 200

        land_and_build_exports(warehouse, tmp_path / "landing", exports_loaded, seeds=[2], rows=1500)
        after = client.get("/metrics/resumo")  # the very next request
        assert after.headers["x-cache"] == "miss"
        with warehouse.connect() as conn:
            total = conn.exec_driver_sql("SELECT SUM(valor_usd) FROM stg.exportacao").scalar_one()
        assert Decimal(after.json()["totalUsd"]) == Decimal(str(total)).quantize(
            Decimal(after.json()["totalUsd"])
        )
        assert Decimal(after.json()["totalUsd"]) > Decimal(before["totalUsd"])
        assert client.get("/v1/exports/resumo").json()["total_usd"] == after.json()["totalUsd"]


def test_v1_answers_in_snake_case_what_the_seed_paths_answer(
    warehouse: WarehouseResource, exports_loaded: DagsterInstance
) -> None:
    with TestClient(create_app(warehouse.url)) as client:
        seed, v1 = client.get("/metrics/resumo").json(), client.get("/v1/exports/resumo").json()
        assert set(seed) == {
            "totalUsd",
            "totalKg",
            "paisesCount",
            "setoresCount",
            "anos",
            "updatedAt",
            "filters",
        }
        assert v1 == {
            "total_usd": seed["totalUsd"], "total_kg": seed["totalKg"], "paises_count": seed["paisesCount"],
            "setores_count": seed["setoresCount"], "anos": seed["anos"], "updated_at": seed["updatedAt"],
            "filters": seed["filters"],
        }  # fmt: skip
        paises = client.get("/v1/exports/pais", params={"limit": 3}).json()
        assert [p["pais"] for p in paises] == [p["pais"] for p in client.get("/metrics/pais?limit=3").json()]
        assert all("total_usd" in p and "totalUsd" not in p for p in paises)
        schema = client.get("/openapi.json").json()
        v1_schema = schema["paths"]["/v1/exports/resumo"]["get"]["responses"]["200"]["content"]
        name = v1_schema["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        assert set(schema["components"]["schemas"][name]["properties"]) == set(v1)
        assert "alias" in schema["paths"]["/metrics/resumo"]["get"]["description"]


@pytest.fixture
def with_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("API_AUTH", "true")
    monkeypatch.setenv(
        "API_KEYS", f"dash:viewer:{hash_key(VIEWER_KEY)},oncall:ops+viewer:{hash_key(OPS_KEY)}"
    )
    monkeypatch.setenv("API_RATE_LIMIT", "off")


def test_keys_and_roles(
    warehouse: WarehouseResource, exports_loaded: DagsterInstance, with_keys: None
) -> None:
    with TestClient(create_app(warehouse.url)) as client:
        assert client.get("/health").status_code in (200, 503) and client.get("/ready").status_code == 200
        assert client.get("/openapi.json").status_code == 200
        missing = client.get("/metrics/resumo")
        assert missing.status_code == 401 and "www-authenticate" in missing.headers
        assert client.get("/metrics/resumo", headers={"X-API-Key": "not-a-key"}).status_code == 401
        viewer = {"X-API-Key": VIEWER_KEY}
        assert client.get("/metrics/resumo", headers=viewer).status_code == 200
        assert (
            client.get("/v1/exports/resumo", headers={"Authorization": f"Bearer {VIEWER_KEY}"}).status_code
            == 200
        )
        refused = client.get("/ops/incidents", headers=viewer)
        assert refused.status_code == 403 and "ops" in refused.json()["detail"]
        assert client.get("/v1/ops/incidents", headers=viewer).status_code == 403
        assert client.get("/ops/incidents", headers={"X-API-Key": OPS_KEY}).status_code == 200
        # A cached answer is never handed to a client without a key.
        assert client.get("/metrics/resumo", headers=viewer).status_code == 200
        assert client.get("/metrics/resumo").status_code == 401
        operation = client.get("/openapi.json").json()["paths"]["/ops/incidents"]["get"]
        assert {"401", "403", "429"} <= set(operation["responses"]) and operation["security"]


def test_rate_limit_answers_429_with_retry_after(
    warehouse: WarehouseResource,
    exports_loaded: DagsterInstance,
    with_keys: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("API_RATE_LIMIT", "3/minute")
    with TestClient(create_app(warehouse.url)) as client:
        viewer, ops = {"X-API-Key": VIEWER_KEY}, {"X-API-Key": OPS_KEY}
        assert [client.get("/metrics/resumo", headers=viewer).status_code for _ in range(3)] == [200] * 3
        limited = client.get("/metrics/resumo", headers=viewer)
        assert limited.status_code == 429
        assert 1 <= int(limited.headers["retry-after"]) <= 60
        assert client.get("/metrics/resumo", headers=ops).status_code == 200  # per key, not global


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_prometheus_exposition_parses_and_counts(
    warehouse: WarehouseResource, exports_loaded: DagsterInstance
) -> None:
    with TestClient(create_app(warehouse.url)) as client:
        for _ in range(3):
            assert client.get("/metrics/pais", params={"limit": 2}).status_code == 200
        assert client.get("/metrics/resumo", params={"ano": 1800}).status_code == 422
        first = _samples(client.get("/prometheus").text)
        ok = (
            "afluente_http_requests_total",
            (("method", "GET"), ("route", "/metrics/pais"), ("status", "200")),
        )
        bad = (
            "afluente_http_requests_total",
            (("method", "GET"), ("route", "/metrics/resumo"), ("status", "422")),
        )
        assert first[ok] == 3 and first[bad] == 1
        count = (
            "afluente_http_request_duration_seconds_count",
            (("method", "GET"), ("route", "/metrics/pais")),
        )
        assert first[count] == 3
        dialect = warehouse.dialect
        assert first[("afluente_db_query_duration_seconds_count", (("dialect", dialect),))] >= 1
        # Pipeline gauges read from the warehouse: rejects per table, present even when zero.
        rejects = {labels: v for (name, labels), v in first.items() if name == "afluente_rows_rejected"}
        assert (("table", "raw.exportacao_rejects"),) in rejects

        client.get("/metrics/pais", params={"limit": 2})
        second = _samples(client.get("/prometheus").text)
        assert second[ok] == 4
