"""Pure tests of dbt_like_sql: header parsing, strict validation, SQL deps, lineage, asset definitions."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from dagster import AssetCheckKey, AssetKey, AutomationCondition, Definitions, TableColumnLineage

from dbt_like_sql import (
    DEFAULT_MODELS_DIR,
    SqlModel,
    SqlProjectError,
    build_sql_model_assets,
    declared_automation_condition,
    load_project,
    parse_model,
)
from dbt_like_sql.data_tests import build_test_query, combined_row_count_query
from dbt_like_sql.lineage import SqlParseError, column_lineage, parse_query, referenced_tables, transpile
from dbt_like_sql.materialize import definition_hash, index_name
from resources.warehouse import WarehouseResource

HEADER = "/* ---\n{yaml}\n--- */\n{sql}\n"


def model_text(yaml: str, sql: str = "SELECT a, b FROM raw.src") -> str:
    return HEADER.format(yaml=yaml.strip("\n"), sql=sql)


def write_model(root: Path, domain: str, stem: str, yaml: str, sql: str) -> Path:
    path = root / domain / f"{stem}.sql"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(model_text(yaml, sql), encoding="utf-8")
    return path


def parse(yaml: str, sql: str = "SELECT a, b FROM raw.src", stem: str = "m") -> SqlModel:
    return parse_model(model_text(yaml, sql), Path(f"models/dom/{stem}.sql"), default_group="dom")


# --------------------------------------------------------------------------------------------
# The shipped export models


def test_export_project_loads_with_deps_groups_and_lineage() -> None:
    project = load_project()
    assert {m.key for m in project if m.group == "exports"} == {
        AssetKey(["stg", "exportacao"]),
        AssetKey(["mart", "mv_resumo_pais"]),
        AssetKey(["mart", "mv_resumo_geral"]),
        AssetKey(["mart", "mv_resumo_setor"]),
    }
    stg = project.get("stg.exportacao")
    assert stg.deps == (AssetKey(["raw", "exportacao"]),)
    assert stg.materialized == "table"
    assert stg.indexes == (("ano", "pais"), ("setor",), ("ingest_batch",))
    assert stg.inferred_types["valor_usd"] == "decimal(15, 2)"
    assert project.external_deps == {
        AssetKey(["raw", "exportacao"]),
        AssetKey(["raw", "commerce_events"]),
        AssetKey(["raw", "usage_events"]),
        AssetKey(["raw", "usage_event_files"]),
        AssetKey(["raw", "user_events"]),
        AssetKey(["stg", "usage_alert_thresholds"]),
    }

    pais = project.get(["mart", "mv_resumo_pais"])
    assert pais.group == "exports" and pais.materialized == "materialized_view"
    assert pais.unique_key == ("pais",)
    assert pais.deps == (AssetKey(["stg", "exportacao"]),)
    assert pais.column_lineage is not None
    assert pais.column_lineage["participacao_pct"] == (("stg", "exportacao", "valor_usd"),)
    assert pais.column_lineage["anos"] == (("stg", "exportacao", "ano"),)
    assert pais.column_lineage["updated_at"] == ()
    assert {t.name for t in pais.tests} >= {"unique__pais", "not_null__pais", "range__participacao_pct"}
    assert pais.automation is not None and pais.automation.kind == "eager"

    geral = project.get("mart.mv_resumo_geral")
    assert geral.unique_key == ("id",)
    assert geral.output_columns == (
        "id",
        "total_usd",
        "total_kg",
        "paises_count",
        "setores_count",
        "anos",
        "updated_at",
    )
    # Models run on DuckDB through sqlglot: every shipped model must translate.
    for model in project:
        assert transpile(model.sql, "duckdb")
    assert list(project.models).index(stg.key) < list(project.models).index(pais.key)  # topological


def test_code_version_is_stable_and_tracks_sql_and_config() -> None:
    a = parse("schema: s")
    assert a.code_version == parse("schema: s").code_version
    assert a.code_version != parse("schema: s", sql="SELECT a, b, 1 AS c FROM raw.src").code_version
    assert a.code_version != parse("schema: s\ndescription: changed").code_version
    assert len(a.code_version) == 16


def test_full_header_is_parsed() -> None:
    model = parse(
        """
