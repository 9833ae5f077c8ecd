"""A few autocommit psycopg ``AsyncConnection``s of one event loop that outlive a PostgreSQL restart.

A restart kills every pooled connection, and psycopg only learns it when one is used. So a connection
that sat idle is checked (an empty query) before it is reused, and a statement that failed because a
reused connection was dead is repeated once on a new one when the caller says it is safe to repeat:
once the server is back, no statement fails for it — without a round trip per statement under load.
Dagster-free (the read API uses it through the idempotency store).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

import psycopg

log = logging.getLogger(__name__)

IDLE_CHECK_S = 2.0  # idle longer than this, checked before reuse: under load (reused sooner) never
CHECK_TIMEOUT_S = 2.0  # an answer to an empty query takes milliseconds; none in this: dead, replaced

Connection = psycopg.AsyncConnection[Any]


class ConnectionsBusyError(RuntimeError):
    """Every connection stayed busy for the checkout timeout: the caller should retry later."""


class LoopConnections:
    """Up to ``size`` autocommit connections of the running event loop, opened when first needed.

    A free slot is an open connection (with when it was last used) or ``None`` (open one); LIFO, so a
    quiet process keeps using few. A connection that broke, or whose statement was interrupted
    (cancelled), is dropped, not reused.
    """

    def __init__(self, conninfo: str, size: int, checkout_timeout_s: float) -> None:
        self.conninfo = conninfo
        self.checkout_timeout_s = checkout_timeout_s
        self.loop = asyncio.get_running_loop()
        self.open: set[Connection] = set()
        self._free: asyncio.LifoQueue[tuple[Connection | None, float]] = asyncio.LifoQueue()
        for _ in range(size):
            self._free.put_nowait((None, 0.0))

    async def execute(
        self, sql: str, params: Mapping[str, Any], repeatable: bool = False
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Run ``sql`` (one transaction): its rows and rowcount. ``repeatable``: running it twice is
        harmless, so a dead reused connection costs a repeat on a new one instead of an error."""
        try:
            async with asyncio.timeout(self.checkout_timeout_s):
                conn, last_used = await self._free.get()
        except TimeoutError as exc:
            raise ConnectionsBusyError(
                f"no connection free in {self.checkout_timeout_s:.0f} s: retry"
            ) from exc
        try:
            if (
                conn is not None
                and time.monotonic() - last_used > IDLE_CHECK_S
                and not await self._alive(conn)
            ):
                conn = None
            reused = conn is not None
            if conn is None:
                conn = await self._connect()
            try:
                return await self._run(conn, sql, params)
            except psycopg.OperationalError as exc:
                if not (reused and repeatable and conn.broken):
                    raise
                log.info("postgres connection found dead (%s): repeating the statement on a new one", exc)
                self._drop(conn)
                conn = None
                conn = await self._connect()
                return await self._run(conn, sql, params)
        except BaseException as exc:
            if conn is not None and (conn.broken or not isinstance(exc, psycopg.Error)):
                self._drop(conn)
                conn = None
            raise
        finally:
            self._free.put_nowait((conn, time.monotonic()))

    async def _connect(self) -> Connection:
        conn = await psycopg.AsyncConnection.connect(self.conninfo, autocommit=True)
        self.open.add(conn)
        return conn

    @staticmethod
    async def _run(
        conn: Connection, sql: str, params: Mapping[str, Any]
    ) -> tuple[list[tuple[Any, ...]], int]:
        cursor = await conn.execute(sql, params)
        rows = await cursor.fetchall() if cursor.description else []
        return [tuple(row) for row in rows], cursor.rowcount

    async def _alive(self, conn: Connection) -> bool:
        """Whether ``conn`` answers an empty query (what psycopg_pool's check does); dropped if not."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT_S):
                await conn.execute("")
            return True
        except (psycopg.Error, TimeoutError) as exc:
            log.info("postgres connection idle and dead (%s): replaced", exc)
            self._drop(conn)
            return False

    def _drop(self, conn: Connection) -> None:
        self.open.discard(conn)
        conn.pgconn.finish()  # synchronous: also fine from another loop, once this one is gone

    def close(self) -> None:
        for conn in list(self.open):
            self._drop(conn)


__all__ = ["CHECK_TIMEOUT_S", "IDLE_CHECK_S", "ConnectionsBusyError", "LoopConnections"]
