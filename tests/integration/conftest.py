"""Fixtures shared by the commerce Kafka integration tests."""

from collections.abc import Iterator

import pytest

from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource, dispose_engines
from services import ConnectionInfo


@pytest.fixture
def pg(pg_database_url: str) -> Iterator[WarehouseResource]:
    """A warehouse on a fresh PostgreSQL database; pooled connections closed before it is dropped."""
    yield WarehouseResource(url=pg_database_url)
    dispose_engines()


@pytest.fixture
def kafka(kafka_server: ConnectionInfo) -> KafkaResource:
    return KafkaResource(bootstrap_servers=kafka_server.url, client_id="afluente-tests")


@pytest.fixture
def topic_env(kafka_topic: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh topic as COMMERCE_KAFKA_TOPIC, with small runs so a few thousand events make a backlog."""
    monkeypatch.setenv("COMMERCE_KAFKA_TOPIC", kafka_topic)
    monkeypatch.setenv("COMMERCE_KAFKA_MAX_EVENTS_PER_RUN", "400")
    monkeypatch.setenv("COMMERCE_KAFKA_MAX_RUNS_PER_TICK", "50")
    return kafka_topic
