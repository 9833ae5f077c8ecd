"""Run-worker watchdog: a STARTED run whose worker process is gone is marked failed.

Why: with ``DefaultRunLauncher`` (``orchestration/dagster.yaml`` and ``dagster.local.yaml``) Dagster's
run monitoring cannot check a run worker's health (only container launchers can). The code server
that spawned a worker fails the run when the worker dies, but when that code server itself is
replaced (restart, reload, crash) nobody does: the run stays STARTED forever, holding its Kafka
range for ``COMMERCE_KAFKA_IN_FLIGHT_TIMEOUT_SECONDS`` and its pool slots. The worker's pid is in
the run's own event log (Dagster's "Started process for run (pid: N)" engine event); the run
launcher starts workers on the code server's host, where this sensor is evaluated too, so a pid
that no longer exists there (or now belongs to a process started after the run's worker) means the
worker is dead. The run is then failed like the code server would have: Dagster's run retries and
``run_failure_incidents_sensor`` take it from there, and run monitoring frees its slots.

A STARTING run whose launch was lost (the daemon or its code server died between marking it
STARTING and its worker reporting a live pid) is failed too, once it has been STARTING for
``AFLUENTE_RUN_WORKER_START_SECONDS`` with no live worker: otherwise only run monitoring's
``start_timeout_seconds`` (180 s) would fail it. A worker that is alive but slow to start is left
alone (run monitoring still bounds it), and one that shows up after the run was failed is ignored by
Dagster ("a run worker that started after the run had already finished"). Such a run is tagged
``afluente/worker_lost`` so its incident is a transient worker crash, not "unknown".
"""

import datetime
import os
import time
from collections.abc import Iterable

from dagster import (
    DagsterEventType,
    DagsterInstance,
    DagsterRun,
    DagsterRunStatus,
    DefaultRunLauncher,
    DefaultSensorStatus,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SkipReason,
    sensor,
)

from resources.settings import SelfHealingSettings
from sensors.reexecution import WORKER_LOST_TAG

# A pid reused by a process started this long after the run worker's start event is another process.
_START_SLACK_S = 2.0
_MAX_RUNS_PER_TICK = 200
_ENGINE_EVENTS_LOOKBACK = 50


def process_started_at(pid: int) -> float | None:
    """Start time (epoch seconds) of a live, non-zombie process; None when there is none.

    Linux reads ``/proc`` (start ticks since boot + boot time); elsewhere only existence is known
    (start time 0.0).
    """
    stat = f"/proc/{pid}/stat"
    if os.path.exists("/proc/stat"):
        try:
            with open(stat) as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open("/proc/stat") as handle:
                boot = next(float(line.split()[1]) for line in handle if line.startswith("btime "))
        except (OSError, IndexError, StopIteration, ValueError):
            return None
        if fields[0] in ("Z", "X"):  # exited, not reaped yet by its parent
            return None
        return boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return 0.0
    return 0.0


def worker_pid(instance: DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The run worker's pid and the time it reported it, from the run's newest pid engine event."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.ENGINE_EVENT, ascending=False, limit=_ENGINE_EVENTS_LOOKBACK
    ).records
    for record in records:
        event = record.event_log_entry.dagster_event
        metadata = getattr(getattr(event, "event_specific_data", None), "metadata", None) or {}
        value = getattr(metadata.get("pid"), "value", None)
        if value is not None and str(value).isdigit():
            return int(str(value)), record.event_log_entry.timestamp
    return None


def worker_is_dead(pid: int, reported_at: float) -> bool:
    started = process_started_at(pid)
    return started is None or started > reported_at + _START_SLACK_S


def fail_runs_with_dead_workers(instance: DagsterInstance, limit: int = _MAX_RUNS_PER_TICK) -> list[str]:
    """Mark failed every STARTED run whose worker process is gone, and every STARTING run whose
    launch was lost (no live worker after ``AFLUENTE_RUN_WORKER_START_SECONDS``); the run ids failed."""
    if not isinstance(instance.run_launcher, DefaultRunLauncher):
        return []  # container launchers: Dagster's run monitoring checks the workers itself
    failed = []
    for record in instance.get_run_records(
        filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]), limit=limit
    ):
        run = record.dagster_run
        worker = worker_pid(instance, run.run_id)
        if worker is None or not worker_is_dead(*worker):
            continue
        current = instance.get_run_by_id(run.run_id)
        if current is None or current.status != DagsterRunStatus.STARTED:
            continue  # finished meanwhile
        _report_dead_worker(instance, current, worker[0])
        failed.append(run.run_id)
    return failed + fail_lost_launches(instance, limit)


