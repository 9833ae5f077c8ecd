"""Usage domain from landed JSON files to the marts, on DuckDB and PostgreSQL, with exact values.

The generator writes a JSONL file into a real landing folder, the real file-drop sensor and raw asset
load it, then the thresholds asset and the SQL models run. Top users, daily totals and alerts are
recomputed here from the generated documents, independently of the SQL.
"""

import datetime as dt
import json
import os
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest
from bson import json_util
from dagster import (
    AssetKey,
    AssetsDefinition,
    DagsterInstance,
    Definitions,
    SensorResult,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)
from dagster.components import build_defs_for_component

from assets.usage.alert_thresholds import usage_alert_thresholds
from assets.usage.tables import usage_mongo_source
from generators.usage import generate_usage_documents, write_usage_file
from orchestration.definitions import sql_model_assets
from orchestration.usage import raw_usage_event_files, usage_file_drop_sensor
from resources.landing_zone import LandingZoneResource
from resources.mongo import MongoResource
from resources.search import SearchResource
from resources.warehouse import WarehouseResource

# Declared in assets/defs/usage/mongo_events/defs.yaml.
USAGE_MONGO = build_defs_for_component(usage_mongo_source())
raw_usage_events = next(a for a in USAGE_MONGO.assets or [] if isinstance(a, AssetsDefinition))
USAGE_MODELS = [
    a for a in sql_model_assets if any(k.path[1].startswith("usage") for k in a.keys if k.path[0] != "raw")
]
THRESHOLDS = {
    "USAGE_ALERT_DAILY_TOKENS": "100000",
    "USAGE_ALERT_SPIKE_FACTOR": "3",
    "USAGE_ALERT_TRAILING_DAYS": "3",
    "USAGE_ALERT_SPIKE_MIN_TOKENS": "20000",
}


# ----- independent expectations (plain Python over the generated documents)


def is_valid(doc: dict[str, Any]) -> bool:
    """The documented contract, restated: required text non-empty, counts >= 0, dates present."""
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


def user_totals(docs: list[dict[str, Any]]) -> dict[str, int]:
    totals: dict[str, int] = defaultdict(int)
    for doc in docs:
        totals[doc["user_id"]] += doc["input_tokens"] + doc["output_tokens"]
    return dict(totals)


def top_users(docs: list[dict[str, Any]], limit: int) -> list[tuple[str, int]]:
    return sorted(user_totals(docs).items(), key=lambda item: (-item[1], item[0]))[:limit]


def day_totals(docs: list[dict[str, Any]]) -> dict[tuple[str, dt.date], int]:
    days: dict[tuple[str, dt.date], int] = defaultdict(int)
    for doc in docs:
        created = doc["created_at"].astimezone(dt.UTC).date()
        days[(doc["user_id"], created)] += doc["input_tokens"] + doc["output_tokens"]
    return dict(days)


def expected_alerts(docs: list[dict[str, Any]], env: dict[str, str]) -> set[tuple[str, str, dt.date]]:
    daily, factor = int(env["USAGE_ALERT_DAILY_TOKENS"]), float(env["USAGE_ALERT_SPIKE_FACTOR"])
    window, minimum = int(env["USAGE_ALERT_TRAILING_DAYS"]), int(env["USAGE_ALERT_SPIKE_MIN_TOKENS"])
    days = day_totals(docs)
    alerts = set()
    for (user, day), total in days.items():
        if total > daily:
            alerts.add(("daily_tokens", user, day))
        previous = [days.get((user, day - dt.timedelta(days=i))) for i in range(1, window + 1)]
        active = [p for p in previous if p is not None]
        average = sum(active) / window
        if active and total >= minimum and total > factor * average:
            alerts.add(("spike", user, day))
    return alerts


# ----- helpers


def age(path: Path) -> Path:
    past = time.time() - 120
    os.utime(path, (past, past))
    return path


def generated(count: int, **options: Any) -> list[dict[str, Any]]:
    return [doc for chunk in generate_usage_documents(count, **options) for doc in chunk]


