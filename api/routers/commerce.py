"""Commerce clickstream metrics (seed dashboard API): reads the stg/mart tables of the commerce models."""

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel

from api.db import Db
from api.schema import Instant, Money, Text, UtcDateTime, shift

router = APIRouter(prefix="/api/metrics", tags=["commerce"])

# Bucket width -> SQL date_trunc unit (chosen from this fixed map, never from request text).
_UNITS = {"minute": "minute", "hour": "hour", "day": "day"}
_STEP = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}


class Summary(BaseModel):
    total_events: int
    unique_users: int
    sessions: int
    transactions: int
    orders: int
    total_revenue: Money
    avg_order_value: Money | None
    conversion_rate_pct: float | None
    first_event_at: UtcDateTime | None
    last_event_at: UtcDateTime | None
    updated_at: UtcDateTime | None


class TimelinePoint(BaseModel):
    bucket: UtcDateTime
    events: int
    page_views: int
    searches: int
    add_to_carts: int
    remove_from_carts: int
    transactions: int
    revenue: Money


class Timeline(BaseModel):
    granularity: Literal["minute", "hour", "day"]
    start: UtcDateTime | None
    end: UtcDateTime | None
    points: list[TimelinePoint]


class TopProduct(BaseModel):
    sales_rank: int
    product_id: str
    product_name: str
    category: str
    price: Money
    views: int
    add_to_carts: int
    transactions: int
    units_sold: int
    revenue: Money
    view_to_purchase_pct: float | None


class CategorySales(BaseModel):
    category: str
    transactions: int
    units_sold: int
    revenue: Money
    avg_transaction_value: Money | None
    customers: int
    revenue_share_pct: float | None


class EventTypeShare(BaseModel):
    event_type: str
    events: int
    share_pct: float
    unique_users: int
    first_event_at: UtcDateTime | None
    last_event_at: UtcDateTime | None


class Realtime(BaseModel):
    window_seconds: int
    window_start: UtcDateTime
    window_end: UtcDateTime
    events: int
    page_views: int
    searches: int
    add_to_carts: int
    remove_from_carts: int
    transactions: int
    revenue: Money
    active_users: int
    active_sessions: int


_EMPTY_SUMMARY = {
    "total_events": 0,
    "unique_users": 0,
    "sessions": 0,
    "transactions": 0,
    "orders": 0,
    "total_revenue": 0,
    "avg_order_value": None,
    "conversion_rate_pct": None,
    "first_event_at": None,
    "last_event_at": None,
    "updated_at": None,
}


@router.get("/summary", response_model=Summary, summary="Totals over all events (mart.commerce_summary)")
def summary(db: Db) -> dict:
    row = db.one(
        "SELECT total_events, unique_users, sessions, transactions, orders, total_revenue, "
        "avg_order_value, conversion_rate_pct, first_event_at, last_event_at, updated_at "
        "FROM mart.commerce_summary WHERE id = :id",
        {"id": 1},
    )
    return row or _EMPTY_SUMMARY


@router.get(
    "/timeline",
    response_model=Timeline,
    summary="Events per type and revenue per time bucket, ending at the latest event",
)
def timeline(
    db: Db,
    granularity: Annotated[Literal["minute", "hour", "day"], Query(description="Bucket width")] = "hour",
    points: Annotated[int, Query(ge=1, le=1440, description="Number of buckets (1-1440)")] = 48,
    end: Annotated[
        Instant | None,
        Query(description="Last bucket contains this instant (ISO 8601; naive = UTC); default: latest event"),
    ] = None,
) -> dict:
    if end is None:
        latest = db.one("SELECT MAX(event_timestamp) AS latest FROM stg.commerce_events")
        end = latest["latest"] if latest else None
        if end is None:
            return {"granularity": granularity, "start": None, "end": None, "points": []}
    start = shift(_truncate(end, granularity), -_STEP[granularity] * (points - 1))
    if granularity == "day":
        rows = db.rows(
            "SELECT CAST(event_date AS TIMESTAMP) AS bucket, events, page_views, searches, add_to_carts, "
            "remove_from_carts, transactions, revenue FROM mart.commerce_daily_metrics "
            "WHERE event_date >= :start_date AND event_date <= :end_date ORDER BY event_date",
            {"start_date": start.date(), "end_date": end.date()},
        )
    else:
        unit = _UNITS[granularity]
        rows = db.rows(
            f"SELECT date_trunc('{unit}', event_timestamp) AS bucket, COUNT(*) AS events, "
            "SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END) AS page_views, "
            "SUM(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END) AS searches, "
            "SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END) AS add_to_carts, "
            "SUM(CASE WHEN event_type = 'remove_from_cart' THEN 1 ELSE 0 END) AS remove_from_carts, "
            "SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END) AS transactions, "
            "COALESCE(SUM(CASE WHEN event_type = 'purchase' THEN total_amount END), 0) AS revenue "
            "FROM stg.commerce_events WHERE event_timestamp >= :start AND event_timestamp < :stop "
            "GROUP BY 1 ORDER BY 1",
            {"start": start, "stop": shift(_truncate(end, granularity), _STEP[granularity])},
        )
    return {"granularity": granularity, "start": start, "end": end, "points": rows}


