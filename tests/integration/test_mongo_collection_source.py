"""A second MongoDB source declared with other tables, another change field and no usage hook: the
mechanism (real FerretDB → DuckDB and PostgreSQL) writes only where the declaration says."""

import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import AssetsDefinition, DagsterInstance, SensorResult, build_sensor_context, materialize
from dagster.components import build_defs_for_component

from assets.sources.mongo_collection import MongoCollectionSource
from assets.usage.documents import validate_documents
from assets.usage.tables import MONGO_DECLARATION
from generators.usage import generate_usage_documents, insert_usage_documents
from resources.mongo import MongoResource
from resources.warehouse import WarehouseResource
from services import ConnectionInfo


def _declare(tmp_path: Path) -> MongoCollectionSource:
    text = Path(MONGO_DECLARATION).read_text()
    for old, new in (
        ("name: usage\n", "name: orders\n"),
        ("raw.usage_events_rejects", "landing.order_rejects"),
        ("raw.usage_events", "landing.orders"),
        ("raw.mongo_watermarks", "landing.mongo_marks"),
        ("change_field: updated_at", "change_field: modified_at"),
        ("source_name: mongo_usage_events", "source_name: mongo_orders"),
        ('  before_ingest: "assets.usage.tables:prepare_usage_tables"\n', ""),
    ):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "defs.yaml"
    path.write_text(text)
    return MongoCollectionSource.from_defs_yaml(path)


def _tables(warehouse: WarehouseResource, schema: str) -> set[str]:
    with warehouse.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT table_name FROM information_schema.tables WHERE table_schema = :s"), {"s": schema}
        )
        return {r[0] for r in rows}


def test_a_declared_source_writes_only_its_declared_tables(
    warehouse: WarehouseResource,
    mongo_server: ConnectionInfo,
    mongo_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("USAGE_MONGO_COLLECTION", "orders")
    monkeypatch.setenv("USAGE_MONGO_SAFETY_LAG_SECONDS", "0")
    monkeypatch.setenv("USAGE_MONGO_MAX_BATCH_DOCS", "1000")
    mongo = MongoResource(uri=mongo_server.url, database=mongo_database)
    docs: list[dict[str, Any]] = [
        d for chunk in generate_usage_documents(120, users=4, days=2, seed=21, bad_share=0.05) for d in chunk
    ]
    for doc in docs:  # the declared change field; documents without a usable one reach the sweep
        if "updated_at" in doc:
            doc["modified_at"] = doc["updated_at"]
    insert_usage_documents(mongo.collection("orders"), iter([docs]), total=len(docs))
    expected = validate_documents(docs)
    assert expected.rejects.num_rows > 0
    time.sleep(1.1)  # the ObjectId sweep covers whole seconds

    declared = build_defs_for_component(_declare(tmp_path))
    ingest = next(a for a in declared.assets or [] if isinstance(a, AssetsDefinition))
    (sensor,) = declared.sensors or []
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    with build_sensor_context(instance=instance, resources={"mongo": mongo, "warehouse": warehouse}) as ctx:
        result = sensor(ctx)
    assert isinstance(result, SensorResult) and len(result.run_requests or []) == 1
    (request,) = result.run_requests or []
    assert request.tags["afluente/mongo_source"] == f"mongodb:{mongo_database}.orders"
    run = materialize(
        [ingest],
        run_config=request.run_config,
        tags=request.tags,
        instance=instance,
        resources={"mongo": mongo, "warehouse": warehouse},
    )
    assert run.success
    assert {c.check_name: c.passed for c in run.get_asset_check_evaluations()} == {
        "event_id_unique": True,
        "watermark_covers_rows": True,
    }
    assert _tables(warehouse, "landing") == {"orders", "order_rejects", "mongo_marks"}
    assert "usage_events" not in _tables(warehouse, "raw")
    with warehouse.connect() as conn:
        loaded = conn.execute(sa.text("SELECT COUNT(*), COUNT(DISTINCT event_id) FROM landing.orders")).one()
        rejected = conn.execute(sa.text("SELECT COUNT(*) FROM landing.order_rejects")).scalar_one()
        marks = conn.execute(sa.text("SELECT source_key, docs_loaded FROM landing.mongo_marks")).all()
    assert tuple(loaded) == (expected.rows.num_rows, expected.rows.num_rows)
    assert rejected == expected.rejects.num_rows
    assert [tuple(m) for m in marks] == [(f"mongodb:{mongo_database}.orders", expected.rows.num_rows)]
    # Nothing changed since: the next tick skips.
    with build_sensor_context(
        instance=instance, resources={"mongo": mongo, "warehouse": warehouse}, cursor=result.cursor
    ) as ctx:
        again = sensor(ctx)
    assert isinstance(again, SensorResult) and not again.run_requests