def drop_file(folder: Path, name: str, docs: list[dict[str, Any]]) -> Path:
    fmt = "json" if name.endswith(".json") else "jsonl"
    write_usage_file(folder / name, iter([docs]), fmt=fmt, total=len(docs))
    return age(folder / name)


def rows(warehouse: WarehouseResource, sql: str) -> list[tuple]:
    with warehouse.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]


def ingest_landed_files(
    instance: DagsterInstance, resources: dict, cursor: str | None = None
) -> SensorResult:
    context = build_sensor_context(
        instance=instance, resources={"landing_zone": resources["landing_zone"]}, cursor=cursor
    )
    result = usage_file_drop_sensor(context)
    assert isinstance(result, SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    for request in result.run_requests:
        run = materialize(
            [raw_usage_event_files],
            partition_key=request.partition_key,
            instance=instance,
            resources=resources,
        )
        assert run.success
        assert all(c.passed for c in run.get_asset_check_evaluations())
    return result


def materialize_marts(instance: DagsterInstance, resources: dict) -> None:
    run = materialize([usage_alert_thresholds, *USAGE_MODELS], instance=instance, resources=resources)
    assert run.success
    failed = [
        (c.asset_key, c.check_name, c.metadata) for c in run.get_asset_check_evaluations() if not c.passed
    ]
    assert failed == []


# ----- tests


@pytest.fixture
def alert_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in THRESHOLDS.items():
        monkeypatch.setenv(name, value)
    return THRESHOLDS


def test_landed_usage_files_to_marts_exact(
    warehouse: WarehouseResource, tmp_path: Path, alert_env: dict[str, str]
) -> None:
    landing = tmp_path / "landing"
    folder = landing / "usage"
    folder.mkdir(parents=True)
    docs = generated(600, users=12, days=10, seed=7, bad_share=0.05, bursts=2)
    (folder / "events.jsonl").write_text(
        "".join(json_util.dumps(doc, json_options=json_util.RELAXED_JSON_OPTIONS) + "\n" for doc in docs)
        + "this line is not json\n",
        encoding="utf-8",
    )
    age(folder / "events.jsonl")
    (folder / "broken.json").write_text("[{not json}]", encoding="utf-8")  # closed, yet not JSON
    age(folder / "broken.json")
    resources = {"warehouse": warehouse, "landing_zone": LandingZoneResource(root=str(landing))}
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))

    result = ingest_landed_files(instance, resources)
    assert len(result.run_requests) == 2
    valid = [doc for doc in docs if is_valid(doc)]
    assert len(docs) - len(valid) == 30
    assert rows(warehouse, "SELECT COUNT(*) FROM raw.usage_event_files") == [(len(valid),)]
    rejects = rows(
        warehouse, "SELECT source_line, reason FROM raw.usage_event_files_rejects ORDER BY source_line"
    )
    assert len(rejects) == 31
    assert rejects[-1][0] == 601 and rejects[-1][1].startswith("invalid JSON")
    reasons = " | ".join(reason for _, reason in rejects)
    for fragment in (
        "user_id: missing",
        "input_tokens: expected integer, got str",
        "must be >= 0",
        "model: missing",
    ):
        assert fragment in reasons
    ledger = dict(rows(warehouse, "SELECT file_name, status FROM raw.landing_files"))
    assert ledger == {"events.jsonl": "loaded", "broken.json": "quarantined"}

    materialize_marts(instance, resources)
    assert rows(warehouse, "SELECT COUNT(*), SUM(total_tokens) FROM stg.usage_events") == [
        (len(valid), sum(d["input_tokens"] + d["output_tokens"] for d in valid))
    ]
    ranking = rows(
        warehouse, "SELECT user_id, total_tokens, usage_rank FROM mart.usage_by_user ORDER BY usage_rank"
    )
    assert [(u, t) for u, t, _ in ranking] == top_users(valid, 100)
    assert [r for _, _, r in ranking] == list(range(1, len(ranking) + 1))
    daily = rows(
        warehouse, "SELECT user_id, usage_date, SUM(total_tokens) FROM mart.usage_daily GROUP BY 1, 2"
    )
    assert {
        (u, d if isinstance(d, dt.date) else dt.date.fromisoformat(str(d))): int(t) for u, d, t in daily
    } == (day_totals(valid))
    alerts = rows(
        warehouse, "SELECT alert_type, user_id, usage_date, total_tokens, threshold FROM mart.usage_alerts"
    )
    expected = expected_alerts(valid, alert_env)
    assert {(a, u, d) for a, u, d, _, _ in alerts} == expected
    assert any(a == "daily_tokens" for a, _, _ in expected) and any(a == "spike" for a, _, _ in expected)
    assert all(total > float(threshold) for _, _, _, total, threshold in alerts)


