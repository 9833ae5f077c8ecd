"""Build a model's relation in the warehouse, one transaction per materialization, per dialect.

- ``view``: ``CREATE OR REPLACE VIEW`` (on PostgreSQL a drop + create when the columns changed).
- ``table``: readers never see an empty or half-built table. Unchanged columns: TRUNCATE + INSERT
  in one transaction (dependent views survive); changed columns or first run: build
  ``<name>__afl_new`` and swap it in by rename.
- ``incremental``: first run (or ``full_refresh``) builds the table; later runs select the new rows
  (``incremental_predicate``, ``{{ this }}`` = the target) and merge them by ``unique_key``
  (delete matching keys, insert) in one transaction.
- ``materialized_view``: PostgreSQL ``MATERIALIZED VIEW`` with a UNIQUE index on ``unique_key``,
  refreshed ``CONCURRENTLY``; recreated when its definition hash (kept in the object's comment)
  changes. DuckDB has no materialized views, so it gets the ``table`` materialization.

On PostgreSQL a table built or rebuilt whole (and a materialized view created) is ``ANALYZE``d in
the same transaction: the models reading it right after get plans from real statistics instead of
waiting for autovacuum (the export reports ran 3x slower on a fresh ``stg.exportacao``).
Incremental merges leave statistics to autovacuum: they run every streaming cycle.

Model SQL goes through the driver cursor (no parameter parsing), so ``%`` and ``:name`` inside
string literals are safe on both engines.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from dbt_like_sql.lineage import transpile
from dbt_like_sql.project import SqlModel
from resources.bulk_write import quote_ident
from resources.change_notify import notify_changed
from resources.warehouse import WarehouseResource

_THIS_RE = re.compile(r"\{\{\s*this\s*\}\}")
_COMMENT_PREFIX = "afluente:definition="
_MAX_IDENT = 63  # PostgreSQL's identifier limit (NAMEDATALEN - 1)
_LOG = logging.getLogger(__name__)


@dataclass
class MaterializationOutcome:
    """What happened: the action taken, the resulting row count and the statements run."""

    dialect: str
    materialization: str
    action: str
    row_count: int | None = None
    elapsed_s: float = 0.0
    statements: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def sql_preview(self, limit: int = 4000) -> str:
        text = ";\n\n".join(self.statements)
        return text if len(text) <= limit else text[:limit] + "\n-- ... (truncated)"


class _Session:
    """One connection inside one transaction, recording every statement for the run metadata."""

    def __init__(self, conn: sa.Connection, log: Any) -> None:
        self.conn = conn
        self.dialect = conn.dialect.name
        self.log = log
        self.statements: list[str] = []

    @property
    def is_pg(self) -> bool:
        return self.dialect == "postgresql"

    def q(self, *parts: str) -> str:
        return quote_ident(self.conn, *parts)

    def run(self, sql: str) -> int:
        """Execute raw SQL through the DBAPI cursor; return the affected row count when known."""
        self.statements.append(sql)
        cursor = self.conn.connection.cursor()
        try:
            cursor.execute(sql)
            if self.is_pg:
                return cursor.rowcount
            # DuckDB reports DML counts as a one-row result instead of rowcount.
            if cursor.description and len(cursor.description) == 1:
                row = cursor.fetchone()
                if row is not None and isinstance(row[0], int):
                    return row[0]
            return -1
        finally:
            cursor.close()

    def scalar(self, sql: str, **params: Any) -> Any:
        return self.conn.execute(sa.text(sql), params).scalar()

    def rows(self, sql: str, **params: Any) -> list[tuple[Any, ...]]:
        return [tuple(r) for r in self.conn.execute(sa.text(sql), params).fetchall()]

    def relation_kind(self, schema: str, name: str) -> str | None:
        """``table``, ``view``, ``materialized_view`` or None when nothing has that name."""
        if self.is_pg:
            kind = self.scalar(
                "SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = :s AND c.relname = :t",
                s=schema,
                t=name,
            )
            return {"r": "table", "p": "table", "v": "view", "m": "materialized_view"}.get(kind or "")
        kind = self.scalar(
            "SELECT table_type FROM information_schema.tables WHERE table_catalog = current_database() "
            "AND table_schema = :s AND table_name = :t",
            s=schema,
            t=name,
        )
        return {"BASE TABLE": "table", "VIEW": "view"}.get(kind or "")

    def columns(self, schema: str, name: str) -> list[tuple[str, str]]:
        """(name, full type) of a relation's columns, in order; compares a rebuild with the old table."""
        if self.is_pg:
            return self.rows(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "WHERE a.attrelid = to_regclass(:rel) AND a.attnum > 0 AND NOT a.attisdropped "
                "ORDER BY a.attnum",
                rel=self.q(schema, name),
            )
        return self.rows(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_catalog = current_database() AND table_schema = :s AND table_name = :t "
            "ORDER BY ordinal_position",
            s=schema,
            t=name,
        )

    def dependents(self, schema: str, name: str) -> list[str]:
        """Views / materialized views that a PostgreSQL ``DROP ... CASCADE`` would take along."""
        if not self.is_pg:
            return []  # DuckDB binds views by name at query time; nothing is dropped with the table
        rows = self.rows(
            "SELECT DISTINCT dn.nspname || '.' || dc.relname FROM pg_depend d "
            "JOIN pg_rewrite r ON r.oid = d.objid JOIN pg_class dc ON dc.oid = r.ev_class "
            "JOIN pg_namespace dn ON dn.oid = dc.relnamespace "
            "WHERE d.refobjid = to_regclass(:rel) AND dc.oid <> d.refobjid ORDER BY 1",
            rel=self.q(schema, name),
        )
        return [r[0] for r in rows]

    def drop(self, schema: str, name: str, kind: str, details: dict[str, Any]) -> None:
        dependents = self.dependents(schema, name)
        if dependents:
            self.log.warning(
                f"dropping {schema}.{name} also drops dependent {dependents}; "
                "they are rebuilt when their assets next materialize"
            )
            details.setdefault("dropped_dependents", []).extend(dependents)
        keyword = {"table": "TABLE", "view": "VIEW", "materialized_view": "MATERIALIZED VIEW"}[kind]
        cascade = " CASCADE" if self.is_pg else ""
        self.run(f"DROP {keyword} IF EXISTS {self.q(schema, name)}{cascade}")

    def count(self, schema: str, name: str) -> int:
        return int(self.scalar(f"SELECT COUNT(*) FROM {self.q(schema, name)}"))


