"""JSONL commerce files from the landing zone: the file-fed path into ``raw.commerce_events``.

One JSON event per line (``.jsonl``, ``.ndjson``, optionally gzipped), validated by the same
vectorized rules as Kafka messages (:mod:`assets.commerce.decode`) through the shared JSONL reader
(:mod:`assets.sources.landing_feed.jsonl`). Lines that fail go to the dead-letter table with their
line number, reason and raw text; a file with no usable line at all (empty, binary, not JSON lines)
is unreadable and goes to quarantine.
"""

from __future__ import annotations

from pathlib import Path

from assets.commerce.decode import decode_events
from assets.sources.landing_feed.contract import ParsedFile
from assets.sources.landing_feed.jsonl import read_jsonl_events
from resources.landing_zone import LandedContent


def read_commerce_file(source: LandedContent | Path, max_event_bytes: int = 65_536) -> ParsedFile:
    """Parse one JSONL file into valid event rows and rejected lines (see module docstring).

    ``source`` is what the landing ingest read (bytes and partition key), or a path (tools, tests).
    """
    return read_jsonl_events(source, decode_events, max_event_bytes)
