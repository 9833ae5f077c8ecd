"""IO manager storing asset DataFrames as warehouse tables and loading them back.

Table = asset key ``[schema, table]`` (or ``dagster/table_name`` metadata). Write mode comes from
the asset's definition metadata ``afluente/write_mode``: ``replace`` (default), ``append``; a
partitioned asset always writes partition-scoped, replacing the rows of its partition key(s) in
the column named by ``afluente/partition_column`` (default ``partition_key``, added when absent).
"""

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import sqlalchemy as sa
from dagster import (
    ConfigurableIOManager,
    InputContext,
    OutputContext,
    ResourceDependency,
    TableColumn,
    TableSchema,
)

from resources.bulk_write import quote_ident, sql_type, to_arrow
from resources.warehouse import WarehouseResource

if TYPE_CHECKING:  # imported where a DataFrame is built (see resources.bulk_write)
    import pandas as pd

WRITE_MODE_KEY = "afluente/write_mode"
PARTITION_COLUMN_KEY = "afluente/partition_column"
DEFAULT_PARTITION_COLUMN = "partition_key"


def table_schema_of(table: pa.Table, dialect: str) -> TableSchema:
    """Dagster column schema metadata for an Arrow table."""
    return TableSchema(
        columns=[TableColumn(name=f.name, type=sql_type(f.type, dialect)) for f in table.schema]
    )


class WarehouseIOManager(ConfigurableIOManager):
    """DataFrames in and out of the warehouse, one table per asset."""

    warehouse: ResourceDependency[WarehouseResource]
    default_schema: str = "mart"

    def _table_of(self, key_path: Sequence[str], metadata: Mapping[str, Any] | None) -> tuple[str, str]:
        name = (metadata or {}).get("dagster/table_name")
        if isinstance(name, str) and "." in name:
            schema, table = name.split(".", 1)
            return schema, table
        if len(key_path) >= 2:
            return key_path[-2], key_path[-1]
        return self.default_schema, key_path[-1]

    def handle_output(self, context: OutputContext, obj: "pd.DataFrame | pa.Table | None") -> None:
        if obj is None:
            return
        metadata = dict(context.definition_metadata or {})
        schema, table = self._table_of(context.asset_key.path, metadata)
        arrow = to_arrow(obj)
        kwargs: dict[str, Any] = {"mode": metadata.get(WRITE_MODE_KEY, "replace")}
        if context.has_asset_partitions:
            column = metadata.get(PARTITION_COLUMN_KEY, DEFAULT_PARTITION_COLUMN)
            keys = list(context.asset_partition_keys)
            if column not in arrow.column_names:
                if len(keys) != 1:
                    raise ValueError(
                        f"{context.asset_key.to_user_string()}: writing {len(keys)} partitions at once "
                        f"needs a {column!r} column saying which rows belong to which partition"
                    )
                arrow = arrow.append_column(column, pa.repeat(pa.scalar(keys[0]), arrow.num_rows))
            kwargs.update(mode="partition", partition_column=column, partition_value=keys)
        rows = self.warehouse.write_table(arrow, schema, table, **kwargs)
        context.add_output_metadata(
            {
                "dagster/row_count": rows,
                "dagster/table_name": f"{schema}.{table}",
                "dagster/column_schema": table_schema_of(arrow, self.warehouse.dialect),
                "write_mode": kwargs["mode"],
            }
        )

    def load_input(self, context: InputContext) -> "pd.DataFrame":
        import pandas as pd

        upstream = context.upstream_output
        metadata = dict(upstream.definition_metadata or {}) if upstream else {}
        schema, table = self._table_of(context.asset_key.path, metadata)
        with self.warehouse.connect() as conn:
            query = f"SELECT * FROM {quote_ident(conn, schema, table)}"
            params: dict[str, Any] = {}
            statement = sa.text(query)
            if context.has_asset_partitions:
                column = metadata.get(PARTITION_COLUMN_KEY, DEFAULT_PARTITION_COLUMN)
                statement = sa.text(f"{query} WHERE {quote_ident(conn, column)} IN :keys").bindparams(
                    sa.bindparam("keys", expanding=True)
                )
                params["keys"] = list(context.asset_partition_keys)
            result = conn.execute(statement, params)
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))
