"""The freshness rule and where its record lives, shared by the pipeline and the read API.

``orchestration/freshness.py`` applies the rule to Dagster assets (policy, WARN check, sensor) and
writes ``ops.freshness``; ``api/routers/ops.py`` recomputes the status from that record at request
time. Both need the same rule and table name without the API importing Dagster, so they live here.
"""

import datetime as dt
from typing import Literal

OPS_SCHEMA = "ops"
FRESHNESS_TABLE = "freshness"

Status = Literal["fresh", "stale", "never"]


def utc_now() -> dt.datetime:
    """Naive UTC now: the warehouse stores every timestamp as naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def freshness_status(
    last_updated_at: dt.datetime | None, threshold: dt.timedelta, now: dt.datetime
) -> Status:
    """Dagster's time-window rule: stale once the last update is at least ``threshold`` old."""
    if last_updated_at is None:
        return "never"
    return "stale" if now - last_updated_at >= threshold else "fresh"
