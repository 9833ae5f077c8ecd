"""Kafka resource: one place that turns connection settings into Kafka clients.

Assets, sensors and tests get producers/consumers/admin clients from here, so the broker address and
security settings come from configuration (``EnvVar("KAFKA_BOOTSTRAP_SERVERS")``), never from code.
kafka-python serves admin, produce and offset lookups; bulk reads of exact offset ranges use
confluent-kafka (librdkafka), which consumes about twice as fast per message as kafka-python.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from dagster import ConfigurableResource
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError
from pydantic import Field


class KafkaResource(ConfigurableResource):
    """Connection settings for a Kafka cluster, with small idempotent helpers used by pipelines and tests."""

    bootstrap_servers: str = Field(description="Comma-separated host:port list, e.g. 127.0.0.1:9092")
    security_protocol: str = Field(
        default="PLAINTEXT", description="PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"
    )
    sasl_mechanism: str | None = Field(default=None, description="PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512")
    sasl_username: str | None = None
    sasl_password: str | None = None
    client_id: str = "afluente"
    request_timeout_ms: int = 30_000

    def client_config(self) -> dict[str, Any]:
        """Settings shared by every client kind (kafka-python keyword arguments)."""
        config: dict[str, Any] = {
            "bootstrap_servers": [s.strip() for s in self.bootstrap_servers.split(",") if s.strip()],
            "security_protocol": self.security_protocol,
            "client_id": self.client_id,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            config["sasl_mechanism"] = self.sasl_mechanism
            config["sasl_plain_username"] = self.sasl_username
            config["sasl_plain_password"] = self.sasl_password
        return config

    def producer(self, **overrides: Any) -> KafkaProducer:
        """A producer that waits for the leader's ack by default (``acks=all`` on a 1-replica dev broker)."""
        return KafkaProducer(**{**self.client_config(), "acks": "all", "linger_ms": 5, **overrides})

    def consumer(self, *topics: str, **overrides: Any) -> KafkaConsumer:
        """A consumer that never auto-commits: pipelines commit offsets only after a successful write.

        Subscribes to ``topics`` when given; otherwise use ``assign()``/``seek()`` on the result.
        """
        config = {
            **self.client_config(),
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            **overrides,
        }
        # request_timeout_ms must exceed the session timeout for consumers.
        config["request_timeout_ms"] = max(config["request_timeout_ms"], 40_000)
        return KafkaConsumer(*topics, **config)

    def range_consumer(self, settings: Mapping[str, Any] | None = None) -> Any:
        """A confluent-kafka ``Consumer`` for ``assign`` + exact offsets: it never commits offsets.

        librdkafka needs a ``group.id`` even without subscribing; nothing is committed to that group
        (the warehouse ledger is the only record of what was consumed).
        """
        from confluent_kafka import Consumer

        config: dict[str, Any] = {
            "bootstrap.servers": self.bootstrap_servers,
            "security.protocol": self.security_protocol,
            "client.id": self.client_id,
            "group.id": f"{self.client_id}-range-reader",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            "socket.timeout.ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            config.update(
                {
                    "sasl.mechanism": self.sasl_mechanism,
                    "sasl.username": self.sasl_username,
                    "sasl.password": self.sasl_password,
                }
            )
        return Consumer({**config, **(settings or {})})

    def admin(self) -> KafkaAdminClient:
        return KafkaAdminClient(**self.client_config())

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication: int = 1,
        config: dict[str, str] | None = None,
        timeout_s: float = 30.0,
    ) -> bool:
        """Create ``name`` if missing and wait until every partition has a leader.

        Idempotent: returns True when this call created the topic, False when it already existed.
        """
        admin = self.admin()
        try:
            created = True
            try:
                admin.create_topics(
                    [NewTopic(name, partitions, replication, topic_configs=config or {})],
                    timeout_ms=int(timeout_s * 1000),
                )
            except TopicAlreadyExistsError:
                created = False
            deadline = time.monotonic() + timeout_s
            while not _has_leaders(admin, name):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"topic {name!r} has no leader for every partition after {timeout_s}s")
                time.sleep(0.2)
            return created
        finally:
            admin.close()

    def delete_topic(self, name: str) -> None:
        """Delete ``name``; a missing topic is not an error."""
        admin = self.admin()
        try:
            if name in admin.list_topics():
                admin.delete_topics([name])
        finally:
            admin.close()

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Next offset to be written, per partition (the log-end offsets); ``{}`` for an unknown topic."""
        consumer = self.consumer()
        try:
            partitions = consumer.partitions_for_topic(topic)
            if not partitions:
                return {}
            offsets = consumer.end_offsets([TopicPartition(topic, p) for p in sorted(partitions)])
            return {tp.partition: offset for tp, offset in sorted(offsets.items())}
        finally:
            consumer.close()


def _has_leaders(admin: KafkaAdminClient, topic: str) -> bool:
    described = admin.describe_topics([topic])
    if not described or described[0].get("error_code", 0) != 0:
        return False
    parts = described[0].get("partitions") or []
    return bool(parts) and all(p.get("leader_id", p.get("leader", -1)) >= 0 for p in parts)
