"""Kafka topic source: a topic read exactly once (offset ledger in the warehouse) into a raw table.

Declare an instance in ``assets/defs/<domain>/<source>/defs.yaml`` with
``type: assets.sources.kafka_topic.KafkaTopicSource`` (see the README, "Add a source").
"""

from assets.sources.kafka_topic.component import KafkaTopicSource

__all__ = ["KafkaTopicSource"]
