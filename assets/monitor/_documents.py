"""What one ``system_logs`` document looks like: its deterministic id, its daily index, its mapping.

Ids are deterministic so that writing a document twice (a replay of the fallback file, a pass that
crashed after indexing but before its offsets were recorded) overwrites it instead of adding a
copy: ``<topic>-<partition>-<offset>`` for a Kafka event, a hash of (file identity, byte position,
line) for a log line. The daily index is chosen from the document's own timestamp (the Kafka
timestamp, the log line's ``ts``), never from the time of indexing, so a replay days later lands
in the same index as the first attempt would have.

The mapping is strict about a few searchable fields and keeps the decoded message only as stored
source (``body``, not indexed): no producer's field types can ever conflict with another's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

MAX_KEYWORD = 1024
MAX_RAW_CHARS = 32_768
_DATE_SUFFIX = re.compile(r"-(\d{4})\.(\d{2})\.(\d{2})$")

# Envelope / log fields copied to searchable top-level fields when the message has them.
_EVENT_FIELDS = ("event_type", "event_id", "correlation_id", "user_id")
_LOG_FIELDS = ("level", "logger", "run_id", "job", "step_key", "asset_key", "correlation_id", "event")


def _keyword() -> dict[str, Any]:
    return {"type": "keyword", "ignore_above": MAX_KEYWORD}


MAPPINGS: dict[str, Any] = {
    "dynamic": False,
    "properties": {
        "@timestamp": {"type": "date"},
        "doc_id": _keyword(),
        "kind": _keyword(),
        "source": _keyword(),
        "topic": _keyword(),
        "partition": {"type": "integer"},
        "offset": {"type": "long"},
        "key": _keyword(),
        "file": _keyword(),
        "position": {"type": "long"},
        "message": {"type": "text"},
        "raw": {"type": "text", "index": False},
        "body": {"type": "object", "enabled": False},
        **{name: _keyword() for name in sorted({*_EVENT_FIELDS, *_LOG_FIELDS})},
    },
}
INDEX_SETTINGS: dict[str, Any] = {"number_of_shards": 1, "number_of_replicas": 0}


def daily_index(alias: str, day: dt.date) -> str:
    """``<alias>-YYYY.MM.DD``: the index holding the documents of ``day`` (UTC)."""
    return f"{alias}-{day:%Y.%m.%d}"


def index_day(alias: str, index: str) -> dt.date | None:
    """The day of a daily index of ``alias`` (None for any other index name)."""
    if not index.startswith(f"{alias}-"):
        return None
    match = _DATE_SUFFIX.search(index)
    if match is None or len(index) != len(alias) + 11:
        return None
    try:
        return dt.date(int(match[1]), int(match[2]), int(match[3]))
    except ValueError:
        return None


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("utf-8", errors="replace")


def _short(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)[:MAX_KEYWORD]


def _parse_json(text: str | None) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return None


def _parse_ts(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _document(kind: str, doc_id: str, at: dt.datetime, raw: str, body: Any, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "doc_id": doc_id,
        "@timestamp": at.astimezone(dt.UTC).isoformat(timespec="milliseconds"),
        "kind": kind,
        **{k: v for k, v in fields.items() if v is not None},
        "raw": raw[:MAX_RAW_CHARS],
    }
    if isinstance(body, dict):
        doc["body"] = body
    return doc


def event_document(
    topic: str, partition: int, offset: int, timestamp_ms: int | None, key: bytes | None, value: bytes | None
) -> dict[str, Any]:
    """The document of one Kafka message (JSON values are decoded; anything else is kept as text)."""
    raw = _text(value) or ""
    body = _parse_json(raw)
    envelope = body if isinstance(body, dict) else {}
    at = (
        dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC)
        if timestamp_ms and timestamp_ms > 0
        else _parse_ts(envelope.get("occurred_at")) or dt.datetime.now(dt.UTC)
    )
    searchable = {name: _short(envelope.get(name)) for name in _EVENT_FIELDS}
    return _document(
        "event",
        f"{topic}-{partition}-{offset}",
        at,
        raw,
        body,
        source=topic,
        topic=topic,
        partition=partition,
        offset=offset,
        key=_short(_text(key)),
        message=searchable["event_type"] or raw[:200],
        **searchable,
    )


def log_line_id(identity: str, position: int, line: bytes) -> str:
    """Hash of (file identity, byte position, line): stable across renames of a rotated file."""
    digest = hashlib.sha256(f"{identity}:{position}:".encode() + line).hexdigest()
    return f"log-{digest[:40]}"


def log_document(path: str, identity: str, position: int, line: bytes) -> dict[str, Any]:
    """The document of one log line (a JSON object from ``orchestration/json_logs.py``, or plain text)."""
    raw = line.decode("utf-8", errors="replace").rstrip("\r\n")
    body = _parse_json(raw)
    record = body if isinstance(body, dict) else {}
    at = _parse_ts(record.get("ts")) or dt.datetime.now(dt.UTC)
    message = record.get("message") if record else raw
    return _document(
        "log",
        log_line_id(identity, position, line),
        at,
        raw,
        body,
        source=path,
        file=path,
        position=position,
        message=str(message)[:MAX_RAW_CHARS] if message is not None else None,
        **{name: _short(record.get(name)) for name in _LOG_FIELDS},
    )


def document_day(doc: dict[str, Any]) -> dt.date:
    """The UTC day of a document (its ``@timestamp``)."""
    return dt.date.fromisoformat(doc["@timestamp"][:10])
