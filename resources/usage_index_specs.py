"""The usage insight indices: names, explicit mappings, source tables. Shared by assets and the API.

The contract between the pipeline that builds the indices (``assets/usage/insight_indices.py``) and the
read API that queries them, so it sits below both: no Dagster import, nothing from ``assets``.
"""

from __future__ import annotations

from dataclasses import dataclass

from resources.search_indices import IndexDefinition
from resources.settings import UsageSettings

_KW = {"type": "keyword"}
_LONG = {"type": "long"}
_INT = {"type": "integer"}
_DOUBLE = {"type": "double"}
_DATE = {"type": "date", "format": "strict_date_optional_time||epoch_millis"}
_DAY = {"type": "date", "format": "strict_date"}
_NAME = {"type": "keyword", "fields": {"text": {"type": "text"}}}


@dataclass(frozen=True)
class InsightIndex:
    """One insight index: its name (the alias is ``<prefix><name>``), mapping and source query."""

    name: str
    source_table: tuple[str, str]
    id_field: str
    properties: dict
    select_sql: str
    settings: dict | None = None

    def alias(self, prefix: str | None = None) -> str:
        return f"{UsageSettings.current().index_prefix if prefix is None else prefix}{self.name}"

    def definition(self, prefix: str | None = None) -> IndexDefinition:
        return IndexDefinition(
            alias=self.alias(prefix),
            mappings={"dynamic": "strict", "properties": self.properties},
            settings=self.settings or {"number_of_shards": 1, "number_of_replicas": 0},
            id_field=self.id_field,
        )


TOP_USERS = InsightIndex(
    name="usage_top_users",
    source_table=("mart", "usage_by_user"),
    id_field="user_id",
    properties={
        "user_id": _KW,
        "user_name": _NAME,
        "team": _KW,
        "usage_rank": _INT,
        "events": _LONG,
        "input_tokens": _LONG,
        "output_tokens": _LONG,
        "total_tokens": _LONG,
        "share_pct": _DOUBLE,
        "active_days": _INT,
        "ides_used": _INT,
        "avg_latency_ms": _DOUBLE,
        "first_seen_at": _DATE,
        "last_seen_at": _DATE,
        "updated_at": _DATE,
    },
    select_sql=(
        "SELECT user_id, user_name, team, usage_rank, events, input_tokens, output_tokens, total_tokens, "
        "share_pct, active_days, ides_used, avg_latency_ms, first_seen_at, last_seen_at, updated_at "
        "FROM mart.usage_by_user"
    ),
)

DAILY = InsightIndex(
    name="usage_daily",
    source_table=("mart", "usage_daily"),
    id_field="id",
    properties={
        "id": _KW,
        "usage_date": _DAY,
        "user_id": _KW,
        "ide": _KW,
        "user_name": _KW,
        "team": _KW,
        "events": _LONG,
        "input_tokens": _LONG,
        "output_tokens": _LONG,
        "total_tokens": _LONG,
        "models_used": _INT,
        "avg_latency_ms": _DOUBLE,
        "updated_at": _DATE,
    },
    select_sql=(
        "SELECT CAST(usage_date AS VARCHAR(10)) || '|' || user_id || '|' || ide AS id, usage_date, user_id, "
        "ide, user_name, team, events, input_tokens, output_tokens, total_tokens, models_used, "
        "avg_latency_ms, updated_at FROM mart.usage_daily"
    ),
)

ALERTS = InsightIndex(
    name="usage_alerts",
    source_table=("mart", "usage_alerts"),
    id_field="alert_id",
    properties={
        "alert_id": _KW,
        "alert_type": _KW,
        "severity": _KW,
        "user_id": _KW,
        "user_name": _KW,
        "team": _KW,
        "usage_date": _DAY,
        "events": _LONG,
        "total_tokens": _LONG,
        "threshold": _DOUBLE,
        "trailing_avg_tokens": _DOUBLE,
        "message": {"type": "text"},
        "updated_at": _DATE,
    },
    select_sql=(
        "SELECT alert_id, alert_type, severity, user_id, user_name, team, usage_date, events, total_tokens, "
        "threshold, trailing_avg_tokens, message, updated_at FROM mart.usage_alerts"
    ),
)

PROMPTS = InsightIndex(
    name="usage_prompts",
    source_table=("stg", "usage_events"),
    id_field="event_id",
    properties={
        "event_id": _KW,
        "user_id": _KW,
        "user_name": _KW,
        "team": _KW,
        "ide": _KW,
        "model": _KW,
        "feature": _KW,
        "language": _KW,
        "prompt": {"type": "text"},
        "response": {"type": "text"},
        "input_tokens": _LONG,
        "output_tokens": _LONG,
        "total_tokens": _LONG,
        "latency_ms": _LONG,
        "created_at": _DATE,
        "usage_date": _DAY,
    },
    select_sql=(
        "SELECT event_id, user_id, user_name, team, ide, model, feature, language, prompt, response, "
        "input_tokens, output_tokens, total_tokens, latency_ms, created_at, usage_date FROM stg.usage_events"
    ),
    settings={"number_of_shards": 1, "number_of_replicas": 0, "refresh_interval": "30s"},
)

INSIGHT_INDICES: tuple[InsightIndex, ...] = (TOP_USERS, DAILY, ALERTS, PROMPTS)
