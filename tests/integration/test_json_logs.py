"""A real run of a platform asset writes every log line as JSON with its run id and asset key.

The instance carries the ``python_logs`` section of the production ``orchestration/dagster.yaml``
unchanged; ``raw/exportacao`` ingests a landed CSV into a DuckDB warehouse through the real file-drop
sensor and ``materialize()``.
"""

import json
import os
import time
from pathlib import Path

import pytest
import yaml
from dagster import SensorResult, build_sensor_context, instance_for_test, materialize

from io_managers.warehouse_io_manager import WarehouseIOManager
from orchestration.exports import export_file_drop_sensor, raw_exportacao
from resources.landing_zone import LandingZoneResource
from resources.warehouse import WarehouseResource, dispose_engines

ROOT = Path(__file__).resolve().parents[2]
CSV = (
    "ano;mes;pais;setor;ncm;valor_usd;peso_kg\n"
    "2023;1;China;Agronegócio;12019000;1.000,50;2.000,000\n"
    "2024;13;Japão;Agronegócio;12019000;100,00;1,000\n"
)

pytestmark = pytest.mark.filterwarnings("ignore:Handling yaml-defined logging")


def test_materialize_writes_json_lines_with_run_id_and_asset_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landing = tmp_path / "landing"
    (landing / "exports").mkdir(parents=True)
    dropped = landing / "exports" / "exportacao_2023.csv"
    dropped.write_bytes(CSV.encode("utf-8"))
    past = time.time() - 120
    os.utime(dropped, (past, past))
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    resources = {
        "warehouse": warehouse,
        "landing_zone": LandingZoneResource(root=str(landing)),
        "io_manager": WarehouseIOManager(warehouse=warehouse),
    }
    python_logs = yaml.safe_load((ROOT / "orchestration/dagster.yaml").read_text())["python_logs"]

    with instance_for_test(overrides={"python_logs": python_logs}) as instance:
        tick = export_file_drop_sensor(
            build_sensor_context(instance=instance, resources={"landing_zone": resources["landing_zone"]})
        )
        assert isinstance(tick, SensorResult) and len(tick.run_requests) == 1
        for request in tick.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
        capsys.readouterr()
        result = materialize(
            [raw_exportacao],
            partition_key=tick.run_requests[0].partition_key,
            instance=instance,
            resources=resources,
        )
        assert result.success
        stored = instance.all_logs(result.run_id)
    dispose_engines()

    out = capsys.readouterr().out.splitlines()
    lines = [json.loads(line) for line in out]  # every stdout line of the run is one JSON object
    assert len(lines) >= 10
    assert all(line["run_id"] == result.run_id for line in lines)
    assert all(line["job"] == result.job_def.name for line in lines)
    assert {"ts", "level", "logger", "message", "step_key", "asset_key"} <= set(lines[0])

    # The asset's own context.log line: run id, step, asset key(s) and partition. raw/exportacao is a
    # multi-asset (rows + rejects): asset_key is the first, asset_keys lists both.
    (ingest,) = [line for line in lines if "rows loaded" in line["message"]]
    assert ingest["message"].startswith("exportacao_2023.csv: 1 rows loaded, 1 rejected")
    assert ingest["asset_key"] == "raw/exportacao"
    assert ingest["asset_keys"] == ["raw/exportacao", "raw/exportacao_rejects"]
    assert ingest["step_key"] == "raw_exportacao"
    assert ingest["partition"] == tick.run_requests[0].partition_key
    assert ingest["level"] == "INFO"

    # Dagster's events carry the asset key too (an asset event its own); the run's events reach the
    # JSON stream (the *_PLANNED events are stored when the run is created, before its log manager).
    materialized = [line for line in lines if line.get("event") == "ASSET_MATERIALIZATION"]
    assert sorted(line["asset_key"] for line in materialized) == ["raw/exportacao", "raw/exportacao_rejects"]
    (success,) = [line for line in lines if line.get("event") == "STEP_SUCCESS"]
    assert success["asset_key"] == "raw/exportacao" and success["step_key"] == "raw_exportacao"
    json_events = sorted(line["event"] for line in lines if line.get("event"))
    stored_events = sorted(
        e.dagster_event.event_type_value
        for e in stored
        if e.dagster_event and not e.dagster_event.event_type_value.endswith("_PLANNED")
    )
    assert json_events == stored_events
