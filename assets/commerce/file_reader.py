"""JSONL commerce files from the landing zone: the file-fed path into ``raw.commerce_events``.

One JSON event per line (``.jsonl``, ``.ndjson``, optionally gzipped), validated by the same
vectorized rules as Kafka messages (:mod:`assets.commerce.decode`). Lines that fail go to the
dead-letter table with their line number, reason and raw text; a file with no usable line at all
(empty, binary, not JSON lines) is unreadable and goes to quarantine.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from assets.commerce.decode import decode_events, payload_text
from assets.sources.landing_feed.contract import ParsedFile
from resources.landing_zone import (
    LandedContent,
    UnreadableFileError,
    digest_of_bytes,
    original_name,
    partition_key_for,
)


def _decompressed(name: str, data: bytes) -> bytes:
    if name.lower().endswith(".gz") or data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFileError(f"not a valid gzip file: {exc}") from exc
    return data


def read_commerce_file(source: LandedContent | Path, max_event_bytes: int = 65_536) -> ParsedFile:
    """Parse one JSONL file into valid event rows and rejected lines (see module docstring).

    ``source`` is what the landing ingest read (bytes and partition key), or a path (tools, tests).
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
    decoded = decode_events(values, max_event_bytes)
    invalid_json = sum(1 for r in decoded.dead_reasons if r.startswith(("invalid_json", "not_a_json_object")))
    if decoded.events.num_rows == 0 and invalid_json == len(values):
        raise UnreadableFileError(
            f"no line of the {len(values)} is a JSON object: not a JSON-lines file "
            f"(first problem: {decoded.dead_reasons[0]})"
        )
    line_numbers = np.asarray(numbers, dtype=np.int64)
    good_lines = pa.array(line_numbers[decoded.rows], pa.int64())
    rows = decoded.events.append_column(
        "source_key",
        pc.binary_join_element_wise(f"file/{key}/", pc.cast(good_lines, pa.string()), ""),
    ).append_column("source_line", good_lines)
    dead_lines = line_numbers[decoded.dead_rows]
    rejects = pa.table(
        {
            "source_line": pa.array(dead_lines, pa.int64()),
            "reason": pa.array(decoded.dead_reasons, pa.string()),
            "raw_content": pa.array([payload_text(values[i]) for i in decoded.dead_rows], pa.string()),
        }
    )
    return ParsedFile(
        rows=rows,
        rejects=rejects,
        total_rows=len(values),
        details={"format": "jsonl.gz" if name.lower().endswith(".gz") else "jsonl"},
    )
