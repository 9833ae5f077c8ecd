"""Commerce ingest from the real Kafka broker into the real PostgreSQL.

- the offsets sensor requests exactly the missing ranges, never twice, picks up added partitions,
  and re-requests a failed run's range under a new key;
- a replayed or overlapping range changes nothing; every malformed message is dead-lettered;
- an ingest process SIGKILLed right before COMMIT leaves nothing, and the re-run loads each
  produced event exactly once;
- marts built from Kafka batches equal values computed from the produced events.
"""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
from dagster import (
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    SensorResult,
    build_sensor_context,
)
from kafka.admin import NewPartitions

from assets.commerce.decode import decode_events
from assets.commerce.tables import commerce_events_source, ensure_commerce_tables
from assets.sources.kafka_topic._asset import consumer_settings, reconcile_ranges
from assets.sources.kafka_topic._consumer import RangeConsumer
from assets.sources.kafka_topic._ingest import IngestResult, ingest_kafka_ranges
from assets.sources.kafka_topic._ledger import OffsetRange, parse_ranges
from assets.sources.kafka_topic._sensor import RANGE_KEY_TAG, RANGES_TAG
from generators.commerce import GeneratedEvent, generate_events, produce_to_kafka
from orchestration.commerce import commerce_kafka_sensor
from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource
from tests.integration.test_commerce_helpers import (
    START,
    assert_marts,
    build_models,
    commerce_graph,
    resources_for,
    rows,
    valid,
)

REPO = Path(__file__).resolve().parents[2]
COMMERCE = commerce_events_source().tables
REASON_OF_KIND = {
    "bad_json": "invalid_json",
    "missing_field": "missing_field",
    "wrong_type": "wrong_type",
    "unknown_event_type": "unknown_event_type",
    "oversized": "oversized_payload",
    "not_an_object": "not_a_json_object",
}


def _produce(
    kafka: KafkaResource, topic: str, n: int, seed: int, bad_share: float = 0.03
) -> list[GeneratedEvent]:
    events = list(generate_events(n, seed=seed, bad_share=bad_share, start=START, events_per_second=2))
    report = produce_to_kafka(iter(events), kafka.bootstrap_servers, topic)
    assert report.sent == n
    return events


def _tick(instance: DagsterInstance, resources: dict) -> SensorResult:
    context = build_sensor_context(
        instance=instance, resources={"kafka": resources["kafka"], "warehouse": resources["warehouse"]}
    )
    result = commerce_kafka_sensor(context)
    assert isinstance(result, SensorResult), result
    return result


def _launch(instance: DagsterInstance, resources: dict, request: RunRequest) -> bool:
    job = commerce_graph(resources).resolve_job_def("commerce_kafka_ingest")
    result = job.execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags, raise_on_error=False
    )
    return result.success


def _requested(result: SensorResult) -> list[OffsetRange]:
    return sorted(r for req in result.run_requests for r in parse_ranges(req.tags[RANGES_TAG]))


def _all_offsets(kafka: KafkaResource, topic: str) -> list[OffsetRange]:
    return [OffsetRange(p, 0, end) for p, end in sorted(kafka.end_offsets(topic).items()) if end]


def _ingest(
    kafka: KafkaResource,
    warehouse: WarehouseResource,
    topic: str,
    ranges: list[OffsetRange],
    run_id: str,
    *,
    max_messages: int = 5000,
    **options: Any,
) -> IngestResult:
    """One in-process range ingest with the production consumer settings."""
    return ingest_kafka_ranges(
        consumer_factory=lambda: kafka.range_consumer(consumer_settings(max_messages)),
        warehouse=warehouse,
        topic=topic,
        ranges=ranges,
        run_id=run_id,
        tables=COMMERCE,
        decoder=decode_events,
        **options,
    )


def _merged(ranges: list[OffsetRange]) -> dict[int, list[tuple[int, int]]]:
    out: dict[int, list[tuple[int, int]]] = {}
    for r in sorted(ranges):
        spans = out.setdefault(r.partition, [])
        if spans and spans[-1][1] == r.start_offset:
            spans[-1] = (spans[-1][0], r.end_offset)
        else:
            spans.append((r.start_offset, r.end_offset))
    return out


