"""KafkaTopicSource: a YAML declaration builds the same assets, jobs, sensor and run config as before."""

from pathlib import Path

import pytest
from dagster import AssetKey, AssetSelection, Definitions
from dagster.components import build_defs_for_component
from pydantic import ValidationError

from assets.sources.kafka_topic import KafkaTopicSource
from assets.sources.kafka_topic._asset import kafka_run_config
from assets.sources.kafka_topic._ledger import OffsetRange
from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource

COMMERCE_YAML = Path(__file__).resolve().parents[2] / "assets/defs/commerce/kafka_events/defs.yaml"
MINIMAL = {
    "name": "orders",
    "domain": "shop",
    "topic": "shop.orders",
    "decoder": "json:loads",
    "raw_table": "raw.orders",
    "columns": {"order_id": "TEXT", "amount": "DOUBLE PRECISION"},
    "dead_letter_table": "raw.orders_dead_letter",
}


def test_commerce_declaration_builds_the_historical_names() -> None:
    source = KafkaTopicSource.from_defs_yaml(COMMERCE_YAML)
    defs = build_defs_for_component(component=source)
    (ingest,) = defs.assets or []
    assert ingest.node_def.name == "raw_commerce_events"
    assert set(ingest.keys) == {
        AssetKey(["raw", "commerce_events"]),
        AssetKey(["raw", "commerce_events_dead_letter"]),
    }
    assert {c.name for c in ingest.check_keys} == {"kafka_ranges_reconciled"}
    assert {j.name for j in defs.jobs or []} == {"commerce_kafka_ingest", "commerce_kafka_ingest_and_refresh"}
    (sensor,) = defs.sensors or []
    assert sensor.name == "commerce_kafka_offsets_sensor"
    assert {t.job_name for t in sensor.targets} == {
        "commerce_kafka_ingest",
        "commerce_kafka_ingest_and_refresh",
    }
    spec = next(s for s in ingest.specs if s.key == AssetKey(["raw", "commerce_events"]))
    assert spec.group_name == "commerce" and spec.owners == ["team:commerce"]
    assert spec.kinds == {"python", "kafka", "table"}
    assert {k: v for k, v in spec.tags.items() if "kind" not in k} == {"layer": "raw", "domain": "commerce"}
    assert spec.metadata["dagster/table_name"] == "raw.commerce_events"
    assert {d.asset_key for d in spec.deps} == {AssetKey(["source", "kafka_commerce_events"])}
    assert ingest.op.tags["afluente/domain"] == "commerce"
    tables = source.tables
    assert tables.pipeline == "commerce_events"
    assert (tables.offsets, tables.batches) == (("raw", "kafka_offsets"), ("raw", "kafka_ingest_batches"))
    assert [c for c, _ in tables.message_columns][:3] == ["event_id", "event_type", "event_timestamp"]


def test_settings_are_read_when_needed(monkeypatch: pytest.MonkeyPatch) -> None:
    source = KafkaTopicSource.from_defs_yaml(COMMERCE_YAML)
    monkeypatch.setenv("COMMERCE_KAFKA_TOPIC", "elsewhere")
    assert source.read_topic() == "elsewhere"
    monkeypatch.delenv("COMMERCE_KAFKA_TOPIC")
    assert source.read_topic() == "commerce.events"


def test_run_config_targets_the_ingest_op() -> None:
    config = kafka_run_config("raw_orders", "t", [OffsetRange(1, 5, 9), OffsetRange(0, 0, 3)])
    assert config == {
        "ops": {
            "raw_orders": {
                "config": {
                    "topic": "t",
                    "ranges": [
                        {"partition": 0, "start_offset": 0, "end_offset": 3},
                        {"partition": 1, "start_offset": 5, "end_offset": 9},
                    ],
                }
            }
        }
    }


def test_a_minimal_declaration_gets_names_from_its_name_and_refresh_selects_downstream() -> None:
    source = KafkaTopicSource.from_attributes_dict(attributes=MINIMAL)
    defs = build_defs_for_component(component=source)
    assert {j.name for j in defs.jobs or []} == {"orders_kafka_ingest", "orders_kafka_ingest_and_refresh"}
    assert [s.name for s in defs.sensors or []] == ["orders_kafka_offsets_sensor"]
    refresh = next(j for j in defs.jobs or [] if j.name.endswith("_and_refresh"))
    assert isinstance(refresh.selection, AssetSelection)
    resources = {
        "kafka": KafkaResource(bootstrap_servers="x:1"),
        "warehouse": WarehouseResource(url="duckdb://"),
    }
    merged = Definitions.merge(defs, Definitions(resources=resources))
    assert merged.resolve_job_def("orders_kafka_ingest").asset_layer.executable_asset_keys == {
        AssetKey(["raw", "orders"]),
        AssetKey(["raw", "orders_dead_letter"]),
    }
    assert source.load_decoder()("[1]") == [1]  # json:loads resolved by dotted path


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"max_events_per_run": {"setting": "NOT_A_SETTING"}}, "not a registered setting"),
        ({"topic": {"setting": "ALSO_NOT_ONE"}}, "not a registered setting"),
    ],
)
def test_bad_declarations_are_refused_with_the_reason(change: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        KafkaTopicSource.from_attributes_dict(attributes={**MINIMAL, **change})


def test_table_names_must_be_qualified() -> None:
    source = KafkaTopicSource.from_attributes_dict(attributes={**MINIMAL, "raw_table": "orders"})
    with pytest.raises(ValueError, match="schema.table"):
        build_defs_for_component(component=source)


def test_yaml_of_another_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "defs.yaml"
    path.write_text("type: somewhere.Else\nattributes: {}\n")
    with pytest.raises(ValueError, match="not assets.sources.kafka_topic.KafkaTopicSource"):
        KafkaTopicSource.from_defs_yaml(path)
