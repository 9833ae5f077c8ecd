"""Export-statistics domain (seed: export-analytics-bgc): files → raw → staging → reports."""

from dagster import AssetSelection, Definitions

from assets.exports.file_quality import export_file_quality
from assets.exports.raw_exportacao import (
    EXPORT_FILE_PATTERNS,
    EXPORTS_DOMAIN,
    RAW_EXPORTACAO,
    RAW_EXPORTACAO_REJECTS,
    export_files_partitions,
    landing_exports,
    raw_exportacao,
)
from orchestration.schedules import refresh_export_reports_daily, refresh_export_reports_job
from sensors.file_drop import build_file_drop_sensor

export_file_drop_sensor = build_file_drop_sensor(
    name="export_file_drop_sensor",
    domain=EXPORTS_DOMAIN,
    patterns=EXPORT_FILE_PATTERNS,
    partitions_def=export_files_partitions,
    target=AssetSelection.assets(RAW_EXPORTACAO, RAW_EXPORTACAO_REJECTS),
    description="Each new CSV/XLSX file in the exports landing folder becomes a partition of raw/exportacao.",
)

defs = Definitions(
    assets=[landing_exports, raw_exportacao, export_file_quality],
    jobs=[refresh_export_reports_job],
    schedules=[refresh_export_reports_daily],
    sensors=[export_file_drop_sensor],
)
