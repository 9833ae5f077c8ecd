"""Fault drills through the daemon alone, on the `make demo` instance (orchestration/dagster.local.yaml).

A real ``dagster-daemon`` (its own code server, sensors, run queue, run monitoring, run retries)
runs the commerce Kafka pipeline into a fresh PostgreSQL database; a drill breaks one thing and
then only watches. Nothing is done by hand afterwards: the marts must reach the exact totals of
every produced event, each event once, with exact dead letters and ledger coverage, the incident
recorded, and the read API's ``/health`` back to what it answered before the fault.

* a run worker SIGKILLed while building ``stg.commerce_events`` (its ingest already committed):
  needs the dead run's ``sql_model/stg.commerce_events`` slot freed (issue 14, item 6) and its
  unbuilt models requested again (item 7). Before: the slot stayed held, the marts stale;
* a run worker SIGKILLed inside its ingest transaction (raw rows written, ledger not yet): the
  transaction rolls back and the same range is ingested again, once;
* the daemon SIGKILLed (its code server and run workers stopped after it) while one run is STARTED
  and another STARTING: once it is back, the dead runs are failed and retried. A STARTING run
  whose launch was lost is failed by ``run_worker_watchdog_sensor`` after
  ``AFLUENTE_RUN_WORKER_START_SECONDS`` (60 s) as a transient worker crash; before, only run
  monitoring's ``start_timeout_seconds`` (180 s) failed it, diagnosed "unknown".

Drills stopping PostgreSQL or Kafka themselves are in ``test_fault_drills_services.py``.
"""

import os
import signal
import time
from pathlib import Path

import psycopg
import pytest
from dagster import DagsterInstance, DagsterRun, DagsterRunStatus, RunsFilter

from assets.sources.kafka_topic._sensor import RANGES_TAG
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
    first_batch_in_marts,
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
        first_valid = first_batch_in_marts(pg, produced, log)
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


def test_run_worker_killed_mid_ingest_transaction_rolls_back_and_the_range_is_ingested_once(
    local_instance_env: dict[str, str], pg: WarehouseResource, kafka: KafkaResource, tmp_path: Path
) -> None:
    """The worker dies after writing raw rows and dead letters, before its ledger rows: nothing commits."""
    topic = local_instance_env["COMMERCE_KAFKA_TOPIC"]
    log = tmp_path / "daemon.log"
    produced = produce(kafka, topic, 600, seed=73)
    with instance_for(local_instance_env) as instance, daemon(local_instance_env, log):
        first_batch_in_marts(pg, produced, log)
        # Quiet first: the only ingest in flight below is the one the drill catches.
        until("first cycle's runs finished", lambda: not unfinished_runs(instance), 120, log)
        prior = health_state(pg.url)

        # The watcher has no open transaction: pg_stat_activity is frozen within one.
        with (
            psycopg.connect(_libpq(pg.url)) as blocker,
            psycopg.connect(_libpq(pg.url), autocommit=True) as watcher,
        ):
            # Reads of the ledger go on (sensor, ingest); its writes wait: the ingest transaction
            # is caught after its raw rows, at its ledger insert.
            blocker.execute("LOCK TABLE raw.kafka_offsets IN EXCLUSIVE MODE")
            before = {r.run_id for r in instance.get_runs()}
            produced += produce(kafka, topic, 600, seed=74)

            def ingest_waiting_on_ledger() -> int | None:
                found = watcher.execute(
                    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event_type = 'Lock' AND state = 'active' AND query ILIKE '%kafka_offsets%'"
                ).fetchall()
                return found[0][0] if found else None

            def new_started_runs() -> list[DagsterRun]:
                runs = instance.get_runs(filters=RunsFilter(statuses=[DagsterRunStatus.STARTED]))
                return [r for r in runs if r.run_id not in before]

            backend = until("ingest waiting inside its transaction", ingest_waiting_on_ledger, 180, log, 0.2)
            (run,) = until("the ingest run STARTED", new_started_runs, 30, log, 0.2)
            run_id = run.run_id
            # Its raw rows are written (it holds the insert lock of raw.commerce_events), not committed.
            holds = watcher.execute(
                "SELECT COUNT(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                "WHERE l.pid = %s AND c.relname = 'commerce_events' AND l.mode = 'RowExclusiveLock' "
                "AND l.granted",
                (backend,),
            ).fetchone()
            assert holds == (1,)
            os.kill(worker_pid(instance, run_id), signal.SIGKILL)
            killed_at = time.monotonic()
            blocker.rollback()
        # The backend notices its client is gone and aborts; nothing of that run was committed.
        gone = "SELECT COUNT(*) FROM pg_stat_activity WHERE pid = :pid"
        until("killed worker's backend ended", lambda: pg.scalar(gone, {"pid": backend}) == 0, 60, log)
        batch = f"%_{run_id[:8]}"
        assert (
            pg.scalar("SELECT COUNT(*) FROM raw.commerce_events WHERE ingest_batch LIKE :b", {"b": batch})
            == 0
        )
        assert (
            pg.scalar("SELECT COUNT(*) FROM raw.kafka_ingest_batches WHERE run_id = :r", {"r": run_id}) == 0
        )

        until(
            "marts caught up after the kill", lambda: commerce_caught_up(pg, kafka, topic, produced), 300, log
        )
        recovery_s = time.monotonic() - killed_at

        # The same range was requested again; its events were loaded once across every retry of it.
        def retried_ok() -> list[str]:
            runs = instance.get_runs(filters=RunsFilter(tags={RANGES_TAG: run.tags[RANGES_TAG]}))
            return [r.run_id for r in runs if r.run_id != run_id and r.status == DagsterRunStatus.SUCCESS]

        retried = until("a retry of the range succeeded", retried_ok, 120, log)
        loaded = "SELECT SUM(events_loaded) FROM raw.kafka_ingest_batches WHERE run_id = ANY(:runs)"
        assert pg.scalar(loaded, {"runs": retried}) == sum(1 for e in produced[600:] if e.valid)
        killed = instance.get_run_by_id(run_id)
        assert killed is not None and killed.status == DagsterRunStatus.FAILURE
        until("incident of the killed run", lambda: incidents_of(pg, run_id), 60, log)
        assert incidents_of(pg, run_id) == [CRASH_INCIDENT]
        health_returns_to(pg.url, prior, log)
        until("no run left in flight", lambda: not unfinished_runs(instance), 120, log)
    print(
        f"drill run-worker-killed-mid-transaction: marts caught up {recovery_s:.1f}s after the SIGKILL; "
        f"range retried by {len(retried)} run(s)"
    )


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
        first_batch_in_marts(pg, produced, log)
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
        # Every run the kill failed is a transient worker crash, retried (none "unknown").
        for run_id, status in finals.items():
            if status == DagsterRunStatus.FAILURE.value:
                until(f"incident of {run_id}", lambda r=run_id: incidents_of(pg, r), 60, log)
                assert incidents_of(pg, run_id) == [CRASH_INCIDENT], run_id
        incidents = all_incidents(pg)
        assert all((i["diagnosis"], i["action"]) == ("transient", "reexecuted") for i in incidents), incidents
        health_returns_to(pg.url, prior, log)
    print(
        f"drill daemon-killed: at the kill {at_kill}, then {finals}; incidents {incidents}; "
        f"marts caught up {recovery_s:.1f}s after the SIGKILL"
    )
