"""Idempotency-Key reservations shared by every API worker, so a retry never produces a second event.

The command API derives a command's correlation id from (route, user, key); before producing a keyed
command a worker calls :meth:`IdempotencyStore.reserve`, which atomically either

* inserts a ``pending`` row: this request owns the command, produces it, then
  :meth:`~IdempotencyStore.mark_produced` (or :meth:`~IdempotencyStore.release` when Kafka refused it,
  so that the retry produces);
* finds the row ``produced`` with the same request fingerprint: the answer is a replay, nothing is
  produced; with another fingerprint: :class:`IdempotencyConflictError` (409);
* finds it ``pending``: another request is producing it. The caller waits (async polling) until it is
  produced, released, or older than the takeover age (at least one delivery attempt: the producer's
  timeout plus its grace), then takes it over and produces: a worker that died between reserving and
  producing loses no command. A duplicate event is therefore only possible when a worker died (or
  its store write failed) after Kafka had the event but before ``mark_produced``, or when a delivery
  that timed out reached the broker after all; both carry the same correlation id, which processing
  counts once.

Rows expire after the retention (then the key may name a new request); expired rows are deleted by
each process at most every few minutes, a bounded batch at a time, never on every request.

Backends, chosen by configuration (:func:`open_store`): PostgreSQL (``ops.command_idempotency`` in
the warehouse's server, declared through :mod:`resources.platform_tables`) or a SQLite file shared by
the workers of one host (when the warehouse is the embedded DuckDB, whose file only Dagster writes).
Both run the same statements (clock expressions and placeholder style aside); each step is one
statement in its own transaction. The protocol is async; a backend only runs one statement:
PostgreSQL on the event loop itself (psycopg's async connections, autocommit — no thread per call,
which capped a process at ~600 reservations/s), SQLite on a worker thread (its calls block). A
PostgreSQL restart costs no command once the server is back: idle connections are checked before
reuse, and a statement a dead reused connection failed is repeated once on a new one (every step is
safe to repeat: :data:`_REPEATABLE`; :mod:`resources.pg_async_connections`).
Dagster-free: the read API imports it.
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import sqlalchemy as sa
from psycopg.conninfo import make_conninfo

from resources.pg_async_connections import ConnectionsBusyError, LoopConnections
from resources.platform_tables import Index, PlatformTables, TableSpec, baseline, ensure_platform_tables
from resources.warehouse_core import Warehouse, dialect_of, duckdb_file

log = logging.getLogger(__name__)

IDEMPOTENCY_TABLES = PlatformTables(
    component="command_idempotency",
    tables=(
        TableSpec(
            "ops",
            "command_idempotency",
            (
                ("correlation_id", "TEXT NOT NULL"),
                ("fingerprint", "TEXT NOT NULL"),
                ("state", "TEXT NOT NULL"),  # pending | produced
                ("token", "TEXT NOT NULL"),  # the reserving request (release deletes only its own)
                ("reserved_at", "TIMESTAMPTZ NOT NULL"),
                ("produced_at", "TIMESTAMPTZ"),
            ),
            primary_key=("correlation_id",),
            pg_indexes=(Index("command_idempotency_reserved_at", ("reserved_at",)),),
        ),
    ),
    steps=(baseline("ops.command_idempotency as introduced"),),
)
_PURGE_BATCH = 5000
_MAX_POLL_S = 0.25
_PG_CONNECTIONS = 10  # per process, the warehouse engine's cap (pool_size 5 + max_overflow 5)
_PG_CONNECT_TIMEOUT_S = 5
_PG_CHECKOUT_TIMEOUT_S = 30.0  # all connections busy this long: unavailable (retry), not queued forever
PG_APPLICATION_NAME = "afluente-idempotency"  # how the store's sessions show in pg_stat_activity


class IdempotencyConflictError(ValueError):
    """An ``Idempotency-Key`` already named a different request (other payload or command)."""


class IdempotencyStoreUnavailableError(RuntimeError):
    """The store cannot be reached (or a reservation stayed contended): nothing was produced, retry."""


@dataclass(frozen=True)
class Reservation:
    """The outcome of :meth:`IdempotencyStore.reserve`: produce (``produced`` False) or replay."""

    correlation_id: str
    fingerprint: str
    token: str
    produced: bool  # an earlier request produced the event: answer without producing
    took_over: bool = False  # a pending reservation of a request that did not finish was taken over


@dataclass(frozen=True)
class _Dialect:
    now: str  # the current time, in the type of reserved_at
    age: str  # seconds since reserved_at
    cutoff: str  # reserved_at older than this is expired (:retention seconds)


_PG = _Dialect(
    now="clock_timestamp()",
    age="EXTRACT(EPOCH FROM clock_timestamp() - reserved_at)",
    cutoff="clock_timestamp() - make_interval(secs => :retention)",
)
_EPOCH_NOW = "((julianday('now') - 2440587.5) * 86400.0)"
_SQLITE = _Dialect(now=_EPOCH_NOW, age=f"({_EPOCH_NOW} - reserved_at)", cutoff=f"({_EPOCH_NOW} - :retention)")


def _statements(table: str, d: _Dialect) -> dict[str, str]:
    """The steps, with bound parameters only (``table`` and the clock expressions are constants)."""
    return {
        "insert": f"INSERT INTO {table} (correlation_id, fingerprint, state, token, reserved_at) "
        f"VALUES (:cid, :fp, 'pending', :token, {d.now}) ON CONFLICT (correlation_id) DO NOTHING "
        "RETURNING correlation_id",
        "read": f"SELECT fingerprint, state, token, {d.age} AS age FROM {table} WHERE correlation_id = :cid",
        "replace": f"UPDATE {table} SET fingerprint = :fp, state = 'pending', token = :token, "
        f"reserved_at = {d.now}, produced_at = NULL WHERE correlation_id = :cid AND token = :old "
        "RETURNING correlation_id",
        "produced": f"INSERT INTO {table} (correlation_id, fingerprint, state, token, reserved_at, "
        f"produced_at) VALUES (:cid, :fp, 'produced', :token, {d.now}, {d.now}) "
        "ON CONFLICT (correlation_id) DO UPDATE SET state = 'produced', produced_at = excluded.produced_at",
        "release": f"DELETE FROM {table} WHERE correlation_id = :cid AND token = :token "
        "AND state = 'pending'",
        "purge": f"DELETE FROM {table} WHERE correlation_id IN (SELECT correlation_id FROM {table} "
        f"WHERE reserved_at < {d.cutoff} LIMIT :limit)",
    }


# Statements safe to run twice (the first run may have committed before its connection died): each
# insert/replace carries this request's own token, and a reservation that finds a pending row with its
# own token knows it is its own (see _attempt); "produced" sets the same state again; "release" deletes
# only this token's pending row; "read" reads; "purge" deletes expired rows, whichever run deletes them.
_REPEATABLE = frozenset({"insert", "read", "replace", "produced", "release", "purge"})


class IdempotencyStore:
    """The reservation protocol over one backend (subclasses run one statement in one transaction)."""

    dialect: _Dialect
    unavailable: tuple[type[BaseException], ...] = ()

    def __init__(self, *, takeover_s: float, retention_s: float, purge_every_s: float | None = None) -> None:
        self.takeover_s = takeover_s
        self.retention_s = retention_s
        self.purge_every_s = min(600.0, retention_s / 4) if purge_every_s is None else purge_every_s
        self._next_purge = 0.0
        self._sql = _statements(self.table_name, self.dialect)

    table_name = "ops.command_idempotency"

    async def _execute(
        self, step: str, params: Mapping[str, Any], write: bool
    ) -> tuple[list[tuple[Any, ...]], int]:
        """Run one statement in its own transaction: its rows (RETURNING / SELECT) and rowcount."""
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections (the store reconnects if used again)."""

    async def _step(
        self, step: str, params: Mapping[str, Any], write: bool = True
    ) -> tuple[list[tuple[Any, ...]], int]:
        try:
            return await self._execute(step, params, write)
        except self.unavailable as exc:
            raise IdempotencyStoreUnavailableError(f"idempotency store unavailable: {exc}") from exc

    async def _run(self, step: str, params: Mapping[str, Any], write: bool = True) -> list[tuple[Any, ...]]:
        return (await self._step(step, params, write))[0]

    async def _rowcount(self, step: str, params: Mapping[str, Any]) -> int:
        return (await self._step(step, params))[1]

    # ----- one attempt

    async def _attempt(self, correlation_id: str, fingerprint: str, token: str) -> Reservation | float:
        """A reservation, or how many seconds a pending one has left before it may be taken over."""
        await self._maybe_purge()
        own = Reservation(correlation_id, fingerprint, token, produced=False)
        for _ in range(5):  # a row can vanish (released) or change (taken over) between two steps
            if await self._run("insert", {"cid": correlation_id, "fp": fingerprint, "token": token}):
                return own
            rows = await self._run("read", {"cid": correlation_id}, write=False)
            if not rows:
                continue
            found_fp, state, found_token, age = rows[0]
            if found_token == token:  # our insert/replace committed, its answer was lost (repeated)
                return own
            age = float(age)
            replace = {"cid": correlation_id, "fp": fingerprint, "token": token, "old": found_token}
            if age >= self.retention_s:  # expired, not purged yet: the key is free again
                if await self._run("replace", replace):
                    return own
                continue
            if found_fp != fingerprint:
                raise IdempotencyConflictError(
                    "this Idempotency-Key was already used for a different request"
                )
            if state == "produced":
                return Reservation(correlation_id, fingerprint, found_token, produced=True)
            if age < self.takeover_s:
                return self.takeover_s - age
            if await self._run("replace", replace):
                log.warning("idempotency: took over the unfinished reservation of %s", correlation_id)
                return Reservation(correlation_id, fingerprint, token, produced=False, took_over=True)
        raise IdempotencyStoreUnavailableError(f"reservation of {correlation_id} kept changing: retry")

    async def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self.purge_every_s
        try:
            await self.purge_expired()
        except Exception as exc:  # housekeeping never fails a command: the next window tries again
            log.warning("idempotency store: purge of expired reservations failed: %s", exc)

    async def purge_expired(self, limit: int = _PURGE_BATCH) -> int:
        """Delete up to ``limit`` reservations older than the retention; how many were deleted."""
        return await self._rowcount("purge", {"retention": self.retention_s, "limit": limit})

    # ----- the API the command bus uses

    async def reserve(self, correlation_id: str, fingerprint: str) -> Reservation:
        """Own the command, or learn it was produced; waits (bounded) while another request produces it."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + 2 * self.takeover_s + 5
        delay = 0.01
        while True:
            outcome = await self._attempt(correlation_id, fingerprint, token)
            if isinstance(outcome, Reservation):
                return outcome
            if time.monotonic() >= deadline:
                raise IdempotencyStoreUnavailableError(
                    f"command {correlation_id} is still being produced by another request: retry"
                )
            await asyncio.sleep(min(delay, outcome + 0.005))
            delay = min(delay * 2, _MAX_POLL_S)

    async def mark_produced(self, reservation: Reservation) -> None:
        """Record that the event is in Kafka: every later retry is a replay."""
        params = {
            "cid": reservation.correlation_id,
            "fp": reservation.fingerprint,
            "token": reservation.token,
        }
        await self._rowcount("produced", params)

    async def release(self, reservation: Reservation) -> None:
        """Drop this request's pending reservation (its event was not produced): the retry produces."""
        params = {"cid": reservation.correlation_id, "token": reservation.token}
        await self._rowcount("release", params)

    async def is_produced(self, correlation_id: str) -> bool:
        """Whether a request produced this command (and its reservation has not expired): ``/status``
        answers ``accepted`` for a keyed command another worker produced."""
        rows = await self._run("read", {"cid": correlation_id}, write=False)
        return bool(rows) and rows[0][1] == "produced" and float(rows[0][3]) < self.retention_s


