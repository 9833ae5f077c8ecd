"""Sensors that span domains (domain sensors live with their domain in ``orchestration/<domain>.py``)."""

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

automation_sensor = AutomationConditionSensorDefinition(
    "automation_sensor",
    target=AssetSelection.all(),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=15,
    description="Evaluates the automation conditions of every asset (refresh after new data lands).",
)