def _truncate(moment: datetime, granularity: str) -> datetime:
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return datetime.combine(moment.date() if isinstance(moment, datetime) else moment, datetime.min.time())


@router.get(
    "/top-products",
    response_model=list[TopProduct],
    summary="Products ranked by revenue (mart.commerce_top_products)",
)
def top_products(
    db: Db,
    limit: Annotated[int, Query(ge=1, le=100, description="How many products (1-100)")] = 10,
    category: Annotated[Text | None, Query(max_length=128, description="Only this category")] = None,
) -> list[dict]:
    columns = (
        "sales_rank, product_id, product_name, category, price, views, add_to_carts, transactions, "
        "units_sold, revenue, view_to_purchase_pct"
    )
    if category is None:
        return db.rows(
            f"SELECT {columns} FROM mart.commerce_top_products ORDER BY sales_rank LIMIT :limit",
            {"limit": limit},
        )
    return db.rows(
        f"SELECT {columns} FROM mart.commerce_top_products WHERE category = :category "
        "ORDER BY sales_rank LIMIT :limit",
        {"limit": limit, "category": category},
    )


@router.get(
    "/by-category",
    response_model=list[CategorySales],
    summary="Sales per category, highest revenue first (mart.commerce_sales_by_category)",
)
def by_category(db: Db) -> list[dict]:
    return db.rows(
        "SELECT category, transactions, units_sold, revenue, avg_transaction_value, customers, "
        "revenue_share_pct FROM mart.commerce_sales_by_category ORDER BY revenue DESC, category"
    )


@router.get(
    "/event-types",
    response_model=list[EventTypeShare],
    summary="Events per type and share (mart.commerce_event_type_distribution)",
)
def event_types(db: Db) -> list[dict]:
    return db.rows(
        "SELECT event_type, events, share_pct, unique_users, first_event_at, last_event_at "
        "FROM mart.commerce_event_type_distribution ORDER BY events DESC, event_type"
    )


@router.get(
    "/realtime",
    response_model=Realtime,
    summary="The last minute (or window_seconds) of events, by event time in UTC",
)
def realtime(
    db: Db,
    window_seconds: Annotated[
        int, Query(ge=5, le=3600, description="Window length in seconds (5-3600; default 60)")
    ] = 60,
) -> dict:
    if window_seconds == 60:
        row = db.one(
            "SELECT events, page_views, searches, add_to_carts, remove_from_carts, transactions, revenue, "
            "active_users, active_sessions, window_start, window_end FROM mart.commerce_realtime_metrics"
        )
        assert row is not None  # an aggregate without GROUP BY always returns one row
        return {"window_seconds": 60, **row}
    window_end = datetime.now(UTC).replace(tzinfo=None)
    window_start = window_end - timedelta(seconds=window_seconds)
    row = db.one(
        "SELECT COUNT(*) AS events, "
        "COALESCE(SUM(CASE WHEN event_type = 'page_view' THEN 1 ELSE 0 END), 0) AS page_views, "
        "COALESCE(SUM(CASE WHEN event_type = 'search' THEN 1 ELSE 0 END), 0) AS searches, "
        "COALESCE(SUM(CASE WHEN event_type = 'add_to_cart' THEN 1 ELSE 0 END), 0) AS add_to_carts, "
        "COALESCE(SUM(CASE WHEN event_type = 'remove_from_cart' THEN 1 ELSE 0 END), 0) AS remove_from_carts, "
        "COALESCE(SUM(CASE WHEN event_type = 'purchase' THEN 1 ELSE 0 END), 0) AS transactions, "
        "COALESCE(SUM(CASE WHEN event_type = 'purchase' THEN total_amount END), 0) AS revenue, "
        "COUNT(DISTINCT user_id) AS active_users, COUNT(DISTINCT session_id) AS active_sessions "
        "FROM stg.commerce_events WHERE event_timestamp >= :start AND event_timestamp <= :end",
        {"start": window_start, "end": window_end},
    )
    assert row is not None
    return {"window_seconds": window_seconds, "window_start": window_start, "window_end": window_end, **row}
