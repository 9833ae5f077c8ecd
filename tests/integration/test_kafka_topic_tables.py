"""Tables of a Kafka topic source: created by one call, upgraded from the earlier shape by a recorded step.

The earlier commerce layout (before the BRIN/hash indexes) had a unique B-tree on the Kafka
coordinates and a B-tree on the id column; ``ensure_tables`` drops them once (migration 1 in
``ops.schema_migrations``), keeps the rows, and is a no-op afterwards. Both warehouses.
"""

import pytest
import sqlalchemy as sa

from assets.sources.kafka_topic import KafkaTopicSource
from assets.sources.kafka_topic._tables import migration_component, migrations
from resources.migrations import Migration, applied_versions, apply_migrations, ensure_migrations_table
from resources.warehouse import WarehouseResource

SOURCE = KafkaTopicSource.from_attributes_dict(
    attributes={
        "name": "orders",
        "domain": "shop",
        "topic": "shop.orders",
        "decoder": "json:loads",
        "raw_table": "raw.orders",
        "columns": {"order_id": "TEXT", "amount": "DOUBLE PRECISION"},
        "id_column": "order_id",
        "dead_letter_table": "raw.orders_dead_letter",
    }
)
RETIRED = {"orders__uix__kafka_coordinates", "orders__ix__order_id"}


def _indexes(conn: sa.Connection) -> set[str]:
    if conn.dialect.name != "postgresql":
        return set()
    return {r[0] for r in conn.execute(sa.text("SELECT indexname FROM pg_indexes WHERE schemaname = 'raw'"))}


def _old_shape(warehouse: WarehouseResource) -> None:
    """The tables as the first version created them, with its indexes and one row."""
    with warehouse.begin() as conn:
        conn.exec_driver_sql("CREATE SCHEMA IF NOT EXISTS raw")
        columns = ", ".join(f"{name} {kind}" for name, kind in SOURCE.tables.raw_columns)
        conn.exec_driver_sql(f"CREATE TABLE raw.orders ({columns})")
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(
                "CREATE UNIQUE INDEX orders__uix__kafka_coordinates "
                "ON raw.orders (source_partition, source_offset)"
            )
            conn.exec_driver_sql("CREATE INDEX orders__ix__order_id ON raw.orders (order_id)")
        conn.exec_driver_sql(
            "INSERT INTO raw.orders (order_id, amount, source_partition, source_offset) "
            "VALUES ('o1', 2.5, 0, 7)"
        )


def test_fresh_database_gets_every_table_and_records_the_steps(warehouse: WarehouseResource) -> None:
    SOURCE.ensure_tables(warehouse)
    SOURCE.ensure_tables(warehouse)  # idempotent
    with warehouse.begin() as conn:
        for table in ("orders", "orders_dead_letter", "kafka_offsets", "kafka_ingest_batches"):
            assert conn.execute(sa.text(f"SELECT COUNT(*) FROM raw.{table}")).scalar_one() == 0
        assert applied_versions(conn, "kafka_topic/orders") == {1}
        assert apply_migrations(conn, migration_component(SOURCE.tables), migrations(SOURCE.tables)) == []
        if conn.dialect.name == "postgresql":
            assert {"orders__hix__order_id", "orders__brin__kafka_coordinates"} <= _indexes(conn)
            assert not RETIRED & _indexes(conn)


def test_earlier_shape_is_upgraded_once_and_keeps_its_rows(warehouse: WarehouseResource) -> None:
    _old_shape(warehouse)
    with warehouse.begin() as conn:
        assert _indexes(conn) == (RETIRED if conn.dialect.name == "postgresql" else set())
    SOURCE.ensure_tables(warehouse)
    with warehouse.begin() as conn:
        assert not RETIRED & _indexes(conn)
        if conn.dialect.name == "postgresql":
            assert "orders__uix__file_line" in _indexes(conn)
        rows = conn.execute(sa.text("SELECT order_id, amount, source_offset FROM raw.orders")).all()
        assert [tuple(r) for r in rows] == [("o1", 2.5, 7)]
        recorded = conn.execute(
            sa.text("SELECT component, version, name FROM ops.schema_migrations ORDER BY version")
        ).all()
        assert [(r[0], r[1]) for r in recorded] == [("kafka_topic/orders", 1)]
        assert "drop" in recorded[0][2]


def test_a_failing_step_leaves_neither_its_changes_nor_its_record(warehouse: WarehouseResource) -> None:
    def create(conn: sa.Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE ops.step_one (x INTEGER)")

    def fail(conn: sa.Connection) -> None:
        conn.exec_driver_sql("CREATE TABLE ops.step_two (x INTEGER)")
        raise RuntimeError("step two is broken")

    steps = [Migration(1, "one", create), Migration(2, "two", fail)]
    with warehouse.begin() as conn:
        ensure_migrations_table(conn)
    with pytest.raises(RuntimeError, match="step two"), warehouse.begin() as conn:
        apply_migrations(conn, "demo", steps)
    with warehouse.begin() as conn:
        assert applied_versions(conn, "demo") == set()
        assert apply_migrations(conn, "demo", steps[:1]) == [1]
        assert applied_versions(conn, "demo") == {1}
    with pytest.raises(ValueError, match="in order"), warehouse.begin() as conn:
        apply_migrations(conn, "demo", [Migration(2, "b", create), Migration(1, "a", create)])