def index_name(table: str, columns: tuple[str, ...], unique: bool = False) -> str:
    """Deterministic index name (<= 63 chars) so re-runs find and reconcile their own indexes."""
    name = f"{table}__{'uix' if unique else 'ix'}__{'_'.join(columns)}"
    if len(name) > _MAX_IDENT:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]
        name = f"{name[: _MAX_IDENT - 9]}_{digest}"
    return name


def _sync_indexes(s: _Session, schema: str, name: str, wanted: list[tuple[tuple[str, ...], bool]]) -> None:
    """Create the declared indexes that are missing and drop managed ones no longer declared."""
    if s.is_pg:
        existing = {
            r[0]
            for r in s.rows(
                "SELECT indexname FROM pg_indexes WHERE schemaname = :s AND tablename = :t", s=schema, t=name
            )
        }
    else:
        existing = {
            r[0]
            for r in s.rows(
                "SELECT index_name FROM duckdb_indexes() WHERE database_name = current_database() "
                "AND schema_name = :s AND table_name = :t",
                s=schema,
                t=name,
            )
        }
    desired = {index_name(name, cols, unique): (cols, unique) for cols, unique in wanted}
    for stale in sorted(existing - set(desired)):
        if stale.startswith((f"{name}__ix__", f"{name}__uix__")):
            s.run(f"DROP INDEX IF EXISTS {s.q(schema, stale)}")
    for idx, (cols, unique) in desired.items():
        if idx not in existing:
            col_list = ", ".join(s.q(c) for c in cols)
            kw = "UNIQUE INDEX" if unique else "INDEX"
            s.run(f"CREATE {kw} IF NOT EXISTS {s.q(idx)} ON {s.q(schema, name)} ({col_list})")


def definition_hash(model: SqlModel) -> str:
    """What forces a materialized view to be recreated: its SQL, unique key and indexes."""
    payload = f"{model.sql}\n{model.unique_key}\n{model.indexes}"
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def ensure_schema(warehouse: WarehouseResource, schema: str) -> None:
    """Create the schema in its own short transaction; a concurrent creator winning the race is fine."""
    try:
        with warehouse.begin() as conn:
            conn.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
    except sa.exc.IntegrityError:
        pass


