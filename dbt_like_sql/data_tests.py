"""Turn declared data tests into SQL that counts failing rows, run them and collect samples.

Identifiers are always quoted by the connection's dialect; literal values (accepted values, range
bounds) travel as bound parameters so a value can never change the statement. Only
``expression_is_true`` embeds author-written SQL (from the reviewed model file), transpiled for
DuckDB like the model itself.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dbt_like_sql.lineage import transpile
from dbt_like_sql.project import DataTest, SqlModel
from resources.bulk_write import quote_ident
from resources.warehouse import WarehouseResource

SAMPLE_LIMIT = 5


@dataclass(frozen=True)
class TestQuery:
    """SQL for one test: ``count_sql`` returns the failing-row count, ``sample_sql`` a few offenders."""

    count_sql: str
    sample_sql: str
    params: dict[str, Any] = field(default_factory=dict)
    raw: bool = False  # author SQL inside: run through the driver cursor, without parameters
    expanding: tuple[str, ...] = ()
    # For tests judging each row on its own: the condition a failing row meets (counted in one
    # shared scan with the model's other row-level tests, see ``run_data_tests``).
    row_filter: str | None = None


@dataclass(frozen=True)
class TestOutcome:
    """Result of one test run, ready to become an ``AssetCheckResult``."""

    test: DataTest
    passed: bool
    failing_rows: int | None
    samples: list[Any]
    sql: str
    error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _bound(value: Any) -> Any:
    """Floats become Decimals so NUMERIC columns are compared exactly, not through float8."""
    if isinstance(value, float):
        return decimal.Decimal(str(value))
    return value


_THIS_RE = re.compile(r"\{\{\s*this\s*\}\}")


def tested_rows(conn: sa.Connection, model: SqlModel, alias: str | None = None) -> str:
    """What the tests read (a FROM item): the model's relation, or the rows its ``tests_where`` selects."""
    table = quote_ident(conn, model.schema, model.name)
    if not model.tests_where:
        return f"{table} AS {alias}" if alias else table
    condition = _THIS_RE.sub(lambda _: table, model.tests_where)
    rows = transpile(f"SELECT * FROM {table} WHERE {condition}", conn.dialect.name)
    return f"({rows}) AS {alias or 'tested'}"


def build_test_query(conn: sa.Connection, model: SqlModel, test: DataTest) -> TestQuery:
    """The failing-rows SQL for ``test`` on ``model``, for the connection's dialect."""
    table = tested_rows(conn, model)
    cols = [quote_ident(conn, c) for c in test.columns]
    limit = f"LIMIT {SAMPLE_LIMIT}"
    if test.kind == "not_null":
        where = " OR ".join(f"{c} IS NULL" for c in cols)
        return TestQuery(
            f"SELECT COUNT(*) FROM {table} WHERE {where}",
            f"SELECT * FROM {table} WHERE {where} {limit}",
            row_filter=where,
        )
    if test.kind == "unique":
        col_list = ", ".join(cols)
        not_null = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        dupes = (
            f"SELECT {col_list}, COUNT(*) AS n_rows FROM {table} WHERE {not_null} "
            f"GROUP BY {col_list} HAVING COUNT(*) > 1"
        )
        return TestQuery(
            f"SELECT COALESCE(SUM(n_rows), 0), COUNT(*) FROM ({dupes}) AS dupes",
            f"{dupes} ORDER BY n_rows DESC, {col_list} {limit}",
        )
    (col,) = cols
    if test.kind == "accepted_values":
        where = f"{col} IS NOT NULL AND {col} NOT IN :accepted_values"
        return TestQuery(
            f"SELECT COUNT(*) FROM {table} WHERE {where}",
            f"SELECT {col}, COUNT(*) AS n_rows FROM {table} WHERE {where} GROUP BY {col} "
            f"ORDER BY n_rows DESC, {col} {limit}",
            params={"accepted_values": [_bound(v) for v in test.values]},
            expanding=("accepted_values",),
            row_filter=where,
        )
    if test.kind == "range":
        bounds, params = [], {}
        if test.min is not None:
            bounds.append(f"{col} < :min_value")
            params["min_value"] = _bound(test.min)
        if test.max is not None:
            bounds.append(f"{col} > :max_value")
            params["max_value"] = _bound(test.max)
        where = f"{col} IS NOT NULL AND ({' OR '.join(bounds)})"
        return TestQuery(
            f"SELECT COUNT(*) FROM {table} WHERE {where}",
            f"SELECT DISTINCT {col} FROM {table} WHERE {where} ORDER BY {col} {limit}",
            params=params,
            row_filter=where,
        )
    if test.kind == "relationships":
        assert test.to is not None and test.field is not None
        parent = quote_ident(conn, *test.to)
        ref = quote_ident(conn, test.field)
        child = tested_rows(conn, model, "child")
        where = (
            f"child.{col} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {parent} AS parent WHERE parent.{ref} = child.{col})"
        )
        return TestQuery(
            f"SELECT COUNT(*) FROM {child} WHERE {where}",
            f"SELECT DISTINCT child.{col} FROM {child} WHERE {where} ORDER BY child.{col} {limit}",
        )
    if test.kind == "expression_is_true":
        # Like dbt: a row fails when the expression is false; NULL is left to not_null tests.
        where = f"NOT ({test.expression})"
        dialect = conn.dialect.name
        return TestQuery(
            transpile(f"SELECT COUNT(*) FROM {table} WHERE {where}", dialect),
            transpile(f"SELECT * FROM {table} WHERE {where} {limit}", dialect),
            raw=True,
        )
    raise ValueError(f"unknown test kind {test.kind!r}")


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, decimal.Decimal | dt.date | dt.datetime | dt.time):
        return str(value)
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return str(value)


