"""A landing feed's ledger and rejects tables: explicit DDL, one call, upgraded from the inferred shape.

Until now both tables were created by ``write_arrow`` inferring the types of the first batch (the
shape of every database written since the first commit, ec84877 included); the old shape here is
made by that very path. ``ensure_feed_tables`` keeps the rows, gives the ledger its primary key
(reducing a duplicated key to its latest entry first), records step 1 of each table once in
``ops.schema_migrations`` and is a no-op afterwards. Both warehouses.
"""

from datetime import datetime

import pyarrow as pa
import pytest
import sqlalchemy as sa

from assets.sources.kafka_topic import KafkaTopicSource
from assets.sources.kafka_topic._tables import DEAD_LETTER_COLUMNS
from assets.sources.landing_feed._ingest import _ledger_row
from assets.sources.landing_feed._tables import (
    LEDGER_COLUMNS,
    REJECTS_COLUMNS,
    ensure_feed_tables,
    migration_component,
)
from resources.bulk_write import write_arrow
from resources.platform_tables import has_primary_key
from resources.warehouse import WarehouseResource

LEDGER = ("raw", "landing_files")
REJECTS = ("raw", "exportacao_rejects")
T0, T1 = datetime(2026, 11, 20, 10, 0), datetime(2026, 11, 21, 10, 0)
COMPONENTS = {migration_component(LEDGER), migration_component(REJECTS)}


def _ledger(key: str, status: str, at: datetime, total: int = 3) -> pa.Table:
    totals = (total, total - 1, 1)
    return _ledger_row("exports", key, "ab" * 32, f"{key}.csv", status, totals, None, "b1", at, {})


def _rejects(key: str, lines: list[int]) -> pa.Table:
    return pa.table(
        {
            "source_line": pa.array(lines, pa.int64()),
            "reason": [f"bad {n}" for n in lines],
            "raw_content": [f"row {n}" for n in lines],
            "ingest_at": pa.array([T0] * len(lines), pa.timestamp("us")),
            "ingest_batch": ["b1"] * len(lines),
            "ingest_source": [f"{key}.csv"] * len(lines),
            "ingest_file_key": [key] * len(lines),
        }
    )


def _old_write(conn: sa.Connection, table: tuple[str, str], data: pa.Table, column: str, value: str) -> None:
    """How the feed wrote before: ``write_arrow`` creating the table from the batch's types."""
    write_arrow(conn, data, *table, mode="partition", partition_column=column, partition_value=value)


def _shape(conn: sa.Connection, table: tuple[str, str]) -> list[tuple[str, str]]:
    rows = conn.execute(
        sa.text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = :s AND table_name = :t ORDER BY ordinal_position"
        ),
        {"s": table[0], "t": table[1]},
    )
    return [(r[0], r[1]) for r in rows]


def _recorded(conn: sa.Connection) -> list[tuple[str, int]]:
    rows = conn.execute(sa.text("SELECT component, version FROM ops.schema_migrations ORDER BY component"))
    return [(r[0], r[1]) for r in rows if r[0] in COMPONENTS]


def test_inferred_tables_are_upgraded_once_and_keep_their_rows(warehouse: WarehouseResource) -> None:
    with warehouse.begin() as conn:
        _old_write(conn, LEDGER, _ledger("f1", "loaded", T0), "ledger_key", "exports/f1")
        _old_write(conn, LEDGER, _ledger("f2", "quarantined", T0, 0), "ledger_key", "exports/f2")
        # Without a key nothing stopped two racing writers from leaving two entries of one file.
        write_arrow(conn, _ledger("f2", "loaded", T1, 5), *LEDGER, mode="append")
        _old_write(conn, REJECTS, _rejects("f1", [2, 4]), "ingest_file_key", "f1")
        inferred = {LEDGER: _shape(conn, LEDGER), REJECTS: _shape(conn, REJECTS)}
        assert not has_primary_key(conn, *LEDGER)

    assert ensure_feed_tables(warehouse, LEDGER, REJECTS) == {c: [1] for c in COMPONENTS}

    with warehouse.begin() as conn:
        assert [c for c, _ in _shape(conn, LEDGER)] == [c for c, _ in LEDGER_COLUMNS]
        assert [c for c, _ in _shape(conn, REJECTS)] == [c for c, _ in REJECTS_COLUMNS]
        assert {LEDGER: _shape(conn, LEDGER), REJECTS: _shape(conn, REJECTS)} == inferred
        assert has_primary_key(conn, *LEDGER)
        ledger = conn.execute(
            sa.text("SELECT ledger_key, status, rows_total, ingest_at FROM raw.landing_files ORDER BY 1")
        ).all()
        assert [tuple(r) for r in ledger] == [
            ("exports/f1", "loaded", 3, T0),
            ("exports/f2", "loaded", 5, T1),  # the latest of the two entries
        ]
        rejects = conn.execute(sa.text("SELECT source_line, reason FROM raw.exportacao_rejects ORDER BY 1"))
        assert [tuple(r) for r in rejects] == [(2, "bad 2"), (4, "bad 4")]
        assert _recorded(conn) == sorted((c, 1) for c in COMPONENTS)

    assert ensure_feed_tables(warehouse, LEDGER, REJECTS) == {c: [] for c in COMPONENTS}
    _write_path_works(warehouse)


