"""Discover SQL model files and parse their YAML config headers into validated :class:`SqlModel` objects.

Every model is one ``.sql`` file under ``models/<domain>/`` whose leading block comment holds its
config (``/* --- <yaml> --- */``). Validation is strict on purpose: a typo in a header must fail at
load time (when Dagster imports the code location), not silently change what gets built.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from dagster import AssetKey
from pydantic import ValidationError

from dbt_like_sql import lineage
from dbt_like_sql.catalog import (
    DEFAULT_MODELS_DIR,
    SqlProjectError,
    default_group,
    dependency_order,
    discover_model_files,
    lineage_in_order,
    split_header,
)
from dbt_like_sql.header import (
    GROUP_RE,
    AcceptedValuesTest,
    ExpressionTest,
    Materialization,
    ModelHeader,
    RangeTest,
    RelationshipsTest,
    TestSpec,
    header_errors,
)
from dbt_like_sql.header import (
    MATERIALIZATIONS as MATERIALIZATIONS,  # re-exported by dbt_like_sql
)

NEEDS_UNIQUE_KEY = ("incremental", "materialized_view")
# Kinds usable in the model-level ``tests:`` list (they name their own columns or none).
MODEL_LEVEL_TEST_KINDS = ("unique", "not_null", "expression_is_true")
_THIS_RE = re.compile(r"\{\{\s*this\s*\}\}")


@dataclass(frozen=True)
class DataTest:
    """One declared data test; becomes one Dagster asset check on the model's asset."""

    kind: str
    columns: tuple[str, ...]
    name: str
    severity: Literal["warn", "error"] = "error"
    blocking: bool = False
    description: str | None = None
    values: tuple[Any, ...] = ()
    min: Any = None
    max: Any = None
    to: tuple[str, str] | None = None
    field: str | None = None
    expression: str | None = None


@dataclass(frozen=True)
class ColumnConfig:
    """A declared output column: documentation for the column schema plus its tests."""

    name: str
    description: str | None = None
    data_type: str | None = None


@dataclass(frozen=True)
class Automation:
    """What the model asks for (``eager`` or a cron); orchestration decides whether to honour it."""

    kind: Literal["eager", "cron"]
    cron: str | None = None
    timezone: str = "UTC"


@dataclass(frozen=True)
class SqlModel:
    """A parsed, validated model: its config, SQL (PostgreSQL dialect) and derived lineage."""

    name: str
    schema: str
    group: str
    materialized: Materialization
    sql: str
    path: Path
    unique_key: tuple[str, ...] = ()
    indexes: tuple[tuple[str, ...], ...] = ()
    description: str | None = None
    owners: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    incremental_predicate: str | None = None
    # Rows the data tests look at (``{{ this }}`` = the model), e.g. the latest merge of an
    # incremental model: rows no build touched were tested when they were written.
    tests_where: str | None = None
    columns: Mapping[str, ColumnConfig] = field(default_factory=dict)
    tests: tuple[DataTest, ...] = ()
    automation: Automation | None = None
    code_version: str = ""
    # Derived from the SQL by :func:`load_project`.
    deps: tuple[AssetKey, ...] = ()
    output_columns: tuple[str, ...] | None = None
    inferred_types: Mapping[str, str] = field(default_factory=dict)
    column_lineage: Mapping[str, tuple[tuple[str, str, str], ...]] | None = None

    @property
    def key(self) -> AssetKey:
        return AssetKey([self.schema, self.name])

    @property
    def relation(self) -> str:
        """``schema.name`` as written in SQL (both parts are plain lowercase identifiers)."""
        return f"{self.schema}.{self.name}"


@dataclass(frozen=True)
class SqlProject:
    """All models of a models directory, keyed by asset key, in dependency (topological) order."""

    models_dir: Path
    models: Mapping[AssetKey, SqlModel]

    def __iter__(self) -> Iterator[SqlModel]:
        return iter(self.models.values())

    def __len__(self) -> int:
        return len(self.models)

    def get(self, key: AssetKey | str | Sequence[str]) -> SqlModel:
        """Look a model up by asset key, ``"schema.table"`` or ``["schema", "table"]``."""
        if isinstance(key, str):
            key = AssetKey(key.split("."))
        elif not isinstance(key, AssetKey):
            key = AssetKey(list(key))
        return self.models[key]

    @property
    def external_deps(self) -> set[AssetKey]:
        """Upstream tables no model builds (produced by Python assets)."""
        return {dep for model in self for dep in model.deps if dep not in self.models}


