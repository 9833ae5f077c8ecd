"""Insight indices on a real OpenSearch node, and the insights API over them.

Versioned builds switch their alias atomically (a search loop running during rebuilds never fails
nor sees a partial index), failed builds leave the previous version serving, old versions are pruned,
and the API returns exactly what the marts hold, recomputed here from the generated documents.
"""

import datetime as dt
import threading
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from dagster import DagsterInstance, materialize
from fastapi import FastAPI
from fastapi.testclient import TestClient

from api.routers.insights import get_index_prefix, get_search, router
from assets.usage.insight_indices import insight_index_assets
from resources.landing_zone import LandingZoneResource
from resources.search import SearchResource
from resources.search_bulk import BulkRejectedError, bulk_index
from resources.search_indices import (
    IndexBuildError,
    IndexDefinition,
    build_versioned_index,
    versions_of,
)
from resources.warehouse import WarehouseResource
from services import ConnectionInfo
from tests.integration.test_usage_pipeline import (
    THRESHOLDS,
    day_totals,
    drop_file,
    expected_alerts,
    generated,
    ingest_landed_files,
    is_valid,
    materialize_marts,
    top_users,
)

MAPPINGS = {"dynamic": "strict", "properties": {"n": {"type": "long"}, "word": {"type": "keyword"}}}


@pytest.fixture
def search(opensearch_server: ConnectionInfo) -> SearchResource:
    return SearchResource(url=opensearch_server.url, engine="opensearch")


def _docs(count: int, word: str) -> list[dict[str, Any]]:
    return [{"n": i, "word": word} for i in range(count)]


def test_versioned_builds_switch_and_prune(search: SearchResource, search_index_prefix: str) -> None:
    definition = IndexDefinition(alias=f"{search_index_prefix}numbers", mappings=MAPPINGS, id_field="n")
    builds = [build_versioned_index(search, definition, _docs(n, f"v{n}"), keep=2) for n in (10, 20, 30)]
    assert [b.documents for b in builds] == [10, 20, 30]
    assert search.alias_indices(definition.alias) == [builds[-1].index]
    assert versions_of(search, definition.alias) == [builds[1].index, builds[2].index]
    assert builds[2].previous == (builds[1].index,) and builds[2].pruned == (builds[0].index,)
    assert search.count(definition.alias) == 30
    mapping = search.client().indices.get_mapping(index=builds[-1].index)[builds[-1].index]["mappings"]
    assert mapping["dynamic"] == "strict"


def test_failed_build_keeps_previous_version(search: SearchResource, search_index_prefix: str) -> None:
    definition = IndexDefinition(alias=f"{search_index_prefix}numbers", mappings=MAPPINGS, id_field="n")
    first = build_versioned_index(search, definition, _docs(5, "ok"))

    def broken() -> Any:
        yield from _docs(3, "half")
        raise RuntimeError("warehouse connection lost mid-stream")

    with pytest.raises(RuntimeError, match="mid-stream"):
        build_versioned_index(search, definition, broken())
    bad_mapping = [{"n": "not a number", "word": "x"}]
    with pytest.raises(IndexBuildError):
        build_versioned_index(search, definition, bad_mapping)
    assert versions_of(search, definition.alias) == [first.index]
    assert search.alias_indices(definition.alias) == [first.index]
    assert search.count(definition.alias) == 5


def test_bulk_indexes_the_good_documents_and_reports_every_refused_one(
    search: SearchResource, search_index_prefix: str
) -> None:
    """Concurrent NDJSON requests: refused documents are counted and sampled, the rest are indexed."""
    name = f"{search_index_prefix}bulk"
    search.create_index(name, mappings=MAPPINGS, exist_ok=False)
    docs = _docs(5000, "ok")
    for bad in (7, 2500, 4999):
        docs[bad] = {"n": "not a number", "word": "bad"}
    with pytest.raises(BulkRejectedError, match="3 documents rejected") as refused:
        bulk_index(search, name, docs, chunk_docs=700, threads=3)
    assert "mapper_parsing_exception" in str(refused.value)
    search.refresh(name)
    assert search.count(name) == 4997
    assert bulk_index(search, name, _docs(1200, "more"), id_field="n", chunk_docs=500, threads=2) == 1200
    search.refresh(name)
    assert search.count(name, {"term": {"word": "more"}}) == 1200


def test_alias_switch_is_atomic_under_concurrent_searches(
    search: SearchResource, search_index_prefix: str, opensearch_server: ConnectionInfo
) -> None:
    definition = IndexDefinition(alias=f"{search_index_prefix}numbers", mappings=MAPPINGS, id_field="n")
    sizes = [2000, 3000, 4000, 5000]
    build_versioned_index(search, definition, _docs(sizes[0], "v0"))
    reader = SearchResource(url=opensearch_server.url, engine="opensearch")
    seen: list[tuple[int, int]] = []
    errors: list[str] = []
    stop = threading.Event()

    def loop() -> None:
        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline and len(seen) < 20_000:
            try:
                body = reader.search(
                    definition.alias,
                    size=0,
                    track_total_hits=True,
                    aggs={"words": {"terms": {"field": "word"}}},
                )
                buckets = body["aggregations"]["words"]["buckets"]
                total = body["hits"]["total"]["value"]
                seen.append((total, len(buckets)))
            except Exception as exc:  # noqa: BLE001 - any failure is what this test looks for
                errors.append(repr(exc))

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        for version, size in enumerate(sizes[1:], start=1):
            build_versioned_index(search, definition, _docs(size, f"v{version}"), keep=2)
            time.sleep(0.2)
    finally:
        stop.set()
        thread.join(timeout=30)
    reader.close()
    assert errors == []
    assert len(seen) > 20
    # Every answer came from exactly one complete version: its full size, one word only.
    assert {total for total, _ in seen} <= set(sizes)
    assert {words for _, words in seen} == {1}
    assert seen[-1][0] == sizes[-1]


