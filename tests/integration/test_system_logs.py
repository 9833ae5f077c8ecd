"""The system_logs monitor on real Kafka, OpenSearch and both warehouses.

"Search engine unreachable" is simulated here by pointing the monitor at a closed local port, then at
the real node (the shared OpenSearch is never stopped: other engineers' tests use it); the fallback
path, the replay and the exactly-once outcome are what is tested, fast. The real outage, a private
OpenSearch stopped while events flow (one pass caught between two bulk requests) and started again,
is the drill ``test_opensearch_stopped_while_events_flow_...`` in ``test_fault_drills_services.py``.
"""

import datetime as dt
import json
import logging
import socket
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance, SensorResult, SkipReason, build_sensor_context, materialize

from assets.monitor import MonitorConfig, run_pass
from assets.monitor._documents import daily_index
from assets.monitor._index import ensure_template
from assets.monitor._ledger import KAFKA, read_positions
from orchestration.declared import declared_assets, declared_sensor
from orchestration.json_logs import configure_logging, unconfigure_logging
from resources.kafka import KafkaResource
from resources.search import SearchResource
from resources.warehouse import WarehouseResource
from services import ConnectionInfo


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def kafka(kafka_server: ConnectionInfo) -> KafkaResource:
    return KafkaResource(bootstrap_servers=kafka_server.url, client_id="afluente-tests")


@pytest.fixture
def search(opensearch_server: ConnectionInfo) -> SearchResource:
    return SearchResource(url=opensearch_server.url)


@pytest.fixture
def down() -> SearchResource:
    """A search resource whose node does not answer (a closed port)."""
    return SearchResource(url=_closed_port_url(), request_timeout_s=2)


def _config(alias: str, tmp_path: Path, topics: tuple[str, ...] = (), **overrides: object) -> MonitorConfig:
    values: dict[str, object] = {
        "alias": alias,
        "topics": topics,
        "log_patterns": (str(tmp_path / "logs" / "*.jsonl*"),),
        "retention_days": 14,
        "fallback_dir": tmp_path / "fallback",
        "fallback_max_bytes": 64 * 1024 * 1024,
        "max_docs_per_run": 20_000,
        **overrides,
    }
    return MonitorConfig(**values)  # type: ignore[arg-type]


def produce_envelopes(kafka: KafkaResource, topic: str, count: int, start: int = 0) -> set[str]:
    """``count`` JSON envelopes (and their deterministic ids ``<topic>-<partition>-<offset>``)."""
    producer = kafka.producer()
    futures = []
    for number in range(start, start + count):
        envelope = {
            "event_id": f"e{number}",
            "correlation_id": f"c{number}",
            "event_type": "usuario_criado",
            "user_id": f"u{number % 7}",
            "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
            "payload": {"nome": f"user {number}"},
        }
        futures.append(
            producer.send(topic, key=f"u{number % 7}".encode(), value=json.dumps(envelope).encode())
        )
    producer.flush()
    metas = [future.get(timeout=30) for future in futures]
    producer.close()
    return {f"{topic}-{meta.partition}-{meta.offset}" for meta in metas}


def doc_ids(search: SearchResource, alias: str) -> Counter[str]:
    """How many documents of the alias carry each id (all daily indices)."""
    search.refresh(alias)
    hits = search.search(alias, size=10_000, _source=["doc_id"])["hits"]["hits"]
    return Counter(hit["_id"] for hit in hits)


def test_events_are_indexed_once_with_deterministic_ids(
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    kafka_topic: str,
    search: SearchResource,
    search_index_prefix: str,
    tmp_path: Path,
) -> None:
    alias = f"{search_index_prefix}system_logs"
    config = _config(alias, tmp_path, (kafka_topic, "no.such.topic"))
    expected = produce_envelopes(kafka, kafka_topic, 40)

    first = run_pass(config, warehouse, kafka, search)
    assert first.engine_reachable and first.indexed == 40 and first.spooled == 0
    assert first.missing_topics == ["no.such.topic"]
    assert doc_ids(search, alias) == Counter({doc_id: 1 for doc_id in expected})
    # The alias is attached by the template to the day's index named after the events' timestamps.
    assert search.alias_indices(alias) == [daily_index(alias, dt.datetime.now(dt.UTC).date())]
    hit = search.search(alias, {"term": {"correlation_id": "c3"}})["hits"]["hits"]
    assert len(hit) == 1 and hit[0]["_source"]["event_type"] == "usuario_criado"
    assert hit[0]["_source"]["body"]["payload"] == {"nome": "user 3"}

    again = run_pass(config, warehouse, kafka, search)
    assert again.indexed == 0 and again.spooled == 0
    expected |= produce_envelopes(kafka, kafka_topic, 5, start=40)
    more = run_pass(config, warehouse, kafka, search)
    assert more.indexed == 5
    assert doc_ids(search, alias) == Counter({doc_id: 1 for doc_id in expected})
    positions = read_positions(warehouse, KAFKA)
    assert sum(p.position for (topic, _), p in positions.items() if topic == kafka_topic) == 45


