"""`make demo` step: ingest whatever sits in the landing zone and materialize every asset it can.

Uses the production sensors and assets against the persistent instance in DAGSTER_HOME, so the UI
that starts next shows the lineage graph with materialized tables and their checks. Assets that need
a broker, MongoDB or a search engine are left to their sensors and schedules: the demo runs on the
embedded defaults alone.
"""

import time
from collections.abc import Sequence

from dagster import (
    AssetsDefinition,
    AssetSelection,
    DagsterInstance,
    EnvVar,
    SensorDefinition,
    SensorResult,
    build_sensor_context,
    materialize,
)

from orchestration.commerce import commerce_file_drop_sensor, raw_commerce_event_files
from orchestration.definitions import defs
from orchestration.exports import export_file_drop_sensor, raw_exportacao
from orchestration.usage import raw_usage_event_files, usage_file_drop_sensor
from resources.warehouse import WarehouseResource

# Resources only running services provide; assets needing them are skipped by the demo.
SERVICE_RESOURCES = frozenset({"kafka", "mongo", "search"})

LANDING_FEEDS: tuple[tuple[SensorDefinition, AssetsDefinition], ...] = (
    (export_file_drop_sensor, raw_exportacao),
    (commerce_file_drop_sensor, raw_commerce_event_files),
    (usage_file_drop_sensor, raw_usage_event_files),
)


def ingest_landed_files(instance: DagsterInstance, resources: dict, feeds: Sequence = LANDING_FEEDS) -> bool:
    """Evaluate each file-drop sensor once and run the partition it requests, as the daemon would."""
    ok = True
    for sensor, file_asset in feeds:
        with build_sensor_context(
            instance=instance, resources={"landing_zone": resources["landing_zone"]}
        ) as context:
            result = sensor(context)
        if not isinstance(result, SensorResult):
            continue
        for request in result.dynamic_partitions_requests or []:
            instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys or []))
        for run in result.run_requests or []:
            outcome = materialize(
                [file_asset], partition_key=run.partition_key, instance=instance, resources=resources
            )
            print(f"{sensor.name} → {run.partition_key}: {'ok' if outcome.success else 'FAILED'}")
            ok = ok and outcome.success
    return ok


def _table_of(file_asset: AssetsDefinition) -> str:
    return next(iter(file_asset.specs)).metadata["dagster/table_name"]


def _has_data(table: str, resources: dict) -> bool:
    url = resources["warehouse"].url
    warehouse = WarehouseResource(url=url.get_value() if isinstance(url, EnvVar) else url)
    return warehouse.table_exists(*table.split("."))


def materialize_downstream(
    instance: DagsterInstance, resources: dict, feeds: Sequence = LANDING_FEEDS
) -> bool:
    """Materialize what depends on the fed raw tables (staging, marts) and needs no external service."""
    tables = {_table_of(file_asset) for _, file_asset in feeds}
    fed_tables = {table for table in tables if _has_data(table, resources)}
    if not fed_tables:
        print("no landed data: nothing to materialize")
        return True
    assets = [a for a in defs.assets or [] if isinstance(a, AssetsDefinition)]
    # Every asset stored in a fed table is a root: files feed raw.commerce_events, owned by the Kafka asset.
    roots = [
        spec.key for a in assets for spec in a.specs if spec.metadata.get("dagster/table_name") in fed_tables
    ]
    runnable = [
        a for a in assets if a.partitions_def is None and not (a.required_resource_keys & SERVICE_RESOURCES)
    ]
    keys = (AssetSelection.assets(*roots).downstream().upstream() & AssetSelection.assets(*runnable)).resolve(
        assets
    )
    chosen = [a for a in runnable if a.keys & keys]
    outcome = materialize(chosen, selection=list(keys), instance=instance, resources=resources)
    print(f"staging + marts ({len(keys)} assets): {'ok' if outcome.success else 'FAILED'}")
    return outcome.success


def main() -> None:
    instance = DagsterInstance.get()
    resources = dict(defs.resources)
    started = time.perf_counter()
    ok = ingest_landed_files(instance, resources)
    ok = materialize_downstream(instance, resources) and ok
    print(f"demo data ready in {time.perf_counter() - started:.1f}s; starting the Dagster UI")
    if not ok:
        raise SystemExit("some demo materializations failed; see the output above")


if __name__ == "__main__":
    main()
