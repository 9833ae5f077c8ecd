"""Declarative automation: when SQL models refresh on their own."""

from dagster import AutomationCondition

from dbt_like_sql import SqlModel


def after_upstream_updates() -> AutomationCondition:
    """Eager refresh after any upstream update, even while some upstream partition is missing.

    Plain ``eager()`` waits until *no* dependency is missing; with one dynamic partition per landed
    file, a single failed file would then freeze every report. Refresh on what has landed instead.
    """
    return AutomationCondition.eager().without(~AutomationCondition.any_deps_missing())


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