# --------------------------------------------------------------------------------------------
# Parsing


def parse_model(text: str, path: Path | str = "<string>", *, default_group: str = "default") -> SqlModel:
    """Parse and validate one model file's text (lineage and deps are filled in by load_project)."""
    path = Path(path)
    config, sql = split_header(text, path)
    err = _Errors(path)
    try:
        header = ModelHeader.model_validate({"name": path.stem, "group": default_group, **config})
    except ValidationError as exc:
        for message in header_errors(exc):
            err.add(message)
        err.raise_if_any()
    schema, name, group, materialized = header.schema_, header.name, header.group, header.materialized
    assert name is not None and group is not None  # defaulted above
    unique_key, indexes, predicate = header.unique_key, header.indexes, header.incremental_predicate
    tests_where = header.tests_where
    if materialized in NEEDS_UNIQUE_KEY and not unique_key:
        err.add(f"materialized: {materialized} requires unique_key (a column or list of columns)")
    if indexes and materialized == "view":
        err.add("a view cannot have indexes; use materialized: table or materialized_view")
    if predicate is not None and materialized != "incremental":
        err.add("incremental_predicate is only allowed with materialized: incremental")
    columns = {
        column: ColumnConfig(column, spec.description, spec.data_type)
        for column, spec in header.columns.items()
    }
    column_tests = [
        test
        for column, spec in header.columns.items()
        for index, entry in enumerate(spec.tests)
        if (test := _data_test(entry, column, f"column {column}: tests[{index}]", err)) is not None
    ]
    model_tests = [
        test
        for index, entry in enumerate(header.tests)
        if (test := _data_test(entry, None, f"tests[{index}]", err)) is not None
    ]
    automation = None
    if header.automation == "eager":
        automation = Automation(kind="eager")
    elif header.automation is not None:
        automation = Automation(kind="cron", cron=header.automation.cron, timezone=header.automation.timezone)

    tests = tuple(column_tests + model_tests)
    seen: set[str] = set()
    for test in tests:
        if test.name in seen:
            err.add(f"two tests are named {test.name!r}; give one a distinct 'name:'")
        seen.add(test.name)

    try:
        expression = lineage.parse_query(sql)
    except lineage.SqlParseError as exc:
        err.add(f"SQL does not parse as one PostgreSQL query: {exc}")
        expression = None
    if predicate and isinstance(predicate, str):
        try:
            lineage.parse_condition(_THIS_RE.sub("__this__", predicate))
        except lineage.SqlParseError as exc:
            err.add(f"incremental_predicate does not parse: {exc}")
    if tests_where:
        try:
            lineage.parse_condition(_THIS_RE.sub("__this__", tests_where))
        except lineage.SqlParseError as exc:
            err.add(f"tests_where does not parse: {exc}")

    err.raise_if_any()
    # Validated above: an invalid query was reported and raise_if_any raised.
    assert expression is not None

    output: list[str] | None = None
    try:
        output = lineage.output_columns(expression)
    except lineage.SqlParseError as exc:
        err.add(str(exc))
        err.raise_if_any()
    if output is not None:
        produced = set(output)
        for label, names in (
            ("declared column", list(columns)),
            ("unique_key column", list(unique_key)),
            ("index column", [c for idx in indexes for c in idx]),
            ("tested column", [c for t in tests for c in t.columns]),
        ):
            missing = sorted(set(names) - produced)
            if missing:
                err.add(f"{label}(s) {missing} not produced by the SELECT (it outputs {output})")
        if len(produced) != len(output):
            dupes = sorted({c for c in output if output.count(c) > 1})
            err.add(f"the SELECT outputs duplicate column names {dupes}")
    err.raise_if_any()

    canonical = json.dumps(config, sort_keys=True, default=str)
    code_version = hashlib.sha256(f"{canonical}\n{sql}".encode()).hexdigest()[:16]
    return SqlModel(
        name=name,
        schema=schema,
        group=group,
        materialized=materialized,
        sql=sql,
        path=path,
        unique_key=unique_key,
        indexes=indexes,
        description=header.description,
        owners=header.owners,
        tags=header.tags,
        incremental_predicate=predicate,
        tests_where=tests_where,
        columns=columns,
        tests=tests,
        automation=automation,
        code_version=code_version,
        output_columns=tuple(output) if output is not None else None,
        inferred_types=lineage.inferred_column_types(expression),
    )


