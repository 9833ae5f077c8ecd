"""Raw layer of the commerce clickstream: Kafka offset ranges and landed JSONL files.

``raw/commerce_events`` (+ ``raw/commerce_events_dead_letter``) is fed by the Kafka offsets sensor:
each run consumes exactly the ranges in its config and commits rows, dead letters and the offset
ledger in one transaction. Landed JSONL files feed the *same* tables through the shared landing
mechanism as partitions of ``raw/commerce_event_files``; such a run also records a materialization
of ``raw/commerce_events``, so everything downstream reacts to both sources alike.
"""

import logging
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetSpec,
    Config,
    DynamicPartitionsDefinition,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from assets.commerce.file_reader import COMMERCE_FILE_PATTERNS, read_commerce_file
from assets.commerce.kafka_ingest import PIPELINE, IngestResult, RangeUnavailableError, ingest_kafka_ranges
from assets.commerce.ledger import OffsetRange, read_covered
from assets.commerce.tables import (
    DEAD_LETTER_TABLE,
    EVENTS_TABLE,
    KAFKA_COORDINATES_BRIN,
    RAW_SCHEMA,
    ensure_commerce_tables,
)
from assets.external_sources import landing_source_spec, source_spec
from assets.landing_file_asset import build_landing_file_asset
from assets.landing_ingest import FileIngestOutcome, LandingTarget, ParsedFile
from resources.bulk_write import quote_ident
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.kafka import KafkaResource
from resources.settings import setting, setting_int
from resources.warehouse import WarehouseResource
from sensors.kafka_offsets import plan_kafka_runs, topic_offsets

_LOG = logging.getLogger(__name__)

COMMERCE_DOMAIN = "commerce"
COMMERCE_GROUP = "commerce"
COMMERCE_OWNERS = ["team:commerce"]
KAFKA_INGEST_OP = "raw_commerce_events"

RAW_COMMERCE_EVENTS = AssetKey([RAW_SCHEMA, EVENTS_TABLE])
RAW_COMMERCE_DEAD_LETTER = AssetKey([RAW_SCHEMA, DEAD_LETTER_TABLE])
RAW_COMMERCE_EVENT_FILES = AssetKey([RAW_SCHEMA, "commerce_event_files"])
RAW_COMMERCE_EVENT_FILE_REJECTS = AssetKey([RAW_SCHEMA, "commerce_event_file_rejects"])

commerce_files_partitions = DynamicPartitionsDefinition(name="commerce_files")

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
landing_commerce = landing_source_spec(COMMERCE_DOMAIN, owners=COMMERCE_OWNERS, formats="JSONL clickstream")

COMMERCE_FILES_TARGET = LandingTarget(
    domain=COMMERCE_DOMAIN,
    rows_table=(RAW_SCHEMA, EVENTS_TABLE),
    rejects_table=(RAW_SCHEMA, DEAD_LETTER_TABLE),
)


class KafkaRangeConfig(Config):
    """Offsets ``[start_offset, end_offset)`` of one partition."""

    partition: int = Field(ge=0)
    start_offset: int = Field(ge=0)
    end_offset: int = Field(ge=0)


class CommerceKafkaIngestConfig(Config):
    """Which offsets a run consumes; the Kafka offsets sensor fills ``ranges`` in."""

    topic: str = Field(default="", description="Kafka topic; empty = COMMERCE_KAFKA_TOPIC")
    ranges: list[KafkaRangeConfig] = Field(
        default_factory=list,
        description=(
            "Exact offset ranges to consume. Empty (a manual materialization): whatever the ledger is "
            "missing, up to COMMERCE_KAFKA_MAX_EVENTS_PER_RUN offsets."
        ),
    )


def kafka_run_config(topic: str, ranges: Sequence[OffsetRange]) -> dict[str, Any]:
    """Run config making ``raw/commerce_events`` consume exactly ``ranges`` of ``topic``."""
    return {
        "ops": {
            KAFKA_INGEST_OP: {
                "config": {
                    "topic": topic,
                    "ranges": [
                        {"partition": r.partition, "start_offset": r.start_offset, "end_offset": r.end_offset}
                        for r in sorted(ranges)
                    ],
                }
            }
        }
    }


def consumer_settings(max_events: int) -> dict[str, Any]:
    """librdkafka overrides for bulk range reads: big fetches, a deep local queue."""
    return {
        "fetch.max.bytes": 64 * 1024 * 1024,
        "max.partition.fetch.bytes": 16 * 1024 * 1024,
        "queued.max.messages.kbytes": 256 * 1024,
        "queued.min.messages": min(max(max_events, 1_000), 500_000),
    }


def _missing_ranges(kafka: KafkaResource, warehouse: WarehouseResource, topic: str) -> list[OffsetRange]:
    """For a run without ranges: the oldest missing offsets, one run's worth."""
    ensure_commerce_tables(warehouse)
    with warehouse.connect() as conn:
        covered = read_covered(conn, PIPELINE, topic)
    plan = plan_kafka_runs(
        topic_offsets(kafka, topic),
        covered,
        {},
        max_events_per_run=setting_int("COMMERCE_KAFKA_MAX_EVENTS_PER_RUN"),
        max_runs=1,
    )
    return list(plan.runs[0].ranges) if plan.runs else []


