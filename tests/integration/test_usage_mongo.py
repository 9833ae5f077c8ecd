"""MongoDB (real FerretDB) → warehouse (DuckDB and PostgreSQL) through the real watermark sensor.

New documents arrive in bounded batches, updated documents are re-ingested exactly once, malformed
documents land in the rejects table with their reason, and the watermark survives a lost sensor cursor
because it lives in the warehouse.
"""

import datetime as dt
import time
from typing import Any

import pytest
from bson import ObjectId
from dagster import (
    AssetsDefinition,
    DagsterInstance,
    SensorResult,
    SkipReason,
    build_sensor_context,
    materialize,
)
from dagster.components import build_defs_for_component

from assets.sources.mongo_collection._ingest import ingest_batch
from assets.sources.mongo_collection._keyset import BatchRange, Position, floor_ms
from assets.sources.mongo_collection._watermark import read_watermark
from assets.usage.alert_thresholds import usage_alert_thresholds
from assets.usage.tables import usage_mongo_source
from generators.usage import generate_usage_documents, insert_usage_documents
from orchestration.definitions import sql_model_assets
from resources.mongo import MongoResource
from resources.warehouse import WarehouseResource
from services import ConnectionInfo

# Declared in assets/defs/usage/mongo_events/defs.yaml.
USAGE_MONGO = build_defs_for_component(usage_mongo_source())
raw_usage_events = next(a for a in USAGE_MONGO.assets or [] if isinstance(a, AssetsDefinition))
(usage_mongo_sensor,) = USAGE_MONGO.sensors or []
SOURCE = usage_mongo_source()
WATERMARKS = SOURCE.tables.watermarks
USAGE_MODELS = [a for a in sql_model_assets if any(k.path[1].startswith("usage") for k in a.keys)]


def _valid(doc: dict[str, Any]) -> bool:
    for name in ("user_id", "ide", "model"):
        if not isinstance(doc.get(name), str) or not doc[name].strip():
            return False
    for name in ("input_tokens", "output_tokens"):
        value = doc.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return False
    if not isinstance(doc.get("prompt"), str | None):
        return False
    return all(isinstance(doc.get(name), dt.datetime) for name in ("created_at", "updated_at"))


def _rows(warehouse: WarehouseResource, sql: str, **params: Any) -> list[tuple]:
    import sqlalchemy as sa

    with warehouse.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql), params).fetchall()]


def _tick(instance: DagsterInstance, resources: dict, cursor: str | None) -> SensorResult | SkipReason:
    with build_sensor_context(
        instance=instance,
        resources={"mongo": resources["mongo"], "warehouse": resources["warehouse"]},
        cursor=cursor,
    ) as context:
        result = usage_mongo_sensor(context)
    assert isinstance(result, SensorResult | SkipReason), result
    return result


def _drain(
    instance: DagsterInstance, resources: dict, cursor: str | None = None
) -> tuple[list[dict], str | None]:
    """Tick and run every requested batch until the sensor has nothing left; return run metadata."""
    outcomes: list[dict] = []
    for _ in range(20):
        result = _tick(instance, resources, cursor)
        if isinstance(result, SkipReason) or not result.run_requests:
            cursor = result.cursor if isinstance(result, SensorResult) else cursor
            return outcomes, cursor
        cursor = result.cursor
        (request,) = result.run_requests
        assert request.run_config["ops"]["raw__usage_events"]["config"]["upper_updated_at"]
        run = materialize(
            [raw_usage_events],
            run_config=request.run_config,
            tags=request.tags,
            instance=instance,
            resources=resources,
        )
        assert run.success
        assert all(check.passed for check in run.get_asset_check_evaluations())
        events = run.get_asset_materialization_events()
        outcomes.append({k: v.value for k, v in events[0].materialization.metadata.items()})
    raise AssertionError("the sensor never ran out of batches")


@pytest.fixture
def mongo(mongo_server: ConnectionInfo, mongo_database: str) -> MongoResource:
    return MongoResource(uri=mongo_server.url, database=mongo_database)


@pytest.fixture(autouse=True)
def _settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("USAGE_MONGO_SAFETY_LAG_SECONDS", "0")
    monkeypatch.setenv("USAGE_MONGO_MAX_BATCH_DOCS", "250")
    monkeypatch.setenv("USAGE_MONGO_COLLECTION", "usage_events")