schema: mart
name: resumo
group: exports
materialized: incremental
unique_key: k
indexes: [[a, b], b]
description: Something useful
owners: ["team:exports"]
tags: {layer: mart, tier: 1}
incremental_predicate: "b > (SELECT MAX(b) FROM {{ this }})"
automation: eager
columns:
  a:
    description: The a
    data_type: integer
    tests: [not_null, {accepted_values: {values: [1, 2], severity: warn}}]
  b: {tests: [{range: {min: 0, blocking: true}}, {relationships: {to: stg.other, field: id}}]}
tests:
  - unique: [a, b]
  - expression_is_true: "a <= b"
""",
        sql="SELECT a, b, a AS k FROM raw.src",
    )
    assert (model.schema, model.name, model.group) == ("mart", "resumo", "exports")
    assert model.unique_key == ("k",)
    assert model.indexes == (("a", "b"), ("b",))
    assert model.tags == {"layer": "mart", "tier": "1"}
    assert model.owners == ("team:exports",)
    assert model.automation is not None and model.automation.kind == "eager"
    assert model.columns["a"].data_type == "integer"
    tests = {t.name: t for t in model.tests}
    assert set(tests) == {
        "not_null__a",
        "accepted_values__a",
        "range__b",
        "relationships__b__stg_other",
        "unique__a__b",
        next(n for n in tests if n.startswith("expression_is_true__")),
    }
    assert tests["accepted_values__a"].severity == "warn"
    assert tests["accepted_values__a"].values == (1, 2)
    assert tests["range__b"].blocking and tests["range__b"].min == 0 and tests["range__b"].max is None
    assert tests["relationships__b__stg_other"].to == ("stg", "other")
    assert tests["unique__a__b"].columns == ("a", "b")


def test_name_defaults_to_file_stem_and_group_to_domain_dir(tmp_path: Path) -> None:
    write_model(tmp_path, "sales", "orders_daily", "schema: mart", "SELECT 1 AS x FROM raw.orders")
    model = load_project(tmp_path).get("mart.orders_daily")
    assert model.group == "sales"
    assert model.materialized == "view"


# --------------------------------------------------------------------------------------------
# Strict validation


@pytest.mark.parametrize(
    ("yaml", "sql", "message"),
    [
        ("schema: s\nmaterialise: table", None, "unknown config key(s) ['materialise']"),
        ("schema: s\nmaterialized: ephemeral", None, "unknown materialization 'ephemeral'"),
        ("materialized: table", None, "'schema' is required"),
        ("schema: Mart", None, "must be a lowercase SQL identifier"),
        ("schema: s\nmaterialized: incremental", None, "materialized: incremental requires unique_key"),
        (
            "schema: s\nmaterialized: materialized_view",
            None,
            "materialized: materialized_view requires unique_key",
        ),
        (
            "schema: s\nmaterialized: table\nincremental_predicate: 'a > 1'",
            None,
            "only allowed with materialized: incremental",
        ),
        ("schema: s\nindexes: [[a]]", None, "a view cannot have indexes"),
        ("schema: s\ncolumns: {a: {tests: [is_positive]}}", None, "unknown test 'is_positive'"),
        (
            "schema: s\ncolumns: {a: {tests: [accepted_values]}}",
            None,
            "accepted_values needs a non-empty 'values' list",
        ),
        ("schema: s\ncolumns: {a: {tests: [{range: {}}]}}", None, "range needs 'min', 'max' or both"),
        (
            "schema: s\ncolumns: {a: {tests: [{range: {min: 5, max: 1}}]}}",
            None,
            "min 5 is greater than max 1",
        ),
        ("schema: s\ncolumns: {a: {tests: [{range: {min: '0'}}]}}", None, "bounds must be numbers"),
        (
            "schema: s\ncolumns: {a: {tests: [{relationships: {to: other, field: id}}]}}",
            None,
            "'schema.table'",
        ),
        (
            "schema: s\ncolumns: {a: {tests: [{not_null: {severity: fatal}}]}}",
            None,
            "column a tests[0] not_null severity: Input should be 'warn' or 'error'",
        ),
        ("schema: s\ncolumns: {a: {tests: [not_null, not_null]}}", None, "two tests are named 'not_null__a'"),
        ("schema: s\ncolumns: {a: {descripton: typo}}", None, "column a: unknown key(s) ['descripton']"),
        (
            "schema: s\ncolumns: {a: {tests: [{not_null: {severty: warn}}]}}",
            None,
            "column a tests[0] not_null: unknown key(s) ['severty']; allowed: ['blocking', 'columns',",
        ),
        (
            "schema: s\ncolumns: {a: {description: 3}}",
            None,
            "column a description: Input should be a valid string",
        ),
        ("schema: s\nowners: [team, 1]", None, "owners must be a list of strings"),
        ("schema: s\ncolumns: {zz: {description: missing}}", None, "declared column(s) ['zz'] not produced"),
        ("schema: s\nmaterialized: table\nindexes: [[zz]]", None, "index column(s) ['zz'] not produced"),
        (
            "schema: s\ntests: [{accepted_values: [1]}]",
            None,
            "accepted_values must be declared under a column",
        ),
        ("schema: s\nautomation: hourly", None, "automation must be 'eager' or"),
        ("schema: s\nautomation: {cron: '0 1 * *'}", None, "5-field cron"),
        ("schema: s\ntags: {'bad key!': x}", None, "tag 'bad key!'"),
        ("schema: s", "SELECT COUNT(*) FROM raw.src", "needs an alias"),
        ("schema: s", "DELETE FROM raw.src", "expected a SELECT query"),
        ("schema: s", "SELECT 1 AS a; SELECT 2 AS a", "found 2 statements"),
        ("schema: s", "SELECT a, a FROM raw.src", "duplicate column names ['a']"),
        ("schema: s", "SELEC a FROM", "does not parse"),
    ],
)
def test_invalid_config_is_rejected_with_a_clear_error(yaml: str, sql: str | None, message: str) -> None:
    with pytest.raises(SqlProjectError) as excinfo:
        parse(yaml, sql or "SELECT a, b FROM raw.src")
    assert message in str(excinfo.value)
    assert "models/dom/m.sql" in str(excinfo.value)


def test_all_problems_of_a_file_are_reported_together() -> None:
    with pytest.raises(SqlProjectError) as excinfo:
        parse("schema: s\nmaterialized: nope\nfoo: 1\ncolumns: {a: {tests: [bogus]}}")
    text = str(excinfo.value)
    assert "unknown materialization" in text and "foo" in text and "bogus" in text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("SELECT 1 AS a", "missing config header"),
        ("/* ---\nschema: [unclosed\n--- */\nSELECT 1 AS a", "invalid YAML"),
        ("/* ---\n- a\n- b\n--- */\nSELECT 1 AS a", "must be a YAML mapping"),
        ("/* ---\nschema: s\n--- */\n  ;  ", "has no SQL"),
    ],
)
def test_header_errors(text: str, message: str) -> None:
    with pytest.raises(SqlProjectError, match=message):
        parse_model(text, Path("x.sql"))


# --------------------------------------------------------------------------------------------
# Dependencies from the SQL


def test_deps_exclude_ctes_and_table_functions_and_include_subqueries() -> None:
    query = parse_query(
        """
        WITH recent AS (SELECT * FROM raw.events WHERE ts > NOW() - INTERVAL '1 day'),
             joined AS (SELECT r.*, p.name FROM recent r JOIN stg.products AS p ON p.id = r.product_id)
        SELECT j.id, g.n AS n FROM joined j CROSS JOIN generate_series(1, 3) AS g(n)
        WHERE j.user_id IN (SELECT user_id FROM stg.users WHERE active)
        UNION ALL
        SELECT id, 0 AS n FROM "raw"."Legacy Events"
        """
    )
    assert referenced_tables(query) == [
        ("raw", "events"),
        ("stg", "products"),
        ("stg", "users"),
        ("raw", "Legacy Events"),
    ]


def test_unqualified_and_three_part_tables_are_rejected() -> None:
    with pytest.raises(SqlParseError, match="must be schema-qualified"):
        referenced_tables(parse_query("SELECT a FROM events"))
    with pytest.raises(SqlParseError, match="three-part"):
        referenced_tables(parse_query("SELECT a FROM db.raw.events"))


def test_unqualified_table_error_names_the_file(tmp_path: Path) -> None:
    path = write_model(tmp_path, "d", "m", "schema: s", "SELECT a FROM events")
    with pytest.raises(SqlProjectError, match=f"{path}.*schema-qualified"):
        load_project(tmp_path)


def test_cycle_is_detected_with_its_path(tmp_path: Path) -> None:
    write_model(tmp_path, "d", "a", "schema: s", "SELECT x FROM s.c")
    write_model(tmp_path, "d", "b", "schema: s", "SELECT x FROM s.a")
    write_model(tmp_path, "d", "c", "schema: s", "SELECT x FROM s.b JOIN raw.r USING (x)")
    with pytest.raises(
        SqlProjectError, match=r"dependency cycle between models: s\.a -> s\.c -> s\.b -> s\.a"
    ):
        load_project(tmp_path)


def test_self_reference_and_duplicate_tables_are_rejected(tmp_path: Path) -> None:
    write_model(tmp_path, "d", "a", "schema: s", "SELECT x FROM s.a")
    with pytest.raises(SqlProjectError, match="selects from itself"):
        load_project(tmp_path)
    (tmp_path / "d" / "a.sql").unlink()
    write_model(tmp_path, "d", "one", "schema: s\nname: same", "SELECT 1 AS x FROM raw.r")
    write_model(tmp_path, "e", "two", "schema: s\nname: same", "SELECT 2 AS x FROM raw.r")
    with pytest.raises(SqlProjectError, match="already defined by"):
        load_project(tmp_path)


def test_missing_models_dir() -> None:
    with pytest.raises(SqlProjectError, match="does not exist"):
        load_project(Path("/nonexistent/models"))


# --------------------------------------------------------------------------------------------
# Column lineage


def test_column_lineage_through_ctes_and_joins_uses_upstream_model_columns(tmp_path: Path) -> None:
    write_model(tmp_path, "d", "orders", "schema: stg", "SELECT id, customer_id, amount FROM raw.orders")
    write_model(
        tmp_path, "d", "customers", "schema: stg", "SELECT id AS customer_id, country FROM raw.customers"
    )
    write_model(
        tmp_path,
        "d",
        "revenue",
        "schema: mart",
        """
        WITH o AS (SELECT customer_id, amount FROM stg.orders)
        SELECT country, SUM(amount) AS revenue, COUNT(DISTINCT o.customer_id) AS buyers
        FROM o JOIN stg.customers USING (customer_id)
        GROUP BY country
        """,
    )
    project = load_project(tmp_path)
    revenue = project.get("mart.revenue")
    assert revenue.column_lineage == {
        "country": (("stg", "customers", "country"),),
        "revenue": (("stg", "orders", "amount"),),
        "buyers": (("stg", "orders", "customer_id"),),
    }
    assert project.get("stg.customers").column_lineage == {
        "customer_id": (("raw", "customers", "id"),),
        "country": (("raw", "customers", "country"),),
    }


def test_column_lineage_is_best_effort() -> None:
    assert column_lineage("SELECT z AS z FROM raw.a JOIN raw.b ON a.id = b.id") is not None
    assert column_lineage("SELECT * FROM raw.a") is not None


# --------------------------------------------------------------------------------------------
# Dagster definitions


def test_assets_carry_metadata_checks_and_deps() -> None:
    project = load_project(DEFAULT_MODELS_DIR)
    assets = {a.key: a for a in build_sql_model_assets(project)}
    pais_key = AssetKey(["mart", "mv_resumo_pais"])
    pais = assets[pais_key]
    spec = next(iter(pais.specs))
    assert spec.group_name == "exports"
    assert spec.kinds == {"sql", "table"}
    assert spec.owners == ["team:exports"]
    assert {k: v for k, v in spec.tags.items() if not k.startswith("dagster/")} == {
        "layer": "mart",
        "domain": "exports",
    }
    assert spec.code_version == project.get(pais_key).code_version
    assert {dep.asset_key for dep in spec.deps} == {AssetKey(["stg", "exportacao"])}
    assert spec.metadata["dagster/table_name"] == "mart.mv_resumo_pais"
    schema = spec.metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns] == [
        "pais",
        "total_usd",
        "total_kg",
        "participacao_pct",
        "anos",
        "updated_at",
    ]
    assert next(c for c in schema.columns if c.name == "participacao_pct").type == "decimal(5, 2)"
    assert next(c for c in schema.columns if c.name == "pais").description == "Destination country"
    lineage = spec.metadata["dagster/column_lineage"]
    assert isinstance(lineage, TableColumnLineage)
    deps = lineage.deps_by_column["participacao_pct"]
    assert [(d.asset_key, d.column_name) for d in deps] == [(AssetKey(["stg", "exportacao"]), "valor_usd")]
    assert "updated_at" not in lineage.deps_by_column
    assert spec.automation_condition is None  # orchestration decides
    assert pais.can_subset
    assert AssetCheckKey(pais_key, "unique__pais") in pais.check_keys
    assert AssetCheckKey(pais_key, "range__participacao_pct") in pais.check_keys
    assert next(iter(assets[AssetKey(["stg", "exportacao"])].specs)).kinds == {"sql", "table"}
    assert "warehouse" in pais.required_resource_keys
    Definitions(
        assets=list(assets.values()), resources={"warehouse": WarehouseResource(url="duckdb:///:memory:")}
    )


def test_automation_callback_and_declared_conditions(tmp_path: Path) -> None:
    write_model(tmp_path, "d", "eager_one", "schema: s\nautomation: eager", "SELECT 1 AS x FROM raw.r")
    write_model(
        tmp_path,
        "d",
        "cron_one",
        "schema: s\nautomation: {cron: '0 1 * * *', timezone: America/Sao_Paulo}",
        "SELECT 1 AS x FROM raw.r",
    )
    write_model(tmp_path, "d", "plain", "schema: s", "SELECT 1 AS x FROM raw.r")
    project = load_project(tmp_path)
    assert declared_automation_condition(project.get("s.plain")) is None
    assert declared_automation_condition(project.get("s.eager_one")) == AutomationCondition.eager()
    assert declared_automation_condition(project.get("s.cron_one")) == AutomationCondition.on_cron(
        "0 1 * * *", cron_timezone="America/Sao_Paulo"
    )
    seen: list[str] = []

    def choose(model: SqlModel) -> AutomationCondition | None:
        seen.append(model.name)
        return declared_automation_condition(model) or AutomationCondition.on_missing()

    assets = build_sql_model_assets(project, automation_condition_for=choose, resource_key="dwh")
    assert sorted(seen) == ["cron_one", "eager_one", "plain"]
    by_name = {a.key.path[-1]: next(iter(a.specs)) for a in assets}
    assert by_name["plain"].automation_condition == AutomationCondition.on_missing()
    assert by_name["eager_one"].automation_condition == AutomationCondition.eager()
    assert by_name["plain"].kinds == {"sql", "view"}
    assert all(
        "dwh" in a.required_resource_keys and "warehouse" not in a.required_resource_keys for a in assets
    )


# --------------------------------------------------------------------------------------------
# Helpers shared with materialization and tests


def test_transpile_and_index_names() -> None:
    sql = "SELECT x::NUMERIC(5, 2) AS x, NOW() AS t FROM raw.r"
    assert transpile(sql, "postgresql") == sql
    duck = transpile(sql, "duckdb")
    assert "CAST(x AS DECIMAL(5, 2))" in duck and "CURRENT_TIMESTAMP" in duck
    assert index_name("exportacao", ("ano", "pais")) == "exportacao__ix__ano_pais"
    assert index_name("t", ("k",), unique=True) == "t__uix__k"
    long = index_name("a" * 40, ("b" * 30, "c" * 30))
    assert len(long) == 63 and long == index_name("a" * 40, ("b" * 30, "c" * 30))
    model = parse("schema: s\nmaterialized: materialized_view\nunique_key: a")
    assert definition_hash(model) == definition_hash(
        parse("schema: s\nmaterialized: materialized_view\nunique_key: a\ndescription: doc only")
    )
    assert definition_hash(model) != definition_hash(
        parse("schema: s\nmaterialized: materialized_view\nunique_key: [a, b]")
    )


def test_check_sql_binds_literals_and_quotes_identifiers() -> None:
    model = parse(
        """
