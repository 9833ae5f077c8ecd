"""The shared idempotency store on its real backends: PostgreSQL next to a PostgreSQL warehouse, a
SQLite file next to the DuckDB one (``warehouse_url`` gives both).

Two store objects over the same backend stand for two API workers: what one reserved, the other sees.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest
import sqlalchemy as sa

from api.commands import store_from_settings
from resources.idempotency_store import (
    PG_APPLICATION_NAME,
    IdempotencyConflictError,
    IdempotencyStore,
    IdempotencyStoreUnavailableError,
    PostgresIdempotencyStore,
    SqliteIdempotencyStore,
    open_store,
)
from resources.settings import SettingsError, SubscriptionsSettings


def _stores(
    url: str,
    n: int = 2,
    takeover_s: float = 5.0,
    retention_s: float = 3600.0,
    purge_every_s: float | None = None,
) -> list[IdempotencyStore]:
    return [
        open_store(url, "auto", takeover_s=takeover_s, retention_s=retention_s, purge_every_s=purge_every_s)
        for _ in range(n)
    ]


def _cid() -> str:
    return str(uuid4())


def test_auto_picks_the_backend_next_to_the_warehouse(warehouse_url: str) -> None:
    store = _stores(warehouse_url, 1)[0]
    if warehouse_url.startswith("duckdb"):
        assert isinstance(store, SqliteIdempotencyStore)
        assert store.path == f"{sa.make_url(warehouse_url).database}.idempotency.sqlite3"
        with pytest.raises(ValueError, match="needs a PostgreSQL warehouse"):
            open_store(warehouse_url, "postgres", takeover_s=10, retention_s=60)
    else:
        assert isinstance(store, PostgresIdempotencyStore)


def test_reserve_produce_replay_and_conflict(warehouse_url: str) -> None:
    worker_a, worker_b = _stores(warehouse_url)
    cid = _cid()

    async def scenario() -> None:
        first = await worker_a.reserve(cid, "fp-1")
        assert not first.produced and not first.took_over
        await worker_a.mark_produced(first)
        again = await worker_b.reserve(cid, "fp-1")  # another worker: answered, not produced again
        assert again.produced
        with pytest.raises(IdempotencyConflictError):
            await worker_b.reserve(cid, "fp-other")
        other = await worker_b.reserve(_cid(), "fp-1")  # another key is another command
        assert not other.produced

    asyncio.run(scenario())
    if warehouse_url.startswith("postgresql"):
        with sa.create_engine(warehouse_url).connect() as conn:
            row = conn.execute(
                sa.text("SELECT state, fingerprint FROM ops.command_idempotency WHERE correlation_id = :c"),
                {"c": cid},
            ).one()
            assert tuple(row) == ("produced", "fp-1")
            steps = conn.execute(
                sa.text("SELECT version FROM ops.schema_migrations WHERE component = 'command_idempotency'")
            ).scalars()
            assert list(steps) == [1]


def test_concurrent_reservations_from_two_workers_have_exactly_one_owner(warehouse_url: str) -> None:
    worker_a, worker_b = _stores(warehouse_url)
    cid = _cid()

    async def one(store: IdempotencyStore) -> bool:
        reservation = await store.reserve(cid, "fp")
        if not reservation.produced:
            await asyncio.sleep(0.2)  # producing
            await store.mark_produced(reservation)
        return not reservation.produced

    async def scenario() -> list[bool]:
        return await asyncio.gather(*(one(worker_a if i % 2 else worker_b) for i in range(20)))

    started = time.monotonic()
    owners = asyncio.run(scenario())
    assert owners.count(True) == 1  # the 19 others waited for it and were answered as replays
    assert time.monotonic() - started < 4  # woken by the produce, not by the 5 s takeover


def test_a_pending_reservation_is_taken_over_after_the_takeover_age(warehouse_url: str) -> None:
    dead_worker, worker = _stores(warehouse_url, takeover_s=0.6)
    cid = _cid()

    async def scenario() -> None:
        orphan = await dead_worker.reserve(cid, "fp")  # reserved, then the worker died: never produced
        assert not orphan.produced
        started = time.monotonic()
        taken = await worker.reserve(cid, "fp")
        assert taken.took_over and not taken.produced and taken.token != orphan.token
        assert 0.4 < time.monotonic() - started < 3
        # The late original cannot release the new owner's reservation.
        await dead_worker.release(orphan)
        await worker.mark_produced(taken)
        assert (await dead_worker.reserve(cid, "fp")).produced

    asyncio.run(scenario())


def test_a_reservation_that_finds_its_own_pending_row_owns_it(warehouse_url: str) -> None:
    """What a reserving INSERT repeated on a new connection sees when its first run committed before
    its connection died: the row with its own token is its own, not another request's to wait for."""
    store = _stores(warehouse_url, 1, takeover_s=30)[0]
    cid = _cid()

    async def scenario() -> None:
        first = await store.reserve(cid, "fp")
        again = await asyncio.wait_for(store._attempt(cid, "fp", first.token), 3)
        assert again == first  # owned at once (before: seconds left of the 30 s takeover)

    asyncio.run(scenario())


