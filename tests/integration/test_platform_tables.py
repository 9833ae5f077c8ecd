"""Platform tables with explicit DDL (``ops.*``, the MongoDB source's, the usage landed files'): each owner's
one call creates them on a fresh database and adopts the shape earlier versions created, rows intact.

For every family the old DDL is written here literally, as the code that first created the table had
it (``git show ec84877:assets/usage/tables.py``, ``ec84877:orchestration/freshness.py``,
``ec84877:sensors/run_failure.py``; ``e366a87:assets/monitor/_ledger.py``,
``5ff6433:assets/subscriptions/responses.py`` for the tables added after ec84877). None changed shape
since, so step 1 of each component is a recorded baseline; the tests pin that the declared DDL gives
exactly the old shape (columns, types, nullability, primary key) on each engine. Both warehouses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
import sqlalchemy as sa
from bson import ObjectId
from dagster import AssetKey

from assets.monitor._ledger import OFFSETS_TABLES, Position, ensure_table, record_positions
from assets.sources.mongo_collection._watermark import Advance, advance_watermark, lock_watermark
from assets.subscriptions.responses import LEDGER_TABLES, Published, _record, ensure_ledger
from assets.usage.tables import LANDED_FILES_TABLES, prepare_usage_tables, usage_mongo_source
from orchestration.freshness import FRESHNESS_TABLES, Aggregate, FreshnessEvaluation, record_freshness
from resources.bulk_write import write_arrow
from resources.migrations import apply_migrations
from resources.platform_tables import PlatformTables, ensure_platform_tables
from resources.warehouse import WarehouseResource
from sensors.incidents_store import INCIDENTS_TABLES, Incident, ensure_incidents_table, record_incidents

T0, T1 = datetime(2026, 11, 20, 10, 0), datetime(2026, 11, 21, 10, 0)
MONGO_TABLES = usage_mongo_source().tables.platform_tables()


@dataclass(frozen=True)
class Family:
    group: PlatformTables
    old_ddl: tuple[str, ...]
    old_pg_indexes: tuple[str, ...]
    old_rows: tuple[str, ...]  # literal INSERTs of the old version's rows
    ensure: Callable[[WarehouseResource], None]  # the owner's one call
    write: Callable[[WarehouseResource], None]  # the owner's write path
    check: str  # rows of the table, ordered by their first column
    written: tuple[Any, ...]  # the row the write path adds


def _with_begin(warehouse: WarehouseResource) -> None:
    with warehouse.begin() as conn:
        ensure_incidents_table(conn)


def _write_freshness(warehouse: WarehouseResource) -> None:
    aggregate = Aggregate(AssetKey(["marts", "new"]), "exports", timedelta(minutes=60), "EXPORTS_FRESHNESS")
    record_freshness(warehouse, [FreshnessEvaluation(aggregate, T0, T1)])


def _write_incident(warehouse: WarehouseResource) -> None:
    incident = Incident("r2", "job", "marts/x", "step", "E", "boom", "transient", "x", "retry", 1, "r2")
    assert record_incidents(warehouse, [incident]) == 1


def _write_watermark(warehouse: WarehouseResource) -> None:
    table = usage_mongo_source().tables.watermarks
    with warehouse.begin() as conn:
        lock_watermark(conn, table, "mongodb:db.new", "db", "new")
        advance = Advance(None, ObjectId("0" * 24), 3, 0, 0, 1, "b2", "r2", T1)
        advance_watermark(conn, table, "mongodb:db.new", advance)


def _write_landed_rows(warehouse: WarehouseResource) -> None:
    rows = pa.table(
        {
            "event_id": ["e2"],
            "input_tokens": pa.array([7], pa.int64()),
            "ingest_at": pa.array([T1], pa.timestamp("us")),
            "ingest_file_key": ["k2"],
        }
    )
    with warehouse.begin() as conn:
        write_arrow(
            conn,
            rows,
            "raw",
            "usage_event_files",
            "partition",
            partition_column="ingest_file_key",
            partition_value="k2",
        )


FAMILIES = {
    "freshness": Family(
        FRESHNESS_TABLES,
        (
            "CREATE TABLE IF NOT EXISTS ops.freshness ("
            "asset_key VARCHAR(300) PRIMARY KEY, domain VARCHAR(100) NOT NULL, last_updated_at TIMESTAMP, "
            "threshold_minutes INTEGER NOT NULL, status VARCHAR(10) NOT NULL, checked_at TIMESTAMP NOT NULL)",
        ),
        (),
        (
            "INSERT INTO ops.freshness VALUES "
            "('marts/old', 'exports', '2026-11-19 10:00:00', 60, 'stale', '2026-11-20 10:00:00')",
        ),
        lambda warehouse: record_freshness(warehouse, []),
        _write_freshness,
        "SELECT asset_key, status FROM ops.freshness ORDER BY 1",
        ("marts/new", "stale"),
    ),
    "incidents": Family(
        INCIDENTS_TABLES,
        (
            "CREATE TABLE IF NOT EXISTS ops.incidents ("
            "incident_id TEXT PRIMARY KEY, detected_at TIMESTAMP NOT NULL, run_id TEXT NOT NULL, "
            "job_name TEXT, asset_keys TEXT, step_key TEXT, error_class TEXT, error_message TEXT, "
            "diagnosis TEXT NOT NULL, explanation TEXT, action TEXT NOT NULL, attempt INTEGER NOT NULL, "
            "root_run_id TEXT, retry_run_id TEXT)",
        ),
        (),
        (
            "INSERT INTO ops.incidents (incident_id, detected_at, run_id, diagnosis, action, attempt) "
            "VALUES ('r1:abc', '2026-11-20 10:00:00', 'r1', 'permanent', 'none', 1)",
        ),
        _with_begin,
        _write_incident,
        "SELECT run_id, diagnosis FROM ops.incidents ORDER BY 1",
        ("r2", "transient"),
    ),
    "system_logs_offsets": Family(
        OFFSETS_TABLES,
        (
            "CREATE TABLE IF NOT EXISTS ops.system_logs_offsets (source_kind VARCHAR(10) NOT NULL, "
            "source TEXT NOT NULL, part INTEGER NOT NULL, next_position BIGINT NOT NULL, path TEXT, "
            "updated_at TIMESTAMP NOT NULL, PRIMARY KEY (source_kind, source, part))",
        ),
        (),
        (
            "INSERT INTO ops.system_logs_offsets VALUES "
            "('file', '2049:77', 0, 1024, '/var/log/a.log', '2026-11-20 10:00:00')",
        ),
        ensure_table,
        lambda warehouse: record_positions(warehouse, [Position("kafka", "logs", 0, 42)]),
        "SELECT source_kind, source, next_position FROM ops.system_logs_offsets ORDER BY 1",
        ("kafka", "logs", 42),
    ),
    "subscription_responses": Family(
        LEDGER_TABLES,
        (
            'CREATE TABLE IF NOT EXISTS ops.subscription_responses ("correlation_id" TEXT PRIMARY KEY, '
            '"status" TEXT, "topic" TEXT, "kafka_partition" INTEGER, "kafka_offset" BIGINT, '
            '"published_at" TIMESTAMP)',
        ),
        (),
        (
            "INSERT INTO ops.subscription_responses VALUES "
            "('c1', 'applied', 'responses', 0, 4, '2026-11-20 10:00:00')",
        ),
        ensure_ledger,
        lambda warehouse: _record(warehouse, "responses", [Published("c2", "rejected", 1, 9)]),
        "SELECT correlation_id, kafka_offset FROM ops.subscription_responses ORDER BY 1",
        ("c2", 9),
    ),
    "mongo_collection": Family(
        MONGO_TABLES,
        (
            "CREATE TABLE IF NOT EXISTS raw.usage_events (event_id TEXT, user_id TEXT, user_name TEXT, "
            "team TEXT, ide TEXT, model TEXT, feature TEXT, language TEXT, prompt TEXT, response TEXT, "
            "input_tokens BIGINT, output_tokens BIGINT, latency_ms BIGINT, created_at TIMESTAMP, "
            "source_updated_at TIMESTAMP, source TEXT, ingest_batch TEXT, ingested_at TIMESTAMP)",
            "CREATE TABLE IF NOT EXISTS raw.usage_events_rejects (event_id TEXT, reason TEXT, "
            "raw_content TEXT, source_updated_at TIMESTAMP, source TEXT, ingest_batch TEXT, "
            "ingested_at TIMESTAMP)",
            "CREATE TABLE IF NOT EXISTS raw.mongo_watermarks (source_key TEXT NOT NULL, database_name TEXT, "
            "collection_name TEXT, wm_updated_at TIMESTAMP, wm_id TEXT, sweep_id TEXT, docs_loaded BIGINT, "
            "docs_updated BIGINT, docs_stale BIGINT, docs_rejected BIGINT, last_batch TEXT, "
            "last_run_id TEXT, advanced_at TIMESTAMP)",
        ),
        (
            "CREATE UNIQUE INDEX IF NOT EXISTS usage_events__uix__event_id ON raw.usage_events (event_id)",
            "CREATE INDEX IF NOT EXISTS usage_events_rejects__ix__event_id ON raw.usage_events_rejects "
            "(event_id)",
            "CREATE UNIQUE INDEX IF NOT EXISTS mongo_watermarks__uix__source_key ON raw.mongo_watermarks "
            "(source_key)",
        ),
        (
            "INSERT INTO raw.mongo_watermarks (source_key, docs_loaded, docs_updated, docs_stale, "
            "docs_rejected) VALUES ('mongodb:db.old', 10, 0, 0, 0)",
            "INSERT INTO raw.usage_events (event_id, input_tokens) VALUES ('e1', 5)",
        ),
        lambda warehouse: usage_mongo_source().ensure_tables(warehouse),
        _write_watermark,
        "SELECT source_key, docs_loaded FROM raw.mongo_watermarks ORDER BY 1",
        ("mongodb:db.new", 3),
    ),
    "usage_landed_files": Family(
        LANDED_FILES_TABLES,
        (
            "CREATE TABLE IF NOT EXISTS raw.usage_event_files (event_id TEXT, user_id TEXT, user_name TEXT, "
            "team TEXT, ide TEXT, model TEXT, feature TEXT, language TEXT, prompt TEXT, response TEXT, "
            "input_tokens BIGINT, output_tokens BIGINT, latency_ms BIGINT, created_at TIMESTAMP, "
            "source_updated_at TIMESTAMP, ingest_at TIMESTAMP, ingest_batch TEXT, ingest_source TEXT, "
            "ingest_file_key TEXT)",
            "CREATE TABLE IF NOT EXISTS raw.usage_event_files_rejects (source_line BIGINT, reason TEXT, "
            "raw_content TEXT, ingest_at TIMESTAMP, ingest_batch TEXT, ingest_source TEXT, "
            "ingest_file_key TEXT)",
        ),
        (
            "CREATE INDEX IF NOT EXISTS usage_event_files__ix__file_key ON raw.usage_event_files "
            "(ingest_file_key)",
        ),
        (
            "INSERT INTO raw.usage_event_files (event_id, input_tokens, ingest_file_key) "
            "VALUES ('e1', 5, 'k1')",
        ),
        prepare_usage_tables,
        _write_landed_rows,
        "SELECT event_id, input_tokens, ingest_file_key FROM raw.usage_event_files ORDER BY 1",
        ("e2", 7, "k2"),
    ),
}


def _shape(conn: sa.Connection, schema: str, table: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(column, type, nullable) in order, and the primary key's columns."""
    columns = conn.execute(
        sa.text(
            "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
            "WHERE table_schema = :s AND table_name = :t ORDER BY ordinal_position"
        ),
        {"s": schema, "t": table},
    ).all()
    key = conn.execute(
        sa.text(
            "SELECT k.column_name FROM information_schema.table_constraints c "
            "JOIN information_schema.key_column_usage k ON k.constraint_name = c.constraint_name "
            "AND k.table_schema = c.table_schema AND k.table_name = c.table_name "
            "WHERE c.constraint_type = 'PRIMARY KEY' AND c.table_schema = :s AND c.table_name = :t "
            "ORDER BY k.ordinal_position"
        ),
        {"s": schema, "t": table},
    ).all()
    return [(r[0], r[1], r[2]) for r in columns], [r[0] for r in key]


