"""A run left STARTING by a lost launch: the watchdog fails it after AFLUENTE_RUN_WORKER_START_SECONDS.

The daemon (or the code server launching the run) dies after marking a run STARTING and before a
run worker reports a pid: nobody will ever start or fail that run. Before, only run monitoring's
``start_timeout_seconds`` (180 s) failed it and its incident was diagnosed "unknown"; now
``run_worker_watchdog_sensor`` fails it once the grace period has passed (not before), and
``run_failure_incidents_sensor`` records a transient worker crash and re-executes its assets.
"""

import time
from pathlib import Path

import pytest
from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    build_run_status_sensor_context,
    build_sensor_context,
)

from resources.warehouse import WarehouseResource, dispose_engines
from sensors.reexecution import WORKER_CRASH, WORKER_LOST_TAG
from tests.integration.test_run_worker_crash import FIRST, LAST, SLOW, crash_defs

pytestmark = pytest.mark.faults

GRACE_S = 3


def test_run_starting_without_a_worker_is_failed_after_the_grace_and_diagnosed_a_crash(
    warehouse: WarehouseResource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AFLUENTE_RUN_WORKER_START_SECONDS", str(GRACE_S))
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")  # DefaultRunLauncher
    defs = crash_defs(warehouse.url)
    sensors = {s.name: s for s in defs.sensors}
    watchdog = sensors["run_worker_watchdog_sensor"]
    with DagsterInstance.from_config(str(home)) as instance:
        job = defs.resolve_job_def("crash_pipeline")
        finished = instance.create_run_for_job(job, status=DagsterRunStatus.SUCCESS)  # not touched
        run = instance.create_run_for_job(job, status=DagsterRunStatus.STARTING)

        # Within the grace period a launch may still be under way: left alone.
        tick = watchdog.evaluate_tick(build_sensor_context(instance=instance))
        assert tick.skip_message == "every run worker alive"
        assert instance.get_run_by_id(run.run_id).status == DagsterRunStatus.STARTING

        time.sleep(GRACE_S + 0.5)
        tick = watchdog.evaluate_tick(build_sensor_context(instance=instance))
        assert tick.skip_message == "1 run(s) with a dead worker marked failed"
        failed = instance.get_run_by_id(run.run_id)
        assert failed is not None and failed.status == DagsterRunStatus.FAILURE
        assert failed.tags[WORKER_LOST_TAG] == run.run_id
        assert instance.get_run_by_id(finished.run_id).status == DagsterRunStatus.SUCCESS
        again = watchdog.evaluate_tick(build_sensor_context(instance=instance))
        assert again.skip_message == "every run worker alive"

        (failure,) = [
            r.event_log_entry.dagster_event
            for r in instance.get_records_for_run(run.run_id, of_type=DagsterEventType.RUN_FAILURE).records
        ]
        assert "no run worker ever reported" in (failure.message or "")
        context = build_run_status_sensor_context(
            sensor_name="run_failure_incidents_sensor",
            dagster_event=failure,
            dagster_instance=instance,
            dagster_run=failed,
            resources={"warehouse": warehouse},
        ).for_run_failure()
        (request,) = list(sensors["run_failure_incidents_sensor"](context) or [])
        assert set(request.asset_selection or []) == {FIRST, SLOW, LAST}

        rows = warehouse.read_frame("SELECT * FROM ops.incidents")
        assert len(rows) == 1
        row = rows.iloc[0]
        assert (row["run_id"], row["diagnosis"], row["action"], row["error_class"]) == (
            run.run_id,
            "transient",
            "reexecuted",
            "RunWorkerCrash",
        )
        assert WORKER_CRASH.explanation in row["explanation"]
    dispose_engines()