_NAMED = re.compile(r"(?<![:\w]):(\w+)")


class PostgresIdempotencyStore(IdempotencyStore):
    """``ops.command_idempotency`` in the warehouse's PostgreSQL server (created on first use).

    Statements run on the calling event loop through psycopg's async connections (at most
    ``_PG_CONNECTIONS`` per process, autocommit: one statement is one transaction in one round trip;
    psycopg prepares them server-side after a few uses). The table is declared once per process
    through :mod:`resources.platform_tables` (sync SQLAlchemy, on a worker thread). Connections belong
    to the loop that opened them: used from another loop (a new ``asyncio.run``), the store opens new
    ones and closes the old.
    """

    dialect = _PG
    # psycopg's for the statements, SQLAlchemy's for the table's declaration
    unavailable = (
        psycopg.OperationalError,
        psycopg.InterfaceError,
        ConnectionsBusyError,
        sa.exc.OperationalError,
        OSError,
    )

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(**options)
        self.url = url
        u = sa.make_url(url)
        # The URL's own parameters (connect_timeout, sslmode, ...) win over these defaults.
        params: dict[str, Any] = {
            "connect_timeout": _PG_CONNECT_TIMEOUT_S,
            "application_name": PG_APPLICATION_NAME,
        }
        params.update({k: v for k, v in u.query.items() if isinstance(v, str)})
        self.conninfo = make_conninfo(
            "", host=u.host, port=u.port, user=u.username, password=u.password, dbname=u.database, **params
        )
        self._pyformat = {step: _NAMED.sub(r"%(\1)s", sql) for step, sql in self._sql.items()}
        self._declared = False
        self._declare_lock = threading.Lock()
        self._connections: LoopConnections | None = None

    def _declare(self) -> None:
        with self._declare_lock:
            if not self._declared:
                ensure_platform_tables(Warehouse(self.url), IDEMPOTENCY_TABLES)
                self._declared = True

    def _current(self) -> LoopConnections:
        connections = self._connections
        if connections is None or connections.loop is not asyncio.get_running_loop():
            if connections is not None:
                connections.close()
            connections = LoopConnections(self.conninfo, _PG_CONNECTIONS, _PG_CHECKOUT_TIMEOUT_S)
            self._connections = connections
        return connections

    async def _execute(
        self, step: str, params: Mapping[str, Any], write: bool
    ) -> tuple[list[tuple[Any, ...]], int]:
        if not self._declared:
            await asyncio.to_thread(self._declare)  # once per process
        return await self._current().execute(self._pyformat[step], params, step in _REPEATABLE)

    async def aclose(self) -> None:
        connections, self._connections = self._connections, None
        if connections is not None:
            connections.close()


