"""Benchmark: 1M-row export CSV and XLSX through raw/exportacao, then the reports, on both engines.

Prints seconds and rows/s next to a naive baseline measured in the same run (pandas ``read_csv`` +
``DataFrame.to_sql`` with its defaults). Usage::

    python -m bench.exports_load [--rows 1000000] [--engines duckdb,postgres] [--baseline-rows 200000]
    python -m bench.exports_load --csv-only [--repeat 3]   # just the CSV load, quick to compare

PostgreSQL comes from the project's services tool (``python -m services up postgres``).
"""

import argparse
import json
import shutil
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import pandas as pd
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, materialize

from generators.exports import write_export_file
from orchestration.definitions import sql_model_assets
from orchestration.exports import raw_exportacao
from resources.landing_zone import LandingZoneResource, file_digest, partition_key_for
from resources.warehouse import WarehouseResource, dispose_engines
from services import connection_info

OUT = Path(__file__).resolve().parent / "out"


def _pg_admin_url() -> str:
    """URL of the local PostgreSQL from the services tool (honours AFLUENTE_PG_PORT)."""
    return connection_info(["postgres"])["postgres"].url


REPORT_KEYS = ("mart/mv_resumo_pais", "mart/mv_resumo_geral", "mart/mv_resumo_setor")


def _input_file(rows: int, fmt: str) -> Path:
    path = OUT / f"exportacao_{rows}.{fmt}"
    if not path.exists():
        OUT.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        write_export_file(
            path, rows, fmt=fmt, encoding="utf-8", delimiter=";", decimal=",", seed=11, progress=True
        )
        print(f"generated {path.name} in {time.perf_counter() - started:.1f}s")
    return path


def _fresh_warehouse(engine: str, workdir: Path) -> WarehouseResource:
    if engine == "duckdb":
        return WarehouseResource(url=f"duckdb:///{workdir / 'bench.duckdb'}")
    name = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return WarehouseResource(url=_pg_admin_url().rsplit("/", 1)[0] + f"/{name}")


def _drop_warehouse(engine: str, warehouse: WarehouseResource) -> None:
    dispose_engines()
    if engine == "postgres":
        name = sa.make_url(warehouse.url).database
        admin = sa.create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def _step_seconds(result: Any) -> float:
    """Time spent inside the asset steps (Dagster's own step durations), without run set-up."""
    return sum(e.event_specific_data.duration_ms for e in result.get_step_success_events()) / 1000


def _load(
    source: Path, warehouse: WarehouseResource, landing: Path, instance: DagsterInstance
) -> tuple[float, float]:
    """Time one file through the raw asset (real Dagster materialization, in process): run, step."""
    target = landing / "exports" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    key = partition_key_for(source.name, file_digest(target))
    instance.add_dynamic_partitions("export_files", [key])
    resources = {"warehouse": warehouse, "landing_zone": LandingZoneResource(root=str(landing))}
    started = time.perf_counter()
    result = materialize([raw_exportacao], partition_key=key, instance=instance, resources=resources)
    elapsed = time.perf_counter() - started
    assert result.success, f"load of {source.name} failed"
    return elapsed, _step_seconds(result)


def _refresh(
    warehouse: WarehouseResource, landing: Path, instance: DagsterInstance, selection: list[str]
) -> float:
    """Time the selected SQL models (staging or the three reports) through Dagster."""
    resources = {"warehouse": warehouse, "landing_zone": LandingZoneResource(root=str(landing))}
    started = time.perf_counter()
    result = materialize(
        [raw_exportacao, *sql_model_assets],
        selection=[AssetKey.from_user_string(k) for k in selection],
        instance=instance,
        resources=resources,
    )
    elapsed = time.perf_counter() - started
    assert result.success, f"refresh of {selection} failed"
    return elapsed


def _baseline(csv_path: Path, rows: int, warehouse: WarehouseResource) -> float:
    """The naive approach: pandas read_csv + DataFrame.to_sql with default settings."""
    started = time.perf_counter()
    frame = pd.read_csv(csv_path, sep=";", decimal=",", thousands=".", nrows=rows, dtype={"ncm": str})
    frame.to_sql("exportacao_naive", warehouse.engine(), schema="raw", if_exists="replace", index=False)
    return time.perf_counter() - started


def run_csv_only(rows: int, engines: list[str], repeat: int) -> dict:
    """Only the CSV load (fresh warehouse each time), ``repeat`` times per engine: for quick A/B runs."""
    csv_path = _input_file(rows, "csv")
    results: dict = {"rows": rows, "engines": {}}
    for engine in engines:
        figures: dict = {"csv_load_s": [], "csv_step_s": []}
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as tmp:
                workdir = Path(tmp)
                warehouse = _fresh_warehouse(engine, workdir)
                instance = DagsterInstance.ephemeral(tempdir=str(workdir / "dagster"))
                try:
                    load_s, step_s = _load(csv_path, warehouse, workdir / "landing", instance)
                    figures["csv_load_s"].append(load_s)
                    figures["csv_step_s"].append(step_s)
                finally:
                    instance.dispose()
                    _drop_warehouse(engine, warehouse)
        results["engines"][engine] = figures
    return results


