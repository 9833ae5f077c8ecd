"""Self-healing against real failures: retry policy, fail-fast, ops.incidents and bounded re-execution.

Assets here fail for real (a PostgreSQL URL on a closed port, a DuckDB file locked by another
process, SQL referring to a missing table), run through real Dagster execution in a real instance;
the run-failure sensor is evaluated through the public sensor APIs (``evaluate_tick`` with its
cursor, and direct invocation with ``build_run_status_sensor_context``). ``ops.incidents`` lives in
the parametrized warehouse: DuckDB and PostgreSQL.
"""

import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pandas as pd
import pytest
from dagster import (
    AssetExecutionContext,
    AssetKey,
    Backoff,
    DagsterEventType,
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    Jitter,
    MaterializeResult,
    RetryPolicy,
    RunRequest,
    SensorDefinition,
    asset,
    build_run_status_sensor_context,
    build_sensor_context,
    define_asset_job,
    materialize,
)

from orchestration.self_healing import REEXECUTION_JOB_PREFIX, build_self_healing_defs
from resources.error_diagnosis import NETWORK_RETRY_POLICY, diagnose, fail_fast_on_permanent_errors
from resources.warehouse import WarehouseResource, dispose_engines
from sensors.incidents_store import INCIDENT_COLUMNS, incident_id_for
from sensors.reexecution import ATTEMPT_TAG, PARENT_TAG, ROOT_TAG
from sensors.run_failure import PENDING_TAG

UPSTREAM = AssetKey(["raw", "sh_upstream"])
FLAKY = AssetKey(["stg", "sh_flaky"])
DOWNSTREAM = AssetKey(["mart", "sh_downstream"])
# Fast retries in the sensor tests: what is under test there is the run after the retries.
QUICK_RETRY = RetryPolicy(max_retries=1, delay=0.1, backoff=Backoff.EXPONENTIAL, jitter=Jitter.PLUS_MINUS)


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _write(warehouse: WarehouseResource, key: AssetKey) -> MaterializeResult:
    warehouse.write_table(pd.DataFrame({"n": [1, 2, 3]}), key.path[0], key.path[1])
    return MaterializeResult(metadata={"dagster/row_count": 3})


@asset(key=UPSTREAM, retry_policy=QUICK_RETRY)
@fail_fast_on_permanent_errors
def sh_upstream(warehouse: WarehouseResource) -> MaterializeResult:
    return _write(warehouse, UPSTREAM)


@asset(key=FLAKY, deps=[UPSTREAM], retry_policy=QUICK_RETRY)
@fail_fast_on_permanent_errors
def sh_flaky(warehouse: WarehouseResource, source: WarehouseResource) -> MaterializeResult:
    """Reads the ``source`` database (the one that goes down), writes to the warehouse."""
    source.scalar("SELECT 1")
    return _write(warehouse, FLAKY)


@asset(key=DOWNSTREAM, deps=[FLAKY], retry_policy=QUICK_RETRY)
@fail_fast_on_permanent_errors
def sh_downstream(warehouse: WarehouseResource) -> MaterializeResult:
    return _write(warehouse, DOWNSTREAM)


PIPELINE = define_asset_job("sh_pipeline", selection=[UPSTREAM, FLAKY, DOWNSTREAM])


def _defs(warehouse: WarehouseResource, source_url: str) -> Definitions:
    base = Definitions(
        assets=[sh_upstream, sh_flaky, sh_downstream],
        jobs=[PIPELINE],
        resources={"warehouse": warehouse, "source": WarehouseResource(url=source_url)},
    )
    return Definitions.merge(base, build_self_healing_defs(base))


def _sensor(defs: Definitions, name: str = "run_failure_incidents_sensor") -> SensorDefinition:
    return next(s for s in defs.sensors if s.name == name)


def _evaluate(
    sensor: SensorDefinition,
    instance: DagsterInstance,
    result: ExecuteInProcessResult,
    warehouse: WarehouseResource,
) -> list[RunRequest]:
    """Direct invocation with the public testing context, as the docs describe."""
    context = build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_event=result.get_run_failure_event(),
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"warehouse": warehouse},
    ).for_run_failure()
    return list(sensor(context) or [])


def _reexecute(defs: Definitions, request: RunRequest, instance: DagsterInstance) -> ExecuteInProcessResult:
    """Launch a run the way the daemon would: the request's job, selection, config and tags."""
    job = defs.resolve_job_def(request.job_name or "")
    return job.execute_in_process(
        instance=instance,
        run_config=request.run_config,
        tags=request.tags,
        asset_selection=list(request.asset_selection or []),
        raise_on_error=False,
    )


