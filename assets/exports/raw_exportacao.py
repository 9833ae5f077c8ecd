"""Raw layer of the export-statistics domain: one dynamic partition per landed CSV/XLSX file."""

from collections.abc import Iterator
from pathlib import Path

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Backoff,
    DynamicPartitionsDefinition,
    Jitter,
    MaterializeResult,
    RetryPolicy,
    multi_asset,
)

from assets.exports.file_reader import read_export_file
from assets.landing_ingest import LandingTarget, ParsedFile, ingest_landing_file, reconcile_partition
from resources.landing_zone import LandingZoneResource
from resources.warehouse import WarehouseResource

EXPORTS_DOMAIN = "exports"
EXPORT_FILE_PATTERNS = ("*.csv", "*.txt", "*.xlsx", "*.xlsm")

export_files_partitions = DynamicPartitionsDefinition(name="export_files")

RAW_EXPORTACAO = AssetKey(["raw", "exportacao"])
RAW_EXPORTACAO_REJECTS = AssetKey(["raw", "exportacao_rejects"])

EXPORTS_TARGET = LandingTarget(
    domain=EXPORTS_DOMAIN,
    rows_table=("raw", "exportacao"),
    rejects_table=("raw", "exportacao_rejects"),
)

_COMMON = {
    "group_name": "exports",
    "owners": ["team:exports"],
    "kinds": {"python", "csv", "xlsx", "table"},
    "partitions_def": export_files_partitions,
}


def read_export_landing_file(path: Path) -> ParsedFile:
    """Adapter from the export reader to the shared landing-ingest mechanism."""
    parsed = read_export_file(path)
    return ParsedFile(
        rows=parsed.rows,
        rejects=parsed.rejects,
        total_rows=parsed.total_rows,
        details={
            "format": parsed.file_format,
            "encoding": parsed.encoding,
            "delimiter": parsed.delimiter,
            "decimal_separator": parsed.decimal_separator,
            "sheet": parsed.sheet,
        },
    )


@multi_asset(
    specs=[
        AssetSpec(
            RAW_EXPORTACAO,
            description="Valid rows of each landed export file, typed, with ingest audit columns.",
            metadata={"dagster/table_name": "raw.exportacao"},
            tags={"layer": "raw"},
            **_COMMON,
        ),
        AssetSpec(
            RAW_EXPORTACAO_REJECTS,
            description="Rows of landed export files that failed validation: file, line, reason, raw row.",
            metadata={"dagster/table_name": "raw.exportacao_rejects"},
            tags={"layer": "raw"},
            **_COMMON,
        ),
    ],
    check_specs=[
        AssetCheckSpec(
            "file_rows_reconciled",
            asset=RAW_EXPORTACAO,
            description="Loaded + rejected rows in the warehouse equal the data rows of the file.",
        )
    ],
    retry_policy=RetryPolicy(max_retries=3, delay=2, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS),
)
def raw_exportacao(
    context: AssetExecutionContext, warehouse: WarehouseResource, landing_zone: LandingZoneResource
) -> Iterator[MaterializeResult | AssetCheckResult]:
    """Parse one export file; good rows, rejects and the ledger entry land in one transaction."""
    outcome = ingest_landing_file(
        context,
        target=EXPORTS_TARGET,
        reader=read_export_landing_file,
        warehouse=warehouse,
        landing_zone=landing_zone,
    )
    meta = outcome.metadata()
    yield MaterializeResult(
        asset_key=RAW_EXPORTACAO, metadata={**meta, "dagster/row_count": outcome.rows_loaded}
    )
    yield MaterializeResult(
        asset_key=RAW_EXPORTACAO_REJECTS, metadata={**meta, "dagster/row_count": outcome.rows_rejected}
    )
    counts = reconcile_partition(warehouse, EXPORTS_TARGET, context.partition_key)
    yield AssetCheckResult(
        asset_key=RAW_EXPORTACAO,
        check_name="file_rows_reconciled",
        passed=counts["rows_in_table"] + counts["rejects_in_table"] == counts["rows_total"],
        severity=AssetCheckSeverity.ERROR,
        metadata=counts,
    )
