"""README "Add a source", done for real: a new Kafka topic source in a temporary project folder.

The project holds exactly the files the README lists (a ``defs.yaml`` declaring the topic, the
decoder, one staging SQL model with data tests) and no platform code. Its declarations are loaded
with ``load_from_defs_folder`` like the platform's own; orders produced to a real Kafka topic land
exactly once (a second tick requests nothing, a replayed range changes nothing), a malformed
message becomes a dead letter with its reason, and the staging model builds with passing data
tests. Both warehouses.
"""

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    SensorResult,
    build_sensor_context,
    materialize,
)
from dagster.components import load_from_defs_folder

from dbt_like_sql import build_sql_model_assets, load_project
from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource

PROJECT_FILES = {
    "pyproject.toml": """
        [tool.dg]
        directory_type = "project"

        [tool.dg.project]
        root_module = "{package}"
        defs_module = "{package}.defs"
    """,
    "{package}/__init__.py": "",
    "{package}/defs/__init__.py": "",
    "{package}/decode.py": '''
        """Orders on the shop.orders topic: {"order_id": str, "amount": number >= 0}."""

        import json
        from dataclasses import dataclass

        import numpy as np
        import pyarrow as pa


        @dataclass(frozen=True)
        class DecodedOrders:
            events: pa.Table
            rows: np.ndarray
            dead_rows: np.ndarray
            dead_reasons: list[str]


        def decode_orders(values, max_message_bytes):
            ids, amounts, rows, dead_rows, reasons = [], [], [], [], []
            for index, value in enumerate(values):
                try:
                    if not value or len(value) > max_message_bytes:
                        raise ValueError("empty or oversized payload")
                    order = json.loads(value)
                    amount = order.get("amount") if isinstance(order, dict) else None
                    if not isinstance(order.get("order_id"), str) or not isinstance(amount, (int, float)):
                        raise ValueError("order_id (text) and amount (number) are required")
                except (ValueError, AttributeError) as exc:
                    dead_rows.append(index)
                    reasons.append(f"invalid_order: {exc}")
                    continue
                ids.append(order["order_id"])
                amounts.append(float(amount))
                rows.append(index)
            events = pa.table(
                {"order_id": pa.array(ids, pa.string()), "amount": pa.array(amounts, pa.float64())}
            )
            return DecodedOrders(events, np.array(rows, np.int64), np.array(dead_rows, np.int64), reasons)
    ''',
    "{package}/defs/orders/defs.yaml": """
        type: assets.sources.kafka_topic.KafkaTopicSource
        attributes:
          name: shop_orders
          domain: shop
          owners: ["team:shop"]
          topic: {topic}
          decoder: {package}.decode:decode_orders
          raw_table: raw.shop_orders
          columns:
            order_id: TEXT
            amount: DOUBLE PRECISION
          id_column: order_id
          dead_letter_table: raw.shop_orders_dead_letter
          max_events_per_run: 50
    """,
    "{package}/models/shop/orders.sql": """
        /* ---
        schema: stg
        name: shop_orders
        materialized: table
        description: Orders, one row per order_id.
        owners: ["team:shop"]
        tags: {layer: stg, domain: shop}
        columns:
          order_id: {description: Order id, tests: [not_null, unique]}
          amount: {description: Order amount, tests: [not_null, {range: {min: 0}}]}
        --- */
        SELECT order_id, CAST(amount AS NUMERIC(18, 2)) AS amount
        FROM raw.shop_orders
    """,
}


@pytest.fixture
def project(tmp_path: Path, kafka_topic: str, request: pytest.FixtureRequest) -> Iterator[tuple[Path, str]]:
    """The temporary project folder, importable under a package name of its own."""
    package = f"shop_{abs(hash(request.node.nodeid)) % 10**8}"
    root = tmp_path / "project"
    for name, text in PROJECT_FILES.items():
        path = root / name.format(package=package)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            textwrap.dedent(text).lstrip().replace("{package}", package).replace("{topic}", kafka_topic)
        )
    sys.path.insert(0, str(root))
    try:
        yield root, package
    finally:
        sys.path.remove(str(root))
        for module in [m for m in sys.modules if m == package or m.startswith(f"{package}.")]:
            del sys.modules[module]


def test_a_new_topic_is_a_declaration_a_decoder_and_a_model(
    project: tuple[Path, str],
    kafka: KafkaResource,
    kafka_topic: str,
    warehouse: WarehouseResource,
    tmp_path: Path,
) -> None:
    root, package = project
    orders = [{"order_id": f"o{i}", "amount": i * 1.5} for i in range(120)]
    producer = kafka.producer()
    for i, order in enumerate(orders):
        producer.send(kafka_topic, json.dumps(order).encode(), partition=i % 3)
    producer.send(kafka_topic, b'{"order_id": 7}', partition=1)  # amount missing, id not text
    producer.flush()
    producer.close()

    declared = load_from_defs_folder(path_within_project=root)
    models = build_sql_model_assets(load_project(root / package / "models"))
    resources = {"warehouse": warehouse, "kafka": kafka}
    defs = Definitions.merge(declared, Definitions(assets=models, resources=resources))
    sensor = defs.resolve_sensor_def("shop_orders_kafka_offsets_sensor")
    ingest = defs.resolve_job_def("shop_orders_kafka_ingest")
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))

    def tick() -> SensorResult:
        result = sensor(build_sensor_context(instance=instance, resources=resources))
        assert isinstance(result, SensorResult), result
        return result

    requests = tick().run_requests or []
    assert sum(len(r.tags["afluente/kafka_ranges"].split(",")) for r in requests) >= 3
    for request in requests:
        run = ingest.execute_in_process(run_config=request.run_config, instance=instance, tags=request.tags)
        assert run.success
    assert not tick().run_requests  # everything is in the ledger
    # A replayed range changes nothing.
    replay = ingest.execute_in_process(run_config=requests[0].run_config, instance=instance)
    assert replay.success

    stored = warehouse.read_frame("SELECT order_id, amount FROM raw.shop_orders ORDER BY order_id")
    assert sorted(stored["order_id"]) == sorted(o["order_id"] for o in orders)
    assert dict(zip(stored["order_id"], stored["amount"], strict=True)) == {
        o["order_id"]: o["amount"] for o in orders
    }
    dead = warehouse.read_frame(
        "SELECT reason, raw_content, source_partition FROM raw.shop_orders_dead_letter"
    )
    assert dead.to_dict("records") == [
        {
            "reason": "invalid_order: order_id (text) and amount (number) are required",
            "raw_content": '{"order_id": 7}',
            "source_partition": 1,
        }
    ]
    ledger = warehouse.read_frame(
        "SELECT SUM(next_offset - start_offset) AS n FROM raw.kafka_offsets WHERE pipeline = 'shop_orders'"
    )
    assert int(ledger["n"][0]) == len(orders) + 1

    built = materialize(models, instance=instance, resources=resources)
    assert built.success
    checks = built.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert {c.asset_key for c in checks} == {AssetKey(["stg", "shop_orders"])}
    total = warehouse.read_frame("SELECT COUNT(*) AS n, SUM(amount) AS s FROM stg.shop_orders")
    assert int(total["n"][0]) == 120 and float(total["s"][0]) == sum(o["amount"] for o in orders)
