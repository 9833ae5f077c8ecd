"""The commerce side of its landing-file feed (declared in assets/defs/commerce/landed_files/defs.yaml).

Landed JSONL files feed the Kafka source's tables (``raw.commerce_events`` and its dead letters)
as partitions of ``raw/commerce_event_files``: the feed's hooks create those tables first and,
after each file, record a materialization of the assets owning them so staging reacts to both
sources alike.
"""

from __future__ import annotations

from dagster import AssetExecutionContext, AssetKey

from assets.commerce.file_reader import read_commerce_file
from assets.commerce.tables import DEAD_LETTER_TABLE, EVENTS_TABLE, RAW_SCHEMA, ensure_commerce_tables
from assets.sources.landing_feed.contract import (
    FileIngestOutcome,
    LandedContent,
    ParsedFile,
    record_writes_to,
)
from resources.settings import CommerceSettings
from resources.warehouse import WarehouseResource

# The assets owning the tables the files write to (the Kafka source's).
SHARED_ROWS = AssetKey([RAW_SCHEMA, EVENTS_TABLE])
SHARED_REJECTS = AssetKey([RAW_SCHEMA, DEAD_LETTER_TABLE])


def read_commerce_landing_file(content: LandedContent) -> ParsedFile:
    """The JSONL reader, with the event size limit read at run time (COMMERCE_MAX_EVENT_BYTES)."""
    return read_commerce_file(content, max_event_bytes=CommerceSettings.current().max_event_bytes)


def prepare_commerce_tables(warehouse: WarehouseResource) -> None:
    """Create the Kafka-owned tables (typed, indexed) before the first file writes to them."""
    ensure_commerce_tables(warehouse)


def record_shared_table_writes(context: AssetExecutionContext, outcome: FileIngestOutcome) -> None:
    """Landed rows live in the Kafka-owned tables: record their materialization so staging reacts."""
    record_writes_to(context, outcome, SHARED_ROWS, SHARED_REJECTS)
