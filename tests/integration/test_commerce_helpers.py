"""Helpers shared by the commerce and API integration tests (no tests here).

Expected values are computed from the generator's intended events with plain Python and
``Decimal`` arithmetic, independently of the SQL models they are compared with.
"""

import datetime as dt
import os
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

from dagster import (
    AssetSelection,
    DagsterInstance,
    Definitions,
    SensorResult,
    build_sensor_context,
    materialize,
)

from assets.automation import for_sql_model
from dbt_like_sql import build_sql_model_assets, load_project
from generators.commerce import GeneratedEvent, generate_events, write_jsonl_files
from orchestration.commerce import (
    commerce_file_drop_sensor,
    commerce_kafka_defs,
    raw_commerce_event_files,
    raw_commerce_events,
)
from orchestration.commerce import defs as commerce_defs
from resources.kafka import KafkaResource
from resources.landing_zone import LandingZoneResource
from resources.warehouse import WarehouseResource

START = dt.datetime(2024, 3, 1, 23, 30)  # sample events cross midnight: two days of metrics
CENT = Decimal("0.01")

SQL_MODELS = build_sql_model_assets(load_project(), automation_condition_for=for_sql_model)
COMMERCE_MODELS = [a for a in SQL_MODELS if any(k.path[1].startswith("commerce_") for k in a.keys)]


def resources_for(warehouse: WarehouseResource, landing: Path, kafka_url: str = "127.0.0.1:9092") -> dict:
    return {
        "warehouse": warehouse,
        "landing_zone": LandingZoneResource(root=str(landing)),
        "kafka": KafkaResource(bootstrap_servers=kafka_url, client_id="afluente-tests"),
    }


def commerce_graph(resources: dict) -> Definitions:
    return Definitions.merge(
        commerce_defs, commerce_kafka_defs, Definitions(assets=COMMERCE_MODELS, resources=resources)
    )


def sample_events(n: int = 3000, seed: int = 11, bad_share: float = 0.02) -> list[GeneratedEvent]:
    return list(generate_events(n, seed=seed, bad_share=bad_share, start=START, events_per_second=0.5))


def age(path: Path) -> Path:
    past = time.time() - 120
    os.utime(path, (past, past))
    return path


def drop_jsonl(events: Sequence[GeneratedEvent], landing: Path, files: int = 2) -> list[Path]:
    per_file = -(-len(events) // files)
    _, paths = write_jsonl_files(iter(events), landing / "commerce", files=files, per_file=per_file)
    return [age(p) for p in paths]


def tick_files(instance: DagsterInstance, resources: dict) -> list[str]:
    context = build_sensor_context(instance=instance, resources={"landing_zone": resources["landing_zone"]})
    result = commerce_file_drop_sensor(context)
    if not isinstance(result, SensorResult):
        return []
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return [r.partition_key for r in result.run_requests]


def load_files_and_models(instance: DagsterInstance, resources: dict) -> Any:
    """Ingest every landed file, then build all commerce models; returns the models' run result."""
    for key in tick_files(instance, resources):
        result = materialize(
            [raw_commerce_event_files], partition_key=key, instance=instance, resources=resources
        )
        assert result.success
    return build_models(instance, resources)


def build_models(instance: DagsterInstance, resources: dict) -> Any:
    result = materialize(
        [raw_commerce_events, raw_commerce_event_files, *COMMERCE_MODELS],
        selection=AssetSelection.assets(*[k for a in COMMERCE_MODELS for k in a.keys]),
        instance=instance,
        resources=resources,
    )
    assert result.success
    failed = [
        f"{e.asset_key.to_user_string()}:{e.check_name}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    assert failed == [], failed
    return result


def rows(warehouse: WarehouseResource, sql: str, params: dict | None = None) -> list[dict]:
    frame = warehouse.read_frame(sql, params)
    return frame.to_dict("records")


# ------------------------------------------------------------------------------------------------
# Independent expectations


def _dec(value: float) -> Decimal:
    return Decimal(str(value))


def _pct(part: int | Decimal, whole: int | Decimal) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) * 100 / Decimal(whole)).quantize(CENT, rounding=ROUND_HALF_UP)


def valid(events: Iterable[GeneratedEvent]) -> list[dict]:
    """Intended events of the valid messages, first copy of each event_id."""
    seen: dict[str, dict] = {}
    for item in events:
        if item.valid and item.event["event_id"] not in seen:
            seen[item.event["event_id"]] = item.event
    return list(seen.values())


def _day(event: dict) -> dt.date:
    return dt.datetime.fromisoformat(event["timestamp"]).date()


