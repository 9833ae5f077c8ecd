"""A minimal asyncio HTTP/1.1 keep-alive client for benches that drive the API from Python."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson


class HttpClient:
    """A minimal HTTP/1.1 keep-alive client over asyncio streams (JSON in, status + JSON out).

    httpx costs ~10 ms of client CPU per request here with 64 connections: the client, not the API,
    capped the rate at ~90 commands/s. Enough for uvicorn's answers (Content-Length bodies).
    """

    def __init__(self, base: str, connections: int) -> None:
        host, port = base.removeprefix("http://").split(":")
        self.host, self.port = host, int(port)
        # LIFO: the most recently used (still open) connection first.
        self.idle: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] = (
            asyncio.LifoQueue()
        )
        for _ in range(connections):
            self.idle.put_nowait(None)  # opened on first use

    async def request(
        self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        """(status, decoded JSON body); ``OSError``/``asyncio.IncompleteReadError`` on transport errors."""
        payload = b"" if body is None else orjson.dumps(body)
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: {len(payload)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items())
        request = head.encode() + b"\r\n" + payload
        connection = await self.idle.get()
        try:
            answer = None
            if connection is not None:
                try:
                    answer = await self._exchange(connection, request)
                except (ConnectionError, asyncio.IncompleteReadError):
                    # Closed by the server while idle (uvicorn's keep-alive timeout): nothing was
                    # answered, so the request goes once more on a new connection.
                    connection[1].close()
            if answer is None:
                connection = await asyncio.open_connection(self.host, self.port)
                answer = await self._exchange(connection, request)
            status, content, keep = answer
            if not keep and connection is not None:
                connection[1].close()
                connection = None
            return status, content
        except BaseException:
            if connection is not None:
                connection[1].close()
            connection = None
            raise
        finally:
            self.idle.put_nowait(connection)

    async def _exchange(
        self, connection: tuple[asyncio.StreamReader, asyncio.StreamWriter], request: bytes
    ) -> tuple[int, Any, bool]:
        """(status, decoded JSON body, whether the connection stays open)."""
        reader, writer = connection
        writer.write(request)
        await writer.drain()
        lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        fields = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:] if x)}
        content = await reader.readexactly(int(fields.get("content-length", "0")))
        keep = fields.get("connection", "").lower() != "close"
        return status, orjson.loads(content) if content else None, keep

    def close(self) -> None:
        while not self.idle.empty():
            connection = self.idle.get_nowait()
            if connection is not None:
                connection[1].close()
