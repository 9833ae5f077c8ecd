"""Operations API and freshness on both engines: incidents, freshness, health, and real Dagster evaluation."""

import datetime as dt
import socket
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import (
    AssetCheckKey,
    AssetCheckSeverity,
    AssetKey,
    AssetSelection,
    DagsterInstance,
    SensorResult,
    build_sensor_context,
    materialize,
)
from fastapi.testclient import TestClient

from api.app import create_app
from orchestration.definitions import defs, sql_model_assets
from orchestration.freshness import (
    FRESHNESS_CHECK_NAME,
    FRESHNESS_SENSOR_NAME,
    FreshnessEvaluation,
    aggregates_of,
    build_freshness_checks,
    build_freshness_sensor,
    record_freshness,
    utc_now,
)
from resources.warehouse import WarehouseResource
from sensors.incidents_store import INCIDENT_COLUMNS, ensure_incidents_table

GERAL = AssetKey(["mart", "mv_resumo_geral"])
SUMMARY = AssetKey(["mart", "commerce_summary"])
USAGE_DAILY = AssetKey(["mart", "usage_daily"])


def incident(incident_id: str, detected_at: dt.datetime, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "incident_id": incident_id,
        "detected_at": detected_at,
        "run_id": f"run-{incident_id}",
        "job_name": "commerce_kafka_ingest",
        "asset_keys": "raw/commerce_events,raw/commerce_dead_letter",
        "step_key": "raw_commerce_events",
        "error_class": "ConnectionError",
        "error_message": "broker went away",
        "diagnosis": "transient",
        "explanation": "network errors are retried",
        "action": "reexecuted",
        "attempt": 1,
        "root_run_id": f"run-{incident_id}",
        "retry_run_id": f"retry-{incident_id}",
    }
    row.update(values)
    return row


def insert_incidents(warehouse: WarehouseResource, rows: list[dict[str, Any]]) -> None:
    """Rows in the table the run-failure sensor creates, in its column order."""
    with warehouse.begin() as conn:
        conn.execute(sa.schema.CreateSchema("ops", if_not_exists=True))
        ensure_incidents_table(conn)  # the run-failure sensor's own DDL: the API reads what it writes
        names = ", ".join(INCIDENT_COLUMNS)
        values = ", ".join(f":{c}" for c in INCIDENT_COLUMNS)
        conn.execute(sa.text(f"INSERT INTO ops.incidents ({names}) VALUES ({values})"), rows)


def record(warehouse: WarehouseResource, ages: dict[AssetKey, dt.timedelta | None]) -> dict[AssetKey, Any]:
    """Write ops.freshness with the real writer: every aggregate, last updated ``age`` ago (None = never)."""
    now = utc_now()
    aggregates = {agg.key: agg for agg in aggregates_of(defs)}
    evaluations = []
    for key, agg in aggregates.items():
        age = ages.get(key, dt.timedelta(minutes=1))
        evaluations.append(FreshnessEvaluation(agg, None if age is None else now - age, now))
    record_freshness(warehouse, evaluations, prune=True)
    return aggregates


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def client(warehouse: WarehouseResource) -> Iterator[TestClient]:
    with TestClient(create_app(warehouse.url)) as test_client:
        yield test_client


# ----- /ops/incidents


