"""``search/usage_*``: the insight indices, rebuilt as new versions behind their aliases.

Each asset streams its source table out of the warehouse (Arrow record batches on DuckDB, a
server-side cursor on PostgreSQL) into a versioned build (``resources.search_indices``), so a
million prompts never sit in memory at once and readers keep the previous version until the switch.
Where no search engine is configured (``SEARCH_ENABLED=false``) automation leaves them alone: a build
could only fail.
"""

import datetime as dt
import decimal
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    MaterializeResult,
    asset,
)

from assets.automation import after_upstream_updates
from resources.bulk_write import driver_connection, quote_ident
from resources.error_diagnosis import NETWORK_RETRY_POLICY, fail_fast_on_permanent_errors
from resources.search import SearchResource
from resources.search_indices import build_versioned_index
from resources.settings import SearchSettings, UsageSettings
from resources.usage_index_specs import INSIGHT_INDICES, InsightIndex
from resources.warehouse import WarehouseResource

SEARCH_PREFIX = "search"
_READ_BATCH = 5_000


def _json_ready_batch(batch: pa.RecordBatch) -> list[dict[str, Any]]:
    """Arrow columns → JSON-ready values in bulk: ISO timestamps and days, floats for decimals."""
    arrays, names = [], []
    for name, column in zip(batch.schema.names, batch.columns, strict=True):
        kind = column.type
        if pa.types.is_timestamp(kind):
            column = pc.strftime(column, format="%Y-%m-%dT%H:%M:%S")
        elif pa.types.is_date(kind):
            column = column.cast(pa.string())
        elif pa.types.is_decimal(kind):
            column = column.cast(pa.float64())
        arrays.append(column)
        names.append(name)
    return pa.RecordBatch.from_arrays(arrays, names=names).to_pylist()


def _json_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def stream_rows(
    warehouse: WarehouseResource, sql: str, batch_rows: int = _READ_BATCH
) -> Iterator[dict[str, Any]]:
    """Rows of a (trusted, constant) query as JSON-ready dicts, streamed in batches."""
    with warehouse.connect() as conn:
        if conn.dialect.name == "duckdb":
            # A relation streams Arrow batches directly; a DB-API result would copy every row first.
            reader = driver_connection(conn).sql(sql).to_arrow_reader(batch_rows)
            for batch in reader:
                yield from _json_ready_batch(batch)
            return
        result = conn.execution_options(stream_results=True, yield_per=batch_rows).execute(sa.text(sql))
        names = list(result.keys())
        unknown = set(range(len(names)))  # columns whose type has not been seen yet (all NULL so far)
        convert: list[int] = []  # columns holding dates, timestamps or decimals
        for partition in result.partitions():
            for row in partition:
                if unknown:
                    for i in [i for i in unknown if row[i] is not None]:
                        unknown.discard(i)
                        if _json_value(row[i]) is not row[i]:
                            convert.append(i)
                doc = dict(zip(names, row, strict=True))
                for i in convert:
                    if row[i] is not None:
                        doc[names[i]] = _json_value(row[i])
                yield doc


def source_row_count(warehouse: WarehouseResource, index: InsightIndex) -> int:
    with warehouse.connect() as conn:
        table = quote_ident(conn, *index.source_table)
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {table}")).scalar() or 0)


def index_asset_key(index: InsightIndex) -> AssetKey:
    return AssetKey([SEARCH_PREFIX, index.name])


def rebuild_insight_index(
    warehouse: WarehouseResource, search: SearchResource, index: InsightIndex, log: Any = None
) -> dict[str, Any]:
    """Build a new version of ``index`` from its source table and switch its alias; return metadata."""
    settings = UsageSettings.current()
    build = build_versioned_index(
        search,
        index.definition(),
        stream_rows(warehouse, index.select_sql),
        keep=settings.index_keep_versions,
        chunk_size=settings.index_bulk_chunk_docs,
        thread_count=settings.index_bulk_threads,
        log=log,
    )
    return build.metadata()


def build_insight_index_asset(index: InsightIndex) -> AssetsDefinition:
    """The asset of one insight index, with a check that the index holds every source row."""
    key = index_asset_key(index)
    source_key = AssetKey(list(index.source_table))
    check_name = "index_matches_source"
    enabled = SearchSettings.current().enabled
    absent = "" if enabled else " Not built here: no search engine is configured (SEARCH_ENABLED=false)."

    @asset(
        key=key,
        deps=[source_key],
        group_name="usage",
        owners=["team:usage"],
        kinds={"opensearch", "python"},
        tags={"layer": "search"},
        description=(
            f"Search index alias <USAGE_INDEX_PREFIX>{index.name} over "
            f"{'.'.join(index.source_table)}: rebuilt as a new version, alias switched atomically.{absent}"
        ),
        metadata={"index_name": index.name, "source_table": ".".join(index.source_table)},
        automation_condition=after_upstream_updates() if enabled else None,
        check_specs=[
            AssetCheckSpec(
                check_name,
                asset=key,
                description=f"The alias serves as many documents as {index.source_table}",
            )
        ],
        pool="usage_search_index",
        retry_policy=NETWORK_RETRY_POLICY,
    )
    @fail_fast_on_permanent_errors
    def _index_asset(
        context: AssetExecutionContext, warehouse: WarehouseResource, search: SearchResource
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        metadata = rebuild_insight_index(warehouse, search, index, log=context.log)
        yield MaterializeResult(
            asset_key=key, metadata={**metadata, "dagster/row_count": metadata["documents"]}
        )
        expected = source_row_count(warehouse, index)
        served = search.count(index.alias())
        yield AssetCheckResult(
            asset_key=key,
            check_name=check_name,
            passed=served == expected,
            severity=AssetCheckSeverity.ERROR,
            metadata={"source_rows": expected, "documents_served": served},
        )

    return _index_asset


insight_index_assets: list[AssetsDefinition] = [build_insight_index_asset(index) for index in INSIGHT_INDICES]
INSIGHT_INDEX_KEYS: list[AssetKey] = [index_asset_key(index) for index in INSIGHT_INDICES]
