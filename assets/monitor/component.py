"""``SystemLogsMonitor``: platform topics and JSON log lines indexed into ``system_logs``, declared in YAML.

The declaration (``assets/defs/monitor/system_logs/defs.yaml``) names the asset and its owners; what
is read and where it goes are the ``SYSTEM_LOGS_*`` settings, read at run and tick time. It builds
the asset (one pass per materialization, its metadata the counts and the fallback backlog), a job
running it in process, and the sensor requesting runs (see :mod:`assets.monitor._sensor`). The
sensor starts STOPPED where ``SEARCH_ENABLED=false``: without a search engine every pass would only
fill the fallback file.
"""

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSelection,
    DefaultSensorStatus,
    Definitions,
    MaterializeResult,
    asset,
    define_asset_job,
    in_process_executor,
)
from dagster.components import Component, ComponentLoadContext, Model, Resolvable
from pydantic import Field

from assets.monitor._pass import MonitorConfig, run_pass
from assets.monitor._sensor import build_monitor_sensor
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.kafka import KafkaResource
from resources.search import SearchResource
from resources.settings import MonitorSettings, SearchSettings
from resources.warehouse import WarehouseResource


class SystemLogsMonitor(Component, Resolvable, Model):
    """Kafka topics and JSON log files indexed into daily search indices, with a file fallback."""

    asset_key: str = Field(default="search/system_logs", description="Key of the monitor's asset (a/b)")
    group_name: str = Field(default="monitor", description="Asset group")
    owners: list[str] = Field(default_factory=list, description="Owners of the asset")
    description: str = Field(default="", description="Description of the asset")
    job_name: str = Field(default="system_logs_monitor", description="Job running one pass")
    sensor_name: str = Field(default="system_logs_sensor", description="Sensor requesting passes")

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        key = AssetKey.from_user_string(self.asset_key)
        alias = MonitorSettings.current().alias  # as loaded; each run reads it again

        @asset(
            key=key,
            group_name=self.group_name,
            owners=self.owners,
            description=self.description or None,
            kinds={"python", "kafka", "opensearch"},
            tags={"layer": "search"},
            metadata={"index_name": alias, "index_pattern": f"{alias}-YYYY.MM.DD"},
            # The engine being away is handled by the fallback file; the warehouse (offsets) or Kafka
            # being away is retried like every network-facing asset, permanent errors fail at once.
            retry_policy=NETWORK_RETRY_POLICY,
        )
        @fail_fast_on_permanent_errors
        def _system_logs(
            context: AssetExecutionContext,
            warehouse: WarehouseResource,
            kafka: KafkaResource,
            search: SearchResource,
        ) -> MaterializeResult:
            report = run_pass(MonitorConfig.from_settings(), warehouse, kafka, search, context.log)
            return MaterializeResult(metadata=report.metadata())

        job = define_asset_job(
            self.job_name,
            selection=AssetSelection.assets(key),
            executor_def=in_process_executor,
            description="One system_logs monitor pass: replay the fallback file, index what is new.",
            tags={"afluente/monitor": "system_logs"},
        )
        searching = SearchSettings.current().enabled
        sensor = build_monitor_sensor(
            name=self.sensor_name,
            job=job,
            minimum_interval_seconds=MonitorSettings.current().sensor_interval_seconds,
            default_status=DefaultSensorStatus.RUNNING if searching else DefaultSensorStatus.STOPPED,
        )
        return Definitions(assets=[_system_logs], jobs=[job], sensors=[sensor])
