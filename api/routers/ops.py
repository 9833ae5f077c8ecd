"""Operations: run-failure incidents, freshness of every aggregate, and the health report behind ``/health``.

Everything comes from warehouse tables, never from the Dagster instance: ``ops.incidents`` (written by
the run-failure sensor) and ``ops.freshness`` (written by ``aggregate_freshness_sensor``, see
``orchestration/freshness.py``). A table that does not exist yet means "nothing recorded": incidents
answer an empty list, freshness an ``unknown`` report. Freshness status is recomputed here from
``last_updated_at`` and the recorded threshold at request time, so a record that has not been
refreshed for a while can only make an aggregate look older than it is, never fresher.
"""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.db import Database, Db, NotMaterializedError, WarehouseUnavailableError
from api.schema import Instant, UtcDateTime
from resources.freshness_rules import FRESHNESS_TABLE, OPS_SCHEMA, freshness_status
from resources.settings import OpsSettings

router = APIRouter(prefix="/ops", tags=["ops"])

INCIDENTS = f"{OPS_SCHEMA}.incidents"
FRESHNESS = f"{OPS_SCHEMA}.{FRESHNESS_TABLE}"

Diagnosis = Literal["transient", "permanent", "unknown"]
FreshnessStatus = Literal["fresh", "stale", "never"]

_INCIDENT_COLUMNS = (
    "incident_id, detected_at, run_id, job_name, asset_keys, step_key, error_class, error_message, "
    "diagnosis, explanation, action, attempt, root_run_id, retry_run_id"
)


def now_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def is_unresolved(incident: dict[str, Any]) -> bool:
    """Needs a human: the sensor gave up, or a non-transient failure was not re-executed.

    A re-executed incident is being handled; a transient one left alone (action ``none``) is retried
    by Dagster's own run retries or superseded by a later run.
    """
    if incident["action"] == "gave_up":
        return True
    return incident["action"] != "reexecuted" and incident["diagnosis"] != "transient"


# ----- response models


class Incident(BaseModel):
    incident_id: str
    detected_at: UtcDateTime = Field(description="When the failure was detected (UTC)")
    run_id: str
    job_name: str | None = None
    asset_keys: str | None = Field(default=None, description="Comma-separated, e.g. raw/commerce_events")
    step_key: str | None = None
    error_class: str | None = None
    error_message: str | None = None
    diagnosis: str = Field(description="transient | permanent | unknown")
    explanation: str | None = None
    action: str = Field(description="reexecuted | gave_up | none")
    attempt: int
    root_run_id: str | None = None
    retry_run_id: str | None = None


class AggregateFreshness(BaseModel):
    asset_key: str = Field(examples=["mart/commerce_summary"])
    domain: str
    status: FreshnessStatus = Field(description="As of this request: fresh, stale or never (not built yet)")
    last_updated_at: UtcDateTime | None = Field(description="Latest materialization (UTC)")
    age_minutes: float | None
    threshold_minutes: int = Field(description="Configured threshold of the aggregate's domain")
    stale_at: UtcDateTime | None = Field(description="When the aggregate turns (or turned) stale (UTC)")
    checked_at: UtcDateTime = Field(description="When the freshness sensor last recorded this aggregate")


class FreshnessReport(BaseModel):
    status: Literal["ok", "degraded", "unknown"] = Field(
        description="degraded if any aggregate is stale or never built; unknown if nothing was recorded yet"
    )
    evaluated_at: UtcDateTime
    recorded_at: UtcDateTime | None = Field(description="Latest freshness sensor record (UTC)")
    counts: dict[str, int] = Field(description="Aggregates per status (before filters)")
    aggregates: list[AggregateFreshness]


class WarehouseCheck(BaseModel):
    status: Literal["ok", "down"]
    dialect: str
    detail: str | None = None


class FreshnessCheck(BaseModel):
    status: Literal["ok", "degraded", "unknown"]
    stale: list[str] = Field(default_factory=list)
    never: list[str] = Field(default_factory=list)
    recorded_at: UtcDateTime | None = None
    detail: str | None = None