def expected_by_category(events: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = defaultdict(
        lambda: {"transactions": 0, "units_sold": 0, "revenue": Decimal(0), "users": set()}
    )
    for e in events:
        if e["event_type"] == "purchase":
            slot = out[e["product"]["category"]]
            slot["transactions"] += 1
            slot["units_sold"] += e["quantity"]
            slot["revenue"] += _dec(e["total_amount"])
            slot["users"].add(e["user_id"])
    total = sum((v["revenue"] for v in out.values()), Decimal(0))
    return {
        c: {
            "transactions": v["transactions"],
            "units_sold": v["units_sold"],
            "revenue": v["revenue"],
            "customers": len(v["users"]),
            "revenue_share_pct": _pct(v["revenue"], total),
        }
        for c, v in out.items()
    }


def expected_products(events: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = defaultdict(
        lambda: {"views": 0, "add_to_carts": 0, "transactions": 0, "units_sold": 0, "revenue": Decimal(0)}
    )
    for e in events:
        if "product" not in e:
            continue
        slot = out[e["product"]["id"]]
        if e["event_type"] == "page_view":
            slot["views"] += 1
        elif e["event_type"] == "add_to_cart":
            slot["add_to_carts"] += 1
        elif e["event_type"] == "purchase":
            slot["transactions"] += 1
            slot["units_sold"] += e["quantity"]
            slot["revenue"] += _dec(e["total_amount"])
    # Ties in revenue are broken by product_id, so ranks are unique (1..n).
    ranked = sorted(out.items(), key=lambda kv: (-kv[1]["revenue"], kv[0]))
    return {pid: {**values, "sales_rank": rank} for rank, (pid, values) in enumerate(ranked, start=1)}


def expected_daily(events: list[dict]) -> dict[dt.date, dict]:
    by_day: dict[dt.date, list[dict]] = defaultdict(list)
    for e in events:
        by_day[_day(e)].append(e)
    out = {}
    for day, items in by_day.items():
        types = Counter(e["event_type"] for e in items)
        sessions = {e["session_id"] for e in items}
        orders = {e["session_id"] for e in items if e["event_type"] == "purchase"}
        out[day] = {
            "events": len(items),
            "page_views": types["page_view"],
            "searches": types["search"],
            "add_to_carts": types["add_to_cart"],
            "remove_from_carts": types["remove_from_cart"],
            "transactions": types["purchase"],
            "unique_users": len({e["user_id"] for e in items}),
            "sessions": len(sessions),
            "orders": len(orders),
            "revenue": sum(
                (_dec(e["total_amount"]) for e in items if e["event_type"] == "purchase"), Decimal(0)
            ),
            "conversion_rate_pct": _pct(len(orders), len(sessions)),
        }
    return out


def expected_event_types(events: list[dict]) -> dict[str, dict]:
    types = Counter(e["event_type"] for e in events)
    return {t: {"events": n, "share_pct": _pct(n, len(events))} for t, n in types.items()}


def expected_summary(events: list[dict]) -> dict:
    purchases = [e for e in events if e["event_type"] == "purchase"]
    sessions = {e["session_id"] for e in events}
    orders = {e["session_id"] for e in purchases}
    revenue = sum((_dec(e["total_amount"]) for e in purchases), Decimal(0))
    return {
        "total_events": len(events),
        "unique_users": len({e["user_id"] for e in events}),
        "sessions": len(sessions),
        "transactions": len(purchases),
        "orders": len(orders),
        "total_revenue": revenue,
        "avg_order_value": (revenue / len(orders)).quantize(CENT, rounding=ROUND_HALF_UP) if orders else None,
        "conversion_rate_pct": _pct(len(orders), len(sessions)),
    }


# ------------------------------------------------------------------------------------------------
# Assertions


def _num(value: object) -> Decimal:
    return Decimal(str(value)).quantize(Decimal("0.01"))


def assert_marts(warehouse: WarehouseResource, events: list[dict]) -> None:
    got = {r["category"]: r for r in rows(warehouse, "SELECT * FROM mart.commerce_sales_by_category")}
    want = expected_by_category(events)
    assert set(got) == set(want)
    for category, values in want.items():
        row = got[category]
        assert row["transactions"] == values["transactions"], category
        assert row["units_sold"] == values["units_sold"], category
        assert _num(row["revenue"]) == values["revenue"], category
        assert row["customers"] == values["customers"], category
        assert _num(row["revenue_share_pct"]) == values["revenue_share_pct"], category

    got_products = {r["product_id"]: r for r in rows(warehouse, "SELECT * FROM mart.commerce_top_products")}
    want_products = expected_products(events)
    assert set(got_products) == set(want_products)
    for product_id, values in want_products.items():
        row = got_products[product_id]
        for column in ("views", "add_to_carts", "transactions", "units_sold", "sales_rank"):
            assert row[column] == values[column], (product_id, column)
        assert _num(row["revenue"]) == values["revenue"], product_id

    got_days = {
        (r["event_date"] if isinstance(r["event_date"], dt.date) else r["event_date"].date()): r
        for r in rows(warehouse, "SELECT * FROM mart.commerce_daily_metrics")
    }
    want_days = expected_daily(events)
    assert set(got_days) == set(want_days)
    for day, values in want_days.items():
        row = got_days[day]
        for column, expected in values.items():
            actual = _num(row[column]) if isinstance(expected, Decimal) else row[column]
            assert actual == expected, (day, column)

    got_types = {
        r["event_type"]: r for r in rows(warehouse, "SELECT * FROM mart.commerce_event_type_distribution")
    }
    for event_type, values in expected_event_types(events).items():
        assert got_types[event_type]["events"] == values["events"]
        assert _num(got_types[event_type]["share_pct"]) == values["share_pct"]

    (summary,) = rows(warehouse, "SELECT * FROM mart.commerce_summary")
    for column, expected in expected_summary(events).items():
        actual = _num(summary[column]) if isinstance(expected, Decimal) else summary[column]
        assert actual == expected, column