def _incidents(warehouse: WarehouseResource) -> pd.DataFrame:
    return warehouse.read_frame("SELECT * FROM ops.incidents ORDER BY attempt, detected_at")


def _materialized(result: ExecuteInProcessResult) -> set[AssetKey]:
    return {e.asset_key for e in result.all_events if e.event_type == DagsterEventType.ASSET_MATERIALIZATION}


def _count(result: ExecuteInProcessResult, event_type: DagsterEventType, step_key: str) -> int:
    return sum(1 for e in result.all_events if e.event_type == event_type and e.step_key == step_key)


def test_transient_failure_is_recorded_and_reexecuted_from_failure(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, closed_port: int
) -> None:
    broken = _defs(warehouse, f"postgresql+psycopg://x:y@127.0.0.1:{closed_port}/x")
    sensor = _sensor(broken)
    # The real sensor machinery: first tick sets the cursor, the next one sees the failure.
    first = sensor.evaluate_tick(
        build_sensor_context(instance=dagster_instance, resources={"warehouse": warehouse})
    )
    failed = broken.resolve_job_def("sh_pipeline").execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )
    assert not failed.success and _materialized(failed) == {UPSTREAM}
    assert _count(failed, DagsterEventType.STEP_UP_FOR_RETRY, "stg__sh_flaky") == 1  # retried, then failed
    tick = sensor.evaluate_tick(
        build_sensor_context(
            instance=dagster_instance, cursor=first.cursor, resources={"warehouse": warehouse}
        )
    )
    (request,) = tick.run_requests or []

    run_id = failed.run_id
    rows = _incidents(warehouse)
    assert list(rows.columns) == list(INCIDENT_COLUMNS)
    assert len(rows) == 1
    row = rows.iloc[0]
    assert row["incident_id"] == incident_id_for(run_id, "stg__sh_flaky")
    assert (row["run_id"], row["job_name"], row["step_key"]) == (run_id, "sh_pipeline", "stg__sh_flaky")
    assert row["asset_keys"] == "stg/sh_flaky"
    assert row["error_class"] == "psycopg.OperationalError"
    assert "Connection refused" in row["error_message"] and len(row["error_message"]) <= 2000
    assert (row["diagnosis"], row["action"], row["attempt"]) == ("transient", "reexecuted", 1)
    assert row["root_run_id"] == run_id and row["retry_run_id"] is None
    assert "refused" in row["explanation"] and "re-executed from failure" in row["explanation"]

    # Re-execution targets exactly what did not materialize: the failed asset and what it blocked.
    assert request.job_name == REEXECUTION_JOB_PREFIX
    assert set(request.asset_selection or []) == {FLAKY, DOWNSTREAM}
    assert (request.tags[ROOT_TAG], request.tags[PARENT_TAG], request.tags[ATTEMPT_TAG]) == (
        run_id,
        run_id,
        "2",
    )

    # The same failure evaluated again: no second row, the same run key (the daemon launches it once).
    again = _evaluate(sensor, dagster_instance, failed, warehouse)
    assert [r.run_key for r in again] == [request.run_key]
    assert len(_incidents(warehouse)) == 1
    assert (
        sensor.evaluate_tick(
            build_sensor_context(
                instance=dagster_instance, cursor=tick.cursor, resources={"warehouse": warehouse}
            )
        ).run_requests
        == []
    )

    # The database is back: the re-execution succeeds without touching the upstream asset.
    healed = _reexecute(_defs(warehouse, warehouse.url), request, dagster_instance)
    assert healed.success and _materialized(healed) == {FLAKY, DOWNSTREAM}
    assert warehouse.scalar("SELECT COUNT(*) FROM mart.sh_downstream") == 3

    # The link sensor fills retry_run_id once the re-execution run exists.
    link = _sensor(broken, "incident_upkeep_sensor")
    link.evaluate_tick(build_sensor_context(instance=dagster_instance, resources={"warehouse": warehouse}))
    assert _incidents(warehouse).iloc[0]["retry_run_id"] == healed.run_id
    dispose_engines()


