"""The SQL project as a declared component: ``assets/defs/sql_models/defs.yaml`` builds exactly what
``build_sql_model_assets(load_project(), ...)`` built in orchestration/definitions.py before."""

from pathlib import Path

import pytest
from dagster import AssetsDefinition, AutomationCondition

from assets.automation import for_sql_model
from dbt_like_sql import SqlProjectComponent, build_sql_model_assets, load_project
from orchestration.declared import PROJECT_ROOT, declared
from resources.error_diagnosis import NETWORK_RETRY_POLICY


def _shape(assets: list[AssetsDefinition]) -> dict[str, tuple]:
    """What a model asset is, by asset key: op, group, pool, retries, tags, checks, automation."""
    shape: dict[str, tuple] = {}
    for item in assets:
        (key,) = item.keys
        spec = next(iter(item.specs))
        shape[key.to_user_string()] = (
            item.node_def.name,
            spec.group_name,
            item.op.pool,
            item.op.retry_policy,
            dict(item.op.tags),
            sorted(check.name for check in item.check_specs),
            spec.automation_condition,
            spec.code_version,
            sorted(dep.asset_key.to_user_string() for dep in spec.deps),
        )
    return shape


def test_the_declaration_builds_the_assets_the_python_wiring_built() -> None:
    declared_assets = [a for a in declared("sql_models").assets or () if isinstance(a, AssetsDefinition)]
    before = build_sql_model_assets(
        load_project(), automation_condition_for=for_sql_model, retry_policy=NETWORK_RETRY_POLICY
    )
    assert len(declared_assets) == len(before) > 20
    assert _shape(declared_assets) == _shape(before)
    shape = _shape(declared_assets)
    labels = {key: value[6].get_label() if value[6] else None for key, value in shape.items()}
    assert "after_upstream_updates" in labels.values()  # eager headers use the platform's rule
    assert all(value[3] == NETWORK_RETRY_POLICY for value in shape.values())


def test_the_code_location_holds_the_declared_models_once() -> None:
    from orchestration.definitions import defs, sql_model_assets

    graph = defs.resolve_asset_graph()
    keys = [key for item in sql_model_assets for key in item.keys]
    assert len(keys) == len(set(keys)) == len(load_project())
    assert all(graph.has(key) for key in keys)


def test_groups_select_models_and_an_unknown_group_is_refused() -> None:
    component = SqlProjectComponent.from_attributes_dict(attributes={"groups": ["exports"]})
    assets = component.build_assets(PROJECT_ROOT)
    groups = {spec.group_name for item in assets for spec in item.specs}
    assert groups == {"exports"} and len(assets) == sum(1 for m in load_project() if m.group == "exports")
    # Without a rule nothing refreshes on its own; without retries a network error fails the step.
    assert all(spec.automation_condition is None for item in assets for spec in item.specs)
    unknown = SqlProjectComponent.from_attributes_dict(attributes={"groups": ["exports", "nope"]})
    with pytest.raises(ValueError, match=r"no model in .* belongs to \['nope'\]"):
        unknown.build_assets(PROJECT_ROOT)


def test_attributes_change_retries_folder_and_automation(tmp_path: Path) -> None:
    models = tmp_path / "models" / "demo"
    models.mkdir(parents=True)
    (models / "numbers.sql").write_text(
        "/* ---\nschema: stg\nautomation: {cron: '0 * * * *'}\n--- */\nSELECT 1 AS n\n"
    )
    component = SqlProjectComponent.from_attributes_dict(
        attributes={
            "models_dir": str(tmp_path / "models"),
            "automation": "assets.automation:for_sql_model",
            "retry_on_network_errors": False,
        }
    )
    (item,) = component.build_assets(Path("/nonexistent"))  # an absolute models_dir ignores the root
    (spec,) = item.specs
    assert spec.key.to_user_string() == "stg/numbers" and spec.group_name == "demo"
    assert item.op.retry_policy is None
    assert spec.automation_condition == AutomationCondition.on_cron("0 * * * *", "UTC")


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("assets.automation.for_sql_model", "must be written package.module:attribute"),
        ("assets.automation:nope", "has no attribute 'nope'"),
        ("assets.automation:__doc__", "is not a function"),
    ],
)
def test_a_bad_automation_reference_is_a_clear_error(reference: str, message: str) -> None:
    component = SqlProjectComponent.from_attributes_dict(attributes={"automation": reference})
    with pytest.raises(ValueError, match=message):
        component.build_assets(PROJECT_ROOT)