def test_a_failed_produce_releases_so_the_retry_produces_at_once(warehouse_url: str) -> None:
    worker_a, worker_b = _stores(warehouse_url, takeover_s=30)
    cid = _cid()

    async def scenario() -> None:
        failed = await worker_a.reserve(cid, "fp")
        waiting = asyncio.create_task(worker_b.reserve(cid, "fp"))  # a retry racing the attempt
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await worker_a.release(failed)  # Kafka refused the event
        retry = await asyncio.wait_for(waiting, 3)  # not the 30 s takeover
        assert not retry.produced and not retry.took_over

    asyncio.run(scenario())


def test_reservations_expire_after_the_retention(warehouse_url: str) -> None:
    worker_a, worker_b = _stores(warehouse_url, retention_s=0.5, purge_every_s=3600)
    old, kept, fresh = _cid(), _cid(), _cid()

    async def scenario() -> None:
        await worker_a.mark_produced(await worker_a.reserve(old, "fp"))
        await asyncio.sleep(0.7)
        await worker_a.mark_produced(await worker_a.reserve(kept, "fp"))
        with pytest.raises(IdempotencyConflictError):  # still remembered
            await worker_b.reserve(kept, "fp-new")
        # Expired: the key may name a new request (no conflict, this request produces).
        reused = await worker_b.reserve(old, "fp-new")
        assert not reused.produced
        await worker_b.release(reused)
        await asyncio.sleep(0.7)  # now `kept` is expired too
        await worker_a.reserve(fresh, "fp")

    asyncio.run(scenario())
    # The purge deletes the expired row (`old` was released), not the fresh one, in bounded batches.
    assert asyncio.run(worker_a.purge_expired(limit=10)) == 1
    assert asyncio.run(worker_a.purge_expired()) == 0
    with pytest.raises(IdempotencyConflictError):
        asyncio.run(worker_b.reserve(fresh, "fp-other"))


class _CountingExecutor(ThreadPoolExecutor):
    """The loop's default executor (``asyncio.to_thread``, ``run_in_executor(None, ...)``), counting jobs."""

    jobs = 0

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        type(self).jobs += 1
        return super().submit(*args, **kwargs)


def _store_sessions(url: str) -> int:
    with sa.create_engine(url, poolclass=sa.pool.NullPool).connect() as conn:
        return int(
            conn.execute(
                sa.text(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND application_name = :name"
                ),
                {"name": PG_APPLICATION_NAME},
            ).scalar_one()
        )


