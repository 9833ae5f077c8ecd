"""The YAML config header of a SQL model, validated by pydantic models (unknown keys are errors).

:func:`dbt_like_sql.project.parse_model` validates a header with :class:`ModelHeader` and reports
every problem of the file at once (:func:`header_errors` turns pydantic's errors into one line
each, naming the key). Rules that need the SQL or several keys together stay in ``project.py``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    ValidationError,
    field_validator,
    model_validator,
)

from dbt_like_sql import lineage

Materialization = Literal["view", "table", "incremental", "materialized_view"]
MATERIALIZATIONS: tuple[str, ...] = ("view", "table", "incremental", "materialized_view")
TEST_KINDS: tuple[str, ...] = (
    "not_null",
    "unique",
    "accepted_values",
    "range",
    "accepted_range",
    "relationships",
    "expression_is_true",
)
IDENT_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
GROUP_RE = re.compile(r"^[A-Za-z0-9_]+$")
_TAG_KEY_RE = re.compile(r"^[A-Za-z0-9_.\-/]{1,63}$")
# Shorthands: `unique: [a, b]`, `not_null: [a, b]`, `accepted_values: [x, y]`, `expression_is_true: "sql"`.
_LIST_SHORTHAND = {"unique": "columns", "not_null": "columns", "accepted_values": "values"}


def _identifier(label: str) -> BeforeValidator:
    def check(value: Any) -> str:
        if not (isinstance(value, str) and IDENT_RE.match(value)):
            raise ValueError(f"{label} {value!r} must be a lowercase SQL identifier ([a-z_][a-z0-9_]*)")
        return value

    return BeforeValidator(check)


def _identifiers(label: str) -> BeforeValidator:
    """A column name or a non-empty list of distinct ones."""

    def check(value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items:
            raise ValueError(f"{label} must be a column name or a non-empty list of column names")
        for item in items:
            if not (isinstance(item, str) and IDENT_RE.match(item)):
                raise ValueError(f"{label}: {item!r} is not a lowercase column identifier")
        if len(set(items)) != len(items):
            raise ValueError(f"{label} lists a column twice: {items}")
        return tuple(items)

    return BeforeValidator(check)


def _sql_text(label: str) -> BeforeValidator:
    def check(value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{label} must be a non-empty SQL boolean expression string")
        return value

    return BeforeValidator(check)


Identifier = Annotated[str, _identifier("name")]
Columns = Annotated[tuple[str, ...], _identifiers("columns")]
Scalar = str | int | float | bool
Number = int | float  # checked before validation: booleans and strings are refused


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------------------------
# Data tests: one model per kind; ``kind`` picks it.


class _TestBase(_Strict):
    severity: Literal["warn", "error"] = "error"
    blocking: StrictBool = False
    name: Annotated[str, Field(pattern=GROUP_RE.pattern)] | None = None
    description: str | None = None


class NotNullTest(_TestBase):
    kind: Literal["not_null"]
    columns: Columns | None = None


class UniqueTest(_TestBase):
    kind: Literal["unique"]
    columns: Columns | None = None


class AcceptedValuesTest(_TestBase):
    kind: Literal["accepted_values"]
    values: Annotated[tuple[Scalar, ...], Field(min_length=1)] | None = None

    @model_validator(mode="after")
    def _needs_values(self) -> AcceptedValuesTest:
        if not self.values:
            raise ValueError("accepted_values needs a non-empty 'values' list")
        return self


class RangeTest(_TestBase):
    kind: Literal["range", "accepted_range"]
    min: Number | None = None
    max: Number | None = None

    @field_validator("min", "max", mode="before")
    @classmethod
    def _number(cls, value: Any) -> Any:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ValueError(f"range bounds must be numbers, got {value!r}")
        return value

    @model_validator(mode="after")
    def _bounds(self) -> RangeTest:
        if self.min is None and self.max is None:
            raise ValueError(f"{self.kind} needs 'min', 'max' or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"{self.kind} min {self.min} is greater than max {self.max}")
        return self


class RelationshipsTest(_TestBase):
    kind: Literal["relationships"]
    to: tuple[str, str]
    field: Annotated[str, _identifier("relationships 'field'")]

    @field_validator("to", mode="before")
    @classmethod
    def _relation(cls, value: Any) -> tuple[str, ...]:
        parts = value.split(".") if isinstance(value, str) else []
        if len(parts) != 2 or not all(IDENT_RE.match(p) for p in parts):
            raise ValueError(f"relationships 'to' must be 'schema.table', got {value!r}")
        return tuple(parts)


class ExpressionTest(_TestBase):
    kind: Literal["expression_is_true"]
    columns: Columns | None = None
    expression: str

    @field_validator("expression", mode="before")
    @classmethod
    def _parses(cls, value: Any) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ValueError("expression_is_true needs an 'expression' (SQL that must hold per row)")
        try:
            lineage.parse_condition(value)
        except lineage.SqlParseError as exc:
            raise ValueError(f"expression_is_true expression does not parse: {exc}") from exc
        return value


def _test_entry(item: Any) -> Any:
    """``name`` or ``{name: args}`` (with the list/string shorthands) -> ``{kind: name, **args}``."""
    if isinstance(item, str):
        kind, args = item, None
    elif isinstance(item, dict) and len(item) == 1:
        kind, args = next(iter(item.items()))
    else:
        raise ValueError(f"each test is a name or a one-key mapping {{name: args}}, got {item!r}")
    if kind not in TEST_KINDS:
        raise ValueError(f"unknown test {kind!r}; use one of {list(TEST_KINDS)}")
    if isinstance(args, list):
        key = _LIST_SHORTHAND.get(kind)
        if key is None:
            raise ValueError(f"{kind} takes a mapping of arguments, not a list")
        args = {key: args}
    elif isinstance(args, str) and kind == "expression_is_true":
        args = {"expression": args}
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError(f"arguments of {kind} must be a mapping")
    return {**args, "kind": kind}


TestSpec = Annotated[
    NotNullTest | UniqueTest | AcceptedValuesTest | RangeTest | RelationshipsTest | ExpressionTest,
    Field(discriminator="kind"),
    BeforeValidator(_test_entry),
]


# --------------------------------------------------------------------------------------------
# Columns, automation, the header


class ColumnHeader(_Strict):
    description: str | None = None
    data_type: str | None = None
    tests: tuple[TestSpec, ...] = ()


class CronAutomation(_Strict):
    cron: str
    timezone: str = "UTC"

    @field_validator("cron", mode="before")
    @classmethod
    def _five_fields(cls, value: Any) -> str:
        if not (isinstance(value, str) and len(value.split()) == 5):
            raise ValueError(f"automation cron {value!r} must be a 5-field cron string such as '0 1 * * *'")
        return value


def _automation(value: Any) -> Any:
    if value is None or value == "eager" or isinstance(value, dict):
        return value
    raise ValueError(f"automation must be 'eager' or {{cron: '0 1 * * *', timezone: UTC}}, got {value!r}")


def _owners(value: Any) -> Any:
    owners = [value] if isinstance(value, str) else value
    if not (isinstance(owners, list) and all(isinstance(o, str) and o for o in owners)):
        raise ValueError("owners must be a list of strings such as 'team:exports' or an email")
    return tuple(owners)


def _tags(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ValueError("tags must be a mapping, e.g. {layer: mart}")
    tags: dict[str, str] = {}
    for key, raw in value.items():
        text = "" if raw is None else str(raw)
        if not (isinstance(key, str) and _TAG_KEY_RE.match(key)) or len(text) > 63:
            raise ValueError(
                f"tag {key!r}: keys must match [A-Za-z0-9_.-/]{{1,63}} and values be <= 63 chars"
            )
        if not isinstance(raw, str | int | float | bool) and raw is not None:
            raise ValueError(f"tag {key!r}: value must be a scalar")
        tags[key] = text
    return tags


def _indexes(value: Any) -> Any:
    if not isinstance(value, list):
        raise ValueError("indexes must be a list of column lists, e.g. [[ano, pais], [setor]]")
    return value


def _materialization(value: Any) -> Any:
    if value not in MATERIALIZATIONS:
        raise ValueError(f"unknown materialization {value!r}; use one of {list(MATERIALIZATIONS)}")
    return value


class ModelHeader(_Strict):
    """Every key a model header may hold; ``schema`` is the only required one."""

    # "schema" shadows a BaseModel attribute: stored as schema_, read from the key "schema".
    schema_: Annotated[str, _identifier("schema")] = Field(alias="schema")
    name: Annotated[str, _identifier("name")] | None = None
    group: Annotated[str, Field(pattern=GROUP_RE.pattern)] | None = None
    materialized: Annotated[Materialization, BeforeValidator(_materialization)] = "view"
    unique_key: Annotated[tuple[str, ...], _identifiers("unique_key")] = ()
    indexes: Annotated[
        tuple[Annotated[tuple[str, ...], _identifiers("indexes entry")], ...], BeforeValidator(_indexes)
    ] = ()
    description: str | None = None
    owners: Annotated[tuple[str, ...], BeforeValidator(_owners)] = ()
    tags: Annotated[dict[str, str], BeforeValidator(_tags)] = Field(default_factory=dict)
    incremental_predicate: Annotated[str, _sql_text("incremental_predicate")] | None = None
    tests_where: Annotated[str, _sql_text("tests_where")] | None = None
    columns: dict[
        Annotated[str, _identifier("column")],
        Annotated[ColumnHeader, BeforeValidator(lambda spec: {} if spec is None else spec)],
    ] = Field(default_factory=dict)
    tests: tuple[TestSpec, ...] = ()
    automation: Annotated[Literal["eager"] | CronAutomation | None, BeforeValidator(_automation)] = None

    @field_validator("indexes", mode="after")
    @classmethod
    def _distinct(cls, value: tuple[tuple[str, ...], ...]) -> tuple[tuple[str, ...], ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"indexes declares the same index twice: {[list(i) for i in value]}")
        return value


def header_errors(exc: ValidationError) -> list[str]:
    """One line per problem, naming the key: unknown keys grouped with what is allowed there."""
    messages: list[str] = []
    unknown: dict[tuple[Any, ...], list[str]] = {}
    for error in exc.errors():
        loc = tuple(error["loc"])
        if error["type"] == "extra_forbidden":
            unknown.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        if error["type"] == "missing" and loc == ("schema",):
            messages.append("'schema' is required (e.g. schema: mart)")
            continue
        message = error["msg"].removeprefix("Value error, ")
        where = _where(loc)
        messages.append(f"{where}: {message}" if where else message)
    for parent, keys in unknown.items():
        allowed = sorted(_allowed(parent))
        if not parent:
            messages.append(f"unknown config key(s) {sorted(keys)}; allowed: {allowed}")
        else:
            messages.append(f"{_where(parent)}: unknown key(s) {sorted(keys)}; allowed: {allowed}")
    return messages


def _where(loc: tuple[Any, ...]) -> str:
    """``('columns', 'a', 'tests', 0, 'range')`` -> ``column a: tests[0] range``."""
    parts: list[str] = []
    rest = list(loc)
    if rest[:1] == ["columns"] and len(rest) >= 2:
        parts.append(f"column {rest[1]}")
        rest = rest[2:]
    for item in rest:
        if isinstance(item, int):
            parts[-1:] = [f"{parts[-1]}[{item}]" if parts else f"[{item}]"]
        else:
            parts.append(str(item))
    return " ".join(parts)


def _allowed(parent: tuple[Any, ...]) -> set[str]:
    if not parent:
        return {"schema" if name == "schema_" else name for name in ModelHeader.model_fields}
    kind = parent[-1]
    if parent[0] == "columns" and len(parent) == 2:
        return set(ColumnHeader.model_fields)
    for spec in (NotNullTest, UniqueTest, AcceptedValuesTest, RangeTest, RelationshipsTest, ExpressionTest):
        if kind in spec.model_fields["kind"].annotation.__args__:  # type: ignore[union-attr]
            return set(spec.model_fields) - {"kind"}
    return set()
