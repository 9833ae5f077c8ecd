"""AI-assistant usage domain (seed: ai-usage-insights-mvp): MongoDB / JSON files → raw → marts → indices.

Resources this module expects from ``orchestration/definitions.py``: ``warehouse``
(WarehouseResource), ``landing_zone`` (LandingZoneResource), ``mongo`` (MongoResource) and
``search`` (SearchResource). The SQL models (``stg/usage_events``, ``mart/usage_*``) come from
``dbt_like_sql`` with the other domains' models.
"""

from dagster import (
    AssetKey,
    AssetSelection,
    DagsterInstance,
    DefaultScheduleStatus,
    Definitions,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    define_asset_job,
    schedule,
)

from assets.usage.alert_thresholds import usage_alert_thresholds
from assets.usage.insight_indices import INSIGHT_INDEX_KEYS, index_asset_key, insight_index_assets
from orchestration.declared import declared_assets, declared_sensor
from resources.settings import ScheduleSettings, SearchSettings
from resources.usage_index_specs import INSIGHT_INDICES

# The MongoDB source (raw/usage_events + rejects, its watermark sensor) is declared in
# assets/defs/usage/mongo_events/defs.yaml.

# The landed JSON/JSONL feed is declared in assets/defs/usage/landed_files/defs.yaml.
raw_usage_event_files = declared_assets("usage/landed_files", "raw_usage_event_files")
usage_file_drop_sensor = declared_sensor("usage/landed_files", "usage_file_drop_sensor")

usage_indices_selection = AssetSelection.assets(*INSIGHT_INDEX_KEYS)

rebuild_usage_indices_job = define_asset_job(
    "rebuild_usage_insight_indices",
    selection=usage_indices_selection,
    description="Rebuild every usage insight index as a new version and switch its alias atomically.",
    tags={"domain": "usage"},
)


def rebuildable_indices(instance: DagsterInstance) -> tuple[list[AssetKey], list[str]]:
    """Indices whose source table has been built at least once, and the sources never built.

    An index built from a table that does not exist yet fails with ``relation ... does not exist``,
    a permanent incident for what is only a fresh install; such indices wait for their source.
    """
    ready, missing = [], []
    for index in INSIGHT_INDICES:
        source = AssetKey(list(index.source_table))
        if instance.get_latest_materialization_event(source) is None:
            missing.append(source.to_user_string())
        else:
            ready.append(index_asset_key(index))
    return ready, missing


SEARCH_ENABLED = SearchSettings.current().enabled


@schedule(
    name="rebuild_usage_insight_indices_hourly",
    job=rebuild_usage_indices_job,
    cron_schedule=ScheduleSettings.current().usage_index_refresh_cron,
    execution_timezone=ScheduleSettings.current().timezone,
    # Without a search engine every run would fail: stopped, and the description says why.
    default_status=DefaultScheduleStatus.RUNNING if SEARCH_ENABLED else DefaultScheduleStatus.STOPPED,
    description=(
        "Hourly rebuild of the insight indices whose source marts exist (automation also rebuilds "
        "them when usage lands); skips with a reason while no usage mart has been built."
        + (
            ""
            if SEARCH_ENABLED
            else " Stopped: no search engine is configured here (SEARCH_ENABLED=false), so a rebuild "
            "could only fail; set SEARCH_ENABLED=true with SEARCH_URL pointing at OpenSearch/Elasticsearch."
        )
    ),
)
def rebuild_usage_indices_hourly(context: ScheduleEvaluationContext) -> RunRequest | SkipReason:
    ready, missing = rebuildable_indices(context.instance)
    if not ready:
        return SkipReason(f"no usage insight index to rebuild: never built yet: {', '.join(missing)}")
    if missing:
        context.log.info(f"waiting for never-built sources: {', '.join(missing)}")
    return RunRequest(
        asset_selection=ready, tags={"afluente/indices_waiting": ",".join(missing)} if missing else {}
    )


defs = Definitions(
    assets=[
        usage_alert_thresholds,
        *insight_index_assets,
    ],
    jobs=[rebuild_usage_indices_job],
    schedules=[rebuild_usage_indices_hourly],
)