def _write_path_works(warehouse: WarehouseResource) -> None:
    """The feed's writes after the upgrade: a ledger entry replaced and one added, rejects replaced;
    the key now refuses a second entry of one file."""
    with warehouse.begin() as conn:
        _old_write(conn, LEDGER, _ledger("f1", "loaded", T1, 7), "ledger_key", "exports/f1")
        _old_write(conn, LEDGER, _ledger("f3", "loaded", T1), "ledger_key", "exports/f3")
        _old_write(conn, REJECTS, _rejects("f1", [9]), "ingest_file_key", "f1")
    with warehouse.begin() as conn:
        ledger = conn.execute(sa.text("SELECT ledger_key, rows_total FROM raw.landing_files ORDER BY 1"))
        assert [tuple(r) for r in ledger] == [("exports/f1", 7), ("exports/f2", 5), ("exports/f3", 3)]
        rejects = conn.execute(sa.text("SELECT ingest_file_key, source_line FROM raw.exportacao_rejects"))
        assert [tuple(r) for r in rejects] == [("f1", 9)]
    with pytest.raises(sa.exc.IntegrityError), warehouse.begin() as conn:
        conn.execute(sa.text("INSERT INTO raw.landing_files (ledger_key) VALUES (:k)"), {"k": "exports/f3"})


def test_fresh_database_gets_the_inferred_types_and_a_key(warehouse: WarehouseResource) -> None:
    assert ensure_feed_tables(warehouse, LEDGER, REJECTS) == {c: [1] for c in COMPONENTS}
    assert ensure_feed_tables(warehouse, LEDGER, REJECTS) == {c: [] for c in COMPONENTS}
    with warehouse.begin() as conn:
        # The declared types are those inference gives on this engine (same rows, other tables).
        _old_write(conn, ("scratch", "ledger"), _ledger("f1", "loaded", T0), "ledger_key", "exports/f1")
        _old_write(conn, ("scratch", "rejects"), _rejects("f1", [2]), "ingest_file_key", "f1")
        assert _shape(conn, LEDGER) == _shape(conn, ("scratch", "ledger"))
        assert _shape(conn, REJECTS) == _shape(conn, ("scratch", "rejects"))
        assert has_primary_key(conn, *LEDGER)
        assert conn.execute(sa.text("SELECT COUNT(*) FROM raw.landing_files")).scalar_one() == 0
        assert _recorded(conn) == sorted((c, 1) for c in COMPONENTS)
    _write_path_works_fresh(warehouse)


def _write_path_works_fresh(warehouse: WarehouseResource) -> None:
    with warehouse.begin() as conn:
        _old_write(conn, LEDGER, _ledger("f2", "loaded", T0, 5), "ledger_key", "exports/f2")
        _old_write(conn, REJECTS, _rejects("f1", [2, 4]), "ingest_file_key", "f1")
    _write_path_works(warehouse)


def test_a_dead_letter_table_of_a_kafka_source_keeps_its_owner_shape(warehouse: WarehouseResource) -> None:
    """Feeds whose rejects land in a Kafka source's dead letters (commerce, subscriptions)."""
    source = KafkaTopicSource.from_attributes_dict(
        attributes={
            "name": "orders",
            "domain": "shop",
            "topic": "shop.orders",
            "decoder": "json:loads",
            "raw_table": "raw.orders",
            "columns": {"order_id": "TEXT"},
            "dead_letter_table": "raw.orders_dead_letter",
        }
    )
    source.ensure_tables(warehouse)  # the feed's before_ingest hook
    with warehouse.begin() as conn:
        before = _shape(conn, ("raw", "orders_dead_letter"))
    ensure_feed_tables(warehouse, LEDGER, ("raw", "orders_dead_letter"))
    with warehouse.begin() as conn:
        assert _shape(conn, ("raw", "orders_dead_letter")) == before
        assert [c for c, _ in before] == [c for c, _ in DEAD_LETTER_COLUMNS]
