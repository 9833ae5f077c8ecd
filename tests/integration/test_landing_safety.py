"""Landing-zone safety end to end (issue 14, items 1-3), with the real sensors and assets, on both engines.

1. Entries that are not regular files inside the root (symlinks, hard links, FIFOs) are quarantined
   without being read, by every file feed.
2. A file that cannot be parsed (an over-long line, a CSV field past the csv module's limit, JSON
   nested past the parser's depth) is quarantined at once, in one attempt, with a reason.
3. A writer that pauses loses nothing: a file cut mid-line waits; a file that changes between the
   read and the archive is rolled back, left in place and ingested exactly once later.
"""

from __future__ import annotations

import os
import time
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import (
    AssetsDefinition,
    DagsterInstance,
    SensorDefinition,
    SensorResult,
    SkipReason,
    build_sensor_context,
    materialize,
)
from dagster.components import build_defs_for_component

from assets.exports.raw_exportacao import read_export_landing_file
from assets.sources.landing_feed import LandingFileFeed
from assets.sources.landing_feed.contract import LandedContent, ParsedFile
from orchestration.commerce import commerce_file_drop_sensor
from orchestration.declared import DEFS_ROOT
from orchestration.exports import export_file_drop_sensor, raw_exportacao
from orchestration.usage import raw_usage_event_files, usage_file_drop_sensor
from resources.landing_zone import LandingZoneResource
from resources.warehouse import WarehouseResource

HEADER = "ano;mes;pais;setor;ncm;valor_usd;peso_kg\n"


def _row(i: int) -> str:
    return f"2023;{i % 12 + 1};China;Agro;12019000;{i},{i % 100:02d};1,000\n"


def _value(i: int) -> Decimal:
    return Decimal(f"{i}.{i % 100:02d}")


def _age(path: Path, seconds: float = 120) -> Path:
    past = time.time() - seconds
    os.utime(path, (past, past))
    return path


def _resources(warehouse: WarehouseResource, landing: Path) -> dict:
    return {"warehouse": warehouse, "landing_zone": LandingZoneResource(root=str(landing))}


def _tick(
    sensor: SensorDefinition, instance: DagsterInstance, resources: dict, cursor: str | None = None
) -> SensorResult:
    context = build_sensor_context(
        instance=instance, resources={"landing_zone": resources["landing_zone"]}, cursor=cursor
    )
    result = sensor(context)
    assert isinstance(result, SensorResult)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def _rows(warehouse: WarehouseResource, sql: str, params: dict | None = None) -> list[tuple]:
    with warehouse.connect() as conn:
        return [tuple(r) for r in conn.exec_driver_sql(sql, params or ()).fetchall()]


def _count(warehouse: WarehouseResource, schema: str, table: str) -> int:
    """Rows of a table, 0 when it does not exist (a rolled-back first load leaves no table)."""
    with warehouse.connect() as conn:
        if not sa.inspect(conn).has_table(table, schema=schema):
            return 0
        return int(conn.execute(sa.text(f"SELECT COUNT(*) FROM {schema}.{table}")).scalar_one())


def _ledger(warehouse: WarehouseResource) -> dict[str, tuple]:
    rows = _rows(warehouse, "SELECT file_name, status, rows_total, reason FROM raw.landing_files")
    return {name: tuple(rest) for name, *rest in rows}


# ------------------------------------------------------------------------------------------------
# 1. Only regular files inside the root are read


