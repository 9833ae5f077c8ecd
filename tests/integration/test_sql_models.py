"""SQL models materialized through the real Dagster machinery on DuckDB and on the real PostgreSQL.

``warehouse`` (tests/conftest.py) is parametrized over both engines; PostgreSQL-only behaviour
(materialized views refreshed CONCURRENTLY) uses ``pg_warehouse`` on ``pg_database_url``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import dagster as dg
import pandas as pd
import pytest
import sqlalchemy as sa

from dbt_like_sql import SqlProject, build_sql_model_assets, load_project
from resources.warehouse import WarehouseResource, dispose_engines

T0 = dt.datetime(2025, 1, 1, 0, 0, 0)
T1 = dt.datetime(2025, 1, 2, 0, 0, 0)

RAW_EXPORTACAO_DDL = """
CREATE TABLE raw.exportacao (
    ano INTEGER, mes INTEGER, pais TEXT, setor TEXT, ncm TEXT,
    valor_usd NUMERIC(15, 2), peso_kg NUMERIC(15, 3), source_line BIGINT,
    ingest_at TIMESTAMP, ingest_batch TEXT, ingest_source TEXT
)
"""
# Shares 99.715 % and 0.285 % are exact ties at the 3rd decimal: PostgreSQL rounds them up, and
# so must DuckDB (whose NUMERIC division returns DOUBLE, where 0.285 is 0.28499999...).
EXPORT_ROWS = [
    (2023, 1, " China ", "Agricultura", "17011100", "500.00", "10.125", 1, T0, "batch_1", "jan.csv"),
    (2024, 2, "China", " Mineração", "26011100", "497.15", "20.250", 2, T0, "batch_1", "jan.csv"),
    (2023, 3, "EUA", "Agricultura", "09011100", "2.85", "1.000", 3, T0, "batch_1", "jan.csv"),
]


# --------------------------------------------------------------------------------------------
# Helpers


@pytest.fixture
def pg_warehouse(pg_database_url: str) -> Iterator[WarehouseResource]:
    """The real PostgreSQL only; pooled connections are closed before the database is dropped."""
    yield WarehouseResource(url=pg_database_url)
    dispose_engines()


def run_sql(warehouse: WarehouseResource, *statements: str, params: Sequence[Mapping[str, Any]] = ()) -> None:
    with warehouse.begin() as conn:
        for statement in statements:
            if params:
                conn.execute(sa.text(statement), list(params))
            else:
                conn.execute(sa.text(statement))


def seed_exportacao(warehouse: WarehouseResource, rows: Sequence[tuple[Any, ...]] = EXPORT_ROWS) -> None:
    warehouse.ensure_schemas("raw")
    names = [
        "ano",
        "mes",
        "pais",
        "setor",
        "ncm",
        "valor_usd",
        "peso_kg",
        "source_line",
        "ingest_at",
        "ingest_batch",
        "ingest_source",
    ]
    run_sql(warehouse, "DROP TABLE IF EXISTS raw.exportacao", RAW_EXPORTACAO_DDL)
    insert = f"INSERT INTO raw.exportacao ({', '.join(names)}) VALUES ({', '.join(':' + n for n in names)})"
    records = [
        {k: (Decimal(v) if k in ("valor_usd", "peso_kg") else v) for k, v in zip(names, row, strict=True)}
        for row in rows
    ]
    run_sql(warehouse, insert, params=records)


def write_models(root: Path, models: Mapping[str, tuple[str, str]]) -> SqlProject:
    """Write ``{"domain/stem": (yaml header, sql)}`` model files and load them as a project."""
    for rel, (header, sql) in models.items():
        path = root / f"{rel}.sql"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"/* ---\n{header.strip()}\n--- */\n{sql.strip()}\n", encoding="utf-8")
    return load_project(root)


def materialize(
    project: SqlProject,
    warehouse: WarehouseResource,
    selection: Any = None,
    run_config: Mapping[str, Any] | None = None,
    raise_on_error: bool = True,
) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        build_sql_model_assets(project),
        resources={"warehouse": warehouse},
        selection=selection,
        run_config=run_config,
        raise_on_error=raise_on_error,
    )


def materializations(result: dg.ExecuteInProcessResult) -> dict[str, dict[str, Any]]:
    return {
        ev.asset_key.to_user_string(): {k: v.value for k, v in ev.materialization.metadata.items()}
        for ev in result.get_asset_materialization_events()
    }


def checks(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {ev.check_name: ev for ev in result.get_asset_check_evaluations()}


def frame(warehouse: WarehouseResource, sql: str) -> list[dict[str, Any]]:
    return warehouse.read_frame(sql).to_dict("records")


def drop_updated_at(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        stamp = row.pop("updated_at")
        assert isinstance(stamp, pd.Timestamp | dt.datetime) and stamp.tzinfo is None
    return rows


def index_names(warehouse: WarehouseResource, schema: str, table: str) -> set[str]:
    if warehouse.dialect == "postgresql":
        sql = "SELECT indexname FROM pg_indexes WHERE schemaname = :s AND tablename = :t"
    else:
        sql = "SELECT index_name FROM duckdb_indexes() WHERE schema_name = :s AND table_name = :t"
    return set(warehouse.read_frame(sql, {"s": schema, "t": table}).iloc[:, 0])


def tables_like(warehouse: WarehouseResource, schema: str, pattern: str) -> list[str]:
    return list(
        warehouse.read_frame(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = :s AND table_name LIKE :p",
            {"s": schema, "p": pattern},
        ).iloc[:, 0]
    )


EXPECTED_PAIS = [
    {
        "pais": "China",
        "total_usd": Decimal("997.15"),
        "total_kg": Decimal("30.375"),
        "participacao_pct": Decimal("99.72"),
        "anos": [2023, 2024],
    },
    {
        "pais": "EUA",
        "total_usd": Decimal("2.85"),
        "total_kg": Decimal("1.000"),
        "participacao_pct": Decimal("0.29"),
        "anos": [2023],
    },
]
EXPECTED_SETOR = [
    {"setor": "Agricultura", "total_usd": Decimal("502.85"), "anos": [2023]},
    {"setor": "Mineração", "total_usd": Decimal("497.15"), "anos": [2024]},
]
EXPECTED_GERAL = [
    {
        "id": 1,
        "total_usd": Decimal("1000.00"),
        "total_kg": Decimal("31.375"),
        "paises_count": 2,
        "setores_count": 2,
        "anos": [2023, 2024],
    }
]


def read_exports(warehouse: WarehouseResource) -> dict[str, list[dict[str, Any]]]:
    return {
        "pais": drop_updated_at(frame(warehouse, "SELECT * FROM mart.mv_resumo_pais ORDER BY pais")),
        "setor": drop_updated_at(frame(warehouse, "SELECT * FROM mart.mv_resumo_setor ORDER BY setor")),
        "geral": drop_updated_at(frame(warehouse, "SELECT * FROM mart.mv_resumo_geral")),
        "stg": frame(warehouse, "SELECT * FROM stg.exportacao ORDER BY ano, mes"),
    }


# --------------------------------------------------------------------------------------------
# The export-domain models


def export_models() -> list:
    """The exports domain's models (other domains' raw tables are not seeded here)."""
    return [model for model in load_project() if model.group == "exports"]


def test_export_models_exact_values_and_idempotent(warehouse: WarehouseResource) -> None:
    seed_exportacao(warehouse)
    project = export_models()
    first = materialize(project, warehouse)
    assert first.success
    meta = materializations(first)
    assert set(meta) == {
        "stg/exportacao",
        "mart/mv_resumo_pais",
        "mart/mv_resumo_setor",
        "mart/mv_resumo_geral",
    }
    assert meta["stg/exportacao"]["dagster/row_count"] == 3
    assert meta["stg/exportacao"]["action"] == "created"
    assert meta["mart/mv_resumo_pais"]["dagster/row_count"] == 2
    assert meta["mart/mv_resumo_pais"]["dialect"] == warehouse.dialect
    assert meta["mart/mv_resumo_pais"]["dagster/table_name"] == "mart.mv_resumo_pais"
    assert "mv_resumo_pais" in meta["mart/mv_resumo_pais"]["executed_sql"]
    evaluations = first.get_asset_check_evaluations()
    assert [ev.check_name for ev in evaluations if not ev.passed] == []
    assert len(evaluations) == sum(len(m.tests) for m in project)

    values = read_exports(warehouse)
    assert values["pais"] == EXPECTED_PAIS
    assert values["setor"] == EXPECTED_SETOR
    assert values["geral"] == EXPECTED_GERAL
    stg = values["stg"]
    assert [r["pais"] for r in stg] == ["China", "EUA", "China"]  # trimmed
    assert stg[0]["valor_usd"] == Decimal("500.00") and stg[0]["peso_kg"] == Decimal("10.125")
    assert stg[1]["setor"] == "Agricultura" and stg[2]["setor"] == "Mineração"
    assert set(stg[0]) == {
        "ano",
        "mes",
        "pais",
        "setor",
        "ncm",
        "valor_usd",
        "peso_kg",
        "ingest_at",
        "ingest_batch",
        "ingest_source",
    }
    assert {
        "exportacao__ix__ano_pais",
        "exportacao__ix__setor",
        "exportacao__ix__ingest_batch",
    } <= index_names(warehouse, "stg", "exportacao")

    second = materialize(project, warehouse)
    meta2 = materializations(second)
    assert meta2["stg/exportacao"]["action"] == "truncate_insert"
    expected_mv_action = "refreshed_concurrently" if warehouse.dialect == "postgresql" else "truncate_insert"
    assert meta2["mart/mv_resumo_pais"]["action"] == expected_mv_action
    assert meta2["mart/mv_resumo_pais"]["materialization"] == (
        "materialized_view" if warehouse.dialect == "postgresql" else "table"
    )
    assert read_exports(warehouse) == values
    assert tables_like(warehouse, "stg", "%afl%") == [] and tables_like(warehouse, "mart", "%afl%") == []

    # New data flows through on the next run.
    seed_exportacao(
        warehouse,
        [*EXPORT_ROWS, (2025, 12, "Japão", "Indústria", "84011000", "0.00", "0.500", 4, T1, "b2", "x.csv")],
    )
    materialize(project, warehouse)
    geral = drop_updated_at(frame(warehouse, "SELECT * FROM mart.mv_resumo_geral"))
    assert geral[0]["paises_count"] == 3 and geral[0]["anos"] == [2023, 2024, 2025]
    japan = frame(warehouse, "SELECT participacao_pct FROM mart.mv_resumo_pais WHERE pais = 'Japão'")
    assert japan == [{"participacao_pct": Decimal("0.00")}]


@pytest.mark.postgres
def test_export_models_identical_on_both_engines(tmp_path: Path, pg_warehouse: WarehouseResource) -> None:
    results = []
    for warehouse in (WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}"), pg_warehouse):
        seed_exportacao(warehouse)
        materialize(export_models(), warehouse)
        results.append(read_exports(warehouse))
    duck, pg = results
    assert duck == pg


def test_export_data_tests_catch_bad_staging_rows(warehouse: WarehouseResource) -> None:
    bad = [
        *EXPORT_ROWS,
        (2023, 13, "Chile", "Agricultura", "1701", "-5.00", "1.000", 4, T0, "batch_1", "jan.csv"),
        (2023, 0, None, "Agricultura", "17011100", "1.00", "1.000", 5, T0, "batch_1", "jan.csv"),
    ]
    seed_exportacao(warehouse, bad)
    project = export_models()
    result = materialize(project, warehouse, selection=[dg.AssetKey(["stg", "exportacao"])])
    evals = checks(result)
    assert evals["range__mes"].metadata["failing_rows"].value == 2
    assert evals["range__mes"].metadata["sample_failing_values"].value == [0, 13]
    assert evals["not_null__pais"].metadata["failing_rows"].value == 1
    assert evals["range__valor_usd"].metadata["failing_rows"].value == 1
    assert evals["ncm_has_8_chars"].metadata["failing_rows"].value == 1
    assert {name for name, ev in evals.items() if not ev.passed} == {
        "range__mes",
        "not_null__pais",
        "range__valor_usd",
        "ncm_has_8_chars",
    }


# --------------------------------------------------------------------------------------------
# Generic materializations on a small model graph

RAW_EVENTS_DDL = "CREATE TABLE raw.events (id INTEGER, val TEXT, updated_at TIMESTAMP)"


def seed_events(warehouse: WarehouseResource, rows: Sequence[tuple[int, str, dt.datetime]]) -> None:
    warehouse.ensure_schemas("raw")
    run_sql(warehouse, "DROP TABLE IF EXISTS raw.events", RAW_EVENTS_DDL)
    run_sql(
        warehouse,
        "INSERT INTO raw.events (id, val, updated_at) VALUES (:id, :val, :ts)",
        params=[{"id": i, "val": v, "ts": ts} for i, v, ts in rows],
    )


INCREMENTAL_MODELS = {
    "ev/events_incr": (
        """
