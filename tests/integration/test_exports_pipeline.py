"""The export-statistics pipeline end to end, with the real Dagster machinery, on both engines.

Files are dropped in a real landing folder, the real file-drop sensor is evaluated, the raw asset
is materialized per partition, then staging and the three reports; values are checked exactly.
"""

import os
import time
from decimal import Decimal
from pathlib import Path

import openpyxl
import pytest
from dagster import (
    AssetKey,
    DagsterInstance,
    Definitions,
    SensorResult,
    build_sensor_context,
    evaluate_automation_conditions,
    materialize,
)

from assets.exports.file_quality import export_file_quality
from io_managers.warehouse_io_manager import WarehouseIOManager
from orchestration.definitions import defs, sql_model_assets
from orchestration.exports import export_file_drop_sensor, raw_exportacao
from orchestration.schedules import export_reports_selection
from resources.landing_zone import LandingZoneResource
from resources.warehouse import WarehouseResource

GOOD_AND_BAD_CSV = (
    "ano;mes;pais;setor;ncm;valor_usd;peso_kg\n"
    "2023;1;China;Agronegócio;12019000;1.000,50;2.000,000\n"
    "2023;2;China;Mineração;26011100;500,00;10.000,500\n"
    "2024;1;Estados Unidos;Agronegócio;0901.11.10;250,25;100,000\n"
    "2024;13;Japão;Agronegócio;12019000;100,00;1,000\n"
    "2024;3;;Agronegócio;12019000;100,00;1,000\n"
    "2024;3;Japão;Agronegócio;1201;100,00;1,000\n"
    "2024;3;Japão;Agronegócio;12019000;abc;1,000\n"
)


def _age(path: Path) -> Path:
    past = time.time() - 120
    os.utime(path, (past, past))
    return path


def _drop_files(folder: Path) -> dict[str, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / "exportacao_2023_2024.csv"
    csv_path.write_bytes(GOOD_AND_BAD_CSV.encode("latin-1"))
    xlsx_path = folder / "argentina_2022.xlsx"
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Ano", "Mês", "País", "Setor", "NCM", "Valor USD", "Peso KG"])
    sheet.append([2022, 5, "Argentina", "Automotivo", "87032310", 1000.00, 500.0])
    book.save(xlsx_path)
    corrupt = folder / "corrupt.xlsx"
    corrupt.write_bytes(b"PK\x03\x04 this is not really a zip archive")
    return {"csv": _age(csv_path), "xlsx": _age(xlsx_path), "corrupt": _age(corrupt)}


def _resources(warehouse: WarehouseResource, landing: Path) -> dict:
    return {
        "warehouse": warehouse,
        "landing_zone": LandingZoneResource(root=str(landing)),
        "io_manager": WarehouseIOManager(warehouse=warehouse),
    }


def _tick(instance: DagsterInstance, resources: dict, cursor: str | None = None) -> SensorResult:
    context = build_sensor_context(
        instance=instance, resources={"landing_zone": resources["landing_zone"]}, cursor=cursor
    )
    result = export_file_drop_sensor(context)
    assert isinstance(result, SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _rows(warehouse: WarehouseResource, sql: str) -> list[tuple]:
    with warehouse.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql).fetchall()]


