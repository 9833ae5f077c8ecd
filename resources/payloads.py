"""Rejected payloads as storable text: what a dead-letter or rejects row keeps of the bad input."""

from __future__ import annotations

# Dead letters keep the payload up to this size (``payload_bytes`` always holds the full size).
MAX_DEAD_LETTER_CHARS = 1_048_576


def payload_text(value: bytes | str | None, limit: int = MAX_DEAD_LETTER_CHARS) -> str | None:
    """A payload as storable text: UTF-8 when it is, backslash escapes otherwise, never a NUL byte.

    PostgreSQL text cannot hold NUL, and a payload that is not UTF-8 must still be readable by the
    engineer who looks at why it was rejected.
    """
    if value is None:
        return None
    if isinstance(value, str):
        text = value
    else:
        text = bytes(value[: limit * 4]).decode("utf-8", errors="backslashreplace")
    text = text[:limit]
    return text.replace("\x00", "\\x00") if "\x00" in text else text


__all__ = ["MAX_DEAD_LETTER_CHARS", "payload_text"]
