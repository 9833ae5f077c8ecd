"""Export-statistics domain (seed: export-analytics-bgc): files → raw → staging → reports.

The landing-file feed (``raw/exportacao``, ``export_file_drop_sensor``) is declared in
assets/defs/exports/landed_files/defs.yaml; its handles are re-exported here for jobs and tests.
"""

from dagster import Definitions

from assets.exports.file_quality import export_file_quality
from orchestration.declared import declared_assets, declared_sensor
from orchestration.schedules import refresh_export_reports_daily, refresh_export_reports_job

raw_exportacao = declared_assets("exports/landed_files", "raw_exportacao")
export_file_drop_sensor = declared_sensor("exports/landed_files", "export_file_drop_sensor")

defs = Definitions(
    assets=[export_file_quality],
    jobs=[refresh_export_reports_job],
    schedules=[refresh_export_reports_daily],
)
