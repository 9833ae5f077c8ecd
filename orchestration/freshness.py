"""Freshness of every aggregate (``mart/*`` tables and ``search/*`` indices), thresholds from configuration.

Why ``FreshnessPolicy``: in Dagster 1.13 the freshness-check factories
(``build_last_update_freshness_checks``, ``build_sensor_for_freshness_checks``) are marked *superseded*
and warn at every call ("attach ``FreshnessPolicy`` objects to your assets instead");
``FreshnessPolicy.time_window`` is the current API.
:func:`with_freshness` attaches one to every aggregate (``fail_window`` = its domain's threshold), so
Dagster's own freshness daemon (``freshness: enabled``, the default in 1.13) shows each aggregate's
freshness state in the UI.

A policy has no severity and its state is not readable outside Dagster, so two thin bridges apply the
*same* rule (stale once the last materialization is at least the threshold old) with the same thresholds:

* a ``freshness`` asset check on every aggregate, severity WARN (a late report is a warning; data tests
  that fail stay ERROR). ``aggregate_freshness_sensor`` evaluates them every tick from the instance's
  latest materializations and reports a check evaluation whenever an aggregate's state changes, without
  launching a run; jobs that refresh aggregates run the checks right after the refresh too;
* ``ops.freshness`` in the warehouse: the sensor (and the check) upsert one row per aggregate
  (``asset_key, domain, last_updated_at, threshold_minutes, status, checked_at``), because the read API
  reads only the warehouse. The API recomputes the status from ``last_updated_at`` at request time, so a
  stopped sensor can make an aggregate look older than it is, never fresher.

Without a search engine (``SEARCH_ENABLED=false``, as in ``make demo``) the ``search/*`` indices are never
built, so they are not watched: no policy, no check, no ``ops.freshness`` row (the sensor prunes old ones),
and ``/health`` judges only what this deployment can build.
"""

import datetime as dt
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from dagster import (
    AssetCheckEvaluation,
    AssetCheckExecutionContext,
    AssetCheckKey,
    AssetCheckResult,
    AssetChecksDefinition,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    DagsterInstance,
    DefaultSensorStatus,
    Definitions,
    FreshnessPolicy,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    multi_asset_check,
    sensor,
)

from orchestration.layers import map_specs
from resources.freshness_rules import FRESHNESS_TABLE, OPS_SCHEMA, Status, freshness_status, utc_now
from resources.platform_tables import PlatformTables, TableSpec, baseline, ensure_platform_tables
from resources.settings import OpsSettings, SearchSettings
from resources.warehouse import WarehouseResource

AGGREGATE_PREFIXES: tuple[str, ...] = ("mart", "search")
SEARCH_PREFIX = "search"
FRESHNESS_CHECK_NAME = "freshness"
FRESHNESS_SENSOR_NAME = "aggregate_freshness_sensor"

# A sensor tick must stay well below the gRPC timeout even when a run holds the DuckDB file.
_SENSOR_LOCK_TIMEOUT_S = 15.0

Clock = Callable[[], dt.datetime]


def threshold_for(domain: str) -> tuple[dt.timedelta, str]:
    """The configured threshold of a domain and the setting it came from (at least one minute)."""
    settings = OpsSettings.current()
    # Domain (asset group) -> (setting, minutes). Other groups use FRESHNESS_DEFAULT_MINUTES.
    name, minutes = {
        "exports": ("EXPORTS_FRESHNESS_HOURS", settings.exports_freshness_hours * 60),
        "commerce": ("COMMERCE_FRESHNESS_MINUTES", settings.commerce_freshness_minutes),
        "usage": ("USAGE_FRESHNESS_MINUTES", settings.usage_freshness_minutes),
    }.get(domain, ("FRESHNESS_DEFAULT_MINUTES", settings.default_freshness_minutes))
    if minutes < 1:
        raise ValueError(f"{name} must be at least 1 minute (Dagster's freshness windows start at 1 minute)")
    return dt.timedelta(minutes=minutes), name