schema: s
columns:
  order:
    tests: [{accepted_values: {values: ["O'Brien", "x); DROP TABLE s.m; --"]}}, {range: {min: 0.5, max: 9}}]
""",
        sql='SELECT "order", b FROM raw.src',
        stem="user",
    )
    engine = sa.create_engine("duckdb:///:memory:")
    with engine.connect() as conn:
        values_q = build_test_query(conn, model, model.tests[0])
        range_q = build_test_query(conn, model, model.tests[1])
    assert "O'Brien" not in values_q.count_sql and "DROP" not in values_q.count_sql
    assert values_q.params == {"accepted_values": ["O'Brien", "x); DROP TABLE s.m; --"]}
    # Reserved words are quoted by the dialect's identifier preparer.
    assert 'FROM s."user" WHERE "order" IS NOT NULL' in values_q.count_sql
    assert "0.5" not in range_q.count_sql and ":min_value" in range_q.count_sql
    assert str(range_q.params["min_value"]) == "0.5" and range_q.params["max_value"] == 9


def test_any_array_becomes_in_subquery_on_duckdb() -> None:
    sql = "SELECT k FROM s.t WHERE k = ANY(ARRAY(SELECT e.k FROM s.e AS e WHERE e.x > 1))"
    assert transpile(sql, "postgresql") == sql
    assert transpile(sql, "duckdb") == "SELECT k FROM s.t WHERE k IN (SELECT e.k FROM s.e AS e WHERE e.x > 1)"
    with duckdb_engine_conn() as conn:
        conn.exec_driver_sql("CREATE SCHEMA s")
        conn.exec_driver_sql("CREATE TABLE s.t AS SELECT * FROM (VALUES (1), (2), (3)) AS v(k)")
        conn.exec_driver_sql("CREATE TABLE s.e AS SELECT * FROM (VALUES (2, 5), (3, 0)) AS v(k, x)")
        assert conn.exec_driver_sql(transpile(sql, "duckdb")).fetchall() == [(2,)]


def test_row_level_tests_share_one_scan_with_renamed_parameters() -> None:
    model = parse(
        """