def reconcile_ranges(
    warehouse: WarehouseResource, topic: str, ranges: Sequence[OffsetRange]
) -> dict[str, int]:
    """Rows + dead letters stored for ``ranges`` vs the offsets they span (minus expired ones).

    On PostgreSQL the events are found through the BRIN index on their coordinates: the pages
    just loaded are summarized first, and the planner is kept off a sequential scan (right after
    a bulk load it has no statistics and would read the whole table on every run).
    """
    counts = {"offsets": sum(r.size for r in ranges), "events": 0, "dead_letters": 0}
    if not ranges:
        return counts
    with warehouse.begin() as conn:
        if conn.dialect.name == "postgresql":
            _summarize_new_pages(conn)
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for table, name in ((EVENTS_TABLE, "events"), (DEAD_LETTER_TABLE, "dead_letters")):
            where = " OR ".join(
                f"(source_partition = :p{i} AND source_offset >= :s{i} AND source_offset < :e{i})"
                for i in range(len(ranges))
            )
            params: dict[str, Any] = {"topic": topic}
            for i, r in enumerate(ranges):
                params.update({f"p{i}": r.partition, f"s{i}": r.start_offset, f"e{i}": r.end_offset})
            counts[name] = int(
                conn.execute(
                    sa.text(
                        f"SELECT COUNT(*) FROM {quote_ident(conn, RAW_SCHEMA, table)} "
                        f"WHERE source_topic = :topic AND ({where})"
                    ),
                    params,
                ).scalar_one()  # COUNT(*) without GROUP BY: always exactly one row
            )
    return counts


# How long the summary may wait for its table lock. It needs SHARE UPDATE EXCLUSIVE, which
# autovacuum and ANALYZE hold for seconds on a table that just grew; waiting would stall the run
# (PostgreSQL cancels autovacuum only after deadlock_timeout, 1 s), and skipping loses nothing.
_SUMMARIZE_LOCK_TIMEOUT = "50ms"
_LOCK_NOT_AVAILABLE = "55P03"


def _summarize_new_pages(conn: sa.Connection) -> None:
    """Summarize the BRIN ranges loaded since the last summary, if the table lock is free now.

    Best effort: unsummarized ranges still match every BRIN scan (the count stays exact, it only
    reads those pages), and autovacuum summarizes them when it vacuums the table.
    """
    index = f"{RAW_SCHEMA}.{KAFKA_COORDINATES_BRIN}"
    try:
        with conn.begin_nested():
            # set_config(..., true) is undone with the savepoint if the summary fails; on success
            # the previous value is put back so the count below is not bound by it.
            set_lock_timeout = sa.text("SELECT set_config('lock_timeout', :t, true)")
            previous = conn.execute(sa.text("SELECT current_setting('lock_timeout')")).scalar_one()
            conn.execute(set_lock_timeout, {"t": _SUMMARIZE_LOCK_TIMEOUT})
            conn.execute(sa.text("SELECT brin_summarize_new_values(to_regclass(:index))"), {"index": index})
            conn.execute(set_lock_timeout, {"t": previous})
    except sa.exc.DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) == _LOCK_NOT_AVAILABLE:
            _LOG.info(f"{index} not summarized: its table is being vacuumed or analyzed")
        else:
            _LOG.warning(f"could not summarize {index}: {exc}")


_KAFKA_COMMON: dict[str, Any] = {
    "group_name": COMMERCE_GROUP,
    "owners": COMMERCE_OWNERS,
    "kinds": {"python", "kafka", "table"},
    "tags": {"layer": "raw", "domain": COMMERCE_DOMAIN},
    "deps": [kafka_commerce_events.key],
}


