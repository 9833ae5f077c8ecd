"""``raw/usage_events`` from MongoDB: one bounded, watermarked batch per run (see ``mongo_ingest``).

The MongoDB watermark sensor passes the batch range as run config; a run launched by hand (no range)
plans its own batch from the durable watermark. Nothing new: both assets are skipped, so downstream
automation is not triggered for nothing.
"""

import datetime as dt
from collections.abc import Iterator
from typing import TypedDict

import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Config,
    MaterializeResult,
    multi_asset,
)
from pydantic import Field

from assets.external_sources import source_spec
from assets.usage.mongo_ingest import (
    BatchRange,
    ensure_change_index,
    ingest_batch,
    read_watermark,
)
from assets.usage.tables import EVENTS_REJECTS_TABLE, EVENTS_TABLE, RAW_SCHEMA, WATERMARKS_TABLE
from resources.bulk_write import quote_ident
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.mongo import MongoResource
from resources.settings import setting, setting_int
from resources.warehouse import WarehouseResource

RAW_USAGE_EVENTS = AssetKey([RAW_SCHEMA, EVENTS_TABLE])
RAW_USAGE_EVENTS_REJECTS = AssetKey([RAW_SCHEMA, EVENTS_REJECTS_TABLE])
MONGO_INGEST_OP = "raw__usage_events"


mongo_usage_events = source_spec(
    "mongo_usage_events",
    kind="mongodb",
    domain="usage",
    owners=["team:usage"],
    description=(
        "AI-assistant usage documents in the MongoDB collection USAGE_MONGO_COLLECTION of database "
        "USAGE_MONGO_DATABASE at MONGO_URI; usage_mongo_watermark_sensor requests the changed ones."
    ),
    settings=["USAGE_MONGO_COLLECTION", "USAGE_MONGO_DATABASE", "MONGO_URI"],
)


class MongoBatchConfig(Config):
    """The batch a run ingests (set by the sensor); all empty = plan from the durable watermark."""

    lower_updated_at: str | None = Field(default=None, description="Exclusive lower bound: updated_at")
    lower_id: str | None = Field(default=None, description="Exclusive lower bound: _id (extended JSON)")
    upper_updated_at: str | None = Field(default=None, description="Inclusive upper bound: updated_at")
    upper_id: str | None = Field(default=None, description="Inclusive upper bound: _id (extended JSON)")
    sweep_from: str | None = Field(default=None, description="ObjectId sweep window start (inclusive)")
    sweep_until: str | None = Field(default=None, description="ObjectId sweep window end (exclusive)")
    max_docs: int = Field(default_factory=lambda: setting_int("USAGE_MONGO_MAX_BATCH_DOCS"), ge=1)
    exact: bool = Field(default=True, description="Range sized by the sensor's peek (read unsorted)")


def usage_collection_name() -> str:
    return setting("USAGE_MONGO_COLLECTION")


class _CommonSpecArgs(TypedDict):
    """The AssetSpec arguments both raw usage assets share (typed, so each is checked)."""

    group_name: str
    owners: list[str]
    tags: dict[str, str]
    skippable: bool
    deps: list[AssetKey]


_COMMON: _CommonSpecArgs = {
    "group_name": "usage",
    "owners": ["team:usage"],
    "tags": {"layer": "raw"},
    "skippable": True,
    "deps": [mongo_usage_events.key],
}


@multi_asset(
    name=MONGO_INGEST_OP,
    specs=[
        AssetSpec(
            RAW_USAGE_EVENTS,
            description=(
                "AI-assistant usage events from MongoDB, one row per document (latest version), merged "
                "by document id; the watermark (raw.mongo_watermarks) advances in the same transaction."
            ),
            metadata={
                "dagster/table_name": f"{RAW_SCHEMA}.{EVENTS_TABLE}",
                "watermark_table": WATERMARKS_TABLE,
            },
            kinds={"python", "mongodb", "table"},
            **_COMMON,
        ),
        AssetSpec(
            RAW_USAGE_EVENTS_REJECTS,
            description="MongoDB usage documents missing required fields or with wrong types, and why.",
            metadata={"dagster/table_name": f"{RAW_SCHEMA}.{EVENTS_REJECTS_TABLE}"},
            kinds={"python", "mongodb", "table"},
            **_COMMON,
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            "event_id_unique",
            asset=RAW_USAGE_EVENTS,
            description="One row per document: an updated document replaced its row.",
        ),
        AssetCheckSpec(
            "watermark_covers_rows",
            asset=RAW_USAGE_EVENTS,
            description="No loaded row is newer than the durable watermark (they moved together).",
        ),
    ],
    retry_policy=NETWORK_RETRY_POLICY,
    pool="usage_mongo_ingest",
)
@fail_fast_on_permanent_errors
def raw_usage_events(
    context: AssetExecutionContext,
    config: MongoBatchConfig,
    warehouse: WarehouseResource,
    mongo: MongoResource,
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Ingest one bounded batch of new/updated MongoDB documents into the warehouse."""
    collection = mongo.collection(usage_collection_name())
    ensure_change_index(collection)
    outcome = ingest_batch(
        warehouse,
        collection,
        BatchRange.from_config(config.model_dump()),
        now=dt.datetime.now(dt.UTC),
        lag_seconds=float(setting("USAGE_MONGO_SAFETY_LAG_SECONDS")),
        max_docs=config.max_docs,
        peek_timeout_ms=setting_int("USAGE_MONGO_PEEK_TIMEOUT_MS"),
        run_id=context.run.run_id,
        log=context.log,
    )
    meta = outcome.metadata()
    context.log.info(f"{outcome.source_key}: {meta}")
    if not outcome.skipped:
        yield MaterializeResult(
            asset_key=RAW_USAGE_EVENTS, metadata={**meta, "dagster/row_count": outcome.rows_written}
        )
        yield MaterializeResult(
            asset_key=RAW_USAGE_EVENTS_REJECTS, metadata={**meta, "dagster/row_count": outcome.rejected}
        )
    yield from usage_event_checks(warehouse, outcome.source_key)


def usage_event_checks(warehouse: WarehouseResource, source_key: str) -> Iterator[AssetCheckResult]:
    """Evaluate the two checks of ``raw/usage_events`` against the warehouse as it is now."""
    with warehouse.connect() as conn:
        table = quote_ident(conn, RAW_SCHEMA, EVENTS_TABLE)
        duplicates = conn.execute(
            sa.text(f"SELECT COUNT(*) - COUNT(DISTINCT event_id) FROM {table}")
        ).scalar()
        newest = conn.execute(
            sa.text(f"SELECT MAX(source_updated_at) FROM {table} WHERE source = :s"), {"s": source_key}
        ).scalar()
    watermark = read_watermark(warehouse, source_key).position
    covered = newest is None or (watermark is not None and newest <= watermark.updated_at)
    yield AssetCheckResult(
        asset_key=RAW_USAGE_EVENTS,
        check_name="event_id_unique",
        passed=int(duplicates or 0) == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"duplicate_rows": int(duplicates or 0)},
    )
    yield AssetCheckResult(
        asset_key=RAW_USAGE_EVENTS,
        check_name="watermark_covers_rows",
        passed=covered,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "newest_row_updated_at": str(newest),
            "watermark": watermark.token() if watermark else "start",
            "source": source_key,
        },
    )