def test_links_fifos_and_hard_links_are_quarantined_unread(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    folder = landing / "exports"
    folder.mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "good.csv").write_text(HEADER + _row(1) + _row(2))  # well formed: would load if followed
    (outside / "other.csv").write_text(HEADER + _row(3))
    (folder / "x.csv").symlink_to("/etc/passwd")
    (folder / "y.csv").symlink_to(outside / "good.csv")
    os.link(outside / "other.csv", folder / "hard.csv")
    os.mkfifo(folder / "pipe.csv")  # a blocking open would hang the sensor tick
    _age(_write(folder / "real.csv", HEADER + _row(4)))
    resources = _resources(warehouse, landing)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))

    started = time.monotonic()
    result = _tick(export_file_drop_sensor, instance, resources)
    assert time.monotonic() - started < 10
    assert [r.partition_key.split("__")[0] for r in result.run_requests] == ["real.csv"]
    quarantine = folder / "_quarantine"
    for name in ("x.csv", "y.csv", "hard.csv", "pipe.csv"):
        assert not os.path.lexists(folder / name)
        (moved,) = quarantine.glob(f"refused-*-{name}")
        reason = moved.with_name(moved.name + ".reason.txt").read_text()
        assert "refused:" in reason and "sha256: (not read)" in reason
        assert "root:" not in reason and "China" not in reason
    assert (outside / "good.csv").read_text() == HEADER + _row(1) + _row(2)  # the target is untouched

    run = materialize(
        [raw_exportacao],
        partition_key=result.run_requests[0].partition_key,
        instance=instance,
        resources=resources,
    )
    assert run.success
    assert _rows(warehouse, "SELECT ingest_source, COUNT(*) FROM raw.exportacao GROUP BY 1") == [
        ("real.csv", 1)
    ]
    assert _ledger(warehouse) == {"real.csv": ("loaded", 1, None)}

    # Swapped for a symlink (to identical bytes) after the sensor hashed it: the run reads nothing.
    race = _age(_write(folder / "race.csv", HEADER + _row(5)))
    (key,) = [r.partition_key for r in _tick(export_file_drop_sensor, instance, resources).run_requests]
    (outside / "race.csv").write_text(HEADER + _row(5))
    race.unlink()
    race.symlink_to(outside / "race.csv")
    run = materialize(
        [raw_exportacao], partition_key=key, instance=instance, resources=resources, raise_on_error=False
    )
    assert not run.success
    assert _rows(warehouse, "SELECT COUNT(*) FROM raw.exportacao") == [(1,)]
    assert list(_tick(export_file_drop_sensor, instance, resources).run_requests) == []
    assert len(list(quarantine.glob("refused-*-race.csv"))) == 1 and not os.path.lexists(race)


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("sensor", "domain", "name"),
    [
        (export_file_drop_sensor, "exports", "x.csv"),
        (commerce_file_drop_sensor, "commerce", "x.jsonl"),
        (usage_file_drop_sensor, "usage", "x.json"),
    ],
    ids=["exports", "commerce", "usage"],
)
def test_every_file_feed_refuses_symlinks(
    sensor: SensorDefinition, domain: str, name: str, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    (landing / domain).mkdir(parents=True)
    (landing / domain / name).symlink_to("/etc/passwd")
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    context = build_sensor_context(
        instance=instance, resources={"landing_zone": LandingZoneResource(root=str(landing))}
    )
    result = sensor(context)
    assert not isinstance(result, SkipReason) and list(result.run_requests) == []
    (moved,) = (landing / domain / "_quarantine").glob(f"refused-*-{name}")
    assert moved.is_symlink() and "symbolic link" in moved.with_name(moved.name + ".reason.txt").read_text()


# ------------------------------------------------------------------------------------------------
# 2. Parse errors quarantine at once


def test_unparsable_files_are_quarantined_at_once(warehouse: WarehouseResource, tmp_path: Path) -> None:
    landing = tmp_path / "landing"
    exports, usage = landing / "exports", landing / "usage"
    exports.mkdir(parents=True)
    usage.mkdir(parents=True)
    # A 200 KB header field: past the csv module's 131072-byte field limit (was "unknown", retried).
    _age(_write(exports / "wide_header.csv", HEADER.replace("kg", "kg;" + "h" * 200_000) + _row(1)))
    # A 2 MiB line: over AFLUENTE_LANDING_MAX_LINE_BYTES (1 MiB).
    _age(_write(exports / "long_line.csv", HEADER + _row(1) + "2023;1;" + "x" * (2 << 20) + "\n" + _row(2)))
    # JSON nested past the parser's depth: RecursionError, a parse error like any other.
    _age(_write(usage / "nested.json", "[" * 100_000 + "]" * 100_000))
    resources = _resources(warehouse, landing)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))

    for sensor, asset in (
        (export_file_drop_sensor, raw_exportacao),
        (usage_file_drop_sensor, raw_usage_event_files),
    ):
        result = _tick(sensor, instance, resources)
        assert result.run_requests
        for request in result.run_requests:
            started = time.monotonic()
            run = materialize(
                [asset], partition_key=request.partition_key, instance=instance, resources=resources
            )
            assert run.success and time.monotonic() - started < 20  # one attempt, no retry back-off
        assert list(_tick(sensor, instance, resources, result.cursor).run_requests) == []

    ledger = _ledger(warehouse)
    assert {name: status for name, (status, _, _) in ledger.items()} == {
        "wide_header.csv": "quarantined",
        "long_line.csv": "quarantined",
        "nested.json": "quarantined",
    }
    assert "field larger than field limit" in ledger["wide_header.csv"][2]
    assert "line 3 is 2,097,159 bytes long" in ledger["long_line.csv"][2]
    assert "AFLUENTE_LANDING_MAX_LINE_BYTES" in ledger["long_line.csv"][2]
    assert "RecursionError" in ledger["nested.json"][2]
    for folder, name in ((exports, "wide_header.csv"), (exports, "long_line.csv"), (usage, "nested.json")):
        assert not (folder / name).exists()
        (reason_file,) = (folder / "_quarantine").glob(f"*-{name}.reason.txt")
        assert "reason: " in reason_file.read_text()
    assert all(total == 0 for _, total, _ in ledger.values())
    assert _count(warehouse, "raw", "exportacao") == 0


# ------------------------------------------------------------------------------------------------
# 3. Writers that pause


