"""dbt-like SQL models as Dagster assets.

Models live in ``dbt_like_sql/models/<domain>/<name>.sql``: a YAML config header in a leading
``/* --- ... --- */`` comment, then one PostgreSQL-dialect SELECT. :func:`load_project` parses and
validates them (dependencies come from the SQL itself); :func:`build_sql_model_assets` turns each
into a Dagster asset whose declared data tests are asset checks. :class:`SqlProjectComponent` is the
public entry point of the platform: a ``defs.yaml`` declares the project (``assets/defs/sql_models``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dbt_like_sql.assets import (
        SqlModelRunConfig,
        build_sql_model_asset,
        build_sql_model_assets,
        declared_automation_condition,
    )
    from dbt_like_sql.component import SqlProjectComponent
    from dbt_like_sql.data_tests import TestOutcome, run_data_tests
    from dbt_like_sql.materialize import MaterializationOutcome, materialize_model
    from dbt_like_sql.project import (
        DEFAULT_MODELS_DIR,
        MATERIALIZATIONS,
        Automation,
        ColumnConfig,
        DataTest,
        SqlModel,
        SqlProject,
        SqlProjectError,
        load_project,
        parse_model,
    )

# Exported name -> submodule. Loaded on first use (PEP 562), so ``dbt_like_sql.catalog`` and
# ``dbt_like_sql.lineage`` can be imported (by the read API) without importing Dagster.
_EXPORTS = {
    "SqlModelRunConfig": "assets",
    "build_sql_model_asset": "assets",
    "build_sql_model_assets": "assets",
    "declared_automation_condition": "assets",
    "SqlProjectComponent": "component",
    "TestOutcome": "data_tests",
    "run_data_tests": "data_tests",
    "MaterializationOutcome": "materialize",
    "materialize_model": "materialize",
    "DEFAULT_MODELS_DIR": "catalog",
    "SqlProjectError": "catalog",
    "MATERIALIZATIONS": "project",
    "Automation": "project",
    "ColumnConfig": "project",
    "DataTest": "project",
    "SqlModel": "project",
    "SqlProject": "project",
    "load_project": "project",
    "parse_model": "project",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_MODELS_DIR",
    "MATERIALIZATIONS",
    "Automation",
    "ColumnConfig",
    "DataTest",
    "MaterializationOutcome",
    "SqlModel",
    "SqlModelRunConfig",
    "SqlProject",
    "SqlProjectComponent",
    "SqlProjectError",
    "TestOutcome",
    "build_sql_model_asset",
    "build_sql_model_assets",
    "declared_automation_condition",
    "load_project",
    "materialize_model",
    "parse_model",
    "run_data_tests",
]
