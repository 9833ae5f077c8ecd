"""Land export files and build the export models through the real pipeline (sensor, assets, SQL models)."""

from __future__ import annotations

from pathlib import Path

from dagster import DagsterInstance, SensorResult, build_sensor_context, materialize

from dbt_like_sql import SqlProject, build_sql_model_assets, load_project
from generators.exports import write_export_file
from orchestration.exports import export_file_drop_sensor, raw_exportacao
from resources.landing_zone import LandingZoneResource
from resources.warehouse import WarehouseResource
from tests.integration.test_commerce_helpers import age


def land_and_build_exports(
    warehouse: WarehouseResource, landing_root: Path, instance: DagsterInstance, seeds: list[int], rows: int
) -> None:
    """Drop one generated CSV per seed, run what the file-drop sensor asks for, then rebuild the marts."""
    folder = landing_root / "exports"
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        age(Path(write_export_file(folder / f"exportacao_{seed}.csv", rows, seed=seed).path))
    landing = LandingZoneResource(root=str(landing_root))
    resources = {"warehouse": warehouse, "landing_zone": landing}
    result = export_file_drop_sensor(
        build_sensor_context(instance=instance, resources={"landing_zone": landing})
    )
    assert isinstance(result, SensorResult)
    keys = [r.partition_key for r in result.run_requests]
    assert len(keys) == len(seeds)
    instance.add_dynamic_partitions("export_files", keys)
    for key in keys:
        assert materialize(
            [raw_exportacao], partition_key=key, instance=instance, resources=resources
        ).success
    exports = [m for m in load_project() if m.group == "exports"]
    models = build_sql_model_assets(SqlProject(models_dir=Path("."), models={m.key: m for m in exports}))
    assert materialize(
        [raw_exportacao, *models], selection=models, instance=instance, resources=resources
    ).success