class IncidentBrief(BaseModel):
    incident_id: str
    detected_at: UtcDateTime
    job_name: str | None = None
    diagnosis: str
    action: str


class IncidentsCheck(BaseModel):
    status: Literal["ok", "degraded", "unknown"]
    window_hours: int
    recent: int = Field(0, description="Incidents detected in the window")
    unresolved: int = Field(0, description="Of those, gave_up or not transient and not re-executed")
    latest_unresolved: list[IncidentBrief] = Field(default_factory=list)
    detail: str | None = None


class HealthChecks(BaseModel):
    warehouse: WarehouseCheck
    freshness: FreshnessCheck | None = None
    incidents: IncidentsCheck | None = None


class HealthReport(BaseModel):
    status: Literal["ok", "degraded", "down"] = Field(
        description="down: warehouse unreachable (HTTP 503); degraded: stale/never-built aggregates or "
        "unresolved recent incidents (HTTP 200); ok otherwise"
    )
    checks: HealthChecks


# ----- reading the records


def _freshness_rows(db: Database) -> list[dict[str, Any]] | None:
    """Rows of ``ops.freshness`` or None when the freshness sensor never wrote it."""
    try:
        return db.rows(
            "SELECT asset_key, domain, last_updated_at, threshold_minutes, checked_at "
            f"FROM {FRESHNESS} ORDER BY asset_key"
        )
    except NotMaterializedError:
        return None


def _with_status(row: dict[str, Any], now: datetime) -> dict[str, Any]:
    last = row["last_updated_at"]
    threshold = timedelta(minutes=int(row["threshold_minutes"]))
    return {
        **row,
        "threshold_minutes": int(row["threshold_minutes"]),
        "status": freshness_status(last, threshold, now),
        "age_minutes": round((now - last).total_seconds() / 60, 1) if last is not None else None,
        "stale_at": last + threshold if last is not None else None,
    }


def freshness_report(db: Database, now: datetime | None = None) -> dict[str, Any]:
    """Every recorded aggregate with its status as of ``now``."""
    now = now or now_utc()
    rows = _freshness_rows(db)
    if not rows:
        return {"status": "unknown", "evaluated_at": now, "recorded_at": None, "counts": {}, "aggregates": []}
    aggregates = [_with_status(row, now) for row in rows]
    counts = {status: 0 for status in ("fresh", "stale", "never")}
    for item in aggregates:
        counts[item["status"]] += 1
    status = "ok" if counts["fresh"] == len(aggregates) else "degraded"
    return {
        "status": status,
        "evaluated_at": now,
        "recorded_at": max((item["checked_at"] for item in aggregates), default=None),
        "counts": counts,
        "aggregates": aggregates,
    }