def test_engine_down_spools_then_the_replay_indexes_each_document_exactly_once(
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    kafka_topic: str,
    search: SearchResource,
    down: SearchResource,
    search_index_prefix: str,
    tmp_path: Path,
) -> None:
    alias = f"{search_index_prefix}system_logs"
    config = _config(alias, tmp_path, (kafka_topic,))
    expected = produce_envelopes(kafka, kafka_topic, 25)
    assert run_pass(config, warehouse, kafka, search).indexed == 25  # the engine is up at first

    # The engine goes away while events keep flowing: they go to the fallback file.
    expected |= produce_envelopes(kafka, kafka_topic, 30, start=25)
    outage = run_pass(config, warehouse, kafka, down)
    assert not outage.engine_reachable and outage.indexed == 0 and outage.spooled == 30
    expected |= produce_envelopes(kafka, kafka_topic, 10, start=55)
    outage = run_pass(config, warehouse, kafka, down)
    assert outage.spooled == 10 and outage.backlog.documents == 40 and outage.backlog.bytes > 0
    spooled_ids = {
        json.loads(line)["doc"]["doc_id"]
        for segment in sorted((tmp_path / "fallback").glob("segment-*.jsonl"))
        for line in segment.read_text().splitlines()
    }
    assert len(spooled_ids) == 40 and spooled_ids <= expected
    # A pass that crashed after spooling but before recording its offsets reads the same events
    # again: simulated by forgetting the recorded offsets. The fallback file then holds duplicates.
    with warehouse.begin() as conn:
        conn.exec_driver_sql("DELETE FROM ops.system_logs_offsets")
    assert run_pass(config, warehouse, kafka, down).spooled == 65

    back = run_pass(config, warehouse, kafka, search)
    assert back.engine_reachable and back.replayed == 105 and back.indexed == 0
    assert back.backlog.bytes == 0 and back.backlog.documents == 0
    assert not list((tmp_path / "fallback").glob("segment-*.jsonl"))
    counts = doc_ids(search, alias)
    assert counts == Counter({doc_id: 1 for doc_id in expected}), "each document exactly once"
    assert search.count(alias) == 65
    assert run_pass(config, warehouse, kafka, search).replayed == 0


def test_retention_deletes_daily_indices_older_than_the_setting(
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    search: SearchResource,
    search_index_prefix: str,
    tmp_path: Path,
) -> None:
    alias = f"{search_index_prefix}system_logs"
    ensure_template(search, alias)
    today = dt.datetime.now(dt.UTC).date()
    old, recent = (
        daily_index(alias, today - dt.timedelta(days=30)),
        daily_index(alias, today - dt.timedelta(days=3)),
    )
    for name in (old, recent):
        search.create_index(name)
    assert set(search.alias_indices(alias)) == {old, recent}, "the template attaches the alias"

    report = run_pass(_config(alias, tmp_path, retention_days=14), warehouse, kafka, search)
    assert report.deleted_indices == [old]
    assert search.list_indices(f"{alias}-*") == [recent]


def test_json_log_lines_are_indexed_once_across_rotation(
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    search: SearchResource,
    search_index_prefix: str,
    tmp_path: Path,
) -> None:
    alias = f"{search_index_prefix}system_logs"
    config = _config(alias, tmp_path)
    log_file = tmp_path / "logs" / "api.jsonl"
    log = logging.getLogger("api.system_logs_test")
    # The monitor's own summary line would land in the file too (its logger is a platform logger):
    # the passes of this test log elsewhere so the counts are the API's lines only.
    quiet = logging.getLogger("tests.system_logs")
    configure_logging("INFO", "json", stream=open("/dev/null", "w"), file=str(log_file))  # noqa: SIM115
    try:
        for number in range(12):
            log.info("request served", extra={"correlation_id": f"c{number}", "status": 200})
        first = run_pass(config, warehouse, kafka, search, quiet)
        assert first.indexed == 12
        assert run_pass(config, warehouse, kafka, search, quiet).indexed == 0
        search.refresh(alias)
        hit = search.search(alias, {"term": {"correlation_id": "c5"}})["hits"]["hits"][0]["_source"]
        assert hit["kind"] == "log" and hit["logger"] == "api.system_logs_test" and hit["level"] == "INFO"
        assert hit["message"] == "request served" and hit["body"]["status"] == 200

        # Rotation: the file is renamed (it keeps its position), the handler reopens a new one.
        log_file.rename(log_file.with_name("api.jsonl.1"))
        for number in range(12, 20):
            log.info("request served", extra={"correlation_id": f"c{number}"})
    finally:
        unconfigure_logging()
    with log_file.open("ab") as handle:
        handle.write(b'{"ts": "2030-01-01T00:00:00+00:00", "message": "half a li')  # writer mid-line
    assert run_pass(config, warehouse, kafka, search, quiet).indexed == 8
    with log_file.open("ab") as handle:
        handle.write(b'ne"}\nnot json at all\n')
    assert run_pass(config, warehouse, kafka, search, quiet).indexed == 2
    counts = doc_ids(search, alias)
    assert len(counts) == 22 and set(counts.values()) == {1}
    assert all(doc_id.startswith("log-") for doc_id in counts)


