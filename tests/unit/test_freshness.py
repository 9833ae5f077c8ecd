"""Freshness definitions: every aggregate has a policy and a WARN check; thresholds from configuration."""

import datetime as dt

import pytest
from dagster import AssetCheckKey, AssetCheckSeverity, AssetKey, AssetSpec, Definitions, FreshnessPolicy

from dbt_like_sql import load_project
from orchestration.definitions import defs
from orchestration.freshness import (
    FRESHNESS_CHECK_NAME,
    FRESHNESS_SENSOR_NAME,
    Aggregate,
    FreshnessEvaluation,
    aggregates_of,
    freshness_status,
    is_aggregate,
    threshold_for,
    with_freshness,
)
from resources.settings import OpsSettings
from resources.warehouse import WarehouseResource

OPS = OpsSettings.current()
EXPECTED_MINUTES = {
    "exports": OPS.exports_freshness_hours * 60,
    "commerce": OPS.commerce_freshness_minutes,
    "usage": OPS.usage_freshness_minutes,
    "monitor": OPS.default_freshness_minutes,  # search/system_logs
    "subscriptions": OPS.default_freshness_minutes,
}


def test_every_mart_and_search_asset_has_a_freshness_policy_and_check() -> None:
    graph = defs.resolve_asset_graph()
    aggregates = [key for key in graph.get_all_asset_keys() if key.path[0] in ("mart", "search")]
    assert {k.path[0] for k in aggregates} == {"mart", "search"}
    assert len(aggregates) >= 10
    for key in aggregates:
        node = graph.get(key)
        name = key.to_user_string()
        assert AssetCheckKey(key, FRESHNESS_CHECK_NAME) in node.check_keys, name
        minutes = EXPECTED_MINUTES[node.group_name]
        assert node.freshness_policy == FreshnessPolicy.time_window(
            fail_window=dt.timedelta(minutes=minutes)
        ), name
    # Raw and staging tables are not aggregates: no freshness check there.
    for key in graph.get_all_asset_keys():
        if key.path[0] in ("raw", "stg"):
            assert AssetCheckKey(key, FRESHNESS_CHECK_NAME) not in graph.get(key).check_keys


def test_freshness_checks_are_warn_and_data_tests_keep_their_declared_severity() -> None:
    graph = defs.resolve_asset_graph()
    specs = {key: graph.get_check_spec(key) for key in graph.asset_check_keys}
    freshness = [spec for key, spec in specs.items() if key.name == FRESHNESS_CHECK_NAME]
    assert freshness and all(spec.metadata["severity"] == "warn" for spec in freshness)
    declared = {AssetCheckKey(m.key, t.name): t.severity for m in load_project() for t in m.tests}
    assert declared and {key: specs[key].metadata["severity"] for key in declared} == declared


def test_freshness_sensor_is_on_by_default() -> None:
    sensor = next(s for s in defs.sensors if s.name == FRESHNESS_SENSOR_NAME)
    assert str(sensor.default_status).endswith("RUNNING")
    assert sensor.minimum_interval_seconds == OPS.freshness_sensor_interval_seconds


def test_thresholds_come_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EXPORTS_FRESHNESS_HOURS", "5")
    monkeypatch.setenv("COMMERCE_FRESHNESS_MINUTES", "7")
    monkeypatch.setenv("USAGE_FRESHNESS_MINUTES", "11")
    monkeypatch.setenv("FRESHNESS_DEFAULT_MINUTES", "13")
    assert threshold_for("exports") == (dt.timedelta(hours=5), "EXPORTS_FRESHNESS_HOURS")
    assert threshold_for("commerce")[0] == dt.timedelta(minutes=7)
    assert threshold_for("usage")[0] == dt.timedelta(minutes=11)
    assert threshold_for("somewhere_else") == (dt.timedelta(minutes=13), "FRESHNESS_DEFAULT_MINUTES")
    monkeypatch.setenv("COMMERCE_FRESHNESS_MINUTES", "0")
    with pytest.raises(ValueError, match="at least 1 minute"):
        threshold_for("commerce")


def test_with_freshness_only_touches_aggregates(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRESHNESS_DEFAULT_MINUTES", "45")
    base = Definitions(
        assets=[
            AssetSpec(["raw", "x"], group_name="lab"),
            AssetSpec(["mart", "y"], group_name="lab", deps=[AssetKey(["raw", "x"])]),
        ],
        resources={"warehouse": WarehouseResource(url="duckdb:///:memory:")},
    )
    assert [(a.key, a.threshold_minutes) for a in aggregates_of(base)] == [(AssetKey(["mart", "y"]), 45)]
    graph = with_freshness(base).resolve_asset_graph()
    assert graph.get(AssetKey(["raw", "x"])).freshness_policy is None
    assert graph.get(AssetKey(["mart", "y"])).freshness_policy == FreshnessPolicy.time_window(
        fail_window=dt.timedelta(minutes=45)
    )
    assert is_aggregate(AssetKey(["search", "usage_daily"])) and not is_aggregate(AssetKey(["stg", "t"]))


def test_status_rule_matches_dagsters_time_window() -> None:
    now = dt.datetime(2024, 5, 1, 12, 0)
    hour = dt.timedelta(hours=1)
    assert freshness_status(None, hour, now) == "never"
    assert freshness_status(now - dt.timedelta(minutes=59), hour, now) == "fresh"
    assert freshness_status(now - hour, hour, now) == "stale"  # Dagster: FAIL once age >= fail_window
    assert freshness_status(now - dt.timedelta(days=2), hour, now) == "stale"


def test_evaluation_becomes_a_warn_check_result() -> None:
    aggregate = Aggregate(AssetKey(["mart", "m"]), "commerce", dt.timedelta(minutes=60), "X")
    now = dt.datetime(2024, 5, 1, 12, 0)
    stale = FreshnessEvaluation(aggregate, now - dt.timedelta(minutes=90), now)
    result = stale.check_result()
    assert (result.passed, result.severity) == (False, AssetCheckSeverity.WARN)
    assert result.check_name == "freshness"
    assert result.metadata["threshold_minutes"].value == 60
    never = FreshnessEvaluation(aggregate, None, now).check_evaluation()
    assert (never.passed, never.severity) == (False, AssetCheckSeverity.WARN)
    assert FreshnessEvaluation(aggregate, now - dt.timedelta(minutes=5), now).check_result().passed