def run(rows: int, engines: list[str], baseline_rows: int) -> dict:
    csv_path = _input_file(rows, "csv")
    xlsx_path = _input_file(rows, "xlsx")
    results: dict = {"rows": rows, "baseline_rows": baseline_rows, "engines": {}}
    for engine in engines:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            warehouse = _fresh_warehouse(engine, workdir)
            instance = DagsterInstance.ephemeral(tempdir=str(workdir / "dagster"))
            try:
                figures: dict = {}
                figures["csv_load_s"], figures["csv_step_s"] = _load(
                    csv_path, warehouse, workdir / "landing", instance
                )
                figures["stg_build_s"] = _refresh(
                    warehouse, workdir / "landing", instance, ["stg/exportacao"]
                )
                figures["reports_create_s"] = _refresh(
                    warehouse, workdir / "landing", instance, list(REPORT_KEYS)
                )
                figures["reports_refresh_s"] = _refresh(
                    warehouse, workdir / "landing", instance, list(REPORT_KEYS)
                )
                # The first refresh after the build also sets the new pages' hint bits; the next
                # one is the steady state a daily or post-load refresh sees.
                figures["reports_refresh_again_s"] = _refresh(
                    warehouse, workdir / "landing", instance, list(REPORT_KEYS)
                )
                figures["xlsx_load_s"], figures["xlsx_step_s"] = _load(
                    xlsx_path, warehouse, workdir / "landing", instance
                )
                warehouse.ensure_schemas("raw")
                figures["baseline_s"] = _baseline(csv_path, baseline_rows, warehouse)
                figures["csv_rows_per_s"] = rows / figures["csv_load_s"]
                figures["xlsx_rows_per_s"] = rows / figures["xlsx_load_s"]
                figures["baseline_rows_per_s"] = baseline_rows / figures["baseline_s"]
                figures["csv_speedup_vs_baseline"] = (
                    figures["csv_rows_per_s"] / figures["baseline_rows_per_s"]
                )
                results["engines"][engine] = figures
            finally:
                instance.dispose()
                _drop_warehouse(engine, warehouse)
    return results


def _print(results: dict) -> None:
    rows = results["rows"]
    print(f"\nexports benchmark: {rows:,} rows per file; baseline on {results['baseline_rows']:,} rows")
    header = f"{'engine':<9}{'metric':<34}{'seconds':>10}{'rows/s':>14}"
    print(header)
    print("-" * len(header))
    for engine, f in results["engines"].items():
        lines = [
            ("CSV → raw/exportacao (whole run)", f["csv_load_s"], f["csv_rows_per_s"]),
            ("  of which the asset step", f["csv_step_s"], rows / f["csv_step_s"]),
            ("XLSX → raw/exportacao (whole run)", f["xlsx_load_s"], f["xlsx_rows_per_s"]),
            ("  of which the asset step", f["xlsx_step_s"], rows / f["xlsx_step_s"]),
            ("stg/exportacao build", f["stg_build_s"], rows / f["stg_build_s"]),
            ("3 reports, first build", f["reports_create_s"], None),
            ("3 reports, first refresh", f["reports_refresh_s"], None),
            ("3 reports, refresh again", f["reports_refresh_again_s"], None),
            ("baseline read_csv + to_sql", f["baseline_s"], f["baseline_rows_per_s"]),
        ]
        for name, seconds, per_s in lines:
            rate = f"{per_s:,.0f}" if per_s else ""
            print(f"{engine:<9}{name:<34}{seconds:>10.2f}{rate:>14}")
        print(f"{engine:<9}{'CSV speed-up vs baseline':<34}{f['csv_speedup_vs_baseline']:>10.1f}x")


def _print_csv_only(results: dict) -> None:
    rows = results["rows"]
    print(f"\nexports benchmark, CSV load only: {rows:,} rows")
    for engine, f in results["engines"].items():
        for run_s, step_s in zip(f["csv_load_s"], f["csv_step_s"], strict=True):
            rate = f"{rows / run_s:,.0f} rows/s"
            print(f"{engine:<9}whole run {run_s:>6.2f} s ({rate:>15})   asset step {step_s:>6.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="duckdb,postgres")
    parser.add_argument(
        "--baseline-rows",
        type=int,
        default=200_000,
        help="rows for the naive baseline (its rows/s is compared)",
    )
    parser.add_argument(
        "--csv-only", action="store_true", help="time only the CSV load (no reports, XLSX or baseline)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="with --csv-only: loads per engine")
    args = parser.parse_args()
    if args.csv_only:
        _print_csv_only(run_csv_only(args.rows, args.engines.split(","), args.repeat))
        return
    results = run(args.rows, args.engines.split(","), args.baseline_rows)
    _print(results)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "exports_load.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