def materialize_model(
    warehouse: WarehouseResource, model: SqlModel, *, full_refresh: bool = False, log: Any = None
) -> MaterializationOutcome:
    """Build or refresh ``model`` in the warehouse in one transaction and report what was done."""
    log = log or _LOG
    dialect = warehouse.dialect
    effective = model.materialized
    if effective == "materialized_view" and dialect != "postgresql":
        effective = "table"
    ensure_schema(warehouse, model.schema)
    started = time.perf_counter()
    with warehouse.begin() as conn:
        s = _Session(conn, log)
        details: dict[str, Any] = {}
        if effective == "view":
            action = _build_view(s, model, details)
        elif effective == "table":
            action = _build_table(s, model, transpile(model.sql, dialect), full_refresh, details)
        elif effective == "incremental":
            action = _build_incremental(s, model, full_refresh, details)
        else:
            action = _build_materialized_view(s, model, full_refresh, details)
        row_count = s.count(model.schema, model.name)
        notify_changed(conn, f"{model.schema}.{model.name}")  # delivered to readers at commit
    return MaterializationOutcome(
        dialect=dialect,
        materialization=effective,
        action=action,
        row_count=row_count,
        elapsed_s=round(time.perf_counter() - started, 3),
        statements=s.statements,
        details=details,
    )


def _replace_other_kind(s: _Session, model: SqlModel, keep: str, details: dict[str, Any]) -> str | None:
    """Drop whatever holds the model's name if it is not a ``keep``; return the surviving kind."""
    kind = s.relation_kind(model.schema, model.name)
    if kind is not None and kind != keep:
        s.log.info(f"{model.relation} is a {kind}; replacing it with a {keep}")
        s.drop(model.schema, model.name, kind, details)
        return None
    return kind


def _build_view(s: _Session, model: SqlModel, details: dict[str, Any]) -> str:
    kind = _replace_other_kind(s, model, "view", details)
    target = s.q(model.schema, model.name)
    body = transpile(model.sql, s.dialect)
    if kind is None or not s.is_pg:
        s.run(f"CREATE OR REPLACE VIEW {target} AS\n{body}\n")
        return "created" if kind is None else "replaced"
    try:
        with s.conn.begin_nested():  # PostgreSQL refuses to drop/retype columns of a replaced view
            s.run(f"CREATE OR REPLACE VIEW {target} AS\n{body}\n")
        return "replaced"
    except (sa.exc.DBAPIError, s.conn.dialect.loaded_dbapi.Error):
        s.statements.pop()
        s.drop(model.schema, model.name, "view", details)
        s.run(f"CREATE VIEW {target} AS\n{body}\n")
        return "recreated"


def _analyze(s: _Session, schema: str, name: str) -> None:
    """Fresh planner statistics for a relation just built whole (PostgreSQL; DuckDB keeps its own)."""
    if s.is_pg:
        s.run(f"ANALYZE {s.q(schema, name)}")


