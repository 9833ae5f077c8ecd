"""Factory of file-fed raw assets: one definition shape for every domain fed by the landing zone.

Each landed file is a dynamic partition; the asset materializes the valid rows table and the
rejects table of that file (one transaction, see :mod:`assets.landing_ingest`) and checks that
loaded + rejected rows equal the rows of the file.
"""

from collections.abc import Callable, Iterator, Sequence

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

from assets.landing_ingest import (
    FileIngestOutcome,
    LandingTarget,
    ParsedFile,
    ingest_landing_file,
)
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.landing_zone import LandingZoneResource
from resources.warehouse import WarehouseResource

RECONCILED_CHECK = "file_rows_reconciled"


def build_landing_file_asset(
    *,
    name: str,
    target: LandingTarget,
    reader: Callable[..., ParsedFile],
    partitions_def: DynamicPartitionsDefinition,
    source: AssetSpec,
    group_name: str,
    owners: Sequence[str],
    kinds: set[str],
    rows_description: str,
    rejects_description: str,
    before_ingest: Callable[[WarehouseResource], None] | None = None,
    after_ingest: Callable[[AssetExecutionContext, FileIngestOutcome], None] | None = None,
    keys: tuple[AssetKey, AssetKey] | None = None,
) -> AssetsDefinition:
    """A multi-asset ``[raw, <rows table>]`` + ``[raw, <rejects table>]`` partitioned by landed file.

    ``source`` is the external asset of the landing folder the files come from (see
    :mod:`assets.external_sources`): both tables depend on it in the lineage graph.
    ``before_ingest`` prepares tables (e.g. shared with another source); ``after_ingest`` may log
    extra events (e.g. a materialization of the asset owning a shared table). ``keys`` overrides the
    asset keys when the tables belong to another asset (files feeding the Kafka-owned table).
    """
    rows_key, rejects_key = keys or (AssetKey(list(target.rows_table)), AssetKey(list(target.rejects_table)))
    common = {
        "group_name": group_name,
        "owners": list(owners),
        "kinds": kinds,
        "partitions_def": partitions_def,
        "tags": {"layer": "raw", "domain": target.domain},
        "deps": [source.key],
    }

    @multi_asset(
        name=name,
        specs=[
            AssetSpec(
                rows_key,
                description=rows_description,
                metadata={"dagster/table_name": ".".join(target.rows_table)},
                **common,
            ),
            AssetSpec(
                rejects_key,
                description=rejects_description,
                metadata={"dagster/table_name": ".".join(target.rejects_table)},
                **common,
            ),
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