@dataclass(frozen=True)
class Aggregate:
    """An asset whose freshness is watched, with its domain's threshold."""

    key: AssetKey
    domain: str
    threshold: dt.timedelta
    setting: str

    @property
    def threshold_minutes(self) -> int:
        return int(self.threshold.total_seconds() // 60)

    @property
    def check_key(self) -> AssetCheckKey:
        return AssetCheckKey(self.key, FRESHNESS_CHECK_NAME)


def watched_prefixes() -> tuple[str, ...]:
    """Aggregate prefixes this deployment builds: ``search`` only where a search engine is configured."""
    if SearchSettings.current().enabled:
        return AGGREGATE_PREFIXES
    return tuple(prefix for prefix in AGGREGATE_PREFIXES if prefix != SEARCH_PREFIX)


def is_aggregate(key: AssetKey) -> bool:
    return len(key.path) > 1 and key.path[0] in watched_prefixes()


def _specs_of(defs: Definitions) -> Iterable[AssetSpec]:
    for item in defs.assets or []:
        if isinstance(item, AssetSpec):
            yield item
        elif isinstance(item, AssetsDefinition):
            yield from item.specs


def aggregates_of(defs: Definitions) -> list[Aggregate]:
    """Every ``mart/*`` and ``search/*`` asset of ``defs`` with its threshold, in key order.

    ``search/*`` only while ``SEARCH_ENABLED`` (see the module docstring)."""
    found: dict[AssetKey, Aggregate] = {}
    for spec in _specs_of(defs):
        if is_aggregate(spec.key):
            domain = spec.group_name or "default"
            threshold, name = threshold_for(domain)
            found[spec.key] = Aggregate(spec.key, domain, threshold, name)
    return [found[key] for key in sorted(found, key=lambda k: k.to_user_string())]


@dataclass(frozen=True)
class FreshnessEvaluation:
    """One aggregate's freshness at ``checked_at`` (all timestamps naive UTC)."""

    aggregate: Aggregate
    last_updated_at: dt.datetime | None
    checked_at: dt.datetime

    @property
    def status(self) -> Status:
        return freshness_status(self.last_updated_at, self.aggregate.threshold, self.checked_at)

    @property
    def passed(self) -> bool:
        return self.status == "fresh"

    @property
    def description(self) -> str:
        limit = f"{self.aggregate.threshold_minutes} min ({self.aggregate.setting})"
        if self.last_updated_at is None:
            return f"never materialized; expected within {limit}"
        age = (self.checked_at - self.last_updated_at).total_seconds() / 60
        return f"{self.status}: last updated {age:.1f} min ago, threshold {limit}"

    def metadata(self) -> dict[str, object]:
        return {
            "status": self.status,
            "threshold_minutes": self.aggregate.threshold_minutes,
            "threshold_setting": self.aggregate.setting,
            "last_updated_at": self.last_updated_at.isoformat() if self.last_updated_at else "never",
            "checked_at": self.checked_at.isoformat(),
        }

    def _check_fields(self) -> dict[str, Any]:
        return {
            "asset_key": self.aggregate.key,
            "check_name": FRESHNESS_CHECK_NAME,
            "passed": self.passed,
            "severity": AssetCheckSeverity.WARN,
            "description": self.description,
            "metadata": self.metadata(),
        }

    def check_result(self) -> AssetCheckResult:
        """The result a check step yields (inside a run)."""
        return AssetCheckResult(**self._check_fields())

    def check_evaluation(self) -> AssetCheckEvaluation:
        """The same outcome as an evaluation a sensor reports (outside a run)."""
        return AssetCheckEvaluation(**self._check_fields())

    def state_token(self) -> list[object]:
        """What the sensor remembers: a change of status or of the last update re-reports the check."""
        last = self.last_updated_at.isoformat() if self.last_updated_at else None
        return [self.status, last]


def last_materialized_at(instance: DagsterInstance, key: AssetKey) -> dt.datetime | None:
    """Naive-UTC time of the latest materialization the Dagster instance recorded for ``key``."""
    event = instance.get_latest_materialization_event(key)
    if event is None:
        return None
    return dt.datetime.fromtimestamp(event.timestamp, dt.UTC).replace(tzinfo=None)


def evaluate_freshness(
    instance: DagsterInstance, aggregates: Sequence[Aggregate], now: dt.datetime
) -> list[FreshnessEvaluation]:
    return [FreshnessEvaluation(agg, last_materialized_at(instance, agg.key), now) for agg in aggregates]


# --------------------------------------------------------------------------------------------
# The warehouse record read by the API


# One row per aggregate, upserted by the freshness sensor. Shape unchanged since it was introduced.
FRESHNESS_TABLES = PlatformTables(
    f"freshness/{OPS_SCHEMA}.{FRESHNESS_TABLE}",
    (
        TableSpec(
            OPS_SCHEMA,
            FRESHNESS_TABLE,
            (
                ("asset_key", "VARCHAR(300)"),
                ("domain", "VARCHAR(100) NOT NULL"),
                ("last_updated_at", "TIMESTAMP"),
                ("threshold_minutes", "INTEGER NOT NULL"),
                ("status", "VARCHAR(10) NOT NULL"),
                ("checked_at", "TIMESTAMP NOT NULL"),
            ),
            primary_key=("asset_key",),
        ),
    ),
    (baseline("ops.freshness as created since its first version (c1a3870)"),),
)


_UPSERT_SQL = sa.text(
    f"INSERT INTO {OPS_SCHEMA}.{FRESHNESS_TABLE} "
    "(asset_key, domain, last_updated_at, threshold_minutes, status, checked_at) "
    "VALUES (:asset_key, :domain, :last_updated_at, :threshold_minutes, :status, :checked_at) "
    "ON CONFLICT (asset_key) DO UPDATE SET domain = EXCLUDED.domain, "
    "last_updated_at = EXCLUDED.last_updated_at, threshold_minutes = EXCLUDED.threshold_minutes, "
    "status = EXCLUDED.status, checked_at = EXCLUDED.checked_at"
)


def record_freshness(
    warehouse: WarehouseResource, evaluations: Sequence[FreshnessEvaluation], *, prune: bool = False
) -> None:
    """Upsert one ``ops.freshness`` row per evaluation; ``prune`` drops aggregates no longer defined."""
    rows = [
        {
            "asset_key": e.aggregate.key.to_user_string(),
            "domain": e.aggregate.domain,
            "last_updated_at": e.last_updated_at,
            "threshold_minutes": e.aggregate.threshold_minutes,
            "status": e.status,
            "checked_at": e.checked_at,
        }
        for e in evaluations
    ]
    with warehouse.begin() as conn:
        ensure_platform_tables(conn, FRESHNESS_TABLES)
        if rows:
            conn.execute(_UPSERT_SQL, rows)
        if prune:
            keep = {row["asset_key"] for row in rows}
            existing = conn.execute(sa.text(f"SELECT asset_key FROM {OPS_SCHEMA}.{FRESHNESS_TABLE}"))
            gone = [{"asset_key": key} for (key,) in existing if key not in keep]
            if gone:
                conn.execute(
                    sa.text(f"DELETE FROM {OPS_SCHEMA}.{FRESHNESS_TABLE} WHERE asset_key = :asset_key"), gone
                )


# --------------------------------------------------------------------------------------------
# Dagster definitions


def freshness_check_spec(aggregate: Aggregate) -> AssetCheckSpec:
    return AssetCheckSpec(
        FRESHNESS_CHECK_NAME,
        asset=aggregate.key,
        description=(
            f"Materialized within the last {aggregate.threshold_minutes} minutes ({aggregate.setting}); "
            "a late aggregate is a warning."
        ),
        metadata={"severity": "warn", "threshold_minutes": aggregate.threshold_minutes},
    )


def build_freshness_checks(
    aggregates: Sequence[Aggregate], *, clock: Clock = utc_now, name: str = "aggregate_freshness"
) -> AssetChecksDefinition:
    """One WARN ``freshness`` check per aggregate; a run evaluates the selected ones and records them."""
    by_check = {agg.check_key: agg for agg in aggregates}

    @multi_asset_check(
        specs=[freshness_check_spec(agg) for agg in aggregates],
        name=name,
        can_subset=True,
        description="Is each aggregate's latest materialization within its configured threshold?",
    )
    def _freshness_checks(
        context: AssetCheckExecutionContext, warehouse: WarehouseResource
    ) -> Iterable[AssetCheckResult]:
        selected = [by_check[key] for key in context.selected_asset_check_keys if key in by_check]
        evaluations = evaluate_freshness(context.instance, selected, clock())
        try:
            record_freshness(warehouse, evaluations)
        except Exception as exc:  # the check result matters more than the API record
            context.log.warning(f"ops.freshness not updated: {exc}")
        for evaluation in evaluations:
            yield evaluation.check_result()

    return _freshness_checks


def build_freshness_sensor(
    aggregates: Sequence[Aggregate],
    *,
    clock: Clock = utc_now,
    name: str = FRESHNESS_SENSOR_NAME,
    minimum_interval_seconds: int | None = None,
) -> SensorDefinition:
    """Every tick: evaluate all aggregates, refresh ``ops.freshness``, report changed check states."""

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds
        or OpsSettings.current().freshness_sensor_interval_seconds,
        default_status=DefaultSensorStatus.RUNNING,
        description=(
            "Evaluates the freshness of every mart and search index against its configured threshold, "
            "records it in ops.freshness for the API and reports the WARN freshness checks (no runs)."
        ),
    )
    def _freshness_sensor(context: SensorEvaluationContext, warehouse: WarehouseResource) -> SensorResult:
        evaluations = evaluate_freshness(context.instance, aggregates, clock())
        try:
            record_freshness(
                WarehouseResource(url=warehouse.url, lock_timeout_s=_SENSOR_LOCK_TIMEOUT_S),
                evaluations,
                prune=True,
            )
        except Exception as exc:  # retried next tick; the check states are still reported
            context.log.warning(f"ops.freshness not updated this tick: {exc}")
        previous = json.loads(context.cursor) if context.cursor else {}
        current = {e.aggregate.key.to_user_string(): e.state_token() for e in evaluations}
        changed = [
            e
            for e in evaluations
            if previous.get(e.aggregate.key.to_user_string()) != current[e.aggregate.key.to_user_string()]
        ]
        stale = sorted(e.aggregate.key.to_user_string() for e in evaluations if not e.passed)
        context.log.info(f"{len(evaluations)} aggregates, {len(stale)} not fresh: {', '.join(stale) or '-'}")
        return SensorResult(
            asset_events=[e.check_evaluation() for e in changed], cursor=json.dumps(current, sort_keys=True)
        )

    return _freshness_sensor


def freshness_policy_for(aggregate: Aggregate) -> FreshnessPolicy:
    return FreshnessPolicy.time_window(fail_window=aggregate.threshold)


def _with_policy(by_key: dict[AssetKey, Aggregate]) -> Callable[[AssetSpec], AssetSpec]:
    def apply(spec: AssetSpec) -> AssetSpec:
        aggregate = by_key.get(spec.key)
        if aggregate is None:
            return spec
        return spec.replace_attributes(freshness_policy=freshness_policy_for(aggregate))

    return apply


def with_freshness(defs: Definitions) -> Definitions:
    """``defs`` with a ``FreshnessPolicy`` on every aggregate plus the freshness checks and their sensor.

    Thresholds are read from the settings once, when the code location loads (as every other setting).
    """
    aggregates = aggregates_of(defs)
    if not aggregates:
        return defs
    by_key = {agg.key: agg for agg in aggregates}
    with_policies = map_specs(defs, _with_policy(by_key))
    return Definitions.merge(
        with_policies,
        Definitions(
            asset_checks=[build_freshness_checks(aggregates)], sensors=[build_freshness_sensor(aggregates)]
        ),
    )
