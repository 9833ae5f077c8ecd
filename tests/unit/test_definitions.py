"""The code location loads and follows the project's conventions."""

from dagster import AssetKey, Definitions

from orchestration.definitions import defs


def test_definitions_load() -> None:
    Definitions.validate_loadable(defs)


def test_every_asset_has_group_owner_kind_and_table_name() -> None:
    specs = list(defs.resolve_all_asset_specs())
    assert specs
    for spec in specs:
        name = spec.key.to_user_string()
        assert spec.group_name and spec.group_name != "default", name
        assert spec.owners, name
        assert spec.kinds, name
        assert spec.metadata.get("dagster/table_name"), name
        assert len(spec.key.path) == 2 and spec.key.path[0] in {"raw", "stg", "mart"}, name


def test_export_lineage() -> None:
    graph = {spec.key: {dep.asset_key for dep in spec.deps} for spec in defs.resolve_all_asset_specs()}
    assert graph[AssetKey(["stg", "exportacao"])] == {AssetKey(["raw", "exportacao"])}
    for report in ("mv_resumo_pais", "mv_resumo_geral", "mv_resumo_setor"):
        assert graph[AssetKey(["mart", report])] == {AssetKey(["stg", "exportacao"])}


def test_sensors_and_schedules_are_on_by_default() -> None:
    assert {s.name for s in defs.sensors} >= {"export_file_drop_sensor", "automation_sensor"}
    assert all(str(s.default_status).endswith("RUNNING") for s in defs.sensors)
    assert all(str(s.default_status).endswith("RUNNING") for s in defs.schedules)
