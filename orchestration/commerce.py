"""Commerce clickstream domain (seed: realtime-ecommerce-pipeline): Kafka / JSONL → raw → staging → marts.

Resources it needs (bound in ``orchestration/definitions.py``): ``warehouse`` (WarehouseResource),
``kafka`` (KafkaResource), ``landing_zone`` (LandingZoneResource).
"""

from dagster import (
    AssetSelection,
    DefaultScheduleStatus,
    Definitions,
    ScheduleDefinition,
    define_asset_job,
    in_process_executor,
)

from assets.commerce.raw_events import (
    COMMERCE_DOMAIN,
    RAW_COMMERCE_EVENTS,
    kafka_commerce_events,
)
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

commerce_data_tests_schedule = ScheduleDefinition(
    name="commerce_data_tests_schedule",
    job=commerce_data_tests_job,
    cron_schedule=ScheduleSettings.current().commerce_data_tests_cron,
    execution_timezone=ScheduleSettings.current().timezone,
    default_status=DefaultScheduleStatus.RUNNING,
    description=(
        "Data tests of the commerce models on a cadence: the streaming refresh runs leave them out "
        "to keep the marts fresh; runs launched by automation or by hand still run them."
    ),
)

# The landed JSONL feed is declared in assets/defs/commerce/landed_files/defs.yaml.
raw_commerce_event_files = declared_assets("commerce/landed_files", "raw_commerce_event_files")
commerce_file_drop_sensor = declared_sensor("commerce/landed_files", "commerce_file_drop_sensor")

defs = Definitions(
    assets=[kafka_commerce_events],
    jobs=[commerce_data_tests_job],
    schedules=[commerce_data_tests_schedule],
)