def fail_lost_launches(instance: DagsterInstance, limit: int = _MAX_RUNS_PER_TICK) -> list[str]:
    """Mark failed every run STARTING for longer than the setting with no live run worker."""
    grace = SelfHealingSettings.current().run_worker_start_seconds
    now = time.time()
    failed = []
    for record in instance.get_run_records(
        filters=RunsFilter(statuses=[DagsterRunStatus.STARTING]), limit=limit
    ):
        starting_for = now - starting_since(instance, record.dagster_run.run_id, record.create_timestamp)
        if starting_for < grace:
            continue
        worker = worker_pid(instance, record.dagster_run.run_id)
        if worker is not None and not worker_is_dead(*worker):
            continue  # alive, still loading: run monitoring's start timeout bounds it
        current = instance.get_run_by_id(record.dagster_run.run_id)
        if current is None or current.status != DagsterRunStatus.STARTING:
            continue  # started or finished meanwhile
        instance.add_run_tags(current.run_id, {WORKER_LOST_TAG: current.run_id})
        seen = f"its worker (pid {worker[0]}) is gone" if worker else "no run worker ever reported"
        instance.report_run_failed(
            current,
            f"Run STARTING for {starting_for:.0f}s and {seen}: its launch was lost (the daemon or the "
            "code server that launched it died). Marked failed by run_worker_watchdog_sensor "
            "(AFLUENTE_RUN_WORKER_START_SECONDS) so that it is retried and its slots are freed.",
        )
        failed.append(current.run_id)
    return failed


def starting_since(instance: DagsterInstance, run_id: str, created: datetime.datetime) -> float:
    """When the run became STARTING (its run-starting event), else when it was created."""
    records = instance.get_records_for_run(
        run_id, of_type=DagsterEventType.RUN_STARTING, ascending=False, limit=1
    ).records
    return records[0].event_log_entry.timestamp if records else created.timestamp()


def _report_dead_worker(instance: DagsterInstance, run: DagsterRun, pid: int) -> None:
    age = time.time() - run_start_or_now(instance, run)
    instance.report_run_failed(
        run,
        f"Run worker (pid {pid}) is no longer running ({age:.0f}s after the run started) and its "
        "run is still STARTED: the worker or the code server that launched it died. Marked failed by "
        "run_worker_watchdog_sensor so that it is retried and its slots are freed.",
    )


def run_start_or_now(instance: DagsterInstance, run: DagsterRun) -> float:
    record = instance.get_run_record_by_id(run.run_id)
    started = getattr(record, "start_time", None) if record else None
    return float(started) if started else time.time()


def build_run_worker_watchdog_sensor(
    *,
    name: str = "run_worker_watchdog_sensor",
    minimum_interval_seconds: int = 15,
    default_status: DefaultSensorStatus = DefaultSensorStatus.RUNNING,
) -> SensorDefinition:
    """The watchdog sensor (see module docstring); it launches nothing itself."""

    @sensor(
        name=name,
        minimum_interval_seconds=minimum_interval_seconds,
        default_status=default_status,
        description=(
            "Fails STARTED runs whose run worker process is gone (code server replaced, worker "
            "killed) and STARTING runs whose launch was lost, so Dagster retries them and frees "
            "their pool slots (DefaultRunLauncher only)."
        ),
    )
    def _watchdog(context: SensorEvaluationContext) -> SkipReason:
        failed = fail_runs_with_dead_workers(context.instance)
        for run_id in failed:
            context.log.warning(f"run {run_id}: run worker gone, marked failed")
        return SkipReason(_summary(failed))

    return _watchdog


def _summary(failed: Iterable[str]) -> str:
    failed = list(failed)
    return f"{len(failed)} run(s) with a dead worker marked failed" if failed else "every run worker alive"


__all__ = [
    "build_run_worker_watchdog_sensor",
    "fail_lost_launches",
    "fail_runs_with_dead_workers",
    "process_started_at",
]
