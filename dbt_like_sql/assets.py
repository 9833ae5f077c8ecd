"""Dagster asset factory: one subsettable asset per SQL model, its data tests as asset checks.

Each model becomes a ``multi_asset`` with a single ``AssetSpec`` so its checks can live in the
same op (they run right after the materialization) while ``can_subset=True`` still lets the UI or
a job run the checks alone, or the asset without its checks.
"""

from collections.abc import Callable, Iterator
from typing import TypeAlias

from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetsDefinition,
    AssetSpec,
    AutomationCondition,
    Config,
    MaterializeResult,
    MetadataValue,
    RetryPolicy,
    TableColumn,
    TableColumnDep,
    TableColumnLineage,
    TableSchema,
    multi_asset,
)
from pydantic import Field

from dbt_like_sql.data_tests import TestOutcome, run_data_tests
from dbt_like_sql.materialize import MaterializationOutcome, materialize_model
from dbt_like_sql.project import DataTest, SqlModel, SqlProject
from resources.error_diagnosis import fail_fast_on_permanent_errors

AutomationConditionFor = Callable[[SqlModel], AutomationCondition | None]
# The raw values this module puts in result metadata (Dagster's own alias is not public API).
ResultMetadata: TypeAlias = dict[str, MetadataValue | str | int | float | None]


class SqlModelRunConfig(Config):
    """Run-time switches for a model asset (all optional)."""

    full_refresh: bool = Field(
        default=False,
        description=(
            "Rebuild from scratch: incremental models reload everything, materialized views are recreated."
        ),
    )


def declared_automation_condition(model: SqlModel) -> AutomationCondition | None:
    """The condition a model's ``automation:`` header asks for; orchestration may use or ignore it."""
    if model.automation is None:
        return None
    if model.automation.kind == "eager":
        return AutomationCondition.eager()
    assert model.automation.cron is not None
    return AutomationCondition.on_cron(model.automation.cron, cron_timezone=model.automation.timezone)


def column_schema(model: SqlModel) -> TableSchema:
    """Output columns (declared ones first documented) with declared or cast-inferred types."""
    names = list(model.output_columns) if model.output_columns is not None else list(model.columns)
    columns = []
    for name in names:
        declared = model.columns.get(name)
        col_type = (declared.data_type if declared else None) or model.inferred_types.get(name) or "unknown"
        columns.append(
            TableColumn(name=name, type=col_type, description=declared.description if declared else None)
        )
    return TableSchema(columns=columns)


def column_lineage_metadata(model: SqlModel) -> TableColumnLineage | None:
    if not model.column_lineage:
        return None
    deps = {
        column: [TableColumnDep(asset_key=[schema, table], column_name=col) for schema, table, col in sources]
        for column, sources in model.column_lineage.items()
        if sources
    }
    return TableColumnLineage(deps_by_column=deps) if deps else None


def _check_description(test: DataTest) -> str:
    cols = ", ".join(test.columns)
    if test.kind == "not_null":
        return f"{cols} is never null"
    if test.kind == "unique":
        return f"({cols}) is unique"
    if test.kind == "accepted_values":
        return f"{cols} is one of {list(test.values)}"
    if test.kind == "range":
        low = "-inf" if test.min is None else test.min
        high = "+inf" if test.max is None else test.max
        return f"{cols} is within [{low}, {high}]"
    if test.kind == "relationships":
        assert test.to is not None
        return f"every {cols} exists in {'.'.join(test.to)}.{test.field}"
    return f"every row satisfies: {test.expression}"


def check_specs(model: SqlModel) -> list[AssetCheckSpec]:
    """One ``AssetCheckSpec`` per declared data test."""
    specs = []
    for test in model.tests:
        metadata: dict[str, object] = {"test": test.kind, "severity": test.severity}
        if test.columns:
            metadata["columns"] = list(test.columns)
        if test.to is not None:
            metadata["relationships_to"] = f"{'.'.join(test.to)}.{test.field}"
        specs.append(
            AssetCheckSpec(
                name=test.name,
                asset=model.key,
                description=test.description or _check_description(test),
                blocking=test.blocking,
                metadata=metadata,
            )
        )
    return specs


