"""Shared by the fault drills (tests/integration/test_fault_drills*.py): a real daemon, waits, exact checks.

A drill runs ``dagster-daemon`` on a DAGSTER_HOME holding ``orchestration/dagster.local.yaml`` as
shipped (the ``make demo`` instance: SQLite storage, queued runs, run retries, run monitoring), so
recovery happens through the daemon alone, as in production; the test only breaks things and reads.
The system_logs drills drive the monitor's passes themselves: ``EventFlow`` keeps events and log lines
coming, ``StopsTheNode`` stops (or freezes) the search node at an exact point of a pass.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus, RunsFilter
from fastapi.testclient import TestClient

from api.app import create_app
from generators.commerce import GeneratedEvent, generate_events, produce_to_kafka
from orchestration import demo
from resources.kafka import KafkaResource
from resources.search_client import SearchClient
from resources.warehouse import WarehouseResource
from tests.fixtures.private_services import free_port
from tests.integration.test_commerce_helpers import START, assert_marts, rows, valid
from tests.integration.test_system_logs import produce_envelopes

ROOT = Path(__file__).resolve().parents[2]
REFRESH_JOB = "commerce_kafka_ingest_and_refresh"
STAGING_STEP = "stg__commerce_events"
NEVER = "0 0 1 1 *"  # schedules that would only add load to a drill
# Runs that still hold the daemon's attention (a drill ends with none of them).
UNFINISHED = [
    DagsterRunStatus.QUEUED,
    DagsterRunStatus.NOT_STARTED,
    DagsterRunStatus.STARTING,
    DagsterRunStatus.STARTED,
    DagsterRunStatus.CANCELING,
]


def drill_env(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    warehouse_url: str,
    kafka_bootstrap: str,
    topic: str,
    mongo_url: str,
    **extra: str,
) -> dict[str, str]:
    """DAGSTER_HOME with dagster.local.yaml as is, the platform on isolated names (also in this process)."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "orchestration/dagster.local.yaml", home / "dagster.yaml")
    env = {
        "DAGSTER_HOME": str(home),
        "WAREHOUSE_URL": warehouse_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "COMMERCE_KAFKA_TOPIC": topic,
        "COMMERCE_KAFKA_MAX_EVENTS_PER_RUN": "100000",  # one batch = one catching-up refresh run
        "COMMERCE_KAFKA_MAX_RUNS_PER_TICK": "50",
        "COMMERCE_KAFKA_SENSOR_INTERVAL_SECONDS": "2",
        "AFLUENTE_LANDING_DIR": str(tmp_path / "landing"),
        "MONGO_URI": mongo_url,
        "USAGE_MONGO_DATABASE": f"drill_{os.getpid()}_{time.time_ns() % 10**9}",
        "SEARCH_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens: search stays out of the drill
        "SEARCH_ENABLED": "false",  # and the system-logs monitor's sensor with it (no run every tick)
        # The subscriptions feed reads its own (empty) drill topics, never the shared ones.
        "SUBSCRIPTIONS_COMMANDS_TOPIC": f"{topic}.subscriptions.commands",
        "SUBSCRIPTIONS_RESPONSES_TOPIC": f"{topic}.subscriptions.responses",
        "EXPORTS_REFRESH_CRON": NEVER,
        "USAGE_INDEX_REFRESH_CRON": NEVER,
        "COMMERCE_DATA_TESTS_CRON": NEVER,
        **extra,
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return {**os.environ, **env, "PYTHONPATH": str(ROOT)}


def start_daemon(env: Mapping[str, str], log: Path) -> subprocess.Popen:
    """``dagster-daemon run`` in its own session (its code server and run workers in its group)."""
    return demo.start_daemon(log, env)


# SIGTERM the daemon's process group (daemon, code server, run workers), then SIGKILL what is left.
stop_group = demo.stop_daemon


@contextmanager
def daemon(env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen]:
    proc = start_daemon(env, log)
    try:
        yield proc
    finally:
        stop_group(proc)


@contextmanager
def instance_for(env: Mapping[str, str]) -> Iterator[DagsterInstance]:
    """The drill's instance; its storage is created here first (not by the daemon and us at once)."""
    with DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        instance.get_runs_count()
        yield instance


def until(what: str, predicate: Callable[[], Any], timeout: float, log: Path, every: float = 0.5) -> Any:
    """Poll ``predicate`` until truthy; fail with the daemon log's tail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    pytest.fail(f"{what}: not within {timeout:.0f}s\n----- daemon log -----\n{log.read_text()[-4000:]}")


def produce(kafka: KafkaResource, topic: str, n: int, seed: int) -> list[GeneratedEvent]:
    events = list(generate_events(n, seed=seed, bad_share=0.02, start=START, events_per_second=2))
    assert produce_to_kafka(iter(events), kafka.bootstrap_servers, topic).sent == n
    return events


def first_batch_in_marts(pg: WarehouseResource, produced: list[GeneratedEvent], log: Path) -> int:
    """Wait for the daemon's first, untouched cycle: every valid produced event counted by the summary
    mart. Returns that count (what the marts hold before the drill interferes)."""
    expected = len(valid(produced))
    until("first batch in the marts", lambda: summary_events(pg) == expected, 240, log)
    return expected


def summary_events(pg: WarehouseResource) -> int:
    """Events counted by the summary mart (a materialized view on PostgreSQL); 0 before it exists."""
    try:
        return int(pg.scalar("SELECT total_events FROM mart.commerce_summary") or 0)
    except sa.exc.ProgrammingError:  # undefined table: not built yet
        return 0


def worker_pid(instance: DagsterInstance, run_id: str) -> int:
    from sensors.run_worker_watchdog import worker_pid as reported_pid

    found = reported_pid(instance, run_id)
    assert found is not None, "the run worker reported no pid"
    return found[0]


def runs_in_step(
    instance: DagsterInstance, job: str, step: str, exclude: set[str], status: DagsterRunStatus
) -> list[str]:
    """Runs of ``job`` (not in ``exclude``) with ``status`` that started ``step``."""
    found = []
    for run in instance.get_runs(filters=RunsFilter(job_name=job, statuses=[status])):
        if run.run_id in exclude:
            continue
        starts = instance.get_records_for_run(run.run_id, of_type=DagsterEventType.STEP_START).records
        if any(r.event_log_entry.step_key == step for r in starts):
            found.append(run.run_id)
    return found


def unfinished_runs(instance: DagsterInstance) -> list[str]:
    return [r.run_id for r in instance.get_runs(filters=RunsFilter(statuses=UNFINISHED))]


def assert_commerce_exact(
    pg: WarehouseResource, kafka: KafkaResource, topic: str, produced: list[GeneratedEvent]
) -> None:
    """Raw rows, marts, dead letters and ledger coverage exactly match every produced event, once."""
    good = valid(produced)
    assert pg.scalar("SELECT COUNT(*) FROM raw.commerce_events") == len(good)
    assert pg.scalar(
        "SELECT COUNT(DISTINCT (source_partition, source_offset)) FROM raw.commerce_events"
    ) == len(good)
    assert_marts(pg, good)
    assert pg.scalar("SELECT COUNT(*) FROM raw.commerce_events_dead_letter") == sum(
        1 for e in produced if not e.valid
    )
    ends = kafka.end_offsets(topic)
    ledger = rows(
        pg,
        "SELECT kafka_partition, MIN(start_offset) AS lo, MAX(next_offset) AS hi, "
        "SUM(next_offset - start_offset) AS covered FROM raw.kafka_offsets WHERE topic = :topic "
        "GROUP BY kafka_partition",
        {"topic": topic},
    )
    assert {r["kafka_partition"]: (r["lo"], r["hi"], r["covered"]) for r in ledger} == {
        p: (0, end, end) for p, end in ends.items() if end
    }


def commerce_caught_up(
    pg: WarehouseResource, kafka: KafkaResource, topic: str, produced: list[GeneratedEvent]
) -> bool:
    """Every mart exact (the summary mart may be rebuilt before the others: wait for all of them)."""
    try:
        assert_commerce_exact(pg, kafka, topic, produced)
    except (AssertionError, sa.exc.ProgrammingError):
        return False
    return True


def incidents_of(pg: WarehouseResource, run_id: str) -> list[tuple]:
    """(step_key, diagnosis, action, error_class) of the incidents recorded for ``run_id``."""
    try:
        found = rows(pg, "SELECT * FROM ops.incidents WHERE run_id = :r ORDER BY step_key", {"r": run_id})
    except sa.exc.ProgrammingError:  # the failure sensor creates the table with its first incident
        return []
    return [(i["step_key"], i["diagnosis"], i["action"], i["error_class"]) for i in found]


def all_incidents(pg: WarehouseResource) -> list[dict]:
    try:
        return rows(pg, "SELECT run_id, step_key, diagnosis, action, error_class FROM ops.incidents")
    except sa.exc.ProgrammingError:  # the failure sensor creates it with its first incident
        return []


def health(warehouse_url: str) -> tuple[int, dict[str, Any]]:
    """``GET /health`` of the read API over the drill's warehouse."""
    with TestClient(create_app(warehouse_url)) as client:
        response = client.get("/health")
    return response.status_code, response.json()


def health_state(warehouse_url: str) -> tuple[int, str, dict[str, str]]:
    """What a probe or an operator acts on: HTTP status, overall status and each check's status."""
    code, body = health(warehouse_url)
    checks = {name: check.get("status") for name, check in (body.get("checks") or {}).items() if check}
    return code, body.get("status", ""), checks


def health_returns_to(warehouse_url: str, prior: tuple, log: Path, timeout: float = 60) -> None:
    seen: list[tuple] = []

    def back() -> bool:
        seen[:] = [health_state(warehouse_url)]
        return seen[0] == prior

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if back():
            return
        time.sleep(1.0)
    pytest.fail(f"/health not back to {prior} within {timeout:.0f}s: still {seen}\n{log.read_text()[-2000:]}")


class EventFlow(threading.Thread):
    """Events to the monitor's topic and JSON log lines to its log file, every 0.2 s until ``finish``."""

    def __init__(self, kafka: KafkaResource, topic: str, log: logging.Logger) -> None:
        super().__init__(name="system-logs-flow", daemon=True)
        self.kafka, self.topic, self.log = kafka, topic, log
        self.events: set[str] = set()
        self.lines = 0
        self.error: BaseException | None = None
        self._halt = threading.Event()

    def run(self) -> None:
        number = 100_000  # envelope numbers apart from the burst's
        try:
            while not self._halt.is_set():
                self.events |= produce_envelopes(self.kafka, self.topic, 10, start=number)
                number += 10
                self.log.info("request served", extra={"correlation_id": f"c{number}", "status": 200})
                self.lines += 1
                self._halt.wait(0.2)
        except BaseException as exc:  # noqa: BLE001 - reported by finish()
            self.error = exc

    def finish(self, timeout: float = 60) -> set[str]:
        self._halt.set()
        self.join(timeout)
        assert not self.is_alive(), "the event flow did not stop"
        assert self.error is None, f"the event flow failed: {self.error!r}"
        return self.events


class StopsTheNode(SearchClient):
    """The real client; ``stop_node`` runs before bulk request number ``before_bulk`` is sent, or after
    number ``after_bulk`` was answered: where a pass is when the node goes away, made exact."""

    def __init__(
        self,
        url: str,
        stop_node: Callable[[], None],
        before_bulk: int = 0,
        after_bulk: int = 0,
        request_timeout_s: float = 30.0,
    ) -> None:
        super().__init__(url, request_timeout_s=request_timeout_s)
        self.stop_node, self.before_bulk, self.after_bulk = stop_node, before_bulk, after_bulk
        self.bulks = 0

    def bulk_ndjson(self, body: bytes, reply_filter: str = "errors,items.*.error") -> dict[str, Any]:
        self.bulks += 1
        if self.bulks == self.before_bulk:
            self.stop_node()
        reply = super().bulk_ndjson(body, reply_filter)
        if self.bulks == self.after_bulk:
            self.stop_node()
        return reply
