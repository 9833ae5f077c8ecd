"""The command API with one synchronous INSERT per command instead of a Kafka produce (bench baseline).

Served by ``bench.commands_load`` next to the real app: same routes, validation, correlation ids and
answers; only what a request waits for differs (a committed PostgreSQL row instead of the broker's
acknowledgement). Kept light: uvicorn workers import only this module and the API.
"""

from __future__ import annotations

import anyio.to_thread
import orjson
import sqlalchemy as sa
from fastapi import FastAPI

from api.app import create_app
from api.commands import CommandBus, store_from_settings
from resources.settings import SubscriptionsSettings, WarehouseSettings

TABLE_DDL = (
    "CREATE TABLE IF NOT EXISTS bench_commands (correlation_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, "
    "event JSONB NOT NULL, stored_at TIMESTAMPTZ NOT NULL DEFAULT now())"
)


class InsertSink:
    """Each command is one INSERT in its own transaction, committed before the 202 (a worker thread waits)."""

    def __init__(self, url: str, pool_size: int = 20) -> None:
        self.engine = sa.create_engine(url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True)

    async def deliver(self, key: bytes, value: bytes, headers: dict[str, bytes]) -> None:
        await anyio.to_thread.run_sync(self._insert, key, value)

    def _insert(self, key: bytes, value: bytes) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO bench_commands (correlation_id, user_id, event) "
                    "VALUES (:cid, :user_id, CAST(:event AS JSONB))"
                ),
                {
                    "cid": orjson.loads(value)["correlation_id"],
                    "user_id": key.decode(),
                    "event": value.decode(),
                },
            )

    def close(self) -> None:
        self.engine.dispose()


def baseline_app() -> FastAPI:
    """``create_app()`` whose command bus writes to ``bench_commands`` in ``WAREHOUSE_URL``."""
    app = create_app()
    sink = InsertSink(WarehouseSettings.current().url)
    cache_size = SubscriptionsSettings.current().idempotency_cache_size
    app.state.subscription_commands = CommandBus(sink, cache_size, store_from_settings())
    return app
