"""Reader of landed usage files (JSONL, JSON array, or ``{"events": [...]}``) for the landing ingest.

Objects may use MongoDB extended JSON (``{"$oid": ...}``, ``{"$date": ...}``) as ``mongoexport`` and
the generator write them, or plain ISO-8601 strings for dates. A line that is not JSON is a reject
with its line number; a file that is not JSON at all is unreadable (quarantined).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
from bson import json_util

from assets.sources.landing_feed.contract import ParsedFile
from assets.usage.documents import validate_documents
from resources.landing_zone import LandedContent, UnreadableFileError

_ARRAY_KEYS = ("events", "documents", "items", "data")


def _loads(text: str) -> Any:
    return json.loads(text, object_hook=json_util.object_hook)


def _documents(data: bytes) -> tuple[list[tuple[int, Any]], list[tuple[int, str, str]], str]:
    """(line, document) pairs, (line, reason, raw) parse failures, and the detected layout."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise UnreadableFileError(f"not UTF-8 text: {exc}") from exc
    stripped = text.lstrip()
    if not stripped:
        raise UnreadableFileError("empty file")
    if stripped[0] not in "[{":
        raise UnreadableFileError("not JSON: a usage file must hold JSON objects (JSONL or a JSON array)")
    if stripped[0] == "[" or "\n" not in stripped.strip():
        try:
            loaded = _loads(text)
        except (ValueError, TypeError) as exc:
            if stripped[0] == "[":
                raise UnreadableFileError(f"invalid JSON array: {exc}") from exc
            loaded = None
        if isinstance(loaded, list):
            return [(i + 1, doc) for i, doc in enumerate(loaded)], [], "json_array"
        if isinstance(loaded, dict):
            for key in _ARRAY_KEYS:
                if isinstance(loaded.get(key), list):
                    return [(i + 1, doc) for i, doc in enumerate(loaded[key])], [], f"json_object.{key}"
            return [(1, loaded)], [], "jsonl"
    docs: list[tuple[int, Any]] = []
    failures: list[tuple[int, str, str]] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            docs.append((number, _loads(line)))
        except (ValueError, TypeError) as exc:
            failures.append((number, f"invalid JSON: {exc}", line[:2000]))
    if not docs and failures:
        raise UnreadableFileError(f"no line is valid JSON (first error: {failures[0][1]})")
    return docs, failures, "jsonl"


def read_usage_file(source: LandedContent | Path) -> ParsedFile:
    """Parse and validate one landed file: valid rows, rejects (line, reason, raw) and the total.

    ``source`` is what the landing ingest read, or a path (tools, tests).
    """
    docs, failures, layout = _documents(source.read_bytes() if isinstance(source, Path) else source.data)
    batch = validate_documents((doc for _, doc in docs), date_strings=True)
    lines = [number for number, _ in docs]
    rejects = batch.rejects
    reject_lines = [lines[i] for i in rejects.column("position").to_pylist()] + [n for n, _, _ in failures]
    reasons = rejects.column("reason").to_pylist() + [reason for _, reason, _ in failures]
    raws = rejects.column("raw_content").to_pylist() + [raw for _, _, raw in failures]
    reject_table = pa.table(
        {
            "source_line": pa.array(reject_lines, pa.int64()),
            "reason": pa.array(reasons, pa.string()),
            "raw_content": pa.array(raws, pa.string()),
        }
    ).sort_by("source_line")
    return ParsedFile(
        rows=batch.rows,
        rejects=reject_table,
        total_rows=len(docs) + len(failures),
        details={"layout": layout},
    )
