"""What the read API adds for real clients around the domain routers: ``/v1`` routes, access control,
an answer cache invalidated by rebuilds, and Prometheus metrics.

Order of the ASGI layers, outermost first: metrics (every answer counted, refusals and cached ones
included) → access (keys, roles, rate limits) → answer cache → the routes.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from api.access import AccessMiddleware, access_from_settings, document_security
from api.cache import CacheMiddleware, PostgresNotifyVersion, ResponseCache, version_source
from api.db import Database
from api.telemetry import MetricsMiddleware, install_metrics
from api.versioning import add_versioned
from resources.settings import ApiSettings, KafkaSettings

# Seed routers and their /v1 home.
V1_PREFIXES = {
    "api.routers.commerce": "/v1/commerce",
    "api.routers.exports": "/v1/exports",
    "api.routers.insights": "/v1/usage",
    "api.routers.ops": "/v1/ops",
    "api.routers.subscriptions": "/v1/subscriptions",
    "api.routers.subscription_metrics": "/v1/subscriptions/metrics",
}
# Answers that are functions of the marts only (the realtime view depends on the clock; insights read
# the search engine; ops tables change on every sensor tick).
CACHED_PREFIXES = (
    "/api/metrics",
    "/metrics",
    "/v1/commerce",
    "/v1/exports",
    "/subscriptions/metrics",
    "/v1/subscriptions/metrics",
)
UNCACHED_PATHS = ("/api/metrics/realtime", "/v1/commerce/realtime")


def install_serving(app: FastAPI, database: Database, router_modules: Iterable[str]) -> None:
    """Add the ``/v1`` routes, the cache, access control and metrics to ``app`` (see the module doc)."""
    routers = [(importlib.import_module(name).router, V1_PREFIXES.get(name)) for name in router_modules]
    for versioned in add_versioned(routers):
        app.include_router(versioned)

    settings = ApiSettings.current()
    if settings.cache:
        version = version_source(database.url)
        app.add_middleware(
            CacheMiddleware,
            cache=ResponseCache(max_entries=settings.cache_max_entries),
            version=version,
            prefixes=CACHED_PREFIXES,
            exclude=UNCACHED_PATHS,
        )
        if isinstance(version, PostgresNotifyVersion):
            _run_during_lifespan(app, version.start, version.close)
    control = access_from_settings()
    if control is not None:
        app.add_middleware(AccessMiddleware, control=control)
    kafka = KafkaSettings.current().bootstrap_servers if settings.metrics_kafka_lag else None
    metrics = install_metrics(database.warehouse.connect, database.warehouse.engine(), kafka)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.state.metrics = metrics

    if control is not None:  # the schema declares keys only where they are asked for
        generate = app.openapi

        def openapi() -> dict[str, Any]:
            if app.openapi_schema is None:
                document_security(generate())
            return app.openapi_schema or generate()

        app.openapi = openapi  # type: ignore[method-assign]


def _run_during_lifespan(app: FastAPI, start: Callable[[], None], stop: Callable[[], None]) -> None:
    """Start a background helper with the server and stop it on shutdown (wrapping any lifespan)."""
    inner = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(application: Any) -> AsyncIterator[Any]:
        start()
        try:
            async with inner(application) as state:
                yield state
        finally:
            stop()

    app.router.lifespan_context = lifespan