def test_sensor_requests_missing_ranges_once_and_picks_up_new_partitions(
    kafka: KafkaResource, topic_env: str, pg: WarehouseResource, tmp_path: Path
) -> None:
    topic = topic_env
    resources = resources_for(pg, tmp_path / "landing", kafka.bootstrap_servers)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    produced = _produce(kafka, topic, 1500, seed=21)

    first = _tick(instance, resources)
    assert _merged(_requested(first)) == _merged(_all_offsets(kafka, topic))
    assert all(sum(r.size for r in parse_ranges(q.tags[RANGES_TAG])) <= 400 for q in first.run_requests)
    assert all(q.run_key.endswith("#1") for q in first.run_requests)
    # Same backlog, same ranges, same run keys: Dagster never launches a key twice.
    assert [q.run_key for q in _tick(instance, resources).run_requests] == [
        q.run_key for q in first.run_requests
    ]

    assert all(_launch(instance, resources, q) for q in first.run_requests)
    assert _tick(instance, resources).run_requests == []

    # Partitions added to the topic are found on the next tick.
    admin = kafka.admin()
    try:
        admin.create_partitions({topic: NewPartitions(total_count=5)})
    finally:
        admin.close()
    produced += _produce(kafka, topic, 600, seed=22)
    second = _tick(instance, resources)
    assert {r.partition for r in _requested(second)} >= {3, 4}
    assert all(_launch(instance, resources, q) for q in second.run_requests)
    assert _tick(instance, resources).run_requests == []

    ledger = rows(pg, "SELECT kafka_partition, start_offset, next_offset FROM raw.kafka_offsets ORDER BY 1")
    ends = kafka.end_offsets(topic)
    assert [(r["kafka_partition"], r["start_offset"], r["next_offset"]) for r in ledger] == [
        (p, 0, end) for p, end in sorted(ends.items()) if end
    ]
    (count,) = rows(pg, "SELECT COUNT(*) AS n FROM raw.commerce_events")
    assert count["n"] == sum(1 for e in produced if e.valid)

    # Aggregates built from the Kafka batches equal values computed from the produced events.
    build_models(instance, resources)
    assert_marts(pg, valid(produced))