def test_asset_metadata_shows_the_backlog_and_the_sensor_requests_the_replay(
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    kafka_topic: str,
    search: SearchResource,
    down: SearchResource,
    search_index_prefix: str,
    tmp_path: Path,
    dagster_instance: DagsterInstance,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    alias = f"{search_index_prefix}system_logs"
    for name, value in {
        "SYSTEM_LOGS_ALIAS": alias,
        "SYSTEM_LOGS_TOPICS": f"COMMERCE_KAFKA_TOPIC,{kafka_topic}",
        "COMMERCE_KAFKA_TOPIC": f"{kafka_topic}.commerce-absent",
        "SYSTEM_LOGS_LOG_FILES": str(tmp_path / "logs" / "*.jsonl"),
        "SYSTEM_LOGS_FALLBACK_DIR": str(tmp_path / "fallback"),
    }.items():
        monkeypatch.setenv(name, value)
    system_logs = declared_assets("monitor/system_logs", "search__system_logs")
    sensor = declared_sensor("monitor/system_logs", "system_logs_sensor")
    key = AssetKey(["search", "system_logs"])

    cursor: list[str | None] = [None]

    def tick() -> SensorResult | SkipReason:
        context = build_sensor_context(
            instance=dagster_instance, resources={"warehouse": warehouse, "kafka": kafka}, cursor=cursor[0]
        )
        result = sensor(context)
        assert isinstance(result, SensorResult | SkipReason)
        if isinstance(result, SensorResult):
            cursor[0] = result.cursor
        return result

    def materialize_with(engine: SearchResource) -> dict[str, Any]:
        resources = {"warehouse": warehouse, "kafka": kafka, "search": engine}
        result = materialize([system_logs], resources=resources, instance=dagster_instance)
        assert result.success
        (event,) = result.asset_materializations_for_node(system_logs.node_def.name)
        assert event.asset_key == key
        return {name: value.value for name, value in event.metadata.items()}

    expected = produce_envelopes(kafka, kafka_topic, 15)
    first_tick = tick()
    assert isinstance(first_tick, SensorResult) and len(first_tick.run_requests or []) == 1
    assert json.loads(first_tick.cursor or "{}")["seen"]["new_offsets"] == 15

    during = materialize_with(down)
    assert during["engine_reachable"] is False and during["spooled"] == 15
    assert during["backlog_documents"] == 15 and during["backlog_bytes"] > 0
    assert during["missing_topics"] == f"{kafka_topic}.commerce-absent"
    # Nothing new in Kafka, but a backlog to replay: the sensor still asks for a run.
    backlog_tick = tick()
    assert isinstance(backlog_tick, SensorResult) and backlog_tick.run_requests
    assert json.loads(backlog_tick.cursor or "{}")["seen"]["new_offsets"] == 0

    after = materialize_with(search)
    assert after["engine_reachable"] is True and after["replayed"] == 15
    assert after["backlog_bytes"] == 0 and after["backlog_documents"] == 0
    assert doc_ids(search, alias) == Counter({doc_id: 1 for doc_id in expected})
    idle = tick()
    assert isinstance(idle, SensorResult) and not idle.run_requests, "nothing new, backlog empty"


def test_a_document_the_engine_refuses_is_kept_with_its_reason_and_does_not_block_the_replay(
    warehouse: WarehouseResource,
    kafka: KafkaResource,
    search: SearchResource,
    search_index_prefix: str,
    tmp_path: Path,
) -> None:
    alias = f"{search_index_prefix}system_logs"
    config = _config(alias, tmp_path)
    now = dt.datetime.now(dt.UTC)
    index = daily_index(alias, now.date())
    good = {"doc_id": "t-0-1", "@timestamp": now.isoformat(), "kind": "event", "partition": 0}
    bad = {**good, "doc_id": "t-0-2", "partition": "not a number"}
    config.spool().append([(index, good), (index, bad)])

    report = run_pass(config, warehouse, kafka, search)
    assert report.replayed == 1 and report.rejected == 1 and report.backlog.documents == 0
    (kept,) = (tmp_path / "fallback" / "rejected").glob("rejected-*.jsonl")
    row = json.loads(kept.read_text())
    assert row["document"]["doc"]["doc_id"] == "t-0-2" and row["reason"].startswith("400 ")
    assert doc_ids(search, alias) == Counter({"t-0-1": 1})
