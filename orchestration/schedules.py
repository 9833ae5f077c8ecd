"""Schedules: time-based refreshes that complement sensor- and automation-driven runs."""

from __future__ import annotations

from dagster import AssetSelection, DefaultScheduleStatus, ScheduleDefinition, define_asset_job

from assets.exports.raw_exportacao import RAW_EXPORTACAO
from resources.settings import ScheduleSettings

# Everything built from the raw export rows: stg.exportacao and the mart reports.
export_reports_selection = AssetSelection.assets(RAW_EXPORTACAO).downstream(include_self=False)

refresh_export_reports_job = define_asset_job(
    "refresh_export_reports",
    selection=export_reports_selection,
    description="Rebuild stg.exportacao and refresh the export reports (seed: refresh-mv, daily 01:00).",
    tags={"domain": "exports"},
)

refresh_export_reports_daily = ScheduleDefinition(
    name="refresh_export_reports_daily",
    job=refresh_export_reports_job,
    cron_schedule=ScheduleSettings.current().exports_refresh_cron,
    execution_timezone=ScheduleSettings.current().timezone,
    default_status=DefaultScheduleStatus.RUNNING,
    description="Daily refresh of the export reports, as the seed's CronJob did at 01:00.",
)
