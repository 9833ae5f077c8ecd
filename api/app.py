"""The read API application: ``create_app()`` mounts every router listed in :data:`ROUTER_MODULES`.

Each router module exposes ``router`` (a FastAPI ``APIRouter``); a domain adds its router by adding
its module to the list.
"""

import importlib
import os

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.db import Database, NotMaterializedError, WarehouseUnavailableError
from api.docs_offline import install_offline_docs
from api.routers.ops import HealthReport, health_report
from api.schema import NOT_PRODUCED
from api.serving import install_serving
from resources.settings import ApiSettings, LoggingSettings, WarehouseSettings
from resources.warehouse_core import dialect_of

# Routes are matched in this order, one by one: the write path (subscriptions commands, answered at
# thousands per second) comes first; mart reads are mostly answered by the cache before routing.
ROUTER_MODULES: tuple[str, ...] = (
    "api.routers.subscriptions",
    "api.routers.commerce",
    "api.routers.exports",
    "api.routers.insights",
    "api.routers.ops",
    "api.routers.subscription_metrics",
    "api.dashboard",
)


def create_app(warehouse_url: str | None = None) -> FastAPI:
    """Build the app over ``warehouse_url`` (default: the ``WAREHOUSE_URL`` setting)."""
    url = warehouse_url or WarehouseSettings.current().url
    database = Database(url)

    app = FastAPI(
        title="afluente read API",
        version="0.1.0",
        docs_url=None,  # served by install_offline_docs: FastAPI's own pages need a CDN
        redoc_url=None,
        description=(
            "Read-only metrics over the tables the afluente pipelines produce: commerce clickstream "
            "(`/api/metrics/...`) and export statistics (`/metrics/...`). Every query is parameterized; "
            "a table not produced yet answers 503. Amounts are exact decimal strings (`Money`); "
            "timestamps are UTC with `Z`."
        ),
        responses=NOT_PRODUCED,  # the handlers below can answer 503 on any route that reads the warehouse
    )
    app.state.db = database
    install_offline_docs(app)

    @app.exception_handler(NotMaterializedError)
    async def _not_materialized(request: Request, exc: NotMaterializedError) -> JSONResponse:
        return JSONResponse(
            status_code=503,
            content={"detail": f"data not available yet: {exc.detail}. Materialize the pipeline first."},
        )

    @app.exception_handler(WarehouseUnavailableError)
    async def _unavailable(request: Request, exc: WarehouseUnavailableError) -> JSONResponse:
        return JSONResponse(status_code=503, content={"detail": f"warehouse unavailable: {exc}"})

    @app.get(
        "/health",
        tags=["health"],
        summary="Health: ok, degraded (stale aggregates / unresolved incidents) or down (no warehouse)",
        response_model=HealthReport,
        responses={503: {"model": HealthReport, "description": "Warehouse unreachable (status down)"}},
    )
    def health() -> JSONResponse:
        code, report = health_report(database)
        return JSONResponse(status_code=code, content=report.model_dump(mode="json"))

    @app.get(
        "/ready",
        tags=["health"],
        summary="Readiness: the warehouse answers",
        responses={503: {"description": "Warehouse unreachable"}},
    )
    def ready() -> JSONResponse:
        try:
            database.ping()
        except Exception as exc:  # any driver error means "not ready"
            return JSONResponse(
                status_code=503,
                content={"status": "unavailable", "warehouse": database.dialect, "detail": str(exc)[:300]},
            )
        return JSONResponse(content={"status": "ready", "warehouse": database.dialect})

    for module_name in ROUTER_MODULES:
        app.include_router(importlib.import_module(module_name).router)
    install_serving(app, database, ROUTER_MODULES)
    return app


def main() -> None:
    """``python -m api``: serve with uvicorn on ``API_HOST``:``API_PORT`` (default 127.0.0.1:8000)."""
    import logging.config

    import uvicorn

    from resources.json_logging import uvicorn_log_config

    settings, logging_settings = ApiSettings.current(), LoggingSettings.current()
    level = os.environ.get("API_LOG_LEVEL") or logging_settings.level
    # One JSON object per line (AFLUENTE_LOG_FORMAT=text for humans) for uvicorn and the platform loggers,
    # configured before create_app() so its own warnings are structured too.
    log_config = uvicorn_log_config(level, logging_settings.format)
    logging.config.dictConfig(log_config)
    # Several worker processes on PostgreSQL (one per core by default), each with its own app, cache and
    # pool; one on DuckDB, whose file admits a single process at a time.
    workers = settings.workers or (
        1 if dialect_of(WarehouseSettings.current().url) == "duckdb" else os.cpu_count() or 1
    )
    uvicorn.run(
        "api.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=workers,
        log_level=level.lower(),
        log_config=log_config,
    )