def test_incidents_empty_without_table_then_as_stored_with_filters(
    client: TestClient, warehouse: WarehouseResource
) -> None:
    assert client.get("/ops/incidents").json() == []

    base = dt.datetime(2024, 5, 1, 12, 0, 0)
    rows = [
        incident("i1", base),
        incident(
            "i2",
            base + dt.timedelta(hours=1),
            diagnosis="permanent",
            action="gave_up",
            error_class="KeyError",
            error_message="'price'",
            explanation="a code or data error does not heal by retrying",
            attempt=2,
            root_run_id="run-i1",
            retry_run_id=None,
            step_key=None,
        ),
        incident("i3", base + dt.timedelta(hours=2), diagnosis="unknown", action="none", retry_run_id=None),
    ]
    insert_incidents(warehouse, rows)

    got = client.get("/ops/incidents").json()
    assert [g["incident_id"] for g in got] == ["i3", "i2", "i1"]  # newest first
    stored = {r["incident_id"]: r for r in rows}
    for item in got:
        expected = stored[item["incident_id"]]
        # Stored as naive UTC, served with its zone: a valid RFC 3339 date-time.
        assert item == {**expected, "detected_at": expected["detected_at"].isoformat() + "Z"}

    permanent = client.get("/ops/incidents", params={"diagnosis": "permanent"}).json()
    assert [i["incident_id"] for i in permanent] == ["i2"]
    assert permanent[0]["retry_run_id"] is None and permanent[0]["asset_keys"] == rows[0]["asset_keys"]
    since = client.get("/ops/incidents", params={"since": "2024-05-01T13:00:00"}).json()
    assert [i["incident_id"] for i in since] == ["i3", "i2"]
    # An aware instant is converted to UTC: 15:00+02:00 is 13:00 UTC.
    aware = client.get("/ops/incidents", params={"since": "2024-05-01T15:00:00+02:00"}).json()
    assert [i["incident_id"] for i in aware] == ["i3", "i2"]
    both = client.get("/ops/incidents", params={"since": "2024-05-01T12:30:00", "diagnosis": "transient"})
    assert both.json() == []
    assert [i["incident_id"] for i in client.get("/ops/incidents", params={"limit": 1}).json()] == ["i3"]
    # Instants beyond the calendar's ends once converted to UTC are clamped, not an overflow (500).
    everything = client.get("/ops/incidents", params={"since": "0001-01-01T00:00:00+05:00"})
    assert [i["incident_id"] for i in everything.json()] == ["i3", "i2", "i1"]
    assert client.get("/ops/incidents", params={"since": "9999-12-31T23:59:59-05:00"}).json() == []

    for bad in (
        {"diagnosis": "flaky"},
        {"limit": 0},
        {"limit": 1001},
        {"limit": "many"},
        {"since": "yesterday"},
        {"since": "0"},  # not a Unix timestamp: only ISO 8601 is a date here
        {"since": "0.5"},
        {"since": "2024-05-01T12:00:00\x00"},
    ):
        response = client.get("/ops/incidents", params=bad)
        assert response.status_code == 422, bad
        assert [error["loc"][-1] for error in response.json()["detail"]] == [next(iter(bad))], bad


# ----- /ops/freshness


