"""The subscriptions raw tables, as the Kafka source declares them (assets/defs/subscriptions/user_events).

``raw.user_events`` and its dead letters belong to the declared Kafka topic source; landed JSONL
files of the same envelopes append to the same tables, so the landing feed's hook creates them
through this module.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from assets.sources.kafka_topic import KafkaTopicSource
from resources.warehouse import WarehouseResource

DOMAIN = "subscriptions"
OWNERS = ["team:subscriptions"]
USER_EVENTS_DECLARATION = (
    Path(__file__).resolve().parents[1] / "defs" / "subscriptions" / "user_events" / "defs.yaml"
)


@cache
def user_events_source() -> KafkaTopicSource:
    """The declared user_events Kafka topic source (read once per process)."""
    return KafkaTopicSource.from_defs_yaml(USER_EVENTS_DECLARATION)


RAW_USER_EVENTS = user_events_source().raw_key
RAW_USER_EVENTS_DEAD_LETTER = user_events_source().dead_letter_key


def ensure_subscription_tables(warehouse: WarehouseResource) -> None:
    """Create the raw tables (typed, indexed, upgraded) if needed; idempotent."""
    user_events_source().ensure_tables(warehouse)


__all__ = [
    "DOMAIN",
    "OWNERS",
    "RAW_USER_EVENTS",
    "RAW_USER_EVENTS_DEAD_LETTER",
    "ensure_subscription_tables",
    "user_events_source",
]
