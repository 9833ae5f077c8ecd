"""Insights API (seed: ai-usage-insights-mvp ``insights-api``): answers come from the search engine.

Every endpoint reads an insight index alias (``<USAGE_INDEX_PREFIX>usage_*``), so a rebuild in
progress is invisible (the alias switches atomically) and the warehouse is never queried per request.
The search client comes from ``SEARCH_URL`` / ``SEARCH_ENGINE`` (``ELASTICSEARCH_USER`` /
``ELASTICSEARCH_PASSWORD`` when a user is set) through :class:`resources.search_client.SearchClient`;
tests override the ``get_search`` / ``get_index_prefix`` dependencies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from functools import lru_cache
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query
from pydantic import BaseModel, Field

from api.schema import Day, Text
from resources.search_client import SearchClient
from resources.settings import SearchSettings, UsageSettings
from resources.usage_index_specs import ALERTS, DAILY, PROMPTS, TOP_USERS, InsightIndex

router = APIRouter(prefix="/insights", tags=["insights"])

USER_PATTERN = r"^[A-Za-z0-9_.@+\-]{1,100}$"


# ----- dependencies


@lru_cache(maxsize=1)
def _search_from_settings() -> SearchClient:
    settings = SearchSettings.current()
    return SearchClient(
        url=settings.url,
        engine=settings.engine,
        username=settings.user or None,
        password=settings.password or None,
    )


def get_search() -> SearchClient:
    """The process-wide search client (one connection pool), from the environment."""
    if not SearchSettings.current().enabled:
        raise HTTPException(503, "search engine unavailable: not configured here (SEARCH_ENABLED=false)")
    return _search_from_settings()


def get_index_prefix() -> str:
    return UsageSettings.current().index_prefix


SearchDep = Annotated[SearchClient, Depends(get_search)]
PrefixDep = Annotated[str, Depends(get_index_prefix)]
UserQuery = Annotated[
    str | None, Query(pattern=USER_PATTERN, description="Only this developer (user id)", examples=["u00042"])
]


# ----- response models


class TopUser(BaseModel):
    rank: int = Field(description="1 = most tokens")
    user_id: str
    user_name: str | None = None
    team: str | None = None
    total_tokens: int
    input_tokens: int
    output_tokens: int
    events: int
    share_pct: float = Field(description="Share of all tokens, percent")
    active_days: int
    last_seen_at: str | None = None


class TopUsersResponse(BaseModel):
    limit: int
    users: list[TopUser]


class DailyPoint(BaseModel):
    date: dt.date
    events: int
    input_tokens: int
    output_tokens: int
    total_tokens: int
    users: int = Field(description="Developers active that day")


class DailyResponse(BaseModel):
    date_from: dt.date | None = Field(default=None, alias="from")
    date_to: dt.date | None = Field(default=None, alias="to")
    user: str | None = None
    ide: str | None = None
    days: list[DailyPoint]

    model_config = {"populate_by_name": True}


class Alert(BaseModel):
    alert_id: str
    alert_type: Literal["daily_tokens", "spike"]
    severity: Literal["warning", "critical"]
    user_id: str
    user_name: str | None = None
    team: str | None = None
    usage_date: dt.date
    total_tokens: int
    threshold: float
    trailing_avg_tokens: float | None = None
    message: str


class AlertsResponse(BaseModel):
    total: int
    alerts: list[Alert]


class SearchHit(BaseModel):
    event_id: str
    score: float
    user_id: str
    ide: str
    model: str
    created_at: str
    total_tokens: int
    prompt: str | None = None
    response: str | None = None
    highlights: dict[str, list[str]] = Field(default_factory=dict)


class SearchResponse(BaseModel):
    q: str
    total: int
    hits: list[SearchHit]


# ----- helpers


def _query(search: SearchClient, index: InsightIndex, prefix: str, **request: Any) -> dict[str, Any]:
    """Run a search on an insight alias; a missing index or an unreachable engine is a clear 503."""
    alias = index.alias(prefix)
    try:
        return search.search(alias, **request)
    except Exception as exc:  # noqa: BLE001 - opensearch-py and elasticsearch raise unrelated types
        name = type(exc).__name__
        if name == "NotFoundError":
            raise HTTPException(
                status_code=503,
                detail=f"insight index {alias} is not built yet: materialize search/{index.name}",
            ) from exc
        if name in ("ConnectionError", "ConnectionTimeout", "TransportError", "ApiError"):
            raise HTTPException(status_code=503, detail=f"search engine unavailable: {name}") from exc
        raise


def _sources(response: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for hit in response["hits"]["hits"]:
        yield hit["_source"]


def _total(response: dict[str, Any]) -> int:
    total = response["hits"]["total"]
    return int(total["value"] if isinstance(total, dict) else total)


def _date_filter(date_from: dt.date | None, date_to: dt.date | None) -> list[dict[str, Any]]:
    if not date_from and not date_to:
        return []
    bounds: dict[str, Any] = {}
    if date_from:
        bounds["gte"] = date_from.isoformat()
    if date_to:
        bounds["lte"] = date_to.isoformat()
    return [{"range": {"usage_date": bounds}}]


# ----- endpoints


@router.get("/top-users", response_model=TopUsersResponse, summary="Developers ranked by tokens consumed")
def top_users(
    search: SearchDep,
    prefix: PrefixDep,
    limit: Annotated[int, Query(ge=1, le=100, description="How many developers")] = 5,
) -> TopUsersResponse:
    """The top ``limit`` developers by total tokens (ties broken by user id), from ``mart.usage_by_user``."""
    response = _query(
        search,
        TOP_USERS,
        prefix,
        query={"range": {"usage_rank": {"lte": limit}}},
        size=limit,
        sort=[{"usage_rank": "asc"}],
    )
    users = [
        TopUser(
            rank=doc["usage_rank"],
            user_id=doc["user_id"],
            user_name=doc.get("user_name"),
            team=doc.get("team"),
            total_tokens=doc["total_tokens"],
            input_tokens=doc["input_tokens"],
            output_tokens=doc["output_tokens"],
            events=doc["events"],
            share_pct=doc["share_pct"],
            active_days=doc["active_days"],
            last_seen_at=doc.get("last_seen_at"),
        )
        for doc in _sources(response)
    ]
    return TopUsersResponse(limit=limit, users=users)


@router.get("/daily", response_model=DailyResponse, response_model_by_alias=True, summary="Daily token trend")
def daily(
    search: SearchDep,
    prefix: PrefixDep,
    date_from: Annotated[Day | None, Query(alias="from", description="First day (YYYY-MM-DD)")] = None,
    date_to: Annotated[
        Day | None, Query(alias="to", description="Last day, inclusive (YYYY-MM-DD); before from: no days")
    ] = None,
    user: UserQuery = None,
    ide: Annotated[str | None, Query(pattern=r"^[a-z0-9_\-]{1,50}$", description="Only this IDE")] = None,
) -> DailyResponse:
    """Tokens per UTC day (all developers, or one), summed from ``mart.usage_daily`` by the engine."""
    filters = _date_filter(date_from, date_to)
    if user:
        filters.append({"term": {"user_id": user}})
    if ide:
        filters.append({"term": {"ide": ide}})
    sums = {
        name: {"sum": {"field": name}} for name in ("events", "input_tokens", "output_tokens", "total_tokens")
    }
    aggs = {
        "days": {
            "date_histogram": {
                "field": "usage_date",
                "calendar_interval": "day",
                "format": "yyyy-MM-dd",
                "min_doc_count": 1,
            },
            "aggs": {**sums, "users": {"cardinality": {"field": "user_id", "precision_threshold": 40000}}},
        }
    }
    response = _query(search, DAILY, prefix, query={"bool": {"filter": filters}}, size=0, aggs=aggs)
    days = [
        DailyPoint(
            date=dt.date.fromisoformat(bucket["key_as_string"]),
            events=int(bucket["events"]["value"]),
            input_tokens=int(bucket["input_tokens"]["value"]),
            output_tokens=int(bucket["output_tokens"]["value"]),
            total_tokens=int(bucket["total_tokens"]["value"]),
            users=int(bucket["users"]["value"]),
        )
        for bucket in response["aggregations"]["days"]["buckets"]
    ]
    return DailyResponse.model_validate(
        {"from": date_from, "to": date_to, "user": user, "ide": ide, "days": days}
    )


@router.get("/alerts", response_model=AlertsResponse, summary="Usage alerts (daily limit, spikes)")
def alerts(
    search: SearchDep,
    prefix: PrefixDep,
    user: UserQuery = None,
    alert_type: Annotated[Literal["daily_tokens", "spike"] | None, Query(alias="type")] = None,
    severity: Annotated[Literal["warning", "critical"] | None, Query()] = None,
    date_from: Annotated[Day | None, Query(alias="from", description="First day (YYYY-MM-DD)")] = None,
    date_to: Annotated[Day | None, Query(alias="to", description="Last day, inclusive (YYYY-MM-DD)")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> AlertsResponse:
    """Alerts from ``mart.usage_alerts``, newest day first, then most tokens."""
    filters = _date_filter(date_from, date_to)
    for field_name, value in (("user_id", user), ("alert_type", alert_type), ("severity", severity)):
        if value:
            filters.append({"term": {field_name: value}})
    response = _query(
        search,
        ALERTS,
        prefix,
        query={"bool": {"filter": filters}},
        size=limit,
        sort=[{"usage_date": "desc"}, {"total_tokens": "desc"}, {"alert_id": "asc"}],
        track_total_hits=True,
    )
    items = [Alert(**{k: v for k, v in doc.items() if k in Alert.model_fields}) for doc in _sources(response)]
    return AlertsResponse(total=_total(response), alerts=items)


@router.get("/search", response_model=SearchResponse, summary="Full-text search over prompts and responses")
def search_prompts(
    search: SearchDep,
    prefix: PrefixDep,
    q: Annotated[Text, Query(min_length=2, max_length=200, description="Words to find in prompts/responses")],
    user: UserQuery = None,
    ide: Annotated[str | None, Query(pattern=r"^[a-z0-9_\-]{1,50}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> SearchResponse:
    """Best-matching usage events for ``q`` (prompt weighted above response), with highlights."""
    filters: list[dict[str, Any]] = []
    if user:
        filters.append({"term": {"user_id": user}})
    if ide:
        filters.append({"term": {"ide": ide}})
    query = {
        "bool": {
            "must": [{"multi_match": {"query": q, "fields": ["prompt^2", "response"]}}],
            "filter": filters,
        }
    }
    response = _query(
        search,
        PROMPTS,
        prefix,
        query=query,
        size=limit,
        highlight={"fields": {"prompt": {}, "response": {}}, "fragment_size": 150, "number_of_fragments": 2},
        track_total_hits=True,
    )
    hits = [
        SearchHit(
            event_id=hit["_source"]["event_id"],
            score=float(hit.get("_score") or 0.0),
            user_id=hit["_source"]["user_id"],
            ide=hit["_source"]["ide"],
            model=hit["_source"]["model"],
            created_at=hit["_source"]["created_at"],
            total_tokens=hit["_source"]["total_tokens"],
            prompt=hit["_source"].get("prompt"),
            response=hit["_source"].get("response"),
            highlights=hit.get("highlight", {}),
        )
        for hit in response["hits"]["hits"]
    ]
    return SearchResponse(q=q, total=_total(response), hits=hits)
