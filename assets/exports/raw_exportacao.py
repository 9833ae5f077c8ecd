"""Raw layer of the export-statistics domain: one dynamic partition per landed CSV/XLSX file."""

from dagster import AssetKey, DynamicPartitionsDefinition

from assets.exports.file_reader import parse_export_bytes
from assets.external_sources import landing_source_spec
from assets.landing_file_asset import build_landing_file_asset
from assets.landing_ingest import LandingTarget, ParsedFile
from resources.landing_zone import LandedContent

EXPORTS_DOMAIN = "exports"
EXPORT_FILE_PATTERNS = ("*.csv", "*.txt", "*.xlsx", "*.xlsm")

export_files_partitions = DynamicPartitionsDefinition(name="export_files")

EXPORTS_TARGET = LandingTarget(
    domain=EXPORTS_DOMAIN,
    rows_table=("raw", "exportacao"),
    rejects_table=("raw", "exportacao_rejects"),
)
RAW_EXPORTACAO = AssetKey(list(EXPORTS_TARGET.rows_table))
RAW_EXPORTACAO_REJECTS = AssetKey(list(EXPORTS_TARGET.rejects_table))
EXPORTS_OWNERS = ["team:exports"]

landing_exports = landing_source_spec(
    EXPORTS_DOMAIN, owners=EXPORTS_OWNERS, formats="CSV/XLSX export-statistics"
)


def read_export_landing_file(content: LandedContent) -> ParsedFile:
    """Adapter from the export reader to the shared landing-ingest mechanism."""
    parsed = parse_export_bytes(content.name, content.data)
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


raw_exportacao = build_landing_file_asset(
    name="raw_exportacao",
    target=EXPORTS_TARGET,
    reader=read_export_landing_file,
    partitions_def=export_files_partitions,
    source=landing_exports,
    group_name="exports",
    owners=EXPORTS_OWNERS,
    kinds={"python", "csv", "xlsx", "table"},
    rows_description="Valid rows of each landed export file, typed, with ingest audit columns.",
    rejects_description="Rows of landed export files that failed validation: file, line, reason, raw row.",
)