class SqliteIdempotencyStore(IdempotencyStore):
    """A SQLite file (WAL) shared by the API workers of one host; one connection per process.

    Writers serialize on ``BEGIN IMMEDIATE`` (waiting up to the busy timeout); readers do not block
    them. ``synchronous=NORMAL``: a power loss may forget the last reservations (a retry then produces
    a duplicate that processing counts once), a crashed process forgets nothing.
    """

    dialect = _SQLITE
    unavailable = (sqlite3.OperationalError, OSError)
    table_name = "command_idempotency"
    _SCHEMA = (
        "CREATE TABLE IF NOT EXISTS command_idempotency (correlation_id TEXT PRIMARY KEY, "
        "fingerprint TEXT NOT NULL, state TEXT NOT NULL, token TEXT NOT NULL, reserved_at REAL NOT NULL, "
        "produced_at REAL)",
        "CREATE INDEX IF NOT EXISTS command_idempotency_reserved_at ON command_idempotency (reserved_at)",
    )

    def __init__(self, path: str | Path, busy_timeout_s: float = 10.0, **options: Any) -> None:
        super().__init__(**options)
        self.path = str(path)
        self.busy_timeout_s = busy_timeout_s
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.path != ":memory:":
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False
            )
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            for statement in self._SCHEMA:
                conn.execute(statement)
            self._conn = conn
        return self._conn

    def _transaction(self, step: str, params: Mapping[str, Any], write: bool) -> tuple[list[Any], int]:
        with self._lock:
            conn = self._connection()
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                cursor = conn.execute(self._sql[step], dict(params))
                rows = cursor.fetchall()
                count = cursor.rowcount
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return [tuple(row) for row in rows], count

    async def _execute(
        self, step: str, params: Mapping[str, Any], write: bool
    ) -> tuple[list[tuple[Any, ...]], int]:
        return await asyncio.to_thread(self._transaction, step, params, write)

    def _close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def aclose(self) -> None:
        await asyncio.to_thread(self._close)


