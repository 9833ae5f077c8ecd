"""Warehouse resource and IO manager on the embedded DuckDB and the real PostgreSQL server."""

from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from dagster import (
    AssetExecutionContext,
    AssetIn,
    DagsterInstance,
    StaticPartitionsDefinition,
    asset,
    materialize,
)

from io_managers.warehouse_io_manager import WarehouseIOManager
from resources.warehouse import WarehouseResource


def _rows(warehouse: WarehouseResource, sql: str) -> list[tuple]:
    with warehouse.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]


def test_write_modes_replace_append_partition(warehouse: WarehouseResource) -> None:
    data = pa.table(
        {
            "k": pa.array(["a", "b"]),
            "v": pa.array(["1.50", "2.25"]).cast(pa.decimal128(15, 2)),
            "note": pa.array(['has "quotes", commas', None]),
        }
    )
    assert warehouse.write_table(data, "stg", "t", mode="replace") == 2
    assert warehouse.write_table(data, "stg", "t", mode="replace") == 2
    assert _rows(warehouse, "SELECT k, v, note FROM stg.t ORDER BY k") == [
        ("a", Decimal("1.50"), 'has "quotes", commas'),
        ("b", Decimal("2.25"), None),
    ]
    warehouse.write_table(data, "stg", "t", mode="append")
    assert _rows(warehouse, "SELECT COUNT(*) FROM stg.t") == [(4,)]

    # Partition-scoped: re-writing a partition replaces exactly its rows, and new columns are added.
    p1 = pa.table({"part": ["p1"] * 3, "x": [1, 2, 3]})
    p2 = pa.table({"part": ["p2"] * 2, "x": [10, 20]})
    warehouse.write_table(p1, "raw", "parts", mode="partition", partition_column="part", partition_value="p1")
    warehouse.write_table(p2, "raw", "parts", mode="partition", partition_column="part", partition_value="p2")
    p1_again = pa.table({"part": ["p1"], "x": [7], "extra": ["new column"]})
    warehouse.write_table(
        p1_again, "raw", "parts", mode="partition", partition_column="part", partition_value="p1"
    )
    assert _rows(warehouse, "SELECT part, x, extra FROM raw.parts ORDER BY part, x") == [
        ("p1", 7, "new column"),
        ("p2", 10, None),
        ("p2", 20, None),
    ]


def test_empty_strings_and_nulls_survive_bulk_load(warehouse: WarehouseResource) -> None:
    data = pa.table({"s": pa.array(["", None, "x"]), "n": pa.array([1, None, 3], pa.int64())})
    warehouse.write_table(data, "stg", "nulls", mode="replace")
    got = _rows(warehouse, "SELECT s, n FROM stg.nulls ORDER BY n NULLS LAST")
    assert got == [("", 1), ("x", 3), (None, None)]


def test_multi_table_write_is_one_transaction(warehouse: WarehouseResource) -> None:
    from resources.bulk_write import write_arrow

    warehouse.write_table(pa.table({"x": [1]}), "stg", "first", mode="replace")
    with pytest.raises(RuntimeError), warehouse.begin() as conn:
        write_arrow(conn, pa.table({"x": [2, 3]}), "stg", "first", mode="append")
        raise RuntimeError("fail between two writes")
    assert _rows(warehouse, "SELECT COUNT(*) FROM stg.first") == [(1,)]


letters = StaticPartitionsDefinition(["a", "b"])


@asset(key_prefix=["mart"], partitions_def=letters, metadata={"afluente/partition_column": "letter"})
def letter_counts(context: AssetExecutionContext) -> pd.DataFrame:
    n = 3 if context.partition_key == "a" else 2
    return pd.DataFrame({"i": list(range(n)), "label": [f"{context.partition_key}{i}" for i in range(n)]})


@asset(key_prefix=["mart"], ins={"letter_counts": AssetIn(key=["mart", "letter_counts"])})
def letter_summary(letter_counts: pd.DataFrame) -> pd.DataFrame:
    return letter_counts.groupby("letter", as_index=False).agg(rows=("i", "count"))


def test_io_manager_round_trip_with_partitions(warehouse: WarehouseResource) -> None:
    resources = {"io_manager": WarehouseIOManager(warehouse=warehouse)}
    instance = DagsterInstance.ephemeral()
    for key in ("a", "b", "a"):  # "a" twice: partition-scoped writes replace, never duplicate
        result = materialize([letter_counts], partition_key=key, resources=resources, instance=instance)
        assert result.success
    mat = result.asset_materializations_for_node("mart__letter_counts")[0]
    assert mat.metadata["dagster/row_count"].value == 3
    assert [c.name for c in mat.metadata["dagster/column_schema"].schema.columns] == ["i", "label", "letter"]

    result = materialize(
        [letter_counts, letter_summary],
        selection=[letter_summary.key],
        resources=resources,
        instance=instance,
    )
    assert result.success
    assert _rows(warehouse, "SELECT letter, rows FROM mart.letter_summary ORDER BY letter") == [
        ("a", 3),
        ("b", 2),
    ]