def test_new_updated_and_malformed_documents(
    warehouse: WarehouseResource, mongo: MongoResource, tmp_path: Any
) -> None:
    collection = mongo.collection("usage_events")
    docs = [
        d for chunk in generate_usage_documents(600, users=10, days=6, seed=5, bad_share=0.04) for d in chunk
    ]
    insert_usage_documents(collection, iter([docs]), total=len(docs))
    resources = {"warehouse": warehouse, "mongo": mongo}
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    time.sleep(1.1)  # the ObjectId sweep covers whole seconds (and the lag is 0 here)

    outcomes, cursor = _drain(instance, resources)
    valid = [d for d in docs if _valid(d)]
    assert len(outcomes) >= 3  # 600 documents in batches of at most 250
    assert all(o["docs_read"] <= 250 + 24 for o in outcomes)  # + the malformed ones the sweep finds
    assert sum(o["rows_new"] for o in outcomes) == len(valid)
    assert _rows(warehouse, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM raw.usage_events") == [
        (len(valid), len(valid))
    ]
    rejects = _rows(warehouse, "SELECT event_id, reason FROM raw.usage_events_rejects")
    assert sorted(e for e, _ in rejects) == sorted(str(d["_id"]) for d in docs if not _valid(d))
    reasons = " | ".join(r for _, r in rejects)
    for fragment in ("updated_at: missing", "user_id: missing", "expected integer, got str", "ide: empty"):
        assert fragment in reasons

    # Updates and new inserts: each changed version is ingested once.
    now = dt.datetime.now(dt.UTC)
    changed = [d for d in valid[:5]]
    for doc in changed:
        collection.update_one({"_id": doc["_id"]}, {"$set": {"output_tokens": 424242, "updated_at": now}})
    fresh = [d for chunk in generate_usage_documents(10, users=3, days=2, seed=9, bursts=0) for d in chunk]
    insert_usage_documents(collection, iter([fresh]), total=len(fresh))
    time.sleep(1.1)
    outcomes, cursor = _drain(instance, resources, cursor)
    assert [(o["rows_new"], o["rows_updated"], o["rows_stale_skipped"]) for o in outcomes] == [(10, 5, 0)]
    ids = [str(d["_id"]) for d in changed]
    assert _rows(
        warehouse,
        "SELECT COUNT(*) FROM raw.usage_events WHERE output_tokens = 424242 AND event_id IN "
        f"({', '.join(repr(i) for i in ids)})",
    ) == [(5,)]
    assert _rows(warehouse, "SELECT COUNT(*) FROM raw.usage_events") == [(len(valid) + 10,)]

    # Nothing new, even with a lost sensor cursor: the watermark is durable in the warehouse.
    assert isinstance(_tick(instance, resources, cursor), SkipReason | SensorResult)
    assert _drain(instance, resources, None)[0] == []
    watermark = read_watermark(warehouse, WATERMARKS, f"mongodb:{mongo.database}.usage_events")
    assert watermark.position is not None and watermark.sweep_id is not None
    (loaded, updated, rejected) = _rows(
        warehouse, "SELECT docs_loaded, docs_updated, docs_rejected FROM raw.mongo_watermarks"
    )[0]
    assert (loaded, updated, rejected) == (len(valid) + 10, 5, len(docs) - len(valid))

    # A manual run (no range in its config) plans from the watermark: nothing to do, nothing skipped twice.
    run = materialize([raw_usage_events], instance=instance, resources=resources)
    assert run.success and run.get_asset_materialization_events() == []

    # The marts see the latest version of every document.
    run = materialize([usage_alert_thresholds, *USAGE_MODELS], instance=instance, resources=resources)
    assert run.success
    latest = {str(d["_id"]): d for d in valid + fresh}
    for doc in changed:
        latest[str(doc["_id"])] = dict(doc, output_tokens=424242)
    totals: dict[str, int] = {}
    for doc in latest.values():
        totals[doc["user_id"]] = totals.get(doc["user_id"], 0) + doc["input_tokens"] + doc["output_tokens"]
    expected = sorted(totals.items(), key=lambda item: (-item[1], item[0]))[:5]
    top = _rows(
        warehouse,
        "SELECT user_id, total_tokens FROM mart.usage_by_user WHERE usage_rank <= 5 ORDER BY 2 DESC",
    )
    assert [(u, int(t)) for u, t in top] == expected


