"""Fault drills through the daemon alone, on the `make demo` instance (orchestration/dagster.local.yaml).

A real ``dagster-daemon`` (its own code server, sensors, run queue, run monitoring, run retries)
runs the commerce Kafka pipeline into a fresh PostgreSQL database. The drill SIGKILLs the run
worker of a ``commerce_kafka_ingest_and_refresh`` run while it builds ``stg.commerce_events`` (its
ingest already committed). Nothing is done by hand afterwards: the marts must reach the exact
totals of every produced event, which needs the dead run's ``sql_model/stg.commerce_events`` pool
slot freed (issue 14, item 6) and its unbuilt models requested again (item 7). Before: the slot
stayed held and the marts stayed at the first batch.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter

from generators.commerce import GeneratedEvent, generate_events, produce_to_kafka
from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource
from services import ConnectionInfo
from tests.integration.test_commerce_helpers import START, assert_marts, rows, valid

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
REFRESH_JOB = "commerce_kafka_ingest_and_refresh"
STAGING_STEP = "stg__commerce_events"
NEVER = "0 0 1 1 *"  # schedules that would only add load to the drill

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def _daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "dagster-daemon"), "run", "-w", str(ROOT / "workspace.yaml")],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


def _until(
    what: str, predicate: Callable[[], object], timeout: float, log: Path, every: float = 0.5
) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f}s\n----- daemon log -----\n{log.read_text()[-4000:]}")


def _produce(kafka: KafkaResource, topic: str, n: int, seed: int) -> list[GeneratedEvent]:
    events = list(generate_events(n, seed=seed, bad_share=0.02, start=START, events_per_second=2))
    assert produce_to_kafka(iter(events), kafka.bootstrap_servers, topic).sent == n
    return events


def _summary_events(pg: WarehouseResource) -> int:
    """Events counted by the summary mart (a materialized view on PostgreSQL); 0 before it exists."""
    try:
        return int(pg.scalar("SELECT total_events FROM mart.commerce_summary") or 0)
    except sa.exc.ProgrammingError:  # undefined table: not built yet
        return 0


@pytest.fixture
def local_instance_env(
    pg: WarehouseResource,
    topic_env: str,
    kafka: KafkaResource,
    mongo_server: ConnectionInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """DAGSTER_HOME holding orchestration/dagster.local.yaml as is; the platform on isolated names."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "orchestration/dagster.local.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        "WAREHOUSE_URL": pg.url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "COMMERCE_KAFKA_MAX_EVENTS_PER_RUN": "100000",  # one batch = one catching-up refresh run
        "COMMERCE_KAFKA_SENSOR_INTERVAL_SECONDS": "2",
        "AFLUENTE_LANDING_DIR": str(tmp_path / "landing"),
        "MONGO_URI": mongo_server.url,
        "USAGE_MONGO_DATABASE": f"drill_{os.getpid()}_{time.time_ns() % 10**9}",
        "SEARCH_URL": f"http://127.0.0.1:{_closed_port()}",
        "EXPORTS_REFRESH_CRON": NEVER,
        "USAGE_INDEX_REFRESH_CRON": NEVER,
        "COMMERCE_DATA_TESTS_CRON": NEVER,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env, "PYTHONPATH": str(ROOT)}


def test_refresh_run_killed_while_building_staging_catches_up_through_the_daemon(
    local_instance_env: dict[str, str], pg: WarehouseResource, kafka: KafkaResource, tmp_path: Path
) -> None:
    topic = local_instance_env["COMMERCE_KAFKA_TOPIC"]
    log = tmp_path / "daemon.log"
    home = local_instance_env["DAGSTER_HOME"]
    produced = _produce(kafka, topic, 600, seed=71)
    # The instance's storage is created here first: the daemon and this test must not both create it.
    with DagsterInstance.from_config(home) as instance, _daemon(local_instance_env, log):
        instance.get_runs_count()
        # First cycle, untouched: the daemon ingests and refreshes on its own.
        first_valid = len(valid(produced))
        _until("first batch in the marts", lambda: _summary_events(pg) == first_valid, 240, log)

        # Second batch: hold stg.commerce_events so the refresh run is caught inside that step.
        plain = pg.url.replace("postgresql+psycopg://", "postgresql://")
        with psycopg.connect(plain) as blocker:
            blocker.execute("LOCK TABLE stg.commerce_events IN ACCESS EXCLUSIVE MODE")
            produced += _produce(kafka, topic, 600, seed=72)
            runs_before = {r.run_id for r in instance.get_runs()}

            def staging_started() -> str | None:
                for run in instance.get_runs(filters=RunsFilter(job_name=REFRESH_JOB)):
                    if run.run_id in runs_before or run.status != DagsterRunStatus.STARTED:
                        continue
                    starts = instance.get_records_for_run(
                        run.run_id, of_type=DagsterEventType.STEP_START
                    ).records
                    if any(r.event_log_entry.step_key == STAGING_STEP for r in starts):
                        return run.run_id
                return None

            run_id = str(_until("refresh run building stg.commerce_events", staging_started, 180, log, 0.2))
            pid = _worker_pid(instance, run_id)
            os.kill(pid, signal.SIGKILL)
            killed_at = time.monotonic()
            blocker.rollback()

        # The ingest of the killed run committed: raw is complete, the marts are not.
        all_valid = valid(produced)
        assert pg.scalar("SELECT COUNT(*) FROM raw.commerce_events") == len(all_valid)
        assert _summary_events(pg) == first_valid

        # Through the daemon alone: exact totals in the marts.
        _until("marts caught up after the kill", lambda: _summary_events(pg) == len(all_valid), 300, log)
        recovery_s = time.monotonic() - killed_at
        assert_marts(pg, all_valid)
        bad = sum(1 for e in produced if not e.valid)
        assert pg.scalar("SELECT COUNT(*) FROM raw.commerce_events_dead_letter") == bad
        ends = kafka.end_offsets(topic)
        ledger = rows(
            pg,
            "SELECT kafka_partition, MIN(start_offset) AS lo, MAX(next_offset) AS hi, "
            "SUM(next_offset - start_offset) AS covered FROM raw.kafka_offsets GROUP BY kafka_partition",
        )
        assert {r["kafka_partition"]: (r["lo"], r["hi"], r["covered"]) for r in ledger} == {
            p: (0, end, end) for p, end in ends.items() if end
        }

        killed = instance.get_run_by_id(run_id)
        assert killed is not None and killed.status == DagsterRunStatus.FAILURE
        incidents = rows(pg, "SELECT * FROM ops.incidents WHERE run_id = :r", {"r": run_id})
        assert [(i["step_key"], i["diagnosis"], i["action"], i["error_class"]) for i in incidents] == [
            (None, "transient", "reexecuted", "RunWorkerCrash")
        ]
    print(f"drill run-worker-killed-in-model-build: marts caught up {recovery_s:.1f}s after the SIGKILL")


def _worker_pid(instance: DagsterInstance, run_id: str) -> int:
    from sensors.run_worker_watchdog import worker_pid

    found = worker_pid(instance, run_id)
    assert found is not None, "the run worker reported no pid"
    return found[0]
