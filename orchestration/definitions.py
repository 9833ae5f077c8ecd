"""The code location: every domain's assets, checks, sensors and schedules plus shared resources.

Each domain contributes a partial ``Definitions`` (``orchestration/<domain>.py``); SQL models of all
domains come from ``dbt_like_sql``; resources are bound once here, from environment variables.
"""

from dagster import Definitions, EnvVar

from dbt_like_sql import build_sql_model_assets, load_project
from io_managers.warehouse_io_manager import WarehouseIOManager
from orchestration import exports
from orchestration.automation import for_sql_model
from orchestration.sensors import automation_sensor
from resources.landing_zone import LandingZoneResource
from resources.settings import apply_defaults
from resources.warehouse import WarehouseResource

apply_defaults()

warehouse = WarehouseResource(url=EnvVar("WAREHOUSE_URL"))

sql_model_assets = build_sql_model_assets(load_project(), automation_condition_for=for_sql_model)

defs = Definitions.merge(
    exports.defs,
    Definitions(
        assets=sql_model_assets,
        sensors=[automation_sensor],
        resources={
            "warehouse": warehouse,
            "landing_zone": LandingZoneResource(root=EnvVar("AFLUENTE_LANDING_DIR")),
            "io_manager": WarehouseIOManager(warehouse=warehouse),
        },
    ),
)
