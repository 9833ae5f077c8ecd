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

Materialization = Literal["view", "table", "incremental", "materialized_view"]
MATERIALIZATIONS: tuple[str, ...] = ("view", "table", "incremental", "materialized_view")
NEEDS_UNIQUE_KEY = ("incremental", "materialized_view")
TEST_KINDS: tuple[str, ...] = (
    "not_null",
    "unique",
    "accepted_values",
    "range",
    "accepted_range",
    "relationships",
    "expression_is_true",
)
# Kinds usable in the model-level ``tests:`` list (they name their own columns or none).
MODEL_LEVEL_TEST_KINDS = ("unique", "not_null", "expression_is_true")

_MODEL_KEYS = {
    "schema",
    "name",
    "group",
    "materialized",
    "unique_key",
    "indexes",
    "description",
    "owners",
    "tags",
    "incremental_predicate",
    "tests_where",
    "columns",
    "tests",
    "automation",
}
_COLUMN_KEYS = {"description", "data_type", "tests"}
_TEST_COMMON_KEYS = {"severity", "blocking", "name", "description"}
_TEST_ARG_KEYS: dict[str, set[str]] = {
    "not_null": set(),
    "unique": {"columns"},
    "accepted_values": {"values"},
    "range": {"min", "max"},
    "accepted_range": {"min", "max"},
    "relationships": {"to", "field"},
    "expression_is_true": {"expression"},
}
_IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_GROUP_RE = re.compile(r"^[A-Za-z0-9_]+$")
_TAG_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-/]{1,63}$")
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

    unknown = set(config) - _MODEL_KEYS
    if unknown:
        err.add(f"unknown config key(s) {sorted(unknown)}; allowed: {sorted(_MODEL_KEYS)}")

    schema = config.get("schema")
    if schema is None:
        err.add("'schema' is required (e.g. schema: mart)")
    name = config.get("name", path.stem)
    for label, value in (("schema", schema), ("name", name)):
        if value is not None and not (isinstance(value, str) and _IDENT_RE.match(value)):
            err.add(f"{label} {value!r} must be a lowercase SQL identifier ([a-z_][a-z0-9_]*)")

    group = config.get("group", default_group)
    if not (isinstance(group, str) and _GROUP_RE.match(group)):
        err.add(f"group {group!r} must match [A-Za-z0-9_]+")

    materialized = config.get("materialized", "view")
    if materialized not in MATERIALIZATIONS:
        err.add(f"unknown materialization {materialized!r}; use one of {list(MATERIALIZATIONS)}")

    unique_key = _ident_list(config.get("unique_key"), "unique_key", err)
    if materialized in NEEDS_UNIQUE_KEY and not unique_key:
        err.add(f"materialized: {materialized} requires unique_key (a column or list of columns)")

    indexes = _indexes(config.get("indexes"), err)
    if indexes and materialized == "view":
        err.add("a view cannot have indexes; use materialized: table or materialized_view")

    predicate = config.get("incremental_predicate")
    if predicate is not None:
        if materialized != "incremental":
            err.add("incremental_predicate is only allowed with materialized: incremental")
        elif not isinstance(predicate, str) or not predicate.strip():
            err.add("incremental_predicate must be a non-empty SQL boolean expression string")

    tests_where = config.get("tests_where")
    if tests_where is not None and (not isinstance(tests_where, str) or not tests_where.strip()):
        err.add("tests_where must be a non-empty SQL boolean expression string")
        tests_where = None

    description = config.get("description")
    if description is not None and not isinstance(description, str):
        err.add("description must be a string")

    owners = config.get("owners", [])
    if isinstance(owners, str):
        owners = [owners]
    if not (isinstance(owners, list) and all(isinstance(o, str) and o for o in owners)):
        err.add("owners must be a list of strings such as 'team:exports' or an email")
        owners = []

    tags = _tags(config.get("tags"), err)
    columns, column_tests = _columns(config.get("columns"), err)
    model_tests = _tests(config.get("tests"), column=None, err=err)
    automation = _automation(config.get("automation"), err)

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
    # Both were validated above: a missing/invalid one was reported and raise_if_any raised.
    assert expression is not None
    assert isinstance(schema, str)

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
        description=description,
        owners=tuple(owners),
        tags=tags,
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


