"""SQL understanding with sqlglot: upstream tables, output columns, column-level lineage, transpiling.

Dependencies come from the parsed query's scopes rather than regexes, so CTE names, aliases,
subqueries and table functions are told apart from real tables. Models are written in the
PostgreSQL dialect; DuckDB gets a transpiled copy.
"""

from __future__ import annotations

from collections.abc import Mapping

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.lineage import lineage as sqlglot_lineage
from sqlglot.optimizer.scope import traverse_scope

READ_DIALECT = "postgres"

ColumnSource = tuple[str, str, str]  # (schema, table, column)


class SqlParseError(ValueError):
    """The SQL is not one valid PostgreSQL query (or cannot be translated for the target engine)."""


def parse_query(sql: str) -> exp.Query:
    """Parse exactly one SELECT-like statement; anything else (DDL, two statements) is an error."""
    try:
        statements = [s for s in sqlglot.parse(sql, read=READ_DIALECT) if s is not None]
    except SqlglotError as exc:
        raise SqlParseError(str(exc).splitlines()[0]) from exc
    if len(statements) != 1:
        raise SqlParseError(f"expected one SELECT statement, found {len(statements)} statements")
    statement = statements[0]
    if not isinstance(statement, exp.Query):
        raise SqlParseError(f"expected a SELECT query, found {statement.key.upper()}")
    return statement


def parse_condition(condition: str) -> exp.Expr:
    """Parse a boolean SQL expression (a test expression or an incremental predicate)."""
    query = parse_query(f"SELECT 1 WHERE {condition}")
    where = query.args.get("where")
    if where is None:
        raise SqlParseError(f"not a boolean expression: {condition!r}")
    return where.this


def referenced_tables(query: exp.Query) -> list[tuple[str, str]]:
    """``(schema, table)`` of every real table the query reads, CTE names and table functions excluded."""
    found: list[tuple[str, str]] = []
    for scope in traverse_scope(query):
        for source in scope.sources.values():
            if not isinstance(source, exp.Table) or not isinstance(source.this, exp.Identifier):
                continue  # a CTE/derived table (a Scope) or a table function such as generate_series
            if source.catalog:
                raise SqlParseError(f"use schema.table, not a three-part name: {source.sql(READ_DIALECT)}")
            if not source.db:
                raise SqlParseError(
                    f"table {source.name!r} must be schema-qualified (e.g. raw.{source.name}) "
                    "so it maps to an asset key [schema, table]"
                )
            ref = (source.db, source.name)
            if ref not in found:
                found.append(ref)
    return found


def output_columns(query: exp.Query) -> list[str] | None:
    """Output column names, or None when a ``*`` makes them unknowable without the upstream schema.

    Every computed column must carry an alias: PostgreSQL and DuckDB name ``count(*)`` differently.
    """
    selects = query.selects
    names: list[str] = []
    for position, select in enumerate(selects, start=1):
        if isinstance(select, exp.Star) or (isinstance(select, exp.Column) and select.is_star):
            return None
        # Only aliases and plain columns name a column the same way on both engines.
        if isinstance(select, exp.Alias | exp.Column) and select.output_name:
            names.append(select.output_name)
        else:
            raise SqlParseError(f"output column {position} ({select.sql(READ_DIALECT)}) needs an alias")
    return names


def inferred_column_types(query: exp.Query) -> dict[str, str]:
    """Types stated by top-level casts (``CAST(x AS NUMERIC(15,2)) AS v``) for the column schema."""
    types: dict[str, str] = {}
    for select in query.selects:
        inner = select.unalias()
        if isinstance(select, exp.Alias) and isinstance(inner, exp.Cast):
            types[select.output_name] = inner.to.sql(READ_DIALECT).lower()
    return types


def column_lineage(
    sql: str, schema: Mapping[str, Mapping[str, Mapping[str, str]]] | None = None
) -> dict[str, tuple[ColumnSource, ...]] | None:
    """For each output column, the upstream ``(schema, table, column)`` it is computed from.

    ``schema`` (``{schema: {table: {column: type}}}``) lets sqlglot resolve unqualified columns
    in joins; without it lineage is still exact for single-table scopes. Lineage is
    documentation, so an unresolvable query yields None instead of failing the load.
    """
    nodes = None
    for attempt in (schema or {}, {}):
        try:
            nodes = sqlglot_lineage(None, sql, schema=dict(attempt), dialect=READ_DIALECT)
            break
        except Exception:  # any sqlglot failure only costs the lineage metadata
            continue
    if nodes is None or not isinstance(nodes, dict):
        return None
    result: dict[str, tuple[ColumnSource, ...]] = {}
    for column, root in nodes.items():
        sources: list[ColumnSource] = []
        for node in root.walk():
            table = node.expression
            if not isinstance(table, exp.Table) or not table.db:
                continue
            source_column = node.name.split(".")[-1]
            if source_column == "*":
                continue
            ref = (table.db, table.name, source_column)
            if ref not in sources:
                sources.append(ref)
        result[column] = tuple(sources)
    return result


def transpile(sql: str, dialect: str) -> str:
    """SQL for the warehouse dialect: PostgreSQL text is used as written, DuckDB gets a translation."""
    if dialect == "postgresql":
        return sql
    if dialect != "duckdb":
        raise ValueError(f"unsupported dialect {dialect!r}")
    try:
        parsed = [s for s in sqlglot.parse(sql, read=READ_DIALECT) if s is not None]
        if len(parsed) != 1:
            raise SqlParseError(f"expected one statement, found {len(parsed)}")
        tree = parsed[0].transform(_any_array_to_in)
        return tree.sql(dialect="duckdb", unsupported_level=ErrorLevel.RAISE)
    except SqlglotError as exc:
        raise SqlParseError(f"cannot translate to DuckDB: {str(exc).splitlines()[0]}") from exc


def _any_array_to_in(node: exp.Expression) -> exp.Expression:
    """``x = ANY(ARRAY(SELECT ...))`` → ``x IN (SELECT ...)`` for DuckDB.

    PostgreSQL evaluates an uncorrelated ARRAY(...) once and pushes the comparison down into
    grouped subqueries (and onto indexes), which an ``IN (SELECT ...)`` sub-plan prevents; models
    use it to recompute only the groups new rows touched. DuckDB cannot compare a value with a list
    this way, and its scans need no push-down.
    """
    if (
        isinstance(node, exp.EQ)
        and isinstance(node.expression, exp.Any)
        and isinstance(node.expression.this, exp.Paren)
        and isinstance(node.expression.this.this, exp.Array)
        and len(node.expression.this.this.expressions) == 1
        and isinstance(node.expression.this.this.expressions[0], exp.Select)
    ):
        select = node.expression.this.this.expressions[0]
        return exp.In(this=node.this.copy(), query=exp.Subquery(this=select.copy()))
    return node
