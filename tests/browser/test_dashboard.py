"""The /dashboard pages in Chromium over a warehouse the demo path populated (DuckDB) and insight
indices on the real OpenSearch: no console error, and every chart holds exactly the API's answer."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context, materialize
from playwright.sync_api import Page

from api.app import create_app
from api.routers.insights import get_search
from assets.usage.insight_indices import insight_index_assets
from orchestration.declared import declared_assets
from orchestration.definitions import defs
from orchestration.freshness import FRESHNESS_SENSOR_NAME
from resources.kafka import KafkaResource
from resources.search import SearchResource
from resources.warehouse import WarehouseResource, dispose_engines
from services import ConnectionInfo
from tests.browser.conftest import REPO, Browser, screenshot, serve

PAGES = ("commerce", "exports", "usage", "subscriptions", "operations", "lineage")
LINEAGE_MODEL = "mart.commerce_top_products"


def _run(args: list[str], env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done.stdout


@pytest.fixture
def demo_site(
    tmp_path: Path,
    opensearch_server: ConnectionInfo,
    kafka_server: ConnectionInfo,
    search_index_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[str]:
    """``make demo``'s data path (generators + orchestration.demo), then the insight indices on the
    real OpenSearch and one freshness sensor tick; yields the base URL of the served app."""
    landing, home, db = tmp_path / "landing", tmp_path / "dagster_home", tmp_path / "warehouse.duckdb"
    home.mkdir()
    (home / "dagster.yaml").write_text((REPO / "orchestration" / "dagster.local.yaml").read_text())
    url = f"duckdb:///{db}"
    env = {
        **os.environ,
        "WAREHOUSE_URL": url,
        "AFLUENTE_LANDING_DIR": str(landing),
        "AFLUENTE_LANDING_SETTLE_SECONDS": "0",
        "DAGSTER_HOME": str(home),
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        "MONGO_URI": "mongodb://127.0.0.1:1/",
        "SEARCH_URL": "http://127.0.0.1:1",
        "SEARCH_ENABLED": "false",  # as make demo: the indices are built below, on the real node
    }
    _run(["-m", "generators.exports", "--rows", "3000", "--files", "1", "--format", "csv",
          "--out", str(landing / "exports"), "--seed", "1"], env)  # fmt: skip
    _run(["-m", "generators.commerce", "--events", "3000", "--out", str(landing / "commerce"),
          "--days", "3", "--no-progress"], env)  # fmt: skip
    _run(["-m", "generators.usage", "--docs", "2000", "--out", str(landing / "usage"),
          "--format", "jsonl"], env)  # fmt: skip
    _run(["-m", "generators.subscriptions", "--users", "300", "--days", "75", "--bad-share", "0.01",
          "--out", str(landing / "subscriptions"), "--no-progress"], env)  # fmt: skip
    out = _run(["-m", "orchestration.demo"], env)
    assert "FAILED" not in out, out

    monkeypatch.setenv("USAGE_INDEX_PREFIX", search_index_prefix)
    search = SearchResource(url=opensearch_server.url, engine="opensearch")
    warehouse = WarehouseResource(url=url)
    # The system_logs monitor, on this test's own alias and an empty topic, so /health sees it built.
    monkeypatch.setenv("SYSTEM_LOGS_ALIAS", f"{search_index_prefix}system_logs")
    monkeypatch.setenv("SYSTEM_LOGS_TOPICS", f"{search_index_prefix}no-such-topic")
    monkeypatch.setenv("SYSTEM_LOGS_LOG_FILES", "")
    monkeypatch.setenv("SYSTEM_LOGS_FALLBACK_DIR", str(tmp_path / "system_logs_fallback"))
    monitor = declared_assets("monitor/system_logs", "search__system_logs")
    kafka = KafkaResource(bootstrap_servers=kafka_server.url)

    def build_indices_and_freshness() -> None:
        with DagsterInstance.from_config(str(home)) as instance:
            built = materialize(
                [*insight_index_assets, monitor],
                instance=instance,
                resources={"warehouse": warehouse, "search": search, "kafka": kafka},
            )
            assert built.success
            sensor = next(s for s in defs.sensors if s.name == FRESHNESS_SENSOR_NAME)
            tick = sensor(build_sensor_context(instance=instance, resources={"warehouse": warehouse}))
            assert isinstance(tick, SensorResult)

    # On its own thread: Playwright's sync API keeps an event loop running on this one, and Dagster's
    # in-process execution closes its own loop with run_until_complete, which that running loop forbids.
    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(build_indices_and_freshness).result()
    app = create_app(url)
    app.dependency_overrides[get_search] = lambda: search
    with serve(app) as base:
        yield base
    dispose_engines()


def _traces(page: Page, chart_id: str) -> list[dict[str, Any]]:
    """The data of a Plotly chart as drawn (``gd.data``), or [] when the chart shows a notice."""
    return page.evaluate(
        """id => { const el = document.getElementById(id);
                   if (!el || el.hidden || !el.data) return [];
                   return el.data.map(t => ({type: t.type, x: t.x, y: t.y, labels: t.labels, values: t.values,
                                            node: t.node, link: t.link})); }""",
        chart_id,
    )


def _load(page: Page, url: str, refreshes: int = 1) -> None:
    page.goto(url)
    page.wait_for_function(f"Number(document.body.dataset.loaded || 0) >= {refreshes}", timeout=60_000)


def _check_commerce(page: Page, api: httpx.Client) -> None:
    timeline = api.get("/api/metrics/timeline", params={"granularity": "hour", "points": 72}).json()
    (events, revenue) = _traces(page, "timeline")
    assert len(timeline["points"]) > 24  # --days 3: a history, not a single point
    assert events["x"] == [p["bucket"] for p in timeline["points"]]
    assert events["y"] == [p["events"] for p in timeline["points"]]
    assert revenue["y"] == [p["revenue"] for p in timeline["points"]]

    types = {t["event_type"]: t["events"] for t in api.get("/api/metrics/event-types").json()}
    (funnel,) = _traces(page, "funnel")
    assert funnel["y"] == ["page_view", "search", "add_to_cart", "purchase"]
    assert funnel["x"] == [types.get(stage, 0) for stage in funnel["y"]] and funnel["x"][0] > 0

    top = api.get("/api/metrics/top-products", params={"limit": 10}).json()
    (bars,) = _traces(page, "top-products")
    assert bars["x"] == [p["revenue"] for p in top] and len(top) == 10
    assert bars["y"] == [f"{p['product_name']} ({p['product_id']})" for p in top]

    categories = api.get("/api/metrics/by-category").json()
    (pie,) = _traces(page, "categories")
    assert pie["labels"] == [c["category"] for c in categories]
    assert pie["values"] == [c["revenue"] for c in categories]

    # The 5-minute window moves with the clock: the drawn answer is the one before or after the read.
    before = api.get("/api/metrics/realtime", params={"window_seconds": 300}).json()
    (realtime,) = _traces(page, "realtime")
    after = api.get("/api/metrics/realtime", params={"window_seconds": 300}).json()
    fields = ["page_views", "searches", "add_to_carts", "remove_from_carts", "transactions"]
    assert realtime["x"] == fields
    assert realtime["y"] in ([before[f] for f in fields], [after[f] for f in fields])


def _check_exports(page: Page, api: httpx.Client) -> None:
    pais = api.get("/metrics/pais", params={"limit": 15}).json()
    (bars,) = _traces(page, "by-country")
    assert bars["x"] == [p["pais"] for p in pais] and bars["y"] == [p["totalUsd"] for p in pais]
    sectors = api.get("/dashboard/data/export-sectors", params={"limit": 15}).json()
    (bars,) = _traces(page, "by-sector")
    assert bars["x"] == [s["setor"] for s in sectors] and bars["y"] == [s["total_usd"] for s in sectors]
    years = api.get("/metrics/resumo").json()["anos"]
    (bars,) = _traces(page, "by-year")
    assert bars["x"] == [str(y) for y in years]
    assert bars["y"] == [api.get("/metrics/resumo", params={"ano": y}).json()["totalUsd"] for y in years]

    # The year filter redraws the country chart with the API's answer for that year.
    year = years[-1]
    page.select_option("#ano", str(year))
    page.wait_for_function("document.getElementById('by-country').dataset.source.includes('ano=')")
    page.wait_for_function("Number(document.body.dataset.loaded) >= 2")
    pais = api.get("/metrics/pais", params={"limit": 15, "ano": year}).json()
    (bars,) = _traces(page, "by-country")
    assert bars["x"] == [p["pais"] for p in pais] and bars["y"] == [p["totalUsd"] for p in pais]


def _check_usage(page: Page, api: httpx.Client) -> None:
    assert page.locator("#engine-banner").is_hidden()
    users = api.get("/insights/top-users", params={"limit": 10}).json()["users"]
    (bars,) = _traces(page, "top-users")
    assert bars["x"] == [u["user_id"] for u in users] and bars["y"] == [u["total_tokens"] for u in users]
    days = api.get("/insights/daily").json()["days"]
    (line,) = _traces(page, "daily")
    assert line["x"] == [d["date"] for d in days] and line["y"] == [d["total_tokens"] for d in days]
    alerts = api.get("/insights/alerts", params={"limit": 50}).json()["alerts"]
    assert page.locator("#alerts tbody tr").count() == len(alerts)

    word = api.get("/insights/top-users", params={"limit": 1}).json()  # any data; search a common word
    assert word["users"]
    hits = api.get("/insights/search", params={"q": "function", "limit": 20}).json()["hits"]
    page.fill("#q", "function")
    page.click("#search-form button")
    page.wait_for_function("document.getElementById('search-results').dataset.source !== undefined")
    if hits:
        assert page.locator("#search-results tbody tr").count() == len(hits)
    else:
        assert "No prompt matches" in page.locator("#search-results").locator("..").inner_text()


def _check_subscriptions(page: Page, api: httpx.Client) -> None:
    months = api.get("/v1/subscriptions/metrics/mrr").json()
    assert len(months) >= 3  # --days 75: a history of months, with movement
    x = [m["month"] for m in months]
    *moves, line = _traces(page, "mrr")
    assert line["x"] == x and line["y"] == [float(m["mrr"]) for m in months]
    signs = (("new_mrr", 1), ("expansion_mrr", 1), ("contraction_mrr", -1), ("churned_mrr", -1))
    for trace, (field, sign) in zip(moves, signs, strict=True):
        assert trace["x"] == x and trace["y"] == [sign * float(m[field]) for m in months], field
    churn = [
        (m["month"], float(m["churned_mrr"]) / float(before["mrr"]) * 100)
        for before, m in zip(months, months[1:], strict=False)
        if float(before["mrr"]) > 0
    ]
    (rates,) = _traces(page, "churn")
    assert rates["x"] == [month for month, _ in churn] and rates["y"] == [pct for _, pct in churn]
    assert any(pct > 0 for _, pct in churn)

    plans = api.get("/v1/subscriptions/metrics/active-by-plan").json()
    (bars,) = _traces(page, "active-by-plan")
    assert bars["x"] == [p["plano"] for p in plans] and len(plans) >= 3
    assert bars["y"] == [float(p["active_subscriptions"]) for p in plans]

    methods = api.get("/v1/subscriptions/metrics/payments-by-method").json()
    approved, declined = _traces(page, "payments-by-method")
    assert approved["x"] == declined["x"] == [m["metodo"] for m in methods]
    assert approved["y"] == [float(m["succeeded"]) for m in methods]
    assert declined["y"] == [float(m["failed"]) for m in methods] and sum(declined["y"]) > 0

    days = api.get("/v1/subscriptions/metrics/new-users").json()
    new, total = _traces(page, "new-users")
    assert new["x"] == total["x"] == [d["signup_date"] for d in days] and len(days) > 30
    assert new["y"] == [float(d["new_users"]) for d in days]
    assert total["y"] == [float(d["total_users"]) for d in days]


def _check_operations(page: Page, api: httpx.Client) -> None:
    health = api.get("/health").json()
    assert page.locator("#health").get_attribute("data-status") == health["status"]
    fresh = api.get("/ops/freshness").json()["aggregates"]
    age, threshold = _traces(page, "freshness-chart")
    assert age["x"] == threshold["x"] == [a["asset_key"] for a in fresh]
    assert threshold["y"] == [a["threshold_minutes"] for a in fresh]
    assert age["y"] == pytest.approx([a["age_minutes"] for a in fresh], abs=1.0)
    assert page.locator("#freshness tbody tr").count() == len(fresh)
    models = api.get("/dashboard/data/lineage").json()
    links = page.locator("#asset-links a")
    expected = sorted({m["asset_key"] for m in models} | {a["asset_key"] for a in fresh})
    assert links.all_inner_texts() == expected
    assert links.first.get_attribute("href").startswith("http://127.0.0.1:3000/assets/")


def _check_lineage(page: Page, api: httpx.Client) -> None:
    page.select_option("#model", LINEAGE_MODEL)
    page.wait_for_function(f"document.getElementById('lineage').dataset.model === '{LINEAGE_MODEL}'")
    model = next(m for m in api.get("/dashboard/data/lineage").json() if m["key"] == LINEAGE_MODEL)
    (sankey,) = _traces(page, "lineage")
    labels, link = sankey["node"]["label"], sankey["link"]
    edges = {(labels[s], labels[t]) for s, t in zip(link["source"], link["target"], strict=True)}
    expected = set()
    for column in model["columns"]:
        name = f"{model['key']}.{column['name']}"
        expected.add((name, model["key"]))
        expected |= {(source, name) for source in column["sources"]}
    assert edges == expected
    assert any(source.startswith("stg.") for source, _ in edges)


CHECKS = {
    "commerce": _check_commerce,
    "exports": _check_exports,
    "usage": _check_usage,
    "subscriptions": _check_subscriptions,
    "operations": _check_operations,
    "lineage": _check_lineage,
}


def test_every_page_loads_without_console_errors_and_charts_equal_the_api(
    browser: Browser, demo_site: str
) -> None:
    blocked_before = len(browser.blocked)
    with httpx.Client(base_url=demo_site, timeout=30) as api:
        assert api.get("/health").json()["status"] == "ok"  # the demo path ends green
        for name in ("index", *PAGES):
            page, errors = browser.open()
            _load(page, f"{demo_site}/dashboard" + ("" if name == "index" else f"/{name}"))
            screenshot(page, f"dashboard-{name}")
            if name in CHECKS:
                CHECKS[name](page, api)
            assert errors == [], name
            page.close()
    assert browser.blocked[blocked_before:] == []
