"""Commerce clickstream domain (seed: realtime-ecommerce-pipeline): Kafka / JSONL → raw → staging → marts.

Resources it needs (bound in ``orchestration/definitions.py``): ``warehouse`` (WarehouseResource),
``kafka`` (KafkaResource), ``landing_zone`` (LandingZoneResource).
"""

from dagster import (
    AssetKey,
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    in_process_executor,
    schedule,
)

from assets.commerce.raw_events import (
    COMMERCE_DOMAIN,
    RAW_COMMERCE_EVENTS,
    kafka_commerce_events,
)
from dbt_like_sql.catalog import column_catalog
from orchestration.declared import declared, declared_assets, declared_sensor
from resources.settings import ScheduleSettings

# The Kafka topic source is declared in assets/defs/commerce/kafka_events/defs.yaml (its ingest
# asset, the commerce_kafka_ingest and commerce_kafka_ingest_and_refresh jobs, the offsets sensor);
# the code location loads it with every declaration. Handles for the bench and tests:
commerce_kafka_defs = declared("commerce/kafka_events")
raw_commerce_events = declared_assets("commerce/kafka_events", "raw_commerce_events")
commerce_kafka_sensor = declared_sensor("commerce/kafka_events", "commerce_kafka_offsets_sensor")

# Everything built from the raw events: the commerce staging tables and marts (SQL models). The
# streaming refresh runs (commerce_kafka_ingest_and_refresh) build them without their data tests
# (~100 checks would add three event-log writes each and their queries to every cycle, most of a
# small batch's run time); this job runs them on a cadence.
commerce_models_selection = AssetSelection.assets(RAW_COMMERCE_EVENTS).downstream(include_self=False)

commerce_data_tests_job = define_asset_job(
    "commerce_data_tests",
    selection=commerce_models_selection & AssetSelection.all_asset_checks(),
    executor_def=in_process_executor,
    description="Run every data test (asset check) of the commerce staging tables and marts.",
    tags={"domain": COMMERCE_DOMAIN},
)

# The commerce SQL models whose data tests the schedule runs (from the model files, no Dagster load).
COMMERCE_MODEL_KEYS = tuple(
    AssetKey.from_user_string(m["asset_key"]) for m in column_catalog() if m["group"] == "commerce"
)


@schedule(
    name="commerce_data_tests_schedule",
    job=commerce_data_tests_job,
    cron_schedule=ScheduleSettings.current().commerce_data_tests_cron,
    execution_timezone=ScheduleSettings.current().timezone,
    default_status=DefaultScheduleStatus.RUNNING,
    description=(
        "Data tests of the commerce models on a cadence: the streaming refresh runs leave them out "
        "to keep the marts fresh; runs launched by automation or by hand still run them. Skips while a "
        "model was never built (its tests would fail on a missing table, e.g. early in make demo)."
    ),
)
def commerce_data_tests_schedule(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    missing = [k for k in COMMERCE_MODEL_KEYS if context.instance.get_latest_materialization_event(k) is None]
    if missing:
        names = ", ".join(k.to_user_string() for k in missing[:5])
        return SkipReason(f"{len(missing)} commerce model(s) never built yet ({names}): nothing to test")
    return RunRequest()


# The landed JSONL feed is declared in assets/defs/commerce/landed_files/defs.yaml.
raw_commerce_event_files = declared_assets("commerce/landed_files", "raw_commerce_event_files")
commerce_file_drop_sensor = declared_sensor("commerce/landed_files", "commerce_file_drop_sensor")

defs = Definitions(
    assets=[kafka_commerce_events],
    jobs=[commerce_data_tests_job],
    schedules=[commerce_data_tests_schedule],
)