def test_freshness_statuses_follow_the_configured_thresholds(
    client: TestClient, warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    unknown = client.get("/ops/freshness").json()
    assert (unknown["status"], unknown["aggregates"]) == ("unknown", [])

    monkeypatch.setenv("EXPORTS_FRESHNESS_HOURS", "2")
    monkeypatch.setenv("COMMERCE_FRESHNESS_MINUTES", "30")
    monkeypatch.setenv("USAGE_FRESHNESS_MINUTES", "45")
    monkeypatch.setenv("FRESHNESS_DEFAULT_MINUTES", "50")  # every other domain (e.g. subscriptions)
    aggregates = record(
        warehouse,
        {
            GERAL: dt.timedelta(hours=3),  # older than 2 h: stale
            SUMMARY: dt.timedelta(minutes=10),  # within 30 min: fresh
            AssetKey(["mart", "commerce_top_products"]): dt.timedelta(minutes=31),  # stale
            USAGE_DAILY: None,  # never built
        },
    )
    report = client.get("/ops/freshness").json()
    by_key = {a["asset_key"]: a for a in report["aggregates"]}
    assert set(by_key) == {key.to_user_string() for key in aggregates}
    assert by_key["mart/mv_resumo_geral"]["status"] == "stale"
    assert by_key["mart/commerce_summary"]["status"] == "fresh"
    assert by_key["mart/commerce_top_products"]["status"] == "stale"
    assert by_key["mart/usage_daily"]["status"] == "never"
    assert by_key["mart/usage_daily"]["last_updated_at"] is None
    expected_minutes = {"exports": 120, "commerce": 30, "usage": 45}
    for item in report["aggregates"]:
        assert item["threshold_minutes"] == expected_minutes.get(item["domain"], 50), item["asset_key"]
    assert 9.5 <= by_key["mart/commerce_summary"]["age_minutes"] <= 11
    assert report["status"] == "degraded"
    assert report["counts"] == {"fresh": len(aggregates) - 3, "stale": 2, "never": 1}

    stale = client.get("/ops/freshness", params={"status": "stale"}).json()["aggregates"]
    assert {a["asset_key"] for a in stale} == {"mart/mv_resumo_geral", "mart/commerce_top_products"}
    commerce = client.get("/ops/freshness", params={"domain": "commerce"}).json()["aggregates"]
    assert commerce and {a["domain"] for a in commerce} == {"commerce"}
    assert client.get("/ops/freshness", params={"status": "old"}).status_code == 422
    assert client.get("/ops/freshness", params={"domain": "x;drop"}).status_code == 422


# ----- /health


def test_health_ok_then_degraded_then_down(
    client: TestClient, warehouse: WarehouseResource, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Nothing recorded yet: freshness is unknown, which is not "ok".
    first = client.get("/health")
    assert first.status_code == 200 and first.json()["status"] == "degraded"
    assert first.json()["checks"]["freshness"]["status"] == "unknown"

    record(warehouse, {})  # every aggregate built a minute ago
    now = utc_now()
    insert_incidents(
        warehouse,
        [
            incident("old", now - dt.timedelta(hours=30), action="gave_up", retry_run_id=None),
            incident("retried", now - dt.timedelta(minutes=5), action="reexecuted"),
            # Left to Dagster's own run retries: transient, action none, not a human's problem.
            incident("run-retries", now - dt.timedelta(minutes=4), action="none", retry_run_id=None),
        ],
    )
    ok = client.get("/health")
    assert ok.status_code == 200
    body = ok.json()
    assert body["status"] == "ok", body
    assert body["checks"]["warehouse"] == {"status": "ok", "dialect": warehouse.dialect, "detail": None}
    assert body["checks"]["incidents"]["recent"] == 2 and body["checks"]["incidents"]["unresolved"] == 0

    record(warehouse, {GERAL: dt.timedelta(hours=27)})  # past EXPORTS_FRESHNESS_HOURS (26)
    stale = client.get("/health")
    assert stale.status_code == 200 and stale.json()["status"] == "degraded"
    assert stale.json()["checks"]["freshness"]["stale"] == ["mart/mv_resumo_geral"]

    record(warehouse, {})
    assert client.get("/health").json()["status"] == "ok"
    insert_incidents(
        warehouse,
        [incident("permanent", now - dt.timedelta(minutes=2), diagnosis="permanent", action="none")],
    )
    degraded = client.get("/health").json()
    assert degraded["status"] == "degraded"
    assert degraded["checks"]["freshness"]["status"] == "ok"
    incidents = degraded["checks"]["incidents"]
    assert (incidents["status"], incidents["unresolved"]) == ("degraded", 1)
    assert incidents["latest_unresolved"][0]["incident_id"] == "permanent"
    insert_incidents(warehouse, [incident("given-up", now - dt.timedelta(minutes=1), action="gave_up")])
    incidents = client.get("/health").json()["checks"]["incidents"]
    assert [i["incident_id"] for i in incidents["latest_unresolved"]] == ["given-up", "permanent"]
    monkeypatch.setenv("OPS_HEALTH_INCIDENT_WINDOW_HOURS", "0")  # the window passes: healthy again
    assert client.get("/health").json()["status"] == "ok"

    down_url = f"postgresql+psycopg://afluente:afluente@127.0.0.1:{closed_port()}/afluente"
    with TestClient(create_app(down_url)) as down_client:
        down = down_client.get("/health")
        assert down.status_code == 503
        assert down.json()["status"] == "down"
        assert down.json()["checks"]["warehouse"]["status"] == "down"
        assert down_client.get("/ready").status_code == 503


def test_openapi_documents_the_ops_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/ops/incidents", "/ops/freshness", "/health"} <= set(paths)
    health = paths["/health"]["get"]["responses"]
    assert {"200", "503"} <= set(health)
    params = {p["name"] for p in paths["/ops/incidents"]["get"]["parameters"]}
    assert params == {"since", "diagnosis", "limit"}


# ----- freshness through real Dagster machinery


def _geral_asset():
    return next(a for a in sql_model_assets if GERAL in a.keys)


def _seed_staging(warehouse: WarehouseResource) -> None:
    with warehouse.begin() as conn:
        conn.execute(sa.schema.CreateSchema("stg", if_not_exists=True))
        conn.exec_driver_sql(
            "CREATE TABLE stg.exportacao (ano INTEGER, mes INTEGER, pais VARCHAR(100), setor VARCHAR(100), "
            "valor_usd NUMERIC(18, 2), peso_kg NUMERIC(18, 3))"
        )
        conn.exec_driver_sql(
            "INSERT INTO stg.exportacao VALUES (2024, 1, 'Chile', 'Soja', 10.50, 2.000), "
            "(2023, 5, 'China', 'Minerio', 20.00, 3.500)"
        )


def test_freshness_checks_and_sensor_on_a_real_instance(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, client: TestClient
) -> None:
    aggregates = aggregates_of(defs)
    geral = next(a for a in aggregates if a.key == GERAL)
    assert geral.threshold_minutes == 26 * 60
    check_key = AssetCheckKey(GERAL, FRESHNESS_CHECK_NAME)
    _seed_staging(warehouse)

    # Materialize the mart with its freshness check in one run: the check runs after the build and passes.
    result = materialize(
        [_geral_asset(), build_freshness_checks([geral])],
        instance=dagster_instance,
        resources={"warehouse": warehouse},
    )
    assert result.success
    evaluations = {e.asset_check_key: e for e in result.get_asset_check_evaluations()}
    assert evaluations[check_key].passed
    assert evaluations[check_key].severity == AssetCheckSeverity.WARN
    assert any(key.name.startswith("not_null") for key in evaluations)  # data tests ran too (ERROR)

    # The code location's sensor: evaluates every aggregate from the instance, writes ops.freshness.
    sensor = next(s for s in defs.sensors if s.name == FRESHNESS_SENSOR_NAME)
    context = build_sensor_context(instance=dagster_instance, resources={"warehouse": warehouse})
    tick = sensor(context)
    assert isinstance(tick, SensorResult)
    by_key = {e.asset_key: e for e in tick.asset_events}
    assert set(by_key) == {a.key for a in aggregates}  # first tick reports every check
    assert by_key[GERAL].passed and by_key[GERAL].severity == AssetCheckSeverity.WARN
    assert not by_key[SUMMARY].passed and by_key[SUMMARY].metadata["status"].value == "never"
    assert all(e.severity == AssetCheckSeverity.WARN for e in tick.asset_events)
    # Reported the way the daemon reports sensor asset events; the instance stores it as the check's latest.
    dagster_instance.report_runless_asset_event(by_key[GERAL])
    latest = dagster_instance.event_log_storage.get_latest_asset_check_execution_by_key([check_key])
    assert latest[check_key].status.value == "SUCCEEDED"

    api = {a["asset_key"]: a for a in client.get("/ops/freshness").json()["aggregates"]}
    assert api["mart/mv_resumo_geral"]["status"] == "fresh"
    assert api["mart/mv_resumo_geral"]["threshold_minutes"] == 26 * 60
    assert api["mart/commerce_summary"]["status"] == "never"

    # Nothing changed: the next tick reports no check evaluation (only state changes are reported).
    again = sensor(
        build_sensor_context(
            instance=dagster_instance, cursor=tick.cursor, resources={"warehouse": warehouse}
        )
    )
    assert isinstance(again, SensorResult) and list(again.asset_events) == []

    # 27 hours later (past EXPORTS_FRESHNESS_HOURS=26): the same materialization is now stale -> WARN.
    later = build_freshness_sensor(aggregates, clock=lambda: utc_now() + dt.timedelta(hours=27))
    late_tick = later(
        build_sensor_context(
            instance=dagster_instance, cursor=tick.cursor, resources={"warehouse": warehouse}
        )
    )
    assert isinstance(late_tick, SensorResult)
    late = {e.asset_key: e for e in late_tick.asset_events}
    assert set(late) == {GERAL}
    assert not late[GERAL].passed and late[GERAL].severity == AssetCheckSeverity.WARN
    assert late[GERAL].metadata["status"].value == "stale"
    with warehouse.connect() as conn:
        status = conn.execute(
            sa.text("SELECT status FROM ops.freshness WHERE asset_key = :k"), {"k": "mart/mv_resumo_geral"}
        ).scalar()
    assert status == "stale"

    # The check op, run on its own a day later, fails with WARN too (the run itself succeeds).
    checks_later = build_freshness_checks([geral], clock=lambda: utc_now() + dt.timedelta(hours=27))
    rerun = materialize(
        [_geral_asset(), checks_later],
        instance=dagster_instance,
        resources={"warehouse": warehouse},
        selection=AssetSelection.checks(check_key),
    )
    assert rerun.success
    (evaluation,) = rerun.get_asset_check_evaluations()
    assert (evaluation.asset_check_key, evaluation.passed) == (check_key, False)
    assert evaluation.severity == AssetCheckSeverity.WARN
    assert rerun.get_asset_materialization_events() == []  # only the check ran