def test_files_to_reports_exact_values(warehouse: WarehouseResource, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    files = _drop_files(landing / "exports")
    resources = _resources(warehouse, landing)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))

    result = _tick(instance, resources)
    keys = [r.partition_key for r in result.run_requests]
    assert len(keys) == 3 and all(r.run_key == r.partition_key for r in result.run_requests)

    for key in keys:
        run = materialize([raw_exportacao], partition_key=key, instance=instance, resources=resources)
        assert run.success
        checks = run.get_asset_check_evaluations()
        assert [c.passed for c in checks] == [True]

    # Bad input: every row of the CSV is accounted for, rejects carry line, reason, raw content.
    assert _rows(
        warehouse, "SELECT COUNT(*) FROM raw.exportacao WHERE ingest_source = 'exportacao_2023_2024.csv'"
    ) == [(3,)]
    rejects = _rows(
        warehouse, "SELECT source_line, reason, raw_content FROM raw.exportacao_rejects ORDER BY source_line"
    )
    assert [r[0] for r in rejects] == [5, 6, 7, 8]
    assert (
        "mes" in rejects[0][1]
        and "pais" in rejects[1][1]
        and "ncm" in rejects[2][1]
        and "valor_usd" in rejects[3][1]
    )
    assert rejects[3][2] == "2024;3;Japão;Agronegócio;12019000;abc;1,000"
    ledger = dict(_rows(warehouse, "SELECT file_name, status FROM raw.landing_files"))
    assert ledger == {
        "exportacao_2023_2024.csv": "loaded",
        "argentina_2022.xlsx": "loaded",
        "corrupt.xlsx": "quarantined",
    }
    assert _rows(
        warehouse,
        "SELECT rows_total, rows_loaded, rows_rejected FROM raw.landing_files "
        "WHERE file_name = 'exportacao_2023_2024.csv'",
    ) == [(7, 3, 4)]

    # Files moved: loaded ones archived, the corrupt one quarantined with a reason file.
    assert not any(p.exists() for p in files.values())
    quarantined = list((landing / "exports" / "_quarantine").glob("*-corrupt.xlsx"))
    assert len(quarantined) == 1
    assert "reason:" in quarantined[0].with_name(quarantined[0].name + ".reason.txt").read_text()

    run = materialize(
        [raw_exportacao, *sql_model_assets],
        selection=export_reports_selection,
        instance=instance,
        resources=resources,
    )
    assert run.success
    failed = [c for c in run.get_asset_check_evaluations() if not c.passed]
    assert failed == []

    assert _rows(warehouse, "SELECT COUNT(*) FROM stg.exportacao") == [(4,)]
    pais = _rows(
        warehouse,
        "SELECT pais, total_usd, total_kg, participacao_pct, anos FROM mart.mv_resumo_pais ORDER BY pais",
    )
    assert [(p, Decimal(u), Decimal(k), Decimal(pct), list(a)) for p, u, k, pct, a in pais] == [
        ("Argentina", Decimal("1000.00"), Decimal("500.000"), Decimal("36.35"), [2022]),
        ("China", Decimal("1500.50"), Decimal("12000.500"), Decimal("54.55"), [2023]),
        ("Estados Unidos", Decimal("250.25"), Decimal("100.000"), Decimal("9.10"), [2024]),
    ]
    geral = _rows(
        warehouse, "SELECT total_usd, total_kg, paises_count, setores_count, anos FROM mart.mv_resumo_geral"
    )
    assert [(Decimal(u), Decimal(k), p, s, list(a)) for u, k, p, s, a in geral] == [
        (Decimal("2750.75"), Decimal("12600.500"), 3, 3, [2022, 2023, 2024])
    ]
    setor = _rows(warehouse, "SELECT setor, total_usd, anos FROM mart.mv_resumo_setor ORDER BY setor")
    assert [(s, Decimal(u), list(a)) for s, u, a in setor] == [
        ("Agronegócio", Decimal("1250.75"), [2023, 2024]),
        ("Automotivo", Decimal("1000.00"), [2022]),
        ("Mineração", Decimal("500.00"), [2023]),
    ]
    assert _rows(warehouse, "SELECT COUNT(*) FROM mart.mv_resumo_pais WHERE updated_at IS NULL") == [(0,)]

    # The per-file quality table (Python asset stored through the warehouse IO manager).
    run = materialize(
        [raw_exportacao, export_file_quality],
        selection=[export_file_quality.key],
        instance=instance,
        resources=resources,
    )
    assert run.success
    quality = {
        r[0]: r[1:]
        for r in _rows(
            warehouse,
            "SELECT file_name, status, rows_total, rows_rejected, reject_pct, top_reject_reasons "
            "FROM mart.export_file_quality",
        )
    }
    assert quality["exportacao_2023_2024.csv"][:4] == ("loaded", 7, 4, 57.14)
    assert quality["exportacao_2023_2024.csv"][4].count("(1)") == 3
    assert quality["corrupt.xlsx"][:3] == ("quarantined", 0, 0)

    # Re-running a partition replaces its rows: still exactly one copy.
    csv_key = next(k for k in keys if k.startswith("exportacao_2023_2024"))
    assert materialize(
        [raw_exportacao], partition_key=csv_key, instance=instance, resources=resources
    ).success
    assert _rows(warehouse, "SELECT COUNT(*) FROM raw.exportacao") == [(4,)]
    assert _rows(warehouse, "SELECT COUNT(*) FROM raw.exportacao_rejects") == [(4,)]

    # Re-dropping identical content (even under another name) is a no-op, set aside as duplicate.
    (landing / "exports" / "again.csv").write_bytes(GOOD_AND_BAD_CSV.encode("latin-1"))
    _age(landing / "exports" / "again.csv")
    again = _tick(instance, resources, cursor=result.cursor)
    assert list(again.run_requests) == []
    assert len(list((landing / "exports" / "_duplicates").glob("*-again.csv"))) == 1


def test_new_file_triggers_automatic_refresh_of_reports(tmp_path: Path) -> None:
    """Declarative automation: after a raw partition lands, staging and reports are requested."""
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    landing = tmp_path / "landing"
    _drop_files(landing / "exports")
    resources = _resources(warehouse, landing)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    keys = [r.partition_key for r in _tick(instance, resources).run_requests]
    graph = Definitions(assets=[raw_exportacao, *sql_model_assets], resources=resources)
    first = evaluate_automation_conditions(defs=graph, instance=instance)
    materialize([raw_exportacao], partition_key=keys[0], instance=instance, resources=resources)
    second = evaluate_automation_conditions(defs=graph, instance=instance, cursor=first.cursor)
    downstream = ["stg/exportacao", "mart/mv_resumo_pais", "mart/mv_resumo_geral", "mart/mv_resumo_setor"]
    for name in downstream:
        assert second.get_requested_partitions(AssetKey.from_user_string(name)) == {None}, name
    assert second.get_requested_partitions(AssetKey(["raw", "exportacao"])) == set()


@pytest.mark.parametrize("name", ["refresh_export_reports_daily"])
def test_schedule_refreshes_reports_daily_at_one(name: str) -> None:
    schedule = defs.resolve_schedule_def(name)
    assert schedule.cron_schedule == "0 1 * * *"
    job = defs.resolve_job_def(schedule.job_name)
    selected = {k.to_user_string() for k in job.asset_layer.selected_asset_keys}
    assert selected == {
        "stg/exportacao",
        "mart/mv_resumo_pais",
        "mart/mv_resumo_geral",
        "mart/export_file_quality",
        "mart/mv_resumo_setor",
    }
