"""Sensor instances of the code location (the mechanisms live in ``sensors/``)."""

from __future__ import annotations

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

from assets.exports.raw_exportacao import (
    EXPORT_FILE_PATTERNS,
    EXPORTS_DOMAIN,
    RAW_EXPORTACAO,
    RAW_EXPORTACAO_REJECTS,
    export_files_partitions,
)
from sensors.file_drop import build_file_drop_sensor

export_file_drop_sensor = build_file_drop_sensor(
    name="export_file_drop_sensor",
    domain=EXPORTS_DOMAIN,
    patterns=EXPORT_FILE_PATTERNS,
    partitions_def=export_files_partitions,
    target=AssetSelection.assets(RAW_EXPORTACAO, RAW_EXPORTACAO_REJECTS),
    description="Each new CSV/XLSX file in the exports landing folder becomes a partition of raw/exportacao.",
)

automation_sensor = AutomationConditionSensorDefinition(
    "automation_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="Evaluates the automation conditions of every asset (refresh after new data lands).",
)
