"""``LandingFileFeed``: a folder of the landing zone declared as a source (``defs.yaml``).

One instance gives the feed's raw multi-asset (valid rows + rejects, one dynamic partition per file
content, the ``file_rows_reconciled`` check) and its file-drop sensor. The domain supplies only
rules, by dotted path: the reader, and optional hooks around the load.
"""

from __future__ import annotations

from dagster import AssetKey, AssetSelection, Definitions, DynamicPartitionsDefinition
from dagster.components import Component, ComponentLoadContext, Model, Resolvable
from pydantic import Field

from assets.external_sources import landing_source_spec
from assets.sources.declarations import callable_rule
from assets.sources.landing_feed._asset import AssetShape, build_landing_file_asset
from assets.sources.landing_feed._ingest import LandingTarget
from assets.sources.landing_feed._sensor import build_file_drop_sensor


def _table(name: str, field_name: str) -> tuple[str, str]:
    parts = name.split(".")
    if len(parts) != 2 or not all(parts):
        raise ValueError(f"{field_name}: expected 'schema.table', got {name!r}")
    return parts[0], parts[1]


class FileDropSensorDeclaration(Model):
    """The feed's file-drop sensor."""

    name: str = Field(description="Sensor name, e.g. exports_file_drop_sensor.")
    description: str = Field(description="What the sensor does, shown in the UI.")


class FeedAssetKeys(Model):
    """Asset keys of the two tables when they are not ``<schema>/<table>`` (tables owned elsewhere)."""

    rows: str = Field(description="Key of the valid-rows asset, slash-separated (raw/commerce_event_files).")
    rejects: str = Field(description="Key of the rejects asset, slash-separated.")


class LandingFileFeed(Component, Resolvable, Model):
    """Files dropped in ``<AFLUENTE_LANDING_DIR>/<folder>/`` loaded into a raw table, exactly once each.

    Content-addressed dynamic partitions, rows + rejects + the file's ledger entry in one
    transaction, unreadable files quarantined with a reason, duplicates set aside; the landing
    safety rules of :mod:`resources.landing_safety` apply to every feed.
    """

    name: str = Field(description="Name of the raw multi-asset (its op), e.g. raw_exportacao.")
    domain: str = Field(description="Feed name: ledger domain, asset and run tag, marker-feed setting.")
    folder: str | None = Field(default=None, description="Folder under the landing root; default: domain.")
    patterns: list[str] = Field(description="File name patterns (fnmatch, lower case) the sensor picks up.")
    reader: str = Field(
        description="module:function taking LandedContent and returning ParsedFile "
        "(assets.sources.landing_feed.contract)."
    )
    rows_table: str = Field(description="schema.table of the valid rows.")
    rejects_table: str = Field(description="schema.table of the rejected rows (line, reason, raw content).")
    ledger_table: str = Field(default="raw.landing_files", description="schema.table of the file ledger.")
    column_types: dict[str, str] = Field(
        default_factory=dict, description="SQL types forced for columns of the rows table."
    )
    asset_keys: FeedAssetKeys | None = Field(
        default=None, description="Asset keys of the two tables; default: <schema>/<table> of each."
    )
    partitions: str = Field(description="Name of the dynamic partitions (one per file content).")
    sensor: FileDropSensorDeclaration = Field(description="The feed's file-drop sensor.")
    formats: str = Field(
        description="What the folder holds, for the source asset's description (e.g. 'JSONL clickstream')."
    )
    group: str = Field(description="Asset group.")
    owners: list[str] = Field(default_factory=list, description="Asset owners (team:...).")
    kinds: list[str] = Field(default_factory=list, description="Asset kinds shown in the UI.")
    rows_description: str = Field(description="Description of the valid-rows asset.")
    rejects_description: str = Field(description="Description of the rejects asset.")
    before_ingest: str | None = Field(
        default=None, description="module:function(warehouse) run before each load (prepares tables)."
    )
    after_ingest: str | None = Field(
        default=None,
        description="module:function(context, outcome) run after each load (e.g. logs shared-table writes).",
    )

    def build_defs(self, context: ComponentLoadContext) -> Definitions:
        """The landing folder's source asset, the raw multi-asset and the file-drop sensor of this feed."""
        source = landing_source_spec(self.domain, owners=self.owners, formats=self.formats)
        folder = self.folder or self.domain
        target = LandingTarget(
            domain=self.domain,
            folder=folder,
            rows_table=_table(self.rows_table, "rows_table"),
            rejects_table=_table(self.rejects_table, "rejects_table"),
            ledger_table=_table(self.ledger_table, "ledger_table"),
            column_types=dict(self.column_types),
        )
        if self.asset_keys is not None:
            keys = (
                AssetKey.from_user_string(self.asset_keys.rows),
                AssetKey.from_user_string(self.asset_keys.rejects),
            )
        else:
            keys = (AssetKey(list(target.rows_table)), AssetKey(list(target.rejects_table)))
        partitions_def = DynamicPartitionsDefinition(name=self.partitions)
        asset = build_landing_file_asset(
            shape=AssetShape(
                name=self.name,
                keys=keys,
                group_name=self.group,
                owners=self.owners,
                kinds=set(self.kinds),
                descriptions=(self.rows_description, self.rejects_description),
                source=source.key,
            ),
            target=target,
            reader=callable_rule(self.reader, "reader"),
            partitions_def=partitions_def,
            before_ingest=callable_rule(self.before_ingest, "before_ingest") if self.before_ingest else None,
            after_ingest=callable_rule(self.after_ingest, "after_ingest") if self.after_ingest else None,
        )
        sensor = build_file_drop_sensor(
            name=self.sensor.name,
            domain=self.domain,
            folder=folder,
            patterns=tuple(self.patterns),
            partitions_def=partitions_def,
            target=AssetSelection.assets(*keys),
            description=self.sensor.description,
        )
        return Definitions(assets=[source, asset], sensors=[sensor])
