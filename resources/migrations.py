"""Versioned upgrade steps of platform tables, recorded in ``ops.schema_migrations`` (both engines).

Each mechanism owns its tables' DDL (``CREATE ... IF NOT EXISTS`` for the current shape) and a list
of numbered steps that bring an older shape up to date (drop a retired index, add a column, ...).
:func:`apply_migrations` runs the steps a database has not recorded yet, each in the caller's
transaction together with its ``ops.schema_migrations`` row, so a step is applied exactly once even
when several processes start at the same time (PostgreSQL: an advisory lock per component; DuckDB
has one writing process per file). Steps must be idempotent on a fresh database, where they run
right after the tables were created in their current shape.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa

from resources.bulk_write import quote_ident

MIGRATIONS_SCHEMA = "ops"
MIGRATIONS_TABLE = "schema_migrations"


@dataclass(frozen=True)
class Migration:
    """Step ``version`` (1, 2, ... in order) of a component's tables; ``apply`` runs its SQL."""

    version: int
    name: str
    apply: Callable[[sa.Connection], None]


def ensure_migrations_table(conn: sa.Connection) -> None:
    """Create ``ops.schema_migrations`` if missing (one row per applied step)."""
    conn.execute(sa.schema.CreateSchema(MIGRATIONS_SCHEMA, if_not_exists=True))
    conn.exec_driver_sql(
        f"CREATE TABLE IF NOT EXISTS {quote_ident(conn, MIGRATIONS_SCHEMA, MIGRATIONS_TABLE)} ("
        "component TEXT NOT NULL, version INTEGER NOT NULL, name TEXT NOT NULL, "
        "applied_at TIMESTAMP NOT NULL, PRIMARY KEY (component, version))"
    )


def applied_versions(conn: sa.Connection, component: str) -> set[int]:
    """Versions of ``component`` already recorded."""
    table = quote_ident(conn, MIGRATIONS_SCHEMA, MIGRATIONS_TABLE)
    rows = conn.execute(sa.text(f"SELECT version FROM {table} WHERE component = :c"), {"c": component})
    return {int(row[0]) for row in rows}


def apply_migrations(conn: sa.Connection, component: str, steps: Sequence[Migration]) -> list[int]:
    """Apply the steps of ``component`` not recorded yet, in version order; returns their versions.

    Runs in the caller's transaction (``conn`` from ``engine.begin()``): a failing step leaves
    neither its changes nor its record. Needs :func:`ensure_migrations_table` to have run.
    """
    versions = [step.version for step in steps]
    if versions != sorted(set(versions)) or (versions and versions[0] < 1):
        raise ValueError(f"{component}: migration versions must be 1, 2, ... in order, got {versions}")
    pending = [step for step in steps if step.version not in applied_versions(conn, component)]
    if not pending:
        return []
    if conn.dialect.name == "postgresql":
        conn.execute(
            sa.text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
            {"key": f"afluente.migrations/{component}"},
        )
        done = applied_versions(conn, component)  # another process may have applied them meanwhile
        pending = [step for step in pending if step.version not in done]
    table = quote_ident(conn, MIGRATIONS_SCHEMA, MIGRATIONS_TABLE)
    for step in pending:
        step.apply(conn)
        conn.execute(
            sa.text(f"INSERT INTO {table} (component, version, name, applied_at) VALUES (:c, :v, :n, :at)"),
            {"c": component, "v": step.version, "n": step.name, "at": datetime.now(UTC).replace(tzinfo=None)},
        )
    return [step.version for step in pending]


__all__ = ["Migration", "applied_versions", "apply_migrations", "ensure_migrations_table"]