def test_reexecution_is_bounded_by_attempts(
    warehouse: WarehouseResource,
    dagster_instance: DagsterInstance,
    closed_port: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AFLUENTE_MAX_AUTO_REEXECUTIONS", "2")
    broken = _defs(warehouse, f"postgresql+psycopg://x:y@127.0.0.1:{closed_port}/x")
    sensor = _sensor(broken)
    result = broken.resolve_job_def("sh_pipeline").execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )
    root = result.run_id
    launched = []
    for _ in range(5):
        requests = _evaluate(sensor, dagster_instance, result, warehouse)
        if not requests:
            break
        (request,) = requests
        result = _reexecute(broken, request, dagster_instance)  # still down: fails again
        assert not result.success
        launched.append(result.run_id)
    assert len(launched) == 2
    rows = _incidents(warehouse)
    assert list(rows["attempt"]) == [1, 2, 3]
    assert list(rows["action"]) == ["reexecuted", "reexecuted", "gave_up"]
    assert set(rows["root_run_id"]) == {root} and set(rows["diagnosis"]) == {"transient"}
    assert "AFLUENTE_MAX_AUTO_REEXECUTIONS=2" in rows.iloc[-1]["explanation"]
    for run_id in launched:
        run = dagster_instance.get_run_by_id(run_id)
        assert run is not None and run.tags[ROOT_TAG] == root
        assert run.asset_selection == {FLAKY, DOWNSTREAM}
    dispose_engines()


def test_incidents_are_deferred_while_the_warehouse_is_down(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance, closed_port: int
) -> None:
    down_url = f"postgresql+psycopg://x:y@127.0.0.1:{closed_port}/x"
    broken = _defs(warehouse, down_url)
    failed = broken.resolve_job_def("sh_pipeline").execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )
    # ops.incidents is unreachable: the re-execution is still requested, the decision kept in tags.
    (request,) = _evaluate(_sensor(broken), dagster_instance, failed, WarehouseResource(url=down_url))
    run = dagster_instance.get_run_by_id(failed.run_id)
    assert run is not None and run.tags[PENDING_TAG] == "reexecuted"
    assert not warehouse.table_exists("ops", "incidents")
    healed = _reexecute(_defs(warehouse, warehouse.url), request, dagster_instance)
    assert healed.success

    upkeep = _sensor(broken, "incident_upkeep_sensor")
    upkeep.evaluate_tick(build_sensor_context(instance=dagster_instance, resources={"warehouse": warehouse}))
    row = _incidents(warehouse).iloc[0]
    assert (row["run_id"], row["diagnosis"], row["action"]) == (failed.run_id, "transient", "reexecuted")
    assert row["retry_run_id"] == healed.run_id
    assert dagster_instance.get_run_by_id(failed.run_id).tags[PENDING_TAG] == "recorded"  # type: ignore[union-attr]
    upkeep.evaluate_tick(build_sensor_context(instance=dagster_instance, resources={"warehouse": warehouse}))
    assert len(_incidents(warehouse)) == 1
    dispose_engines()


@pytest.mark.parametrize("retry_step_failures", [True, False])
def test_dagster_run_retries_and_the_sensor_never_both_retry(
    warehouse: WarehouseResource, tmp_path: Path, closed_port: int, retry_step_failures: bool
) -> None:
    """With ``run_retries`` on, Dagster decides first (``dagster/will_retry``); the sensor defers to it."""
    settings = {
        "run_retries": {
            "enabled": True,
            "max_retries": 1,
            "retry_on_asset_or_op_failure": retry_step_failures,
        }
    }
    broken = _defs(warehouse, f"postgresql+psycopg://x:y@127.0.0.1:{closed_port}/x")
    with DagsterInstance.ephemeral(tempdir=str(tmp_path / "home"), settings=settings) as instance:
        failed = broken.resolve_job_def("sh_pipeline").execute_in_process(
            instance=instance, raise_on_error=False
        )
        run = instance.get_run_by_id(failed.run_id)
        assert run is not None and run.tags.get("dagster/will_retry") == str(retry_step_failures).lower()
        requests = _evaluate(_sensor(broken), instance, failed, warehouse)
    row = _incidents(warehouse).iloc[0]
    assert row["action"] == "reexecuted"
    if retry_step_failures:  # Dagster retries the run: the sensor launches nothing
        assert requests == [] and "Dagster run retries" in row["explanation"]
    else:  # Dagster leaves step failures alone: the sensor re-executes
        assert len(requests) == 1 and requests[0].tags["dagster/retry_on_asset_or_op_failure"] == "false"
    dispose_engines()


