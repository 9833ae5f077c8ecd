"""The subscriptions generator's Kafka sink on the real broker: every message arrives once, keyed by
user id, each user's commands in order on one partition."""

import datetime as dt
import time

import orjson
import pytest
from confluent_kafka import Consumer, TopicPartition

from generators.subscriptions import main
from services import ConnectionInfo


def _read_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30.0) -> list:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-reader", "enable.auto.commit": False})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        messages, deadline = [], time.monotonic() + timeout_s
        while len(messages) < expected and time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                messages.append(message)
        return messages
    finally:
        consumer.close()


def test_cli_produces_every_command_keyed_by_user_in_order(
    kafka_server: ConnectionInfo, kafka_topic: str, capsys: pytest.CaptureFixture
) -> None:
    args = ["--users", "150", "--days", "20", "--seed", "9", "--bad-share", "0.02", "--no-progress"]
    assert main([*args, "--kafka", kafka_server.url, "--topic", kafka_topic]) == 0
    out = capsys.readouterr().out
    sent = int(out.split()[1])
    assert sent > 300 and f"to topic {kafka_topic}" in out
    messages = _read_all(kafka_server.url, kafka_topic, sent)
    assert len(messages) == sent
    partition_of: dict[bytes, int] = {}
    last: dict[bytes, str] = {}
    valid = 0
    for message in sorted(messages, key=lambda m: (m.partition(), m.offset())):
        key = message.key()
        assert partition_of.setdefault(key, message.partition()) == message.partition()
        try:
            event = orjson.loads(message.value())
        except orjson.JSONDecodeError:
            continue
        if not isinstance(event, dict) or not all(
            isinstance(event.get(f), str) for f in ("occurred_at", "user_id")
        ):
            continue  # a malformed message (the broken copy of a valid one keeps its key)
        assert event["user_id"].encode() == key
        assert event["occurred_at"] >= last.get(key, "")
        last[key] = event["occurred_at"]
        valid += 1
    assert valid >= sent * 0.95
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    assert max(last.values()) <= now + "Z"