def asset_spec(model: SqlModel, automation_condition: AutomationCondition | None = None) -> AssetSpec:
    """Definition-time metadata: table name, column schema and lineage, kinds, owners, code version."""
    metadata: dict[str, object] = {
        "dagster/table_name": model.relation,
        "dagster/column_schema": column_schema(model),
        "materialized": model.materialized,
        "model_path": MetadataValue.path(str(model.path)),
        "sql": MetadataValue.md(f"```sql\n{model.sql}\n```"),
    }
    if model.unique_key:
        metadata["unique_key"] = list(model.unique_key)
    lineage = column_lineage_metadata(model)
    if lineage is not None:
        metadata["dagster/column_lineage"] = lineage
    return AssetSpec(
        key=model.key,
        deps=list(model.deps),
        description=model.description or f"SQL model {model.relation} ({model.materialized})",
        metadata=metadata,
        group_name=model.group,
        code_version=model.code_version,
        automation_condition=automation_condition,
        owners=list(model.owners),
        tags=dict(model.tags),
        kinds={"sql", "view" if model.materialized == "view" else "table"},
    )


def _materialize_result(model: SqlModel, outcome: MaterializationOutcome) -> MaterializeResult:
    metadata: ResultMetadata = {
        "dagster/row_count": outcome.row_count,
        "dagster/table_name": model.relation,
        "dialect": outcome.dialect,
        "materialization": outcome.materialization,
        "action": outcome.action,
        "elapsed_s": outcome.elapsed_s,
        "executed_sql": MetadataValue.md(f"```sql\n{outcome.sql_preview()}\n```"),
    }
    for key, value in outcome.details.items():
        metadata[key] = MetadataValue.json(value) if isinstance(value, list | dict) else value
    return MaterializeResult(asset_key=model.key, metadata=metadata)


def _check_result(model: SqlModel, outcome: TestOutcome) -> AssetCheckResult:
    test = outcome.test
    metadata: ResultMetadata = {
        "failing_rows": outcome.failing_rows if outcome.failing_rows is not None else -1,
        "sample_failing_values": MetadataValue.json(outcome.samples),
        "sql": MetadataValue.md(f"```sql\n{outcome.sql}\n```"),
    }
    metadata.update(outcome.extra)
    if outcome.error:
        metadata["error"] = outcome.error
    return AssetCheckResult(
        asset_key=model.key,
        check_name=test.name,
        passed=outcome.passed,
        severity=AssetCheckSeverity.WARN if test.severity == "warn" else AssetCheckSeverity.ERROR,
        metadata=metadata,
    )


def model_pool(model: SqlModel) -> str:
    """The concurrency pool of a model: one per relation.

    With the instance's default pool limit of 1, two runs never build the same model at once: two
    concurrent incremental merges could both insert the same new rows, and downstream high-water
    marks (``merged_at``) rely on a model's merges following one another.
    """
    return f"sql_model/{model.schema}.{model.name}"


def build_sql_model_asset(
    model: SqlModel,
    *,
    automation_condition: AutomationCondition | None = None,
    resource_key: str = "warehouse",
    retry_policy: RetryPolicy | None = None,
) -> AssetsDefinition:
    """The asset for one model; materializes it then runs whichever of its checks are selected.

    Permanent errors (invalid SQL, missing table) fail the step at once; ``retry_policy`` retries
    the others (a PostgreSQL warehouse restarting).
    """

    @multi_asset(
        name=f"{model.schema}__{model.name}",
        specs=[asset_spec(model, automation_condition)],
        check_specs=check_specs(model),
        can_subset=True,
        required_resource_keys={resource_key},
        op_tags={"kind": "sql"},
        retry_policy=retry_policy,
        pool=model_pool(model),
    )
    @fail_fast_on_permanent_errors
    def _model_asset(
        context: AssetExecutionContext, config: SqlModelRunConfig
    ) -> Iterator[MaterializeResult | AssetCheckResult]:
        warehouse = getattr(context.resources, resource_key)
        if model.key in context.selected_asset_keys:
            outcome = materialize_model(warehouse, model, full_refresh=config.full_refresh, log=context.log)
            context.log.info(
                f"{model.relation}: {outcome.action} as {outcome.materialization} on {outcome.dialect}, "
                f"{outcome.row_count} rows in {outcome.elapsed_s}s"
            )
            yield _materialize_result(model, outcome)
        selected = context.selected_asset_check_keys
        tests = [t for t in model.tests if AssetCheckKey(model.key, t.name) in selected]
        for test_outcome in run_data_tests(warehouse, model, tests):
            yield _check_result(model, test_outcome)

    return _model_asset


def build_sql_model_assets(
    project: SqlProject,
    *,
    automation_condition_for: AutomationConditionFor | None = None,
    resource_key: str = "warehouse",
    retry_policy: RetryPolicy | None = None,
) -> list[AssetsDefinition]:
    """One asset per model; ``automation_condition_for`` (orchestration's choice) sets each condition."""
    return [
        build_sql_model_asset(
            model,
            automation_condition=automation_condition_for(model) if automation_condition_for else None,
            resource_key=resource_key,
            retry_policy=retry_policy,
        )
        for model in project
    ]
