"""Fault drill: the PostgreSQL idempotency store across a restart of its server.

Every pooled connection dies with the server, and psycopg only learns it when one is used. The store
checks a connection that sat idle before reusing it, and repeats a statement once on a new connection
when a reused one turns out to be dead: once the server is back, no keyed command gets a 503.

The restarted server is a PRIVATE instance (tests/fixtures/private_services.py), never the shared one.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from uuid import uuid4

import pytest

from resources import pg_async_connections
from resources.idempotency_store import PostgresIdempotencyStore
from resources.warehouse_core import dispose_engines
from services import ConnectionInfo
from tests.fixtures.private_services import PrivateServices, private_services

pytestmark = [pytest.mark.faults, pytest.mark.timeout(300)]

POOL = 10  # the store's connections per process (_PG_CONNECTIONS)


@pytest.fixture
def private_pg(postgres_server: ConnectionInfo) -> Iterator[PrivateServices]:
    with private_services("postgres") as private:
        yield private
    dispose_engines()


def _cid() -> str:
    return str(uuid4())


CHECKED = "idle and dead"  # the two ways a dead connection is found (pg_async_connections' log lines)
REPEATED = "repeating the statement"


@pytest.mark.parametrize(
    ("idle_check_s", "found_by"),
    [(0.0, CHECKED), (3600.0, REPEATED)],
    ids=["checked-before-reuse", "statement-repeated"],
)
def test_a_postgres_restart_costs_keyed_commands_nothing(
    private_pg: PrivateServices,
    idle_check_s: float,
    found_by: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Each way alone covers a restart: every connection checked before reuse (as after a quiet
    moment), or none (as under load), where the first statement on each dead one is repeated."""
    monkeypatch.setattr(pg_async_connections, "IDLE_CHECK_S", idle_check_s)
    caplog.set_level(logging.INFO, logger=pg_async_connections.__name__)
    url = private_pg.up("postgres")["postgres"].url
    store = PostgresIdempotencyStore(url, takeover_s=30.0, retention_s=3600.0)
    produced_cid, pending_cid = _cid(), _cid()

    async def command(cid: str) -> bool:
        reservation = await store.reserve(cid, "fp")
        await asyncio.sleep(0.05)  # producing: keeps several connections busy at once
        await store.mark_produced(reservation)
        return reservation.produced

    async def before() -> tuple[str, str]:
        assert await asyncio.gather(*(command(_cid()) for _ in range(3 * POOL))) == [False] * (3 * POOL)
        first = await store.reserve(produced_cid, "fp")
        await store.mark_produced(first)
        pending = await store.reserve(pending_cid, "fp")  # its request is still producing
        return first.token, pending.token

    async def after(produced_token: str) -> None:
        fresh = await asyncio.wait_for(asyncio.gather(*(command(_cid()) for _ in range(2 * POOL))), 60)
        assert fresh == [False] * (2 * POOL)  # each one reserved and produced: none unavailable
        replay = await asyncio.wait_for(store.reserve(produced_cid, "fp"), 10)
        assert replay.produced and replay.token == produced_token  # answered, not produced again
        waiting = asyncio.create_task(store.reserve(pending_cid, "fp"))
        await asyncio.sleep(0.5)
        assert not waiting.done()  # still owned by its request (takeover after 30 s), not re-owned
        waiting.cancel()

    async def scenario() -> None:
        produced_token, _ = await before()
        private_pg.down("postgres")
        started = time.monotonic()
        private_pg.up("postgres")
        print(f"private PostgreSQL restarted in {time.monotonic() - started:.1f} s")
        try:
            await after(produced_token)
        finally:
            await store.aclose()

    asyncio.run(scenario())
    found = [r.getMessage() for r in caplog.records if r.name == pg_async_connections.__name__]
    assert sum(found_by in m for m in found) >= 2  # several pooled connections died with the server
    assert all(found_by in m for m in found)  # and only this way found them