def load_project(models_dir: Path = DEFAULT_MODELS_DIR) -> SqlProject:
    """Parse every model, derive dependencies and column lineage from the SQL, and reject bad graphs."""
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        raise SqlProjectError(f"models directory {models_dir} does not exist")
    parsed: dict[AssetKey, SqlModel] = {}
    for path in discover_model_files(models_dir):
        group = default_group(path, models_dir)
        model = parse_model(path.read_text(encoding="utf-8"), path, default_group=group)
        if model.key in parsed:
            raise SqlProjectError(
                f"{path}: table {model.relation} is already defined by {parsed[model.key].path}"
            )
        parsed[model.key] = model

    with_deps: dict[AssetKey, SqlModel] = {}
    for key, model in parsed.items():
        try:
            tables = lineage.referenced_tables(lineage.parse_query(model.sql))
        except lineage.SqlParseError as exc:
            raise SqlProjectError(f"{model.path}: {exc}") from exc
        deps = tuple(AssetKey([schema, table]) for schema, table in tables)
        if key in deps:
            raise SqlProjectError(f"{model.path}: model {model.relation} selects from itself")
        with_deps[key] = replace(model, deps=deps)

    order = dependency_order(
        {key: model.deps for key, model in with_deps.items()},
        label=lambda key: ".".join(key.path),
        where=lambda key: with_deps[key].path,
    )
    relations = {key: (m.schema, m.name, m.sql, m.output_columns) for key, m in with_deps.items()}
    by_model = lineage_in_order(order, relations)
    final = {key: replace(with_deps[key], column_lineage=by_model[key]) for key in order}
    return SqlProject(models_dir=models_dir, models=final)


# --------------------------------------------------------------------------------------------
# Validation helpers


class _Errors:
    """Collects every problem in one file so the author sees them all at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages: list[str] = []

    def add(self, message: str) -> None:
        self.messages.append(message)

    def raise_if_any(self) -> None:
        if self.messages:
            joined = "\n  - ".join(self.messages)
            raise SqlProjectError(f"{self.path}: invalid model config:\n  - {joined}")


def _data_test(entry: TestSpec, column: str | None, where: str, err: _Errors) -> DataTest | None:
    """A validated test entry as a :class:`DataTest`: its columns, its kind's arguments, its name."""
    kind = entry.kind
    if column is None and kind not in MODEL_LEVEL_TEST_KINDS:
        err.add(f"{where}: {kind} must be declared under a column")
        return None
    listed = getattr(entry, "columns", None)
    columns: tuple[str, ...]
    if listed is not None:
        if column is not None:
            err.add(f"{where}: {kind} under a column cannot list other columns")
            return None
        columns = listed
    elif column is not None:
        columns = (column,)
    elif kind == "expression_is_true":
        columns = ()
    else:
        err.add(f"{where}: model-level {kind} needs a list of columns, e.g. {{{kind}: [a, b]}}")
        return None
    extra: dict[str, Any] = {}
    suffix = ""
    if isinstance(entry, AcceptedValuesTest):
        extra["values"] = entry.values
    elif isinstance(entry, RangeTest):
        kind = "range"
        extra.update(min=entry.min, max=entry.max)
    elif isinstance(entry, RelationshipsTest):
        extra.update(to=entry.to, field=entry.field)
        suffix = f"__{entry.to[0]}_{entry.to[1]}"
    elif isinstance(entry, ExpressionTest):
        extra["expression"] = entry.expression
        suffix = "" if columns else "__" + hashlib.sha1(entry.expression.encode()).hexdigest()[:8]
    name = entry.name or "__".join([kind, *columns]) + suffix
    if not GROUP_RE.match(name):
        err.add(f"{where}: test name {name!r} must match [A-Za-z0-9_]+")
        return None
    return DataTest(
        kind=kind,
        columns=columns,
        name=name,
        severity=entry.severity,
        blocking=entry.blocking,
        description=entry.description,
        **extra,
    )
