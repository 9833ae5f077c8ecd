"""Fault drills that stop a server mid-work: PostgreSQL during a COPY, Kafka during an ingest range.

The stopped server is a PRIVATE instance (own services home and ports, tests/fixtures/private_services.py),
never the shared one other tests use. A real ``dagster-daemon`` on ``orchestration/dagster.local.yaml``
does all the recovering (SQLite run storage: Dagster's storage is not on the stopped server); the test
stops and starts the server, then only reads. Each drill asserts exact counts, the incidents, the
read API's ``/health`` during the outage and back to its prior state, and prints its recovery time.
"""

import os
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from assets.commerce.tables import PIPELINE
from generators.exports import write_export_file
from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource, dispose_engines
from services import ConnectionInfo
from tests.fixtures.private_services import PrivateServices, private_services
from tests.integration.drill_support import (
    all_incidents,
    commerce_caught_up,
    daemon,
    drill_env,
    health_returns_to,
    health_state,
    instance_for,
    produce,
    summary_events,
    unfinished_runs,
    until,
)
from tests.integration.test_commerce_helpers import age, rows, valid

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

EXPORT_ROWS = 400_000


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def private_pg(postgres_server: ConnectionInfo) -> Iterator[PrivateServices]:
    with private_services("postgres") as private:
        yield private
    dispose_engines()


@pytest.fixture
def private_kafka(kafka_server: ConnectionInfo) -> Iterator[PrivateServices]:
    with private_services("kafka") as private:
        yield private


