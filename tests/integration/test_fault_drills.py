"""Fault drills through the daemon alone, on the `make demo` instance (orchestration/dagster.local.yaml).

A real ``dagster-daemon`` (its own code server, sensors, run queue, run monitoring, run retries)
runs the commerce Kafka pipeline into a fresh PostgreSQL database; a drill breaks one thing and
then only watches. Nothing is done by hand afterwards: the marts must reach the exact totals of
every produced event, each event once, with exact dead letters and ledger coverage, the incident
recorded, and the read API's ``/health`` back to what it answered before the fault.

* a run worker SIGKILLed while building ``stg.commerce_events`` (its ingest already committed):
  needs the dead run's ``sql_model/stg.commerce_events`` slot freed (issue 14, item 6) and its
  unbuilt models requested again (item 7). Before: the slot stayed held, the marts stale;
* the daemon SIGKILLed (with its code server and run workers) while one run is STARTED and another
  STARTING: once it is back, the dead runs are failed and retried. The STARTING run never got a
  worker, so only run monitoring's ``start_timeout_seconds`` (180 s) fails it: recovery ~3.5 min.
"""

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, DagsterRunStatus, RunsFilter

from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource
from services import ConnectionInfo
from tests.integration.drill_support import (
    REFRESH_JOB,
    STAGING_STEP,
    all_incidents,
    commerce_caught_up,
    daemon,
    drill_env,
    health_returns_to,
    health_state,
    incidents_of,
    instance_for,
    produce,
    runs_in_step,
    summary_events,
    unfinished_runs,
    until,
    worker_pid,
)
from tests.integration.test_commerce_helpers import valid

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

CRASH_INCIDENT = (None, "transient", "reexecuted", "RunWorkerCrash")


@pytest.fixture
def local_instance_env(
    pg: WarehouseResource,
    topic_env: str,
    kafka: KafkaResource,
    mongo_server: ConnectionInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    return drill_env(
        tmp_path,
        monkeypatch,
        warehouse_url=pg.url,
        kafka_bootstrap=kafka.bootstrap_servers,
        topic=topic_env,
        mongo_url=mongo_server.url,
    )


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def test_refresh_run_killed_while_building_staging_catches_up_through_the_daemon(
    local_instance_env: dict[str, str], pg: WarehouseResource, kafka: KafkaResource, tmp_path: Path
) -> None:
    topic = local_instance_env["COMMERCE_KAFKA_TOPIC"]
    log = tmp_path / "daemon.log"
    produced = produce(kafka, topic, 600, seed=71)
    with instance_for(local_instance_env) as instance, daemon(local_instance_env, log):
        # First cycle, untouched: the daemon ingests and refreshes on its own.
        first_valid = len(valid(produced))
        until("first batch in the marts", lambda: summary_events(pg) == first_valid, 240, log)
        prior = health_state(pg.url)

        # Second batch: hold stg.commerce_events so the refresh run is caught inside that step.
        with psycopg.connect(_libpq(pg.url)) as blocker:
            blocker.execute("LOCK TABLE stg.commerce_events IN ACCESS EXCLUSIVE MODE")
            produced += produce(kafka, topic, 600, seed=72)
            before = {r.run_id for r in instance.get_runs()}
            (run_id,) = until(
                "refresh run building stg.commerce_events",
                lambda: runs_in_step(instance, REFRESH_JOB, STAGING_STEP, before, DagsterRunStatus.STARTED),
                180,
                log,
                0.2,
            )
            os.kill(worker_pid(instance, run_id), signal.SIGKILL)
            killed_at = time.monotonic()
            blocker.rollback()

        # The ingest of the killed run committed: raw is complete, the marts are not.
        assert pg.scalar("SELECT COUNT(*) FROM raw.commerce_events") == len(valid(produced))
        assert summary_events(pg) == first_valid

        # Through the daemon alone: exact totals in the marts.
        until(
            "marts caught up after the kill", lambda: commerce_caught_up(pg, kafka, topic, produced), 300, log
        )
        recovery_s = time.monotonic() - killed_at
        killed = instance.get_run_by_id(run_id)
        assert killed is not None and killed.status == DagsterRunStatus.FAILURE
        until("incident of the killed run", lambda: incidents_of(pg, run_id), 60, log)
        assert incidents_of(pg, run_id) == [CRASH_INCIDENT]
        health_returns_to(pg.url, prior, log)
        until("no run left in flight", lambda: not unfinished_runs(instance), 120, log)
    print(f"drill run-worker-killed-in-model-build: marts caught up {recovery_s:.1f}s after the SIGKILL")


def _statuses(instance: DagsterInstance, run_ids: list[str]) -> dict[str, str]:
    return {
        rid: getattr(instance.get_run_by_id(rid), "status", DagsterRunStatus.NOT_STARTED).value
        for rid in run_ids
    }


def test_daemon_killed_with_runs_started_and_starting_catches_up_once_restarted(
    local_instance_env: dict[str, str], pg: WarehouseResource, kafka: KafkaResource, tmp_path: Path
) -> None:
    """SIGKILL of the daemon process: its code server outlives it and serves the runs it launched."""
    topic = local_instance_env["COMMERCE_KAFKA_TOPIC"]
    log = tmp_path / "daemon.log"
    produced = produce(kafka, topic, 600, seed=75)
    blocker = psycopg.connect(_libpq(pg.url))
    with instance_for(local_instance_env) as instance, daemon(local_instance_env, log) as first:
        first_valid = len(valid(produced))
        until("first batch in the marts", lambda: summary_events(pg) == first_valid, 240, log)
        prior = health_state(pg.url)
        # Run A waits inside stg.commerce_events (STARTED); run B, launched behind it, is STARTING.
        blocker.execute("LOCK TABLE stg.commerce_events IN ACCESS EXCLUSIVE MODE")
        before = {r.run_id for r in instance.get_runs()}
        produced += produce(kafka, topic, 600, seed=76)
        (started,) = until(
            "run A building stg.commerce_events",
            lambda: runs_in_step(instance, REFRESH_JOB, STAGING_STEP, before, DagsterRunStatus.STARTED),
            180,
            log,
            0.2,
        )
        before.add(started)
        produced += produce(kafka, topic, 600, seed=77)

        def starting() -> list[str]:
            runs = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTING]))
            return [r.run_id for r in runs if r.run_id not in before]

        (launching,) = until("run B starting", starting, 180, log, 0.05)
        os.kill(first.pid, signal.SIGKILL)
        killed_at = time.monotonic()
        first.wait(timeout=10)
        at_kill = _statuses(instance, [started, launching])
        time.sleep(5)  # the daemon stays dead a while
    with instance_for(local_instance_env) as instance, daemon(local_instance_env, log):
        blocker.rollback()
        blocker.close()
        until(
            "marts caught up after the restart",
            lambda: commerce_caught_up(pg, kafka, topic, produced),
            300,
            log,
        )
        recovery_s = time.monotonic() - killed_at
        until("no run left in flight", lambda: not unfinished_runs(instance), 180, log)
        finals = _statuses(instance, [started, launching])
        incidents = all_incidents(pg)
        health_returns_to(pg.url, prior, log)
    print(
        f"drill daemon-killed: at the kill {at_kill}, then {finals}; incidents {incidents}; "
        f"marts caught up {recovery_s:.1f}s after the SIGKILL"
    )
