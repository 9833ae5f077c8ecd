"""Publish each command's outcome to the response topic once (seed S2 -> ``response_events``).

``stg/subscription_responses`` runs after ``stg.command_outcomes``: every outcome not yet in the
ledger ``ops.subscription_responses`` is produced to ``SUBSCRIPTIONS_RESPONSES_TOPIC`` keyed by its
correlation_id (idempotent producer, ``acks=all``: librdkafka's retries neither duplicate nor
reorder), and only the outcomes whose delivery report came back are recorded, with the partition
and offset Kafka gave them, in one transaction.

Exactly once across crashes: a run killed after Kafka took messages but before the ledger commit
leaves messages the ledger does not know. Each run first reads the topic past the highest recorded
offset of every partition and records the correlation_ids it finds there, so they are not produced
again. This holds because one publisher runs at a time (the asset's pool, limit 1).
"""

import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import sqlalchemy as sa
from dagster import AssetExecutionContext, AssetKey, Failure, MaterializeResult, asset

from assets.sources.kafka_topic._consumer import RangeConsumer
from assets.sources.kafka_topic._ledger import OffsetRange
from assets.subscriptions.tables import DOMAIN, OWNERS
from resources.bulk_write import quote_ident
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.kafka import KafkaResource
from resources.platform_tables import PlatformTables, TableSpec, baseline, ensure_platform_tables
from resources.settings import SubscriptionsSettings
from resources.warehouse import WarehouseResource

LEDGER = ("ops", "subscription_responses")
OUTCOMES = ("stg", "command_outcomes")
RESPONSES_KEY = AssetKey(["stg", "subscription_responses"])
POOL = "subscriptions/responses"
MAX_PER_RUN = 100_000
DELIVERY_TIMEOUT_S = 60.0
# Shape unchanged since the publisher introduced it (5ff6433).
LEDGER_TABLES = PlatformTables(
    f"subscriptions/{LEDGER[0]}.{LEDGER[1]}",
    (
        TableSpec(
            *LEDGER,
            (
                ("correlation_id", "TEXT"),
                ("status", "TEXT"),
                ("topic", "TEXT"),
                ("kafka_partition", "INTEGER"),
                ("kafka_offset", "BIGINT"),
                ("published_at", "TIMESTAMP"),
            ),
            primary_key=("correlation_id",),
        ),
    ),
    (baseline("ops.subscription_responses as created since the publisher's first version (5ff6433)"),),
)


@dataclass(frozen=True)
class Published:
    """One outcome Kafka has: where it is."""

    correlation_id: str
    status: str
    partition: int
    offset: int


@dataclass
class PublishReport:
    recovered: int = 0
    published: int = 0
    failed: int = 0
    pending: int = 0


def ensure_ledger(warehouse: WarehouseResource) -> None:
    """Create ``ops.subscription_responses`` and apply its pending steps (idempotent, one transaction)."""
    ensure_platform_tables(warehouse, LEDGER_TABLES)


def _record(warehouse: WarehouseResource, topic: str, items: list[Published]) -> None:
    """Add delivered outcomes to the ledger in one transaction (already recorded ones are kept)."""
    if not items:
        return
    now = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.begin() as conn:
        statement = sa.text(
            f"INSERT INTO {quote_ident(conn, *LEDGER)} "
            "(correlation_id, status, topic, kafka_partition, kafka_offset, published_at) "
            "VALUES (:cid, :status, :topic, :partition, :offset, :at) ON CONFLICT (correlation_id) DO NOTHING"
        )
        conn.execute(
            statement,
            [
                {
                    "cid": i.correlation_id,
                    "status": i.status,
                    "topic": topic,
                    "partition": i.partition,
                    "offset": i.offset,
                    "at": now,
                }
                for i in items
            ],
        )


def _unrecorded_tail(warehouse: WarehouseResource, kafka: KafkaResource, topic: str) -> Iterator[Published]:
    """Messages on the topic past the ledger's highest offset per partition (a crash's leftovers)."""
    ends = kafka.end_offsets(topic)
    if not ends:
        return
    with warehouse.connect() as conn:
        recorded: dict[int, int] = dict(
            conn.execute(
                sa.text(
                    f"SELECT kafka_partition, MAX(kafka_offset) FROM {quote_ident(conn, *LEDGER)} "
                    "WHERE topic = :topic GROUP BY kafka_partition"
                ),
                {"topic": topic},
            ).all()
        )
    ranges = [
        OffsetRange(p, recorded[p] + 1 if p in recorded else 0, end)
        for p, end in ends.items()
        if end > (recorded[p] + 1 if p in recorded else 0)
    ]
    if not ranges:
        return
    consumer = kafka.range_consumer()
    try:
        reader = RangeConsumer(consumer, topic, ranges, idle_timeout_s=30.0, log=None)
        for partitions, offsets, _, values in reader.chunks(5_000):
            for partition, offset, value in zip(partitions, offsets, values, strict=True):
                try:
                    message = orjson.loads(value)
                    yield Published(message["correlation_id"], message["status"], int(partition), int(offset))
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    continue  # not an outcome message: nothing to remember
    finally:
        consumer.close()


