"""JSON-lines files read through a domain's message decoder (the one its Kafka topic source uses).

A domain whose events arrive on Kafka *and* as landed JSONL files validates both with the same
decoder (``decode(values, max_event_bytes)``, see ``assets.sources.kafka_topic``): each non-blank
line is one message. Lines the decoder rejects become the file's rejects (line number, reason, raw
text); a file with no JSON line at all (empty, binary, not JSON lines) is unreadable and goes to
quarantine.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.sources.landing_feed.contract import ParsedFile
from resources.landing_zone import (
    LandedContent,
    UnreadableFileError,
    digest_of_bytes,
    original_name,
    partition_key_for,
)
from resources.payloads import payload_text

JSONL_PATTERNS = ("*.jsonl", "*.ndjson", "*.jsonl.gz", "*.ndjson.gz")
LineDecoder = Callable[[Sequence[bytes], int], Any]  # -> events, rows, dead_rows, dead_reasons
_NOT_JSON = ("invalid_json", "not_a_json_object")


def _decompressed(name: str, data: bytes) -> bytes:
    if name.lower().endswith(".gz") or data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFileError(f"not a valid gzip file: {exc}") from exc
    return data


def read_jsonl_events(
    source: LandedContent | Path, decode: LineDecoder, max_event_bytes: int = 65_536
) -> ParsedFile:
    """Parse one JSONL file (optionally gzipped) into decoded rows and rejected lines.

    ``source`` is what the landing ingest read (bytes and partition key), or a path (tools, tests).
    Rows get ``source_key`` = ``file/<partition key>/<line>`` and ``source_line``.
    """
    if isinstance(source, Path):
        raw = source.read_bytes()
        name = original_name(source)
        source = LandedContent(name, raw, partition_key_for(name, digest_of_bytes(raw)))
    name, key = source.name, source.partition_key
    data = _decompressed(name, source.data)
    if b"\x00" in data[:8192]:
        raise UnreadableFileError("binary content (NUL bytes): not a JSON-lines text file")
    lines = data.split(b"\n")
    numbers = [i + 1 for i, line in enumerate(lines) if line.strip()]
    values = [lines[i - 1].rstrip(b"\r") for i in numbers]
    if not values:
        raise UnreadableFileError("empty file: no JSON lines")
    decoded = decode(values, max_event_bytes)
    invalid_json = sum(1 for r in decoded.dead_reasons if r.startswith(_NOT_JSON))
    if decoded.events.num_rows == 0 and invalid_json == len(values):
        raise UnreadableFileError(
            f"no line of the {len(values)} is a JSON object: not a JSON-lines file "
            f"(first problem: {decoded.dead_reasons[0]})"
        )
    line_numbers = np.asarray(numbers, dtype=np.int64)
    good_lines = pa.array(line_numbers[np.asarray(decoded.rows, dtype=np.int64)], pa.int64())
    rows = decoded.events.append_column(
        "source_key",
        pc.binary_join_element_wise(f"file/{key}/", pc.cast(good_lines, pa.string()), ""),
    ).append_column("source_line", good_lines)
    dead = np.asarray(decoded.dead_rows, dtype=np.int64)
    rejects = pa.table(
        {
            "source_line": pa.array(line_numbers[dead], pa.int64()),
            "reason": pa.array(decoded.dead_reasons, pa.string()),
            "raw_content": pa.array([payload_text(values[i]) for i in dead], pa.string()),
        }
    )
    return ParsedFile(
        rows=rows,
        rejects=rejects,
        total_rows=len(values),
        details={"format": "jsonl.gz" if name.lower().endswith(".gz") else "jsonl"},
    )