def _ident_list(value: Any, label: str, err: _Errors) -> tuple[str, ...]:
    if value is None:
        return ()
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        err.add(f"{label} must be a column name or a non-empty list of column names")
        return ()
    for item in items:
        if not (isinstance(item, str) and _IDENT_RE.match(item)):
            err.add(f"{label}: {item!r} is not a lowercase column identifier")
            return ()
    if len(set(items)) != len(items):
        err.add(f"{label} lists a column twice: {items}")
    return tuple(items)


def _indexes(value: Any, err: _Errors) -> tuple[tuple[str, ...], ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        err.add("indexes must be a list of column lists, e.g. [[ano, pais], [setor]]")
        return ()
    result = tuple(_ident_list(item, "indexes entry", err) for item in value)
    if len(set(result)) != len(result):
        err.add(f"indexes declares the same index twice: {value}")
    return tuple(idx for idx in result if idx)


def _tags(value: Any, err: _Errors) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        err.add("tags must be a mapping, e.g. {layer: mart}")
        return {}
    tags: dict[str, str] = {}
    for key, raw in value.items():
        text = "" if raw is None else str(raw)
        if not (isinstance(key, str) and _TAG_KEY_RE.match(key)) or len(text) > 63:
            err.add(f"tag {key!r}: keys must match [A-Za-z0-9_.-/]{{1,63}} and values be <= 63 chars")
            continue
        if not isinstance(raw, str | int | float | bool) and raw is not None:
            err.add(f"tag {key!r}: value must be a scalar")
            continue
        tags[key] = text
    return tags


def _columns(value: Any, err: _Errors) -> tuple[dict[str, ColumnConfig], list[DataTest]]:
    if value is None:
        return {}, []
    if not isinstance(value, dict):
        err.add("columns must be a mapping of column name -> {description, data_type, tests}")
        return {}, []
    columns: dict[str, ColumnConfig] = {}
    tests: list[DataTest] = []
    for name, spec in value.items():
        if not (isinstance(name, str) and _IDENT_RE.match(name)):
            err.add(f"column {name!r} is not a lowercase column identifier")
            continue
        spec = spec or {}
        if not isinstance(spec, dict):
            err.add(f"column {name}: expected a mapping with description/data_type/tests")
            continue
        unknown = set(spec) - _COLUMN_KEYS
        if unknown:
            err.add(f"column {name}: unknown key(s) {sorted(unknown)}; allowed: {sorted(_COLUMN_KEYS)}")
        for text_key in ("description", "data_type"):
            if spec.get(text_key) is not None and not isinstance(spec[text_key], str):
                err.add(f"column {name}: {text_key} must be a string")
        columns[name] = ColumnConfig(name, spec.get("description"), spec.get("data_type"))
        tests.extend(_tests(spec.get("tests"), column=name, err=err))
    return columns, tests


def _tests(value: Any, *, column: str | None, err: _Errors) -> list[DataTest]:
    if value is None:
        return []
    where = f"column {column}" if column else "model-level tests"
    if not isinstance(value, list):
        err.add(f"{where}: tests must be a list")
        return []
    tests = []
    for item in value:
        if isinstance(item, str):
            kind, args = item, None
        elif isinstance(item, dict) and len(item) == 1:
            kind, args = next(iter(item.items()))
        else:
            err.add(f"{where}: each test is a name or a one-key mapping {{name: args}}, got {item!r}")
            continue
        test = _test(kind, args, column=column, where=where, err=err)
        if test is not None:
            tests.append(test)
    return tests


def _test(kind: Any, args: Any, *, column: str | None, where: str, err: _Errors) -> DataTest | None:
    if kind not in TEST_KINDS:
        err.add(f"{where}: unknown test {kind!r}; use one of {list(TEST_KINDS)}")
        return None
    if column is None and kind not in MODEL_LEVEL_TEST_KINDS:
        err.add(f"{where}: {kind} must be declared under a column")
        return None
    # Shorthands: `unique: [a, b]`, `not_null: [a, b]`, `accepted_values: [x, y]`,
    # `expression_is_true: "sql"`.
    if isinstance(args, list):
        key = {"unique": "columns", "not_null": "columns", "accepted_values": "values"}.get(kind)
        if key is None:
            err.add(f"{where}: {kind} takes a mapping of arguments, not a list")
            return None
        args = {key: args}
    elif isinstance(args, str) and kind == "expression_is_true":
        args = {"expression": args}
    if args is None:
        args = {}
    if not isinstance(args, dict):
        err.add(f"{where}: arguments of {kind} must be a mapping")
        return None
    allowed = _TEST_ARG_KEYS[kind] | _TEST_COMMON_KEYS
    if kind == "not_null":
        allowed = allowed | {"columns"}
    unknown = set(args) - allowed
    if unknown:
        err.add(f"{where}: {kind} got unknown argument(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
        return None

    columns: tuple[str, ...]
    if "columns" in args:
        if column is not None:
            err.add(f"{where}: {kind} under a column cannot list other columns")
            return None
        columns = _ident_list(args["columns"], f"{kind} columns", err)
        if not columns:
            return None
    elif column is not None:
        columns = (column,)
    elif kind == "expression_is_true":
        columns = ()
    else:
        err.add(f"{where}: model-level {kind} needs a list of columns, e.g. {{{kind}: [a, b]}}")
        return None

    severity = args.get("severity", "error")
    if severity not in ("warn", "error"):
        err.add(f"{where}: {kind} severity must be 'warn' or 'error', got {severity!r}")
    blocking = args.get("blocking", False)
    if not isinstance(blocking, bool):
        err.add(f"{where}: {kind} blocking must be true or false")
    extra: dict[str, Any] = {}
    suffix = ""
    if kind == "accepted_values":
        values = args.get("values")
        if not isinstance(values, list) or not values:
            err.add(f"{where}: accepted_values needs a non-empty 'values' list")
            return None
        if not all(isinstance(v, str | int | float | bool) for v in values):
            err.add(f"{where}: accepted_values values must be scalars")
            return None
        extra["values"] = tuple(values)
    elif kind in ("range", "accepted_range"):
        low, high = args.get("min"), args.get("max")
        if low is None and high is None:
            err.add(f"{where}: {kind} needs 'min', 'max' or both")
            return None
        for bound in (low, high):
            if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int | float)):
                err.add(f"{where}: {kind} bounds must be numbers, got {bound!r}")
                return None
        if low is not None and high is not None and low > high:
            err.add(f"{where}: {kind} min {low} is greater than max {high}")
        kind = "range"
        extra.update(min=low, max=high)
    elif kind == "relationships":
        to, ref_field = args.get("to"), args.get("field")
        parts = to.split(".") if isinstance(to, str) else []
        if len(parts) != 2 or not all(_IDENT_RE.match(p) for p in parts):
            err.add(f"{where}: relationships 'to' must be 'schema.table', got {to!r}")
            return None
        if not (isinstance(ref_field, str) and _IDENT_RE.match(ref_field)):
            err.add(f"{where}: relationships needs 'field' (the referenced column)")
            return None
        extra.update(to=(parts[0], parts[1]), field=ref_field)
        suffix = f"__{parts[0]}_{parts[1]}"
    elif kind == "expression_is_true":
        expression = args.get("expression")
        if not isinstance(expression, str) or not expression.strip():
            err.add(f"{where}: expression_is_true needs an 'expression' (SQL that must hold per row)")
            return None
        try:
            lineage.parse_condition(expression)
        except lineage.SqlParseError as exc:
            err.add(f"{where}: expression_is_true expression does not parse: {exc}")
            return None
        extra["expression"] = expression
        suffix = "" if columns else "__" + hashlib.sha1(expression.encode()).hexdigest()[:8]

    name = args.get("name") or "__".join([kind, *columns]) + suffix
    if not (isinstance(name, str) and _GROUP_RE.match(name)):
        err.add(f"{where}: test name {name!r} must match [A-Za-z0-9_]+")
        return None
    description = args.get("description")
    return DataTest(
        kind=kind,
        columns=columns,
        name=name,
        severity=severity if severity in ("warn", "error") else "error",
        blocking=bool(blocking),
        description=description if isinstance(description, str) else None,
        **extra,
    )


def _automation(value: Any, err: _Errors) -> Automation | None:
    if value is None:
        return None
    if value == "eager":
        return Automation(kind="eager")
    if isinstance(value, dict) and set(value) <= {"cron", "timezone"} and "cron" in value:
        cron, tz = value["cron"], value.get("timezone", "UTC")
        if not (isinstance(cron, str) and len(cron.split()) == 5):
            err.add(f"automation cron {cron!r} must be a 5-field cron string such as '0 1 * * *'")
            return None
        if not isinstance(tz, str):
            err.add("automation timezone must be a string such as 'America/Sao_Paulo'")
            return None
        return Automation(kind="cron", cron=cron, timezone=tz)
    err.add(f"automation must be 'eager' or {{cron: '0 1 * * *', timezone: UTC}}, got {value!r}")
    return None