def _build_table(
    s: _Session, model: SqlModel, select_sql: str, full_refresh: bool, details: dict[str, Any]
) -> str:
    """Rebuild the table atomically; see the module docstring for the two strategies."""
    schema, name = model.schema, model.name
    target = s.q(schema, name)
    indexes = [(cols, False) for cols in model.indexes]
    kind = _replace_other_kind(s, model, "table", details)
    if kind == "table" and not full_refresh:
        probe = s.q(schema, f"{name}__afl_probe")
        s.run(f"DROP TABLE IF EXISTS {probe}")
        s.run(f"CREATE TABLE {probe} AS SELECT * FROM (\n{select_sql}\n) AS src LIMIT 0")
        unchanged = s.columns(schema, f"{name}__afl_probe") == s.columns(schema, name)
        s.run(f"DROP TABLE {probe}")
        if unchanged:
            cols = ", ".join(s.q(c) for c, _ in s.columns(schema, name))
            s.run(f"TRUNCATE TABLE {target}")
            s.run(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM (\n{select_sql}\n) AS src")
            _sync_indexes(s, schema, name, indexes)
            _analyze(s, schema, name)
            return "truncate_insert"
        s.log.info(f"{model.relation}: columns changed, swapping in a new table")
    staging_name = f"{name}__afl_new"
    staging = s.q(schema, staging_name)
    s.run(f"DROP TABLE IF EXISTS {staging}")
    s.run(f"CREATE TABLE {staging} AS\n{select_sql}\n")
    if kind == "table":
        s.drop(schema, name, "table", details)
    s.run(f"ALTER TABLE {staging} RENAME TO {s.q(name)}")
    _sync_indexes(s, schema, name, indexes)
    _analyze(s, schema, name)
    if kind is None:
        return "created"
    return "full_refresh" if full_refresh else "swapped"


def _build_incremental(s: _Session, model: SqlModel, full_refresh: bool, details: dict[str, Any]) -> str:
    schema, name = model.schema, model.name
    kind = _replace_other_kind(s, model, "table", details)
    if kind is None or full_refresh:
        return _build_table(s, model, transpile(model.sql, s.dialect), full_refresh, details)

    target = s.q(schema, name)
    source = f"SELECT * FROM (\n{model.sql}\n) AS src"
    if model.incremental_predicate:
        source += f"\nWHERE {_THIS_RE.sub(lambda _: target, model.incremental_predicate)}"
    new_name = f"{name}__afl_incr"
    new = s.q(schema, new_name)
    s.run(f"DROP TABLE IF EXISTS {new}")
    s.run(f"CREATE TABLE {new} AS\n{transpile(source, s.dialect)}\n")
    new_cols, old_cols = s.columns(schema, new_name), s.columns(schema, name)
    if new_cols != old_cols:
        raise ValueError(
            f"{model.relation}: the model's columns {new_cols} no longer match the table's {old_cols}; "
            "materialize it once with full_refresh: true"
        )
    match = " AND ".join(f"n.{s.q(k)} = {target}.{s.q(k)}" for k in model.unique_key)
    deleted = s.run(f"DELETE FROM {target} WHERE EXISTS (SELECT 1 FROM {new} AS n WHERE {match})")
    cols = ", ".join(s.q(c) for c, _ in new_cols)
    inserted = s.run(f"INSERT INTO {target} ({cols}) SELECT {cols} FROM {new}")
    s.run(f"DROP TABLE {new}")
    _sync_indexes(s, schema, name, [(cols_, False) for cols_ in model.indexes])
    details.update(rows_deleted=deleted, rows_inserted=inserted)
    return "merged"


def _build_materialized_view(
    s: _Session, model: SqlModel, full_refresh: bool, details: dict[str, Any]
) -> str:
    """PostgreSQL only: refresh CONCURRENTLY when the definition is unchanged, else (re)create."""
    schema, name = model.schema, model.name
    target = s.q(schema, name)
    indexes = [(model.unique_key, True)] + [(cols, False) for cols in model.indexes]
    wanted_hash = definition_hash(model)
    kind = _replace_other_kind(s, model, "materialized_view", details)
    if kind == "materialized_view":
        comment = s.scalar("SELECT obj_description(to_regclass(:rel), 'pg_class')", rel=target) or ""
        current_hash = comment[len(_COMMENT_PREFIX) :] if comment.startswith(_COMMENT_PREFIX) else None
        details["definition_hash"] = wanted_hash
        if current_hash == wanted_hash and not full_refresh:
            _sync_indexes(s, schema, name, indexes)
            populated = s.scalar(
                "SELECT ispopulated FROM pg_matviews WHERE schemaname = :s AND matviewname = :n",
                s=schema,
                n=name,
            )
            concurrently = " CONCURRENTLY" if populated else ""
            s.run(f"REFRESH MATERIALIZED VIEW{concurrently} {target}")
            return "refreshed_concurrently" if populated else "refreshed"
        s.log.info(f"{model.relation}: definition changed ({current_hash} -> {wanted_hash}), recreating")
        s.drop(schema, name, "materialized_view", details)
    s.run(f"CREATE MATERIALIZED VIEW {target} AS\n{model.sql}\nWITH DATA")
    _sync_indexes(s, schema, name, indexes)
    _analyze(s, schema, name)
    s.run(f"COMMENT ON MATERIALIZED VIEW {target} IS '{_COMMENT_PREFIX}{wanted_hash}'")
    details["definition_hash"] = wanted_hash
    return "created" if kind is None else "recreated"