def _incident_rows(db: Database, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return db.rows(sql, params)
    except NotMaterializedError:
        return []  # the run-failure sensor creates ops.incidents with its first incident


def incidents_check(db: Database, now: datetime | None = None) -> dict[str, Any]:
    """Incidents of the health window; unresolved ones (see :func:`is_unresolved`) degrade health."""
    now = now or now_utc()
    window = OpsSettings.current().health_incident_window_hours
    recent = _incident_rows(
        db,
        f"SELECT incident_id, detected_at, job_name, diagnosis, action FROM {INCIDENTS} "
        "WHERE detected_at >= :since ORDER BY detected_at DESC, incident_id",
        {"since": now - timedelta(hours=window)},
    )
    unresolved = [row for row in recent if is_unresolved(row)]
    return {
        "status": "degraded" if unresolved else "ok",
        "window_hours": window,
        "recent": len(recent),
        "unresolved": len(unresolved),
        "latest_unresolved": unresolved[:5],
    }


def freshness_check(db: Database, now: datetime | None = None) -> dict[str, Any]:
    report = freshness_report(db, now)
    check: dict[str, Any] = {
        "status": report["status"],
        "stale": [a["asset_key"] for a in report["aggregates"] if a["status"] == "stale"],
        "never": [a["asset_key"] for a in report["aggregates"] if a["status"] == "never"],
        "recorded_at": report["recorded_at"],
    }
    if report["status"] == "unknown":
        check["detail"] = "no freshness recorded yet (aggregate_freshness_sensor has not run)"
    return check


def health_report(db: Database) -> tuple[int, HealthReport]:
    """HTTP status and report: down (503) without a warehouse, degraded or ok (200) otherwise."""
    try:
        db.rows("SELECT 1 AS ok")  # waits out a DuckDB writer's lock like every other read
    except Exception as exc:  # any driver error means the warehouse cannot be used
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        warehouse = WarehouseCheck(status="down", dialect=db.dialect, detail=first_line[:300])
        return 503, HealthReport(status="down", checks=HealthChecks(warehouse=warehouse))
    checks: dict[str, dict[str, Any]] = {}
    for name, probe in (("freshness", freshness_check), ("incidents", incidents_check)):
        try:
            checks[name] = probe(db)
        except WarehouseUnavailableError as exc:
            warehouse = WarehouseCheck(status="down", dialect=db.dialect, detail=str(exc)[:300])
            return 503, HealthReport(status="down", checks=HealthChecks(warehouse=warehouse))
        except Exception as exc:  # a broken record must not hide behind "ok"
            checks[name] = {"status": "unknown", "detail": f"{type(exc).__name__}: {str(exc)[:300]}"}
    checks["incidents"].setdefault("window_hours", OpsSettings.current().health_incident_window_hours)
    degraded = any(check["status"] != "ok" for check in checks.values())
    return 200, HealthReport(
        status="degraded" if degraded else "ok",
        checks=HealthChecks(
            warehouse=WarehouseCheck(status="ok", dialect=db.dialect),
            freshness=FreshnessCheck(**checks["freshness"]),
            incidents=IncidentsCheck(**checks["incidents"]),
        ),
    )


# ----- endpoints


@router.get(
    "/incidents",
    response_model=list[Incident],
    summary="Run-failure incidents, newest first (empty until the first failure is recorded)",
)
def incidents(
    db: Db,
    since: Annotated[
        Instant | None,
        Query(description="Only incidents detected at or after this instant (ISO 8601; naive = UTC)"),
    ] = None,
    diagnosis: Annotated[Diagnosis | None, Query(description="Only this diagnosis")] = None,
    limit: Annotated[int, Query(ge=1, le=1000, description="How many incidents (1-1000)")] = 100,
) -> list[dict[str, Any]]:
    conditions: list[str] = ["1 = 1"]
    params: dict[str, Any] = {"limit": limit}
    if since is not None:
        conditions.append("detected_at >= :since")
        params["since"] = since
    if diagnosis is not None:
        conditions.append("diagnosis = :diagnosis")
        params["diagnosis"] = diagnosis
    return _incident_rows(
        db,
        f"SELECT {_INCIDENT_COLUMNS} FROM {INCIDENTS} WHERE {' AND '.join(conditions)} "
        "ORDER BY detected_at DESC, incident_id LIMIT :limit",
        params,
    )


@router.get(
    "/freshness",
    response_model=FreshnessReport,
    summary="Freshness of every aggregate (marts and search indices) against its configured threshold",
)
def freshness(
    db: Db,
    status: Annotated[FreshnessStatus | None, Query(description="Only aggregates in this status")] = None,
    domain: Annotated[
        str | None, Query(pattern=r"^[A-Za-z0-9_]{1,64}$", description="Only this domain (asset group)")
    ] = None,
) -> dict[str, Any]:
    report = freshness_report(db)
    report["aggregates"] = [
        a
        for a in report["aggregates"]
        if (status is None or a["status"] == status) and (domain is None or a["domain"] == domain)
    ]
    return report
