"""The hourly usage-index schedule waits for the marts it indexes (a real Dagster instance).

Before: on a fresh install the schedule launched every index build, each failed with ``relation
"mart.usage_alerts" does not exist`` and recorded a permanent incident. Now it skips with a reason
until a source has been built, then rebuilds only the indices whose source exists.
"""

from collections.abc import Iterator

import pytest
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    RunRequest,
    SkipReason,
    build_schedule_context,
    instance_for_test,
)

from orchestration.usage import rebuild_usage_indices_hourly


def _evaluate(instance: DagsterInstance) -> RunRequest | SkipReason:
    result = rebuild_usage_indices_hourly(build_schedule_context(instance=instance))
    assert isinstance(result, RunRequest | SkipReason), result
    return result


@pytest.fixture
def instance() -> Iterator[DagsterInstance]:
    """A persistent temporary instance: a schedule context needs an instance reference."""
    with instance_for_test() as temporary:
        yield temporary


def test_schedule_skips_until_the_usage_marts_exist(instance: DagsterInstance) -> None:
    skipped = _evaluate(instance)
    assert isinstance(skipped, SkipReason)
    message = skipped.skip_message or ""
    assert message.startswith("no usage insight index to rebuild: never built yet:")
    assert {"mart/usage_alerts", "mart/usage_by_user", "mart/usage_daily", "stg/usage_events"} == set(
        message.split(": ")[-1].split(", ")
    )

    for source in (AssetKey(["mart", "usage_by_user"]), AssetKey(["stg", "usage_events"])):
        instance.report_runless_asset_event(AssetMaterialization(asset_key=source))
    request = _evaluate(instance)
    assert isinstance(request, RunRequest)
    assert set(request.asset_selection or []) == {
        AssetKey(["search", "usage_top_users"]),
        AssetKey(["search", "usage_prompts"]),
    }
    assert request.tags["afluente/indices_waiting"] == "mart/usage_daily,mart/usage_alerts"
