"""Subscriptions platform domain (seed streaming-polyglot-platform): commands on Kafka -> outcomes, marts.

The raw layer is declared (assets/defs/subscriptions/user_events: the Kafka topic source with its
offsets sensor and jobs; assets/defs/subscriptions/landed_files: JSONL files into the same tables);
the rules, state tables and marts are SQL models (dbt_like_sql/models/subscriptions). This module
adds what follows the models: each outcome published once to SUBSCRIPTIONS_RESPONSES_TOPIC.
"""

from dagster import Definitions

from assets.subscriptions.responses import response_events

defs = Definitions(assets=[response_events])