def _indexes(conn: sa.Connection, group: PlatformTables) -> set[tuple[str, str]]:
    """(table, index) of the group's tables (PostgreSQL; DuckDB gets none)."""
    if conn.dialect.name != "postgresql":
        return set()
    rows = conn.execute(sa.text("SELECT schemaname, tablename, indexname FROM pg_indexes")).all()
    names = {(spec.schema, spec.name) for spec in group.tables}
    return {(r[1], r[2]) for r in rows if (r[0], r[1]) in names}


def _recorded(conn: sa.Connection, component: str) -> list[int]:
    rows = conn.execute(
        sa.text("SELECT version FROM ops.schema_migrations WHERE component = :c ORDER BY version"),
        {"c": component},
    )
    return [r[0] for r in rows]


def _applies_nothing_more(warehouse: WarehouseResource, family: Family) -> None:
    family.ensure(warehouse)  # the second call
    assert ensure_platform_tables(warehouse, family.group) == {family.group.component: []}
    with warehouse.begin() as conn:
        assert _recorded(conn, family.group.component) == [1]
        assert apply_migrations(conn, family.group.component, family.group.steps) == []


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_the_old_shape_is_adopted_once_with_its_rows(warehouse: WarehouseResource, name: str) -> None:
    family = FAMILIES[name]
    schemas = sorted({spec.schema for spec in family.group.tables})
    with warehouse.begin() as conn:
        for schema in schemas:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {schema}")
        for statement in family.old_ddl + (
            family.old_pg_indexes if conn.dialect.name == "postgresql" else ()
        ):
            conn.exec_driver_sql(statement)
        for statement in family.old_rows:
            conn.exec_driver_sql(statement)
        old = {spec.name: _shape(conn, spec.schema, spec.name) for spec in family.group.tables}
        old_indexes = _indexes(conn, family.group)
        before = conn.exec_driver_sql(family.check).all()

    family.ensure(warehouse)

    with warehouse.begin() as conn:
        for spec in family.group.tables:
            assert _shape(conn, spec.schema, spec.name) == old[spec.name], spec.name
            assert [c for c, _, _ in old[spec.name][0]] == [c for c, _ in spec.columns]
            # The declared DDL gives exactly the old shape on this engine.
            fresh = replace(spec, name=f"{spec.name}_declared", pg_indexes=())
            conn.exec_driver_sql(fresh.create_statement(conn))
            assert _shape(conn, fresh.schema, fresh.name) == old[spec.name], spec.name
            conn.exec_driver_sql(f"DROP TABLE {fresh.schema}.{fresh.name}")
        assert _indexes(conn, family.group) == old_indexes
        assert conn.exec_driver_sql(family.check).all() == before
        assert _recorded(conn, family.group.component) == [1]
    _applies_nothing_more(warehouse, family)

    family.write(warehouse)
    with warehouse.begin() as conn:
        after = [tuple(r) for r in conn.exec_driver_sql(family.check)]
    assert after == sorted([*(tuple(r) for r in before), family.written])


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_a_fresh_database_gets_the_declared_tables(warehouse: WarehouseResource, name: str) -> None:
    family = FAMILIES[name]
    family.ensure(warehouse)
    with warehouse.begin() as conn:
        for spec in family.group.tables:
            columns, key = _shape(conn, spec.schema, spec.name)
            assert [c for c, _, _ in columns] == [c for c, _ in spec.columns]
            assert key == list(spec.primary_key)
            assert conn.exec_driver_sql(f"SELECT COUNT(*) FROM {spec.schema}.{spec.name}").scalar_one() == 0
            if conn.dialect.name == "postgresql":
                assert {(spec.name, i.name) for i in spec.pg_indexes} <= _indexes(conn, family.group)
        assert _recorded(conn, family.group.component) == [1]
    _applies_nothing_more(warehouse, family)
    family.write(warehouse)
    with warehouse.begin() as conn:
        assert [tuple(r) for r in conn.exec_driver_sql(family.check)] == [family.written]
