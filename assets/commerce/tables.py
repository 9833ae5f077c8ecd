"""The commerce raw tables, as the Kafka source declares them (assets/defs/commerce/kafka_events).

``raw.commerce_events`` and its dead letters belong to the commerce Kafka topic source; their DDL,
indexes and upgrade steps live in the mechanism (``assets.sources.kafka_topic``). Landed JSONL
files append to the same tables, so the landing feed's hook creates them through this module.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from dagster import AssetKey

from assets.sources.kafka_topic import KafkaTopicSource
from resources.warehouse import WarehouseResource

KAFKA_EVENTS_DECLARATION = (
    Path(__file__).resolve().parents[1] / "defs" / "commerce" / "kafka_events" / "defs.yaml"
)


@cache
def commerce_events_source() -> KafkaTopicSource:
    """The declared commerce Kafka topic source (read once per process)."""
    return KafkaTopicSource.from_defs_yaml(KAFKA_EVENTS_DECLARATION)


_TABLES = commerce_events_source().tables
RAW_SCHEMA, EVENTS_TABLE = _TABLES.raw
DEAD_LETTER_TABLE = _TABLES.dead_letter[1]
PIPELINE = _TABLES.pipeline
RAW_COMMERCE_EVENTS = AssetKey([RAW_SCHEMA, EVENTS_TABLE])
RAW_COMMERCE_DEAD_LETTER = AssetKey([RAW_SCHEMA, DEAD_LETTER_TABLE])


def ensure_commerce_tables(warehouse: WarehouseResource) -> None:
    """Create the commerce raw tables (typed, indexed, upgraded) if needed; idempotent."""
    commerce_events_source().ensure_tables(warehouse)


__all__ = [
    "DEAD_LETTER_TABLE",
    "EVENTS_TABLE",
    "PIPELINE",
    "RAW_COMMERCE_DEAD_LETTER",
    "RAW_COMMERCE_EVENTS",
    "RAW_SCHEMA",
    "commerce_events_source",
    "ensure_commerce_tables",
]
