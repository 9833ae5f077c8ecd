"""The subscriptions side of its landing-file feed (assets/defs/subscriptions/landed_files/defs.yaml).

JSONL files of command envelopes (``make demo``, generators, replays) are decoded by the Kafka
source's decoder and land in its tables (``raw.user_events`` + dead letters); after each file a
materialization of those assets is recorded so the models downstream react to both sources alike.
"""

from __future__ import annotations

from dagster import AssetExecutionContext

from assets.sources.landing_feed.contract import (
    FileIngestOutcome,
    LandedContent,
    ParsedFile,
    record_writes_to,
)
from assets.sources.landing_feed.jsonl import read_jsonl_events
from assets.subscriptions.decode import DEFAULT_MAX_EVENT_BYTES, decode_commands
from assets.subscriptions.tables import (
    RAW_USER_EVENTS,
    RAW_USER_EVENTS_DEAD_LETTER,
    ensure_subscription_tables,
)
from resources.warehouse import WarehouseResource


def read_subscription_file(content: LandedContent) -> ParsedFile:
    """One JSONL file of command envelopes, through the Kafka source's decoder."""
    return read_jsonl_events(content, decode_commands, DEFAULT_MAX_EVENT_BYTES)


def prepare_subscription_tables(warehouse: WarehouseResource) -> None:
    """Create the Kafka-owned tables before the first file writes to them."""
    ensure_subscription_tables(warehouse)


def record_shared_table_writes(context: AssetExecutionContext, outcome: FileIngestOutcome) -> None:
    """Landed rows live in the Kafka-owned tables: record their materialization so the models react."""
    record_writes_to(context, outcome, RAW_USER_EVENTS, RAW_USER_EVENTS_DEAD_LETTER)
