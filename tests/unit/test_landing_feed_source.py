"""The landing-file feed component: each declaration (YAML) builds what the hand-written feeds did."""

import os
import time
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetsDefinition,
    AssetSpec,
    SensorDefinition,
    SensorResult,
    build_sensor_context,
    instance_for_test,
)
from dagster.components import build_defs_for_component

from assets.sources.landing_feed import LandingFileFeed
from orchestration.declared import DEFS_ROOT, declared
from resources.landing_zone import LandingZoneResource, digest_prefixed, original_name

# What the three hand-written feeds defined before they became declarations.
FEEDS = {
    "exports": {
        "op": "raw_exportacao",
        "keys": ("raw/exportacao", "raw/exportacao_rejects"),
        "tables": ("raw.exportacao", "raw.exportacao_rejects"),
        "partitions": "export_files",
        "sensor": "export_file_drop_sensor",
        "kinds": {"python", "csv", "xlsx", "table"},
        "owners": ["team:exports"],
    },
    "commerce": {
        "op": "raw_commerce_event_files",
        "keys": ("raw/commerce_event_files", "raw/commerce_event_file_rejects"),
        "tables": ("raw.commerce_events", "raw.commerce_events_dead_letter"),
        "partitions": "commerce_files",
        "sensor": "commerce_file_drop_sensor",
        "kinds": {"python", "json", "table"},
        "owners": ["team:commerce"],
    },
    "usage": {
        "op": "raw_usage_event_files",
        "keys": ("raw/usage_event_files", "raw/usage_event_files_rejects"),
        "tables": ("raw.usage_event_files", "raw.usage_event_files_rejects"),
        "partitions": "usage_files",
        "sensor": "usage_file_drop_sensor",
        "kinds": {"python", "json", "table"},
        "owners": ["team:usage"],
    },
}


@pytest.mark.parametrize("domain", sorted(FEEDS))
def test_each_declaration_builds_the_feed_it_replaces(domain: str) -> None:
    want = FEEDS[domain]
    defs = declared(f"{domain}/landed_files")
    (asset,) = [a for a in defs.assets or () if isinstance(a, AssetsDefinition)]
    (source,) = [a for a in defs.assets or () if isinstance(a, AssetSpec)]
    (sensor,) = list(defs.sensors or ())
    assert isinstance(sensor, SensorDefinition)
    assert asset.node_def.name == want["op"]
    assert asset.partitions_def is not None and asset.partitions_def.name == want["partitions"]
    specs = {spec.key.to_user_string(): spec for spec in asset.specs}
    assert tuple(specs) == want["keys"]
    for spec, table in zip(specs.values(), want["tables"], strict=True):
        assert spec.metadata["dagster/table_name"] == table
        assert {"layer": "raw", "domain": domain}.items() <= spec.tags.items()
        assert spec.kinds == want["kinds"] and list(spec.owners) == want["owners"]
        assert spec.group_name == domain
        assert {dep.asset_key for dep in spec.deps} == {source.key}
    assert source.key.to_user_string() == f"source/landing_{domain}" and source.kinds == {"file"}
    assert [c.name for c in asset.check_specs] == ["file_rows_reconciled"]
    assert sensor.name == want["sensor"]
    assert sensor.default_status.value == "RUNNING"


def _exports_attributes() -> dict:
    return yaml.safe_load((DEFS_ROOT / "exports" / "landed_files" / "defs.yaml").read_text())["attributes"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        (
            "reader",
            "assets.exports.raw_exportacao.read_export_landing_file",
            "must be written package.module:attribute",
        ),
        ("reader", "assets.exports.raw_exportacao:EXPORTS_DOMAIN", "is not a callable"),
        ("rows_table", "exportacao", "expected 'schema.table'"),
    ],
)
def test_a_bad_declaration_fails_at_load_and_names_its_field(field: str, value: str, message: str) -> None:
    feed = LandingFileFeed.from_attributes_dict(attributes={**_exports_attributes(), field: value})
    with pytest.raises(ValueError, match=message) as error:
        build_defs_for_component(feed)
    assert str(error.value).startswith(f"{field}:")


def test_a_feed_reads_its_declared_folder_and_tags_runs_with_its_domain(tmp_path: Path) -> None:
    feed = LandingFileFeed.from_attributes_dict(
        attributes={**_exports_attributes(), "folder": "exports_v2", "partitions": "export_v2_files"}
    )
    (sensor,) = list(build_defs_for_component(feed).sensors or ())
    for folder in ("exports", "exports_v2"):
        path = tmp_path / folder / f"{folder}.csv"
        path.parent.mkdir()
        path.write_text("ano;mes\n2024;1\n")
        os.utime(path, (time.time() - 600, time.time() - 600))
    with (
        instance_for_test() as instance,
        build_sensor_context(
            instance=instance, resources={"landing_zone": LandingZoneResource(root=str(tmp_path))}
        ) as ctx,
    ):
        result = sensor(ctx)
    assert isinstance(result, SensorResult)
    (request,) = result.run_requests or []
    assert request.partition_key.startswith("exports_v2.csv__")
    assert request.tags["afluente/domain"] == "exports"
    assert request.tags["afluente/landing_file"] == str(tmp_path / "exports_v2" / "exports_v2.csv")
    (added,) = result.dynamic_partitions_requests or []
    assert added.partitions_def_name == "export_v2_files"


def test_archived_names_carry_the_digest_prefix_and_give_back_the_dropped_name(tmp_path: Path) -> None:
    digest = "0123456789abcdef" * 4
    name = digest_prefixed(digest, "jan-2024.csv")
    assert name == "0123456789ab-jan-2024.csv"
    assert original_name(tmp_path / "_archive" / name) == "jan-2024.csv"
    assert original_name(tmp_path / "_quarantine" / name) == "jan-2024.csv"
    assert original_name(tmp_path / name) == name  # not moved: the name is the dropped one