def test_a_paused_writer_is_ingested_whole_once_it_completes(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    folder = landing / "exports"
    folder.mkdir(parents=True)
    rows = [_row(i) for i in range(1, 20_001)]
    text = HEADER + "".join(rows)
    cut = len(HEADER) + sum(len(r) for r in rows[:10_000]) + 12  # half the file, then mid-line
    path = _age(_write(folder / "exportacao_2024.csv", text[:cut]))
    resources = _resources(warehouse, landing)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))

    paused = _tick(export_file_drop_sensor, instance, resources)
    assert list(paused.run_requests) == [] and path.exists()
    assert "exportacao_2024.csv: does not end with a newline" in str(paused.skip_reason)

    with path.open("a", encoding="utf-8") as handle:  # the writer resumes and finishes
        handle.write(text[cut:])
    _age(path)
    (request,) = _tick(export_file_drop_sensor, instance, resources, paused.cursor).run_requests
    run = materialize(
        [raw_exportacao], partition_key=request.partition_key, instance=instance, resources=resources
    )
    assert run.success
    assert _rows(warehouse, "SELECT COUNT(*), SUM(valor_usd) FROM raw.exportacao")[0] == (
        20_000,
        sum(_value(i) for i in range(1, 20_001)),
    )
    assert _ledger(warehouse) == {"exportacao_2024.csv": ("loaded", 20_000, None)}
    assert not path.exists() and len(list((folder / "_archive").glob("*-exportacao_2024.csv"))) == 1


# (path, rest) the reader below appends while the run parses (set by the test using it).
_RESUMING_WRITER: dict[str, tuple[Path, str]] = {}


def resuming_writer_reader(content: LandedContent) -> ParsedFile:
    """The export reader, plus a writer that appends the rest of the file while the run parses it."""
    parsed = read_export_landing_file(content)
    path, rest = _RESUMING_WRITER["file"]
    with path.open("a", encoding="utf-8") as handle:
        handle.write(rest)
    return parsed


def _exports_feed_with_reader(reader: str) -> AssetsDefinition:
    """The exports feed as declared (assets/defs/exports/landed_files), with another reader."""
    declared = yaml.safe_load((DEFS_ROOT / "exports" / "landed_files" / "defs.yaml").read_text())
    feed = LandingFileFeed.from_attributes_dict(attributes={**declared["attributes"], "reader": reader})
    (asset,) = [a for a in build_defs_for_component(feed).assets or () if isinstance(a, AssetsDefinition)]
    return asset


def test_a_file_changed_between_read_and_archive_is_rolled_back_and_ingested_once_later(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    landing = tmp_path / "landing"
    folder = landing / "exports"
    folder.mkdir(parents=True)
    first, rest = HEADER + "".join(_row(i) for i in range(1, 501)), "".join(_row(i) for i in range(501, 1001))
    path = _age(_write(folder / "growing.csv", first))
    resources = _resources(warehouse, landing)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    (request,) = _tick(export_file_drop_sensor, instance, resources).run_requests

    # Same declaration as raw_exportacao, but the writer resumes mid-run.
    racing = _exports_feed_with_reader(f"{__name__}:resuming_writer_reader")
    _RESUMING_WRITER["file"] = (path, rest)
    try:
        run = materialize(
            [racing],
            partition_key=request.partition_key,
            instance=instance,
            resources=resources,
            raise_on_error=False,
        )
    finally:
        _RESUMING_WRITER.clear()
    assert not run.success
    failure = next(e for e in run.all_events if e.is_step_failure).event_specific_data.error
    assert "changed between the read and the archive" in failure.message
    assert "rolled back" in failure.message
    for table in ("exportacao", "exportacao_rejects", "landing_files"):
        assert _count(warehouse, "raw", table) == 0, table
    assert path.read_text() == first + rest  # left in place, whole
    assert not list((folder / "_archive").glob("*"))

    _age(path)
    (again,) = _tick(export_file_drop_sensor, instance, resources).run_requests
    assert again.partition_key != request.partition_key  # new content, new partition
    run = materialize(
        [raw_exportacao], partition_key=again.partition_key, instance=instance, resources=resources
    )
    assert run.success
    assert _rows(warehouse, "SELECT COUNT(*), SUM(valor_usd) FROM raw.exportacao")[0] == (
        1000,
        sum(_value(i) for i in range(1, 1001)),
    )
    assert list(_tick(export_file_drop_sensor, instance, resources).run_requests) == []
    assert _ledger(warehouse) == {"growing.csv": ("loaded", 1000, None)}


def test_a_marker_feed_waits_for_the_done_marker(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFLUENTE_LANDING_MARKER_FEEDS", "exports")
    landing = tmp_path / "landing"
    folder = landing / "exports"
    folder.mkdir(parents=True)
    path = _age(_write(folder / "batch.csv", HEADER + _row(1) + _row(2)))
    resources = _resources(warehouse, landing)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    waiting = _tick(export_file_drop_sensor, instance, resources)
    assert list(waiting.run_requests) == [] and "batch.csv.done" in str(waiting.skip_reason)
    (folder / "batch.csv.done").touch()
    (request,) = _tick(export_file_drop_sensor, instance, resources, waiting.cursor).run_requests
    assert materialize(
        [raw_exportacao], partition_key=request.partition_key, instance=instance, resources=resources
    ).success
    assert _rows(warehouse, "SELECT COUNT(*) FROM raw.exportacao") == [(2,)]
    assert not path.exists() and not (folder / "batch.csv.done").exists()
