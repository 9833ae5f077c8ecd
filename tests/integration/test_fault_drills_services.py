"""Fault drills that stop a server mid-work: Kafka during an ingest range.

The stopped server is a PRIVATE instance (own services home and ports, tests/fixtures/private_services.py),
never the shared one other tests use. A real ``dagster-daemon`` on ``orchestration/dagster.local.yaml``
does all the recovering (SQLite run storage: Dagster's storage is not on the stopped server); the test
stops and starts the server, then only reads. Each drill asserts exact counts, the incidents, the
read API's ``/health`` during the outage and back to its prior state, and prints its recovery time.
"""

import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from assets.commerce.kafka_ingest import PIPELINE

from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource
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
from tests.integration.test_commerce_helpers import valid

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600)]

EXPORT_ROWS = 400_000


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture
def private_kafka(kafka_server: ConnectionInfo) -> Iterator[PrivateServices]:
    with private_services("kafka") as private:
        yield private


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
        assert incidents == []  # the ingest step's retry policy carried it over the outage: no run failed
        health_returns_to(pg.url, prior, log)
        until("no run left in flight", lambda: not unfinished_runs(instance), 120, log)
    print(
        f"drill kafka-stopped-during-ingest: marts caught up {recovery_s:.1f}s after Kafka stopped; "
        f"incidents {incidents}"
    )