schema: stg
materialized: incremental
unique_key: [id]
indexes: [[updated_at]]
incremental_predicate: >-
  updated_at > (SELECT COALESCE(MAX(updated_at), TIMESTAMP '1970-01-01') FROM {{ this }})
columns:
  id: {tests: [not_null, unique]}
""",
        "SELECT id, val, updated_at FROM raw.events",
    ),
    "ev/events_all": (
        "schema: stg\nmaterialized: incremental\nunique_key: id",
        "SELECT id, UPPER(val) AS val, updated_at FROM raw.events",
    ),
}


def test_incremental_merge(warehouse: WarehouseResource, tmp_path: Path) -> None:
    project = write_models(tmp_path / "models", INCREMENTAL_MODELS)
    seed_events(warehouse, [(1, "a", T0), (2, "b", T0), (3, "c", T0)])
    meta = materializations(materialize(project, warehouse))
    assert meta["stg/events_incr"]["action"] == "created"
    assert meta["stg/events_incr"]["dagster/row_count"] == 3
    assert "events_incr__ix__updated_at" in index_names(warehouse, "stg", "events_incr")

    # id 2 changes, id 4 appears, id 3 disappears from the source.
    seed_events(warehouse, [(1, "a", T0), (2, "b2", T1), (4, "d", T1)])
    meta = materializations(materialize(project, warehouse))
    incr = meta["stg/events_incr"]
    assert (incr["action"], incr["rows_deleted"], incr["rows_inserted"], incr["dagster/row_count"]) == (
        "merged",
        1,
        2,
        4,
    )
    assert "WHERE updated_at > (SELECT COALESCE(MAX(updated_at)" in incr["executed_sql"].replace('"', "")
    rows = frame(warehouse, "SELECT id, val FROM stg.events_incr ORDER BY id")
    assert rows == [
        {"id": 1, "val": "a"},
        {"id": 2, "val": "b2"},
        {"id": 3, "val": "c"},
        {"id": 4, "val": "d"},
    ]
    full = meta["stg/events_all"]  # no predicate: the whole select is merged
    assert (full["rows_deleted"], full["rows_inserted"], full["dagster/row_count"]) == (2, 3, 4)
    rows = frame(warehouse, "SELECT id, val FROM stg.events_all ORDER BY id")
    assert rows == [
        {"id": 1, "val": "A"},
        {"id": 2, "val": "B2"},
        {"id": 3, "val": "C"},
        {"id": 4, "val": "D"},
    ]

    # Nothing new: the predicate selects no rows and the merge is a no-op.
    incr = materializations(materialize(project, warehouse))["stg/events_incr"]
    assert (incr["rows_deleted"], incr["rows_inserted"], incr["dagster/row_count"]) == (0, 0, 4)

    # full_refresh rebuilds from the source (id 3 is gone).
    result = materialize(
        project,
        warehouse,
        selection=[dg.AssetKey(["stg", "events_all"])],
        run_config={"ops": {"stg__events_all": {"config": {"full_refresh": True}}}},
    )
    assert materializations(result)["stg/events_all"]["action"] == "full_refresh"
    assert frame(warehouse, "SELECT id FROM stg.events_all ORDER BY id") == [{"id": 1}, {"id": 2}, {"id": 4}]


def test_incremental_schema_change_needs_full_refresh(warehouse: WarehouseResource, tmp_path: Path) -> None:
    seed_events(warehouse, [(1, "a", T0)])
    project = write_models(
        tmp_path / "m",
        {
            "ev/inc": (
                "schema: stg\nmaterialized: incremental\nunique_key: id",
                "SELECT id, val FROM raw.events",
            )
        },
    )
    materialize(project, warehouse)
    project = write_models(
        tmp_path / "m",
        {
            "ev/inc": (
                "schema: stg\nmaterialized: incremental\nunique_key: id",
                "SELECT id, val, 1 AS extra FROM raw.events",
            )
        },
    )
    result = materialize(project, warehouse, raise_on_error=False)
    assert not result.success
    failure = next(ev for ev in result.all_events if ev.event_type_value == "STEP_FAILURE")
    assert "full_refresh" in str(failure.event_specific_data.error)
    assert frame(warehouse, "SELECT * FROM stg.inc") == [{"id": 1, "val": "a"}]
    assert tables_like(warehouse, "stg", "%afl%") == []


def test_views_and_tables_follow_sql_changes(warehouse: WarehouseResource, tmp_path: Path) -> None:
    seed_events(warehouse, [(1, "a", T0), (2, "b", T0)])
    root = tmp_path / "models"
    models = {
        "g/v": ("schema: s", "SELECT id, val FROM raw.events"),
        "g/t": ("schema: s\nmaterialized: table\nindexes: [[id]]", "SELECT id, val FROM raw.events"),
        "g/tv": ("schema: s", "SELECT id FROM s.t"),
    }
    meta = materializations(materialize(write_models(root, models), warehouse))
    assert (meta["s/v"]["action"], meta["s/t"]["action"]) == ("created", "created")
    assert meta["s/v"]["dagster/row_count"] == 2

    meta = materializations(materialize(write_models(root, models), warehouse))
    assert (meta["s/v"]["action"], meta["s/t"]["action"]) == ("replaced", "truncate_insert")

    # Drop a view column (PostgreSQL refuses CREATE OR REPLACE) and add a table column (swap).
    models["g/v"] = ("schema: s", "SELECT id FROM raw.events")
    models["g/t"] = (
        "schema: s\nmaterialized: table\nindexes: [[val]]",
        "SELECT id, val, 7 AS extra FROM raw.events",
    )
    project = write_models(root, models)
    meta = materializations(
        materialize(project, warehouse, selection=[dg.AssetKey(["s", "v"]), dg.AssetKey(["s", "t"])])
    )
    expected_view_action = "recreated" if warehouse.dialect == "postgresql" else "replaced"
    assert meta["s/v"]["action"] == expected_view_action
    assert meta["s/t"]["action"] == "swapped"
    assert frame(warehouse, "SELECT * FROM s.v ORDER BY id") == [{"id": 1}, {"id": 2}]
    assert frame(warehouse, "SELECT * FROM s.t ORDER BY id") == [
        {"id": 1, "val": "a", "extra": 7},
        {"id": 2, "val": "b", "extra": 7},
    ]
    assert index_names(warehouse, "s", "t") == {"t__ix__val"}
    if warehouse.dialect == "postgresql":
        # The dependent view went with the old table and is rebuilt by its own asset.
        assert meta["s/t"]["dropped_dependents"] == ["s.tv"]
        assert not warehouse.table_exists("s", "tv")
    materialize(project, warehouse, selection=[dg.AssetKey(["s", "tv"])])
    assert frame(warehouse, "SELECT * FROM s.tv ORDER BY id") == [{"id": 1}, {"id": 2}]

    # A model switching materialization replaces the old object.
    models["g/v"] = ("schema: s\nmaterialized: table", "SELECT id FROM raw.events")
    meta = materializations(
        materialize(write_models(root, models), warehouse, selection=[dg.AssetKey(["s", "v"])])
    )
    assert meta["s/v"]["action"] == "created" and meta["s/v"]["materialization"] == "table"


def test_failed_rebuild_leaves_the_table_untouched(warehouse: WarehouseResource, tmp_path: Path) -> None:
    seed_events(warehouse, [(1, "a", T0)])
    root = tmp_path / "models"
    materialize(
        write_models(root, {"g/t": ("schema: s\nmaterialized: table", "SELECT id, val FROM raw.events")}),
        warehouse,
    )
    broken = write_models(
        root,
        {"g/t": ("schema: s\nmaterialized: table", "SELECT CAST(val AS INTEGER) AS id, val FROM raw.events")},
    )
    assert not materialize(broken, warehouse, raise_on_error=False).success
    assert frame(warehouse, "SELECT * FROM s.t") == [{"id": 1, "val": "a"}]
    assert tables_like(warehouse, "s", "%afl%") == []


# --------------------------------------------------------------------------------------------
# Materialized views on PostgreSQL


def matview(warehouse: WarehouseResource, name: str) -> dict[str, Any]:
    rows = warehouse.read_frame(
        "SELECT m.ispopulated, obj_description(to_regclass('mart.' || m.matviewname), 'pg_class') AS comment "
        "FROM pg_matviews m WHERE m.schemaname = 'mart' AND m.matviewname = :n",
        {"n": name},
    ).to_dict("records")
    return rows[0] if rows else {}


@pytest.mark.postgres
def test_materialized_view_refresh_concurrently_and_recreate(
    pg_warehouse: WarehouseResource, tmp_path: Path
) -> None:
    warehouse = pg_warehouse
    seed_events(warehouse, [(1, "a", T0), (2, "a", T0), (3, "b", T0)])
    root = tmp_path / "models"
    header = "schema: mart\nmaterialized: materialized_view\nunique_key: [val]\nindexes: [[n]]"
    project = write_models(
        root, {"g/mv_counts": (header, "SELECT val, COUNT(*) AS n FROM raw.events GROUP BY val")}
    )
    meta = materializations(materialize(project, warehouse))["mart/mv_counts"]
    assert meta["action"] == "created" and meta["materialization"] == "materialized_view"
    assert "CREATE MATERIALIZED VIEW" in meta["executed_sql"] and "WITH DATA" in meta["executed_sql"]
    info = matview(warehouse, "mv_counts")
    assert info["ispopulated"] and info["comment"] == f"afluente:definition={meta['definition_hash']}"
    unique = frame(
        warehouse,
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'mart' AND tablename = 'mv_counts' "
        "ORDER BY indexname",
    )
    assert [r["indexname"] for r in unique] == ["mv_counts__ix__n", "mv_counts__uix__val"]
    assert "CREATE UNIQUE INDEX" in unique[1]["indexdef"]

    run_sql(warehouse, "INSERT INTO raw.events VALUES (4, 'b', NULL), (5, 'c', NULL)")
    meta = materializations(materialize(project, warehouse))["mart/mv_counts"]
    assert meta["action"] == "refreshed_concurrently"
    assert "REFRESH MATERIALIZED VIEW CONCURRENTLY" in meta["executed_sql"]
    assert frame(warehouse, "SELECT val, n FROM mart.mv_counts ORDER BY val") == [
        {"val": "a", "n": 2},
        {"val": "b", "n": 2},
        {"val": "c", "n": 1},
    ]
    first_hash = meta["definition_hash"]

    # Changed SQL: dropped and recreated (a refresh would keep the old definition).
    project = write_models(
        root,
        {
            "g/mv_counts": (
                header,
                "SELECT val, COUNT(*) AS n, MAX(id) AS max_id FROM raw.events GROUP BY val",
            )
        },
    )
    meta = materializations(materialize(project, warehouse))["mart/mv_counts"]
    assert meta["action"] == "recreated" and meta["definition_hash"] != first_hash
    assert frame(warehouse, "SELECT val, max_id FROM mart.mv_counts ORDER BY val")[0] == {
        "val": "a",
        "max_id": 2,
    }
    assert matview(warehouse, "mv_counts")["comment"].endswith(meta["definition_hash"])

    # Readers keep working during a concurrent refresh: it runs inside its own transaction.
    with warehouse.connect() as reader:
        assert reader.execute(sa.text("SELECT COUNT(*) FROM mart.mv_counts")).scalar() == 3
        meta = materializations(materialize(project, warehouse))["mart/mv_counts"]
        assert meta["action"] == "refreshed_concurrently"
        assert reader.execute(sa.text("SELECT COUNT(*) FROM mart.mv_counts")).scalar() == 3


@pytest.mark.postgres
def test_materialized_view_replaces_a_table_of_the_same_name(
    pg_warehouse: WarehouseResource, tmp_path: Path
) -> None:
    warehouse = pg_warehouse
    seed_events(warehouse, [(1, "a", T0)])
    root = tmp_path / "models"
    write_models(root, {"g/x": ("schema: mart\nmaterialized: table", "SELECT id FROM raw.events")})
    materialize(load_project(root), warehouse)
    project = write_models(
        root,
        {
            "g/x": (
                "schema: mart\nmaterialized: materialized_view\nunique_key: id",
                "SELECT id FROM raw.events",
            )
        },
    )
    meta = materializations(materialize(project, warehouse))["mart/x"]
    assert meta["action"] == "created"
    assert matview(warehouse, "x")["ispopulated"]


# --------------------------------------------------------------------------------------------
# Data tests as asset checks

PEOPLE_MODEL = {
    "p/people": (
        """
