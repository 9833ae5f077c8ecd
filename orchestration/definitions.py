"""The code location: every asset, check, sensor, schedule and resource, assembled in one place."""

from __future__ import annotations

from dagster import Definitions, EnvVar

from assets.exports.raw_exportacao import raw_exportacao
from dbt_like_sql import build_sql_model_assets, load_project
from io_managers.warehouse_io_manager import WarehouseIOManager
from orchestration.automation import for_sql_model
from orchestration.schedules import refresh_export_reports_daily, refresh_export_reports_job
from orchestration.sensors import automation_sensor, export_file_drop_sensor
from resources.landing_zone import LandingZoneResource
from resources.settings import apply_defaults
from resources.warehouse import WarehouseResource

apply_defaults()

warehouse = WarehouseResource(url=EnvVar("WAREHOUSE_URL"))

sql_model_assets = build_sql_model_assets(load_project(), automation_condition_for=for_sql_model)

defs = Definitions(
    assets=[raw_exportacao, *sql_model_assets],
    jobs=[refresh_export_reports_job],
    schedules=[refresh_export_reports_daily],
    sensors=[export_file_drop_sensor, automation_sensor],
    resources={
        "warehouse": warehouse,
        "landing_zone": LandingZoneResource(root=EnvVar("AFLUENTE_LANDING_DIR")),
        "io_manager": WarehouseIOManager(warehouse=warehouse),
    },
)
