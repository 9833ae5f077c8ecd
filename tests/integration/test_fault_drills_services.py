"""Fault drills that stop a server mid-work: PostgreSQL during a COPY, Kafka during an ingest range,
OpenSearch while events flow to the system_logs monitor.

The stopped server is a PRIVATE instance (own services home and ports, tests/fixtures/private_services.py),
never the shared one other tests use. In the PostgreSQL and Kafka drills a real ``dagster-daemon`` on
``orchestration/dagster.local.yaml`` does all the recovering (SQLite run storage: Dagster's storage is
not on the stopped server); the test stops and starts the server, then only reads. Each asserts exact
counts, the incidents, the read API's ``/health`` during the outage and back to its prior state, and
prints its recovery time. The OpenSearch drill runs the monitor's passes itself (the declared asset
materialized in process, its sensor ticked), because where a pass is when the node stops is the point
of it; see :func:`test_opensearch_stopped_while_events_flow_spools_and_replays_each_document_once`.
"""

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from dagster import DagsterInstance, SensorResult, build_sensor_context, materialize

from assets.commerce.tables import PIPELINE
from assets.monitor import MonitorConfig, run_pass
from assets.monitor._documents import log_line_id
from assets.monitor._ledger import FILE, KAFKA, read_positions
from assets.monitor._sources import file_identity
from generators.exports import write_export_file
from orchestration.declared import declared_assets, declared_sensor
from orchestration.json_logs import configure_logging, unconfigure_logging
from resources.kafka import KafkaResource
from resources.search import SearchResource
from resources.warehouse import WarehouseResource, dispose_engines
from services import ConnectionInfo
from tests.fixtures.private_services import PrivateServices, private_services
from tests.integration.drill_support import (
    EventFlow,
    StopsTheNode,
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
from tests.integration.test_system_logs import doc_ids, produce_envelopes

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


@pytest.fixture
def private_search(opensearch_server: ConnectionInfo) -> Iterator[PrivateServices]:
    with private_services("opensearch") as private:
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


def _monitor_config(topic: str, tmp_path: Path) -> MonitorConfig:
    """The monitor on ``topic`` only, alias ``system_logs`` (the private node holds nothing else)."""
    return MonitorConfig("system_logs", (topic,), (), 14, tmp_path / "fallback", 64 * 1024 * 1024, 20_000)


def test_opensearch_stopped_while_events_flow_spools_and_replays_each_document_once(
    private_search: PrivateServices,
    pg: WarehouseResource,
    kafka: KafkaResource,
    kafka_topic: str,
    dagster_instance: DagsterInstance,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    drill_started = time.monotonic()
    url = private_search.up("opensearch")["opensearch"].url
    node_log = private_search.home / "logs" / "opensearch.log"
    search = SearchResource(url=url)
    (node,) = search.client().nodes.stats(metric="jvm")["nodes"].values()
    assert node["jvm"]["mem"]["heap_max_in_bytes"] == 384 * 1024 * 1024, "the private node's small heap"
    alias, log_file, fallback = "system_logs", tmp_path / "logs" / "api.jsonl", tmp_path / "fallback"
    for name, value in {
        "SYSTEM_LOGS_ALIAS": alias,
        "SYSTEM_LOGS_TOPICS": kafka_topic,
        "SYSTEM_LOGS_LOG_FILES": str(tmp_path / "logs" / "*.jsonl"),
        "SYSTEM_LOGS_FALLBACK_DIR": str(fallback),
        "SYSTEM_LOGS_FALLBACK_MAX_BYTES": str(64 * 1024 * 1024),
        "SYSTEM_LOGS_MAX_DOCS_PER_RUN": "20000",
    }.items():
        monkeypatch.setenv(name, value)
    system_logs = declared_assets("monitor/system_logs", "search__system_logs")
    sensor = declared_sensor("monitor/system_logs", "system_logs_sensor")
    cursor: list[str | None] = [None]

    def tick() -> tuple[SensorResult, dict[str, Any], float]:
        """One sensor evaluation: its result, what it saw, how long it took."""
        at = time.monotonic()
        context = build_sensor_context(
            instance=dagster_instance, resources={"warehouse": pg, "kafka": kafka}, cursor=cursor[0]
        )
        result = sensor(context)
        assert isinstance(result, SensorResult)
        cursor[0] = result.cursor
        return result, json.loads(result.cursor or "{}")["seen"], time.monotonic() - at

    def monitor_pass() -> tuple[dict[str, Any], float]:
        """One materialization of the declared asset on the private node: its metadata, its duration."""
        at = time.monotonic()
        resources = {"warehouse": pg, "kafka": kafka, "search": SearchResource(url=url)}
        result = materialize([system_logs], resources=resources, instance=dagster_instance)
        assert result.success
        (event,) = result.asset_materializations_for_node(system_logs.node_def.name)
        return {name: value.value for name, value in event.metadata.items()}, time.monotonic() - at

    configure_logging("INFO", "json", stream=open(os.devnull, "w"), file=str(log_file))  # noqa: SIM115
    flow = EventFlow(kafka, kafka_topic, logging.getLogger("api.system_logs_drill"))
    stopped: dict[str, Any] = {}
    try:
        flow.start()
        until("events flowing", lambda: len(flow.events) >= 50, 60, node_log)
        first, _ = monitor_pass()
        assert first["engine_reachable"] is True and first["indexed"] >= 50 and first["spooled"] == 0

        # A pass with more than one bulk request of documents; the node stops between its first two.
        burst = produce_envelopes(kafka, kafka_topic, 2_500)

        def stop_node() -> None:
            stopped.update(private_search.down("opensearch"), at=time.monotonic())

        stopping = StopsTheNode(url, stop_node, before_bulk=2)
        caught = run_pass(MonitorConfig.from_settings(), pg, kafka, stopping)  # type: ignore[arg-type]
        assert stopping.bulks == 2 and stopped["opensearch"] in ("stopped", "killed")
        read = sum(caught.read_by_source.values())
        assert read >= 2_500 and not caught.engine_reachable
        # Its first 2,000 documents were indexed, then the engine went away: every document it read
        # is in the fallback file (the ids make the indexed ones harmless to send again).
        assert (caught.indexed, caught.spooled, caught.dropped) == (0, read, 0)
        assert caught.backlog.documents == read
        backlog = read

        # The outage: events keep flowing, each pass spools what is new, the backlog grows, and the
        # sensor (which never calls the engine) keeps requesting runs.
        outage: list[tuple[float, float]] = []
        backlog_bytes = caught.backlog.bytes
        for _ in range(2):
            target = len(flow.events) + 60
            until("events flowing during the outage", lambda n=target: len(flow.events) >= n, 60, node_log)
            requested, seen, tick_s = tick()
            assert requested.run_requests and seen["new_offsets"] >= 60
            assert seen["backlog_bytes"] == backlog_bytes, "the sensor sees the backlog the last pass left"
            during, pass_s = monitor_pass()
            assert during["engine_reachable"] is False and during["indexed"] == 0
            assert during["spooled"] >= 60 and during["dropped"] == 0
            assert during["backlog_documents"] == backlog + during["spooled"]
            assert during["backlog_bytes"] > backlog_bytes
            backlog, backlog_bytes = during["backlog_documents"], during["backlog_bytes"]
            outage.append((tick_s, pass_s))
        assert max(t for t, _ in outage) < 5 and max(p for _, p in outage) < 20, outage

        restart_at = time.monotonic()
        private_search.up("opensearch")
        back_at = time.monotonic()
        search.refresh(alias)
        assert search.count(alias) == first["indexed"] + 2_000, "the caught pass's first bulk request"
        events = flow.finish()
    finally:
        if flow.is_alive():
            flow.finish()
        unconfigure_logging()
    api_lines = flow.lines

    replay, replay_s = monitor_pass()
    assert replay["engine_reachable"] is True and replay["replayed"] == backlog
    assert replay["spooled"] == replay["rejected"] == 0
    assert (replay["backlog_documents"], replay["backlog_bytes"], replay["backlog_segments"]) == (0, 0, 0)
    assert monitor_pass()[0]["indexed"] == 0, "everything read already"

    # Exactly once: every event sent and every log line of the file, one document each.
    identity = file_identity(log_file.stat())
    expected_logs, position = set(), 0
    with log_file.open("rb") as handle:
        for line in handle:
            expected_logs.add(log_line_id(identity, position, line))
            position += len(line)
    loggers = Counter(json.loads(line)["logger"] for line in log_file.read_text().splitlines())
    # The flow's lines and the caught pass's own two (its warning and its summary, platform logger).
    assert loggers == {"api.system_logs_drill": api_lines, "assets.monitor._pass": 2}
    assert len(expected_logs) == api_lines + 2
    expected = events | burst | expected_logs
    assert len(expected) == len(events) + len(burst) + len(expected_logs) < 10_000
    assert doc_ids(search, alias) == Counter({doc_id: 1 for doc_id in expected})
    assert search.count(alias) == len(expected)
    # The offsets ledger is at the topic's end offsets and at the log file's end; the fallback drained.
    ledger = read_positions(pg, KAFKA)
    assert {p: pos.position for (t, p), pos in ledger.items() if t == kafka_topic} == kafka.end_offsets(
        kafka_topic
    )
    assert {s: pos.position for (s, _), pos in read_positions(pg, FILE).items()} == {identity: position}
    assert not list(fallback.glob("segment-*.jsonl")) and not (fallback / "rejected").exists()
    assert MonitorConfig.from_settings().spool().backlog().dropped_total == 0
    idle, seen, _ = tick()
    assert not idle.run_requests and seen["backlog_bytes"] == seen["new_offsets"] == 0
    during_s = ", ".join(f"tick {t:.2f}s/pass {p:.2f}s" for t, p in outage)
    print(
        f"drill opensearch-stopped: node down {back_at - stopped['at']:.1f}s (restarted after "
        f"{restart_at - stopped['at']:.1f}s, ready {back_at - restart_at:.1f}s later); {read} documents "
        f"spooled by the pass caught between two bulk requests, {backlog} in the fallback at the restart "
        f"({during_s} during the outage); replay of {replay['replayed']} in {replay_s:.1f}s; "
        f"{len(events) + len(burst)} events and {len(expected_logs)} log lines ({api_lines} sent) indexed "
        f"once; drill {time.monotonic() - drill_started:.1f}s"
    )


def test_opensearch_stopped_right_after_a_pass_indexed_its_documents_leaves_the_pass_successful(
    private_search: PrivateServices,
    pg: WarehouseResource,
    kafka: KafkaResource,
    kafka_topic: str,
    tmp_path: Path,
) -> None:
    """The node goes away after the pass's last bulk request was answered, before its retention: the
    documents are indexed and their offsets recorded, the pass does not fail (the retention waits)."""
    url = private_search.up("opensearch")["opensearch"].url
    config = _monitor_config(kafka_topic, tmp_path)
    sent = produce_envelopes(kafka, kafka_topic, 300)
    stopping = StopsTheNode(url, lambda: private_search.down("opensearch"), after_bulk=1)

    report = run_pass(config, pg, kafka, stopping)  # type: ignore[arg-type]
    assert stopping.bulks == 1 and private_search.states()["opensearch"] != "running"
    assert (report.indexed, report.spooled, report.replayed, report.deleted_indices) == (300, 0, 0, [])
    assert not report.engine_reachable and report.backlog.documents == 0
    positions = read_positions(pg, KAFKA)
    assert {p: pos.position for (_, p), pos in positions.items()} == kafka.end_offsets(kafka_topic)

    private_search.up("opensearch")
    search = SearchResource(url=url)
    assert doc_ids(search, "system_logs") == Counter({doc_id: 1 for doc_id in sent})
    after = run_pass(config, pg, kafka, search)
    assert after.engine_reachable and (after.indexed, after.spooled, after.replayed) == (0, 0, 0)


def test_opensearch_frozen_mid_pass_costs_one_request_timeout_and_each_document_lands_once(
    private_search: PrivateServices,
    pg: WarehouseResource,
    kafka: KafkaResource,
    kafka_topic: str,
    tmp_path: Path,
) -> None:
    """A node that accepts connections and answers nothing (SIGSTOP) is not a refused port: the pass's
    bulk request waits for the client's timeout, and the node indexes it anyway once it runs again.
    The pass spools, the next ones cost one ping timeout each, the replay makes it exactly once."""
    timeout_s = 3.0
    url = private_search.up("opensearch")["opensearch"].url
    config = _monitor_config(kafka_topic, tmp_path)
    sent = produce_envelopes(kafka, kafka_topic, 200)
    search = SearchResource(url=url, request_timeout_s=timeout_s)
    assert run_pass(config, pg, kafka, search).indexed == 200

    sent |= produce_envelopes(kafka, kafka_topic, 150, start=200)
    freeze = lambda: private_search.freeze("opensearch")  # noqa: E731
    freezing = StopsTheNode(url, freeze, before_bulk=1, request_timeout_s=timeout_s)
    try:
        at = time.monotonic()
        caught = run_pass(config, pg, kafka, freezing)  # type: ignore[arg-type]
        caught_s = time.monotonic() - at
        assert freezing.bulks == 1 and not caught.engine_reachable
        assert (caught.indexed, caught.spooled, caught.backlog.documents) == (0, 150, 150)
        sent |= produce_envelopes(kafka, kafka_topic, 50, start=350)
        at = time.monotonic()
        frozen = run_pass(config, pg, kafka, SearchResource(url=url, request_timeout_s=timeout_s))
        frozen_s = time.monotonic() - at
        assert not frozen.engine_reachable and (frozen.spooled, frozen.backlog.documents) == (50, 200)
    finally:
        private_search.thaw("opensearch")
    # One request timeout each (the bulk's, then the ping's), not a retry loop.
    assert timeout_s <= caught_s < 3 * timeout_s and timeout_s <= frozen_s < 3 * timeout_s
    # The bulk request the client gave up on was in the node's socket: it is indexed now, and spooled.
    node_log = private_search.home / "logs" / "opensearch.log"
    until("the timed-out bulk indexed", lambda: len(doc_ids(search, "system_logs")) == 350, 30, node_log)

    back = run_pass(config, pg, kafka, SearchResource(url=url))
    assert back.engine_reachable and (back.replayed, back.indexed, back.backlog.documents) == (200, 0, 0)
    assert doc_ids(search, "system_logs") == Counter({doc_id: 1 for doc_id in sent})
    positions = read_positions(pg, KAFKA)
    assert {p: pos.position for (_, p), pos in positions.items()} == kafka.end_offsets(kafka_topic)
    print(f"drill opensearch-frozen: pass caught at its bulk {caught_s:.1f}s, then {frozen_s:.1f}s frozen")
