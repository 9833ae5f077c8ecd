"""The raw asset of a declared feed: one dynamic partition per landed file.

Each run materializes the valid-rows table and the rejects table of its file (one transaction, see
:mod:`._ingest`) and checks that loaded + rejected rows equal the rows of the file.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    DynamicPartitionsDefinition,
    MaterializeResult,
    multi_asset,
)

from assets.sources.landing_feed._ingest import LandingTarget, ingest_landing_file
from assets.sources.landing_feed.contract import AfterIngest, BeforeIngest, Reader
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.landing_zone import LandingZoneResource
from resources.warehouse import WarehouseResource

RECONCILED_CHECK = "file_rows_reconciled"


@dataclass(frozen=True)
class AssetShape:
    """How the feed's two assets look in the catalog (keys, group, owners, kinds, descriptions)."""

    name: str
    keys: tuple[AssetKey, AssetKey]
    group_name: str
    owners: Sequence[str]
    kinds: set[str]
    descriptions: tuple[str, str]
    source: AssetKey  # the external asset of the landing folder: both tables depend on it


def build_landing_file_asset(
    *,
    shape: AssetShape,
    target: LandingTarget,
    reader: Reader,
    partitions_def: DynamicPartitionsDefinition,
    before_ingest: BeforeIngest | None = None,
    after_ingest: AfterIngest | None = None,
) -> AssetsDefinition:
    """A multi-asset ``rows`` + ``rejects`` partitioned by landed file.

    ``before_ingest`` prepares tables (e.g. shared with another source); ``after_ingest`` may log
    extra events (e.g. a materialization of the asset owning a shared table).
    """
    rows_key, rejects_key = shape.keys

    def spec(key: AssetKey, description: str, table: tuple[str, str]) -> AssetSpec:
        return AssetSpec(
            key,
            description=description,
            metadata={"dagster/table_name": ".".join(table)},
            group_name=shape.group_name,
            owners=list(shape.owners),
            kinds=shape.kinds,
            partitions_def=partitions_def,
            tags={"layer": "raw", "domain": target.domain},
            deps=[shape.source],
        )

    @multi_asset(
        name=shape.name,
        specs=[
            spec(rows_key, shape.descriptions[0], target.rows_table),
            spec(rejects_key, shape.descriptions[1], target.rejects_table),
        ],
        check_specs=[
            AssetCheckSpec(
                RECONCILED_CHECK,
                asset=rows_key,
                description="Loaded + rejected rows in the warehouse equal the data rows of the file.",
            )
        ],
        retry_policy=NETWORK_RETRY_POLICY,
    )
    @fail_fast_on_permanent_errors
    def _landing_file_asset(
        context: AssetExecutionContext, warehouse: WarehouseResource, landing_zone: LandingZoneResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        if before_ingest is not None:
            before_ingest(warehouse)
        outcome = ingest_landing_file(
            context, target=target, reader=reader, warehouse=warehouse, landing_zone=landing_zone
        )
        if after_ingest is not None:
            after_ingest(context, outcome)
        meta = outcome.metadata()
        yield MaterializeResult(
            asset_key=rows_key, metadata={**meta, "dagster/row_count": outcome.rows_loaded}
        )
        yield MaterializeResult(
            asset_key=rejects_key, metadata={**meta, "dagster/row_count": outcome.rows_rejected}
        )
        counts = dict(outcome.counts)
        yield AssetCheckResult(
            asset_key=rows_key,
            check_name=RECONCILED_CHECK,
            passed=counts["rows_in_table"] + counts["rejects_in_table"] == counts["rows_total"],
            severity=AssetCheckSeverity.ERROR,
            metadata=counts,
        )

    return _landing_file_asset
