"""Subscriptions platform domain (seed streaming-polyglot-platform): commands on Kafka -> outcomes, marts.

The raw layer is declared (assets/defs/subscriptions/user_events: the Kafka topic source with its
offsets sensor and jobs; assets/defs/subscriptions/landed_files: JSONL files into the same tables);
the rules, state tables and marts are SQL models (dbt_like_sql/models/subscriptions). This module
adds what follows the models: each outcome published once to SUBSCRIPTIONS_RESPONSES_TOPIC.
"""

from dagster import Definitions

from assets.external_sources import source_spec
from assets.subscriptions.responses import response_events

# The head of the lineage: raw/user_events (assets/defs/subscriptions/user_events) depends on it.
kafka_subscriptions_commands = source_spec(
    "kafka_subscriptions_commands",
    kind="kafka",
    domain="subscriptions",
    owners=["team:subscriptions"],
    description=(
        "Subscription commands on the Kafka topic SUBSCRIPTIONS_COMMANDS_TOPIC at KAFKA_BOOTSTRAP_SERVERS; "
        "its offsets sensor requests the ranges the warehouse ledger misses."
    ),
    settings=["SUBSCRIPTIONS_COMMANDS_TOPIC", "KAFKA_BOOTSTRAP_SERVERS"],
)

defs = Definitions(assets=[kafka_subscriptions_commands, response_events])