schema: s
columns:
  a: {tests: [not_null, {range: {min: 0, max: 10}}]}
  b: {tests: [{accepted_values: {values: [x, y]}}]}
  c: {tests: [{range: {min: 1}}, unique]}
""",
        sql="SELECT a, b, c FROM raw.src",
        stem="m",
    )
    with duckdb_engine_conn() as conn:
        queries = [build_test_query(conn, model, t) for t in model.tests]
        row_level = [q for q in queries if q.row_filter is not None]
        combined = combined_row_count_query(conn, model, row_level)
        assert len(row_level) == 4  # unique needs a grouping, it runs on its own
        assert combined.count_sql.count("SUM(CASE WHEN") == 4 and combined.count_sql.count("FROM s.m") == 1
        assert combined.params == {
            "t1_min_value": 0,
            "t1_max_value": 10,
            "t2_accepted_values": ["x", "y"],
            "t3_min_value": 1,
        }
        assert combined.expanding == ("t2_accepted_values",)
        conn.exec_driver_sql("CREATE SCHEMA s")
        conn.exec_driver_sql(
            "CREATE TABLE s.m AS SELECT * FROM "
            "(VALUES (NULL, 'x', 1), (11, 'z', 0), (5, 'y', 2), (-1, 'q', 3)) AS v(a, b, c)"
        )
        from dbt_like_sql.data_tests import _fetch

        _, rows = _fetch(conn, combined, combined.count_sql)
        assert rows == [(1, 2, 2, 1)]  # a NULL; a 11 and -1 out of range; b z and q; c 0 < 1


@contextlib.contextmanager
def duckdb_engine_conn() -> Iterator[sa.Connection]:
    engine = sa.create_engine("duckdb:///:memory:")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


def test_tests_where_scopes_every_data_test_to_the_selected_rows() -> None:
    model = parse(
        """
