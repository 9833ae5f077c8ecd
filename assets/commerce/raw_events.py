"""Raw layer of the commerce clickstream: its asset keys, group, owners and the Kafka source asset.

``raw/commerce_events`` (+ ``raw/commerce_events_dead_letter``) is the declared Kafka topic source
(assets/defs/commerce/kafka_events, mechanism ``assets.sources.kafka_topic``): each run consumes
exactly the ranges in its config and commits rows, dead letters and the offset ledger in one
transaction. Landed JSONL files feed the *same* tables through the declared landing feed
(assets/defs/commerce/landed_files, hooks in :mod:`assets.commerce.landed_files`).
"""

from assets.commerce.tables import RAW_COMMERCE_DEAD_LETTER, RAW_COMMERCE_EVENTS
from assets.external_sources import source_spec

COMMERCE_DOMAIN = "commerce"
COMMERCE_GROUP = "commerce"
COMMERCE_OWNERS = ["team:commerce"]

kafka_commerce_events = source_spec(
    "kafka_commerce_events",
    kind="kafka",
    domain=COMMERCE_DOMAIN,
    owners=COMMERCE_OWNERS,
    description=(
        "Clickstream events on the Kafka topic COMMERCE_KAFKA_TOPIC at KAFKA_BOOTSTRAP_SERVERS; "
        "commerce_kafka_offsets_sensor requests the offset ranges the warehouse ledger misses."
    ),
    settings=["COMMERCE_KAFKA_TOPIC", "KAFKA_BOOTSTRAP_SERVERS"],
)


__all__ = [
    "COMMERCE_DOMAIN",
    "COMMERCE_GROUP",
    "COMMERCE_OWNERS",
    "RAW_COMMERCE_DEAD_LETTER",
    "RAW_COMMERCE_EVENTS",
    "kafka_commerce_events",
]
