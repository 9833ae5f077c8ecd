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
Both run the same statements (clock expressions aside); each step is one statement in its own
transaction. Dagster-free: the read API imports it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from resources.platform_tables import Index, PlatformTables, TableSpec, baseline, ensure_platform_tables
from resources.warehouse_core import Warehouse, dialect_of, get_engine

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


class IdempotencyStore:
    """The reservation protocol over one backend (subclasses run a statement in one transaction)."""

    dialect: _Dialect
    unavailable: tuple[type[BaseException], ...] = ()

    def __init__(self, *, takeover_s: float, retention_s: float, purge_every_s: float | None = None) -> None:
        self.takeover_s = takeover_s
        self.retention_s = retention_s
        self.purge_every_s = min(600.0, retention_s / 4) if purge_every_s is None else purge_every_s
        self._next_purge = 0.0
        self._sql = _statements(self.table_name, self.dialect)

    table_name = "ops.command_idempotency"

    def _run(self, step: str, params: Mapping[str, Any], write: bool = True) -> list[tuple[Any, ...]]:
        """Run one statement in its own transaction; its rows (RETURNING / SELECT)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections (the store reconnects if used again)."""

    # ----- one attempt (sync, on a worker thread)

    def _attempt(self, correlation_id: str, fingerprint: str, token: str) -> Reservation | float:
        """A reservation, or how many seconds a pending one has left before it may be taken over."""
        self._maybe_purge()
        own = Reservation(correlation_id, fingerprint, token, produced=False)
        for _ in range(5):  # a row can vanish (released) or change (taken over) between two steps
            if self._run("insert", {"cid": correlation_id, "fp": fingerprint, "token": token}):
                return own
            rows = self._run("read", {"cid": correlation_id}, write=False)
            if not rows:
                continue
            found_fp, state, found_token, age = rows[0]
            age = float(age)
            replace = {"cid": correlation_id, "fp": fingerprint, "token": token, "old": found_token}
            if age >= self.retention_s:  # expired, not purged yet: the key is free again
                if self._run("replace", replace):
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
            if self._run("replace", replace):
                log.warning("idempotency: took over the unfinished reservation of %s", correlation_id)
                return Reservation(correlation_id, fingerprint, token, produced=False, took_over=True)
        raise IdempotencyStoreUnavailableError(f"reservation of {correlation_id} kept changing: retry")

    def _maybe_purge(self) -> None:
        now = time.monotonic()
        if now < self._next_purge:
            return
        self._next_purge = now + self.purge_every_s
        try:
            self.purge_expired()
        except Exception as exc:  # housekeeping never fails a command: the next window tries again
            log.warning("idempotency store: purge of expired reservations failed: %s", exc)

    def purge_expired(self, limit: int = _PURGE_BATCH) -> int:
        """Delete up to ``limit`` reservations older than the retention; how many were deleted."""
        return self._rowcount("purge", {"retention": self.retention_s, "limit": limit})

    def _rowcount(self, step: str, params: Mapping[str, Any]) -> int:
        raise NotImplementedError

    # ----- the async API the command bus uses

    async def reserve(self, correlation_id: str, fingerprint: str) -> Reservation:
        """Own the command, or learn it was produced; waits (bounded) while another request produces it."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + 2 * self.takeover_s + 5
        delay = 0.01
        while True:
            outcome = await self._call(self._attempt, correlation_id, fingerprint, token)
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
        await self._call(self._rowcount, "produced", params)

    async def release(self, reservation: Reservation) -> None:
        """Drop this request's pending reservation (its event was not produced): the retry produces."""
        params = {"cid": reservation.correlation_id, "token": reservation.token}
        await self._call(self._rowcount, "release", params)

    async def _call(self, function: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(function, *args)
        except self.unavailable as exc:
            raise IdempotencyStoreUnavailableError(f"idempotency store unavailable: {exc}") from exc


class PostgresIdempotencyStore(IdempotencyStore):
    """``ops.command_idempotency`` in the warehouse's PostgreSQL server (created on first use)."""

    dialect = _PG
    unavailable = (sa.exc.OperationalError, sa.exc.InterfaceError, OSError)

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(**options)
        self.url = url
        self._autocommit: sa.Engine | None = None
        self._texts: dict[str, sa.TextClause] = {}
        self._ready_lock = threading.Lock()

    def _engine(self) -> sa.Engine:
        """The warehouse's pool; each step is ONE statement, run as its own transaction (autocommit:
        one round trip, no separate COMMIT)."""
        if self._autocommit is None:
            with self._ready_lock:
                if self._autocommit is None:
                    ensure_platform_tables(Warehouse(self.url), IDEMPOTENCY_TABLES)
                    self._texts = {step: sa.text(sql) for step, sql in self._sql.items()}
                    self._autocommit = get_engine(self.url).execution_options(isolation_level="AUTOCOMMIT")
        return self._autocommit

    def _run(self, step: str, params: Mapping[str, Any], write: bool = True) -> list[tuple[Any, ...]]:
        with self._engine().connect() as conn:
            return [tuple(row) for row in conn.execute(self._texts[step], dict(params))]

    def _rowcount(self, step: str, params: Mapping[str, Any]) -> int:
        with self._engine().connect() as conn:
            return int(conn.execute(self._texts[step], dict(params)).rowcount)


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

    def _run(self, step: str, params: Mapping[str, Any], write: bool = True) -> list[tuple[Any, ...]]:
        return self._transaction(step, params, write)[0]

    def _rowcount(self, step: str, params: Mapping[str, Any]) -> int:
        return self._transaction(step, params, True)[1]

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def sqlite_path_for(warehouse_url: str, configured: str) -> str:
    """The configured file, else one next to the DuckDB warehouse file (in memory for ``:memory:``)."""
    if configured:
        return configured
    database = sa.make_url(warehouse_url).database
    if not database or database == ":memory:":
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
    "PostgresIdempotencyStore",
    "Reservation",
    "SqliteIdempotencyStore",
    "open_store",
    "sqlite_path_for",
]