schema: s
tests_where: "batch = (SELECT MAX(batch) FROM {{ this }})"
columns:
  a: {tests: [not_null, unique, {range: {min: 0}}, {relationships: {to: s.p, field: a}}]}
""",
        sql="SELECT a, batch FROM raw.src",
        stem="m",
    )
    assert model.tests_where == "batch = (SELECT MAX(batch) FROM {{ this }})"
    with duckdb_engine_conn() as conn:
        conn.exec_driver_sql("CREATE SCHEMA s")
        # Batch 1 breaks every test; batch 2 (the latest) is clean.
        conn.exec_driver_sql(
            "CREATE TABLE s.m AS SELECT * FROM "
            "(VALUES (NULL, 1), (-5, 1), (-5, 1), (9, 1), (1, 2), (2, 2)) AS v(a, batch)"
        )
        conn.exec_driver_sql("CREATE TABLE s.p AS SELECT * FROM (VALUES (1), (2)) AS v(a)")
        conn.commit()
        from dbt_like_sql.data_tests import _combined_row_counts, run_data_test

        assert [run_data_test(conn, model, t).failing_rows for t in model.tests] == [0, 0, 0, 0]
        assert _combined_row_counts(conn, model, model.tests) == {"not_null__a": 0, "range__a": 0}
        conn.exec_driver_sql("INSERT INTO s.m VALUES (NULL, 3), (7, 3), (7, 3)")
        conn.commit()
        assert [run_data_test(conn, model, t).failing_rows for t in model.tests] == [1, 2, 0, 2]


def test_tests_where_must_parse() -> None:
    with pytest.raises(SqlProjectError, match="tests_where does not parse"):
        parse("schema: s\ntests_where: 'a = = 1'", sql="SELECT a FROM raw.src", stem="m")
