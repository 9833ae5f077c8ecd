"""Small pieces shared by the read API's pure ASGI middlewares."""

from __future__ import annotations

from collections.abc import Iterable

from starlette.types import Send


async def send_bytes(
    send: Send, status: int, body: bytes, content_type: bytes, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer with one complete body (content type and length set)."""
    head = [(b"content-type", content_type), (b"content-length", str(len(body)).encode()), *headers]
    await send({"type": "http.response.start", "status": status, "headers": head})
    await send({"type": "http.response.body", "body": body})