schema: stg
materialized: table
columns:
  id: {tests: [not_null, unique]}
  name:
    tests: [{not_null: {severity: warn}}, {expression_is_true: {expression: "name <> 'Bob'", name: no_bob}}]
  country:
    tests:
      - {accepted_values: {values: [BR, US, "O'Brien"]}}
      - {relationships: {to: raw.countries, field: code}}
      - {relationships: {to: raw.nope, field: code, name: rel_missing_table, severity: warn}}
      - {expression_is_true: "char_length(country) = 2"}
  age: {tests: [{range: {min: 0, max: 120}}]}
  parent_id: {tests: [{relationships: {to: stg.people, field: id}}]}
tests:
  - unique: [id, country]
""",
        "SELECT id, name, country, age, parent_id FROM raw.people",
    )
}


def seed_people(warehouse: WarehouseResource) -> None:
    warehouse.ensure_schemas("raw")
    run_sql(
        warehouse,
        "DROP TABLE IF EXISTS raw.people",
        "CREATE TABLE raw.people (id INTEGER, name TEXT, country TEXT, age INTEGER, parent_id INTEGER)",
        "DROP TABLE IF EXISTS raw.countries",
        "CREATE TABLE raw.countries (code TEXT)",
        "INSERT INTO raw.countries VALUES ('BR'), ('US')",
    )
    run_sql(
        warehouse,
        "INSERT INTO raw.people VALUES (:id, :name, :country, :age, :parent)",
        params=[
            {"id": 1, "name": "Ana", "country": "BR", "age": 30, "parent": None},
            {"id": 2, "name": None, "country": "BR", "age": 150, "parent": 1},
            {"id": 2, "name": "Bob", "country": "XX", "age": -1, "parent": 99},
            {"id": 3, "name": "O'Brien", "country": "US", "age": 40, "parent": 1},
        ],
    )


def test_failing_data_tests_report_counts_and_samples(warehouse: WarehouseResource, tmp_path: Path) -> None:
    seed_people(warehouse)
    project = write_models(tmp_path / "models", PEOPLE_MODEL)
    result = materialize(project, warehouse)
    assert result.success  # non-blocking checks never fail the run
    evals = checks(result)

    def outcome(name: str) -> tuple[bool, int, Any]:
        ev = evals[name]
        return ev.passed, ev.metadata["failing_rows"].value, ev.metadata["sample_failing_values"].value

    assert outcome("not_null__id") == (True, 0, [])
    passed, failing, samples = outcome("unique__id")
    assert (passed, failing, evals["unique__id"].metadata["duplicate_keys"].value) == (False, 2, 1)
    assert samples == [{"id": 2, "n_rows": 2}]
    assert outcome("unique__id__country") == (True, 0, [])
    assert outcome("accepted_values__country") == (False, 1, ["XX"])
    assert outcome("relationships__country__raw_countries") == (False, 1, ["XX"])
    assert outcome("relationships__parent_id__stg_people") == (False, 1, [99])
    assert outcome("range__age") == (False, 2, [-1, 150])
    assert outcome("expression_is_true__country") == (True, 0, [])
    passed, failing, samples = outcome("no_bob")
    assert (passed, failing) == (False, 1) and samples[0]["name"] == "Bob"
    passed, failing, samples = outcome("not_null__name")
    assert (passed, failing, samples[0]["id"]) == (False, 1, 2)
    assert evals["not_null__name"].severity == dg.AssetCheckSeverity.WARN
    assert evals["unique__id"].severity == dg.AssetCheckSeverity.ERROR
    missing = evals["rel_missing_table"]
    assert not missing.passed and "nope" in missing.metadata["error"].value

    # Checks alone (no materialization), e.g. re-run from the UI after fixing data upstream.
    run_sql(warehouse, "UPDATE stg.people SET country = 'US' WHERE country = 'XX'")
    key = dg.AssetKey(["stg", "people"])
    alone = materialize(project, warehouse, selection=dg.AssetSelection.checks_for_assets(key))
    assert alone.get_asset_materialization_events() == []
    evals = checks(alone)
    assert len(evals) == len(project.get(key).tests)
    assert evals["accepted_values__country"].passed

    one = materialize(
        project, warehouse, selection=dg.AssetSelection.checks(dg.AssetCheckKey(key, "range__age"))
    )
    assert list(checks(one)) == ["range__age"] and one.get_asset_materialization_events() == []


def test_blocking_check_stops_downstream(warehouse: WarehouseResource, tmp_path: Path) -> None:
    seed_events(warehouse, [(1, "a", T0), (2, None, T0)])  # type: ignore[list-item]
    project = write_models(
        tmp_path / "models",
        {
            "g/guarded": (
                "schema: s\nmaterialized: table\ncolumns: {val: {tests: [{not_null: {blocking: true}}]}}",
                "SELECT id, val FROM raw.events",
            ),
            "g/after": ("schema: s", "SELECT id FROM s.guarded"),
        },
    )
    result = materialize(project, warehouse, raise_on_error=False)
    assert not result.success
    assert set(materializations(result)) == {"s/guarded"}
    assert checks(result)["not_null__val"].metadata["failing_rows"].value == 1
    assert not warehouse.table_exists("s", "after")


def test_tables_built_whole_are_analyzed_on_postgresql(
    pg_warehouse: WarehouseResource, tmp_path: Path
) -> None:
    """Models reading a table right after its build plan with real statistics (pg_class.reltuples)."""
    seed_events(pg_warehouse, [(1, "a", T0), (2, "b", T0), (3, "c", T0)])
    root = tmp_path / "models"
    models = {"g/t": ("schema: s\nmaterialized: table", "SELECT id, val FROM raw.events")}

    def planner_rows() -> float:
        return float(pg_warehouse.scalar("SELECT reltuples FROM pg_class WHERE oid = 's.t'::regclass"))

    meta = materializations(materialize(write_models(root, models), pg_warehouse))
    assert meta["s/t"]["action"] == "created" and planner_rows() == 3
    run_sql(
        pg_warehouse,
        "INSERT INTO raw.events (id, val, updated_at) VALUES (:id, :val, :ts)",
        params=[{"id": 4, "val": "d", "ts": T0}],
    )
    meta = materializations(materialize(write_models(root, models), pg_warehouse))
    assert meta["s/t"]["action"] == "truncate_insert" and planner_rows() == 4