def test_updated_version_in_a_later_file_wins(
    warehouse: WarehouseResource, tmp_path: Path, alert_env: dict
) -> None:
    """The same document landed twice (edited later) counts once, with its latest content."""
    landing = tmp_path / "landing"
    folder = landing / "usage"
    folder.mkdir(parents=True)
    docs = generated(50, users=3, days=3, seed=11, bursts=0)
    edited = dict(docs[0], output_tokens=777, updated_at=docs[0]["updated_at"] + dt.timedelta(minutes=5))
    drop_file(folder, "first.jsonl", docs)
    drop_file(folder, "second.json", [edited])
    resources = {"warehouse": warehouse, "landing_zone": LandingZoneResource(root=str(landing))}
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    ingest_landed_files(instance, resources)
    materialize_marts(instance, resources)
    assert rows(warehouse, "SELECT COUNT(*) FROM stg.usage_events") == [(50,)]
    assert rows(
        warehouse, f"SELECT output_tokens FROM stg.usage_events WHERE event_id = '{docs[0]['_id']}'"
    ) == [(777,)]


def test_new_usage_triggers_marts_and_indices_automatically(tmp_path: Path) -> None:
    """Declarative automation: a landed file makes staging, marts and insight indices requested."""
    from assets.usage.insight_indices import insight_index_assets

    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    landing = tmp_path / "landing"
    drop_file(landing / "usage", "a.jsonl", generated(20, users=2, days=2, seed=3, bursts=0))
    resources = {"warehouse": warehouse, "landing_zone": LandingZoneResource(root=str(landing))}
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    graph = Definitions(
        assets=[
            raw_usage_events,
            raw_usage_event_files,
            usage_alert_thresholds,
            *USAGE_MODELS,
            *insight_index_assets,
        ],
        resources={  # search and mongo are not contacted by an evaluation
            **resources,
            "search": SearchResource(url="http://127.0.0.1:9200"),
            "mongo": MongoResource(uri="mongodb://127.0.0.1:27017/", database="unused"),
        },
    )
    first = evaluate_automation_conditions(defs=graph, instance=instance)
    ingest_landed_files(instance, resources)
    second = evaluate_automation_conditions(defs=graph, instance=instance, cursor=first.cursor)
    requested = {key.to_user_string() for key in _requested(second, graph)}
    # One tick requests the whole chain: eager conditions see upstream assets that will be requested.
    assert {
        "stg/usage_alert_thresholds",
        "stg/usage_events",
        "mart/usage_by_user",
        "mart/usage_daily",
        "mart/usage_alerts",
        "search/usage_top_users",
        "search/usage_daily",
        "search/usage_alerts",
        "search/usage_prompts",
    } <= requested
    third = evaluate_automation_conditions(defs=graph, instance=instance, cursor=second.cursor)
    assert _requested(third, graph) == []  # handled: nothing is requested twice


def _requested(result: Any, graph: Definitions) -> list[AssetKey]:
    keys = []
    for assets_def in graph.assets or []:
        if isinstance(assets_def, AssetsDefinition):
            keys.extend(k for k in assets_def.keys if result.get_requested_partitions(k))
    return keys


def test_generator_json_array_file_is_accepted(tmp_path: Path) -> None:
    from assets.usage.file_reader import read_usage_file

    path = tmp_path / "a.json"
    write_usage_file(path, iter([generated(5, users=2, days=1, bursts=0)]), fmt="json", total=5)
    parsed = read_usage_file(path)
    assert parsed.rows.num_rows == 5 and parsed.total_rows == 5
    assert json.loads(path.read_text())[0]["_id"]["$oid"]