@multi_asset(
    name=KAFKA_INGEST_OP,
    specs=[
        AssetSpec(
            RAW_COMMERCE_EVENTS,
            description=(
                "Valid clickstream events, one row per Kafka message (or landed JSONL line), with "
                "source coordinates (topic, partition, offset, Kafka timestamp) and ingest audit columns."
            ),
            metadata={"dagster/table_name": f"{RAW_SCHEMA}.{EVENTS_TABLE}"},
            **_KAFKA_COMMON,
        ),
        AssetSpec(
            RAW_COMMERCE_DEAD_LETTER,
            description=(
                "Malformed clickstream messages: topic, partition, offset (or file line), raw payload, "
                "payload size and the reason it was rejected."
            ),
            metadata={"dagster/table_name": f"{RAW_SCHEMA}.{DEAD_LETTER_TABLE}"},
            **_KAFKA_COMMON,
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            "kafka_ranges_reconciled",
            asset=RAW_COMMERCE_EVENTS,
            description="Events + dead letters stored for the run's ranges equal the offsets they span.",
        )
    ],
    # A retry replays the same ranges (idempotent by ledger); a run that still fails leaves them
    # missing from the ledger, and the sensor requests them again under a new run key.
    retry_policy=NETWORK_RETRY_POLICY,
    op_tags={"afluente/domain": COMMERCE_DOMAIN},
)
@fail_fast_on_permanent_errors
def raw_commerce_events(
    context: AssetExecutionContext,
    config: CommerceKafkaIngestConfig,
    warehouse: WarehouseResource,
    kafka: KafkaResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Consume the configured offset ranges; rows, dead letters and ledger commit together."""
    topic = config.topic or setting("COMMERCE_KAFKA_TOPIC")
    ranges = [OffsetRange(r.partition, r.start_offset, r.end_offset) for r in config.ranges]
    if not ranges:
        ranges = _missing_ranges(kafka, warehouse, topic)
        context.log.info(f"no ranges in run config; consuming what the ledger misses: {ranges}")
    max_events = sum(r.size for r in ranges)
    try:
        result: IngestResult = ingest_kafka_ranges(
            consumer_factory=lambda: kafka.range_consumer(consumer_settings(max_events)),
            warehouse=warehouse,
            topic=topic,
            ranges=ranges,
            run_id=context.run.run_id,
            max_event_bytes=setting_int("COMMERCE_MAX_EVENT_BYTES"),
            log=context.log,
        )
    except RangeUnavailableError as exc:
        raise Failure(description=str(exc), allow_retries=False) from exc
    meta = result.metadata()
    yield MaterializeResult(
        asset_key=RAW_COMMERCE_EVENTS,
        metadata={
            **meta,
            "dagster/row_count": result.events_loaded,
            "dead_letter_reasons": MetadataValue.json(result.reasons),
        },
    )
    yield MaterializeResult(
        asset_key=RAW_COMMERCE_DEAD_LETTER,
        metadata={**meta, "dagster/row_count": result.dead_letters},
    )
    counts = reconcile_ranges(warehouse, topic, result.ranges)
    stored = counts["events"] + counts["dead_letters"]
    yield AssetCheckResult(
        asset_key=RAW_COMMERCE_EVENTS,
        check_name="kafka_ranges_reconciled",
        passed=stored + result.expired_offsets >= counts["offsets"] and stored <= counts["offsets"],
        # Transactional producers leave control records (offsets without a message): warn only.
        severity=AssetCheckSeverity.WARN,
        metadata={**counts, "expired_offsets": result.expired_offsets},
    )


# ------------------------------------------------------------------------------------------------
# Landed JSONL files


def read_commerce_landing_file(path: Any) -> ParsedFile:
    """Adapter from the JSONL reader to the shared landing-ingest mechanism."""
    return read_commerce_file(path, max_event_bytes=setting_int("COMMERCE_MAX_EVENT_BYTES"))


def record_shared_table_writes(context: AssetExecutionContext, outcome: FileIngestOutcome) -> None:
    """Landed rows live in the Kafka-owned tables: record their materialization so staging reacts."""
    if outcome.status != "loaded":
        return
    written = {RAW_COMMERCE_EVENTS: outcome.rows_loaded, RAW_COMMERCE_DEAD_LETTER: outcome.rows_rejected}
    for key, rows in written.items():
        context.log_event(
            AssetMaterialization(
                asset_key=key,
                description=f"rows of landed file {outcome.file_name}",
                metadata={"source": "landed_file", "partition": context.partition_key, "rows": rows},
            )
        )


raw_commerce_event_files = build_landing_file_asset(
    name="raw_commerce_event_files",
    target=COMMERCE_FILES_TARGET,
    keys=(RAW_COMMERCE_EVENT_FILES, RAW_COMMERCE_EVENT_FILE_REJECTS),
    reader=read_commerce_landing_file,
    partitions_def=commerce_files_partitions,
    source=landing_commerce,
    group_name=COMMERCE_GROUP,
    owners=COMMERCE_OWNERS,
    kinds={"python", "json", "table"},
    rows_description=(
        "Landed JSONL files of clickstream events (one partition per file content). Rows land in "
        "raw.commerce_events, so each run also records a materialization of raw/commerce_events."
    ),
    rejects_description="Lines of landed JSONL files that failed validation (in the dead-letter table).",
    before_ingest=ensure_commerce_tables,
    after_ingest=record_shared_table_writes,
)


__all__ = [
    "COMMERCE_FILE_PATTERNS",
    "KAFKA_INGEST_OP",
    "RAW_COMMERCE_DEAD_LETTER",
    "RAW_COMMERCE_EVENTS",
    "RAW_COMMERCE_EVENT_FILES",
    "RAW_COMMERCE_EVENT_FILE_REJECTS",
    "commerce_files_partitions",
    "kafka_commerce_events",
    "kafka_run_config",
    "landing_commerce",
    "raw_commerce_event_files",
    "raw_commerce_events",
]