def test_permanent_sql_error_fails_fast_and_is_not_reexecuted(
    warehouse: WarehouseResource, dagster_instance: DagsterInstance
) -> None:
    @asset(key=["stg", "sh_bad_sql"], retry_policy=NETWORK_RETRY_POLICY)
    @fail_fast_on_permanent_errors
    def sh_bad_sql(warehouse: WarehouseResource) -> MaterializeResult:
        warehouse.scalar("SELECT amount FROM missing_schema.missing_table")
        return MaterializeResult()

    @asset(key=["stg", "sh_bad_sql_too"], retry_policy=NETWORK_RETRY_POLICY)
    @fail_fast_on_permanent_errors
    def sh_bad_sql_too(warehouse: WarehouseResource) -> MaterializeResult:
        warehouse.scalar("SELEC 1")
        return MaterializeResult()

    base = Definitions(assets=[sh_bad_sql, sh_bad_sql_too], resources={"warehouse": warehouse})
    defs = Definitions.merge(base, build_self_healing_defs(base))
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        instance=dagster_instance, raise_on_error=False
    )
    assert not result.success
    # The retry policy allows 4 retries; a permanent error uses none of them.
    assert _count(result, DagsterEventType.STEP_START, "stg__sh_bad_sql") == 1
    assert _count(result, DagsterEventType.STEP_UP_FOR_RETRY, "stg__sh_bad_sql") == 0
    failure = next(
        e
        for e in result.all_events
        if e.event_type == DagsterEventType.STEP_FAILURE and e.step_key == "stg__sh_bad_sql"
    )
    description = failure.event_specific_data.user_failure_data.description
    assert description.startswith("Permanent error, not retried")

    sensor = _sensor(defs)
    assert _evaluate(sensor, dagster_instance, result, warehouse) == []
    assert _evaluate(sensor, dagster_instance, result, warehouse) == []  # evaluated twice: one row
    rows = _incidents(warehouse).set_index("step_key")
    assert sorted(rows.index) == ["stg__sh_bad_sql", "stg__sh_bad_sql_too"]  # one transaction, one row each
    assert set(rows["diagnosis"]) == {"permanent"} and set(rows["action"]) == {"none"}
    assert "syntax" in rows.loc["stg__sh_bad_sql_too", "error_message"].lower()
    row = rows.loc["stg__sh_bad_sql"]
    assert (row["diagnosis"], row["action"], row["attempt"]) == ("permanent", "none", 1)
    expected_class = (
        "psycopg.errors.UndefinedTable" if warehouse.dialect == "postgresql" else "CatalogException"
    )
    assert expected_class in row["error_class"]
    assert "SQL is invalid" in row["explanation"] and "not re-executed" in row["explanation"]
    assert "missing_table" in row["error_message"]
    dispose_engines()


# ------------------------------------------------------------------------------------------------
# The retry policy retries a real transient error and then succeeds.


@pytest.fixture
def unavailable_first(
    warehouse: WarehouseResource, tmp_path: Path, closed_port: int
) -> Iterator[tuple[WarehouseResource, Callable[[], None]]]:
    """A warehouse that fails on first use and is back right after: (first-attempt resource, release).

    PostgreSQL: the first attempt goes to a closed port (connection refused). DuckDB: another
    process holds the file's lock until ``release`` (``Could not set lock``).
    """
    if warehouse.dialect == "postgresql":
        yield WarehouseResource(url=f"postgresql+psycopg://x:y@127.0.0.1:{closed_port}/x"), lambda: None
        return
    path = warehouse.url.removeprefix("duckdb:///")
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import duckdb; c = duckdb.connect({path!r}); print('locked', flush=True); input()",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"

    def release() -> None:
        if holder.poll() is None:
            holder.communicate("\n", timeout=30)

    try:
        yield WarehouseResource(url=warehouse.url, lock_timeout_s=0), release
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()


def test_retry_policy_retries_a_real_transient_error_then_succeeds(
    warehouse: WarehouseResource,
    dagster_instance: DagsterInstance,
    unavailable_first: tuple[WarehouseResource, Callable[[], None]],
) -> None:
    down, release = unavailable_first

    @asset(key=["stg", "sh_retried"], retry_policy=NETWORK_RETRY_POLICY)
    @fail_fast_on_permanent_errors
    def sh_retried(context: AssetExecutionContext, warehouse: WarehouseResource) -> MaterializeResult:
        if context.retry_number == 0:
            try:
                down.scalar("SELECT 1")  # raises the real transient error
            finally:
                release()  # the service comes back while the step waits for its retry
        return _write(warehouse, AssetKey(["stg", "sh_retried"]))

    result = materialize([sh_retried], resources={"warehouse": warehouse}, instance=dagster_instance)
    assert result.success
    assert _count(result, DagsterEventType.STEP_UP_FOR_RETRY, "stg__sh_retried") == 1
    assert _count(result, DagsterEventType.STEP_RESTARTED, "stg__sh_retried") == 1
    retry = next(e for e in result.all_events if e.event_type == DagsterEventType.STEP_UP_FOR_RETRY)
    assert diagnose(retry.event_specific_data.error).kind == "transient"
    assert warehouse.scalar("SELECT COUNT(*) FROM stg.sh_retried") == 3
    dispose_engines()