def _drop(landed: Path, folder: Path) -> Path:
    """Land a finished file the way writers should: settled elsewhere, then renamed into the folder."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / landed.name
    os.replace(age(landed), target)
    return target


def _export_ledger(warehouse: WarehouseResource) -> list[tuple]:
    found = rows(
        warehouse,
        "SELECT file_name, status, rows_total, rows_loaded, rows_rejected FROM raw.landing_files "
        "WHERE domain = 'exports' ORDER BY file_name",
    )
    return [tuple(r.values()) for r in found]


def test_postgres_stopped_during_the_copy_of_a_landed_file_loads_it_exactly_once(
    private_pg: PrivateServices,
    kafka_topic: str,
    kafka_server: ConnectionInfo,
    mongo_server: ConnectionInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url = private_pg.up("postgres")["postgres"].url
    env = drill_env(
        tmp_path,
        monkeypatch,
        warehouse_url=url,
        kafka_bootstrap=kafka_server.url,
        topic=kafka_topic,
        mongo_url=mongo_server.url,
        AFLUENTE_SENSOR_INTERVAL_SECONDS="2",
    )
    warehouse = WarehouseResource(url=url)
    log = tmp_path / "daemon.log"
    folder = Path(env["AFLUENTE_LANDING_DIR"]) / "exports"
    written = tmp_path / "written"
    small = write_export_file(written / "exportacao_first.csv", 2_000, seed=90, bad_share=0.01)
    big = write_export_file(written / "exportacao_drill.csv", EXPORT_ROWS, seed=91, bad_share=0.01)
    expected = [
        ("exportacao_drill.csv", "loaded", EXPORT_ROWS, EXPORT_ROWS - big.bad_rows, big.bad_rows),
        ("exportacao_first.csv", "loaded", 2_000, 2_000 - small.bad_rows, small.bad_rows),
    ]

    def ledger_is(want: list[tuple]) -> bool:
        try:
            return _export_ledger(warehouse) == want and not unfinished_runs(instance)
        except Exception:  # warehouse still coming back, or the ledger not created yet
            return False

    with instance_for(env) as instance, daemon(env, log), psycopg.connect(_libpq(url)) as watcher:
        watcher.autocommit = True
        # A first file, untouched: the tables exist, /health has its steady answer.
        _drop(small.path, folder)
        until("first file loaded", lambda: ledger_is(expected[1:]), 180, log)
        prior = health_state(url)

        _drop(big.path, folder)

        def copying() -> bool:
            # Any COPY into this database (the load COPYs into raw.exportacao inside its transaction).
            return watcher.execute(
                "SELECT COUNT(*) FROM pg_stat_progress_copy WHERE datname = current_database() "
                "AND command = 'COPY FROM'"
            ).fetchone() != (0,)

        until("COPY of the landed file in progress", copying, 180, log, 0.05)
        stopped = private_pg.down("postgres")
        stopped_at = time.monotonic()
        assert stopped["postgres"] in ("stopped", "killed")
        assert health_state(url)[:2] == (503, "down")
        time.sleep(3)  # an outage, not a blip
        private_pg.up("postgres")

        until("landed file loaded after the restart", lambda: ledger_is(expected), 180, log)
        recovery_s = time.monotonic() - stopped_at

        # Exactly once, nothing partial: every row of each file once, from one committed load each.
        good = EXPORT_ROWS - big.bad_rows + 2_000 - small.bad_rows
        assert warehouse.scalar("SELECT COUNT(*) FROM raw.exportacao") == good
        assert (
            warehouse.scalar("SELECT COUNT(*) FROM raw.exportacao_rejects") == big.bad_rows + small.bad_rows
        )
        per_file = rows(
            warehouse,
            "SELECT ingest_file_key, COUNT(*) AS n, COUNT(DISTINCT ingest_batch) AS batches "
            "FROM raw.exportacao GROUP BY ingest_file_key",
        )
        assert sorted((r["n"], r["batches"]) for r in per_file) == [
            (2_000 - small.bad_rows, 1),
            (EXPORT_ROWS - big.bad_rows, 1),
        ]
        # No stuck state: both files archived once, nothing left in the landing folder or quarantined.
        assert [p.name for p in folder.iterdir() if p.is_file()] == []
        assert len(list((folder / "_archive").iterdir())) == 2
        assert not (folder / "_quarantine").exists() or not any((folder / "_quarantine").iterdir())
        assert sorted(instance.get_dynamic_partitions("export_files")) == sorted(
            r["ingest_file_key"] for r in per_file
        )
        # Any run the outage failed was diagnosed transient and retried (its incident kept).
        incidents = all_incidents(warehouse)
        assert all(i["diagnosis"] == "transient" and i["action"] == "reexecuted" for i in incidents), (
            incidents
        )
        health_returns_to(url, prior, log)
    print(
        f"drill postgres-stopped-during-copy: file loaded {recovery_s:.1f}s after PostgreSQL stopped; "
        f"incidents {incidents}"
    )


def test_kafka_stopped_during_an_ingest_range_ingests_every_event_once(
    private_kafka: PrivateServices,
    pg: WarehouseResource,
    mongo_server: ConnectionInfo,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bootstrap = private_kafka.up("kafka")["kafka"].url
    kafka = KafkaResource(bootstrap_servers=bootstrap, client_id="afluente-drill")
    topic = f"drill.kafka.stopped.{time.time_ns()}"
    kafka.create_topic(topic, partitions=3, replication=1)
    env = drill_env(
        tmp_path,
        monkeypatch,
        warehouse_url=pg.url,
        kafka_bootstrap=bootstrap,
        topic=topic,
        mongo_url=mongo_server.url,
    )
    log = tmp_path / "daemon.log"
    produced = produce(kafka, topic, 600, seed=81)
    with instance_for(env) as instance, daemon(env, log):
        first_valid = len(valid(produced))
        until("first batch in the marts", lambda: summary_events(pg) == first_valid, 240, log)
        prior = health_state(pg.url)
        with psycopg.connect(_libpq(pg.url), autocommit=True) as blocker:
            # Hold the ingest's partition locks: its run claims the range and opens its transaction,
            # then waits here, before consuming; Kafka is stopped meanwhile.
            for partition in range(3):
                blocker.execute(
                    "SELECT pg_advisory_lock(hashtextextended(%s, 0))",
                    (f"afluente.kafka/{PIPELINE}/{topic}/{partition}",),
                )
            produced += produce(kafka, topic, 900, seed=82)

            def ingest_waiting() -> bool:
                return blocker.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND wait_event = 'advisory' AND query ILIKE '%pg_advisory_xact_lock%'"
                ).fetchone() != (0,)

            until("ingest run holding its range", ingest_waiting, 180, log, 0.2)
            stopped = private_kafka.down("kafka")
            stopped_at = time.monotonic()
            assert stopped["kafka"] in ("stopped", "killed")
            blocker.execute("SELECT pg_advisory_unlock_all()")
        assert health_state(pg.url) == prior  # the read API does not depend on Kafka
        time.sleep(3)
        private_kafka.up("kafka")
        until(
            "marts caught up after Kafka came back",
            lambda: commerce_caught_up(pg, kafka, topic, produced),
            300,
            log,
        )
        recovery_s = time.monotonic() - stopped_at
        incidents = all_incidents(pg)
        health_returns_to(pg.url, prior, log)
        until("no run left in flight", lambda: not unfinished_runs(instance), 120, log)
    print(
        f"drill kafka-stopped-during-ingest: marts caught up {recovery_s:.1f}s after Kafka stopped; "
        f"incidents {incidents}"
    )
