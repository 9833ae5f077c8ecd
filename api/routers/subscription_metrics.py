"""Subscriptions metrics (read side of the seed streaming-polyglot-platform): the subscriptions marts.

Active subscriptions by plan, MRR per month with its movement, payment success/failure rates by
method and new users per day, each read from its ``mart.*`` model; ``503`` while a mart is not built.
"""

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from api.db import Db
from api.schema import NOT_PRODUCED, Money

router = APIRouter(prefix="/subscriptions/metrics", tags=["subscriptions metrics"], responses=NOT_PRODUCED)


class PlanActive(BaseModel):
    plano: str
    active_subscriptions: int
    mrr: Money = Field(description="Sum of the plan's active monthly prices")
    share_pct: float = Field(description="Share of all active subscriptions, percent")


class MrrMonth(BaseModel):
    month: date = Field(description="First day of the month")
    mrr: Money = Field(description="MRR at the end of the month")
    active_subscriptions: int
    new_mrr: Money
    expansion_mrr: Money
    contraction_mrr: Money
    churned_mrr: Money
    net_new_mrr: Money = Field(description="mrr minus the previous month's (may be negative)")


class MethodRates(BaseModel):
    metodo: str
    payments: int = Field(description="Recorded payments (an idempotency key counts once)")
    succeeded: int
    failed: int
    success_rate_pct: float
    failure_rate_pct: float
    amount_succeeded: Money


class NewUsersDay(BaseModel):
    signup_date: date
    new_users: int
    total_users: int


@router.get(
    "/active-by-plan",
    response_model=list[PlanActive],
    summary="Active subscriptions and MRR per plan (mart.subscriptions_active_by_plan)",
)
def active_by_plan(db: Db) -> list[dict]:
    return db.rows(
        "SELECT plano, active_subscriptions, mrr, share_pct FROM mart.subscriptions_active_by_plan "
        "ORDER BY active_subscriptions DESC, plano"
    )


@router.get(
    "/mrr",
    response_model=list[MrrMonth],
    summary="MRR per month and its movement: new, expansion, contraction, churn",
)
def mrr(
    db: Db,
    months: Annotated[int, Query(ge=1, le=120, description="Latest months to return (1-120)")] = 24,
) -> list[dict]:
    latest = db.rows(
        "SELECT month, mrr, active_subscriptions, new_mrr, expansion_mrr, contraction_mrr, churned_mrr, "
        "net_new_mrr FROM mart.subscriptions_mrr_monthly ORDER BY month DESC LIMIT :n",
        {"n": months},
    )
    return latest[::-1]


@router.get(
    "/payments-by-method",
    response_model=list[MethodRates],
    summary="Payment success and failure counts and rates per method (mart.payments_by_method)",
)
def payments_by_method(db: Db) -> list[dict]:
    return db.rows(
        "SELECT metodo, payments, succeeded, failed, success_rate_pct, failure_rate_pct, amount_succeeded "
        "FROM mart.payments_by_method ORDER BY payments DESC, metodo"
    )


@router.get(
    "/new-users",
    response_model=list[NewUsersDay],
    summary="New users per UTC day and the running total (mart.users_new_daily)",
)
def new_users(
    db: Db,
    days: Annotated[int, Query(ge=1, le=3660, description="Latest days with sign-ups to return")] = 90,
) -> list[dict]:
    latest = db.rows(
        "SELECT signup_date, new_users, total_users FROM mart.users_new_daily "
        "ORDER BY signup_date DESC LIMIT :n",
        {"n": days},
    )
    return latest[::-1]
