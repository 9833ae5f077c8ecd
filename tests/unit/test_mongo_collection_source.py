"""The MongoDB collection source component: its YAML declaration builds the same definitions as the
hand-written usage code did, and every name comes from the declaration (pure logic, no services)."""

import datetime as dt
from pathlib import Path

import pytest
from bson import ObjectId
from dagster import AssetKey, AssetsDefinition, SensorDefinition
from dagster.components import build_defs_for_component

from assets.sources.mongo_collection import MongoCollectionSource
from assets.sources.mongo_collection._keyset import BatchRange, Position
from assets.sources.mongo_collection._tables import TableName
from assets.usage.tables import MONGO_DECLARATION, usage_mongo_source

USAGE_YAML = Path(MONGO_DECLARATION)


def _built(
    source: MongoCollectionSource,
) -> tuple[AssetsDefinition, AssetsDefinition | None, SensorDefinition]:
    defs = build_defs_for_component(source)
    ingest = [a for a in defs.assets or [] if isinstance(a, AssetsDefinition)]
    specs = [a for a in defs.assets or [] if not isinstance(a, AssetsDefinition)]
    (sensor,) = defs.sensors or []
    assert len(ingest) == 1 and len(specs) == 1
    return ingest[0], specs[0], sensor  # type: ignore[return-value]


def test_the_usage_declaration_builds_the_names_the_code_had() -> None:
    source = usage_mongo_source()
    ingest, external, sensor = _built(source)
    raw, rejects = AssetKey(["raw", "usage_events"]), AssetKey(["raw", "usage_events_rejects"])
    assert ingest.node_def.name == "raw__usage_events"
    assert set(ingest.keys) == {raw, rejects}
    assert {c.name for c in ingest.check_keys} == {"event_id_unique", "watermark_covers_rows"}
    assert ingest.op.pool == "usage_mongo_ingest"
    for key in (raw, rejects):
        spec = ingest.specs_by_key[key]
        assert spec.group_name == "usage" and spec.owners == ["team:usage"]
        assert spec.tags["layer"] == "raw" and spec.kinds == {"python", "mongodb", "table"}
        assert spec.skippable
        assert {d.asset_key for d in spec.deps} == {AssetKey(["source", "mongo_usage_events"])}
    assert ingest.specs_by_key[raw].metadata["dagster/table_name"] == "raw.usage_events"
    assert ingest.specs_by_key[raw].metadata["watermark_table"] == "mongo_watermarks"
    assert ingest.specs_by_key[rejects].metadata["dagster/table_name"] == "raw.usage_events_rejects"
    assert external.key == AssetKey(["source", "mongo_usage_events"])  # type: ignore[union-attr]
    assert sensor.name == "usage_mongo_watermark_sensor"
    assert sensor.minimum_interval_seconds == 30
    # The ingest job is the sensor's target, named after the sensor as before.
    assert sensor.job_name == "__anonymous_asset_job_usage_mongo_watermark_sensor"
    (target,) = sensor.targets
    assert set(target.resolvable_to_job.selection.selected_keys) == {raw, rejects}  # type: ignore[union-attr]


def test_every_name_comes_from_the_declaration(tmp_path: Path) -> None:
    text = USAGE_YAML.read_text()
    for old, new in (
        ("name: usage\n", "name: orders\n"),
        ("raw.usage_events_rejects", "landing.order_rejects"),
        ("raw.usage_events", "landing.orders"),
        ("raw.mongo_watermarks", "ops.mongo_marks"),
        ("change_field: updated_at", "change_field: modified_at"),
        ("pool: usage_mongo_ingest", "pool: orders_ingest"),
        ("source_name: mongo_usage_events", "source_name: mongo_orders"),
    ):
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "defs.yaml"
    path.write_text(text)
    source = MongoCollectionSource.from_defs_yaml(path)
    ingest, external, sensor = _built(source)
    assert ingest.node_def.name == "landing__orders"
    assert set(ingest.keys) == {AssetKey(["landing", "orders"]), AssetKey(["landing", "order_rejects"])}
    assert ingest.op.pool == "orders_ingest"
    assert external.key == AssetKey(["source", "mongo_orders"])  # type: ignore[union-attr]
    assert sensor.name == "orders_mongo_watermark_sensor"
    tables = source.tables
    assert (tables.raw, tables.rejects, tables.watermarks) == (
        TableName("landing", "orders"),
        TableName("landing", "order_rejects"),
        TableName("ops", "mongo_marks"),
    )
    columns = tables.columns()
    assert [c for c, _ in columns[tables.raw]][-3:] == ["source", "ingest_batch", "ingested_at"]
    assert dict(columns[tables.raw])["input_tokens"] == "BIGINT"
    assert [c for c, _ in columns[tables.rejects]][:4] == [
        "event_id",
        "reason",
        "raw_content",
        "source_updated_at",
    ]
    assert [name for _, name, _, _ in tables.pg_indexes()] == [
        "orders__uix__event_id",
        "order_rejects__ix__event_id",
        "mongo_marks__uix__source_key",
    ]


def test_the_change_field_is_the_declarations() -> None:
    t0, t1 = dt.datetime(2025, 1, 1, 10), dt.datetime(2025, 1, 1, 11)
    batch = BatchRange(
        lower=Position(t0),
        upper=Position(t1),
        sweep_from=None,
        sweep_until=ObjectId.from_datetime(t1.replace(tzinfo=dt.UTC)),
        max_docs=5,
        change_field="modified_at",
    )
    assert batch.key_filter() == {"$and": [{"modified_at": {"$gt": t0}}, {"modified_at": {"$lte": t1}}]}
    assert batch.sweep_filter()["$or"][0] == {"modified_at": {"$not": {"$type": "date"}}}
    assert BatchRange.from_config(batch.to_config(), "modified_at") == batch


def test_bad_declarations_fail_with_a_clear_error(tmp_path: Path) -> None:
    text = USAGE_YAML.read_text()
    path = tmp_path / "defs.yaml"
    path.write_text(text.replace("USAGE_MONGO_PEEK_TIMEOUT_MS", "NO_SUCH_SETTING"))
    with pytest.raises(ValueError, match="'NO_SUCH_SETTING' is not a registered setting"):
        build_defs_for_component(MongoCollectionSource.from_defs_yaml(path))
    path.write_text(text.replace("key_column: event_id", "key_column: order_id"))
    with pytest.raises(ValueError, match="row schema has no column 'order_id'"):
        _ = MongoCollectionSource.from_defs_yaml(path).tables
    path.write_text(text.replace("raw_table: raw.usage_events", "raw_table: usage_events"))
    with pytest.raises(ValueError, match="must be written schema.table"):
        _ = MongoCollectionSource.from_defs_yaml(path).tables
    path.write_text(text.replace("assets.usage.documents:validate_documents", "assets.usage.documents"))
    with pytest.raises(ValueError, match="package.module:attribute"):
        build_defs_for_component(MongoCollectionSource.from_defs_yaml(path))