def _pending(warehouse: WarehouseResource, limit: int) -> list[dict[str, Any]]:
    with warehouse.connect() as conn:
        result = conn.execute(
            sa.text(
                "SELECT o.correlation_id, o.status, o.reason, o.row_ids, o.event_type, o.user_id, "
                f"o.processed_at FROM {quote_ident(conn, *OUTCOMES)} AS o "
                f"WHERE NOT EXISTS (SELECT 1 FROM {quote_ident(conn, *LEDGER)} AS p "
                "WHERE p.correlation_id = o.correlation_id) "
                "ORDER BY o.processed_at, o.correlation_id LIMIT :limit"
            ),
            {"limit": limit},
        )
        return [dict(row._mapping) for row in result]


def outcome_message(row: dict[str, Any]) -> bytes:
    """The published JSON: the outcome as GET /status answers it, plus the command's type and user."""
    processed_at = row["processed_at"]
    return orjson.dumps(
        {
            "correlation_id": row["correlation_id"],
            "status": row["status"],
            "reason": row["reason"],
            "row_ids": orjson.loads(row["row_ids"]) if row["row_ids"] else None,
            "event_type": row["event_type"],
            "user_id": row["user_id"],
            "processed_at": processed_at.isoformat() + "Z" if processed_at else None,
        }
    )


def _producer(kafka: KafkaResource) -> Any:
    from confluent_kafka import Producer

    config: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "security.protocol": kafka.security_protocol,
        "client.id": f"{kafka.client_id}-responses",
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 5,
        "delivery.timeout.ms": int(DELIVERY_TIMEOUT_S * 1000),
    }
    if kafka.sasl_mechanism:
        config.update(
            {
                "sasl.mechanism": kafka.sasl_mechanism,
                "sasl.username": kafka.sasl_username,
                "sasl.password": kafka.sasl_password,
            }
        )
    return Producer(config)


def publish_outcomes(
    warehouse: WarehouseResource, kafka: KafkaResource, topic: str, limit: int = MAX_PER_RUN
) -> PublishReport:
    """Recover a crashed run's leftovers, then publish and record the outcomes not yet published."""
    ensure_ledger(warehouse)
    report = PublishReport()
    leftovers = list(_unrecorded_tail(warehouse, kafka, topic))
    _record(warehouse, topic, leftovers)
    report.recovered = len(leftovers)
    pending = _pending(warehouse, limit)
    report.pending = len(pending)
    if not pending:
        return report
    delivered: list[Published] = []
    failures: list[str] = []

    def on_delivery(error: Any, message: Any, row: dict[str, Any]) -> None:
        if error is not None:
            failures.append(f"{row['correlation_id']}: {error}")
        else:
            delivered.append(
                Published(row["correlation_id"], row["status"], message.partition(), message.offset())
            )

    producer = _producer(kafka)
    for row in pending:
        while True:
            try:
                producer.produce(
                    topic,
                    key=row["correlation_id"].encode(),
                    value=outcome_message(row),
                    on_delivery=lambda err, msg, row=row: on_delivery(err, msg, row),
                )
                break
            except BufferError:
                producer.poll(0.1)  # local queue full: serve delivery reports, then retry
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S + 5
    while producer.flush(1.0) and time.monotonic() < deadline:
        pass
    _record(warehouse, topic, delivered)
    report.published, report.failed = len(delivered), len(pending) - len(delivered)
    if report.failed:
        raise Failure(
            description=f"{report.failed} outcomes not confirmed by Kafka (published again next run): "
            + "; ".join(failures[:5]),
            metadata={"published": report.published, "recovered": report.recovered},
        )
    return report


@asset(
    key=RESPONSES_KEY,
    deps=[AssetKey(list(OUTCOMES))],
    group_name=DOMAIN,
    owners=OWNERS,
    kinds={"python", "kafka"},
    tags={"layer": "stg", "domain": DOMAIN},
    metadata={"dagster/table_name": ".".join(LEDGER)},
    pool=POOL,
    retry_policy=NETWORK_RETRY_POLICY,
    # No automation: it runs in the Kafka catch-up run (it is downstream of raw/user_events), so it runs
    # where commands arrive through Kafka and never where they come only from landed files (make demo).
    description=(
        "Each command's outcome (stg.command_outcomes) published once to SUBSCRIPTIONS_RESPONSES_TOPIC, "
        "keyed by correlation_id; ledger ops.subscription_responses advanced after the delivery reports. "
        "Runs in the Kafka catch-up run of the domain (commands that arrive on Kafka are answered on Kafka)."
    ),
)
@fail_fast_on_permanent_errors
def response_events(
    context: AssetExecutionContext, warehouse: WarehouseResource, kafka: KafkaResource
) -> MaterializeResult:
    """Publish the outcomes the ledger does not hold yet (see the module docstring)."""
    topic = SubscriptionsSettings.current().responses_topic
    report = publish_outcomes(warehouse, kafka, topic)
    context.log.info(f"{topic}: {report.published} outcomes published, {report.recovered} recovered")
    return MaterializeResult(
        metadata={
            "topic": topic,
            "published": report.published,
            "recovered_after_crash": report.recovered,
            "pending_at_start": report.pending,
        }
    )