def test_failed_or_stuck_runs_get_their_range_requested_again(
    kafka: KafkaResource,
    topic_env: str,
    pg: WarehouseResource,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COMMERCE_KAFKA_MAX_EVENTS_PER_RUN", "100000")
    topic = topic_env
    resources = resources_for(pg, tmp_path / "landing", kafka.bootstrap_servers)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    _produce(kafka, topic, 300, seed=31)
    (request,) = _tick(instance, resources).run_requests
    range_key = request.tags[RANGE_KEY_TAG]

    # Created, not yet running: its range is in flight, nothing is requested.
    job = commerce_graph(resources).resolve_job_def("commerce_kafka_ingest")
    pending = instance.create_run_for_job(
        job_def=job, run_config=request.run_config, tags=request.tags, status=DagsterRunStatus.NOT_STARTED
    )
    assert _tick(instance, resources).run_requests == []

    # The run fails: the ledger still misses the range, so it comes back under attempt 2.
    instance.report_run_failed(pending)
    (retry,) = _tick(instance, resources).run_requests
    assert retry.tags[RANGE_KEY_TAG] == range_key
    assert retry.run_key == f"{range_key}#2"
    assert _launch(instance, resources, retry)
    assert _tick(instance, resources).run_requests == []


def test_replays_change_nothing_and_every_malformed_message_is_dead_lettered(
    kafka: KafkaResource, kafka_topic: str, pg: WarehouseResource
) -> None:
    produced = _produce(kafka, kafka_topic, 2000, seed=41, bad_share=0.05)
    ranges = _all_offsets(kafka, kafka_topic)

    def ingest(which: list[OffsetRange], run_id: str) -> IngestResult:
        return _ingest(kafka, pg, kafka_topic, which, run_id, max_messages=2000, chunk_messages=300)

    first = ingest(ranges, "run-1")
    assert first.events_loaded + first.dead_letters == 2000
    snapshot = rows(
        pg, "SELECT source_partition, source_offset, event_id FROM raw.commerce_events ORDER BY 1, 2"
    )
    # Every field survives the binary COPY exactly (text, NULLs, doubles, timestamps).
    expected = decode_events([e.value for e in produced]).events
    columns = ", ".join(expected.column_names)
    with pg.connect() as conn:
        loaded = conn.exec_driver_sql(f"SELECT {columns} FROM raw.commerce_events ORDER BY event_id")
        assert [tuple(r) for r in loaded] == sorted(
            (tuple(r.values()) for r in expected.to_pylist()), key=lambda r: r[0]
        )
    assert rows(pg, "SELECT COUNT(*) AS n FROM raw.commerce_events WHERE source_timestamp IS NULL") == [
        {"n": 0}
    ]
    replay = ingest(ranges, "run-2")
    assert (replay.messages, replay.events_loaded, replay.already_loaded) == (0, 0, 2000)
    overlapping = [OffsetRange(r.partition, r.start_offset + r.size // 2, r.end_offset) for r in ranges]
    assert ingest(overlapping, "run-3").events_loaded == 0
    assert rows(
        pg, "SELECT source_partition, source_offset, event_id FROM raw.commerce_events ORDER BY 1, 2"
    ) == (snapshot)

    bad = {
        item.value.decode("utf-8", "backslashreplace"): item.bad_kind for item in produced if not item.valid
    }
    dead = rows(
        pg,
        "SELECT source_topic, source_partition, source_offset, reason, raw_content "
        "FROM raw.commerce_events_dead_letter",
    )
    assert len(dead) == len(bad) == 100
    for letter in dead:
        kind = bad[letter["raw_content"]]
        assert letter["reason"].startswith(REASON_OF_KIND[kind]), (kind, letter["reason"])
        assert letter["source_topic"] == kafka_topic and letter["source_offset"] is not None
    assert sum(first.reasons.values()) == 100 and set(first.reasons) == set(REASON_OF_KIND.values())
    audits = rows(
        pg, "SELECT run_id, events_loaded, dead_letters, already_loaded FROM raw.kafka_ingest_batches"
    )
    assert sum(a["events_loaded"] + a["dead_letters"] for a in audits if a["run_id"] == "run-1") == 2000


_KILLED_INGEST = textwrap.dedent(
    """
    import json, os, sys, time
    from assets.commerce.decode import decode_events
    from assets.commerce.tables import commerce_events_source
    from assets.sources.kafka_topic._asset import consumer_settings
    from assets.sources.kafka_topic._ingest import ingest_kafka_ranges
    from assets.sources.kafka_topic._ledger import OffsetRange
    from resources.kafka import KafkaResource
    from resources.warehouse import WarehouseResource

    kafka = KafkaResource(bootstrap_servers=os.environ["T_KAFKA"])
    ranges = [OffsetRange(*r) for r in json.loads(os.environ["T_RANGES"])]

    def hold(result):
        print(f"BEFORE_COMMIT {result.events_loaded}", flush=True)
        time.sleep(600)

    ingest_kafka_ranges(
        consumer_factory=lambda: kafka.range_consumer(consumer_settings(5000)),
        warehouse=WarehouseResource(url=os.environ["T_WAREHOUSE"]),
        topic=os.environ["T_TOPIC"],
        ranges=ranges,
        run_id="doomed",
        tables=commerce_events_source().tables,
        decoder=decode_events,
        chunk_messages=500,
        before_commit=hold,
    )
    """
)


def test_ingest_killed_before_commit_then_rerun_loads_each_event_once(
    kafka: KafkaResource, kafka_topic: str, pg: WarehouseResource, pg_database_url: str
) -> None:
    produced = _produce(kafka, kafka_topic, 3000, seed=51, bad_share=0.02)
    ranges = _all_offsets(kafka, kafka_topic)
    # Part of partition 0 is already committed by an earlier run.
    head = OffsetRange(0, 0, ranges[0].end_offset // 2)
    _ingest(kafka, pg, kafka_topic, [head], "earlier")
    (before,) = rows(pg, "SELECT COUNT(*) AS n FROM raw.commerce_events")

    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "T_KAFKA": kafka.bootstrap_servers,
        "T_TOPIC": kafka_topic,
        "T_WAREHOUSE": pg_database_url,
        "T_RANGES": json.dumps([[r.partition, r.start_offset, r.end_offset] for r in ranges]),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_INGEST], env=env, cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        line = proc.stdout.readline() if proc.stdout else ""
        assert line.startswith("BEFORE_COMMIT"), line
        assert int(line.split()[1]) > 0  # rows were written inside the open transaction
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert rows(pg, "SELECT COUNT(*) AS n FROM raw.commerce_events") == [before]
    assert rows(pg, "SELECT COUNT(*) AS n FROM raw.kafka_ingest_batches WHERE run_id = 'doomed'") == [
        {"n": 0}
    ]

    rerun = _ingest(kafka, pg, kafka_topic, ranges, "rerun")
    assert rerun.already_loaded == head.size
    (stats,) = rows(
        pg,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids, "
        "COUNT(DISTINCT (source_partition, source_offset)) AS coords FROM raw.commerce_events",
    )
    expected = sum(1 for e in produced if e.valid)
    assert stats == {"n": expected, "ids": expected, "coords": expected}
    (dead,) = rows(pg, "SELECT COUNT(*) AS n FROM raw.commerce_events_dead_letter")
    assert dead["n"] == sum(1 for e in produced if not e.valid)


def test_a_run_starting_while_another_commits_does_not_wait_for_it(
    kafka: KafkaResource, kafka_topic: str, pg: WarehouseResource
) -> None:
    """Concurrent ingest runs overlap: setting up the tables takes no lock an open load holds."""
    _produce(kafka, kafka_topic, 200, seed=61, bad_share=0.0)
    ranges = _all_offsets(kafka, kafka_topic)
    started, release = threading.Event(), threading.Event()

    def hold(result: object) -> None:
        started.set()
        release.wait(60)

    loader = threading.Thread(
        target=_ingest,
        args=(kafka, pg, kafka_topic, ranges, "open"),
        kwargs={"max_messages": 200, "before_commit": hold},
    )
    loader.start()
    try:
        assert started.wait(60)
        # The first run's rows are written, its transaction open: a second run sets up at once.
        setup = threading.Thread(target=ensure_commerce_tables, args=(pg,))
        setup.start()
        setup.join(10)
        assert not setup.is_alive(), "ensure_commerce_tables waited for an open ingest transaction"
    finally:
        release.set()
        loader.join(60)
    assert rows(pg, "SELECT COUNT(*) AS n FROM raw.commerce_events") == [{"n": 200}]


def test_reconciliation_does_not_wait_for_a_vacuum_holding_the_table(
    kafka: KafkaResource, kafka_topic: str, pg: WarehouseResource
) -> None:
    """The BRIN summary is skipped while autovacuum/ANALYZE hold the table; the count stays exact."""
    _produce(kafka, kafka_topic, 300, seed=62, bad_share=0.05)
    ranges = _all_offsets(kafka, kafka_topic)
    result = _ingest(kafka, pg, kafka_topic, ranges, "vacuumed", max_messages=300)
    counted: dict[str, dict[str, int]] = {}
    # SHARE UPDATE EXCLUSIVE is what a (auto)vacuum or ANALYZE of raw.commerce_events holds.
    with pg.begin() as vacuum:
        vacuum.exec_driver_sql("LOCK TABLE raw.commerce_events IN SHARE UPDATE EXCLUSIVE MODE")
        counter = threading.Thread(
            target=lambda: counted.update(counts=reconcile_ranges(pg, COMMERCE, kafka_topic, result.ranges))
        )
        counter.start()
        counter.join(30)
        assert not counter.is_alive(), "the reconciliation waited for the table lock"
    assert counted["counts"] == {
        "offsets": 300,
        "events": result.events_loaded,
        "dead_letters": result.dead_letters,
    }
    assert result.events_loaded + result.dead_letters == 300 and result.dead_letters > 0
    # With the table free again, the summary runs and the count is unchanged.
    assert reconcile_ranges(pg, COMMERCE, kafka_topic, result.ranges) == counted["counts"]
    unsummarized = rows(
        pg,
        "SELECT brin_summarize_new_values('raw.commerce_events__brin__kafka_coordinates'::regclass) AS n",
    )
    assert unsummarized == [{"n": 0}]


def test_kafka_ranges_load_into_duckdb_too(kafka: KafkaResource, kafka_topic: str, tmp_path: Path) -> None:
    produced = _produce(kafka, kafka_topic, 600, seed=71, bad_share=0.05)
    warehouse = WarehouseResource(url=f"duckdb:///{tmp_path / 'w.duckdb'}")
    ranges = _all_offsets(kafka, kafka_topic)

    def ingest(run_id: str) -> IngestResult:
        return _ingest(kafka, warehouse, kafka_topic, ranges, run_id, max_messages=600, chunk_messages=100)

    first = ingest("run-1")
    assert (first.events_loaded, first.dead_letters) == (
        sum(1 for e in produced if e.valid),
        sum(1 for e in produced if not e.valid),
    )
    assert ingest("run-2").events_loaded == 0
    (stats,) = rows(
        warehouse,
        "SELECT COUNT(*) AS n, COUNT(DISTINCT event_id) AS ids, MIN(source_topic) AS topic "
        "FROM raw.commerce_events",
    )
    assert stats == {"n": first.events_loaded, "ids": first.events_loaded, "topic": kafka_topic}


class _Message:
    def __init__(self, partition: int, offset: int, error: object = None) -> None:
        self._partition, self._offset, self._error = partition, offset, error

    def error(self) -> object:
        return self._error

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (1, 1_700_000_000_000 + self._offset)

    def value(self) -> bytes:
        return f"{self._partition}:{self._offset}".encode()


class _PartitionEof:
    def code(self) -> int:
        from confluent_kafka import KafkaError

        return KafkaError._PARTITION_EOF


class _FakeConsumer:
    """Serves partitions' logs in batches of 7, interleaving partitions, honouring seek/pause.

    Offsets missing from a log are compacted records or transaction markers: the position moves
    past them to the log end once the last record was served, as Kafka's does.
    """

    def __init__(self, logs: dict[int, list[int]], ends: dict[int, int]) -> None:
        self.logs, self.ends = logs, ends
        self.position_of = {p: 0 for p in logs}
        self.paused: set[int] = set()

    def get_watermark_offsets(self, tp: object, timeout: float, cached: bool) -> tuple[int, int]:
        return self.logs[tp.partition][0], self.ends[tp.partition]  # type: ignore[attr-defined]

    def assign(self, tps: list) -> None:
        for tp in tps:
            self.position_of[tp.partition] = tp.offset

    def seek(self, tp: object) -> None:
        self.position_of[tp.partition] = tp.offset  # type: ignore[attr-defined]

    def pause(self, tps: list) -> None:
        self.paused.update(tp.partition for tp in tps)

    def position(self, tps: list) -> list:
        from confluent_kafka import TopicPartition

        return [TopicPartition(tp.topic, tp.partition, self.position_of[tp.partition]) for tp in tps]

    def consume(self, num_messages: int, timeout: float) -> list:
        batch: list = []
        for partition, offsets in self.logs.items():
            room = num_messages - len(batch)
            if partition in self.paused or room <= 0:
                continue
            upcoming = [o for o in offsets if o >= self.position_of[partition]][: min(7, room)]
            batch += [_Message(partition, o) for o in upcoming]
            if upcoming:
                self.position_of[partition] = upcoming[-1] + 1
            else:
                self.position_of[partition] = self.ends[partition]
                batch.append(_Message(partition, -1, _PartitionEof()))
        return batch


def test_range_reader_yields_exactly_the_requested_offsets() -> None:
    # Partition 0: three separate ranges. Partition 1 has gaps, one range ending on a gap;
    # partition 2's last two offsets are transaction markers (the range ends past its last record).
    logs = {0: list(range(100)), 1: [o for o in range(60) if o % 5 != 3], 2: list(range(18))}
    ends = {0: 100, 1: 60, 2: 20}
    wanted = [
        *(OffsetRange(0, 10, 25), OffsetRange(0, 40, 41), OffsetRange(0, 90, 100)),
        *(OffsetRange(1, 3, 54), OffsetRange(2, 5, 20)),
    ]
    reader = RangeConsumer(_FakeConsumer(logs, ends), "t", wanted, idle_timeout_s=5, log=None)
    got: list[tuple[int, int, int, bytes]] = []
    for parts, offs, stamps, values in reader.chunks(chunk_messages=16):
        assert len(parts) == len(offs) == len(stamps) == len(values) <= 16
        got += zip(parts.tolist(), offs.tolist(), stamps.tolist(), values, strict=True)
    expected = sorted(
        (r.partition, o) for r in wanted for o in logs[r.partition] if r.start_offset <= o < r.end_offset
    )
    assert sorted((p, o) for p, o, _, _ in got) == expected
    assert all(stamp == 1_700_000_000_000 + o and value == f"{p}:{o}".encode() for p, o, stamp, value in got)