def _fetch(conn: sa.Connection, query: TestQuery, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    if query.raw:
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql)
            names = [d[0] for d in cursor.description]
            return names, [tuple(r) for r in cursor.fetchall()]
        finally:
            cursor.close()
    statement = sa.text(sql)
    if query.expanding:
        statement = statement.bindparams(*(sa.bindparam(k, expanding=True) for k in query.expanding))
    result = conn.execute(statement, query.params)
    return list(result.keys()), [tuple(r) for r in result.fetchall()]


def combined_row_count_query(conn: sa.Connection, model: SqlModel, queries: Sequence[TestQuery]) -> TestQuery:
    """One scan counting the failing rows of several row-level tests (one column per test).

    Bound parameters are renamed per test (``t<i>_<name>``) so equal names cannot collide.
    """
    table = tested_rows(conn, model)
    columns: list[str] = []
    params: dict[str, Any] = {}
    expanding: list[str] = []
    for i, query in enumerate(queries):
        assert query.row_filter is not None
        condition = query.row_filter
        for name in sorted(query.params, key=len, reverse=True):
            condition = re.sub(rf":{name}\b", f":t{i}_{name}", condition)
            params[f"t{i}_{name}"] = query.params[name]
        expanding.extend(f"t{i}_{name}" for name in query.expanding)
        columns.append(f"COALESCE(SUM(CASE WHEN {condition} THEN 1 ELSE 0 END), 0)")
    return TestQuery(
        f"SELECT {', '.join(columns)} FROM {table}", "", params=params, expanding=tuple(expanding)
    )


def run_data_test(
    conn: sa.Connection, model: SqlModel, test: DataTest, *, failing_rows: int | None = None
) -> TestOutcome:
    """Run one test; a SQL error becomes a failed outcome carrying the error, not an exception.

    ``failing_rows`` is the count already taken by a combined scan; only samples are fetched then.
    """
    query = build_test_query(conn, model, test)
    try:
        with conn.begin():  # rolled back on error, so the next test starts clean on PostgreSQL
            extra: dict[str, Any] = {}
            if failing_rows is None:
                _, rows = _fetch(conn, query, query.count_sql)
                failing = int(rows[0][0] or 0)
                if test.kind == "unique":
                    extra["duplicate_keys"] = int(rows[0][1] or 0)
            else:
                failing = failing_rows
            samples: list[Any] = []
            if failing:
                names, sample_rows = _fetch(conn, query, query.sample_sql)
                samples = [_sample(test, names, row) for row in sample_rows]
    except (sa.exc.DBAPIError, conn.dialect.loaded_dbapi.Error) as exc:
        orig = getattr(exc, "orig", None) or exc
        message = str(orig).strip().splitlines()[0]
        return TestOutcome(test, False, None, [], query.count_sql, error=message)
    return TestOutcome(test, failing == 0, failing, samples, query.count_sql, extra=extra)


def _sample(test: DataTest, names: Sequence[str], row: tuple[Any, ...]) -> Any:
    """A failing value (single-column tests) or a small {column: value} mapping."""
    if test.kind in ("accepted_values", "range", "relationships"):
        return _jsonable(row[0])
    return {name: _jsonable(value) for name, value in zip(names, row, strict=True)}


def run_data_tests(
    warehouse: WarehouseResource, model: SqlModel, tests: Sequence[DataTest]
) -> list[TestOutcome]:
    """Run ``tests`` on one read connection; each gets its own (sub)transaction so one error is isolated."""
    if not tests:
        return []
    with warehouse.connect() as conn:
        counts = _combined_row_counts(conn, model, tests)
        return [run_data_test(conn, model, test, failing_rows=counts.get(test.name)) for test in tests]


def _combined_row_counts(conn: sa.Connection, model: SqlModel, tests: Sequence[DataTest]) -> dict[str, int]:
    """Failing-row counts of the row-level tests from one scan of the table instead of one each.

    On a SQL error nothing is counted here, so each test runs alone and reports its own error.
    """
    row_level = [(t, q) for t in tests if (q := build_test_query(conn, model, t)).row_filter is not None]
    if len(row_level) < 2:
        return {}
    query = combined_row_count_query(conn, model, [q for _, q in row_level])
    try:
        with conn.begin():
            _, rows = _fetch(conn, query, query.count_sql)
    except (sa.exc.DBAPIError, conn.dialect.loaded_dbapi.Error):
        return {}
    return {t.name: int(value or 0) for (t, _), value in zip(row_level, rows[0], strict=True)}
