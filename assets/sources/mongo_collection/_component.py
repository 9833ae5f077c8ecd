"""``MongoCollectionSource``: a declared MongoDB collection → raw + rejects tables, watermark, sensor.

A domain declares an instance in ``assets/defs/<domain>/<source>/defs.yaml``; its rules (the row
schema and the document validator) stay in Python in the domain folder and are named by dotted path
(``module:attribute``). Everything environment-dependent (collection, batch limits, lag, peek time
limit) is declared as the NAME of a registered setting and read at tick/run time, so changing a
variable needs no reload.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any

import pyarrow as pa
from dagster import AssetSelection, Definitions
from dagster.components import Component, ComponentLoadContext, Model, Resolvable
from pydantic import Field
from pymongo.collection import Collection

from assets.external_sources import source_spec
from assets.sources.declarations import callable_rule, component_from_defs_yaml
from assets.sources.mongo_collection._asset import (
    AssetDeclaration,
    build_ingest_asset,
    op_name_for,
    table_key,
)
from assets.sources.mongo_collection._ingest import IngestSpec, Validator
from assets.sources.mongo_collection._keyset import DEFAULT_CHANGE_FIELD
from assets.sources.mongo_collection._sensor import build_watermark_sensor
from assets.sources.mongo_collection._tables import SourceTables, TableName, ensure_tables
from resources.dotted import import_dotted
from resources.mongo import MongoResource
from resources.settings import setting, setting_as
from resources.warehouse import WarehouseResource


class MongoCollectionSource(Component, Resolvable, Model):
    """A MongoDB collection ingested in bounded, watermarked batches into a raw table and a rejects table."""

    name: str = Field(description="Source name: the sensor is <name>_mongo_watermark_sensor")
    domain: str = Field(description="Domain the runs are tagged with (afluente/domain)")
    collection_setting: str = Field(description="Setting naming the collection (read at tick/run time)")
    database_setting: str | None = Field(
        default=None, description="Setting naming the database; default: the mongo resource's database"
    )
    change_field: str = Field(
        default=DEFAULT_CHANGE_FIELD, description="BSON date field every writer sets on insert and update"
    )
    row_schema: str = Field(description="module:attribute of the Arrow schema of a valid row")
    validator: str = Field(
        description="module:attribute of the function turning documents into rows + rejects (domain rules)"
    )
    key_column: str = Field(description="Row column identifying a document (one row kept per document)")
    version_column: str = Field(description="Row column holding the change time of the version kept")
    raw_table: str = Field(description="schema.table of the valid rows (also the asset key)")
    rejects_table: str = Field(description="schema.table of the refused documents and why")
    watermark_table: str = Field(description="schema.table of the durable watermarks (may be shared)")
    description: str = Field(description="Description of the raw rows asset")
    rejects_description: str = Field(description="Description of the rejects asset")
    sensor_description: str | None = Field(default=None, description="Description of the sensor")
    group_name: str = Field(description="Asset group")
    owners: list[str] = Field(default_factory=list, description="Asset owners")
    tags: dict[str, str] = Field(default_factory=lambda: {"layer": "raw"}, description="Asset tags")
    pool: str | None = Field(default=None, description="Concurrency pool of the ingest runs")
    source_name: str = Field(description="External asset source/<source_name>: the collection in lineage")
    source_description: str = Field(description="Description of the external source asset")
    source_settings: list[str] = Field(description="Settings that decide where the collection is")
    before_ingest: str | None = Field(
        default=None,
        description="module:attribute of a function(warehouse) run before each ingest (e.g. a domain "
        "creating the tables of its other sources that its SQL models union with this one)",
    )
    max_batch_docs_setting: str = Field(description="Setting: documents one run reads at most")
    safety_lag_seconds_setting: str = Field(description="Setting: changes younger than this wait")
    peek_timeout_ms_setting: str = Field(description="Setting: server time limit of the sensor's peek")
    sensor_interval_seconds_setting: str = Field(
        description="Setting: minimum seconds between ticks (read when the code location loads)"
    )

    @classmethod
    def from_defs_yaml(cls, path: Path) -> MongoCollectionSource:
        """The instance a ``defs.yaml`` declares, for domain code that needs its tables."""
        return component_from_defs_yaml(cls, path)

    @cached_property
    def tables(self) -> SourceTables:
        schema = import_dotted(self.row_schema, "row_schema")
        if not isinstance(schema, pa.Schema):
            raise TypeError(f"row_schema {self.row_schema!r} is not a pyarrow.Schema")
        return SourceTables(
            raw=TableName.parse(self.raw_table),
            rejects=TableName.parse(self.rejects_table),
            watermarks=TableName.parse(self.watermark_table),
            row_schema=schema,
            key_column=self.key_column,
            version_column=self.version_column,
        )

    def ingest_spec(self) -> IngestSpec:
        validate: Validator = callable_rule(self.validator, "validator")
        if not callable(validate):
            raise TypeError(f"validator {self.validator!r} is not callable")
        before = callable_rule(self.before_ingest, "before_ingest") if self.before_ingest else None
        return IngestSpec(
            tables=self.tables, validate=validate, change_field=self.change_field, before_ingest=before
        )

    def ensure_tables(self, warehouse: WarehouseResource) -> None:
        """Create the raw, rejects and watermark tables when missing (one short transaction)."""
        ensure_tables(warehouse, self.tables)

    def collection(self, mongo: MongoResource) -> Collection[Any]:
        """The declared collection, names read from the settings now."""
        name = setting_as(self.collection_setting, str)
        if self.database_setting is None:
            return mongo.collection(name)
        return mongo.client()[setting_as(self.database_setting, str)][name]

    def _check_settings(self) -> None:
        for name in (
            self.collection_setting,
            self.database_setting,
            self.max_batch_docs_setting,
            self.safety_lag_seconds_setting,
            self.peek_timeout_ms_setting,
            self.sensor_interval_seconds_setting,
        ):
            if name is not None:
                try:
                    setting(name)
                except KeyError:
                    raise ValueError(f"{self.name}: {name!r} is not a registered setting") from None

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        """The ingest asset (rows + rejects, two checks) and the watermark sensor of this source."""
        self._check_settings()
        spec = self.ingest_spec()
        tables = spec.tables

        def max_docs() -> int:
            return setting_as(self.max_batch_docs_setting, int)

        def lag_seconds() -> float:
            return setting_as(self.safety_lag_seconds_setting, float)

        def peek_timeout_ms() -> int:
            return setting_as(self.peek_timeout_ms_setting, int)

        source = source_spec(
            self.source_name,
            kind="mongodb",
            domain=self.domain,
            owners=self.owners,
            description=self.source_description,
            settings=self.source_settings,
        )
        ingest = build_ingest_asset(
            AssetDeclaration(
                spec=spec,
                source=source.key,
                collection=self.collection,
                max_docs=max_docs,
                lag_seconds=lag_seconds,
                peek_timeout_ms=peek_timeout_ms,
                description=self.description,
                rejects_description=self.rejects_description,
                group_name=self.group_name,
                owners=self.owners,
                tags=self.tags,
                pool=self.pool,
            )
        )
        raw_key = table_key(tables.raw)
        sensor = build_watermark_sensor(
            name=f"{self.name}_mongo_watermark_sensor",
            target=AssetSelection.assets(raw_key, table_key(tables.rejects)),
            op_name=op_name_for(tables.raw),
            domain=self.domain,
            collection=self.collection,
            watermark_table=tables.watermarks,
            change_field=self.change_field,
            max_docs=max_docs,
            lag_seconds=lag_seconds,
            peek_timeout_ms=peek_timeout_ms,
            minimum_interval_seconds=setting_as(self.sensor_interval_seconds_setting, int),
            description=self.sensor_description
            or (
                f"New and updated documents in MongoDB (watermark in {tables.watermarks}) become one "
                f"bounded {raw_key.to_user_string()} run at a time."
            ),
        )
        return Definitions(assets=[source, ingest], sensors=[sensor])