def sqlite_path_for(warehouse_url: str, configured: str) -> str:
    """The configured file, else one next to the DuckDB warehouse file (in memory for ``:memory:``)."""
    if configured:
        return configured
    database = duckdb_file(warehouse_url)
    if database is None:
        return ":memory:"  # one process only: an in-memory warehouse is not shared either
    return f"{database}.idempotency.sqlite3"


def open_store(
    warehouse_url: str,
    backend: str,
    *,
    sqlite_path: str = "",
    takeover_s: float,
    retention_s: float,
    purge_every_s: float | None = None,
) -> IdempotencyStore:
    """The store ``backend`` names (``auto``: PostgreSQL when the warehouse is, else SQLite)."""
    dialect = dialect_of(warehouse_url)
    if backend == "auto":
        backend = "postgres" if dialect == "postgresql" else "sqlite"
    options: dict[str, Any] = {
        "takeover_s": takeover_s,
        "retention_s": retention_s,
        "purge_every_s": purge_every_s,
    }
    if backend == "postgres":
        if dialect != "postgresql":
            raise ValueError(
                "SUBSCRIPTIONS_IDEMPOTENCY_STORE=postgres needs a PostgreSQL warehouse (WAREHOUSE_URL)"
            )
        return PostgresIdempotencyStore(warehouse_url, **options)
    if backend == "sqlite":
        return SqliteIdempotencyStore(sqlite_path_for(warehouse_url, sqlite_path), **options)
    raise ValueError(f"unknown idempotency store {backend!r}: use auto, postgres or sqlite")


__all__ = [
    "IDEMPOTENCY_TABLES",
    "IdempotencyConflictError",
    "IdempotencyStore",
    "IdempotencyStoreUnavailableError",
    "PG_APPLICATION_NAME",
    "PostgresIdempotencyStore",
    "Reservation",
    "SqliteIdempotencyStore",
    "open_store",
    "sqlite_path_for",
]