def test_postgres_store_serves_concurrent_reservations_on_the_event_loop(pg_database_url: str) -> None:
    """After warm-up (table declared once on a thread, connections opened), 50 concurrent commands
    (reserve + mark produced: 100 statements) run on the loop itself: no executor job, no new thread,
    over at most the store's 10 connections; shutdown closes them."""
    store = _stores(pg_database_url, 1)[0]
    sessions: dict[str, int] = {}

    async def command(cid: str) -> bool:
        reservation = await store.reserve(cid, "fp")
        await store.mark_produced(reservation)
        return reservation.produced

    async def scenario() -> list[bool]:
        asyncio.get_running_loop().set_default_executor(_CountingExecutor(max_workers=4))
        await asyncio.gather(*(command(_cid()) for _ in range(20)))  # warm-up
        sessions["warm"] = await asyncio.to_thread(_store_sessions, pg_database_url)
        jobs, threads = _CountingExecutor.jobs, threading.active_count()
        replayed = await asyncio.gather(*(command(_cid()) for _ in range(50)))
        assert _CountingExecutor.jobs == jobs  # the sync store: one executor job per statement
        assert threading.active_count() == threads
        await store.aclose()
        return replayed

    assert asyncio.run(scenario()) == [False] * 50
    assert 1 < sessions["warm"] <= 10  # concurrent statements use several connections, within the cap
    deadline = time.monotonic() + 5
    while _store_sessions(pg_database_url) and time.monotonic() < deadline:
        time.sleep(0.1)  # the server notices the closed sessions promptly, not instantly
    assert _store_sessions(pg_database_url) == 0

    async def again() -> bool:  # used again from another event loop: it reconnects there
        try:
            return (await store.reserve(_cid(), "fp")).produced
        finally:
            await store.aclose()

    assert asyncio.run(again()) is False


def test_the_warehouse_urls_own_connection_parameters_win(pg_database_url: str) -> None:
    """A warehouse URL that already carries ``connect_timeout``/``application_name`` (as the API's own
    tests and many deployments write it) opens the store with them instead of failing at start-up."""
    separator = "&" if "?" in pg_database_url else "?"
    url = f"{pg_database_url}{separator}connect_timeout=3&application_name=afluente-api-test"
    store = open_store(url, "auto", takeover_s=10, retention_s=60)
    assert isinstance(store, PostgresIdempotencyStore)
    assert "connect_timeout=3" in store.conninfo and "application_name=afluente-api-test" in store.conninfo

    async def scenario() -> bool:
        try:
            reservation = await store.reserve(_cid(), "fp")
            await store.mark_produced(reservation)
            return reservation.produced
        finally:
            await store.aclose()

    assert asyncio.run(scenario()) is False


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_store_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    postgres = open_store(
        f"postgresql+psycopg://afluente:x@127.0.0.1:{_closed_port()}/nowhere", "auto", takeover_s=10,
        retention_s=60,
    )  # fmt: skip
    (tmp_path / "a_directory").mkdir()
    sqlite = SqliteIdempotencyStore(tmp_path / "a_directory", takeover_s=10, retention_s=60)
    for store in (postgres, sqlite):
        with pytest.raises(IdempotencyStoreUnavailableError):
            asyncio.run(store.reserve(_cid(), "fp"))


def test_settings_choose_the_store_and_bound_the_takeover(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SUBSCRIPTIONS_IDEMPOTENCY_SQLITE_PATH", str(tmp_path / "keys.sqlite3"))
    monkeypatch.setenv("SUBSCRIPTIONS_IDEMPOTENCY_RETENTION_HOURS", "2")
    store = store_from_settings(f"duckdb:///{tmp_path / 'w.duckdb'}")
    assert isinstance(store, SqliteIdempotencyStore) and store.path == str(tmp_path / "keys.sqlite3")
    assert (store.retention_s, store.takeover_s) == (7200, 10)
    monkeypatch.setenv("SUBSCRIPTIONS_PRODUCE_TIMEOUT_MS", "9500")
    with pytest.raises(SettingsError, match="SUBSCRIPTIONS_IDEMPOTENCY_TAKEOVER_SECONDS"):
        SubscriptionsSettings.current()
