"""A run worker SIGKILLed mid-run: the watchdog fails the run, the failure sensor re-requests what is missing.

A real run process (``execute_in_process`` on a persistent instance with ``DefaultRunLauncher``) is
killed while its second asset runs, exactly like a run worker whose code server was replaced: the
run stays STARTED with nobody left to fail it. ``run_worker_watchdog_sensor`` must fail it, and
``run_failure_incidents_sensor`` must record the crash as transient and re-execute the two assets
the run never materialized (before: diagnosis "unknown", nothing re-executed, marts stale).
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    Definitions,
    MaterializeResult,
    RunsFilter,
    asset,
    build_run_status_sensor_context,
    build_sensor_context,
    define_asset_job,
)

from orchestration.self_healing import build_self_healing_defs
from resources.warehouse import WarehouseResource, dispose_engines
from sensors.reexecution import WORKER_CRASH

ROOT = Path(__file__).resolve().parents[2]
FIRST = AssetKey(["raw", "crash_first"])
SLOW = AssetKey(["stg", "crash_slow"])
LAST = AssetKey(["mart", "crash_last"])
MARKER_ENV = "AFLUENTE_TEST_CRASH_MARKER"

pytestmark = pytest.mark.faults


def _write(warehouse: WarehouseResource, key: AssetKey) -> MaterializeResult:
    warehouse.write_table(pd.DataFrame({"n": [1, 2, 3]}), key.path[0], key.path[1])
    return MaterializeResult(metadata={"dagster/row_count": 3})


@asset(key=FIRST)
def crash_first(warehouse: WarehouseResource) -> MaterializeResult:
    return _write(warehouse, FIRST)


@asset(key=SLOW, deps=[FIRST])
def crash_slow(warehouse: WarehouseResource) -> MaterializeResult:
    """In the doomed run it announces itself and waits to be killed."""
    marker = os.environ.get(MARKER_ENV)
    if marker:
        Path(marker).write_text(str(os.getpid()))
        time.sleep(120)
    return _write(warehouse, SLOW)


@asset(key=LAST, deps=[SLOW])
def crash_last(warehouse: WarehouseResource) -> MaterializeResult:
    return _write(warehouse, LAST)


def crash_defs(warehouse_url: str) -> Definitions:
    base = Definitions(
        assets=[crash_first, crash_slow, crash_last],
        jobs=[define_asset_job("crash_pipeline", selection=[FIRST, SLOW, LAST])],
        resources={"warehouse": WarehouseResource(url=warehouse_url)},
    )
    return Definitions.merge(base, build_self_healing_defs(base))


_RUN = """
import sys
from dagster import DagsterInstance
from tests.integration.test_run_worker_crash import crash_defs
with DagsterInstance.get() as instance:
    crash_defs(sys.argv[1]).resolve_job_def("crash_pipeline").execute_in_process(instance=instance)
"""


def test_killed_run_worker_is_failed_and_its_missing_assets_reexecuted(
    warehouse: WarehouseResource, tmp_path: Path
) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # DefaultRunLauncher, no retries
    marker = tmp_path / "slow.pid"
    env = {**os.environ, "DAGSTER_HOME": str(home), MARKER_ENV: str(marker), "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", _RUN, warehouse.url], cwd=ROOT, env=env)
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        assert marker.exists(), "the run never reached its slow asset"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    defs = crash_defs(warehouse.url)
    sensors = {s.name: s for s in defs.sensors}
    with DagsterInstance.from_config(str(home)) as instance:
        (record,) = instance.get_run_records()
        run = record.dagster_run
        assert run.status == DagsterRunStatus.STARTED  # nobody is left to fail it

        killed_at = time.monotonic()
        tick = sensors["run_worker_watchdog_sensor"].evaluate_tick(build_sensor_context(instance=instance))
        assert "1 run(s) with a dead worker marked failed" in (tick.skip_message or "")
        detected_s = time.monotonic() - killed_at
        failed = instance.get_run_by_id(run.run_id)
        assert failed is not None and failed.status == DagsterRunStatus.FAILURE
        # Evaluated again: the run is no longer STARTED, nothing else happens.
        again = sensors["run_worker_watchdog_sensor"].evaluate_tick(build_sensor_context(instance=instance))
        assert again.skip_message == "every run worker alive"

        failure = next(
            r.event_log_entry.dagster_event
            for r in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
        )
        context = build_run_status_sensor_context(
            sensor_name="run_failure_incidents_sensor",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=failed,
            resources={"warehouse": warehouse},
        ).for_run_failure()
        (request,) = list(sensors["run_failure_incidents_sensor"](context) or [])
        assert set(request.asset_selection or []) == {SLOW, LAST}

        rows = warehouse.read_frame("SELECT * FROM ops.incidents")
        assert len(rows) == 1
        row = rows.iloc[0]
        assert (row["run_id"], row["step_key"], row["asset_keys"]) == (
            run.run_id,
            None,
            "mart/crash_last,stg/crash_slow",
        )
        assert (row["diagnosis"], row["action"], row["error_class"]) == (
            "transient",
            "reexecuted",
            "RunWorkerCrash",
        )
        assert WORKER_CRASH.explanation in row["explanation"]

        job = defs.resolve_job_def(request.job_name or "")
        healed = job.execute_in_process(
            instance=instance,
            run_config=request.run_config,
            tags=request.tags,
            asset_selection=list(request.asset_selection or []),
        )
        assert healed.success
        assert warehouse.scalar("SELECT COUNT(*) FROM mart.crash_last") == 3
        assert instance.get_runs_count(filters=RunsFilter(statuses=[DagsterRunStatus.SUCCESS])) == 1
    print(f"dead run worker detected and failed {detected_s:.2f}s after the watchdog tick started")
    dispose_engines()
