"""The ingest asset of a MongoDB source: raw rows + rejects, one bounded, watermarked batch per run.

The watermark sensor passes the batch range as run config; a run launched by hand (no range) plans
its own batch from the durable watermark. Nothing new: both assets are skipped, so downstream
automation is not triggered for nothing.
"""

import datetime as dt
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
    MaterializeResult,
    multi_asset,
)
from pydantic import Field
from pymongo.collection import Collection

from assets.sources.mongo_collection._ingest import IngestSpec, ingest_batch
from assets.sources.mongo_collection._keyset import BatchRange
from assets.sources.mongo_collection._planning import ensure_change_index
from assets.sources.mongo_collection._tables import TableName
from assets.sources.mongo_collection._watermark import read_watermark
from resources.bulk_write import quote_ident
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.mongo import MongoResource
from resources.warehouse import WarehouseResource

KINDS = {"python", "mongodb", "table"}


class MongoBatchConfig(Config):
    """The batch a run ingests (set by the sensor); all empty = plan from the durable watermark."""

    lower_updated_at: str | None = Field(default=None, description="Exclusive lower bound: change time")
    lower_id: str | None = Field(default=None, description="Exclusive lower bound: _id (extended JSON)")
    upper_updated_at: str | None = Field(default=None, description="Inclusive upper bound: change time")
    upper_id: str | None = Field(default=None, description="Inclusive upper bound: _id (extended JSON)")
    sweep_from: str | None = Field(default=None, description="ObjectId sweep window start (inclusive)")
    sweep_until: str | None = Field(default=None, description="ObjectId sweep window end (exclusive)")
    max_docs: int | None = Field(
        default=None, ge=1, description="Documents read at most (default: the source's batch-size setting)"
    )
    exact: bool = Field(default=True, description="Range sized by the sensor's peek (read unsorted)")


def table_key(table: TableName) -> AssetKey:
    return AssetKey([table.schema, table.table])


def op_name_for(table: TableName) -> str:
    """The op of a source's ingest asset, named after its raw table (``raw__usage_events``)."""
    return f"{table.schema}__{table.table}"


@dataclass(frozen=True)
class AssetDeclaration:
    """What the ingest asset is built from (everything read at run time is a callable)."""

    spec: IngestSpec
    source: AssetKey  # the external asset of the collection, upstream of both tables
    collection: Callable[[MongoResource], Collection[Any]]
    max_docs: Callable[[], int]
    lag_seconds: Callable[[], float]
    peek_timeout_ms: Callable[[], int]
    description: str
    rejects_description: str
    group_name: str
    owners: Sequence[str]
    tags: dict[str, str]
    pool: str | None


def build_ingest_asset(declared: AssetDeclaration) -> AssetsDefinition:
    """The multi-asset ``<raw table>`` + ``<rejects table>`` with its two checks."""
    tables = declared.spec.tables
    raw_key, rejects_key = table_key(tables.raw), table_key(tables.rejects)
    common: dict[str, Any] = {
        "group_name": declared.group_name,
        "owners": list(declared.owners),
        "tags": dict(declared.tags),
        "skippable": True,
        "kinds": KINDS,
        "deps": [declared.source],
    }
    unique_check = f"{tables.key_column}_unique"

    @multi_asset(
        name=op_name_for(tables.raw),
        specs=[
            AssetSpec(
                raw_key,
                description=declared.description,
                metadata={"dagster/table_name": str(tables.raw), "watermark_table": tables.watermarks.table},
                **common,
            ),
            AssetSpec(
                rejects_key,
                description=declared.rejects_description,
                metadata={"dagster/table_name": str(tables.rejects)},
                **common,
            ),
        ],
        check_specs=[
            AssetCheckSpec(
                unique_check,
                asset=raw_key,
                description="One row per document: an updated document replaced its row.",
            ),
            AssetCheckSpec(
                "watermark_covers_rows",
                asset=raw_key,
                description="No loaded row is newer than the durable watermark (they moved together).",
            ),
        ],
        retry_policy=NETWORK_RETRY_POLICY,
        pool=declared.pool,
    )
    @fail_fast_on_permanent_errors
    def _ingest(
        context: AssetExecutionContext,
        config: MongoBatchConfig,
        warehouse: WarehouseResource,
        mongo: MongoResource,
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        """Ingest one bounded batch of new/updated MongoDB documents into the warehouse."""
        collection = declared.collection(mongo)
        ensure_change_index(collection, declared.spec.change_field)
        max_docs = config.max_docs or declared.max_docs()
        outcome = ingest_batch(
            warehouse,
            collection,
            BatchRange.from_config(config.model_dump(), declared.spec.change_field),
            spec=declared.spec,
            now=dt.datetime.now(dt.UTC),
            lag_seconds=declared.lag_seconds(),
            max_docs=max_docs,
            peek_timeout_ms=declared.peek_timeout_ms(),
            run_id=context.run.run_id,
            log=context.log,
        )
        meta = outcome.metadata()
        context.log.info(f"{outcome.source_key}: {meta}")
        if not outcome.skipped:
            yield MaterializeResult(
                asset_key=raw_key, metadata={**meta, "dagster/row_count": outcome.rows_written}
            )
            yield MaterializeResult(
                asset_key=rejects_key, metadata={**meta, "dagster/row_count": outcome.rejected}
            )
        yield from source_checks(warehouse, declared.spec, outcome.source_key)

    return _ingest


def source_checks(
    warehouse: WarehouseResource, spec: IngestSpec, source_key: str
) -> Iterator[AssetCheckResult]:
    """Evaluate the two checks of the raw table against the warehouse as it is now."""
    tables = spec.tables
    with warehouse.connect() as conn:
        table = tables.raw.quoted(conn)
        key = quote_ident(conn, tables.key_column)
        version = quote_ident(conn, tables.version_column)
        duplicates = conn.execute(sa.text(f"SELECT COUNT(*) - COUNT(DISTINCT {key}) FROM {table}")).scalar()
        newest = conn.execute(
            sa.text(f"SELECT MAX({version}) FROM {table} WHERE source = :s"), {"s": source_key}
        ).scalar()
    watermark = read_watermark(warehouse, tables.watermarks, source_key).position
    covered = newest is None or (watermark is not None and newest <= watermark.updated_at)
    raw_key = table_key(tables.raw)
    yield AssetCheckResult(
        asset_key=raw_key,
        check_name=f"{tables.key_column}_unique",
        passed=int(duplicates or 0) == 0,
        severity=AssetCheckSeverity.ERROR,
        metadata={"duplicate_rows": int(duplicates or 0)},
    )
    yield AssetCheckResult(
        asset_key=raw_key,
        check_name="watermark_covers_rows",
        passed=covered,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "newest_row_updated_at": str(newest),
            "watermark": watermark.token() if watermark else "start",
            "source": source_key,
        },
    )
