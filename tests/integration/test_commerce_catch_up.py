"""The Kafka run that catches up with the topic also rebuilds staging and marts (real Kafka + PostgreSQL).

Backlog runs only ingest; the single run reaching every partition's end runs
``commerce_kafka_ingest_and_refresh``. The marts it leaves behind, after incremental merges over
several batches, must equal values computed independently from the produced events.
"""

from pathlib import Path

import pytest
from dagster import (
    AssetCheckEvaluation,
    AssetKey,
    DagsterInstance,
    DagsterRunStatus,
    RunRequest,
    SensorResult,
    build_sensor_context,
)

from assets.sources.kafka_topic._ledger import parse_ranges
from assets.sources.kafka_topic._sensor import RANGES_TAG
from dbt_like_sql import load_project
from generators.commerce import GeneratedEvent, generate_events, produce_to_kafka
from orchestration.commerce import commerce_kafka_sensor
from resources.kafka import KafkaResource
from resources.warehouse import WarehouseResource
from tests.integration.test_commerce_helpers import (
    START,
    assert_marts,
    commerce_graph,
    resources_for,
    rows,
    valid,
)

CATCH_UP_JOB = "commerce_kafka_ingest_and_refresh"
INGEST_JOB = "commerce_kafka_ingest"
DATA_TESTS_JOB = "commerce_data_tests"


def _produce(kafka: KafkaResource, topic: str, n: int, seed: int) -> list[GeneratedEvent]:
    events = list(generate_events(n, seed=seed, bad_share=0.02, start=START, events_per_second=2))
    assert produce_to_kafka(iter(events), kafka.bootstrap_servers, topic).sent == n
    return events


def _tick(instance: DagsterInstance, resources: dict) -> list[RunRequest]:
    context = build_sensor_context(
        instance=instance, resources={"kafka": resources["kafka"], "warehouse": resources["warehouse"]}
    )
    result = commerce_kafka_sensor(context)
    assert isinstance(result, SensorResult), result
    return list(result.run_requests or [])


def _run(instance: DagsterInstance, resources: dict, request: RunRequest) -> set[AssetKey]:
    """Execute the request's job as the daemon would; the asset keys it materialized."""
    job = commerce_graph(resources).resolve_job_def(request.job_name)
    result = job.execute_in_process(
        run_config=request.run_config, instance=instance, tags=request.tags, raise_on_error=False
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    failed = [e.check_name for e in evaluations if not e.passed]
    assert failed == [], failed
    # Streaming runs evaluate only the ingest's own reconciliation; model tests run on a cadence.
    assert {e.asset_key for e in evaluations} <= {AssetKey(["raw", "commerce_events"])}
    return {m.asset_key for m in result.get_asset_materialization_events() if m.asset_key}


def _run_data_tests(instance: DagsterInstance, resources: dict) -> list[AssetCheckEvaluation]:
    """The scheduled commerce_data_tests job: every check of the models, no materialization."""
    result = (
        commerce_graph(resources)
        .resolve_job_def(DATA_TESTS_JOB)
        .execute_in_process(instance=instance, raise_on_error=False)
    )
    assert result.success
    assert result.get_asset_materialization_events() == []
    return result.get_asset_check_evaluations()


def test_the_catching_up_run_rebuilds_the_marts_and_backlog_runs_only_ingest(
    kafka: KafkaResource, topic_env: str, pg: WarehouseResource, tmp_path: Path
) -> None:
    resources = resources_for(pg, tmp_path / "landing", kafka.bootstrap_servers)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))

    # A small batch fits one run: that run catches up, so it refreshes everything downstream.
    produced = _produce(kafka, topic_env, 300, seed=31)
    (first,) = _tick(instance, resources)
    assert first.job_name == CATCH_UP_JOB
    built = _run(instance, resources, first)
    assert {AssetKey(["stg", "commerce_events"]), AssetKey(["mart", "commerce_summary"])} <= built
    assert_marts(pg, valid(produced))

    # A backlog of several runs: each only ingests (they run in parallel; automation follows them).
    produced += _produce(kafka, topic_env, 1500, seed=32)
    backlog = _tick(instance, resources)
    assert len(backlog) > 1 and {r.job_name for r in backlog} == {INGEST_JOB}
    for request in backlog:
        assert _run(instance, resources, request) == {
            AssetKey(["raw", "commerce_events"]),
            AssetKey(["raw", "commerce_events_dead_letter"]),
        }

    # The next small batch catches up again; its run merges the backlog and itself incrementally.
    produced += _produce(kafka, topic_env, 200, seed=33)
    (last,) = _tick(instance, resources)
    assert last.job_name == CATCH_UP_JOB
    _run(instance, resources, last)
    assert_marts(pg, valid(produced))

    # At most one refresh run waits behind the one executing: while a refresh run is queued (or
    # two are in flight), new offsets wait for the next one (coalesced) instead of queueing runs
    # that would each rebuild the same models.
    job = commerce_graph(resources).resolve_job_def(CATCH_UP_JOB)

    def enqueue(request: RunRequest, status: DagsterRunStatus) -> str:
        return instance.create_run_for_job(
            job, run_config=request.run_config, tags=request.tags, status=status
        ).run_id

    _produce(kafka, topic_env, 50, seed=35)
    (request,) = _tick(instance, resources)
    queued = enqueue(request, DagsterRunStatus.NOT_STARTED)
    _produce(kafka, topic_env, 50, seed=36)
    assert _tick(instance, resources) == []  # one not started yet: wait
    instance.delete_run(queued)
    executing = enqueue(request, DagsterRunStatus.STARTED)
    (behind,) = _tick(instance, resources)  # one executing: the next may queue behind it
    assert behind.job_name == CATCH_UP_JOB
    assert sum(r.size for r in parse_ranges(behind.tags[RANGES_TAG])) == 50
    second = enqueue(behind, DagsterRunStatus.STARTED)
    _produce(kafka, topic_env, 30, seed=37)
    assert _tick(instance, resources) == []  # two in flight: wait
    for run_id in (executing, second):
        instance.delete_run(run_id)
    (coalesced,) = _tick(instance, resources)
    assert coalesced.job_name == CATCH_UP_JOB
    assert sum(r.size for r in parse_ranges(coalesced.tags[RANGES_TAG])) == 130

    (staged,) = rows(pg, "SELECT COUNT(*) AS n, COUNT(DISTINCT merged_at) AS merges FROM stg.commerce_events")
    assert staged["n"] == len({e["event_id"] for e in valid(produced)}) and staged["merges"] == 2

    # The data tests the refresh runs left out: every declared test of every commerce model passes.
    evaluations = _run_data_tests(instance, resources)
    models = [m for m in load_project() if m.name.startswith("commerce_")]
    declared = {(model.key, test.name) for model in models for test in model.tests}
    assert len(declared) > 50
    assert {(e.asset_key, e.check_name) for e in evaluations} == declared
    assert [e.check_name for e in evaluations if not e.passed] == []


def test_catch_up_refresh_can_be_switched_off(
    kafka: KafkaResource,
    topic_env: str,
    pg: WarehouseResource,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("COMMERCE_KAFKA_REFRESH_WHEN_CAUGHT_UP", "false")
    resources = resources_for(pg, tmp_path / "landing", kafka.bootstrap_servers)
    instance = DagsterInstance.ephemeral(tempdir=str(tmp_path / "dagster"))
    _produce(kafka, topic_env, 100, seed=34)
    (request,) = _tick(instance, resources)
    assert request.job_name == INGEST_JOB
