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

from assets.commerce.kafka_ingest import PIPELINE
from assets.commerce.raw_events import (
    COMMERCE_DOMAIN,
    COMMERCE_FILE_PATTERNS,
    RAW_COMMERCE_DEAD_LETTER,
    RAW_COMMERCE_EVENT_FILE_REJECTS,
    RAW_COMMERCE_EVENT_FILES,
    RAW_COMMERCE_EVENTS,
    commerce_files_partitions,
    kafka_commerce_events,
    kafka_run_config,
    landing_commerce,
    raw_commerce_event_files,
    raw_commerce_events,
)
from resources.settings import setting, setting_bool, setting_int
from sensors.file_drop import build_file_drop_sensor
from sensors.kafka_offsets import build_kafka_offsets_sensor

# One op per run and no step subprocess: the in-process executor saves a Python start-up per
# batch (the run worker process itself is the only one launched).
commerce_kafka_ingest_job = define_asset_job(
    "commerce_kafka_ingest",
    selection=AssetSelection.assets(RAW_COMMERCE_EVENTS, RAW_COMMERCE_DEAD_LETTER),
    executor_def=in_process_executor,
    description="Consume the Kafka offset ranges given in the run config into raw.commerce_events.",
    tags={"domain": COMMERCE_DOMAIN},
)

# Everything built from the raw events: the commerce staging tables and marts (SQL models).
commerce_models_selection = AssetSelection.assets(RAW_COMMERCE_EVENTS).downstream(include_self=False)

# The run that catches up with the topic also rebuilds everything downstream (staging, marts)
# in the same process: one run launch per streaming cycle instead of an ingest run followed by an
# automation run. Each SQL model has its own concurrency pool, so overlapping runs build a model
# one after the other; automation still refreshes after backlog runs and landed files.
# The models' data tests are left to commerce_data_tests (below): ~100 checks would add three
# event-log writes each and their queries to every cycle, most of a small batch's run time.
commerce_kafka_ingest_and_refresh_job = define_asset_job(
    "commerce_kafka_ingest_and_refresh",
    selection=AssetSelection.assets(RAW_COMMERCE_EVENTS, RAW_COMMERCE_DEAD_LETTER)
    | commerce_models_selection.without_checks(),
    executor_def=in_process_executor,
    description=(
        "Consume the Kafka offset ranges given in the run config into raw.commerce_events, then "
        "rebuild the commerce staging tables and marts (their data tests run in commerce_data_tests)."
    ),
    tags={"domain": COMMERCE_DOMAIN},
)

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
    cron_schedule=setting("COMMERCE_DATA_TESTS_CRON"),
    execution_timezone=setting("AFLUENTE_TIMEZONE"),
    default_status=DefaultScheduleStatus.RUNNING,
    description=(
        "Data tests of the commerce models on a cadence: the streaming refresh runs leave them out "
        "to keep the marts fresh; runs launched by automation or by hand still run them."
    ),
)

commerce_kafka_sensor = build_kafka_offsets_sensor(
    name="commerce_kafka_offsets_sensor",
    job=commerce_kafka_ingest_job,
    pipeline=PIPELINE,
    topic=lambda: setting("COMMERCE_KAFKA_TOPIC"),
    run_config=kafka_run_config,
    max_events_per_run=lambda: setting_int("COMMERCE_KAFKA_MAX_EVENTS_PER_RUN"),
    max_runs_per_tick=lambda: setting_int("COMMERCE_KAFKA_MAX_RUNS_PER_TICK"),
    in_flight_timeout_s=lambda: float(setting_int("COMMERCE_KAFKA_IN_FLIGHT_TIMEOUT_SECONDS")),
    minimum_interval_seconds=setting_int("COMMERCE_KAFKA_SENSOR_INTERVAL_SECONDS"),
    description=(
        "Requests runs of commerce_kafka_ingest for the offset ranges of the commerce topic that the "
        "warehouse ledger (raw.kafka_offsets) does not cover yet; the run that catches up with the "
        "topic is a commerce_kafka_ingest_and_refresh run (COMMERCE_KAFKA_REFRESH_WHEN_CAUGHT_UP)."
    ),
    catch_up_job=commerce_kafka_ingest_and_refresh_job,
    use_catch_up_job=lambda: setting_bool("COMMERCE_KAFKA_REFRESH_WHEN_CAUGHT_UP"),
)

commerce_file_drop_sensor = build_file_drop_sensor(
    name="commerce_file_drop_sensor",
    domain=COMMERCE_DOMAIN,
    patterns=COMMERCE_FILE_PATTERNS,
    partitions_def=commerce_files_partitions,
    target=AssetSelection.assets(RAW_COMMERCE_EVENT_FILES, RAW_COMMERCE_EVENT_FILE_REJECTS),
    description="Each new JSONL file in <landing>/commerce/ becomes a partition of raw/commerce_event_files.",
)

defs = Definitions(
    assets=[kafka_commerce_events, landing_commerce, raw_commerce_events, raw_commerce_event_files],
    jobs=[commerce_kafka_ingest_job, commerce_kafka_ingest_and_refresh_job, commerce_data_tests_job],
    schedules=[commerce_data_tests_schedule],
    sensors=[commerce_kafka_sensor, commerce_file_drop_sensor],
)
