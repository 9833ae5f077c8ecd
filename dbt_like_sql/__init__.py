"""dbt-like SQL models as Dagster assets.

Models live in ``dbt_like_sql/models/<domain>/<name>.sql``: a YAML config header in a leading
``/* --- ... --- */`` comment, then one PostgreSQL-dialect SELECT. :func:`load_project` parses and
validates them (dependencies come from the SQL itself); :func:`build_sql_model_assets` turns each
into a Dagster asset whose declared data tests are asset checks.
"""

from dbt_like_sql.assets import (
    SqlModelRunConfig,
    build_sql_model_asset,
    build_sql_model_assets,
    declared_automation_condition,
)
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
