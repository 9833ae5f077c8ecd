"""The ingest asset of a Kafka topic source: rows + dead letters of exactly the configured ranges.

Each run consumes exactly the ranges in its config (the offsets sensor fills them in) and commits
rows, dead letters and the offset ledger in one transaction; a check reconciles what was stored
with the offsets the ranges span.
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)
from pydantic import Field

from assets.sources.kafka_topic._consumer import RangeUnavailableError
from assets.sources.kafka_topic._ingest import Decoder, IngestResult, ingest_kafka_ranges
from assets.sources.kafka_topic._ledger import OffsetRange, read_covered
from assets.sources.kafka_topic._sensor import plan_kafka_runs, topic_offsets
from assets.sources.kafka_topic._tables import TopicTables, ensure_tables
from resources.bulk_write import quote_ident
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource

_LOG = logging.getLogger(__name__)
RECONCILED_CHECK = "kafka_ranges_reconciled"


class KafkaRangeConfig(Config):
    """Offsets ``[start_offset, end_offset)`` of one partition."""

    partition: int = Field(ge=0)
    start_offset: int = Field(ge=0)
    end_offset: int = Field(ge=0)


class KafkaIngestConfig(Config):
    """Which offsets a run consumes; the Kafka offsets sensor fills ``ranges`` in."""

    topic: str = Field(default="", description="Kafka topic; empty = the topic the source declares")
    ranges: list[KafkaRangeConfig] = Field(
        default_factory=list,
        description=(
            "Exact offset ranges to consume. Empty (a manual materialization): whatever the ledger is "
            "missing, up to the source's max events per run."
        ),
    )


def kafka_run_config(op_name: str, topic: str, ranges: Sequence[OffsetRange]) -> dict[str, Any]:
    """Run config making the ingest op ``op_name`` consume exactly ``ranges`` of ``topic``."""
    return {
        "ops": {
            op_name: {
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


def reconcile_ranges(
    warehouse: WarehouseResource, tables: TopicTables, topic: str, ranges: Sequence[OffsetRange]
) -> dict[str, int]:
    """Rows + dead letters stored for ``ranges`` vs the offsets they span (minus expired ones).

    On PostgreSQL the rows are found through the BRIN index on their coordinates: the pages just
    loaded are summarized first, and the planner is kept off a sequential scan (right after a bulk
    load it has no statistics and would read the whole table on every run).
    """
    counts = {"offsets": sum(r.size for r in ranges), "events": 0, "dead_letters": 0}
    if not ranges:
        return counts
    with warehouse.begin() as conn:
        if conn.dialect.name == "postgresql":
            _summarize_new_pages(conn, f"{tables.raw[0]}.{tables.coordinates_brin}")
            conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for table, name in ((tables.raw, "events"), (tables.dead_letter, "dead_letters")):
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
                        f"SELECT COUNT(*) FROM {quote_ident(conn, *table)} "
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


def _summarize_new_pages(conn: sa.Connection, index: str) -> None:
    """Summarize the BRIN ranges loaded since the last summary, if the table lock is free now.

    Best effort: unsummarized ranges still match every BRIN scan (the count stays exact, it only
    reads those pages), and autovacuum summarizes them when it vacuums the table.
    """
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


@dataclass(frozen=True)
class IngestAssetSpec:
    """Everything the ingest asset needs from the declaration (settings as tick/run-time callables)."""

    op_name: str
    tables: TopicTables
    decoder: Callable[[], Decoder]
    topic: Callable[[], str]
    max_events_per_run: Callable[[], int]
    max_message_bytes: Callable[[], int]
    raw_spec: AssetSpec
    dead_letter_spec: AssetSpec
    op_tags: dict[str, str]

    @property
    def raw_key(self) -> AssetKey:
        return self.raw_spec.key

    @property
    def dead_letter_key(self) -> AssetKey:
        return self.dead_letter_spec.key


def _missing_ranges(
    spec: IngestAssetSpec, kafka: KafkaResource, warehouse: WarehouseResource, topic: str
) -> list[OffsetRange]:
    """For a run without ranges: the oldest missing offsets, one run's worth."""
    ensure_tables(warehouse, spec.tables)
    with warehouse.connect() as conn:
        covered = read_covered(conn, spec.tables, topic)
    plan = plan_kafka_runs(
        topic_offsets(kafka, topic), covered, {}, max_events_per_run=spec.max_events_per_run(), max_runs=1
    )
    return list(plan.runs[0].ranges) if plan.runs else []


def build_ingest_asset(spec: IngestAssetSpec) -> AssetsDefinition:
    """The multi-asset writing the raw and dead-letter tables, with its reconciliation check."""

    @multi_asset(
        name=spec.op_name,
        specs=[spec.raw_spec, spec.dead_letter_spec],
        check_specs=[
            AssetCheckSpec(
                RECONCILED_CHECK,
                asset=spec.raw_key,
                description="Events + dead letters stored for the run's ranges equal the offsets they span.",
            )
        ],
        # A retry replays the same ranges (idempotent by ledger); a run that still fails leaves them
        # missing from the ledger, and the sensor requests them again under a new run key.
        retry_policy=NETWORK_RETRY_POLICY,
        op_tags=spec.op_tags,
    )
    @fail_fast_on_permanent_errors
    def _ingest(
        context: AssetExecutionContext,
        config: KafkaIngestConfig,
        warehouse: WarehouseResource,
        kafka: KafkaResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Consume the configured offset ranges; rows, dead letters and ledger commit together."""
        topic = config.topic or spec.topic()
        ranges = [OffsetRange(r.partition, r.start_offset, r.end_offset) for r in config.ranges]
        if not ranges:
            ranges = _missing_ranges(spec, kafka, warehouse, topic)
            context.log.info(f"no ranges in run config; consuming what the ledger misses: {ranges}")
        max_events = sum(r.size for r in ranges)
        try:
            result: IngestResult = ingest_kafka_ranges(
                consumer_factory=lambda: kafka.range_consumer(consumer_settings(max_events)),
                warehouse=warehouse,
                topic=topic,
                ranges=ranges,
                run_id=context.run.run_id,
                tables=spec.tables,
                decoder=spec.decoder(),
                max_message_bytes=spec.max_message_bytes(),
                log=context.log,
            )
        except RangeUnavailableError as exc:
            raise Failure(description=str(exc), allow_retries=False) from exc
        meta = result.metadata()
        yield MaterializeResult(
            asset_key=spec.raw_key,
            metadata={
                **meta,
                "dagster/row_count": result.events_loaded,
                "dead_letter_reasons": MetadataValue.json(result.reasons),
            },
        )
        yield MaterializeResult(
            asset_key=spec.dead_letter_key, metadata={**meta, "dagster/row_count": result.dead_letters}
        )
        counts = reconcile_ranges(warehouse, spec.tables, topic, result.ranges)
        stored = counts["events"] + counts["dead_letters"]
        yield AssetCheckResult(
            asset_key=spec.raw_key,
            check_name=RECONCILED_CHECK,
            passed=stored + result.expired_offsets >= counts["offsets"] and stored <= counts["offsets"],
            # Transactional producers leave control records (offsets without a message): warn only.
            severity=AssetCheckSeverity.WARN,
            metadata={**counts, "expired_offsets": result.expired_offsets},
        )

    return _ingest
