"""Declarative automation: when SQL models refresh on their own."""

from __future__ import annotations

from dagster import AutomationCondition


def after_upstream_updates() -> AutomationCondition:
    """Eager refresh after any upstream update, even while some upstream partition is missing.

    Plain ``eager()`` waits until *no* dependency is missing; with one dynamic partition per landed
    file, a single failed file would then freeze every report. Refresh on what has landed instead.
    """
    return AutomationCondition.eager().without(~AutomationCondition.any_deps_missing())


def for_sql_model(model: object) -> AutomationCondition | None:
    """Automation of a SQL model from its header: ``eager`` (default), a cron, or ``none``."""
    automation = getattr(model, "automation", "eager")
    if automation in (None, "none", "manual"):
        return None
    if isinstance(automation, dict) and "cron" in automation:
        return after_upstream_updates() | AutomationCondition.on_cron(automation["cron"])
    return after_upstream_updates()
