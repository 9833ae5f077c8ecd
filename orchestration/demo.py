"""`make demo` step: ingest whatever sits in the landing zone and materialize every asset.

Uses the same sensor and assets as production, against the persistent instance in DAGSTER_HOME,
so the UI that starts next shows the lineage graph with materialized reports and their checks.
"""

from __future__ import annotations

import time

from dagster import DagsterInstance, SensorResult, build_sensor_context, materialize

from assets.exports.raw_exportacao import raw_exportacao
from orchestration.definitions import defs, sql_model_assets
from orchestration.exports import export_file_drop_sensor
from orchestration.schedules import export_reports_selection


def main() -> None:
    instance = DagsterInstance.get()
    resources = dict(defs.resources)
    started = time.perf_counter()
    context = build_sensor_context(instance=instance, resources={"landing_zone": resources["landing_zone"]})
    result = export_file_drop_sensor(context)
    keys = (
        [request.partition_key for request in result.run_requests] if isinstance(result, SensorResult) else []
    )
    if keys:
        instance.add_dynamic_partitions("export_files", keys)
    for key in keys:
        outcome = materialize([raw_exportacao], partition_key=key, instance=instance, resources=resources)
        print(f"raw/exportacao[{key}]: {'ok' if outcome.success else 'FAILED'}")
    outcome = materialize(
        [raw_exportacao, *sql_model_assets],
        selection=export_reports_selection,
        instance=instance,
        resources=resources,
    )
    print(f"staging + reports: {'ok' if outcome.success else 'FAILED'}")
    print(f"demo data ready in {time.perf_counter() - started:.1f}s; starting the Dagster UI")


if __name__ == "__main__":
    main()
