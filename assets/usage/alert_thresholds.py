"""``stg/usage_alert_thresholds``: the alert thresholds of the environment, as a one-row table.

SQL models take no parameters, so the thresholds that ``mart.usage_alerts`` applies are written to a
table (visible in lineage, and queryable next to the alerts they produced). The asset's code version
is the hash of the current values: changing a variable and reloading the code location makes it
stale, and declarative automation rebuilds it, then the alerts. It is also rewritten whenever new usage
lands (it depends on the raw tables), so alerts are always computed with the current settings.
"""

import datetime as dt
import hashlib
import json
from dataclasses import asdict, dataclass

import pyarrow as pa
from dagster import AssetExecutionContext, AssetKey, AutomationCondition, MaterializeResult, asset

from assets.automation import after_upstream_updates
from assets.usage.tables import EVENTS_TABLE, FILE_EVENTS_TABLE, RAW_SCHEMA
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.settings import UsageSettings
from resources.warehouse import WarehouseResource

THRESHOLDS_KEY = ["stg", "usage_alert_thresholds"]


@dataclass(frozen=True)
class AlertThresholds:
    """Limits of ``mart.usage_alerts`` (see the model's description for their meaning)."""

    daily_tokens: int
    spike_factor: float
    trailing_days: int
    spike_min_tokens: int

    @classmethod
    def from_settings(cls) -> "AlertThresholds":
        settings = UsageSettings.current()
        thresholds = cls(
            daily_tokens=settings.alert_daily_tokens,
            spike_factor=settings.alert_spike_factor,
            trailing_days=settings.alert_trailing_days,
            spike_min_tokens=settings.alert_spike_min_tokens,
        )
        if thresholds.daily_tokens < 1 or thresholds.spike_factor <= 1 or thresholds.trailing_days < 1:
            raise ValueError(
                f"invalid usage alert settings {thresholds}: need daily tokens >= 1, spike factor > 1 "
                "and trailing days >= 1"
            )
        return thresholds

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:12]

    def to_arrow(self, at: dt.datetime) -> pa.Table:
        return pa.table(
            {
                "daily_tokens": pa.array([self.daily_tokens], pa.int64()),
                "spike_factor": pa.array([self.spike_factor], pa.float64()),
                "trailing_days": pa.array([self.trailing_days], pa.int32()),
                "spike_min_tokens": pa.array([self.spike_min_tokens], pa.int64()),
                "settings_hash": [self.digest()],
                "updated_at": pa.array([at], pa.timestamp("us")),
            }
        )


def _settings_version() -> str:
    """Code version from the settings; a bad value must not break loading the code location."""
    try:
        return AlertThresholds.from_settings().digest()
    except ValueError:
        return "invalid-settings"


def write_thresholds(warehouse: WarehouseResource, thresholds: AlertThresholds) -> None:
    """Replace the one-row thresholds table (its own transaction)."""
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    warehouse.write_table(thresholds.to_arrow(now), "stg", "usage_alert_thresholds", mode="replace")


@asset(
    key=THRESHOLDS_KEY,
    group_name="usage",
    owners=["team:usage"],
    kinds={"python", "table"},
    tags={"layer": "stg"},
    metadata={"dagster/table_name": "stg.usage_alert_thresholds"},
    code_version=_settings_version(),
    deps=[AssetKey([RAW_SCHEMA, EVENTS_TABLE]), AssetKey([RAW_SCHEMA, FILE_EVENTS_TABLE])],
    automation_condition=after_upstream_updates() | AutomationCondition.code_version_changed(),
    retry_policy=NETWORK_RETRY_POLICY,
    description=(
        "Alert thresholds from USAGE_ALERT_DAILY_TOKENS, USAGE_ALERT_SPIKE_FACTOR, "
        "USAGE_ALERT_TRAILING_DAYS and USAGE_ALERT_SPIKE_MIN_TOKENS (one row)."
    ),
)
@fail_fast_on_permanent_errors
def usage_alert_thresholds(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
    """Write the current threshold settings so the alerts model can join them."""
    thresholds = AlertThresholds.from_settings()
    write_thresholds(warehouse, thresholds)
    context.log.info(f"usage alert thresholds: {thresholds}")
    return MaterializeResult(metadata={**asdict(thresholds), "settings_hash": thresholds.digest()})
