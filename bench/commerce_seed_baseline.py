"""The commerce Kafka benchmark's baseline: the seed project's consumer, measured on the same topic.

kafka-python consumer group, JSON per message, batches of 100, one row INSERT per table per event into
``seed.events``/``seed.products``/``seed.transactions``, one commit per batch: what the platform's
ingest is compared with in :mod:`bench.commerce_kafka`.
"""

import json
import time
import uuid
from typing import Any

import sqlalchemy as sa

SEED_DDL = (
    "CREATE SCHEMA IF NOT EXISTS seed",
    "CREATE TABLE IF NOT EXISTS seed.events (id SERIAL PRIMARY KEY, event_id VARCHAR(100) UNIQUE, "
    "event_type VARCHAR(50), timestamp TIMESTAMP, user_id VARCHAR(100), session_id VARCHAR(100))",
    "CREATE TABLE IF NOT EXISTS seed.products (id SERIAL PRIMARY KEY, product_id VARCHAR(100) UNIQUE, "
    "product_name VARCHAR(255), category VARCHAR(100), price DECIMAL(10, 2))",
    "CREATE TABLE IF NOT EXISTS seed.transactions (id SERIAL PRIMARY KEY, "
    "transaction_id VARCHAR(100) UNIQUE, "
    "event_id VARCHAR(100) REFERENCES seed.events(event_id), product_id VARCHAR(100) REFERENCES "
    "seed.products(product_id), quantity INTEGER, total_amount DECIMAL(10, 2), payment_method VARCHAR(50), "
    "timestamp TIMESTAMP)",
    "CREATE INDEX IF NOT EXISTS idx_events_timestamp ON seed.events(timestamp)",
    "CREATE INDEX IF NOT EXISTS idx_events_user_id ON seed.events(user_id)",
    "CREATE INDEX IF NOT EXISTS idx_transactions_product_id ON seed.transactions(product_id)",
    "CREATE INDEX IF NOT EXISTS idx_products_category ON seed.products(category)",
)


def seed_baseline(
    bootstrap: str, topic: str, pg_url: str, limit: int, max_seconds: float
) -> tuple[float, int]:
    """kafka-python consumer group, batches of 100, one row INSERT per table per event, commit per batch."""
    import psycopg
    from kafka import KafkaConsumer

    dsn = sa.make_url(pg_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        for statement in SEED_DDL:
            conn.execute(statement)
        conn.commit()
        consumer = KafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            group_id=f"seed-baseline-{uuid.uuid4().hex[:6]}",
            auto_offset_reset="earliest",
            enable_auto_commit=True,
            max_poll_records=100,
            value_deserializer=lambda v: v,
        )
        processed = 0
        started = time.perf_counter()
        try:
            while processed < limit and time.perf_counter() - started < max_seconds:
                batch = consumer.poll(timeout_ms=1000, max_records=100)
                for records in batch.values():
                    for record in records:
                        processed += 1
                        try:
                            event = json.loads(record.value)
                            _seed_insert(conn, event)
                        except (ValueError, KeyError, TypeError, AttributeError, psycopg.Error):
                            conn.rollback()
                            continue
                conn.commit()
        finally:
            consumer.close()
        return time.perf_counter() - started, processed


def _seed_insert(conn: Any, event: dict) -> None:
    conn.execute(
        "INSERT INTO seed.events (event_id, event_type, timestamp, user_id, session_id) "
        "VALUES (%s, %s, %s, %s, %s) ON CONFLICT (event_id) DO NOTHING",
        (event["event_id"], event["event_type"], event["timestamp"], event["user_id"], event["session_id"]),
    )
    # {} when absent: a purchase without a product then fails on its KeyError and is skipped.
    product = event.get("product") or {}
    if product:
        conn.execute(
            "INSERT INTO seed.products (product_id, product_name, category, price) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (product_id) DO UPDATE SET product_name = EXCLUDED.product_name, "
            "category = EXCLUDED.category, price = EXCLUDED.price",
            (product["id"], product["name"], product["category"], product["price"]),
        )
    if event["event_type"] == "purchase":
        conn.execute(
            "INSERT INTO seed.transactions (transaction_id, event_id, product_id, quantity, total_amount, "
            "payment_method, timestamp) VALUES (%s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (transaction_id) DO NOTHING",
            (
                event["event_id"],
                event["event_id"],
                product["id"],
                event["quantity"],
                event["total_amount"],
                event["payment_method"],
                event["timestamp"],
            ),
        )