def test_backdated_insert_is_not_skipped(mongo: MongoResource, tmp_path: Any) -> None:
    """A document written after the watermark passed with an older updated_at is found by the sweep."""
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    collection = mongo.collection("usage_events")
    docs = [d for chunk in generate_usage_documents(20, users=2, days=2, seed=1, bursts=0) for d in chunk]
    insert_usage_documents(collection, iter([docs]), total=len(docs))
    resources = {"warehouse": warehouse, "mongo": mongo}
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    time.sleep(1.1)
    _, cursor = _drain(instance, resources)
    late = [d for chunk in generate_usage_documents(1, users=1, days=1, seed=2, bursts=0) for d in chunk][0]
    late["updated_at"] = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
    collection.insert_one(late)
    time.sleep(1.1)
    outcomes, _ = _drain(instance, resources, cursor)
    assert sum(o["rows_new"] for o in outcomes) == 1
    assert _rows(warehouse, "SELECT COUNT(*) FROM raw.usage_events") == [(21,)]


def test_open_ended_batches_read_in_keyset_order_and_resume(
    warehouse: WarehouseResource, mongo: MongoResource
) -> None:
    """When the sensor's peek times out, each run reads ``max_docs`` changes in keyset order (plus the
    ObjectId sweep once) and the next run resumes after the last document read: every document once."""
    collection = mongo.collection("usage_events")
    docs = [
        d for chunk in generate_usage_documents(600, users=10, days=6, seed=11, bad_share=0.04) for d in chunk
    ]
    insert_usage_documents(collection, iter([docs]), total=len(docs))
    time.sleep(1.1)
    now = dt.datetime.now(dt.UTC)
    horizon = floor_ms(now)
    source_key = f"mongodb:{mongo.database}.usage_events"
    outcomes = []
    for _ in range(20):
        watermark = read_watermark(warehouse, WATERMARKS, source_key)
        batch = BatchRange(
            lower=watermark.position,
            upper=Position(horizon),
            sweep_from=watermark.sweep_id,
            sweep_until=ObjectId.from_datetime(horizon.replace(tzinfo=dt.UTC)),
            max_docs=250,
            exact=False,
        )
        outcome = ingest_batch(
            warehouse,
            collection,
            batch,
            spec=SOURCE.ingest_spec(),
            now=now,
            lag_seconds=0,
            max_docs=250,
            peek_timeout_ms=5_000,
        )
        outcomes.append(outcome)
        if outcome.docs_read == 0:
            break
    valid = [d for d in docs if _valid(d)]
    assert len(outcomes) == 4  # 250 + 250 + the rest, then an empty read that closes the range
    assert all(not o.exact for o in outcomes)
    assert sum(o.docs_read for o in outcomes) == len(docs)
    assert sum(o.rows_new for o in outcomes) == len(valid)
    assert sum(o.rows_updated + o.rows_stale for o in outcomes) == 0
    assert _rows(warehouse, "SELECT COUNT(*), COUNT(DISTINCT event_id) FROM raw.usage_events") == [
        (len(valid), len(valid))
    ]
    rejects = _rows(warehouse, "SELECT event_id FROM raw.usage_events_rejects")
    assert sorted(e for (e,) in rejects) == sorted(str(d["_id"]) for d in docs if not _valid(d))
    assert read_watermark(warehouse, WATERMARKS, source_key).position == Position(horizon)


def test_sensor_skips_with_a_reason_while_mongodb_is_unreachable(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance
) -> None:
    """A MongoDB that refuses connections: the tick skips (like the Kafka sensor), it does not fail."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    down = MongoResource(
        uri=f"mongodb://127.0.0.1:{port}/", database="afluente", server_selection_timeout_ms=300
    )
    result = _tick(dagster_instance, {"mongo": down, "warehouse": warehouse}, None)
    assert isinstance(result, SkipReason), result
    assert "MongoDB unreachable for" in (result.skip_message or "")
    assert f"127.0.0.1:{port}" in (result.skip_message or "")
    assert dagster_instance.get_runs_count() == 0
