"""Declarative automation conditions the platform's assets share: when SQL models, indices and
thresholds refresh on their own (the domain layer; orchestration only wires them)."""

from dagster import AssetSelection, AutomationCondition

from dbt_like_sql import SqlModel


def after_upstream_updates() -> AutomationCondition:
    """Eager refresh after any upstream update, even while some upstream partition is missing or a
    raw ingest run is in flight.

    Plain ``eager()`` waits until *no* dependency is missing; with one dynamic partition per landed
    file, a single failed file would then freeze every report. It also waits while any dependency is
    being materialized; a continuously fed source (Kafka ranges every few seconds) always has an
    ingest run in flight, so marts would never refresh. Raw ingests commit in one transaction and the
    incremental models look back over late commits, so building on what is committed is safe; only
    in-flight builds of non-raw dependencies (staging) are still waited for.
    """
    return (
        AutomationCondition.eager()
        .without(~AutomationCondition.any_deps_missing())
        .without(~AutomationCondition.any_deps_in_progress())
        & ~AutomationCondition.any_deps_in_progress().ignore(AssetSelection.tag("layer", "raw"))
    ).with_label("after_upstream_updates")


def for_sql_model(model: SqlModel) -> AutomationCondition | None:
    """Honour a model header's ``automation:``: eager (refresh after upstream updates) or a cron.

    Models without the key are refreshed only by jobs, schedules or by hand.
    """
    automation = model.automation
    if automation is None:
        return None
    if automation.kind == "cron" and automation.cron:
        return AutomationCondition.on_cron(automation.cron, automation.timezone)
    return after_upstream_updates()
