"""Answers read from marts, kept in memory until the warehouse changes.

A mart changes only when a pipeline rebuilds it, so a ``GET`` under a cacheable prefix is answered
from memory — stored status, headers and body bytes, no routing, validation or serialization —
while the warehouse's *version* is the one the answer was computed at:

* DuckDB: the size and modification time of the database file and its WAL (a commit moves them);
* PostgreSQL: a counter bumped by ``NOTIFY afluente_tables`` (sent by every SQL-model build, in its
  transaction, so delivered at commit) on a listening connection. While that connection is down the
  version is unknown and nothing is served from memory.

The version is read *before* the route runs, so an answer computed while a build commits is stored
under the older version and never served after it.
"""

from __future__ import annotations

import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.telemetry import ROUTE_SCOPE_KEY, route_label
from resources.change_notify import CHANGE_CHANNEL
from resources.warehouse_core import duckdb_file

log = logging.getLogger(__name__)
Version = Hashable | None


@dataclass(frozen=True)
class _Entry:
    version: Hashable
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    route: str


class DuckDBFileVersion:
    """The version of a DuckDB file: (size, mtime) of the file and of its write-ahead log."""

    def __init__(self, database: str) -> None:
        self.paths = (Path(database), Path(database + ".wal"))

    def __call__(self) -> Version:
        stamp: list[tuple[int, int]] = []
        for path in self.paths:
            try:
                st = os.stat(path)
            except FileNotFoundError:
                stamp.append((-1, -1))
            else:
                stamp.append((st.st_size, st.st_mtime_ns))
        return tuple(stamp)


class PostgresNotifyVersion:
    """A counter bumped by every ``NOTIFY afluente_tables``; ``None`` while not listening."""

    def __init__(self, url: str, channel: str = CHANGE_CHANNEL) -> None:
        self.conninfo = sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.channel = channel
        self._counter = 0
        self._listening = False
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Listen in a daemon thread (the app's lifespan calls this; without it nothing is cached)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._listen, name="afluente-cache-listener", daemon=True)
            self._thread.start()

    def __call__(self) -> Version:
        return self._counter if self._listening else None

    def wait_listening(self, timeout: float = 5.0) -> bool:
        return self._ready.wait(timeout)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _listen(self) -> None:
        import psycopg
        from psycopg import sql

        delay = 0.5
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                    self._counter += 1  # whatever changed while not listening is behind us now
                    self._listening = True
                    self._ready.set()
                    delay = 0.5
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._counter += 1
            except Exception as exc:  # server restarted, network: serve uncached until back
                log.warning("response cache: not listening to %s (%s); retrying", self.channel, exc)
            finally:
                self._listening = False
            self._stop.wait(delay)
            delay = min(delay * 2, 10.0)


def version_source(url: str) -> Callable[[], Version]:
    """The warehouse version for a SQLAlchemy URL (see the module docstring)."""
    if sa.make_url(url).get_backend_name() == "duckdb":
        database = duckdb_file(url)
        return (lambda: None) if database is None else DuckDBFileVersion(database)
    return PostgresNotifyVersion(url)


class ResponseCache:
    """An LRU of whole answers (200 only, bounded in count and size), keyed by path and query."""

    def __init__(self, max_entries: int = 4096, max_body_bytes: int = 2 << 20) -> None:
        self.max_entries = max_entries
        self.max_body_bytes = max_body_bytes
        self._entries: OrderedDict[tuple[str, bytes], _Entry] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: tuple[str, bytes], version: Hashable) -> _Entry | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry.version != version:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry

    def put(self, key: tuple[str, bytes], entry: _Entry) -> None:
        if len(entry.body) > self.max_body_bytes:
            return
        with self._lock:
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


class CacheMiddleware:
    """Serves ``GET`` answers under ``prefixes`` (minus ``exclude``) from :class:`ResponseCache`."""

    def __init__(
        self,
        app: ASGIApp,
        cache: ResponseCache,
        version: Callable[[], Version],
        prefixes: Iterable[str],
        exclude: Iterable[str] = (),
    ) -> None:
        self.app = app
        self.cache = cache
        self.version = version
        self.prefixes = tuple(prefixes)
        self.exclude = frozenset(exclude)

    def cacheable(self, path: str) -> bool:
        return path not in self.exclude and any(path == p or path.startswith(p + "/") for p in self.prefixes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or not self.cacheable(scope["path"]):
            await self.app(scope, receive, send)
            return
        version = self.version()
        if version is None:
            await self.app(scope, receive, send)
            return
        key = (scope["path"], scope["query_string"])
        entry = self.cache.get(key, version)
        if entry is not None:
            scope[ROUTE_SCOPE_KEY] = entry.route
            await send({"type": "http.response.start", "status": entry.status, "headers": entry.headers})
            await send({"type": "http.response.body", "body": entry.body})
            return

        start: Message | None = None
        chunks: list[bytes] = []

        async def _send(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                message = {**message, "headers": [*message.get("headers", []), (b"x-cache", b"miss")]}
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, _send)
        if start is not None and start["status"] == 200:
            headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"x-cache"]
            self.cache.put(
                key,
                _Entry(version, 200, [*headers, (b"x-cache", b"hit")], b"".join(chunks), route_label(scope)),
            )