def load_usage(
    warehouse: WarehouseResource,
    search: SearchResource,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> list[dict[str, Any]]:
    """Usage marts and insight indices (under ``prefix``) built by the real pipeline; returns the docs."""
    for name, value in THRESHOLDS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("USAGE_INDEX_PREFIX", prefix)
    landing = tmp_path / "landing"
    docs = generated(500, users=9, days=8, seed=21, bad_share=0.02, bursts=2)
    drop_file(landing / "usage", "events.jsonl", docs)
    resources = {
        "warehouse": warehouse,
        "landing_zone": LandingZoneResource(root=str(landing)),
        "search": search,
    }
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    ingest_landed_files(instance, resources)
    materialize_marts(instance, resources)
    run = materialize(insight_index_assets, instance=instance, resources=resources)
    assert run.success
    assert all(check.passed for check in run.get_asset_check_evaluations())
    return docs


def serve_insights(app: FastAPI, search: SearchResource, prefix: str) -> FastAPI:
    """Point the insights router of ``app`` at ``search`` and the indices under ``prefix``."""
    app.dependency_overrides[get_search] = lambda: search
    app.dependency_overrides[get_index_prefix] = lambda: prefix
    return app


def test_indices_and_api_match_the_marts(
    warehouse: WarehouseResource,
    search: SearchResource,
    search_index_prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    docs = load_usage(warehouse, search, search_index_prefix, tmp_path, monkeypatch)
    valid = [d for d in docs if is_valid(d)]

    app = FastAPI()
    app.include_router(router)
    client = TestClient(serve_insights(app, search, search_index_prefix))

    body = client.get("/insights/top-users", params={"limit": 5}).json()
    assert [(u["user_id"], u["total_tokens"]) for u in body["users"]] == top_users(valid, 5)
    assert [u["rank"] for u in body["users"]] == [1, 2, 3, 4, 5]

    by_day: dict[dt.date, int] = defaultdict(int)
    for (_, day), total in day_totals(valid).items():
        by_day[day] += total
    body = client.get("/insights/daily").json()
    assert {dt.date.fromisoformat(d["date"]): d["total_tokens"] for d in body["days"]} == dict(by_day)
    first_day = min(by_day)
    user = top_users(valid, 1)[0][0]
    body = client.get(
        "/insights/daily", params={"from": str(first_day), "to": str(first_day), "user": user}
    ).json()
    assert body["days"] == [] or [d["total_tokens"] for d in body["days"]] == [
        day_totals(valid)[(user, first_day)]
    ]
    assert body["from"] == str(first_day) and body["user"] == user

    body = client.get("/insights/alerts", params={"limit": 500}).json()
    alerts = {(a["alert_type"], a["user_id"], dt.date.fromisoformat(a["usage_date"])) for a in body["alerts"]}
    assert alerts == expected_alerts(valid, THRESHOLDS)
    assert body["total"] == len(alerts)
    spikes = client.get("/insights/alerts", params={"type": "spike"}).json()["alerts"]
    assert spikes and all(a["alert_type"] == "spike" for a in spikes)

    word = "deadlocks"
    body = client.get("/insights/search", params={"q": word, "limit": 100}).json()
    matching = {str(d["_id"]) for d in valid if word in (d.get("prompt") or "") + (d.get("response") or "")}
    assert body["total"] == len(matching) and matching
    assert {h["event_id"] for h in body["hits"]} <= matching
    assert all("<em>" in "".join(sum(h["highlights"].values(), [])) for h in body["hits"])

    # Validation: clear 422s, documented in OpenAPI.
    assert client.get("/insights/top-users", params={"limit": 0}).status_code == 422
    assert client.get("/insights/top-users", params={"limit": "many"}).status_code == 422
    # An empty range is an empty answer (the schema cannot say "to >= from", so it is not an error).
    empty = client.get("/insights/daily", params={"from": "2025-01-10", "to": "2025-01-01"})
    assert empty.status_code == 200 and empty.json()["days"] == []
    assert client.get("/insights/daily", params={"from": "2025-13-01"}).status_code == 422
    for not_a_day in ("0", "0.5", "20250101"):  # ISO 8601 days only, never a Unix timestamp
        assert client.get("/insights/daily", params={"to": not_a_day}).status_code == 422
    assert client.get("/insights/search", params={"q": "x"}).status_code == 422
    for blank in ("  ", "a\x00b", "\t\n"):  # blank or with control characters: refused before the engine
        assert client.get("/insights/search", params={"q": blank}).status_code == 422
    assert client.get("/insights/alerts", params={"type": "nope"}).status_code == 422
    assert client.get("/insights/daily", params={"user": "bad user!"}).status_code == 422
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/insights/top-users", "/insights/daily", "/insights/alerts", "/insights/search"} <= set(paths)

    # An index that was never built answers 503 with the asset to materialize.
    app.dependency_overrides[get_index_prefix] = lambda: search_index_prefix + "missing-"
    missing = client.get("/insights/top-users")
    assert missing.status_code == 503 and "search/usage_top_users" in missing.json()["detail"]
