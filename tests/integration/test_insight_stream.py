"""Insight index sources stream out of DuckDB as Arrow batches without DuckDB's extra-copy warning."""

import warnings
from pathlib import Path

from assets.usage.insight_indices import stream_rows
from resources.warehouse import WarehouseResource, dispose_engines


def test_duckdb_rows_stream_in_batches_without_a_deprecation_warning(tmp_path: Path) -> None:
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'warehouse.duckdb'}")
    sql = "SELECT i AS n, DATE '2024-03-01' + CAST(i AS INTEGER) AS day FROM range(25) t(i)"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # before: "Arrow output on a DB-API result makes an extra copy"
        docs = list(stream_rows(warehouse, sql, batch_rows=10))
    assert [d["n"] for d in docs] == list(range(25))
    assert (docs[0]["day"], docs[-1]["day"]) == ("2024-03-01", "2024-03-25")
    dispose_engines()
